//! The load-balancer hop: does the public name lead to the Ingress's load balancer, and does
//! the load balancer accept a connection?
//!
//! The expected addresses are the Ingress's `status.loadBalancer` IPs. A DNS answer without
//! any of them is `dns_mismatch`: a stale record, a split-horizon view, or a name pointing
//! straight at a node or pod. The connect goes to the load balancer either way, so a mismatch
//! and an unreachable load balancer can be told apart in the report; the result is the first
//! failure in the order dns, mismatch, connect.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::{HttpReport, Laps, Phase, Resolver};
use crate::probe::{Failure, Outcome, tcp};

/// What the load-balancer hop saw: the addresses it expected, and the probe itself (phases
/// `dns` and `connect`, no status, no TLS).
#[derive(Debug, Clone, PartialEq)]
pub struct LbReport {
    pub expected: Vec<IpAddr>,
    pub report: HttpReport,
}

/// Resolves `host` with `resolver`, checks the answer holds one of `expected`, then connects to
/// the load balancer on `port`: the expected address the answer holds, else the first expected.
/// No expected address at all (the Ingress has no load balancer yet) is `config_error`.
pub async fn loadbalancer(
    host: &str,
    port: u16,
    expected: &[IpAddr],
    resolver: &Resolver,
    deadline: Instant,
) -> LbReport {
    let mut report = HttpReport::new(format!("{host}:{port}"));
    let mut laps = Laps::start();
    let mut failures = Vec::new();
    match laps.lap(Phase::Dns, resolver.resolve(host, deadline).await) {
        Ok(answers) => report.answers = answers,
        Err(failed) => failures.push(failed),
    }
    let matched = expected.iter().find(|ip| report.answers.contains(ip));
    if matched.is_none() && !report.answers.is_empty() {
        failures.push((Phase::Dns, Failure::DnsMismatch));
    }
    if let Some(&ip) = matched.or(expected.first()) {
        let address = SocketAddr::new(ip, port);
        report.address = Some(address);
        let connect = tcp::connect(address, deadline).await.result;
        if let Err(failed) = laps.lap(Phase::Connect, connect) {
            failures.push(failed);
        }
    }
    if expected.is_empty() {
        report.result = Err(Failure::Config);
    } else if let Some(&(phase, failure)) = failures.first() {
        report.result = Err(failure);
        report.failed_phase = Some(phase);
    }
    report.phases = laps.phases;
    report.total = laps.start.elapsed();
    LbReport {
        expected: expected.to_vec(),
        report,
    }
}

impl LbReport {
    /// The plain data the scheduler and `metrics.rs` use.
    pub fn outcome(self) -> Outcome {
        self.report.outcome()
    }

    /// The expected load balancer, then the probe as [`HttpReport::render_text`] shows it; the
    /// DNS answers are on its `dns` line, e.g. a pod IP where the load balancer should be.
    pub fn render_text(&self) -> String {
        let expected: Vec<String> = self.expected.iter().map(|ip| ip.to_string()).collect();
        let body = self.report.render_text();
        // The report's first line is `GET <url>`, which this hop does not send.
        let (_, rest) = body.split_once('\n').unwrap_or_default();
        format!(
            "load balancer {} (expected {})\n{rest}",
            self.report.url,
            if expected.is_empty() {
                "none".to_string()
            } else {
                expected.join(", ")
            }
        )
    }

    /// [`HttpReport::to_json`] with the `expected` addresses added.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.report.to_json();
        json["expected"] = self.expected.iter().map(|ip| ip.to_string()).collect();
        json
    }
}
