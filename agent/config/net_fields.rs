//! Checks of single values of the `http`, `tcp`, `kubernetes.ingress` and `otlp` sections: URLs,
//! addresses, status codes, hops, header names and values. Pure functions from what was written
//! to a typed value or a one-line reason, like `fields`.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use super::fields::{MAX_INTERVAL_SECONDS, show};
use crate::probe::Hop;
use crate::probe::http::{HttpUrl, UrlError, parse_connect_to};

/// The response codes HTTP defines.
const STATUS_CODES: RangeInclusive<u16> = 100..=599;
/// Pushing more often than once a second only loads the collector.
pub const MIN_OTLP_INTERVAL_SECONDS: f64 = 1.0;
/// Set by the HTTP client for every request: a configured value would break the request.
const CLIENT_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

/// An `http://` or `https://` URL with a host and no user info.
pub fn url(s: &str) -> Result<HttpUrl, String> {
    HttpUrl::parse(s).map_err(|err| match err {
        UrlError::Scheme(_) => format!("{} is not an http:// or https:// URL", show(s)),
        UrlError::NoHost(_) => format!("{} has no host", show(s)),
        UrlError::UserInfo(redacted) => {
            format!("{}: user info (`user@`) is not supported", show(&redacted))
        }
        UrlError::Invalid(_) | UrlError::ConnectTo(_) => format!("{} is not a valid URL", show(s)),
    })
}

/// `connect_to`: `IP` (with the URL's port) or `IP:PORT`, IPv6 as `fd00::1` or `[fd00::1]:443`.
pub fn connect_to(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let address = parse_connect_to(s, default_port).map_err(|_| {
        format!(
            "{} is not an IP address or `IP:PORT`, such as `203.0.113.10` or `[fd00::1]:443`",
            show(s)
        )
    })?;
    if address.port() == 0 {
        return Err(format!("{}: port 0 cannot be dialled", show(s)));
    }
    Ok(address)
}

/// One entry of `expected_status`: a code (`200`) or an inclusive range (`200-299`).
pub fn status(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || {
        format!(
            "{} is not a status code or a range such as `200-299`",
            show(s)
        )
    };
    let (low, high) = s.split_once('-').unwrap_or((s, s));
    let low = status_code(low.trim()).ok_or_else(bad)??;
    let high = status_code(high.trim()).ok_or_else(bad)??;
    if low > high {
        return Err(format!("{}: the range ends before it starts", show(s)));
    }
    Ok(low..=high)
}

/// `None` when `s` is not a number; an error when it is one but not a status code.
fn status_code(s: &str) -> Option<Result<u16, String>> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let code = s.parse::<u16>().ok().filter(|c| STATUS_CODES.contains(c));
    Some(code.ok_or_else(|| {
        format!(
            "{s} is not a status code: codes are {} to {}",
            STATUS_CODES.start(),
            STATUS_CODES.end()
        )
    }))
}

/// A `tcp` target's `address`: an IP address and a port, no host name.
pub fn tcp_address(s: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = s.parse().map_err(|_| {
        format!(
            "{} is not an IP address and port such as `10.96.0.10:53` or `[fd00::10]:53`",
            show(s)
        )
    })?;
    if address.port() == 0 {
        return Err(format!("{}: port 0 cannot be connected to", show(s)));
    }
    Ok(address)
}

/// A `tcp` target's `hop`: the hops a plain connect stands for.
pub fn tcp_hop(s: &str) -> Result<Hop, String> {
    match s {
        "service" => Ok(Hop::Service),
        "pod" => Ok(Hop::Pod),
        _ => Err(format!(
            "unknown hop {}, expected `service` or `pod`",
            show(s)
        )),
    }
}

/// `otlp.interval_seconds`: from a second to a day.
pub fn otlp_interval(v: f64) -> Result<f64, String> {
    if (MIN_OTLP_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} must be between {MIN_OTLP_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS}"
        ))
    }
}

/// An HTTP header name (RFC 9110 token) that the HTTP client does not set itself.
pub fn header_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a header name must not be empty".to_string());
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if let Some(c) = s.chars().find(|&c| !token(c)) {
        return Err(format!(
            "header name {} contains {}; names allow letters, digits and any of !#$%&'*+-.^_`|~",
            show(s),
            show(&c.to_string())
        ));
    }
    if CLIENT_HEADERS.contains(&s.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "header {} is set by the HTTP client and cannot be configured",
            show(s)
        ));
    }
    Ok(s.to_string())
}

/// An HTTP header value: printable ASCII and spaces, which every HTTP stack passes unchanged.
pub fn header_value(s: &str) -> Result<String, String> {
    match s.chars().find(|c| !(' '..='~').contains(c)) {
        Some(c) => Err(format!(
            "header value contains {}; only printable ASCII characters are allowed",
            show(&c.to_string())
        )),
        None => Ok(s.to_string()),
    }
}

/// A resource attribute key: not empty, no whitespace or control characters.
pub fn attribute_key(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an attribute key must not be empty".to_string());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "attribute key {} contains whitespace or a control character",
            show(s)
        ));
    }
    Ok(s.to_string())
}

/// A resource attribute value: any text without control characters.
pub fn attribute_value(s: &str) -> Result<String, String> {
    if s.chars().any(char::is_control) {
        return Err(format!("{} contains a control character", show(s)));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::http::Scheme;

    #[test]
    fn urls() {
        let ok = url("https://Shop.example.com/healthz").unwrap();
        assert_eq!(
            (ok.scheme, ok.host.as_str()),
            (Scheme::Https, "shop.example.com")
        );
        assert_eq!(
            url("ftp://a.test/"),
            Err("`ftp://a.test/` is not an http:// or https:// URL".into())
        );
        assert_eq!(
            url("shop.example.com"),
            Err("`shop.example.com` is not an http:// or https:// URL".into())
        );
        assert_eq!(
            url("https://a b/"),
            Err("`https://a b/` is not a valid URL".into())
        );
        assert_eq!(
            url("https://u:p@a.test/"),
            Err("`https://…@a.test/`: user info (`user@`) is not supported".into())
        );
    }

    #[test]
    fn connect_to_addresses() {
        assert_eq!(
            connect_to("10.0.0.1", 443),
            Ok("10.0.0.1:443".parse().unwrap())
        );
        assert_eq!(
            connect_to("[fd00::1]:80", 443),
            Ok("[fd00::1]:80".parse().unwrap())
        );
        assert_eq!(
            connect_to("lb.example.com", 443),
            Err("`lb.example.com` is not an IP address or `IP:PORT`, such as `203.0.113.10` or `[fd00::1]:443`".into())
        );
        assert_eq!(
            connect_to("10.0.0.1:0", 443),
            Err("`10.0.0.1:0`: port 0 cannot be dialled".into())
        );
    }

    #[test]
    fn status_codes_and_ranges() {
        assert_eq!(status("200"), Ok(200..=200));
        assert_eq!(status("200-299"), Ok(200..=299));
        assert_eq!(status("200 - 204"), Ok(200..=204));
        assert_eq!(status("100-599"), Ok(100..=599));
        assert_eq!(
            status("600"),
            Err("600 is not a status code: codes are 100 to 599".into())
        );
        assert_eq!(
            status("200-999"),
            Err("999 is not a status code: codes are 100 to 599".into())
        );
        assert_eq!(
            status("70000"),
            Err("70000 is not a status code: codes are 100 to 599".into())
        );
        assert_eq!(
            status("299-200"),
            Err("`299-200`: the range ends before it starts".into())
        );
        for bad in ["2xx", "", "-200", "200-", "200-300-400", "20 0", "+200"] {
            assert_eq!(
                status(bad),
                Err(format!(
                    "{} is not a status code or a range such as `200-299`",
                    show(bad)
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn tcp_addresses_and_hops() {
        assert_eq!(
            tcp_address("10.96.0.10:53"),
            Ok("10.96.0.10:53".parse().unwrap())
        );
        assert_eq!(
            tcp_address("[fd00::a]:443"),
            Ok("[fd00::a]:443".parse().unwrap())
        );
        for bad in ["10.96.0.10", "kube-dns:53", "fd00::a", ""] {
            assert!(tcp_address(bad).is_err(), "{bad}");
        }
        assert_eq!(
            tcp_address("10.0.0.1:0"),
            Err("`10.0.0.1:0`: port 0 cannot be connected to".into())
        );
        assert_eq!(tcp_hop("pod"), Ok(Hop::Pod));
        assert_eq!(
            tcp_hop("ingress"),
            Err("unknown hop `ingress`, expected `service` or `pod`".into())
        );
    }

    #[test]
    fn otlp_values() {
        assert_eq!(otlp_interval(1.0), Ok(1.0));
        assert_eq!(
            otlp_interval(0.5),
            Err("0.5 must be between 1 and 86400".into())
        );
        assert!(otlp_interval(f64::NAN).is_err());
        assert_eq!(header_name("X-Scope-OrgID"), Ok("X-Scope-OrgID".into()));
        assert_eq!(
            header_name(""),
            Err("a header name must not be empty".into())
        );
        assert_eq!(
            header_name("X Token"),
            Err("header name `X Token` contains ` `; names allow letters, digits and any of !#$%&'*+-.^_`|~".into())
        );
        assert_eq!(
            header_name("Content-Type"),
            Err("header `Content-Type` is set by the HTTP client and cannot be configured".into())
        );
        assert_eq!(header_value("Bearer abc=="), Ok("Bearer abc==".into()));
        assert_eq!(header_value(""), Ok(String::new()));
        assert_eq!(
            header_value("a\nb"),
            Err("header value contains `\\n`; only printable ASCII characters are allowed".into())
        );
        assert!(header_value("é").is_err());
        assert_eq!(
            attribute_key("k8s.cluster.name"),
            Ok("k8s.cluster.name".into())
        );
        assert!(attribute_key("").is_err());
        assert!(attribute_key("a b").is_err());
        assert_eq!(attribute_value("prod eu-1"), Ok("prod eu-1".into()));
        assert!(attribute_value("a\tb").is_err());
    }
}
