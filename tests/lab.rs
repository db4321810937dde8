//! End-to-end scenarios in the lab (`tests/lab/lab`, docs/LAB.md): a mini cluster on this
//! machine (network namespaces as nodes and pods; the real etcd, kube-apiserver,
//! kube-controller-manager, kube-proxy, CoreDNS and kube-router's firewall; nginx as the ingress controller) with one
//! hopwatch agent per node. Each test builds its own lab, injects one fault, and checks that the agents' own
//! `/metrics` name the right hop, from the right nodes, with the right reason; then heals it
//! and checks the recovery. The lab is taken down by a Drop guard, also when a test fails.
//!
//! Needs root (CI runs as root) and the programs listed in `harness::TOOLS`; a missing one
//! fails the test with the package to install. Tests run one at a time (one lab per machine).

#[path = "lab/expo.rs"]
mod expo;
#[path = "lab/harness.rs"]
mod harness;

#[path = "support/chart.rs"]
mod chart_support;
#[path = "support/tempdir.rs"]
mod tempdir;

#[path = "lab/alerts.rs"]
mod alerts;
#[path = "lab/alerts_clock.rs"]
mod alerts_clock;
#[path = "lab/canary.rs"]
mod canary;
#[path = "lab/chart.rs"]
mod chart;
#[path = "lab/coredns.rs"]
mod coredns;
#[path = "lab/dashboards.rs"]
mod dashboards;
#[path = "lab/discovery.rs"]
mod discovery;
#[path = "lab/dns.rs"]
mod dns;
#[path = "lab/edge.rs"]
mod edge;
#[path = "lab/fleet.rs"]
mod fleet;
#[path = "lab/lifecycle.rs"]
mod lifecycle;
#[path = "lab/netpol.rs"]
mod netpol;
#[path = "lab/rbac.rs"]
mod rbac;
#[path = "lab/service.rs"]
mod service;
#[path = "lab/soak.rs"]
mod soak;
#[path = "lab/trace.rs"]
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use expo::Expo;
use harness::{Lab, NODES, eventually};

/// Every Service of the lab, each with one `hopwatch_path_status` series per node.
const SERVICES: [(&str, &str); 7] = [
    ("default", "kubernetes"),
    ("kube-system", "kube-dns"),
    ("ingress-nginx", "ingress-nginx-controller"),
    ("shop", "web"),
    ("shop", "api"),
    ("shop", "cart"),
    ("shop", "db"),
];
/// How long a fault or a recovery may take to show in the agents' metrics.
const WAIT: Duration = Duration::from_secs(20);

/// The counters that moved from `a` to `b`, by how much (a counter new in `b` counts from 0).
fn delta(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    b.iter()
        .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// A Service's readiness series come from one agent, its owner: the node exporting `name` with
/// `labels`, and the value; an error unless exactly one node exports it.
fn owned(lab: &Lab, name: &str, labels: &[(&str, &str)]) -> Result<(&'static str, f64), String> {
    let mut found = Vec::new();
    for node in NODES {
        if let Some(v) = lab.try_metrics(node)?.get(name, labels) {
            found.push((node, v));
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!(
            "{name} {labels:?}: exported by {found:?}, not by one owner"
        )),
    }
}

/// The `broken_hop` of a Service's verdict on one node.
fn verdict(e: &Expo, namespace: &str, service: &str) -> Option<String> {
    e.all(
        "hopwatch_path_status",
        &[("namespace", namespace), ("service", service)],
    )
    .find(|s| s.value == 1.0)
    .map(|s| s.label("broken_hop").to_string())
}

/// Ok when the Service's verdict on every node in `nodes` is `hop`.
fn verdict_is(lab: &Lab, nodes: &[&str], svc: (&str, &str), hop: &str) -> Result<(), String> {
    for node in nodes {
        let got = verdict(&lab.try_metrics(node)?, svc.0, svc.1);
        if got.as_deref() != Some(hop) {
            return Err(format!("{node}: {}/{} is {got:?}, not {hop}", svc.0, svc.1));
        }
    }
    Ok(())
}

/// Ok when every Service's verdict on every node is `none`, the canary's too in a lab brought
/// up with `--canary`.
fn all_healthy(lab: &Lab) -> Result<(), String> {
    for node in NODES {
        let e = lab.try_metrics(node)?;
        let count = e.all("hopwatch_path_status", &[]).count();
        let canary = verdict(&e, "hopwatch", "hopwatch-canary");
        if canary.as_deref().is_some_and(|v| v != "none") {
            return Err(format!("{node}: the canary is {canary:?}"));
        }
        if count != SERVICES.len() + usize::from(canary.is_some()) {
            return Err(format!("{node}: {count} path_status series"));
        }
        for (ns, svc) in SERVICES {
            let got = verdict(&e, ns, svc);
            if got.as_deref() != Some("none") {
                return Err(format!("{node}: {ns}/{svc} is {got:?}"));
            }
        }
    }
    Ok(())
}

/// `hopwatch_probes_total` of one hop, target and result on one node.
fn probes(e: &Expo, hop: &str, target: &str, result: &str) -> f64 {
    e.sum(
        "hopwatch_probes_total",
        &[("hop", hop), ("target", target), ("result", result)],
    )
}

/// Failed attempts of every probe and lookup on one node.
fn failures(e: &Expo) -> f64 {
    ["hopwatch_probes_total", "hopwatch_dns_lookups_total"]
        .iter()
        .flat_map(|name| e.all(name, &[]))
        .filter(|s| s.label("result") != "success")
        .map(|s| s.value)
        .sum()
}

/// Waits until `counter` on each of `nodes` exceeds what it was in `before` by at least `by`.
fn wait_increase(lab: &Lab, nodes: &[&str], what: &str, by: f64, counter: impl Fn(&Expo) -> f64) {
    let start: Vec<f64> = nodes.iter().map(|n| counter(&lab.metrics(n))).collect();
    eventually(what, WAIT, || {
        for (node, before) in nodes.iter().zip(&start) {
            let now = counter(&lab.try_metrics(node)?);
            if now < before + by {
                return Err(format!("{node}: {before} -> {now}"));
            }
        }
        Ok(())
    });
}

/// The identity (name and labels) of every series of every node.
fn series(lab: &Lab) -> BTreeMap<&'static str, BTreeSet<String>> {
    NODES
        .iter()
        .map(|n| (*n, lab.metrics(n).series()))
        .collect()
}

/// [`series`] once it stops changing: every target has been probed and has created its
/// histogram and gauge series.
fn steady_series(lab: &Lab) -> BTreeMap<&'static str, BTreeSet<String>> {
    eventually("the series stop changing", Duration::from_secs(30), || {
        let first = series(lab);
        std::thread::sleep(Duration::from_secs(3));
        let second = series(lab);
        let counts: Vec<(usize, usize)> = NODES
            .iter()
            .map(|n| (first[n].len(), second[n].len()))
            .collect();
        if first == second {
            Ok(second)
        } else {
            Err(format!("series counts {counts:?}"))
        }
    })
}
