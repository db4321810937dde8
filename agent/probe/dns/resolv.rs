//! resolv.conf, read the way each stub resolver reads it.
//!
//! The three resolvers agree on the file's shape but not on its details: the caps on `ndots`,
//! `timeout` and `attempts`, which options exist, and how long a line may be. Parsing is pure
//! and never fails: like the resolvers, unknown keywords and options are ignored, and what was
//! ignored is listed in [`ResolvConf::notes`] so a person can see it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::Flavor;

/// At most this many nameservers are used by every flavor (`MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;

/// musl reads lines into a 256-byte buffer and skips any line that does not fit.
const MUSL_MAX_LINE: usize = 254;

/// A parsed resolv.conf, as one flavor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvConf {
    /// Port 53 unless overridden by the caller.
    pub nameservers: Vec<SocketAddr>,
    /// Search domains without trailing dots, in order. `"."` stays in (glibc treats it as the root).
    pub search: Vec<String>,
    pub ndots: u8,
    /// Per-try wait (glibc, Go) or total budget (musl).
    pub timeout: Duration,
    pub attempts: u8,
    pub rotate: bool,
    pub single_request: bool,
    pub single_request_reopen: bool,
    pub edns0: bool,
    pub use_vc: bool,
    pub no_aaaa: bool,
    pub no_tld_query: bool,
    pub trust_ad: bool,
    /// What the flavor ignored or clamped, for people reading `hopwatch probe dns`.
    pub notes: Vec<String>,
    /// Go's `options rotate` counter. It lives as long as this parsed configuration and its
    /// clones, as Go's lives as long as its `dnsConfig`: a fresh parse starts at 0.
    pub server_offset: ServerOffset,
}

/// Go's `dnsConfig.soffset`: with `rotate`, every `tryOneName` (one per query type and name)
/// takes the next value and starts at that nameserver, so in a fresh process the A and AAAA
/// of the first step start at different servers. Clones share the counter.
#[derive(Debug, Clone, Default)]
pub struct ServerOffset(Arc<AtomicU32>);

impl ServerOffset {
    /// The next offset, from 0, wrapping as Go's `uint32` does.
    pub fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// State, not configuration: two configurations are equal whatever their counters read.
impl PartialEq for ServerOffset {
    fn eq(&self, _: &ServerOffset) -> bool {
        true
    }
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            rotate: false,
            single_request: false,
            single_request_reopen: false,
            edns0: false,
            use_vc: false,
            no_aaaa: false,
            no_tld_query: false,
            trust_ad: false,
            notes: Vec::new(),
            server_offset: ServerOffset::default(),
        }
    }
}

/// The limits a flavor applies to numeric options.
struct Caps {
    ndots: u32,
    timeout: u32,
    attempts: u32,
}

fn caps(flavor: Flavor) -> Caps {
    match flavor {
        Flavor::Glibc => Caps {
            ndots: 15,
            timeout: 30,
            attempts: 5,
        },
        Flavor::Musl | Flavor::MuslLegacy => Caps {
            ndots: 15,
            timeout: 60,
            attempts: 10,
        },
        Flavor::Go => Caps {
            ndots: 15,
            timeout: u32::MAX,
            attempts: u32::MAX,
        },
    }
}

impl ResolvConf {
    /// Parses resolv.conf text as `flavor` reads it. With no `nameserver` line, every flavor
    /// falls back to 127.0.0.1.
    pub fn parse(text: &str, flavor: Flavor) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for (number, line) in text.lines().enumerate() {
            conf.parse_line(number + 1, line, flavor);
        }
        if conf.nameservers.is_empty() {
            conf.nameservers
                .push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        conf
    }

    fn parse_line(&mut self, number: usize, line: &str, flavor: Flavor) {
        if flavor.is_musl() && line.len() > MUSL_MAX_LINE {
            self.notes.push(format!(
                "line {number}: {} characters, longer than musl reads; ignored",
                line.len()
            ));
            return;
        }
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else { return };
        if keyword.starts_with('#') || keyword.starts_with(';') {
            return;
        }
        let rest: Vec<&str> = words.collect();
        match keyword {
            "nameserver" => self.add_nameserver(number, rest.first().copied()),
            "search" => self.search = normalize_search(&rest, flavor),
            "domain" => self.search = normalize_search(&rest[..rest.len().min(1)], flavor),
            "options" => rest
                .iter()
                .for_each(|option| self.set_option(option, flavor)),
            _ => {}
        }
    }

    fn add_nameserver(&mut self, number: usize, word: Option<&str>) {
        let Some(word) = word else { return };
        let Ok(ip) = word.split('%').next().unwrap_or(word).parse::<IpAddr>() else {
            self.notes.push(format!(
                "line {number}: nameserver {word:?} is not an IP address; ignored"
            ));
            return;
        };
        if self.nameservers.len() == MAX_NAMESERVERS {
            self.notes.push(format!(
                "line {number}: more than {MAX_NAMESERVERS} nameservers; {ip} ignored"
            ));
            return;
        }
        self.nameservers.push(SocketAddr::new(ip, 53));
    }

    fn set_option(&mut self, option: &str, flavor: Flavor) {
        let caps = caps(flavor);
        if let Some((name, value)) = option.split_once(':') {
            let Some(n) = leading_number(value) else {
                return;
            };
            match name {
                "ndots" => self.ndots = clamp(n, 0, caps.ndots) as u8,
                "timeout" => {
                    self.timeout = Duration::from_secs(u64::from(clamp(n, 1, caps.timeout)))
                }
                "attempts" => self.attempts = clamp(n, 1, caps.attempts).min(255) as u8,
                _ => self
                    .notes
                    .push(format!("option {option:?} is not known; ignored")),
            }
            return;
        }
        if flavor.is_musl() {
            self.notes
                .push(format!("option {option:?} is ignored by musl"));
            return;
        }
        let (name, on) = match option.strip_prefix('-') {
            Some(name) if flavor == Flavor::Glibc => (name, false),
            _ => (option, true),
        };
        let flag = match (name, flavor) {
            ("rotate", _) => &mut self.rotate,
            ("single-request", _) => &mut self.single_request,
            ("single-request-reopen", _) => &mut self.single_request_reopen,
            ("edns0", Flavor::Glibc) => &mut self.edns0,
            ("use-vc", _) | ("usevc" | "tcp", Flavor::Go) => &mut self.use_vc,
            ("no-aaaa", Flavor::Glibc) => &mut self.no_aaaa,
            ("no-tld-query" | "no_tld_query", Flavor::Glibc) => &mut self.no_tld_query,
            ("trust-ad", _) => &mut self.trust_ad,
            ("edns0" | "no-reload", _) => return,
            _ => {
                self.notes.push(format!(
                    "option {option:?} is not known to {flavor}; ignored"
                ));
                return;
            }
        };
        *flag = on;
    }
}

/// The digits at the start of `value`, as `atoi` and `strtoul` read them. A value too large for
/// `u32` saturates, which every cap below then clamps.
fn leading_number(value: &str) -> Option<u32> {
    let digits: &str = &value[..value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len())];
    if digits.is_empty() {
        return None;
    }
    Some(digits.parse::<u32>().unwrap_or(u32::MAX))
}

fn clamp(n: u32, min: u32, max: u32) -> u32 {
    n.clamp(min, max)
}

/// Strips trailing dots. Go drops the root domain from the list; glibc and musl keep it.
fn normalize_search(domains: &[&str], flavor: Flavor) -> Vec<String> {
    domains
        .iter()
        .filter(|d| !(flavor == Flavor::Go && **d == "."))
        .map(|d| {
            if *d == "." {
                ".".to_string()
            } else {
                d.trim_end_matches('.').to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET: &str = "search payments.svc.cluster.local svc.cluster.local cluster.local ec2.internal\n\
                           nameserver 10.96.0.10\n\
                           options ndots:5\n";

    #[test]
    fn reads_a_kubelet_file() {
        for flavor in Flavor::ALL {
            let conf = ResolvConf::parse(KUBELET, flavor);
            assert_eq!(
                conf.nameservers,
                vec![SocketAddr::from(([10, 96, 0, 10], 53))],
                "{flavor}"
            );
            assert_eq!(conf.search.len(), 4, "{flavor}");
            assert_eq!(conf.ndots, 5, "{flavor}");
            assert_eq!(conf.timeout, Duration::from_secs(5), "{flavor}");
            assert_eq!(conf.attempts, 2, "{flavor}");
        }
    }

    #[test]
    fn caps_differ_per_flavor() {
        let text = "options ndots:20 timeout:100 attempts:9\n";
        let table = [
            (Flavor::Glibc, 15, 30, 5),
            (Flavor::Musl, 15, 60, 9),
            (Flavor::MuslLegacy, 15, 60, 9),
            (Flavor::Go, 15, 100, 9),
        ];
        for (flavor, ndots, timeout, attempts) in table {
            let conf = ResolvConf::parse(text, flavor);
            assert_eq!(
                (conf.ndots, conf.timeout.as_secs(), conf.attempts),
                (ndots, timeout, attempts),
                "{flavor}"
            );
        }
    }

    #[test]
    fn zero_timeout_and_attempts_are_raised_to_one() {
        let conf = ResolvConf::parse("options timeout:0 attempts:0 ndots:0\n", Flavor::Glibc);
        assert_eq!(
            (conf.timeout.as_secs(), conf.attempts, conf.ndots),
            (1, 1, 0)
        );
    }

    #[test]
    fn last_search_or_domain_line_wins() {
        let conf = ResolvConf::parse(
            "search a.example b.example\ndomain c.example\n",
            Flavor::Glibc,
        );
        assert_eq!(conf.search, vec!["c.example"]);
        let conf = ResolvConf::parse(
            "domain c.example\nsearch a.example. b.example\n",
            Flavor::Glibc,
        );
        assert_eq!(conf.search, vec!["a.example", "b.example"]);
    }

    #[test]
    fn at_most_three_nameservers() {
        let text =
            "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver fd00::3\nnameserver 10.0.0.4\n";
        let conf = ResolvConf::parse(text, Flavor::Glibc);
        assert_eq!(conf.nameservers.len(), 3);
        assert_eq!(conf.nameservers[2], "[fd00::3]:53".parse().unwrap());
        assert_eq!(conf.notes.len(), 1);
    }

    #[test]
    fn no_nameserver_means_loopback() {
        let conf = ResolvConf::parse("search x\n", Flavor::Musl);
        assert_eq!(
            conf.nameservers,
            vec![SocketAddr::from(([127, 0, 0, 1], 53))]
        );
    }

    #[test]
    fn options_known_per_flavor() {
        let text =
            "options rotate edns0 single-request-reopen use-vc no-aaaa no-tld-query trust-ad\n";
        let glibc = ResolvConf::parse(text, Flavor::Glibc);
        assert!(glibc.rotate && glibc.edns0 && glibc.single_request_reopen && glibc.use_vc);
        assert!(glibc.no_aaaa && glibc.no_tld_query && glibc.trust_ad);
        let musl = ResolvConf::parse(text, Flavor::Musl);
        assert!(!musl.rotate && !musl.edns0 && !musl.use_vc && !musl.no_aaaa);
        let go = ResolvConf::parse(text, Flavor::Go);
        assert!(go.rotate && go.use_vc && go.single_request_reopen && !go.edns0 && !go.no_aaaa);
        assert!(ResolvConf::parse("options tcp\n", Flavor::Go).use_vc);
    }

    #[test]
    fn glibc_negates_with_a_leading_dash() {
        let conf = ResolvConf::parse("options rotate\noptions -rotate\n", Flavor::Glibc);
        assert!(!conf.rotate);
    }

    #[test]
    fn musl_ignores_a_long_search_line() {
        let long = format!(
            "search {}\n",
            (0..30)
                .map(|i| format!("ns{i}.svc.cluster.local"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(long.len() > 256);
        assert_eq!(
            ResolvConf::parse(&long, Flavor::Musl).search,
            Vec::<String>::new()
        );
        assert_eq!(ResolvConf::parse(&long, Flavor::Glibc).search.len(), 30);
    }

    #[test]
    fn go_drops_the_root_from_the_search_list() {
        assert_eq!(
            ResolvConf::parse("search a .\n", Flavor::Go).search,
            vec!["a"]
        );
        assert_eq!(
            ResolvConf::parse("search a .\n", Flavor::Glibc).search,
            vec!["a", "."]
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for text in [
            "",
            "\n\n",
            "options ndots:",
            "options ndots:x",
            "nameserver",
            "options timeout:99999999999999",
            "search\n",
            "\u{0}\u{ff}",
        ] {
            for flavor in Flavor::ALL {
                let _ = ResolvConf::parse(text, flavor);
            }
        }
        let conf = ResolvConf::parse("options timeout:99999999999999\n", Flavor::Glibc);
        assert_eq!(conf.timeout.as_secs(), 30);
    }
}
