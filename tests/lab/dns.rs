//! Scenarios of the DNS hop: the cluster DNS server down, DNS blocked from one node, and the
//! search-list amplification the agents measure compared with what CoreDNS counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::expo::Expo;
use crate::harness::{Lab, NODES, eventually};
use crate::{SERVICES, WAIT, all_healthy, delta, probes, steady_series, verdict_is, wait_increase};

/// `hopwatch_dns_lookup_duration_seconds` of the lookups through the kube-dns ClusterIP:
/// (observations at most `le` seconds, all observations, sum).
fn dns_histogram(e: &Expo, le: &str) -> (f64, f64, f64) {
    let labels = [
        ("target", "kubernetes.default@kube-dns"),
        ("mode", "search"),
    ];
    let mut bucket = labels.to_vec();
    bucket.push(("le", le));
    (
        e.sum("hopwatch_dns_lookup_duration_seconds_bucket", &bucket),
        e.sum("hopwatch_dns_lookup_duration_seconds_count", &labels),
        e.sum("hopwatch_dns_lookup_duration_seconds_sum", &labels),
    )
}

#[test]
fn dns_server_down_times_out_with_the_resolver_signature_and_recovers_within_an_interval() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    lab.fault(&["dns-down"]);
    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<(f64, f64, f64)> = NODES
        .iter()
        .map(|n| dns_histogram(&lab.metrics(n), "1.024"))
        .collect();
    wait_increase(&lab, &NODES, "DNS timeouts", 2.0, |e| {
        probes(e, "dns", "kubernetes.default@kube-dns", "timeout")
    });
    for (ns, svc) in SERVICES {
        verdict_is(&lab, &NODES, (ns, svc), "dns").unwrap_or_else(|e| panic!("{e}"));
    }
    // The agents' resolv.conf says `timeout:1`: every lookup while the server is silent
    // takes more than that one-second resolver timeout, none lands in a faster bucket.
    for (node, (fast0, count0, sum0)) in NODES.iter().zip(before) {
        let (fast, count, sum) = dns_histogram(&lab.metrics(node), "1.024");
        assert!(count > count0, "{node}: no lookup observed");
        assert_eq!(
            fast, fast0,
            "{node}: a lookup finished under the 1 s resolver timeout"
        );
        assert!(
            (sum - sum0) / (count - count0) >= 1.0,
            "{node}: mean lookup {} s",
            (sum - sum0) / (count - count0)
        );
    }
    let successes: Vec<f64> = NODES
        .iter()
        .map(|n| {
            probes(
                &lab.metrics(n),
                "dns",
                "kubernetes.default@kube-dns",
                "success",
            )
        })
        .collect();
    lab.heal(&["dns-down"]);
    let healed = Instant::now();
    eventually("lookups succeed again", WAIT, || {
        for (node, before) in NODES.iter().zip(&successes) {
            let now = probes(
                &lab.try_metrics(node)?,
                "dns",
                "kubernetes.default@kube-dns",
                "success",
            );
            if now <= *before {
                return Err(format!("{node}: no success yet"));
            }
        }
        Ok(())
    });
    // One DNS interval is 2 s; add its jitter (0.2 s), and the polling step and scrapes.
    let took = healed.elapsed();
    assert!(
        took <= Duration::from_millis(3000),
        "recovery took {took:?}, more than one interval"
    );
    eventually("recovered", WAIT, || all_healthy(&lab));
}

/// CoreDNS crashed, not frozen: its pod's port 53 is closed while its endpoint stays Ready.
/// Every lookup fails, `unreachable` when the port-unreachable comes back and `timeout` when
/// it does not: the kernel rate-limits those ICMP errors (`net.ipv4.icmp_ratelimit`), so most
/// of a busy resolver's queries see silence, as with a frozen server. Every verdict is `dns`;
/// once CoreDNS is started again, lookups succeed within an interval.
#[test]
fn coredns_killed_fails_every_lookup_and_recovers_within_an_interval_of_its_restart() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let target = "kubernetes.default@kube-dns";
    let failed = |e: &Expo| {
        e.all(
            "hopwatch_probes_total",
            &[("hop", "dns"), ("target", target)],
        )
        .filter(|s| s.label("result") != "success")
        .map(|s| s.value)
        .sum::<f64>()
    };
    lab.fault(&["dns-kill"]);
    // A lookup in flight at the crash times out; the ones after it are what a crash looks like.
    wait_increase(&lab, &NODES, "DNS failures", 1.0, failed);
    let mid: Vec<Expo> = lab.all_metrics();
    wait_increase(&lab, &NODES, "DNS failures after the crash", 3.0, failed);
    for (ns, svc) in SERVICES {
        verdict_is(&lab, &NODES, (ns, svc), "dns").unwrap_or_else(|e| panic!("{e}"));
    }
    for (node, m) in NODES.iter().zip(&mid) {
        let e = lab.metrics(node);
        let grew: Vec<String> = e
            .all(
                "hopwatch_probes_total",
                &[("hop", "dns"), ("target", target)],
            )
            .filter(|s| s.value > probes(m, "dns", target, s.label("result")))
            .map(|s| s.label("result").to_string())
            .collect();
        assert!(
            !grew.is_empty() && grew.iter().all(|r| r == "unreachable" || r == "timeout"),
            "{node}: a crashed CoreDNS gave {grew:?}"
        );
    }
    let successes: Vec<f64> = NODES
        .iter()
        .map(|n| probes(&lab.metrics(n), "dns", target, "success"))
        .collect();
    lab.heal(&["dns-kill"]);
    let restarted = Instant::now();
    eventually("lookups succeed again", WAIT, || {
        for (node, before) in NODES.iter().zip(&successes) {
            if probes(&lab.try_metrics(node)?, "dns", target, "success") <= *before {
                return Err(format!("{node}: no success yet"));
            }
        }
        Ok(())
    });
    let took = restarted.elapsed();
    eprintln!("lookups succeed {took:?} after CoreDNS answers again");
    assert!(
        took <= Duration::from_millis(3000),
        "recovery took {took:?}, more than one interval"
    );
    eventually("recovered", WAIT, || all_healthy(&lab));
}

#[test]
fn dns_blocked_from_one_node_shows_on_that_node_only() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    lab.fault(&["dns-block", "--node", "node-2"]);
    wait_increase(&lab, &["node-2"], "DNS timeouts on node-2", 2.0, |e| {
        probes(e, "dns", "kubernetes.default@kube-dns", "timeout")
    });
    for (ns, svc) in SERVICES {
        verdict_is(&lab, &["node-2"], (ns, svc), "dns").unwrap_or_else(|e| panic!("{e}"));
    }
    wait_increase(&lab, &["node-1"], "node-1 lookups", 2.0, |e| {
        probes(e, "dns", "kubernetes.default@kube-dns", "success")
    });
    let e = lab.metrics("node-1");
    assert_eq!(
        probes(&e, "dns", "kubernetes.default@kube-dns", "timeout"),
        0.0
    );
    for (ns, svc) in SERVICES {
        verdict_is(&lab, &["node-1"], (ns, svc), "none").unwrap_or_else(|e| panic!("{e}"));
    }
    lab.heal(&["dns-block", "--node", "node-2"]);
    eventually("recovered", WAIT, || all_healthy(&lab));
}

/// The name only the agents' static DNS target looks up (CoreDNS counts its zones apart).
const AMP_NAME: &str = "www.example.org";

/// The agents' wire queries for www.example.org (every node, both modes) by
/// `(qtype or rcode)`, and their lookups of it.
fn amp_agents(lab: &Lab) -> Result<(BTreeMap<String, f64>, f64), String> {
    let mut by = BTreeMap::new();
    let mut lookups = 0.0;
    for node in NODES {
        let e = lab.try_metrics(node)?;
        for s in e.all("hopwatch_dns_queries_total", &[("target", AMP_NAME)]) {
            *by.entry(s.label("qtype").to_string()).or_insert(0.0) += s.value;
            *by.entry(s.label("rcode").to_string()).or_insert(0.0) += s.value;
        }
        lookups += e.sum("hopwatch_dns_lookups_total", &[("target", AMP_NAME)]);
    }
    Ok((by, lookups))
}

/// CoreDNS's counters of the www.example.org zones, in the same shape.
fn amp_coredns(lab: &Lab) -> BTreeMap<String, f64> {
    let stats = lab.dns_stats();
    let mut by = BTreeMap::new();
    for counter in ["query-type", "response-code"] {
        if let Some(map) = stats["amp"][counter].as_object() {
            for (k, v) in map {
                by.insert(k.clone(), v.as_f64().unwrap_or(0.0));
            }
        }
    }
    by
}

/// Agent and CoreDNS counters read at one instant: the agents' are read before and after
/// CoreDNS's, and the reading is retried until no lookup completed in between.
fn amp_snapshot(lab: &Lab) -> (BTreeMap<String, f64>, f64, BTreeMap<String, f64>) {
    eventually("a quiet moment between two lookups", WAIT, || {
        let (a1, l1) = amp_agents(lab)?;
        let server = amp_coredns(lab);
        let (a2, l2) = amp_agents(lab)?;
        if a1 == a2 && l1 == l2 {
            Ok((a1, l1, server))
        } else {
            Err("a lookup ran".into())
        }
    })
}

#[test]
fn search_path_amplification_matches_what_coredns_counted() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    // What one lookup costs, as the agents measure it: glibc with ndots:5 and three search
    // domains walks www.example.org through all of them first.
    steady_series(&lab);
    for node in NODES {
        let e = lab.metrics(node);
        let get = |name: &str, mode: &str| {
            let mut labels = vec![("target", AMP_NAME)];
            if !mode.is_empty() {
                labels.push(("mode", mode));
            }
            e.get(name, &labels)
        };
        assert_eq!(
            get("hopwatch_dns_queries_per_lookup", "search"),
            Some(8.0),
            "{node}"
        );
        assert_eq!(
            get("hopwatch_dns_queries_per_lookup", "fqdn"),
            Some(2.0),
            "{node}"
        );
        assert_eq!(
            get("hopwatch_dns_nxdomain_per_lookup", "search"),
            Some(6.0),
            "{node}"
        );
        assert_eq!(
            get("hopwatch_dns_amplification_ratio", ""),
            Some(4.0),
            "{node}"
        );
    }
    // The same lookups as CoreDNS counted them: only they reach the www.example.org zones.
    let mut last = String::new();
    for _ in 0..3 {
        let (a0, l0, k0) = amp_snapshot(&lab);
        std::thread::sleep(Duration::from_secs(8));
        let (a1, l1, k1) = amp_snapshot(&lab);
        let (agents, server, lookups) = (delta(&a0, &a1), delta(&k0, &k1), l1 - l0);
        if agents == server && lookups >= 4.0 {
            assert_eq!(server.get("NXDOMAIN"), Some(&(6.0 * lookups)), "{server:?}");
            let total = server.get("A").copied().unwrap_or(0.0)
                + server.get("AAAA").copied().unwrap_or(0.0);
            assert_eq!(
                total,
                10.0 * lookups,
                "8 queries through the search list + 2 as FQDN, per lookup"
            );
            return;
        }
        last = format!("agents counted {agents:?} in {lookups} lookups, CoreDNS {server:?}");
    }
    panic!("the agents' and CoreDNS's counts differ: {last}");
}
