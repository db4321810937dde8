//! The DNS hop: one lookup as a pod's stub resolver makes it, query for query.
//!
//! - [`resolv`]: resolv.conf parsed as glibc, musl and Go read it (pure).
//! - [`plan`]: the search-list candidates and when the walk stops, per flavor (pure).
//! - [`walk`]: sends and times every wire query of a lookup through a [`walk::Wire`].
//! - `accept`: which datagrams each resolver takes as a reply, and why it drops the rest
//!   (pure), counted in [`LookupReport::discarded`].
//! - [`wire`]: the real UDP and TCP wire on tokio sockets.
//!
//! hickory-resolver is not used: it cannot reproduce a pod's walk (its search semantics are
//! Go-like, it caches and chases CNAMEs) and it reports no per-query rcode or timing.

mod accept;
mod glibc;
mod golang;
mod linger;
mod log;
mod message;
mod musl;
mod pair;
pub mod plan;
pub mod resolv;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod table;
pub mod walk;
pub mod wire;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::Failure;

pub use accept::{Discard, Discards};
pub use resolv::{ResolvConf, ServerOffset};

/// Which stub resolver is emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavor {
    /// glibc's getaddrinfo (Debian, Ubuntu, RHEL, distroless images). The default.
    Glibc,
    /// musl 1.2.4 and later (Alpine 3.18 and later).
    Musl,
    /// musl before 1.2.4 (Alpine 3.17 and earlier): no TCP fallback on a truncated answer.
    MuslLegacy,
    /// Go's pure resolver (static `CGO_ENABLED=0` binaries, most controllers).
    Go,
}

impl Flavor {
    pub const ALL: [Flavor; 4] = [Flavor::Glibc, Flavor::Musl, Flavor::MuslLegacy, Flavor::Go];

    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Glibc => "glibc",
            Flavor::Musl => "musl",
            Flavor::MuslLegacy => "musl-legacy",
            Flavor::Go => "go",
        }
    }

    pub fn parse(s: &str) -> Option<Flavor> {
        Flavor::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn is_musl(self) -> bool {
        matches!(self, Flavor::Musl | Flavor::MuslLegacy)
    }
}

/// Which flavor to pick for a pod's image: `(image, flavor)`, the same rows as the table in
/// config/README.md and in `hopwatch probe dns --help`.
pub const IMAGE_FLAVORS: [(&str, Flavor); 6] = [
    ("Alpine 3.18 and later (musl 1.2.4+)", Flavor::Musl),
    (
        "Alpine 3.17 and earlier (musl 1.2.3 and older)",
        Flavor::MuslLegacy,
    ),
    ("Debian, Ubuntu", Flavor::Glibc),
    ("Red Hat UBI (ubi8, ubi9, ubi-minimal)", Flavor::Glibc),
    ("distroless base and cc (glibc inside)", Flavor::Glibc),
    (
        "distroless static or scratch, running a CGO_ENABLED=0 Go binary",
        Flavor::Go,
    ),
];

/// [`IMAGE_FLAVORS`] as plain text lines, for `--help`.
pub fn image_flavor_lines() -> String {
    let width = IMAGE_FLAVORS
        .iter()
        .map(|(i, _)| i.len())
        .max()
        .unwrap_or(0);
    IMAGE_FLAVORS
        .iter()
        .map(|(image, flavor)| format!("  {image:width$}  {flavor}\n"))
        .collect()
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record types one search step asks for, as getaddrinfo's address family decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryTypes {
    /// AF_INET, `no-aaaa`, or glibc's AI_ADDRCONFIG on an IPv4-only pod.
    A,
    /// AF_INET6.
    Aaaa,
    /// AF_UNSPEC: A and AAAA (the default).
    Both,
}

impl QueryTypes {
    pub fn types(self) -> &'static [Qtype] {
        match self {
            QueryTypes::A => &[Qtype::A],
            QueryTypes::Aaaa => &[Qtype::Aaaa],
            QueryTypes::Both => &[Qtype::A, Qtype::Aaaa],
        }
    }
}

/// A query type the walk sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Qtype {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
}

impl Qtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Qtype::A => "A",
            Qtype::Aaaa => "AAAA",
        }
    }
}

/// Whether the name was looked up as written (through the search list) or as an FQDN with a
/// trailing dot, the baseline amplification is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Search,
    Fqdn,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Search => "search",
            Mode::Fqdn => "fqdn",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// What became of one wire query: a reply's rcode, or none. Becomes the `rcode` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryStatus {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    /// Any other rcode.
    Other,
    /// No reply came before the resolver gave up waiting for it.
    Timeout,
    /// The network said the server cannot be reached (ICMP port or host unreachable).
    Unreachable,
    /// The send failed: the query never reached the wire. Not a wire query, so it is kept
    /// out of every wire count.
    SendError,
}

impl QueryStatus {
    pub const ALL: [QueryStatus; 10] = [
        QueryStatus::NoError,
        QueryStatus::FormErr,
        QueryStatus::ServFail,
        QueryStatus::NxDomain,
        QueryStatus::NotImp,
        QueryStatus::Refused,
        QueryStatus::Other,
        QueryStatus::Timeout,
        QueryStatus::Unreachable,
        QueryStatus::SendError,
    ];

    /// CoreDNS's rcode strings, plus `TIMEOUT` and `UNREACHABLE` when no reply came, and
    /// `SEND_ERROR` for a query that never left.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryStatus::NoError => "NOERROR",
            QueryStatus::FormErr => "FORMERR",
            QueryStatus::ServFail => "SERVFAIL",
            QueryStatus::NxDomain => "NXDOMAIN",
            QueryStatus::NotImp => "NOTIMP",
            QueryStatus::Refused => "REFUSED",
            QueryStatus::Other => "OTHER",
            QueryStatus::Timeout => "TIMEOUT",
            QueryStatus::Unreachable => "UNREACHABLE",
            QueryStatus::SendError => "SEND_ERROR",
        }
    }

    pub fn from_rcode(rcode: u16) -> QueryStatus {
        match rcode {
            0 => QueryStatus::NoError,
            1 => QueryStatus::FormErr,
            2 => QueryStatus::ServFail,
            3 => QueryStatus::NxDomain,
            4 => QueryStatus::NotImp,
            5 => QueryStatus::Refused,
            _ => QueryStatus::Other,
        }
    }
}

impl Serialize for QueryStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One query the resolver sent (or tried to: see [`QueryStatus::SendError`]), and how it
/// was answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryRecord {
    /// The fully qualified name asked, with its trailing dot.
    pub qname: String,
    pub qtype: Qtype,
    pub transport: Transport,
    #[serde(skip)]
    pub server: SocketAddr,
    #[serde(rename = "rcode")]
    pub status: QueryStatus,
    /// Time from sending to the reply, or to giving up on it.
    #[serde(rename = "duration_seconds", serialize_with = "serialize_seconds")]
    pub duration: Duration,
    /// Records in the answer section.
    #[serde(skip)]
    pub answers: u16,
    /// The reply had the TC bit set.
    #[serde(skip)]
    pub truncated: bool,
}

/// One lookup: every query it sent and what the application got back.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupReport {
    pub name: String,
    pub mode: Mode,
    pub flavor: Flavor,
    pub result: Result<(), Failure>,
    /// Addresses the application would get, in answer order.
    pub addresses: Vec<IpAddr>,
    pub duration: Duration,
    pub queries: Vec<QueryRecord>,
    /// Datagrams the lookup's sockets read and dropped, as the emulated resolver drops them:
    /// wrong ID, wrong question, wrong source, malformed.
    pub discarded: Discards,
}

impl LookupReport {
    /// Queries of the given status.
    pub fn count(&self, status: QueryStatus) -> usize {
        self.queries.iter().filter(|q| q.status == status).count()
    }

    /// The queries that reached the wire: every one but those whose send failed.
    pub fn wire(&self) -> impl Iterator<Item = &QueryRecord> {
        self.queries
            .iter()
            .filter(|q| q.status != QueryStatus::SendError)
    }

    /// How many queries reached the wire.
    pub fn wire_count(&self) -> usize {
        self.wire().count()
    }
}

/// A DNS target as the scheduler runs it: what to look up, which server it names, and,
/// for a headless Service, the addresses the answer must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    pub target: crate::config::DnsTarget,
    /// The bounded `server` label: `resolv.conf`, `static` for a configured server, the
    /// cluster DNS Service's name for its ClusterIP, or a replica's pod name.
    pub server: String,
    /// The answer must be exactly these addresses (an empty set: no address at all).
    pub expect: Option<Vec<IpAddr>>,
    /// The resolv.conf last read, kept parsed while its text stays the same.
    pub conf: ConfCache,
}

/// A target's resolv.conf, parsed, kept until the file's text changes: the resolver state
/// that lives with a configuration (Go's rotate counter) lasts as long as it does, as in a
/// long-running process, and starts over with a new file, as Go's reload does. Clones share
/// it, so it survives the scheduler cloning the target for every attempt.
#[derive(Debug, Clone, Default)]
pub struct ConfCache(Arc<Mutex<Option<(String, ResolvConf)>>>);

impl ConfCache {
    /// The configuration of `text`: the kept one when the text is unchanged.
    pub fn get(&self, text: &str, flavor: Flavor) -> ResolvConf {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match kept.as_ref() {
            Some((old, conf)) if old == text => conf.clone(),
            _ => {
                let conf = ResolvConf::parse(text, flavor);
                *kept = Some((text.to_string(), conf.clone()));
                conf
            }
        }
    }
}

/// State, not configuration: a reloaded target equal in every setting keeps running with it.
impl PartialEq for ConfCache {
    fn eq(&self, _: &ConfCache) -> bool {
        true
    }
}

impl DnsCheck {
    /// A target from the config file.
    pub fn configured(target: crate::config::DnsTarget) -> DnsCheck {
        let server = if target.server.is_some() {
            "static"
        } else {
            "resolv.conf"
        };
        DnsCheck {
            target,
            server: server.to_string(),
            expect: None,
            conf: ConfCache::default(),
        }
    }
}

/// One probe cycle of a DNS target: the lookup as written, then the same name as an FQDN.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCycle {
    /// The `server` label of the check.
    pub server: String,
    pub search: LookupReport,
    /// `None` when the name is already written as an FQDN (the lookup above is its own
    /// baseline), or when the probe ran out of time before the baseline could run.
    pub fqdn: Option<LookupReport>,
}

impl DnsCycle {
    /// Search-mode wire queries per FQDN-mode wire query: 1 for a name written as an FQDN,
    /// `None` when the baseline did not run or sent nothing.
    pub fn amplification(&self) -> Option<f64> {
        if self.search.name.ends_with('.') {
            return Some(1.0);
        }
        let fqdn = self.fqdn.as_ref()?.wire_count();
        (fqdn > 0).then(|| self.search.wire_count() as f64 / fqdn as f64)
    }
}

pub(crate) fn serialize_seconds<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// How to look a name up: which resolver to emulate and against which configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupOptions {
    pub conf: ResolvConf,
    pub flavor: Flavor,
    pub qtypes: QueryTypes,
    /// Send every query here instead of to the resolv.conf nameservers.
    pub server: Option<SocketAddr>,
}

/// Looks `name` up as the emulated resolver would, on the real network, giving up at `deadline`.
pub async fn lookup(
    name: &str,
    opts: &LookupOptions,
    deadline: tokio::time::Instant,
) -> LookupReport {
    walk::lookup(&wire::NetWire, name, opts, deadline).await
}

/// Looks `name` up for its answer only, returning as soon as the application would have it:
/// replies still due then (musl's other nameservers) are not waited for. An HTTP probe's DNS
/// phase, which must not last longer than the application's lookup.
pub async fn resolve(
    name: &str,
    opts: &LookupOptions,
    deadline: tokio::time::Instant,
) -> LookupReport {
    walk::answer(&wire::NetWire, name, opts, deadline).await
}

/// One probe cycle of a configured DNS target: the name as written, then as an FQDN.
///
/// The resolv.conf is read every cycle, as glibc and musl re-read it when it changes, and
/// parsed again only when its text changed (see [`ConfCache`]). The
/// probe's duration and result are those of the lookup as written; the FQDN lookup runs after
/// it, when time is left, as the baseline for the amplification ratio.
///
/// The read is a plain blocking one: resolv.conf is a few hundred bytes on a local file system
/// (kubelet's own directory, bind-mounted into the pod), read in microseconds, while handing it
/// to tokio's blocking pool costs two thread hand-offs per probe, and a pool thread.
pub async fn probe(check: &DnsCheck, deadline: tokio::time::Instant) -> super::Outcome {
    let target = &check.target;
    let Ok(text) = std::fs::read_to_string(&target.resolv_conf) else {
        return super::Outcome {
            result: Err(Failure::Config),
            duration: Duration::ZERO,
            detail: super::Detail::None,
        };
    };
    let opts = LookupOptions {
        conf: check.conf.get(&text, target.flavor),
        flavor: target.flavor,
        qtypes: target.qtypes,
        server: target.server,
    };
    let mut search = lookup(&target.name, &opts, deadline).await;
    search.mode = Mode::Search;
    let fqdn = if target.name.ends_with('.') {
        None
    } else if tokio::time::Instant::now() < deadline {
        Some(lookup(&format!("{}.", target.name), &opts, deadline).await)
    } else {
        None
    };
    let result = match &check.expect {
        Some(expected) => matches_expected(&search, expected),
        None => search.result,
    };
    let cycle = DnsCycle {
        server: check.server.clone(),
        search,
        fqdn,
    };
    super::Outcome {
        result,
        duration: cycle.search.duration,
        detail: super::Detail::Dns(cycle),
    }
}

/// A lookup agrees with the expected set when it returned exactly those addresses, or failed
/// with NXDOMAIN or NODATA when none is expected.
fn matches_expected(report: &LookupReport, expected: &[IpAddr]) -> Result<(), Failure> {
    let got: std::collections::BTreeSet<&IpAddr> = report.addresses.iter().collect();
    let want: std::collections::BTreeSet<&IpAddr> = expected.iter().collect();
    match report.result {
        Ok(()) if got == want => Ok(()),
        Err(Failure::Nxdomain | Failure::Nodata) if want.is_empty() => Ok(()),
        Ok(()) | Err(Failure::Nxdomain | Failure::Nodata) => Err(Failure::DnsMismatch),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_keeps_its_configuration_and_rotate_counter_until_the_file_changes() {
        let cache = ConfCache::default();
        let attempt = cache.clone();
        let text = "nameserver 10.0.0.1\nnameserver 10.0.0.2\noptions rotate\n";
        assert_eq!(cache.get(text, Flavor::Go).server_offset.next(), 0);
        assert_eq!(attempt.get(text, Flavor::Go).server_offset.next(), 1);
        let changed = text.replace("10.0.0.2", "10.0.0.3");
        let conf = attempt.get(&changed, Flavor::Go);
        assert_eq!(conf.nameservers[1], SocketAddr::from(([10, 0, 0, 3], 53)));
        assert_eq!(conf.server_offset.next(), 0);
    }
}
