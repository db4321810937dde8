//! Checks of single config values: pure functions from what was written to a typed value or
//! a one-line reason. Where the value sits in the file is the caller's business.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::probe::dns::{Flavor, Qtype};

/// Below a millisecond a schedule means nothing and `Duration` rounding could make it zero.
pub const MIN_SECONDS: f64 = 0.001;
/// One day: longer intervals are almost certainly a unit mistake.
pub const MAX_INTERVAL_SECONDS: f64 = 86_400.0;
pub const DEFAULT_INTERVAL_SECONDS: f64 = 30.0;
const DEFAULT_TIMEOUT_SECONDS: f64 = 25.0;
const DEFAULT_JITTER_SECONDS: f64 = 1.0;
pub const MAX_CONCURRENCY: i64 = 10_000;
pub const DEFAULT_CONCURRENCY: usize = 64;
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9808);
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// RFC 1035 limits, counted without the trailing dot.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
const MAX_ID_LEN: usize = 128;
const DNS_PORT: u16 = 53;
/// User text is echoed in errors up to this many characters.
const MAX_SHOWN: usize = 80;

/// `interval_seconds`: from a millisecond to a day.
pub fn interval(v: f64) -> Result<f64, String> {
    if (MIN_SECONDS..=MAX_INTERVAL_SECONDS).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} must be between {MIN_SECONDS} and {MAX_INTERVAL_SECONDS}"
        ))
    }
}

/// `timeout_seconds` on its own; that it is below the interval is checked with both known.
pub fn timeout(v: f64) -> Result<f64, String> {
    at_least(v, MIN_SECONDS)
}

/// `jitter_seconds` on its own; that it is below the interval is checked with both known.
pub fn jitter(v: f64) -> Result<f64, String> {
    at_least(v, 0.0)
}

fn at_least(v: f64, min: f64) -> Result<f64, String> {
    // Written so that NaN fails too.
    if v >= min {
        Ok(v)
    } else {
        Err(format!("{v} must be at least {min}"))
    }
}

/// The timeout when none is configured: 25 s, or 80 % of a shorter interval.
pub fn default_timeout(interval: f64) -> f64 {
    if interval > DEFAULT_TIMEOUT_SECONDS {
        DEFAULT_TIMEOUT_SECONDS
    } else {
        0.8 * interval
    }
}

/// The jitter when none is configured: 1 s, or a tenth of a shorter interval.
pub fn default_jitter(interval: f64) -> f64 {
    DEFAULT_JITTER_SECONDS.min(interval / 10.0)
}

pub fn max_concurrency(v: i64) -> Result<usize, String> {
    match usize::try_from(v) {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&v) => Ok(n),
        _ => Err(format!("{v} must be between 1 and {MAX_CONCURRENCY}")),
    }
}

pub fn listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "{} is not an address and port such as `{DEFAULT_LISTEN}` or `[::]:9808`",
            show(s)
        )
    })
}

/// `server`: `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`; the port defaults to 53.
pub fn server(s: &str) -> Result<SocketAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    let addr = match bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, DNS_PORT),
        Err(_) => s.parse().map_err(|_| {
            format!(
                "{} is not an IP address, `IP:PORT` or `[IPv6]:PORT`",
                show(s)
            )
        })?,
    };
    if addr.port() == 0 {
        return Err(format!("{}: port 0 cannot be sent to", show(s)));
    }
    Ok(addr)
}

pub fn flavor(s: &str) -> Result<Flavor, String> {
    Flavor::parse(s).ok_or_else(|| {
        let names: Vec<String> = Flavor::ALL.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "unknown flavor {}, expected one of {}",
            show(s),
            names.join(", ")
        )
    })
}

/// One entry of `qtypes`.
pub fn qtype(s: &str) -> Result<Qtype, String> {
    [Qtype::A, Qtype::Aaaa]
        .into_iter()
        .find(|q| q.as_str() == s)
        .ok_or_else(|| format!("unknown record type {}, expected `A` or `AAAA`", show(s)))
}

/// A file path (`resolv_conf`, `kubeconfig`): not empty, and no NUL, which no path can hold.
pub fn file_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.contains('\0') {
        return Err(format!("{} contains a NUL character", show(s)));
    }
    Ok(PathBuf::from(s))
}

/// A name as an application passes it to getaddrinfo: labels of letters, digits, `-` and
/// `_`, at most one trailing dot (which makes it fully qualified).
pub fn dns_name(s: &str) -> Result<(), String> {
    let bare = s.strip_suffix('.').unwrap_or(s);
    if bare.is_empty() {
        return Err(format!("{} is not a DNS name", show(s)));
    }
    let len = bare.chars().count();
    if len > MAX_NAME_LEN {
        return Err(format!(
            "name is {len} characters long, at most {MAX_NAME_LEN} are allowed"
        ));
    }
    bare.split('.').try_for_each(|label| dns_label(s, label))
}

fn dns_label(name: &str, label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err(format!("{} has an empty label", show(name)));
    }
    let len = label.chars().count();
    if len > MAX_LABEL_LEN {
        return Err(format!(
            "label {} is {len} characters long, at most {MAX_LABEL_LEN} are allowed",
            show(label)
        ));
    }
    match label
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        Some(c) => Err(format!(
            "{} contains {}; labels allow letters, digits, `-` and `_`",
            show(name),
            show(&c.to_string())
        )),
        None => Ok(()),
    }
}

/// The `target` label value: 1 to 128 characters, no whitespace or control characters.
pub fn id(s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if len == 0 {
        return Err("must not be empty".to_string());
    }
    if len > MAX_ID_LEN {
        return Err(format!(
            "id is {len} characters long, at most {MAX_ID_LEN} are allowed"
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{} contains whitespace or a control character",
            show(s)
        ));
    }
    Ok(())
}

/// The id of a target that sets none: its name, which is already a valid DNS name.
pub fn id_from_name(name: &str) -> Result<String, String> {
    id_from("name", name)
}

/// The id of a target that sets none: the field `what` as written (a DNS name, a URL, an
/// address), which its own check has already kept free of whitespace.
pub fn id_from(what: &str, written: &str) -> Result<String, String> {
    let len = written.chars().count();
    if len > MAX_ID_LEN {
        return Err(format!(
            "{what} is {len} characters long, too long to be the id (at most {MAX_ID_LEN}); set a shorter `id`"
        ));
    }
    Ok(written.to_string())
}

/// User text for an error message: in backticks, control characters escaped, long text cut.
pub fn show(s: &str) -> String {
    let cut: String = s.chars().take(MAX_SHOWN).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("`{}{more}`", one_line(&cut))
}

/// `s` with control characters (line breaks, tabs, escapes) written as escapes.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_bounds() {
        assert_eq!(interval(0.5), Ok(0.5));
        assert_eq!(interval(86_400.0), Ok(86_400.0));
        assert_eq!(
            interval(0.0),
            Err("0 must be between 0.001 and 86400".into())
        );
        assert_eq!(
            interval(-1.0),
            Err("-1 must be between 0.001 and 86400".into())
        );
        assert_eq!(
            interval(86_400.5),
            Err("86400.5 must be between 0.001 and 86400".into())
        );
        assert!(interval(f64::NAN).is_err());
        assert!(interval(f64::INFINITY).is_err());
    }

    #[test]
    fn timeout_and_jitter_bounds() {
        assert_eq!(timeout(0.001), Ok(0.001));
        assert_eq!(timeout(0.0), Err("0 must be at least 0.001".into()));
        assert_eq!(timeout(f64::NAN), Err("NaN must be at least 0.001".into()));
        assert_eq!(jitter(0.0), Ok(0.0));
        assert_eq!(jitter(-0.5), Err("-0.5 must be at least 0".into()));
        assert!(jitter(f64::NAN).is_err());
    }

    #[test]
    fn computed_defaults_stay_below_the_interval() {
        assert_eq!(default_timeout(30.0), 25.0);
        assert_eq!(default_timeout(25.0), 20.0);
        assert_eq!(default_timeout(0.5), 0.4);
        assert_eq!(default_jitter(30.0), 1.0);
        assert_eq!(default_jitter(5.0), 0.5);
        for i in [
            MIN_SECONDS,
            0.01,
            1.0,
            10.0,
            25.0,
            25.001,
            MAX_INTERVAL_SECONDS,
        ] {
            assert!(default_timeout(i) < i && default_timeout(i) > 0.0, "{i}");
            assert!(default_jitter(i) < i, "{i}");
        }
    }

    #[test]
    fn concurrency_bounds() {
        assert_eq!(max_concurrency(1), Ok(1));
        assert_eq!(max_concurrency(10_000), Ok(10_000));
        assert_eq!(
            max_concurrency(0),
            Err("0 must be between 1 and 10000".into())
        );
        assert_eq!(
            max_concurrency(-3),
            Err("-3 must be between 1 and 10000".into())
        );
        assert!(max_concurrency(i64::MAX).is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen("0.0.0.0:9808"), Ok("0.0.0.0:9808".parse().unwrap()));
        assert_eq!(listen("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        assert_eq!(
            listen("localhost:9808"),
            Err(
                "`localhost:9808` is not an address and port such as `0.0.0.0:9808` or `[::]:9808`"
                    .into()
            )
        );
        assert!(listen("0.0.0.0").is_err());
    }

    #[test]
    fn server_forms() {
        let ok = |s: &str, want: &str| assert_eq!(server(s), Ok(want.parse().unwrap()), "{s}");
        ok("10.96.0.10", "10.96.0.10:53");
        ok("10.96.0.10:5353", "10.96.0.10:5353");
        ok("fd00::a", "[fd00::a]:53");
        ok("[fd00::a]", "[fd00::a]:53");
        ok("[fd00::a]:5353", "[fd00::a]:5353");
        assert_eq!(
            server("10.96.0.300"),
            Err("`10.96.0.300` is not an IP address, `IP:PORT` or `[IPv6]:PORT`".into())
        );
        assert_eq!(
            server("127.0.0.1:0"),
            Err("`127.0.0.1:0`: port 0 cannot be sent to".into())
        );
        assert!(server("kube-dns").is_err());
        assert!(server("fd00::a:53:").is_err());
        assert!(server("").is_err());
    }

    #[test]
    fn flavors_and_qtypes() {
        assert_eq!(flavor("musl-legacy"), Ok(Flavor::MuslLegacy));
        assert_eq!(
            flavor("Glibc"),
            Err(
                "unknown flavor `Glibc`, expected one of `glibc`, `musl`, `musl-legacy`, `go`"
                    .into()
            )
        );
        assert_eq!(qtype("AAAA"), Ok(Qtype::Aaaa));
        assert_eq!(
            qtype("MX"),
            Err("unknown record type `MX`, expected `A` or `AAAA`".into())
        );
    }

    #[test]
    fn dns_names() {
        for good in [
            "kubernetes.default",
            "example.com.",
            "a",
            "_sip._tcp.example.com",
            "x-1.Y2",
        ] {
            assert_eq!(dns_name(good), Ok(()), "{good}");
        }
        assert_eq!(dns_name(""), Err("`` is not a DNS name".into()));
        assert_eq!(dns_name("."), Err("`.` is not a DNS name".into()));
        assert_eq!(dns_name("a..b"), Err("`a..b` has an empty label".into()));
        assert_eq!(dns_name("a.b.."), Err("`a.b..` has an empty label".into()));
        assert_eq!(
            dns_name("exa mple.com"),
            Err("`exa mple.com` contains ` `; labels allow letters, digits, `-` and `_`".into())
        );
        assert_eq!(
            dns_name("a\tb"),
            Err("`a\\tb` contains `\\t`; labels allow letters, digits, `-` and `_`".into())
        );
        let label = "a".repeat(64);
        assert_eq!(
            dns_name(&format!("{label}.com")),
            Err(format!(
                "label `{label}` is 64 characters long, at most 63 are allowed"
            ))
        );
        assert_eq!(dns_name(&format!("{}.com", "a".repeat(63))), Ok(()));
        let long = ["a".repeat(63).as_str(); 4].join("."); // 255 characters
        assert_eq!(
            dns_name(&long),
            Err("name is 255 characters long, at most 253 are allowed".into())
        );
        let max = format!(
            "{}.{}",
            ["a".repeat(63).as_str(); 3].join("."),
            "b".repeat(61)
        );
        assert_eq!(max.len(), 253);
        assert_eq!(dns_name(&format!("{max}.")), Ok(()));
    }

    #[test]
    fn ids() {
        assert_eq!(id("kube-dns/A"), Ok(()));
        assert_eq!(id(&"x".repeat(128)), Ok(()));
        assert_eq!(id(""), Err("must not be empty".into()));
        assert_eq!(
            id(&"x".repeat(129)),
            Err("id is 129 characters long, at most 128 are allowed".into())
        );
        assert_eq!(
            id("a b"),
            Err("`a b` contains whitespace or a control character".into())
        );
        assert!(id("a\u{7}").is_err());
        assert_eq!(id_from_name("example.com"), Ok("example.com".into()));
        assert_eq!(
            id_from_name(&"a.".repeat(65)),
            Err("name is 130 characters long, too long to be the id (at most 128); set a shorter `id`".into())
        );
    }

    #[test]
    fn shown_text_is_one_line_and_short() {
        assert_eq!(show("a\nb"), "`a\\nb`");
        assert_eq!(show(&"é".repeat(90)), format!("`{}…`", "é".repeat(80)));
    }
}
