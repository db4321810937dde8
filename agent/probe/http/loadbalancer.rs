//! The load-balancer hop: does the public name lead to the Ingress's load balancer, and does
//! the load balancer accept a connection?
//!
//! The expected addresses are the Ingress's `status.loadBalancer` IPs, and the addresses its
//! hostnames resolve to (cloud load balancers such as AWS ELB publish a name, not an IP); or,
//! for a CDN or WAF in front, the addresses and names the Ingress's annotation lists instead.
//! A DNS answer without any of them is `dns_mismatch`: a stale record, a split-horizon view, or
//! a name pointing straight at a node or pod. The connect goes to the expected address either
//! way, so a mismatch and an unreachable load balancer can be told apart in the report; the
//! result is the first failure in the order dns, mismatch, connect. With nothing expected at
//! all (no status, no annotation) the hop is `unknown`: there is nothing to judge by.

use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use super::{HttpReport, Laps, Phase, Resolver};
use crate::probe::{Failure, Outcome, tcp};

/// What the public name must resolve to: these addresses, or any address of these names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbExpected {
    pub addresses: Vec<IpAddr>,
    /// Absolute DNS names (`lb-1.elb.amazonaws.com.`), resolved at each probe as the public
    /// name is: their addresses change as the cloud scales the load balancer.
    pub names: Vec<String>,
}

impl LbExpected {
    /// Expected addresses only.
    pub fn addresses(addresses: &[IpAddr]) -> LbExpected {
        LbExpected {
            addresses: addresses.to_vec(),
            names: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.names.is_empty()
    }

    /// The addresses plus every address of the names, in that order, without repeats; or the
    /// first name's failure when there is no address at all.
    async fn resolve(
        &self,
        resolver: &Resolver,
        deadline: Instant,
    ) -> Result<Vec<IpAddr>, Failure> {
        let mut all = self.addresses.clone();
        let mut failed = None;
        for name in &self.names {
            match resolver.resolve(name, deadline).await {
                Ok(ips) => {
                    for ip in ips {
                        if !all.contains(&ip) {
                            all.push(ip);
                        }
                    }
                }
                Err(failure) => failed = failed.or(Some(failure)),
            }
        }
        match failed {
            Some(failure) if all.is_empty() => Err(failure),
            _ => Ok(all),
        }
    }
}

/// What the load-balancer hop saw: the addresses it expected (the names' resolved), and the
/// probe itself (phases `dns` and `connect`, no status, no TLS).
#[derive(Debug, Clone, PartialEq)]
pub struct LbReport {
    pub expected: Vec<IpAddr>,
    /// The expected names, whose addresses are in `expected`.
    pub names: Vec<String>,
    pub report: HttpReport,
}

/// Resolves `host` and the expected names with `resolver`, checks the answer holds one of the
/// expected addresses, then connects on `port` to the expected address the answer holds, else
/// the first expected. Nothing expected at all is `unknown`, with no query and no connect.
pub async fn loadbalancer(
    host: &str,
    port: u16,
    expected: &LbExpected,
    resolver: &Resolver,
    deadline: Instant,
) -> LbReport {
    let mut report = HttpReport::new(format!("{host}:{port}"));
    let mut lb = LbReport {
        expected: expected.addresses.clone(),
        names: expected.names.clone(),
        report: HttpReport::new(String::new()),
    };
    if expected.is_empty() {
        report.result = Err(Failure::Unknown);
        lb.report = report;
        return lb;
    }
    let mut laps = Laps::start();
    let mut failures = Vec::new();
    let dns = async {
        let answers = resolver.resolve(host, deadline).await;
        (answers, expected.resolve(resolver, deadline).await)
    };
    let (answers, wanted) = dns.await;
    match laps.lap(Phase::Dns, answers) {
        Ok(answers) => report.answers = answers,
        Err(failed) => failures.push(failed),
    }
    match wanted {
        Ok(ips) => lb.expected = ips,
        Err(failure) => failures.push((Phase::Dns, failure)),
    }
    let matched = lb.expected.iter().find(|ip| report.answers.contains(ip));
    if matched.is_none() && !report.answers.is_empty() && !lb.expected.is_empty() {
        failures.push((Phase::Dns, Failure::DnsMismatch));
    }
    if let Some(&ip) = matched.or(lb.expected.first()) {
        let address = SocketAddr::new(ip, port);
        report.address = Some(address);
        let connect = tcp::connect(address, deadline).await.result;
        if let Err(failed) = laps.lap(Phase::Connect, connect) {
            failures.push(failed);
        }
    }
    if let Some(&(phase, failure)) = failures.first() {
        report.result = Err(failure);
        report.failed_phase = Some(phase);
    }
    report.phases = laps.phases;
    report.total = laps.start.elapsed();
    lb.report = report;
    lb
}

impl LbReport {
    /// The plain data the scheduler and `metrics.rs` use.
    pub fn outcome(self) -> Outcome {
        self.report.outcome()
    }

    /// The expected load balancer, then the probe as [`HttpReport::render_text`] shows it; the
    /// DNS answers are on its `dns` line, e.g. a pod IP where the load balancer should be.
    pub fn render_text(&self) -> String {
        let mut expected: Vec<String> = self.expected.iter().map(|ip| ip.to_string()).collect();
        expected.extend(self.names.iter().map(|n| format!("name {n}")));
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

    /// [`HttpReport::to_json`] with the `expected` addresses and names added.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.report.to_json();
        json["expected"] = self.expected.iter().map(|ip| ip.to_string()).collect();
        json["expected_names"] = self.names.iter().cloned().collect();
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpListener;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(2)
    }

    #[tokio::test]
    async fn nothing_expected_is_unknown_without_a_query_or_a_connect() {
        // A resolver that would fail loudly if asked: it is not.
        let resolver = Resolver::Static(Vec::new());
        let lb = loadbalancer("shop.test", 80, &LbExpected::default(), &resolver, soon()).await;
        assert_eq!(lb.report.result, Err(Failure::Unknown));
        assert!(lb.report.phases.is_empty(), "{:?}", lb.report.phases);
        assert_eq!(lb.report.address, None);
        assert!(lb.render_text().contains("(expected none)"));
    }

    #[tokio::test]
    async fn a_name_is_resolved_and_its_addresses_are_expected() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Both the public name and the load balancer's name resolve to 127.0.0.1.
        let resolver = Resolver::Static(vec![ip("127.0.0.1")]);
        let expected = LbExpected {
            addresses: vec![ip("203.0.113.9")],
            names: vec!["lb-1.elb.example.".into()],
        };
        let lb = loadbalancer("shop.test", port, &expected, &resolver, soon()).await;
        assert_eq!(lb.report.result, Ok(()), "{}", lb.render_text());
        assert_eq!(lb.expected, [ip("203.0.113.9"), ip("127.0.0.1")]);
        assert_eq!(
            lb.report.address,
            Some(SocketAddr::new(ip("127.0.0.1"), port))
        );
        let text = lb.render_text();
        assert!(
            text.contains("(expected 203.0.113.9, 127.0.0.1, name lb-1.elb.example.)"),
            "{text}"
        );
        assert_eq!(
            lb.to_json()["expected_names"],
            serde_json::json!(["lb-1.elb.example."])
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_nowhere_fails_the_dns_phase() {
        let resolver = Resolver::Static(Vec::new());
        let expected = LbExpected {
            addresses: Vec::new(),
            names: vec!["gone.elb.example.".into()],
        };
        let lb = loadbalancer("shop.test", 80, &expected, &resolver, soon()).await;
        assert_eq!(lb.report.result, Err(Failure::NoAddress));
        assert_eq!(lb.report.failed_phase, Some(Phase::Dns));
        assert_eq!(lb.report.address, None, "no address to connect to");
    }
}
