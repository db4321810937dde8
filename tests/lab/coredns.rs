//! DNS accounting against the server's own counters: a scripted set of lookups, every resolver
//! flavor, through the real CoreDNS, and `hopwatch_dns_queries_total` must move by exactly what
//! CoreDNS's `coredns_dns_requests_total` (by type) and `coredns_dns_responses_total` (by
//! rcode) moved by. The lab's agents are taken away first, so that the scripted agent is the
//! only DNS client in the lab.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{DOMAIN, Lab, eventually, prefix, run_dir};
use crate::{WAIT, all_healthy, delta};

/// The scripted lookups: an external name through the search list, cluster names in several
/// forms (short, namespace-qualified, fully qualified, headless), and a name that exists
/// nowhere.
const NAMES: [&str; 6] = [
    "www.example.org",
    "web.shop",
    "web.shop.svc",
    "kubernetes.default.svc.cluster.lab.",
    "db.shop.svc.cluster.lab",
    "nosuch.shop",
];
const FLAVORS: [&str; 4] = ["glibc", "musl", "musl-legacy", "go"];
/// Where node-1's agent listened: the lab's portal forwards `node-1` there.
const LISTEN: &str = "10.244.1.2:9808";

/// The scripted agent, killed by PID when the test ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent() -> Agent {
    let dir = format!("{}/coredns-check", run_dir());
    std::fs::create_dir_all(&dir).expect("create the scripted agent's directory");
    let resolv = format!("{dir}/resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver 10.96.0.10\nsearch hopwatch.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}\noptions ndots:5\n"
        ),
    )
    .expect("write resolv.conf");
    // Every 15 s: the 24 targets' starts, spread over the interval by their keys, leave gaps
    // of most of a second, in which the test reads both sides' counters even on a busy
    // machine (a reading takes `lab dns-stats`, a process of its own). At 2 s the gaps were
    // shorter than a reading there.
    let mut config = format!(
        "listen: \"{LISTEN}\"\ndefaults:\n  interval_seconds: 15\n  timeout_seconds: 1.5\n  dns:\n    resolv_conf: {resolv}\ndns:\n"
    );
    for flavor in FLAVORS {
        for name in NAMES {
            config.push_str(&format!(
                "  - name: \"{name}\"\n    id: \"{name}@{flavor}\"\n    flavor: {flavor}\n"
            ));
        }
    }
    let path = format!("{dir}/config.yaml");
    std::fs::write(&path, config).expect("write the scripted agent's config");
    let log = std::fs::File::create(format!("{dir}/agent.log")).expect("create agent.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &format!("{}hopwatch-node-1", prefix())])
        .arg(crate::harness::agent_binary())
        .args(["run", "--config", &path])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the scripted agent");
    Agent(child)
}

/// Counts by a key such as `type A` or `rcode NXDOMAIN`, or by target.
type Counts = BTreeMap<String, f64>;

/// The scripted agent's wire queries by qtype and by rcode, and its lookups per target.
fn agent_counts(lab: &Lab) -> Result<(Counts, Counts), String> {
    let e = lab.try_metrics("node-1")?;
    let mut by = BTreeMap::new();
    for s in e.all("hopwatch_dns_queries_total", &[]) {
        *by.entry(format!("type {}", s.label("qtype")))
            .or_insert(0.0) += s.value;
        *by.entry(format!("rcode {}", s.label("rcode")))
            .or_insert(0.0) += s.value;
    }
    let mut lookups = BTreeMap::new();
    for s in e.all("hopwatch_dns_lookups_total", &[]) {
        *lookups.entry(s.label("target").to_string()).or_insert(0.0) += s.value;
    }
    Ok((by, lookups))
}

/// CoreDNS's counters of every zone, in the same shape.
fn coredns_counts(lab: &Lab) -> Counts {
    let stats = lab.dns_stats();
    let mut by = BTreeMap::new();
    for (counter, prefix) in [("query-type", "type"), ("response-code", "rcode")] {
        if let Some(map) = stats["all"][counter].as_object() {
            for (k, v) in map {
                by.insert(format!("{prefix} {k}"), v.as_f64().unwrap_or(0.0));
            }
        }
    }
    by
}

#[test]
fn every_query_the_agent_reports_is_one_coredns_counted_by_type_and_rcode() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    // No other DNS client: every agent gone (kube-proxy, nginx and Prometheus look nothing up).
    lab.fault(&["agent-gone", "--node", "all"]);
    std::thread::sleep(Duration::from_secs(3));
    let before = coredns_counts(&lab);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        delta(&before, &coredns_counts(&lab)),
        BTreeMap::new(),
        "CoreDNS still gets queries with every agent gone"
    );
    let _agent = start_agent();
    let targets = FLAVORS.len() * NAMES.len();
    // Three rounds at least, then a reading between two lookups: the agent's counters read
    // before and after CoreDNS's, equal.
    let (agent, server) = eventually(
        "three lookups of every target",
        Duration::from_secs(150),
        || {
            let (a1, l1) = agent_counts(&lab)?;
            if l1.len() != targets || l1.values().any(|n| *n < 3.0) {
                return Err(format!("lookups so far: {l1:?}"));
            }
            let server = coredns_counts(&lab);
            let (a2, l2) = agent_counts(&lab)?;
            if a1 != a2 || l1 != l2 {
                return Err("a lookup ran while reading".into());
            }
            Ok((a1, delta(&before, &server)))
        },
    );
    assert_eq!(
        agent, server,
        "the agent's wire queries (left) against CoreDNS's counters (right)"
    );
    // The walk really happened: NXDOMAINs from the search list, and answers.
    assert!(agent.get("rcode NXDOMAIN").copied().unwrap_or(0.0) > 0.0);
    assert!(agent.get("rcode NOERROR").copied().unwrap_or(0.0) > 0.0);
    assert_eq!(agent.get("rcode TIMEOUT"), None, "{agent:?}");
}
