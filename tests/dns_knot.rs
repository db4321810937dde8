//! The DNS walk against a real authoritative server (Knot DNS on loopback), flavor by flavor.
//!
//! Every test checks three things: the exact queries the emulated resolver sent (name, type,
//! transport, in order), what became of each and what the application got back; and that the
//! server counted the same queries (by protocol, type and rcode) as the report lists. Dead and
//! closed servers are checked at the blackhole socket, or, for a closed port where nothing can
//! count, against the resolver's own algorithm only.
//!
//! Expected counts follow the measured glibc 2.36, musl 1.2.3 and Go 1.19 behaviour and the
//! resolvers' sources: glibc `res_query.c`/`res_send.c`, musl `lookup_name.c`/`res_msend.c`,
//! Go `dnsclient_unix.go`. The pod's search list is `default.svc.cluster.local
//! svc.cluster.local cluster.local node.internal` with `ndots:5` unless a test says otherwise.

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use hopwatch::probe::Failure;
use hopwatch::probe::dns::{Flavor, Qtype, QueryStatus, QueryTypes, Transport};
use support::POD_RESOLV_CONF;
use support::knot::{self, Counters, Knot};
use support::net::{Blackhole, closed_udp_port, tcp_query, udp_exchange, udp_query};
use support::walk::{
    Q, addresses, against, against_blackhole, assert_about, assert_walk, blackhole_queries,
    lookup_at, pair, pairs, pod_walk, refs, times, udp,
};

const MUSLS: [Flavor; 2] = [Flavor::Musl, Flavor::MuslLegacy];

// ---------------------------------------------------------------------------------------
// The harness itself: Knot answers as a cluster DNS would, and counts what it answers.

#[test]
fn knot_answers_like_a_cluster_dns_server() {
    let knot = Knot::start();
    let wait = Duration::from_secs(2);
    let ask = |name: &str, qtype: &str| {
        udp_query(knot.addr(), name, qtype, wait).unwrap_or_else(|| panic!("no reply: {name}"))
    };
    let r = ask("kubernetes.default.svc.cluster.local.", "A");
    assert_eq!((r.rcode, r.answers, r.authoritative), (0, 1, true));
    let r = ask("kubernetes.default.svc.cluster.local.", "AAAA");
    assert_eq!((r.rcode, r.answers), (0, 0), "NODATA");
    let r = ask("api.example.com.default.svc.cluster.local.", "A");
    assert_eq!((r.rcode, r.authoritative), (3, true), "NXDOMAIN");
    assert_eq!(ask("api.example.com.node.internal.", "A").rcode, 3);
    assert_eq!(ask("x.broken.test.", "A").rcode, 2, "SERVFAIL");
    assert_eq!(ask("kubernetes.default.", "A").rcode, 5, "REFUSED");
    let r = ask("ext.default.svc.cluster.local.", "A");
    assert_eq!((r.rcode, r.answer_types), (0, vec!["CNAME".to_owned()]));
    let r = ask("headless.default.svc.cluster.local.", "A");
    assert_eq!(r.answers, 2);
    let r = ask("api.example.com.", "AAAA");
    assert_eq!((r.rcode, r.answers), (0, 1));
}

#[test]
fn knot_truncates_the_big_answer_only_without_edns() {
    let knot = Knot::start();
    let wait = Duration::from_secs(2);
    let big = "big.default.svc.cluster.local.";
    let r = udp_query(knot.addr(), big, "A", wait).expect("UDP reply");
    assert_eq!((r.rcode, r.truncated, r.answers), (0, true, 0));
    let r = udp_exchange(knot.addr(), big, "A", Some(1232), wait).expect("EDNS reply");
    assert_eq!((r.truncated, r.answers), (false, knot::BIG_RECORDS));
    let r = udp_exchange(knot.addr(), big, "A", Some(1200), wait).expect("EDNS reply");
    assert_eq!((r.truncated, r.answers), (false, knot::BIG_RECORDS));
    let r = tcp_query(knot.addr(), big, "A", wait).expect("TCP reply");
    assert_eq!((r.truncated, r.answers), (false, knot::BIG_RECORDS));
}

#[test]
fn knot_counts_queries_by_protocol_type_and_rcode() {
    let knot = Knot::start();
    let wait = Duration::from_secs(2);
    let before = knot.counters();
    for (name, qtype) in [
        ("kubernetes.default.svc.cluster.local.", "A"),
        ("kubernetes.default.svc.cluster.local.", "AAAA"),
        ("nosuch.cluster.local.", "A"),
        ("x.broken.test.", "AAAA"),
        ("elsewhere.", "A"),
    ] {
        udp_query(knot.addr(), name, qtype, wait).expect("UDP reply");
    }
    tcp_query(knot.addr(), "api.example.com.", "AAAA", wait).expect("TCP reply");
    let seen = knot.counters().since(&before);
    assert_eq!((seen.udp(), seen.tcp(), seen.queries()), (5, 1, 6));
    assert_eq!((seen.qtype("A"), seen.qtype("AAAA")), (3, 3));
    let rcodes = ["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"].map(|r| seen.rcode(r));
    assert_eq!(rcodes, [3, 1, 1, 1]);
    assert_eq!(knot.counters().since(&knot.counters()), Counters::default());
}

#[test]
fn knot_is_stopped_and_its_directory_removed_on_drop() {
    let knot = Knot::start();
    let addr = knot.addr();
    let dir = knot.dir().to_owned();
    let log = knot.log();
    assert!(log.contains("server started"), "{log}");
    drop(knot);
    assert!(udp_query(addr, "cluster.local.", "SOA", Duration::from_millis(300)).is_none());
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn blackhole_reads_and_never_answers() {
    let hole = Blackhole::start();
    let reply = udp_query(hole.addr(), "foo.bar.", "AAAA", Duration::from_millis(300));
    assert!(reply.is_none());
    assert_eq!(
        hole.received(),
        [("foo.bar.".to_owned(), "AAAA".to_owned())]
    );
}

#[test]
fn closed_port_answers_with_icmp_unreachable() {
    let addr = closed_udp_port();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket.send(b"anything").unwrap();
    let err = socket.recv(&mut [0u8; 512]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

// ---------------------------------------------------------------------------------------
// The happy paths: every flavor agrees.

/// `api.example.com` (2 dots < ndots 5) walks all four search domains, each NXDOMAIN for A and
/// AAAA, before the as-is name answers: 10 queries, 8 NXDOMAIN.
#[tokio::test]
async fn external_name_is_nxdomain_at_every_search_step() {
    let knot = Knot::start();
    for flavor in Flavor::ALL {
        let r = against(
            &knot,
            POD_RESOLV_CONF,
            flavor,
            QueryTypes::Both,
            "api.example.com",
        )
        .await;
        let statuses = [(QueryStatus::NxDomain, 8), (QueryStatus::NoError, 2)];
        let queries = pairs(&refs(&pod_walk("api.example.com")));
        assert_walk(&r, queries, &statuses, Ok(()));
        assert_eq!(addresses(&r), [knot::API_V4, knot::API_V6], "{flavor}");
        assert!(
            r.queries.iter().all(|q| q.server == knot.addr()),
            "{flavor}"
        );
    }
}

/// With the trailing dot no search domain is tried: one pair.
#[tokio::test]
async fn fqdn_sends_one_pair() {
    let knot = Knot::start();
    for flavor in Flavor::ALL {
        let r = against(
            &knot,
            POD_RESOLV_CONF,
            flavor,
            QueryTypes::Both,
            "api.example.com.",
        )
        .await;
        let statuses = [(QueryStatus::NoError, 2)];
        assert_walk(&r, pair("api.example.com."), &statuses, Ok(()));
    }
}

#[tokio::test]
async fn nonexistent_name_is_nxdomain_everywhere() {
    let knot = Knot::start();
    for flavor in Flavor::ALL {
        let r = against(
            &knot,
            POD_RESOLV_CONF,
            flavor,
            QueryTypes::Both,
            "nosuch.example.com",
        )
        .await;
        let queries = pairs(&refs(&pod_walk("nosuch.example.com")));
        let statuses = [(QueryStatus::NxDomain, 10)];
        assert_walk(&r, queries, &statuses, Err(Failure::Nxdomain));
        assert!(r.addresses.is_empty());
    }
}

/// The cluster FQDN written without its dot has 4 dots, fewer than 5: the worst case, the
/// whole search list first. The as-is AAAA is NODATA, which does not matter as A answered.
#[tokio::test]
async fn cluster_name_without_the_dot_searches_first() {
    let knot = Knot::start();
    let name = "kubernetes.default.svc.cluster.local";
    for flavor in Flavor::ALL {
        let r = against(&knot, POD_RESOLV_CONF, flavor, QueryTypes::Both, name).await;
        let statuses = [(QueryStatus::NxDomain, 8), (QueryStatus::NoError, 2)];
        assert_walk(&r, pairs(&refs(&pod_walk(name))), &statuses, Ok(()));
        assert_eq!(addresses(&r), [knot::KUBERNETES_V4], "{flavor}");
    }
}

/// `kubernetes.default` answers at the second search domain: 4 queries, 2 NXDOMAIN.
#[tokio::test]
async fn service_in_another_namespace_answers_at_the_second_step() {
    let knot = Knot::start();
    for flavor in Flavor::ALL {
        let r = against(
            &knot,
            POD_RESOLV_CONF,
            flavor,
            QueryTypes::Both,
            "kubernetes.default",
        )
        .await;
        let queries = pairs(&[
            "kubernetes.default.default.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local.",
        ]);
        let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::NoError, 2)];
        assert_walk(&r, queries, &statuses, Ok(()));
        assert_eq!(addresses(&r), [knot::KUBERNETES_V4], "{flavor}");
    }
}

/// A name in the pod's own namespace answers at the first step, with every address.
#[tokio::test]
async fn own_namespace_services_answer_at_the_first_step() {
    let knot = Knot::start();
    for flavor in Flavor::ALL {
        let r = against(&knot, POD_RESOLV_CONF, flavor, QueryTypes::Both, "headless").await;
        let statuses = [(QueryStatus::NoError, 2)];
        let queries = pair("headless.default.svc.cluster.local.");
        assert_walk(&r, queries, &statuses, Ok(()));
        assert_eq!(addresses(&r), knot::HEADLESS_V4, "{flavor}");
        let r = against(&knot, POD_RESOLV_CONF, flavor, QueryTypes::Both, "dual").await;
        assert_walk(
            &r,
            pair("dual.default.svc.cluster.local."),
            &statuses,
            Ok(()),
        );
        assert_eq!(addresses(&r), ["10.96.0.20", "fd00::20"], "{flavor}");
    }
}

/// An IPv4-only pod (AI_ADDRCONFIG) sends A only: 5 queries.
#[tokio::test]
async fn a_only_lookup_sends_one_query_per_step() {
    let knot = Knot::start();
    for flavor in Flavor::ALL {
        let r = against(
            &knot,
            POD_RESOLV_CONF,
            flavor,
            QueryTypes::A,
            "api.example.com",
        )
        .await;
        let queries = pod_walk("api.example.com")
            .iter()
            .map(|q| udp(q, Qtype::A))
            .collect();
        let statuses = [(QueryStatus::NxDomain, 4), (QueryStatus::NoError, 1)];
        assert_walk(&r, queries, &statuses, Ok(()));
        assert_eq!(addresses(&r), [knot::API_V4], "{flavor}");
    }
}

/// With `ndots:1` a name with 2 dots is tried as-is first. glibc and Go then walk the whole
/// search list (10 queries); musl tries it as-is only (2).
#[tokio::test]
async fn at_ndots_musl_tries_only_the_name_as_is() {
    let knot = Knot::start();
    let conf = POD_RESOLV_CONF.replace("ndots:5", "ndots:1");
    let name = "nosuch.example.com";
    let mut walk = pod_walk(name);
    walk.rotate_right(1);
    for flavor in [Flavor::Glibc, Flavor::Go] {
        let r = against(&knot, &conf, flavor, QueryTypes::Both, name).await;
        let statuses = [(QueryStatus::NxDomain, 10)];
        assert_walk(&r, pairs(&refs(&walk)), &statuses, Err(Failure::Nxdomain));
    }
    for flavor in MUSLS {
        let r = against(&knot, &conf, flavor, QueryTypes::Both, name).await;
        let statuses = [(QueryStatus::NxDomain, 2)];
        assert_walk(
            &r,
            pair("nosuch.example.com."),
            &statuses,
            Err(Failure::Nxdomain),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Where the flavors part ways.

/// AAAA of an A-only Service: the second step is NODATA. musl stops there (EAI_NODATA after
/// 2 queries). glibc counts it and walks on; the as-is `kubernetes.default.` is REFUSED
/// (outside every zone) and re-sent `attempts` (2) times, then glibc reports NODATA: 6
/// queries. Go walks on the same way and reports the as-is name's error, REFUSED.
#[tokio::test]
async fn nodata_stops_musl_but_not_glibc_or_go() {
    let knot = Knot::start();
    let name = "kubernetes.default";
    let first = "kubernetes.default.default.svc.cluster.local.";
    let second = "kubernetes.default.svc.cluster.local.";
    for flavor in MUSLS {
        let r = against(&knot, POD_RESOLV_CONF, flavor, QueryTypes::Aaaa, name).await;
        let queries = vec![udp(first, Qtype::Aaaa), udp(second, Qtype::Aaaa)];
        let statuses = [(QueryStatus::NxDomain, 1), (QueryStatus::NoError, 1)];
        assert_walk(&r, queries, &statuses, Err(Failure::Nodata));
    }
    let mut queries: Vec<Q> = pod_walk(name)[..4]
        .iter()
        .map(|q| udp(q, Qtype::Aaaa))
        .collect();
    queries.extend(times(vec![udp("kubernetes.default.", Qtype::Aaaa)], 2));
    let statuses = [
        (QueryStatus::NxDomain, 3),
        (QueryStatus::NoError, 1),
        (QueryStatus::Refused, 2),
    ];
    for (flavor, result) in [
        (Flavor::Glibc, Failure::Nodata),
        (Flavor::Go, Failure::Refused),
    ] {
        let r = against(&knot, POD_RESOLV_CONF, flavor, QueryTypes::Aaaa, name).await;
        assert_walk(&r, queries.clone(), &statuses, Err(result));
    }
}

/// SERVFAIL on the second search domain (`timeout:1 attempts:2`). glibc re-sends the pair
/// `attempts` times, then goes on to the next domain, which answers: 8 queries. Go retries
/// each type `attempts` times and goes on: 8. musl re-sends SERVFAILed queries at once (at
/// most 2 per query per retry interval) and again every `timeout/attempts`, never accepts
/// SERVFAIL, and fails after `timeout`: 2 + 2 intervals × (2 + 4) = 14 queries in 1 s.
#[tokio::test]
async fn servfail_glibc_and_go_walk_on_musl_gives_up() {
    let knot = Knot::start();
    let conf = "nameserver 127.0.0.1\n\
                search default.svc.cluster.local broken.test svc.cluster.local\n\
                options ndots:5 timeout:1 attempts:2\n";
    let name = "kubernetes.default";
    let first = pair("kubernetes.default.default.svc.cluster.local.");
    let broken = pair("kubernetes.default.broken.test.");
    for flavor in [Flavor::Glibc, Flavor::Go] {
        let r = against(&knot, conf, flavor, QueryTypes::Both, name).await;
        let mut queries = first.clone();
        queries.extend(times(broken.clone(), 2));
        queries.extend(pair("kubernetes.default.svc.cluster.local."));
        let statuses = [
            (QueryStatus::NxDomain, 2),
            (QueryStatus::ServFail, 4),
            (QueryStatus::NoError, 2),
        ];
        assert_walk(&r, queries, &statuses, Ok(()));
    }
    for flavor in MUSLS {
        let r = against(&knot, conf, flavor, QueryTypes::Both, name).await;
        let mut queries = first.clone();
        queries.extend(times(broken.clone(), 6));
        let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::ServFail, 12)];
        assert_walk(&r, queries, &statuses, Err(Failure::Servfail));
        assert_about(r.duration, Duration::from_secs(1), &format!("{flavor}"));
    }
}

/// REFUSED on a search domain that no server serves. glibc re-sends the pair `attempts`
/// times, leaves the search list and tries the name as-is, which answers: 8 queries. Go
/// retries each type and walks on: 10. musl ignores REFUSED replies, re-sends every
/// `timeout/attempts` and fails after `timeout`: 2 + 4 = 6 queries in 1 s.
#[tokio::test]
async fn refused_search_domain() {
    let knot = Knot::start();
    let conf = "nameserver 127.0.0.1\n\
                search default.svc.cluster.local corp.example svc.cluster.local\n\
                options ndots:5 timeout:1 attempts:2\n";
    let name = "api.example.com";
    let first = pair("api.example.com.default.svc.cluster.local.");
    let refused = times(pair("api.example.com.corp.example."), 2);
    let as_is = pair("api.example.com.");

    let r = against(&knot, conf, Flavor::Glibc, QueryTypes::Both, name).await;
    let queries = [first.clone(), refused.clone(), as_is.clone()].concat();
    let statuses = [
        (QueryStatus::NxDomain, 2),
        (QueryStatus::Refused, 4),
        (QueryStatus::NoError, 2),
    ];
    assert_walk(&r, queries, &statuses, Ok(()));

    let r = against(&knot, conf, Flavor::Go, QueryTypes::Both, name).await;
    let third = pair("api.example.com.svc.cluster.local.");
    let queries = [first.clone(), refused.clone(), third, as_is].concat();
    let statuses = [
        (QueryStatus::NxDomain, 4),
        (QueryStatus::Refused, 4),
        (QueryStatus::NoError, 2),
    ];
    assert_walk(&r, queries, &statuses, Ok(()));

    for flavor in MUSLS {
        let r = against(&knot, conf, flavor, QueryTypes::Both, name).await;
        let queries = [first.clone(), refused.clone()].concat();
        let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::Refused, 4)];
        assert_walk(&r, queries, &statuses, Err(Failure::Refused));
        assert_about(r.duration, Duration::from_secs(1), &format!("{flavor}"));
    }
}

/// `big.default` answers at the second step with 60 A records, 1 KB: more than 512 bytes.
///
/// - glibc (no EDNS): the A reply is truncated, so both queries are re-sent over one TCP
///   connection. The 60 addresses then overflow getaddrinfo's 1 KiB buffer, which is doubled
///   twice, each time walking the whole search list again: 3 × 6 = 18 queries, 6 over TCP.
///   With `options edns0` (1200 bytes) nothing is truncated, but the buffer still costs three
///   walks: 12 queries.
/// - musl 1.2.4+: only the truncated A is asked again over TCP: 5 queries.
/// - musl before 1.2.4: takes the truncated, empty answer: no address after 4 queries.
/// - Go: EDNS0 with 1232 bytes, so nothing is truncated: 4 queries.
#[tokio::test]
async fn truncated_answer_falls_back_to_tcp() {
    let knot = Knot::start();
    let name = "big.default";
    let first = pair("big.default.default.svc.cluster.local.");
    let big = "big.default.svc.cluster.local.";
    let over_tcp = vec![
        (big.to_owned(), Qtype::A, Transport::Tcp),
        (big.to_owned(), Qtype::Aaaa, Transport::Tcp),
    ];

    let r = against(
        &knot,
        POD_RESOLV_CONF,
        Flavor::Glibc,
        QueryTypes::Both,
        name,
    )
    .await;
    let one_walk = [first.clone(), pair(big), over_tcp].concat();
    let statuses = [(QueryStatus::NxDomain, 6), (QueryStatus::NoError, 12)];
    assert_walk(&r, times(one_walk, 3), &statuses, Ok(()));
    assert_eq!(r.addresses.len(), knot::BIG_RECORDS);

    let edns0 = POD_RESOLV_CONF.replace("ndots:5", "ndots:5 edns0");
    let r = against(&knot, &edns0, Flavor::Glibc, QueryTypes::Both, name).await;
    let statuses = [(QueryStatus::NxDomain, 6), (QueryStatus::NoError, 6)];
    assert_walk(
        &r,
        times([first.clone(), pair(big)].concat(), 3),
        &statuses,
        Ok(()),
    );
    assert_eq!(r.addresses.len(), knot::BIG_RECORDS);

    let r = against(&knot, POD_RESOLV_CONF, Flavor::Musl, QueryTypes::Both, name).await;
    let queries = [
        first.clone(),
        pair(big),
        vec![(big.to_owned(), Qtype::A, Transport::Tcp)],
    ]
    .concat();
    let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::NoError, 3)];
    assert_walk(&r, queries, &statuses, Ok(()));
    assert!(!r.addresses.is_empty());
    assert!(
        r.addresses
            .iter()
            .all(|a| a.to_string().starts_with("10.97.0."))
    );

    let r = against(
        &knot,
        POD_RESOLV_CONF,
        Flavor::MuslLegacy,
        QueryTypes::Both,
        name,
    )
    .await;
    let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::NoError, 2)];
    assert_walk(
        &r,
        [first.clone(), pair(big)].concat(),
        &statuses,
        Err(Failure::Nodata),
    );
    assert!(
        r.queries.iter().any(|q| q.truncated),
        "the A reply was truncated"
    );

    let r = against(&knot, POD_RESOLV_CONF, Flavor::Go, QueryTypes::Both, name).await;
    let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::NoError, 2)];
    assert_walk(&r, [first, pair(big)].concat(), &statuses, Ok(()));
    assert_eq!(r.addresses.len(), knot::BIG_RECORDS);
}

/// `ext.default.svc` is a CNAME to a name the server does not follow: an answer without an
/// address. glibc and musl take the answer and stop, with no address: 4 queries. Go walks
/// on through the list and the as-is `ext.default.`, which is REFUSED and retried
/// `attempts` times per type: 2 + 2 + 2 + 2 + 4 = 12, failing with the as-is name's error.
#[tokio::test]
async fn cname_only_answer_stops_glibc_and_musl_not_go() {
    let knot = Knot::start();
    let name = "ext.default";
    let walk = pod_walk(name);
    for flavor in [Flavor::Glibc, Flavor::Musl, Flavor::MuslLegacy] {
        let r = against(&knot, POD_RESOLV_CONF, flavor, QueryTypes::Both, name).await;
        let statuses = [(QueryStatus::NxDomain, 2), (QueryStatus::NoError, 2)];
        assert_walk(
            &r,
            pairs(&refs(&walk[..2])),
            &statuses,
            Err(Failure::NoAddress),
        );
    }
    let r = against(&knot, POD_RESOLV_CONF, Flavor::Go, QueryTypes::Both, name).await;
    let mut queries = pairs(&refs(&walk[..4]));
    queries.extend(times(pair("ext.default."), 2));
    let statuses = [
        (QueryStatus::NxDomain, 6),
        (QueryStatus::NoError, 2),
        (QueryStatus::Refused, 4),
    ];
    assert_walk(&r, queries, &statuses, Err(Failure::Refused));
}

// ---------------------------------------------------------------------------------------
// A dead server (every query times out) and a closed port (ICMP port unreachable).

const SHORT_TIMEOUTS: &str = "nameserver 127.0.0.1\n\
                              search default.svc.cluster.local svc.cluster.local\n\
                              options ndots:5 timeout:1 attempts:2\n";

/// glibc: the first step's pair waits `timeout` per try, `attempts` tries (2 s); a timeout
/// ends the search, then the as-is name costs the same: 8 queries, 4 s.
#[tokio::test]
async fn dead_server_glibc() {
    let r = against_blackhole(SHORT_TIMEOUTS, Flavor::Glibc, "foo.bar").await;
    let queries = blackhole_queries(&["foo.bar.default.svc.cluster.local.", "foo.bar."], 2);
    assert_walk(
        &r,
        queries,
        &[(QueryStatus::Timeout, 8)],
        Err(Failure::Timeout),
    );
    assert_about(r.duration, Duration::from_secs(4), "glibc lookup");
    for q in &r.queries {
        assert_about(q.duration, Duration::from_secs(1), "glibc query");
    }
}

/// musl: one budget of `timeout` for the first step, re-sent after `timeout/attempts`;
/// EAI_AGAIN ends the lookup: 4 queries, 1 s.
#[tokio::test]
async fn dead_server_musl() {
    for flavor in MUSLS {
        let r = against_blackhole(SHORT_TIMEOUTS, flavor, "foo.bar").await;
        let queries = blackhole_queries(&["foo.bar.default.svc.cluster.local."], 2);
        assert_walk(
            &r,
            queries,
            &[(QueryStatus::Timeout, 4)],
            Err(Failure::Timeout),
        );
        assert_about(
            r.duration,
            Duration::from_secs(1),
            &format!("{flavor} lookup"),
        );
    }
}

/// Go: every candidate name, A and AAAA in parallel, `attempts` × `timeout` each, and a
/// timeout does not stop the walk: 3 names × 4 = 12 queries, 6 s.
#[tokio::test]
async fn dead_server_go() {
    let r = against_blackhole(SHORT_TIMEOUTS, Flavor::Go, "foo.bar").await;
    let names = [
        "foo.bar.default.svc.cluster.local.",
        "foo.bar.svc.cluster.local.",
        "foo.bar.",
    ];
    let queries = blackhole_queries(&names, 2);
    assert_walk(
        &r,
        queries,
        &[(QueryStatus::Timeout, 12)],
        Err(Failure::Timeout),
    );
    assert_about(r.duration, Duration::from_secs(6), "Go lookup");
    for q in &r.queries {
        assert_about(q.duration, Duration::from_secs(1), "Go query");
    }
}

/// Nothing listens: glibc's connected socket reads ECONNREFUSED, it tries `attempts` times
/// and, having reached no server at all, stops at once: 4 queries. Go retries each type and
/// walks every name, each failing at once: 5 × 4 = 20 queries. musl's unconnected socket
/// never sees the ICMP error, so it waits out `timeout` like a dead server: 4 queries, 1 s.
/// Nothing can count these at a server; the counts are the resolvers'.
#[tokio::test]
async fn closed_port() {
    let addr = closed_udp_port();
    let conf = POD_RESOLV_CONF.replace("ndots:5", "ndots:5 timeout:1 attempts:2");
    let name = "api.example.com";
    let walk = pod_walk(name);

    let r = lookup_at(addr, &conf, Flavor::Glibc, QueryTypes::Both, name).await;
    let queries = times(pair(&walk[0]), 2);
    let statuses = [(QueryStatus::Unreachable, 4)];
    assert_walk(&r, queries, &statuses, Err(Failure::Unreachable));
    assert!(r.duration < Duration::from_millis(500), "{:?}", r.duration);

    let r = lookup_at(addr, &conf, Flavor::Go, QueryTypes::Both, name).await;
    let queries = walk.iter().flat_map(|n| times(pair(n), 2)).collect();
    let statuses = [(QueryStatus::Unreachable, 20)];
    assert_walk(&r, queries, &statuses, Err(Failure::Unreachable));
    assert!(r.duration < Duration::from_millis(500), "{:?}", r.duration);

    for flavor in MUSLS {
        let r = lookup_at(addr, &conf, flavor, QueryTypes::Both, name).await;
        let queries = times(pair(&walk[0]), 2);
        let statuses = [(QueryStatus::Timeout, 4)];
        assert_walk(&r, queries, &statuses, Err(Failure::Timeout));
        assert_about(r.duration, Duration::from_secs(1), &format!("{flavor}"));
    }
}
