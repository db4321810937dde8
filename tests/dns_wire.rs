//! Wire truth: for every flavor, the queries a lookup reports are the queries that left, as a
//! packet capture sees them (qname, qtype, transport, server and what came back), and their
//! counts are what the resolver models predict.
//!
//! Each case runs in a network namespace of its own, so an AF_PACKET socket there sees the
//! test's packets and nothing else. The test re-runs this binary inside it
//! (`netns_support`); that copy starts Knot, a silent server and a closed port on loopback,
//! captures, looks the name up with each flavor and says `ok FLAVOR …` per flavor. Needs root,
//! `ip` and Knot.
//!
//! The cases are the ones where the report and the wire used to disagree: a closed port (glibc
//! lost the AAAA of its pair to the A's ICMP error), two nameservers with the first closed,
//! `options rotate` with two live servers (musl's second replies were TIMEOUT, Go started both
//! types at the first server) and with the first one silent, truncation, and a silent server.

mod netns_support;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hopwatch::probe::dns::ResolvConf;
use hopwatch::probe::dns::{Flavor, LookupOptions, LookupReport, QueryStatus, QueryTypes, lookup};
use netns_support::{Netns, role, say};
use support::capture::{Capture, WireQuery};
use support::knot::Knot;
use support::net::{Blackhole, closed_udp_port};

/// A pod's search list, shortened: `kubernetes.default` is NXDOMAIN in the first domain and
/// found in the second (A, and NODATA for AAAA), so a working walk is two steps.
const SEARCH: &str = "search default.svc.cluster.local svc.cluster.local\n";
/// Short waits keep the silent cases quick; two attempts show the retries.
const OPTIONS: &str = "options ndots:5 timeout:1 attempts:2\n";
const NAME: &str = "kubernetes.default";

/// One server of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Knot,
    /// A second Knot, for two live servers.
    Knot2,
    Silent,
    Closed,
}

/// Runs `case` in a namespace of its own and checks that every flavor passed.
fn run_case(test: &str, case: &str) {
    netns_support::require_root_and(&[("ip", "iproute2"), ("knotd", "knot"), ("knotc", "knot")]);
    let ns = Netns::new("wire");
    let lines = ns.run_self(test, case, Duration::from_secs(120));
    for flavor in Flavor::ALL {
        let ok = format!("ok {flavor} ");
        assert!(
            lines.iter().any(|l| l.starts_with(&ok)),
            "{case}: no `{ok}…` line from the namespace; it said {lines:?}"
        );
    }
}

/// The servers, the resolv.conf options beyond [`OPTIONS`], and the name of each case.
fn case(name: &str) -> (Vec<Server>, &'static str, &'static str) {
    match name {
        "closed_port" => (vec![Server::Closed], "", NAME),
        "first_closed" => (vec![Server::Closed, Server::Knot], "", NAME),
        "rotate_two_live" => (vec![Server::Knot, Server::Knot2], "options rotate\n", NAME),
        "rotate_first_silent" => (vec![Server::Silent, Server::Knot], "options rotate\n", NAME),
        // 60 A records do not fit 512 bytes: TC without EDNS.
        "truncation" => (vec![Server::Knot], "", "big"),
        "silent" => (
            vec![Server::Silent],
            "",
            "kubernetes.default.svc.cluster.local.",
        ),
        other => panic!("no case {other}"),
    }
}

/// Inside the namespace: the servers, the capture, then each flavor's lookup.
fn child(case_name: &str) {
    let (servers, options, name) = case(case_name);
    let knot = Knot::start();
    let knot2 = servers.contains(&Server::Knot2).then(Knot::start);
    let silent = Blackhole::start();
    let closed = closed_udp_port();
    let addrs: Vec<SocketAddr> = servers
        .iter()
        .map(|s| match s {
            Server::Knot => knot.addr(),
            Server::Knot2 => knot2.as_ref().map_or(knot.addr(), Knot::addr),
            Server::Silent => silent.addr(),
            Server::Closed => closed,
        })
        .collect();
    let capture = Capture::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for flavor in Flavor::ALL {
        let text = format!("{SEARCH}{OPTIONS}{options}");
        let mut conf = ResolvConf::parse(&text, flavor);
        conf.nameservers = addrs.clone();
        let opts = LookupOptions {
            conf,
            flavor,
            qtypes: QueryTypes::Both,
            server: None,
        };
        capture.take();
        let report = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            lookup(name, &opts, deadline).await
        });
        // Replies that come after the lookup gave up on them are on the wire too.
        std::thread::sleep(Duration::from_millis(300));
        let wire = capture.take();
        let ctx = format!(
            "{case_name}, {flavor}: reported {:#?}\ncaptured {wire:#?}",
            report.queries
        );
        assert_eq!(reported(&report), captured(&wire, flavor), "{ctx}");
        assert_eq!(report.count(QueryStatus::SendError), 0, "{ctx}");
        check_model(case_name, flavor, &addrs, &report, &ctx);
        say(&format!(
            "ok {flavor} {} queries {:?}",
            report.wire_count(),
            statuses(&report)
        ));
    }
}

/// A query as compared: server, qname, qtype, transport, outcome.
type Row = (SocketAddr, String, String, String, String);

/// The wire queries of a report, sorted.
fn reported(report: &LookupReport) -> Vec<Row> {
    let mut rows: Vec<Row> = report
        .wire()
        .map(|q| {
            (
                q.server,
                q.qname.to_ascii_lowercase(),
                q.qtype.as_str().to_string(),
                q.transport.as_str().to_string(),
                q.status.as_str().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The captured queries, sorted. musl's socket is unconnected and never hears of an ICMP
/// error, so for musl a query the network bounced is one that got no reply: `TIMEOUT`.
fn captured(wire: &[WireQuery], flavor: Flavor) -> Vec<Row> {
    let mut rows: Vec<Row> = wire
        .iter()
        .map(|q| {
            let outcome = match q.outcome.as_str() {
                "UNREACHABLE" if flavor.is_musl() => "TIMEOUT".to_string(),
                other => other.to_string(),
            };
            (
                q.server,
                q.qname.clone(),
                q.qtype.clone(),
                q.transport.to_string(),
                outcome,
            )
        })
        .collect();
    rows.sort();
    rows
}

/// How many queries ended in each status.
fn statuses(report: &LookupReport) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for q in report.wire() {
        *counts.entry(q.status.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Queries sent to the case's `n`th server, and how many of those got each status.
fn at(report: &LookupReport, server: SocketAddr) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for q in report.wire().filter(|q| q.server == server) {
        *counts.entry(q.status.as_str()).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().filter(|(_, n)| *n > 0).collect()
}

/// What each resolver does in each case, from its source and the measurements in
/// `shared/research/dns-ndots.md` (glibc 2.36, musl 1.2.3, Go 1.19).
fn check_model(case: &str, flavor: Flavor, servers: &[SocketAddr], r: &LookupReport, ctx: &str) {
    use Flavor::{Glibc, Go, Musl, MuslLegacy};
    let all = statuses(r);
    // Step 1 NXDOMAIN, step 2 the A and an AAAA NODATA, from one server: the working walk.
    let walk = [("NXDOMAIN", 2), ("NOERROR", 2)];
    match (case, flavor) {
        // glibc: the pair leaves whole, bounces, again for the second attempt, then the walk
        // stops (ECONNREFUSED ends the search). Go asks each type twice per name and goes on
        // through all three names. musl never hears the ICMP: one step, its 1 s budget,
        // a resend at 0.5 s.
        ("closed_port", Glibc) => assert_eq!(all, counts(&[("UNREACHABLE", 4)]), "{ctx}"),
        ("closed_port", Go) => assert_eq!(all, counts(&[("UNREACHABLE", 12)]), "{ctx}"),
        ("closed_port", Musl | MuslLegacy) => {
            assert_eq!(all, counts(&[("TIMEOUT", 4)]), "{ctx}")
        }
        // glibc and Go: every query bounces off the first server, then the second answers.
        // musl asks both at once; the closed one's queries get no reply.
        ("first_closed", Glibc | Go) => {
            assert_eq!(at(r, servers[0]), counts(&[("UNREACHABLE", 4)]), "{ctx}");
            assert_eq!(at(r, servers[1]), counts(&walk), "{ctx}");
        }
        ("first_closed", Musl | MuslLegacy) => {
            assert_eq!(at(r, servers[0]), counts(&[("TIMEOUT", 4)]), "{ctx}");
            assert_eq!(at(r, servers[1]), counts(&walk), "{ctx}");
        }
        // glibc: each step at one random server. Go: A takes offset 0, AAAA 1, A 2, AAAA 3,
        // so with two servers every A goes to the first and every AAAA to the second. musl
        // ignores rotate and asks both; the slower server's replies are real replies.
        ("rotate_two_live", Glibc) => assert_eq!(all, counts(&walk), "{ctx}"),
        ("rotate_two_live", Go) => {
            assert_eq!(all, counts(&walk), "{ctx}");
            for q in r.wire() {
                let expected = if q.qtype.as_str() == "A" { 0 } else { 1 };
                assert_eq!(q.server, servers[expected], "{ctx}");
            }
        }
        ("rotate_two_live", Musl | MuslLegacy) => {
            assert_eq!(all, counts(&[("NXDOMAIN", 4), ("NOERROR", 4)]), "{ctx}")
        }
        // glibc: a step that starts at the silent server waits it out (one try, a pair) and
        // goes on to the live one. Go: every A starts at the silent server, every AAAA at the
        // live one. musl: the silent server's queries get no reply.
        ("rotate_first_silent", Glibc) => {
            assert_eq!(at(r, servers[1]), counts(&walk), "{ctx}");
            let silent = at(r, servers[0]).get("TIMEOUT").copied().unwrap_or(0);
            assert!([0, 2, 4].contains(&silent), "{ctx}");
            assert_eq!(r.wire_count(), 4 + silent, "{ctx}");
        }
        ("rotate_first_silent", Go) => {
            assert_eq!(at(r, servers[0]), counts(&[("TIMEOUT", 2)]), "{ctx}");
            assert_eq!(at(r, servers[1]), counts(&walk), "{ctx}");
        }
        ("rotate_first_silent", Musl | MuslLegacy) => {
            assert_eq!(at(r, servers[0]), counts(&[("TIMEOUT", 4)]), "{ctx}");
            assert_eq!(at(r, servers[1]), counts(&walk), "{ctx}");
        }
        // `big` is found in the first domain. glibc: the pair over UDP, the A truncated, both
        // again over TCP; 60 addresses overflow its 1 KiB buffer, so the whole walk runs three
        // times (1, 2 then 4 KiB). musl 1.2.4 asks the truncated A again over TCP; 1.2.3
        // takes it as it is. Go's EDNS0 1232 bytes hold the answer.
        ("truncation", Glibc) => {
            assert_eq!(all, counts(&[("NOERROR", 12)]), "{ctx}");
            assert_eq!(tcp(r), 6, "{ctx}");
        }
        ("truncation", Musl) => {
            assert_eq!((r.wire_count(), tcp(r)), (3, 1), "{ctx}");
        }
        ("truncation", MuslLegacy) => {
            assert_eq!((r.wire_count(), tcp(r)), (2, 0), "{ctx}");
        }
        ("truncation", Go) => {
            assert_eq!((r.wire_count(), tcp(r)), (2, 0), "{ctx}");
        }
        // One step (an FQDN): glibc and Go send the pair twice (two attempts), musl once and
        // again at half its budget.
        ("silent", _) => assert_eq!(all, counts(&[("TIMEOUT", 4)]), "{ctx}"),
        _ => panic!("no model for {case} {flavor}"),
    }
}

fn tcp(r: &LookupReport) -> usize {
    r.wire().filter(|q| q.transport.as_str() == "tcp").count()
}

#[test]
fn closed_port() {
    if let Some(role) = role() {
        return child(&role);
    }
    run_case("closed_port", "closed_port");
}

#[test]
fn two_nameservers_the_first_closed() {
    if let Some(role) = role() {
        return child(&role);
    }
    run_case("two_nameservers_the_first_closed", "first_closed");
}

#[test]
fn rotate_with_two_live_servers() {
    if let Some(role) = role() {
        return child(&role);
    }
    run_case("rotate_with_two_live_servers", "rotate_two_live");
}

#[test]
fn rotate_with_the_first_server_silent() {
    if let Some(role) = role() {
        return child(&role);
    }
    run_case("rotate_with_the_first_server_silent", "rotate_first_silent");
}

#[test]
fn truncated_answer() {
    if let Some(role) = role() {
        return child(&role);
    }
    run_case("truncated_answer", "truncation");
}

#[test]
fn silent_server() {
    if let Some(role) = role() {
        return child(&role);
    }
    run_case("silent_server", "silent");
}
