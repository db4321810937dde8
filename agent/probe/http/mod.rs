//! The edge of the request path: the Ingress hop (one HTTP(S) request, timed phase by phase)
//! and the load-balancer hop (the public name resolves to the LB, and the LB accepts a connect).
//!
//! # One request, up to five phases
//!
//! Every probe opens a fresh connection, so each phase is really paid:
//!
//! - `dns`: the URL's host becomes addresses through the target's [`Resolver`]. Absent (not
//!   zero) when the target dials a given address ([`HttpSpec::connect_to`], like curl's
//!   `--resolve`) or the URL names an IP. The first answer is dialled.
//! - `connect`: the TCP handshake; a failure is named by [`tcp::classify`](super::tcp::classify).
//! - `tls` (https only): the handshake with SNI set to the URL's host, whatever address was
//!   dialled, offering `h2` and `http/1.1` by ALPN; see [`tls`] for the certificate verdict.
//! - `ttfb`: from handing the request to hyper until the response head is parsed. Over
//!   HTTP/1.1 the request carries `Host` = the URL's host and `Connection: close`; over HTTP/2
//!   (when the server chose `h2`) the authority, after the client preface. The request fits one
//!   segment on a new connection, so this is the server's time to first byte plus one round
//!   trip. Plain http:// is always HTTP/1.1.
//! - `transfer`: reading the body, only when [`HttpSpec::expected_body`] has patterns.
//!
//! The phases are laps of one clock, so they add up to no more than the total. All share the
//! probe's deadline; a phase that hits it fails with `timeout` and is named in
//! [`HttpReport::failed_phase`]. With [`HttpSpec::follow_redirects`], each redirect is one more
//! request on a fresh connection ([`redirect`]) and its phases add to the same laps.
//!
//! # Verdicts
//!
//! A final response whose code is outside [`HttpSpec::expected_status`] fails with
//! `http_status`; the code is reported either way. A body that misses a pattern is
//! `http_body_mismatch`; more than [`redirect::MAX_REDIRECTS`] redirects is
//! `http_too_many_redirects`. hyper refusing the response, the server closing before a
//! response head, or a `Location` that is no http(s) URL, is `http_error`. A certificate
//! verdict fails the probe unless the target is `insecure`, in which case it is still computed
//! and reported in [`TlsInfo`].

pub mod cli;
mod exchange;
mod identity;
mod loadbalancer;
mod options;
pub mod redirect;
mod report;
mod request;
mod resolve;
pub mod tls;
mod url;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use tokio::time::Instant;

use super::{Detail, Failure, Outcome, TargetKey};
use crate::config::Schedule;

pub use cli::{CliArgs, CliError, cli};
pub use exchange::{BODY_LIMIT, Protocol};
pub use identity::{ClientCert, ClientCertError};
pub use loadbalancer::{LbExpected, LbReport, loadbalancer};
pub use options::{BodyPattern, Headers};
pub use report::format_utc;
pub(crate) use request::first_response;
pub use request::request;
pub use resolve::{Resolver, classify_gai};
pub use tls::{CaBundle, CaError, TlsInfo};
pub use url::{HttpUrl, Scheme, UrlError, parse_connect_to};

/// Response codes that count as success unless a target says otherwise.
pub const DEFAULT_EXPECTED_STATUS: RangeInclusive<u16> = 200..=399;

/// What to request and how. Plain data, compared by value when targets are reconciled.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    pub url: HttpUrl,
    /// Dial this address instead of resolving the URL's host; SNI and `Host` stay the host.
    pub connect_to: Option<SocketAddr>,
    /// Codes that count as success; any range matches. Default [`DEFAULT_EXPECTED_STATUS`].
    pub expected_status: Vec<RangeInclusive<u16>>,
    /// Complete the handshake whatever the certificate; its verdict is still reported.
    pub insecure: bool,
    /// The roots the certificate is verified against.
    pub ca: CaBundle,
    /// How the DNS phase resolves the URL's host.
    pub resolver: Resolver,
    /// `GET` unless a target says otherwise.
    pub method: Method,
    /// Sent with every request; values are never shown.
    pub headers: Headers,
    /// The request body; empty for none.
    pub body: Bytes,
    /// Every pattern must match the final response's body (its first [`BODY_LIMIT`] bytes).
    /// Empty: the body is not read. A `HEAD` has none to read.
    pub expected_body: Vec<BodyPattern>,
    /// Presented when an https:// server asks for a certificate (mTLS).
    pub client_cert: Option<ClientCert>,
    /// Follow redirects ([`redirect`]) and judge the final response; off, a 3xx is final.
    pub follow_redirects: bool,
    /// Whether a redirect to another host is followed. Off for discovered targets: whoever
    /// writes an Ingress controls its server's `Location`, and the agent dials only what the
    /// API or the config names. A redirect to another host is then the response judged.
    pub cross_host_redirects: bool,
}

impl HttpSpec {
    /// A GET of `url` through the system resolver, verified against the webpki roots,
    /// expecting a 2xx or 3xx, redirects not followed (as curl does; configured targets
    /// follow them by default, as blackbox_exporter does).
    pub fn new(url: HttpUrl) -> HttpSpec {
        HttpSpec {
            url,
            connect_to: None,
            expected_status: vec![DEFAULT_EXPECTED_STATUS],
            insecure: false,
            ca: CaBundle::WebPki,
            resolver: Resolver::System,
            method: Method::GET,
            headers: Headers::default(),
            body: Bytes::new(),
            expected_body: Vec::new(),
            client_cert: None,
            follow_redirects: false,
            cross_host_redirects: true,
        }
    }

    fn expects(&self, code: u16) -> bool {
        self.expected_status.iter().any(|r| r.contains(&code))
    }

    fn follows(&self, code: u16) -> bool {
        self.follow_redirects && redirect::is_redirect(code)
    }

    /// Whether a redirect to `url` may be followed: any host, or only the target's own.
    fn may_go_to(&self, url: &HttpUrl) -> bool {
        self.cross_host_redirects || url.host.eq_ignore_ascii_case(&self.url.host)
    }
}

/// A timed step of an edge probe. Becomes the `phase` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    Ttfb,
    /// Reading the body, only when [`HttpSpec::expected_body`] has patterns to match.
    Transfer,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Tls,
        Phase::Ttfb,
        Phase::Transfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Ttfb => "ttfb",
            Phase::Transfer => "transfer",
        }
    }
}

/// What one edge probe saw. Addresses and names are for humans (the CLI); only the phases,
/// the status code, the result and the expiry are meant for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReport {
    /// The URL requested, or `host:port` for the load-balancer hop.
    pub url: String,
    /// The method of the first request.
    pub method: Method,
    /// The address dialled; `None` when the probe failed before choosing one.
    pub address: Option<SocketAddr>,
    /// What the DNS phase returned; empty when it did not run or failed.
    pub answers: Vec<IpAddr>,
    pub result: Result<(), Failure>,
    /// The phase the failure happened in; `None` on success.
    pub failed_phase: Option<Phase>,
    /// The phases that ran, in order, the failed one last. A phase that did not run is absent;
    /// after redirects, each phase is the sum over every request.
    pub phases: Vec<(Phase, Duration)>,
    /// The final response code, whether expected or not; `None` when no response head arrived.
    pub status: Option<u16>,
    /// The protocol of the last request sent; `None` when none was.
    pub protocol: Option<Protocol>,
    /// The URLs redirects led to, in order; empty when none was followed.
    pub redirects: Vec<String>,
    /// `None` for http://, or when no certificate was received.
    pub tls: Option<TlsInfo>,
    /// From the start of the first phase to the verdict.
    pub total: Duration,
}

impl HttpReport {
    /// An empty report of `url`, for tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) fn for_tests(url: &str) -> HttpReport {
        HttpReport::new(url.to_string())
    }

    fn new(url: String) -> HttpReport {
        HttpReport {
            url,
            method: Method::GET,
            address: None,
            answers: Vec::new(),
            result: Ok(()),
            failed_phase: None,
            phases: Vec::new(),
            status: None,
            protocol: None,
            redirects: Vec::new(),
            tls: None,
            total: Duration::ZERO,
        }
    }

    /// The duration of `phase`, when it ran.
    pub fn phase(&self, phase: Phase) -> Option<Duration> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }

    /// The phases that ran to completion, for latency histograms: all but the failed one. A
    /// verdict on a complete response (its code, its body, its redirects) fails nothing timed,
    /// so after those every phase counts.
    pub fn completed_phases(&self) -> impl Iterator<Item = (Phase, Duration)> + '_ {
        let failed = match self.result {
            Err(
                Failure::HttpStatus | Failure::HttpBodyMismatch | Failure::HttpTooManyRedirects,
            ) => None,
            _ => self.failed_phase,
        };
        self.phases
            .iter()
            .copied()
            .filter(move |(p, _)| Some(*p) != failed)
    }

    /// The plain data the scheduler and `metrics.rs` use.
    pub fn outcome(self) -> Outcome {
        Outcome {
            result: self.result,
            duration: self.total,
            detail: Detail::Http(self),
        }
    }
}

/// Laps of one clock: consecutive phases never overlap and never exceed the total.
struct Laps {
    start: Instant,
    mark: Instant,
    phases: Vec<(Phase, Duration)>,
}

impl Laps {
    fn start() -> Laps {
        let now = Instant::now();
        Laps {
            start: now,
            mark: now,
            phases: Vec::new(),
        }
    }

    /// Ends `phase` now, whatever became of it. A phase run again (after a redirect) adds to
    /// its first lap.
    fn lap<T>(&mut self, phase: Phase, result: Result<T, Failure>) -> Result<T, (Phase, Failure)> {
        let now = Instant::now();
        let took = now - self.mark;
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, sum)) => *sum += took,
            None => self.phases.push((phase, took)),
        }
        self.mark = now;
        result.map_err(|failure| (phase, failure))
    }
}

/// Runs `work` unless `deadline` has passed; `timeout` when it passes first. A spent deadline
/// starts nothing, as tokio's `timeout_at` would still poll `work` once.
async fn within<F: Future>(deadline: Instant, work: F) -> Result<F::Output, Failure> {
    if Instant::now() >= deadline {
        return Err(Failure::Timeout);
    }
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_elapsed| Failure::Timeout)
}

/// An Ingress-hop target: one request, on a fresh connection each time.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTarget {
    pub key: TargetKey,
    pub spec: HttpSpec,
    pub schedule: Schedule,
}

/// A load-balancer-hop target: resolve the public host, check the answer, connect.
#[derive(Debug, Clone, PartialEq)]
pub struct LbTarget {
    pub key: TargetKey,
    pub host: String,
    pub port: u16,
    /// What the host must resolve to: the load balancer, or the CDN in front of it.
    pub expected: LbExpected,
    pub resolver: Resolver,
    pub schedule: Schedule,
}

impl LbTarget {
    /// One probe attempt, giving up at `deadline`.
    pub async fn run(&self, deadline: Instant) -> Outcome {
        loadbalancer(
            &self.host,
            self.port,
            &self.expected,
            &self.resolver,
            deadline,
        )
        .await
        .outcome()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A loopback server that accepts and then does what `serve` says with each connection.
    async fn server<F, Fut>(serve: F) -> SocketAddr
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serve(stream).await;
            }
        });
        address
    }

    /// Holds every connection open without a byte.
    async fn silent() -> SocketAddr {
        server(|stream| async move {
            tokio::spawn(async move {
                let _held = stream;
                std::future::pending::<()>().await;
            });
        })
        .await
    }

    /// Answers every connection with `reply` and closes it.
    async fn replying(reply: &'static [u8]) -> SocketAddr {
        server(move |mut stream| async move {
            let _ = stream.write_all(reply).await;
        })
        .await
    }

    fn spec(scheme: &str, address: SocketAddr) -> HttpSpec {
        let url = HttpUrl::parse(&format!("{scheme}://svc.test/")).unwrap();
        HttpSpec {
            connect_to: Some(address),
            ..HttpSpec::new(url)
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(300)
    }

    fn names(report: &HttpReport) -> Vec<Phase> {
        report.phases.iter().map(|(p, _)| *p).collect()
    }

    #[tokio::test]
    async fn a_silent_server_times_out_in_the_phase_it_stalls() {
        let address = silent().await;
        let tls = request(&spec("https", address), soon()).await;
        assert_eq!(tls.result, Err(Failure::Timeout));
        assert_eq!(tls.failed_phase, Some(Phase::Tls));
        assert_eq!(names(&tls), [Phase::Connect, Phase::Tls]);
        assert_eq!(tls.tls, None, "no certificate arrived");
        let plain = request(&spec("http", address), soon()).await;
        assert_eq!(plain.result, Err(Failure::Timeout));
        assert_eq!(plain.failed_phase, Some(Phase::Ttfb));
        assert_eq!(names(&plain), [Phase::Connect, Phase::Ttfb]);
        assert!(
            plain.total >= Duration::from_millis(250),
            "{:?}",
            plain.total
        );
    }

    #[tokio::test]
    async fn what_is_not_http_is_an_http_error_and_not_tls_a_handshake_failure() {
        let garbage = replying(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let plain = request(&spec("http", garbage), soon()).await;
        assert_eq!(plain.result, Err(Failure::HttpError));
        assert_eq!(plain.failed_phase, Some(Phase::Ttfb));
        assert_eq!(plain.status, None);
        let tls = request(&spec("https", garbage), soon()).await;
        assert_eq!(tls.result, Err(Failure::TlsHandshake));
        assert_eq!(tls.failed_phase, Some(Phase::Tls));
        let closing = replying(b"").await;
        let closed = request(&spec("http", closing), soon()).await;
        assert_eq!(closed.result, Err(Failure::HttpError));
    }

    #[tokio::test]
    async fn a_spent_deadline_starts_nothing() {
        let address = silent().await;
        let report = request(&spec("http", address), Instant::now()).await;
        assert_eq!(report.result, Err(Failure::Timeout));
        assert_eq!(report.failed_phase, Some(Phase::Connect));
        let dns = HttpSpec {
            connect_to: None,
            resolver: Resolver::Static(vec![address.ip()]),
            ..spec("http", address)
        };
        let report = request(&dns, Instant::now()).await;
        assert_eq!(report.result, Err(Failure::Timeout));
        assert_eq!(report.failed_phase, Some(Phase::Dns));
        assert_eq!(report.address, None);
    }

    #[tokio::test]
    async fn an_ip_in_the_url_is_dialled_without_a_dns_phase() {
        let address = replying(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let url = HttpUrl::parse(&format!("http://{address}/")).unwrap();
        let report = request(&HttpSpec::new(url), soon()).await;
        assert_eq!((report.result, report.status), (Ok(()), Some(204)));
        assert_eq!(names(&report), [Phase::Connect, Phase::Ttfb]);
        assert_eq!(report.address, Some(address));
    }

    #[tokio::test]
    async fn completed_phases_leave_out_the_one_that_failed() {
        let address = silent().await;
        let stalled = request(&spec("http", address), soon()).await;
        let completed: Vec<Phase> = stalled.completed_phases().map(|(p, _)| p).collect();
        assert_eq!(completed, [Phase::Connect]);
        let teapot = replying(b"HTTP/1.1 418 I'm a teapot\r\n\r\n").await;
        let wrong_code = request(&spec("http", teapot), soon()).await;
        assert_eq!(wrong_code.result, Err(Failure::HttpStatus));
        let completed: Vec<Phase> = wrong_code.completed_phases().map(|(p, _)| p).collect();
        assert_eq!(completed, [Phase::Connect, Phase::Ttfb]);
    }

    #[tokio::test]
    async fn a_redirect_to_no_http_url_is_an_http_error_and_is_final_when_not_followed() {
        let ftp = replying(b"HTTP/1.1 302 Found\r\nLocation: ftp://files.test/\r\n\r\n").await;
        let followed = HttpSpec {
            follow_redirects: true,
            ..spec("http", ftp)
        };
        let report = request(&followed, soon()).await;
        assert_eq!(report.result, Err(Failure::HttpError));
        assert_eq!(report.status, Some(302));
        let report = request(&spec("http", ftp), soon()).await;
        assert_eq!(report.result, Ok(()), "302 is expected by default");
        // No Location: the 3xx is the final response, followed or not.
        let bare = replying(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n").await;
        let report = request(
            &HttpSpec {
                follow_redirects: true,
                ..spec("http", bare)
            },
            soon(),
        )
        .await;
        assert_eq!((report.result, report.status), (Ok(()), Some(302)));
    }

    #[test]
    fn phases_are_named_for_labels() {
        let labels = Phase::ALL.map(Phase::as_str);
        assert_eq!(labels, ["dns", "connect", "tls", "ttfb", "transfer"]);
    }
}
