//! Running the DNS walk against a test server and checking what it sent: the exact query
//! sequence, each query's fate, the lookup's result, and that the server counted the same.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hopwatch::probe::Failure;
use hopwatch::probe::dns::{
    Flavor, LookupOptions, LookupReport, Qtype, QueryStatus, QueryTypes, ResolvConf, Transport,
    lookup,
};

use super::knot::{Counters, Knot};
use super::net::Blackhole;

/// One expected wire query: `(qname, qtype, transport)`.
pub type Q = (String, Qtype, Transport);

/// One query over UDP.
pub fn udp(qname: &str, qtype: Qtype) -> Q {
    (qname.to_owned(), qtype, Transport::Udp)
}

/// An A+AAAA pair over UDP: one search step.
pub fn pair(qname: &str) -> Vec<Q> {
    vec![udp(qname, Qtype::A), udp(qname, Qtype::Aaaa)]
}

/// Search steps, one A+AAAA pair each.
pub fn pairs(qnames: &[&str]) -> Vec<Q> {
    qnames.iter().flat_map(|q| pair(q)).collect()
}

/// `queries` sent `n` times over, as a resolver retrying a step does.
pub fn times(queries: Vec<Q>, n: usize) -> Vec<Q> {
    (0..n).flat_map(|_| queries.clone()).collect()
}

/// The candidates of `name` through the pod search list, then as-is.
pub fn pod_walk(name: &str) -> Vec<String> {
    [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
        "node.internal.",
    ]
    .iter()
    .map(|d| format!("{name}.{d}"))
    .chain([format!("{name}.")])
    .collect()
}

/// Borrows a list of names, for [`pairs`].
pub fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// Lookup options from resolv.conf text, sending every query to `server`.
pub fn options(
    conf: &str,
    flavor: Flavor,
    qtypes: QueryTypes,
    server: SocketAddr,
) -> LookupOptions {
    LookupOptions {
        conf: ResolvConf::parse(conf, flavor),
        flavor,
        qtypes,
        server: Some(server),
    }
}

/// Looks `name` up with every query sent to `server`, giving up after a minute.
pub async fn lookup_at(
    server: SocketAddr,
    conf: &str,
    flavor: Flavor,
    qtypes: QueryTypes,
    name: &str,
) -> LookupReport {
    let opts = options(conf, flavor, qtypes, server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    lookup(name, &opts, deadline).await
}

/// Looks `name` up against Knot and checks that Knot counted exactly the reported queries.
pub async fn against(
    knot: &Knot,
    conf: &str,
    flavor: Flavor,
    qtypes: QueryTypes,
    name: &str,
) -> LookupReport {
    let before = knot.counters();
    let report = lookup_at(knot.addr(), conf, flavor, qtypes, name).await;
    let seen = knot.counters().since(&before);
    assert_server_saw(&report, &seen);
    report
}

/// The report's queries by transport, type and rcode equal the server's own counts.
pub fn assert_server_saw(report: &LookupReport, seen: &Counters) {
    let ctx = format!("{} {}: server saw {:?}", report.flavor, report.name, seen.0);
    let on = |t: Transport| report.queries.iter().filter(|q| q.transport == t).count() as u64;
    let of = |t: Qtype| report.queries.iter().filter(|q| q.qtype == t).count() as u64;
    assert_eq!(report.wire_count() as u64, seen.queries(), "total, {ctx}");
    assert_eq!(on(Transport::Udp), seen.udp(), "UDP, {ctx}");
    assert_eq!(on(Transport::Tcp), seen.tcp(), "TCP, {ctx}");
    assert_eq!(of(Qtype::A), seen.qtype("A"), "A, {ctx}");
    assert_eq!(of(Qtype::Aaaa), seen.qtype("AAAA"), "AAAA, {ctx}");
    for status in QueryStatus::ALL {
        let reported = report.count(status) as u64;
        let counted = match status {
            QueryStatus::Timeout
            | QueryStatus::Unreachable
            | QueryStatus::Other
            | QueryStatus::SendError => 0,
            _ => seen.rcode(status.as_str()),
        };
        assert_eq!(reported, counted, "{}, {ctx}", status.as_str());
    }
}

/// The queries in the order sent. Queries for the same name in a row are sorted by type and
/// transport, because A and AAAA go out in parallel and their order is not the resolver's.
pub fn normalized(
    queries: impl IntoIterator<Item = Q>,
) -> Vec<(String, &'static str, &'static str)> {
    let mut out: Vec<(String, &'static str, &'static str)> = Vec::new();
    let mut run_start = 0;
    for (qname, qtype, transport) in queries {
        if out.last().is_some_and(|last| last.0 != qname) {
            out[run_start..].sort();
            run_start = out.len();
        }
        out.push((qname, qtype.as_str(), transport.as_str()));
    }
    out[run_start..].sort();
    out
}

/// The queries of a report, in the order sent.
pub fn sent(report: &LookupReport) -> Vec<Q> {
    report
        .queries
        .iter()
        .map(|q| (q.qname.clone(), q.qtype, q.transport))
        .collect()
}

/// Checks the exact query sequence, how many queries ended in each status, and the result.
pub fn assert_walk(
    report: &LookupReport,
    queries: Vec<Q>,
    statuses: &[(QueryStatus, usize)],
    result: Result<(), Failure>,
) {
    let ctx = format!("{} {}", report.flavor, report.name);
    assert_eq!(
        normalized(sent(report)),
        normalized(queries),
        "queries, {ctx}"
    );
    let mut got = BTreeMap::new();
    for q in &report.queries {
        *got.entry(q.status.as_str()).or_insert(0) += 1;
    }
    let want: BTreeMap<&str, usize> = statuses.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(got, want, "statuses, {ctx}");
    assert_eq!(report.result, result, "result, {ctx}");
}

/// The addresses the application got, as sorted strings.
pub fn addresses(report: &LookupReport) -> Vec<String> {
    let mut list: Vec<String> = report.addresses.iter().map(IpAddr::to_string).collect();
    list.sort();
    list
}

/// `actual` is `expected`, give or take scheduling: 50 ms early to 900 ms late.
pub fn assert_about(actual: Duration, expected: Duration, what: &str) {
    let low = expected.saturating_sub(Duration::from_millis(50));
    let high = expected + Duration::from_millis(900);
    assert!(
        actual >= low && actual <= high,
        "{what}: took {actual:?}, expected about {expected:?}"
    );
}

/// Looks `name` up against a [`Blackhole`] and checks that it received the reported queries.
pub async fn against_blackhole(conf: &str, flavor: Flavor, name: &str) -> LookupReport {
    let hole = Blackhole::start();
    let r = lookup_at(hole.addr(), conf, flavor, QueryTypes::Both, name).await;
    std::thread::sleep(Duration::from_millis(100));
    let mut received = hole.received();
    let mut reported: Vec<(String, String)> = r
        .queries
        .iter()
        .map(|q| (q.qname.clone(), q.qtype.as_str().to_owned()))
        .collect();
    received.sort();
    reported.sort();
    assert_eq!(
        reported, received,
        "{flavor}: the blackhole received the reported queries"
    );
    assert!(r.queries.iter().all(|q| q.transport == Transport::Udp));
    r
}

/// Each name's A+AAAA pair, sent `tries` times.
pub fn blackhole_queries(names: &[&str], tries: usize) -> Vec<Q> {
    names.iter().flat_map(|n| times(pair(n), tries)).collect()
}
