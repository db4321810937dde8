//! Probe kinds and the plain data they return.
//!
//! Each kind lives in its own file. A probe makes one attempt against one target and reports
//! what it saw as an [`Outcome`]; the scheduler owns time and `metrics.rs` owns the series.

pub mod dns;
pub mod http;
pub mod tcp;

use std::fmt;
use std::time::Duration;

/// A hop on the request path. Becomes the `hop` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hop {
    Dns,
    LoadBalancer,
    Ingress,
    Service,
    Pod,
}

impl Hop {
    pub const ALL: [Hop; 5] = [
        Hop::Dns,
        Hop::LoadBalancer,
        Hop::Ingress,
        Hop::Service,
        Hop::Pod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Dns => "dns",
            Hop::LoadBalancer => "loadbalancer",
            Hop::Ingress => "ingress",
            Hop::Service => "service",
            Hop::Pod => "pod",
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a running target across config reloads: the hop plus the `target` label value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub hop: Hop,
    pub id: String,
}

impl TargetKey {
    /// The namespace of a discovered target: the first segment of its id, which is
    /// `namespace/service:port` (Service and Pod hops), `namespace/ingress/host/path` (Ingress),
    /// `namespace/ingress/host` (load balancer) or `namespace/service` (a headless Service's
    /// lookup). `None` for an id without one, such as the cluster DNS lookups
    /// (`name@server`). Only the agent knows whether a key is discovered: a configured id may
    /// hold a `/` too (a URL), and the hop does not tell, as configured `tcp` targets have the
    /// Service and Pod hops.
    pub fn discovered_namespace(&self) -> Option<&str> {
        self.id
            .split_once('/')
            .map(|(ns, _)| ns)
            .filter(|ns| !ns.is_empty())
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hop, self.id)
    }
}

/// Why a probe failed. A closed set; `as_str` is the `result` label value.
///
/// DNS reasons describe the lookup's final answer; connection reasons describe a TCP connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// No answer in time: every query of a step timed out, or the probe ran out of time.
    Timeout,
    /// The name does not exist (NXDOMAIN on the last step tried).
    Nxdomain,
    /// The name exists but has no address of the asked types (NOERROR, no answers).
    Nodata,
    /// An answer came back without any address, e.g. a CNAME whose target was not resolved.
    NoAddress,
    /// The server answered SERVFAIL.
    Servfail,
    /// The server answered REFUSED (DNS) or the connection was refused with a RST (TCP).
    Refused,
    /// Another DNS error code (FORMERR, NOTIMP, …) or an unparseable reply.
    DnsError,
    /// ICMP unreachable, or no route to the address.
    Unreachable,
    /// The local configuration made the probe impossible, e.g. an unreadable resolv.conf.
    Config,
    /// DNS answered, but not with what it should: a headless Service's answer differs from its
    /// ready endpoints, or a public name does not point at its load balancer.
    DnsMismatch,
    /// The local kernel forbade the TCP connect (EACCES, EPERM): a `prohibit` route, an ICMPv6
    /// administratively-prohibited reply, or a policy hook on connect (cgroup BPF, LSM).
    Prohibited,
    /// A TCP connect failed for a reason none of the above names, mostly a local shortage
    /// (EADDRNOTAVAIL: no free source port; EMFILE, ENOBUFS, ENOMEM).
    ConnectError,
    /// A certificate of the server's chain is past its notAfter.
    TlsExpired,
    /// A certificate of the server's chain is before its notBefore.
    TlsNotYetValid,
    /// The server's certificate does not chain to a trusted CA.
    TlsUnknownCa,
    /// The server's certificate is not valid for the host name asked for (SNI).
    TlsHostnameMismatch,
    /// The TLS handshake failed for another reason: an alert, no shared protocol or cipher,
    /// a malformed certificate, the connection closed or not TLS at all; or the server sent an
    /// alert right after it (TLS 1.3 refusing a client certificate).
    TlsHandshake,
    /// The response code is not one the target expects.
    HttpStatus,
    /// No valid HTTP response head: the server closed first or did not speak HTTP; or a
    /// redirect's `Location` that is no http(s) URL.
    HttpError,
    /// The final response's body does not match every pattern the target expects.
    HttpBodyMismatch,
    /// More redirects than the probe follows (10, as blackbox_exporter).
    HttpTooManyRedirects,
    /// A connect failed that the cluster's NetworkPolicies deny to the agent's own pod: the
    /// expected result, left out of SLO ratios and verdicts. Never produced by a probe; the
    /// agent names a failed connect so when the policies say it must fail (`crate::policy`).
    PolicyDenied,
    /// The hop cannot be judged: nothing says what it should find (an Ingress with no
    /// load-balancer status and no expected-addresses annotation). Not a failure: left out of
    /// SLO ratios and verdicts, as `policy_denied` is.
    Unknown,
}

impl Failure {
    /// Every reason, for documentation checks and dashboards.
    pub const ALL: [Failure; 23] = [
        Failure::Timeout,
        Failure::Nxdomain,
        Failure::Nodata,
        Failure::NoAddress,
        Failure::Servfail,
        Failure::Refused,
        Failure::DnsError,
        Failure::Unreachable,
        Failure::Config,
        Failure::DnsMismatch,
        Failure::Prohibited,
        Failure::ConnectError,
        Failure::TlsExpired,
        Failure::TlsNotYetValid,
        Failure::TlsUnknownCa,
        Failure::TlsHostnameMismatch,
        Failure::TlsHandshake,
        Failure::HttpStatus,
        Failure::HttpError,
        Failure::HttpBodyMismatch,
        Failure::HttpTooManyRedirects,
        Failure::PolicyDenied,
        Failure::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Nxdomain => "nxdomain",
            Failure::Nodata => "nodata",
            Failure::NoAddress => "no_address",
            Failure::Servfail => "servfail",
            Failure::Refused => "refused",
            Failure::DnsError => "dns_error",
            Failure::Unreachable => "unreachable",
            Failure::Config => "config_error",
            Failure::DnsMismatch => "dns_mismatch",
            Failure::Prohibited => "prohibited",
            Failure::ConnectError => "connect_error",
            Failure::TlsExpired => "tls_expired",
            Failure::TlsNotYetValid => "tls_not_yet_valid",
            Failure::TlsUnknownCa => "tls_unknown_ca",
            Failure::TlsHostnameMismatch => "tls_hostname_mismatch",
            Failure::TlsHandshake => "tls_handshake",
            Failure::HttpStatus => "http_status",
            Failure::HttpError => "http_error",
            Failure::HttpBodyMismatch => "http_body_mismatch",
            Failure::HttpTooManyRedirects => "http_too_many_redirects",
            Failure::PolicyDenied => "policy_denied",
            Failure::Unknown => "unknown",
        }
    }
}

impl Failure {
    /// Whether the result says something is broken: every failure but `policy_denied` (what
    /// the NetworkPolicies ask for) and `unknown` (nothing to judge by). The verdict and the
    /// SLO ratios count only these.
    pub fn breaks(self) -> bool {
        !matches!(self, Failure::PolicyDenied | Failure::Unknown)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `result` label value of an outcome: `success` or a [`Failure`].
pub fn result_label(result: &Result<(), Failure>) -> &'static str {
    match result {
        Ok(()) => "success",
        Err(failure) => failure.as_str(),
    }
}

/// What one probe attempt observed. Plain data; `metrics.rs` turns it into series.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub result: Result<(), Failure>,
    /// Wall time of the attempt as the user of this hop would feel it.
    pub duration: Duration,
    /// What the specific probe kind saw beyond success and duration.
    pub detail: Detail,
}

/// Kind-specific observations.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    None,
    Dns(dns::DnsCycle),
    /// A connect round: one connect to a ClusterIP, or one per endpoint this node probes.
    Connects(Vec<tcp::Connect>),
    /// The Ingress and load-balancer hops: phases, response code and certificate.
    Http(http::HttpReport),
}

/// A target of any kind, as the scheduler runs it. One variant per probe kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Dns(dns::DnsCheck),
    Connect(tcp::ConnectTarget),
    Http(http::HttpTarget),
    LoadBalancer(http::LbTarget),
}

impl Target {
    /// The key the target is reconciled by across config reloads and discovery updates.
    pub fn key(&self) -> TargetKey {
        match self {
            Target::Dns(check) => check.target.key(),
            Target::Connect(target) => target.key.clone(),
            Target::Http(target) => target.key.clone(),
            Target::LoadBalancer(target) => target.key.clone(),
        }
    }

    /// When and for how long the target is probed.
    pub fn schedule(&self) -> crate::config::Schedule {
        match self {
            Target::Dns(check) => check.target.schedule,
            Target::Connect(target) => target.schedule,
            Target::Http(target) => target.schedule,
            Target::LoadBalancer(target) => target.schedule,
        }
    }

    /// One probe attempt, giving up at `deadline`.
    pub async fn run(&self, deadline: tokio::time::Instant) -> Outcome {
        match self {
            Target::Dns(check) => dns::probe(check, deadline).await,
            Target::Connect(target) => tcp::probe_all(target, deadline).await,
            Target::Http(target) => http::request(&target.spec, deadline).await.outcome(),
            Target::LoadBalancer(target) => target.run(deadline).await,
        }
    }
}
