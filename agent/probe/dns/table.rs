//! Every row of the measured resolver table (glibc 2.36, musl 1.2.3, Go 1.19 against Knot;
//! search `default.svc.cluster.local svc.cluster.local cluster.local node.internal`,
//! `ndots:5` unless a row says otherwise), reproduced on the simulated network in virtual time.

use std::time::Duration;

use tokio::time::Instant;

use super::sim::{Behavior, NS, SimNet};
use super::{
    Flavor, LookupOptions, LookupReport, Qtype, QueryStatus, QueryTypes, ResolvConf, Transport,
    walk,
};
use crate::probe::Failure;

const POD: &str = "nameserver 10.96.0.10\n\
                   search default.svc.cluster.local svc.cluster.local cluster.local node.internal\n\
                   options ndots:5\n";

async fn lookup(net: &SimNet, flavor: Flavor, conf: &str, name: &str) -> LookupReport {
    let opts = LookupOptions {
        conf: ResolvConf::parse(conf, flavor),
        flavor,
        qtypes: QueryTypes::Both,
        server: None,
    };
    let report = walk::lookup(net, name, &opts, Instant::now() + Duration::from_secs(600)).await;
    assert_eq!(
        report.queries.len(),
        net.seen().len(),
        "{flavor} {name}: every query sent reached the server"
    );
    report
}

fn nx(report: &LookupReport) -> usize {
    report.count(QueryStatus::NxDomain)
}

fn tcp(report: &LookupReport) -> usize {
    report
        .queries
        .iter()
        .filter(|q| q.transport == Transport::Tcp)
        .count()
}

#[tokio::test(start_paused = true)]
async fn external_name_costs_ten_queries_eight_nxdomain() {
    for flavor in Flavor::ALL {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, POD, "api.example.com").await;
        assert_eq!(
            (r.queries.len(), nx(&r), r.result),
            (10, 8, Ok(())),
            "{flavor}"
        );
        assert_eq!(r.addresses.len(), 2, "{flavor}");
        assert_eq!(
            r.queries[0].qname,
            "api.example.com.default.svc.cluster.local."
        );
        assert_eq!(r.queries[9].qname, "api.example.com.");
    }
}

#[tokio::test(start_paused = true)]
async fn service_in_another_namespace_costs_four() {
    for flavor in Flavor::ALL {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, POD, "kubernetes.default").await;
        assert_eq!(
            (r.queries.len(), nx(&r), r.result),
            (4, 2, Ok(())),
            "{flavor}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn own_namespace_service_costs_two() {
    let net = SimNet::lab();
    let r = lookup(&net, Flavor::Glibc, POD, "kubernetes").await;
    assert_eq!((r.queries.len(), nx(&r), r.result), (2, 0, Ok(())));
}

#[tokio::test(start_paused = true)]
async fn trailing_dot_costs_two() {
    for flavor in Flavor::ALL {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, POD, "api.example.com.").await;
        assert_eq!((r.queries.len(), r.result), (2, Ok(())), "{flavor}");
    }
}

#[tokio::test(start_paused = true)]
async fn cluster_fqdn_without_the_dot_is_the_worst_case() {
    let net = SimNet::lab();
    let r = lookup(
        &net,
        Flavor::Glibc,
        POD,
        "kubernetes.default.svc.cluster.local",
    )
    .await;
    assert_eq!((r.queries.len(), nx(&r), r.result), (10, 8, Ok(())));
}

#[tokio::test(start_paused = true)]
async fn nonexistent_name_is_all_nxdomain() {
    for flavor in Flavor::ALL {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, POD, "nosuch.example.com").await;
        assert_eq!(
            (r.queries.len(), nx(&r), r.result),
            (10, 10, Err(Failure::Nxdomain)),
            "{flavor}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn servfail_on_the_second_search_domain() {
    let conf =
        "nameserver 10.96.0.10\nsearch node.internal broken.test\noptions ndots:5 timeout:2\n";
    let expected = [
        (Flavor::Glibc, 8, 4, Ok(()), Duration::ZERO),
        (
            Flavor::Musl,
            14,
            12,
            Err(Failure::Servfail),
            Duration::from_secs(2),
        ),
        (Flavor::Go, 8, 4, Ok(()), Duration::ZERO),
    ];
    for (flavor, queries, servfail, result, duration) in expected {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, conf, "api.example.com").await;
        assert_eq!(
            (r.queries.len(), r.result, r.duration),
            (queries, result, duration),
            "{flavor}"
        );
        assert_eq!(r.count(QueryStatus::ServFail), servfail, "{flavor}");
    }
}

#[tokio::test(start_paused = true)]
async fn at_ndots_musl_tries_the_name_only_as_is() {
    let conf = POD.replace("ndots:5", "ndots:1");
    for (flavor, queries) in [(Flavor::Glibc, 10), (Flavor::Musl, 2), (Flavor::Go, 10)] {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, &conf, "nosuch.example.com").await;
        assert_eq!(
            (r.queries.len(), r.result),
            (queries, Err(Failure::Nxdomain)),
            "{flavor}"
        );
        assert_eq!(r.queries[0].qname, "nosuch.example.com.", "{flavor}");
    }
}

#[tokio::test(start_paused = true)]
async fn refused_as_is_first() {
    let conf = POD.replace("ndots:5", "ndots:1");
    let net = SimNet::lab();
    let r = lookup(&net, Flavor::Glibc, &conf, "kubernetes.default").await;
    assert_eq!(
        (r.queries.len(), r.count(QueryStatus::Refused), r.result),
        (8, 4, Ok(()))
    );
    let net = SimNet::lab();
    let r = lookup(&net, Flavor::Musl, &conf, "kubernetes.default").await;
    assert_eq!(
        (r.queries.len(), r.result, r.duration),
        (4, Err(Failure::Refused), Duration::from_secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn blackholed_server() {
    let conf =
        "nameserver 10.96.0.10\nsearch a.example b.example\noptions ndots:5 timeout:1 attempts:2\n";
    let expected = [
        (Flavor::Glibc, 8, 4),
        (Flavor::Musl, 4, 1),
        (Flavor::Go, 12, 6),
    ];
    for (flavor, queries, seconds) in expected {
        let net = SimNet::lab();
        net.server(NS, Behavior::Blackhole);
        let r = lookup(&net, flavor, conf, "foo.bar").await;
        assert_eq!(
            (
                r.queries.len(),
                r.count(QueryStatus::Timeout),
                r.result,
                r.duration
            ),
            (
                queries,
                queries,
                Err(Failure::Timeout),
                Duration::from_secs(seconds)
            ),
            "{flavor}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn glibc_timeout_signature_with_defaults_is_twenty_seconds() {
    let net = SimNet::lab();
    net.server(NS, Behavior::Blackhole);
    let r = lookup(&net, Flavor::Glibc, POD, "api.example.com").await;
    assert_eq!((r.queries.len(), r.duration), (8, Duration::from_secs(20)));
}

#[tokio::test(start_paused = true)]
async fn truncated_answer() {
    let with_edns = POD.replace("ndots:5", "ndots:5 edns0");
    let expected = [
        (Flavor::Glibc, POD, "big.default", 18, 6, Ok(())),
        (Flavor::Glibc, POD, "huge.default", 24, 8, Ok(())),
        (
            Flavor::Glibc,
            with_edns.as_str(),
            "big.default",
            12,
            0,
            Ok(()),
        ),
        (
            Flavor::MuslLegacy,
            POD,
            "big.default",
            4,
            0,
            Err(Failure::Nodata),
        ),
        (Flavor::Musl, POD, "big.default", 5, 1, Ok(())),
        (Flavor::Go, POD, "big.default", 4, 0, Ok(())),
    ];
    for (flavor, conf, name, queries, over_tcp, result) in expected {
        let net = SimNet::lab();
        let r = lookup(&net, flavor, conf, name).await;
        assert_eq!(
            (r.queries.len(), tcp(&r), r.result),
            (queries, over_tcp, result),
            "{flavor} {name} {conf}"
        );
    }
}

/// Measured with a root zone loaded, so the as-is name gets NXDOMAIN rather than REFUSED.
#[tokio::test(start_paused = true)]
async fn cname_only_answer() {
    let expected = [
        (Flavor::Glibc, 4, Failure::NoAddress),
        (Flavor::Musl, 4, Failure::NoAddress),
        (Flavor::Go, 10, Failure::Nxdomain),
    ];
    for (flavor, queries, failure) in expected {
        let net = SimNet::lab().with_root();
        let r = lookup(&net, flavor, POD, "ext.default").await;
        assert_eq!(
            (r.queries.len(), r.result),
            (queries, Err(failure)),
            "{flavor}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn musl_ignores_a_long_search_line() {
    let domains: Vec<String> = (0..12)
        .map(|i| format!("team-{i:02}.svc.cluster.local"))
        .collect();
    let conf = format!(
        "nameserver 10.96.0.10\nsearch {} default.svc.cluster.local\noptions ndots:5\n",
        domains.join(" ")
    );
    assert!(conf.lines().nth(1).is_some_and(|l| l.len() > 300));
    let net = SimNet::lab();
    let r = lookup(&net, Flavor::Musl, &conf, "kubernetes").await;
    assert_eq!(r.queries[0].qname, "kubernetes.");
    let net = SimNet::lab();
    let r = lookup(&net, Flavor::Glibc, &conf, "kubernetes").await;
    assert_eq!((r.queries.len(), r.result), (26, Ok(())));
}

#[tokio::test(start_paused = true)]
async fn closed_port() {
    let net = SimNet::lab();
    net.server(NS, Behavior::Closed);
    let r = lookup(&net, Flavor::Glibc, POD, "api.example.com").await;
    assert_eq!((r.queries.len(), r.result), (4, Err(Failure::Unreachable)));
    assert_eq!(r.count(QueryStatus::Unreachable), 4);

    let net = SimNet::lab();
    net.server(NS, Behavior::Closed);
    let r = lookup(&net, Flavor::Go, POD, "api.example.com").await;
    assert_eq!((r.queries.len(), r.duration), (20, Duration::ZERO));

    let net = SimNet::lab();
    net.server(NS, Behavior::Closed);
    let r = lookup(&net, Flavor::Musl, POD, "api.example.com").await;
    assert_eq!(
        (r.result, r.duration),
        (Err(Failure::Timeout), Duration::from_secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn musl_asks_every_nameserver_at_once() {
    let net = SimNet::lab();
    net.server("10.96.0.11:53", Behavior::Zone);
    let conf = POD.replace(
        "nameserver 10.96.0.10",
        "nameserver 10.96.0.10\nnameserver 10.96.0.11\noptions rotate",
    );
    let r = lookup(&net, Flavor::Musl, &conf, "kubernetes.default").await;
    assert_eq!((r.queries.len(), r.result), (8, Ok(())));
    // The second server's replies came after musl had its answer: still recorded as sent.
    assert_eq!(
        (
            nx(&r),
            r.count(QueryStatus::NoError),
            r.count(QueryStatus::Timeout)
        ),
        (4, 4, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn musl_late_replies_do_not_lengthen_the_lookup() {
    let conf = POD.replace(
        "nameserver 10.96.0.10",
        "nameserver 10.96.0.10\nnameserver 10.96.0.11",
    );
    let net = SimNet::lab();
    net.server("10.96.0.11:53", Behavior::Blackhole);
    let start = Instant::now();
    let r = lookup(&net, Flavor::Musl, &conf, "kubernetes.default").await;
    assert_eq!((r.queries.len(), r.result), (8, Ok(())));
    assert_eq!(r.duration, Duration::ZERO);
    // Only the silent server's queries are TIMEOUT, after waiting out the linger.
    let silent: Vec<QueryStatus> = r
        .queries
        .iter()
        .filter(|q| q.server.to_string() == "10.96.0.11:53")
        .map(|q| q.status)
        .collect();
    assert_eq!(silent, [QueryStatus::Timeout; 4]);
    assert_eq!(r.count(QueryStatus::Timeout), 4);
    assert_eq!(start.elapsed(), super::linger::LINGER);
}

#[tokio::test(start_paused = true)]
async fn glibc_rotate_spreads_steps_over_the_servers() {
    let conf = POD.replace(
        "nameserver 10.96.0.10",
        "nameserver 10.96.0.10\nnameserver 10.96.0.11\noptions rotate",
    );
    let mut servers = std::collections::HashSet::new();
    for _ in 0..20 {
        let net = SimNet::lab();
        net.server("10.96.0.11:53", Behavior::Zone);
        let r = lookup(&net, Flavor::Glibc, &conf, "api.example.com").await;
        assert_eq!(r.queries.len(), 10);
        servers.extend(r.queries.iter().map(|q| q.server));
    }
    assert_eq!(servers.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn glibc_refused_on_a_search_domain_leaves_the_list_and_tries_as_is() {
    let conf =
        "nameserver 10.96.0.10\nsearch node.internal outside.test cluster.local\noptions ndots:5\n";
    let net = SimNet::lab();
    let r = lookup(&net, Flavor::Glibc, conf, "nosuch.example.com").await;
    let names: Vec<&str> = r.queries.iter().map(|q| q.qname.as_str()).collect();
    assert_eq!(
        names,
        [
            "nosuch.example.com.node.internal.",
            "nosuch.example.com.node.internal.",
            "nosuch.example.com.outside.test.",
            "nosuch.example.com.outside.test.",
            "nosuch.example.com.outside.test.",
            "nosuch.example.com.outside.test.",
            "nosuch.example.com.",
            "nosuch.example.com.",
        ]
    );
    assert_eq!(r.result, Err(Failure::Nxdomain));
}

#[tokio::test(start_paused = true)]
async fn glibc_switches_to_single_request_when_a_reply_goes_missing() {
    let net = SimNet::lab();
    net.drop_replies(Qtype::Aaaa, 1);
    let r = lookup(&net, Flavor::Glibc, POD, "kubernetes").await;
    assert_eq!(
        (r.queries.len(), r.result, r.duration),
        (4, Ok(()), Duration::from_secs(5))
    );
    assert_eq!(r.count(QueryStatus::Timeout), 1);
}

#[tokio::test(start_paused = true)]
async fn ipv4_only_pods_send_a_only() {
    let net = SimNet::lab();
    let opts = LookupOptions {
        conf: ResolvConf::parse(POD, Flavor::Glibc),
        flavor: Flavor::Glibc,
        qtypes: QueryTypes::A,
        server: None,
    };
    let r = walk::lookup(
        &net,
        "api.example.com",
        &opts,
        Instant::now() + Duration::from_secs(60),
    )
    .await;
    assert_eq!((r.queries.len(), nx(&r)), (5, 4));
    let no_aaaa = POD.replace("ndots:5", "ndots:5 no-aaaa");
    let r = lookup(&SimNet::lab(), Flavor::Glibc, &no_aaaa, "api.example.com").await;
    assert_eq!(r.queries.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_walk() {
    let net = SimNet::lab();
    net.server(NS, Behavior::Blackhole);
    let opts = LookupOptions {
        conf: ResolvConf::parse(POD, Flavor::Glibc),
        flavor: Flavor::Glibc,
        qtypes: QueryTypes::Both,
        server: None,
    };
    let r = walk::lookup(
        &net,
        "api.example.com",
        &opts,
        Instant::now() + Duration::from_secs(7),
    )
    .await;
    assert_eq!(
        (r.result, r.duration, r.queries.len()),
        (Err(Failure::Timeout), Duration::from_secs(7), 4)
    );
}

/// The servers each query went to, as indexes into `servers`.
fn servers_asked(r: &LookupReport, servers: &[&str]) -> Vec<usize> {
    r.queries
        .iter()
        .filter_map(|q| servers.iter().position(|s| q.server.to_string() == *s))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn go_rotate_counter_lives_as_long_as_the_configuration() {
    let servers = ["10.96.0.10:53", "10.96.0.11:53", "10.96.0.12:53"];
    let conf = POD.replace(
        "nameserver 10.96.0.10",
        "nameserver 10.96.0.10\nnameserver 10.96.0.11\nnameserver 10.96.0.12\noptions rotate",
    );
    let net = SimNet::lab();
    net.server(servers[1], Behavior::Zone);
    net.server(servers[2], Behavior::Zone);
    let opts = LookupOptions {
        conf: ResolvConf::parse(&conf, Flavor::Go),
        flavor: Flavor::Go,
        qtypes: QueryTypes::Both,
        server: None,
    };
    let until = Instant::now() + Duration::from_secs(60);
    // Each query type of each step takes the next offset: A first, then AAAA.
    let first = walk::lookup(&net, "kubernetes.default", &opts, until).await;
    assert_eq!(servers_asked(&first, &servers), [0, 1, 2, 0]);
    // The same configuration goes on counting, as a long-running Go process does.
    let again = walk::lookup(&net, "kubernetes.default", &opts.clone(), until).await;
    assert_eq!(servers_asked(&again, &servers), [1, 2, 0, 1]);
    // A configuration read afresh starts over.
    let fresh = LookupOptions {
        conf: ResolvConf::parse(&conf, Flavor::Go),
        ..opts
    };
    let restart = walk::lookup(&net, "kubernetes.default", &fresh, until).await;
    assert_eq!(servers_asked(&restart, &servers), [0, 1, 2, 0]);
}

#[tokio::test(start_paused = true)]
async fn go_rotate_with_the_first_server_silent() {
    let conf = "nameserver 10.96.0.10\nnameserver 10.96.0.11\n\
                search default.svc.cluster.local\noptions ndots:5 rotate timeout:1 attempts:1\n";
    let net = SimNet::lab();
    net.server(NS, Behavior::Blackhole);
    net.server("10.96.0.11:53", Behavior::Zone);
    let r = lookup(&net, Flavor::Go, conf, "kubernetes").await;
    // A starts at the silent server and waits it out; AAAA starts at the live one.
    assert_eq!(
        (r.queries.len(), r.count(QueryStatus::Timeout), r.result),
        (3, 1, Ok(()))
    );
    assert_eq!(r.duration, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_answer_alone_does_not_wait_for_late_replies() {
    let conf = POD.replace(
        "nameserver 10.96.0.10",
        "nameserver 10.96.0.10\nnameserver 10.96.0.11",
    );
    let net = SimNet::lab();
    net.server("10.96.0.11:53", Behavior::Blackhole);
    let opts = LookupOptions {
        conf: ResolvConf::parse(&conf, Flavor::Musl),
        flavor: Flavor::Musl,
        qtypes: QueryTypes::Both,
        server: None,
    };
    let start = Instant::now();
    let r = walk::answer(
        &net,
        "kubernetes.default",
        &opts,
        start + Duration::from_secs(60),
    )
    .await;
    assert_eq!((r.result, start.elapsed()), (Ok(()), Duration::ZERO));
}
