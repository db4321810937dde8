//! The DNS and load-balancer hops. DNS is the resolv.conf walk of the emulated stub resolver,
//! every query shown; its answer must hold the Ingress's load balancer (or the Service's
//! ClusterIP) and never a pod's IP. The load balancer must accept a connection.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::api::Cluster;
use super::routes::Routes;
use super::verdict::{Cause, Finding, kubectl};
use super::views::ServiceView;
use super::{Hop, HopName};
use crate::discovery::model::{Address, project_slice};
use crate::probe::dns::{self, LookupOptions, LookupReport, QueryStatus};
use crate::probe::{Failure, result_label, tcp};

/// Looks `name` up as the emulated resolver does, giving up after `timeout`.
pub async fn lookup(name: &str, opts: &LookupOptions, timeout: Duration) -> LookupReport {
    dns::lookup(name, opts, Instant::now() + timeout).await
}

/// Every wire query of a lookup, one line each, as `hopwatch probe dns` lists them.
pub fn query_lines(report: &LookupReport) -> Vec<String> {
    let width = report
        .queries
        .iter()
        .map(|q| q.qname.len())
        .max()
        .unwrap_or(0);
    report
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            format!(
                "{:>2} {:width$}  {:4}  {}  {:11} {:>8.2} ms",
                i + 1,
                q.qname,
                q.qtype.as_str(),
                q.transport.as_str(),
                q.status.as_str(),
                q.duration.as_secs_f64() * 1e3
            )
        })
        .collect()
}

/// The DNS hop with its timing, queries and answers, before any verdict.
pub fn described(report: &LookupReport) -> Hop {
    let answers: Vec<String> = report.addresses.iter().map(IpAddr::to_string).collect();
    let mut hop = Hop::new(HopName::Dns)
        .timed(report.duration)
        .with("name", json!(report.name))
        .with("flavor", json!(report.flavor.as_str()))
        .with("result", json!(result_label(&report.result)))
        .with("answers", json!(answers))
        .with("queries", json!(report.queries));
    hop.facts = query_lines(report);
    hop.summary = format!(
        "{} → {} ({} queries, {} NXDOMAIN)",
        report.name,
        if answers.is_empty() {
            "nothing".to_string()
        } else {
            answers.join(", ")
        },
        report.wire_count(),
        report.count(QueryStatus::NxDomain)
    );
    hop
}

/// The finding of a lookup that got no address at all.
pub fn lookup_failure(report: &LookupReport, confirm: Vec<String>) -> Option<Finding> {
    let failure = report.result.err()?;
    let queries = report.wire_count();
    let (cause, detail) = match failure {
        Failure::Timeout => {
            let mut servers: Vec<String> = report
                .queries
                .iter()
                .map(|q| q.server.to_string())
                .collect();
            servers.sort();
            servers.dedup();
            let detail = format!(
                "no DNS server answered: {} of {queries} queries to {} timed out",
                report.count(QueryStatus::Timeout),
                servers.join(", ")
            );
            (Cause::DnsTimeout, detail)
        }
        Failure::Nxdomain => (
            Cause::DnsNxdomain,
            format!(
                "{} does not exist: every name the search list tried got NXDOMAIN",
                report.name
            ),
        ),
        other => (
            Cause::DnsFailed,
            format!(
                "the lookup of {} failed: {other} after {queries} queries",
                report.name
            ),
        ),
    };
    Some(Finding::new(cause, detail, confirm))
}

/// The DNS hop of a URL: resolves, then checks the answer holds the load balancer the
/// Ingress reports (`expected`) and is not a pod. Returns the hop and the answers.
pub async fn url_dns(
    host: &str,
    opts: &LookupOptions,
    timeout: Duration,
    routes: &Routes,
    expected: &[IpAddr],
    cluster: &Cluster,
) -> (Hop, Vec<IpAddr>) {
    let report = lookup(host, opts, timeout).await;
    let hop = described(&report).with("expected", json!(expected));
    let answers = report.addresses.clone();
    if let Some(finding) = lookup_failure(&report, kubectl::cluster_dns()) {
        let summary = hop.summary.clone();
        return (hop.broken(summary, finding), answers);
    }
    let summary = hop.summary.clone();
    if expected.is_empty() {
        let hop = hop.fact("no Ingress load balancer address to compare the answer with");
        return (hop.ok(summary), answers);
    }
    if answers.iter().any(|ip| expected.contains(ip)) {
        return (hop.ok(summary), answers);
    }
    let finding = not_the_load_balancer(host, &answers, expected, routes, cluster).await;
    (hop.broken(summary, finding), answers)
}

/// The answer misses the load balancer: a pod's IP (named from the EndpointSlices), or
/// something else (a stale or split-horizon record).
async fn not_the_load_balancer(
    host: &str,
    answers: &[IpAddr],
    expected: &[IpAddr],
    routes: &Routes,
    cluster: &Cluster,
) -> Finding {
    let lb = join(expected);
    let mut confirm = Vec::new();
    if let Some(ing) = routes.claiming(host) {
        confirm.push(kubectl::ingress_status(&ing.key.namespace, &ing.key.name));
    }
    if let Some((ip, owner)) = pod_owner(answers, cluster).await {
        confirm.push(kubectl::pod_by_ip(&ip.to_string()));
        let detail = format!(
            "{host} answers {ip}, the IP of {owner}, not the load balancer {lb}: DNS must point at the load balancer, never at a pod"
        );
        return Finding::new(Cause::DnsPodIp, detail, confirm);
    }
    let detail = format!(
        "{host} answers {}, not the Ingress's load balancer {lb}: a stale record or a split-horizon view",
        join(answers)
    );
    Finding::new(Cause::DnsNotLoadBalancer, detail, confirm)
}

/// The first answer that is an endpoint address, and whose: `pod shop/web-1 (endpoint of
/// Service shop/web)`.
async fn pod_owner(answers: &[IpAddr], cluster: &Cluster) -> Option<(IpAddr, String)> {
    let slices = cluster.slices(None, None).await.ok()?;
    slices
        .iter()
        .filter_map(|s| project_slice(s, |n| n.into()))
        .flat_map(|s| s.endpoints.into_iter().map(move |e| (s.service.clone(), e)))
        .find(|(_, e)| answers.contains(&e.address))
        .map(|(service, e)| {
            let pod = match &e.pod {
                Some(pod) => format!("pod {}/{pod}", service.namespace),
                None => "an endpoint".to_string(),
            };
            (e.address, format!("{pod} (endpoint of Service {service})"))
        })
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The DNS hop of `svc/NS/NAME`: the Service's cluster name must answer with its ClusterIP.
pub async fn service_dns(
    name: &str,
    opts: &LookupOptions,
    timeout: Duration,
    service: Option<&ServiceView>,
) -> Hop {
    let report = lookup(name, opts, timeout).await;
    let hop = described(&report);
    let summary = hop.summary.clone();
    let mut confirm = kubectl::cluster_dns();
    if let Some(svc) = service {
        confirm.insert(0, kubectl::service(&svc.key.namespace, &svc.key.name));
    }
    if let Some(finding) = lookup_failure(&report, confirm.clone()) {
        return hop.broken(summary, finding);
    }
    match service.map(|s| &s.address) {
        Some(Address::ClusterIp(ip)) if !report.addresses.contains(ip) => {
            let detail = format!(
                "{name} answers {}, but the Service's ClusterIP is {ip}",
                join(&report.addresses)
            );
            hop.broken(
                summary,
                Finding::new(Cause::DnsNotClusterIp, detail, confirm),
            )
        }
        Some(Address::Headless) => hop
            .fact("headless Service: the answers are its ready pods")
            .ok(summary),
        _ => hop.ok(summary),
    }
}

/// Where the load-balancer hop connects, and why there: `--connect-to`, the DNS answer that
/// is the load balancer, the Ingress status address, or the DNS answer when no Ingress says.
pub fn lb_address(
    connect_to: Option<SocketAddr>,
    answers: &[IpAddr],
    expected: &[IpAddr],
    port: u16,
) -> Option<(SocketAddr, &'static str)> {
    if let Some(address) = connect_to {
        return Some((address, "--connect-to"));
    }
    let matched = answers.iter().find(|ip| expected.contains(ip));
    match (matched, expected.first(), answers.first()) {
        (Some(ip), _, _) => Some((SocketAddr::new(*ip, port), "DNS answer")),
        (None, Some(ip), _) => Some((SocketAddr::new(*ip, port), "Ingress status")),
        (None, None, Some(ip)) => Some((SocketAddr::new(*ip, port), "DNS answer")),
        (None, None, None) => None,
    }
}

/// Connects to the load balancer. `claimed` names the Ingress for the host, if any.
pub async fn loadbalancer(
    address: Option<(SocketAddr, &'static str)>,
    claimed: Option<&super::routes::IngressView>,
    timeout: Duration,
) -> Hop {
    let hop = Hop::new(HopName::LoadBalancer);
    let Some((address, source)) = address else {
        return match claimed {
            Some(ing) => {
                let (ns, name) = (&ing.key.namespace, &ing.key.name);
                let detail = format!(
                    "Ingress {} has no status.loadBalancer address and DNS gave none: the controller has not admitted it (check its ingressClassName)",
                    ing.key
                );
                let confirm = vec![
                    kubectl::describe_ingress(ns, name),
                    kubectl::ingress_classes(),
                ];
                hop.broken(
                    "no address to connect to",
                    Finding::new(Cause::NoLoadBalancerAddress, detail, confirm),
                )
            }
            None => Hop::skipped(HopName::LoadBalancer, "no address to connect to"),
        };
    };
    let report = tcp::connect(address, Instant::now() + timeout).await;
    let hop = hop
        .timed(report.duration)
        .with("address", json!(address.to_string()))
        .with("source", json!(source))
        .with("result", json!(result_label(&report.result)));
    match report.result {
        Ok(()) => hop.ok(format!("{address} accepts connections ({source})")),
        Err(failure) => {
            let summary = format!("{address} {failure} ({source})");
            let detail =
                format!("the load balancer {address} did not accept a connection: {failure}");
            let confirm = match claimed {
                Some(ing) => vec![
                    kubectl::ingress_status(&ing.key.namespace, &ing.key.name),
                    kubectl::describe_ingress(&ing.key.namespace, &ing.key.name),
                ],
                None => vec![kubectl::ingresses()],
            };
            hop.broken(
                summary,
                Finding::new(Cause::LoadBalancerUnreachable, detail, confirm),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dns::{Flavor, Mode, Qtype, QueryRecord, Transport};

    fn query(qname: &str, status: QueryStatus) -> QueryRecord {
        QueryRecord {
            qname: qname.to_string(),
            qtype: Qtype::A,
            transport: Transport::Udp,
            server: "10.96.0.10:53".parse().unwrap(),
            status,
            duration: Duration::from_micros(1500),
            answers: 0,
            truncated: false,
        }
    }

    fn report(result: Result<(), Failure>, statuses: &[QueryStatus]) -> LookupReport {
        LookupReport {
            name: "shop.example.com".into(),
            mode: Mode::Search,
            flavor: Flavor::Glibc,
            result,
            addresses: if result.is_ok() {
                vec![ip("203.0.113.10")]
            } else {
                Vec::new()
            },
            duration: Duration::from_millis(3),
            queries: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| query(&format!("q{i}.shop.example.com."), *s))
                .collect(),
            discarded: crate::probe::dns::Discards::default(),
        }
    }

    #[test]
    fn the_dns_hop_lists_every_query_and_counts_nxdomain() {
        let nx = QueryStatus::NxDomain;
        let hop = described(&report(Ok(()), &[nx, nx, QueryStatus::NoError]));
        assert_eq!(
            hop.summary,
            "shop.example.com → 203.0.113.10 (3 queries, 2 NXDOMAIN)"
        );
        assert_eq!(
            hop.facts[0],
            " 1 q0.shop.example.com.  A     udp  NXDOMAIN        1.50 ms"
        );
        assert_eq!(hop.data["queries"][2]["rcode"], "NOERROR");
    }

    #[test]
    fn failed_lookups_name_their_cause() {
        let timeout = report(Err(Failure::Timeout), &[QueryStatus::Timeout; 4]);
        let finding = lookup_failure(&timeout, Vec::new()).unwrap();
        assert_eq!(finding.cause, Cause::DnsTimeout);
        assert_eq!(
            finding.detail,
            "no DNS server answered: 4 of 4 queries to 10.96.0.10:53 timed out"
        );
        let nx = report(Err(Failure::Nxdomain), &[QueryStatus::NxDomain]);
        assert_eq!(
            lookup_failure(&nx, Vec::new()).unwrap().cause,
            Cause::DnsNxdomain
        );
        let servfail = report(Err(Failure::Servfail), &[QueryStatus::ServFail]);
        assert_eq!(
            lookup_failure(&servfail, Vec::new()).unwrap().detail,
            "the lookup of shop.example.com failed: servfail after 1 queries"
        );
        assert_eq!(lookup_failure(&report(Ok(()), &[]), Vec::new()), None);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_load_balancer_address_prefers_the_matching_answer() {
        let lb = [ip("203.0.113.10"), ip("203.0.113.11")];
        let answers = [ip("203.0.113.11")];
        assert_eq!(
            lb_address(None, &answers, &lb, 443),
            Some(("203.0.113.11:443".parse().unwrap(), "DNS answer"))
        );
        assert_eq!(
            lb_address(None, &[ip("10.244.1.7")], &lb, 443),
            Some(("203.0.113.10:443".parse().unwrap(), "Ingress status"))
        );
        assert_eq!(
            lb_address(None, &[ip("10.244.1.7")], &[], 80),
            Some(("10.244.1.7:80".parse().unwrap(), "DNS answer"))
        );
        let given = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(
            lb_address(Some(given), &answers, &lb, 443),
            Some((given, "--connect-to"))
        );
        assert_eq!(lb_address(None, &[], &[], 443), None);
    }
}
