//! `hopwatch run` probing DNS targets against Knot DNS, checked through `/metrics`.
//!
//! The agent runs as a child process with a temporary config (1 s interval). After a few
//! cycles the test scrapes `/metrics` and checks every DNS series: the probe and lookup
//! results, the wire queries by mode, type, rcode and transport, the per-lookup gauges, the
//! amplification ratio and the histograms. The wire query counters must equal what Knot
//! itself counted, read at a moment when no probe is in flight.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::knot::{Counters, Knot};
use support::process::{Process, http_get};
use support::prom::Exposition;
use support::{POD_RESOLV_CONF, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");

/// `hopwatch run --config FILE` with its temporary directory; killed by PID on drop.
struct Agent {
    listen: SocketAddr,
    process: Process,
    _dir: TempDir,
}

impl Agent {
    /// Writes a config with `listen` and the `dns:` list given, starts the agent and waits
    /// until it serves `/metrics`.
    fn start(dns_targets: &str) -> Agent {
        let dir = TempDir::new("agent");
        let listen = support::free_tcp_addr();
        let config = format!("listen: \"{listen}\"\ndns:\n{dns_targets}");
        let path = dir.file("config.yaml", &config);
        let mut command = Command::new(BIN);
        command
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info");
        let process = Process::spawn("hopwatch run", command, dir.path().join("agent.log"));
        let mut agent = Agent {
            listen,
            process,
            _dir: dir,
        };
        agent.wait_until(Duration::from_secs(20), "serve /metrics", |a| {
            a.try_scrape().is_some()
        });
        agent
    }

    fn try_scrape(&self) -> Option<Exposition> {
        let response = http_get(self.listen, "/metrics").ok()?;
        assert_eq!(response.status, 200, "/metrics: {}", response.body);
        let parsed = Exposition::parse(&response.body);
        Some(parsed.unwrap_or_else(|e| panic!("/metrics is not exposition text: {e}")))
    }

    fn scrape(&mut self) -> Exposition {
        self.process.assert_running();
        self.try_scrape()
            .unwrap_or_else(|| panic!("/metrics on {} stopped answering", self.listen))
    }

    /// Polls `done` every 100 ms; fails the test with the agent's log after `limit`.
    fn wait_until(&mut self, limit: Duration, what: &str, done: impl Fn(&Agent) -> bool) {
        let give_up = Instant::now() + limit;
        loop {
            self.process.assert_running();
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "the agent did not {what} within {limit:?}:\n{}",
                self.process.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A DNS target entry for the config.
fn target(
    id: &str,
    name: &str,
    flavor: &str,
    resolv_conf: &std::path::Path,
    server: SocketAddr,
) -> String {
    format!(
        "  - name: {name}\n    id: {id}\n    flavor: {flavor}\n    resolv_conf: {}\n    \
         server: \"{server}\"\n    interval_seconds: 1\n    timeout_seconds: 0.8\n",
        resolv_conf.display()
    )
}

/// Waits for `cycles` probes of `id`, then returns a scrape and the Knot counters since
/// `before`, taken while no probe was in flight: the scrape before and after reading Knot
/// agree, and Knot has counted exactly the queries the agent reports.
fn quiet_snapshot(
    agent: &mut Agent,
    knot: &Knot,
    before: &Counters,
    id: &str,
    cycles: f64,
) -> (Exposition, Counters) {
    let probes = |e: &Exposition| e.sum("hopwatch_probes_total", &[("hop", "dns"), ("target", id)]);
    let what = format!("complete {cycles} probes of {id}");
    agent.wait_until(Duration::from_secs(30), &what, |a| {
        a.try_scrape().is_some_and(|e| probes(&e) >= cycles)
    });
    let queries = |e: &Exposition| e.sum("hopwatch_dns_queries_total", &[("target", id)]);
    let mut last = String::new();
    for _ in 0..20 {
        let first = agent.scrape();
        let seen = knot.counters().since(before);
        let second = agent.scrape();
        if queries(&first) == queries(&second) && queries(&first) == seen.queries() as f64 {
            return (first, seen);
        }
        last = format!(
            "agent reported {} then {} queries, Knot counted {:?}",
            queries(&first),
            queries(&second),
            seen.0
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    panic!("the agent's query counters never matched Knot's: {last}");
}

/// Checks a histogram family for one label set: cumulative buckets ending in `+Inf`, whose
/// count equals `_count`; returns `(count, sum)`.
fn histogram(e: &Exposition, family: &str, labels: &[(&str, &str)]) -> (f64, f64) {
    assert_eq!(e.type_of(family), Some("histogram"), "{family}");
    let buckets = e.series(&format!("{family}_bucket"), labels);
    assert!(
        buckets.len() >= 2,
        "{family} {labels:?} has buckets: {buckets:?}"
    );
    let mut bounds: Vec<(f64, f64)> = buckets
        .iter()
        .map(|s| {
            let le = s.label("le").expect("a bucket has le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le is a number")
            };
            (le, s.value)
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        bounds.windows(2).all(|w| w[0].1 <= w[1].1),
        "{family} {labels:?}: buckets are cumulative: {bounds:?}"
    );
    let (last_le, last_count) = bounds[bounds.len() - 1];
    assert_eq!(last_le, f64::INFINITY, "{family} {labels:?} ends in +Inf");
    let count = e.value(&format!("{family}_count"), labels);
    let sum = e.value(&format!("{family}_sum"), labels);
    assert_eq!(
        last_count, count,
        "{family} {labels:?}: +Inf bucket equals _count"
    );
    (count, sum)
}

/// Every sample's label values leak no query name and no server address.
fn assert_no_leaky_labels(e: &Exposition, server: SocketAddr) {
    let server_ip = server.ip().to_string();
    for s in e.samples.iter().filter(|s| s.name.starts_with("hopwatch_")) {
        for (k, v) in &s.labels {
            assert!(
                !v.contains("cluster.local")
                    && !v.contains("node.internal")
                    && !v.contains(&server_ip),
                "{}{{{k}={v:?}}} carries a query name or an address",
                s.name
            );
        }
    }
}

/// `api.example.com` from a pod with `ndots:5` (glibc): each cycle looks it up through the
/// search list (10 queries, 8 NXDOMAIN) and as an FQDN (2 queries), so the amplification is 5
/// and Knot sees 12 queries per cycle.
#[test]
fn dns_probe_metrics_match_the_server() {
    let knot = Knot::start();
    let dir = TempDir::new("agent-conf");
    let resolv_conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let id = "api.example.com";
    let entry = format!(
        "  - name: api.example.com\n    resolv_conf: {}\n    server: \"{}\"\n    \
         interval_seconds: 1\n    timeout_seconds: 0.8\n",
        resolv_conf.display(),
        knot.addr()
    );
    let before = knot.counters();
    let mut agent = Agent::start(&entry);
    let (e, seen) = quiet_snapshot(&mut agent, &knot, &before, id, 3.0);

    let n = e.value(
        "hopwatch_probes_total",
        &[("hop", "dns"), ("target", id), ("result", "success")],
    );
    assert!(n >= 3.0, "{n} probes");
    assert_eq!(
        e.sum("hopwatch_probes_total", &[("target", id)]),
        n,
        "only successes"
    );
    assert_eq!(e.type_of("hopwatch_probes_total"), Some("counter"));
    let lookups = [("target", id), ("flavor", "glibc"), ("result", "success")];
    assert_eq!(e.value("hopwatch_dns_lookups_total", &lookups), n);
    assert_eq!(e.sum("hopwatch_dns_lookups_total", &[("target", id)]), n);

    let q = |mode: &str, qtype: &str, rcode: &str| {
        let labels = [
            ("target", id),
            ("mode", mode),
            ("qtype", qtype),
            ("rcode", rcode),
            ("transport", "udp"),
        ];
        e.value("hopwatch_dns_queries_total", &labels)
    };
    for qtype in ["A", "AAAA"] {
        assert_eq!(
            q("search", qtype, "NXDOMAIN"),
            4.0 * n,
            "search {qtype} NXDOMAIN"
        );
        assert_eq!(q("search", qtype, "NOERROR"), n, "search {qtype} NOERROR");
        assert_eq!(q("fqdn", qtype, "NOERROR"), n, "fqdn {qtype} NOERROR");
    }
    let total = e.sum("hopwatch_dns_queries_total", &[("target", id)]);
    assert_eq!(
        total,
        12.0 * n,
        "{}",
        e.describe("hopwatch_dns_queries_total")
    );
    assert_eq!(e.type_of("hopwatch_dns_queries_total"), Some("counter"));

    // What Knot counted is what the agent reports.
    let by = |label: &str, value: &str| {
        e.sum(
            "hopwatch_dns_queries_total",
            &[("target", id), (label, value)],
        )
    };
    assert_eq!(seen.queries() as f64, total);
    assert_eq!(
        (seen.udp() as f64, seen.tcp() as f64),
        (by("transport", "udp"), by("transport", "tcp"))
    );
    for qtype in ["A", "AAAA"] {
        assert_eq!(seen.qtype(qtype) as f64, by("qtype", qtype), "{qtype}");
    }
    for rcode in ["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] {
        assert_eq!(seen.rcode(rcode) as f64, by("rcode", rcode), "{rcode}");
    }
    assert_eq!(
        (seen.rcode("NXDOMAIN") as f64, seen.rcode("NOERROR") as f64),
        (8.0 * n, 4.0 * n)
    );

    let per_lookup = |mode: &str| {
        e.value(
            "hopwatch_dns_queries_per_lookup",
            &[("target", id), ("mode", mode)],
        )
    };
    assert_eq!((per_lookup("search"), per_lookup("fqdn")), (10.0, 2.0));
    assert_eq!(e.type_of("hopwatch_dns_queries_per_lookup"), Some("gauge"));
    let nx = |mode: &str| {
        e.value(
            "hopwatch_dns_nxdomain_per_lookup",
            &[("target", id), ("mode", mode)],
        )
    };
    assert_eq!((nx("search"), nx("fqdn")), (8.0, 0.0));
    assert_eq!(
        e.value("hopwatch_dns_amplification_ratio", &[("target", id)]),
        5.0
    );
    assert_eq!(e.type_of("hopwatch_dns_amplification_ratio"), Some("gauge"));

    let labels = [("target", id), ("mode", "search")];
    let (count, sum) = histogram(&e, "hopwatch_dns_lookup_duration_seconds", &labels);
    assert_eq!(count, n, "search lookups");
    assert!(sum > 0.0 && sum < 0.8 * n, "lookups took {sum} s in all");
    assert!(
        e.series(
            "hopwatch_dns_lookup_duration_seconds_count",
            &[("mode", "fqdn")]
        )
        .is_empty(),
        "the FQDN baseline is counted, not timed"
    );
    assert!(
        e.series("hopwatch_probe_duration_seconds_count", &[("hop", "dns")])
            .is_empty(),
        "a DNS probe's duration is its search lookup's, exported once"
    );
    let (lags, lag_sum) = histogram(&e, "hopwatch_schedule_lag_seconds", &[]);
    assert!(lags >= n, "{lags} lags observed for {n} probes");
    assert!(lag_sum >= 0.0 && lag_sum.is_finite());

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(e.value("hopwatch_build_info", &[("version", version)]), 1.0);
    assert_eq!(e.value("hopwatch_targets", &[("hop", "dns")]), 1.0);
    assert_no_leaky_labels(&e, knot.addr());
}

/// A name that does not exist, emulating musl: every cycle is 10 NXDOMAIN through the search
/// list and 2 as an FQDN, and the probe's result label is the reason.
#[test]
fn failed_lookups_are_labelled_with_the_reason() {
    let knot = Knot::start();
    let dir = TempDir::new("agent-conf");
    let resolv_conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let entry = target(
        "missing",
        "nosuch.example.com",
        "musl",
        &resolv_conf,
        knot.addr(),
    );
    let before = knot.counters();
    let mut agent = Agent::start(&entry);
    let (e, seen) = quiet_snapshot(&mut agent, &knot, &before, "missing", 2.0);

    let id = [("target", "missing")];
    let n = e.value(
        "hopwatch_probes_total",
        &[
            ("hop", "dns"),
            ("target", "missing"),
            ("result", "nxdomain"),
        ],
    );
    assert!(n >= 2.0);
    assert_eq!(e.sum("hopwatch_probes_total", &id), n, "only nxdomain");
    let lookups = [
        ("target", "missing"),
        ("flavor", "musl"),
        ("result", "nxdomain"),
    ];
    assert_eq!(e.value("hopwatch_dns_lookups_total", &lookups), n);
    let q = |mode: &str| {
        e.sum(
            "hopwatch_dns_queries_total",
            &[("target", "missing"), ("mode", mode), ("rcode", "NXDOMAIN")],
        )
    };
    assert_eq!((q("search"), q("fqdn")), (10.0 * n, 2.0 * n));
    assert_eq!(e.sum("hopwatch_dns_queries_total", &id), 12.0 * n);
    assert_eq!(
        (seen.rcode("NXDOMAIN"), seen.queries()),
        ((12.0 * n) as u64, (12.0 * n) as u64)
    );
    let nx = |mode: &str| {
        e.value(
            "hopwatch_dns_nxdomain_per_lookup",
            &[("target", "missing"), ("mode", mode)],
        )
    };
    assert_eq!((nx("search"), nx("fqdn")), (10.0, 2.0));
    assert_eq!(e.value("hopwatch_dns_amplification_ratio", &id), 5.0);
    assert_no_leaky_labels(&e, knot.addr());
}

// ---------------------------------------------------------------------------------------
// The exposition parser the assertions above rely on.

#[test]
fn exposition_parser_reads_labels_escapes_and_special_values() {
    let text = "# HELP x_total A counter.\n# TYPE x_total counter\n\
                x_total{a=\"1\",b=\"q\\\"uo\\\\te\\nnl\"} 3\n\
                x_total{a=\"2\"} 4e0\n\
                h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2 1700000000000\n\
                g NaN\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(e.type_of("x_total"), Some("counter"));
    assert_eq!(e.helps["x_total"], "A counter.");
    assert_eq!(e.value("x_total", &[("a", "1")]), 3.0);
    assert_eq!(e.series("x_total", &[("b", "q\"uo\\te\nnl")]).len(), 1);
    assert_eq!(e.sum("x_total", &[]), 7.0);
    assert_eq!(e.value("h_bucket", &[("le", "+Inf")]), 2.0);
    assert!(e.value("g", &[]).is_nan());
    assert_eq!(e.sum("absent", &[]), 0.0);
    assert!(Exposition::parse("x{a=\"unterminated} 1\n").is_err());
    assert!(Exposition::parse("x one\n").is_err());
}

#[test]
#[should_panic(expected = "no series x_total")]
fn exposition_value_fails_when_the_series_is_missing() {
    let e = Exposition::parse("x_total{a=\"1\"} 3\n").unwrap();
    e.value("x_total", &[("a", "2")]);
}
