//! The URL an HTTP probe requests, and the `IP[:PORT]` a probe may dial instead of resolving.
//!
//! Parsed once, where the user or the config gives them, so the probe itself cannot meet a bad
//! URL: only `http` and `https`, a host, no user info, no fragment.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use hyper::Uri;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    pub scheme: Scheme,
    /// Lowercase host name, or an IP address without brackets. Sent as SNI and `Host`.
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Why a URL or a `--connect-to` value was refused. Each message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("URL {0:?}: not a valid URL")]
    Invalid(String),
    #[error("URL {0:?}: the scheme must be http or https")]
    Scheme(String),
    #[error("URL {0:?}: no host")]
    NoHost(String),
    #[error("URL {0:?}: user info (user@host) is not supported")]
    UserInfo(String),
    #[error(
        "connect-to {0:?}: expected IP or IP:PORT, e.g. 10.0.0.1, 10.0.0.1:8443 or [fd00::1]:443"
    )]
    ConnectTo(String),
}

impl HttpUrl {
    /// Parses `text`, e.g. `https://shop.example.com/healthz?full=1`.
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        let invalid = || UrlError::Invalid(text.to_string());
        if !text.is_empty() && !text.contains("://") {
            return Err(UrlError::Scheme(text.to_string()));
        }
        let uri: Uri = text.parse().map_err(|_| invalid())?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            _ => return Err(UrlError::Scheme(text.to_string())),
        };
        let authority = uri.authority().ok_or_else(invalid)?;
        if let Some((_, host)) = authority.as_str().rsplit_once('@') {
            // The user info may be a password: the error, which is logged, leaves it out.
            let scheme = uri.scheme_str().unwrap_or_default();
            let rest = uri.path_and_query().map_or("", |p| p.as_str());
            return Err(UrlError::UserInfo(format!("{scheme}://…@{host}{rest}")));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::NoHost(text.to_string()));
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(HttpUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(scheme.default_port()),
            path: if path.is_empty() { "/" } else { path }.to_string(),
        })
    }

    /// The host as an address when the URL names one directly: no DNS phase then.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The `Host` header value: the host, with the port when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = match self.ip() {
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.path
        )
    }
}

/// Parses a `--connect-to` value like curl's `--resolve`: `IP` (the URL's port) or `IP:PORT`,
/// IPv6 as `fd00::1` or `[fd00::1]:443`.
pub fn parse_connect_to(text: &str, default_port: u16) -> Result<SocketAddr, UrlError> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| UrlError::ConnectTo(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: Scheme, host: &str, port: u16, path: &str) -> HttpUrl {
        HttpUrl {
            scheme,
            host: host.to_string(),
            port,
            path: path.to_string(),
        }
    }

    #[test]
    fn parses_scheme_host_port_and_path() {
        let cases = [
            (
                "https://Shop.Example.com",
                url(Scheme::Https, "shop.example.com", 443, "/"),
            ),
            (
                "http://a.test:8080/x?y=1",
                url(Scheme::Http, "a.test", 8080, "/x?y=1"),
            ),
            (
                "HTTPS://10.0.0.1/healthz",
                url(Scheme::Https, "10.0.0.1", 443, "/healthz"),
            ),
            (
                "https://[fd00::1]:8443/",
                url(Scheme::Https, "fd00::1", 8443, "/"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(HttpUrl::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_the_probe_cannot_request() {
        let cases = [
            ("ftp://a.test/", UrlError::Scheme("ftp://a.test/".into())),
            ("a.test/path", UrlError::Scheme("a.test/path".into())),
            (
                "https://u:p@a.test/",
                UrlError::UserInfo("https://…@a.test/".into()),
            ),
            ("https://a b/", UrlError::Invalid("https://a b/".into())),
            ("", UrlError::Invalid(String::new())),
        ];
        for (text, want) in cases {
            assert_eq!(HttpUrl::parse(text), Err(want), "{text}");
        }
        assert_eq!(
            UrlError::Scheme("ftp://a.test/".into()).to_string(),
            "URL \"ftp://a.test/\": the scheme must be http or https"
        );
    }

    #[test]
    fn the_host_header_carries_a_port_only_when_not_the_default() {
        let plain = HttpUrl::parse("https://a.test/").unwrap();
        assert_eq!(plain.host_header(), "a.test");
        assert_eq!(plain.to_string(), "https://a.test/");
        let odd = HttpUrl::parse("http://a.test:8080/x").unwrap();
        assert_eq!(odd.host_header(), "a.test:8080");
        let v6 = HttpUrl::parse("https://[fd00::1]:8443/").unwrap();
        assert_eq!(v6.host_header(), "[fd00::1]:8443");
        assert_eq!(v6.ip(), Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn connect_to_takes_an_ip_with_or_without_a_port() {
        let ok = [
            ("10.0.0.1", "10.0.0.1:443"),
            ("10.0.0.1:8443", "10.0.0.1:8443"),
            ("fd00::1", "[fd00::1]:443"),
            ("[fd00::1]", "[fd00::1]:443"),
            ("[fd00::1]:80", "[fd00::1]:80"),
        ];
        for (text, want) in ok {
            assert_eq!(
                parse_connect_to(text, 443),
                Ok(want.parse().unwrap()),
                "{text}"
            );
        }
        for bad in ["lb.example.com", "10.0.0.1:x", ""] {
            assert_eq!(
                parse_connect_to(bad, 443),
                Err(UrlError::ConnectTo(bad.to_string()))
            );
        }
    }
}
