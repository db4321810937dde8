//! The sharding of a large cluster, on three nodes: `lab up --sharded` gives every item to one
//! node (`service_probe_nodes`, `pod_probe_nodes`, `ingress.probe_nodes` 1) and sweeps every
//! other (node, Service port) pair every 6 s. Each item has exactly one holder, each Service's
//! readiness one owner, and each fault is seen within its documented detection time: one
//! interval for a node's kube-proxy, the sweep for one Service broken on one node, one
//! interval for a Service broken everywhere, one Ingress interval for an Ingress.

use std::time::{Duration, Instant};

use crate::expo::Expo;
use crate::harness::{Lab, eventually};
use crate::{SERVICES, verdict};

const THREE: [&str; 3] = ["node-1", "node-2", "node-3"];
/// `lab up --sharded`'s sweep (tests/lab/hwlab/lab.py).
const SWEEP: Duration = Duration::from_secs(6);
/// The lab's connect interval, and its Ingress interval.
const CONNECT: Duration = Duration::from_secs(1);
const INGRESS: Duration = Duration::from_secs(2);
/// What a detection time may take beyond its interval: the verdict, one scrape, the poll.
const SLACK: Duration = Duration::from_secs(3);

fn scrapes(lab: &Lab) -> Result<Vec<Expo>, String> {
    THREE.iter().map(|n| lab.try_metrics(n)).collect()
}

/// Every verdict a node exports is `none`, and the `always` Services have one on every node.
fn healthy(lab: &Lab) -> Result<(), String> {
    for (node, e) in THREE.iter().zip(scrapes(lab)?) {
        for s in e.all("hopwatch_path_status", &[]) {
            if s.label("broken_hop") != "none" {
                return Err(format!("{node}: {}", s.identity()));
            }
        }
        for (ns, svc) in [("default", "kubernetes"), ("kube-system", "kube-dns")] {
            if verdict(&e, ns, svc).is_none() {
                return Err(format!("{node}: no verdict for {ns}/{svc}"));
            }
        }
    }
    Ok(())
}

/// The nodes holding `target` at `hop`: those with a series of it.
fn holders(all: &[Expo], hop: &str, target: &str) -> Vec<&'static str> {
    THREE
        .iter()
        .zip(all)
        .filter(|(_, e)| {
            e.get(
                "hopwatch_probes_total",
                &[("hop", hop), ("target", target), ("result", "success")],
            )
            .is_some()
        })
        .map(|(n, _)| *n)
        .collect()
}

/// How long after `start` node `node` first reports `svc`'s verdict as `hop`.
fn seen(lab: &Lab, node: &str, svc: (&str, &str), hop: &str, within: Duration) -> Duration {
    let start = Instant::now();
    eventually(
        &format!("{node}: {}/{} {hop}", svc.0, svc.1),
        within + SLACK,
        || {
            let got = verdict(&lab.try_metrics(node)?, svc.0, svc.1);
            (got.as_deref() == Some(hop))
                .then_some(())
                .ok_or(format!("{got:?}"))
        },
    );
    let took = start.elapsed();
    eprintln!(
        "{node}: {}/{} {hop} after {took:?} (at most {within:?})",
        svc.0, svc.1
    );
    took
}

#[test]
fn each_item_has_one_holder_and_each_fault_shows_within_its_detection_time() {
    let lab = Lab::up_with(&["--sharded", "--nodes", "3"]);
    eventually("healthy", Duration::from_secs(30), || healthy(&lab));
    let all = scrapes(&lab).unwrap_or_else(|e| panic!("{e}"));
    for target in ["shop/web:80", "shop/api:80", "shop/cart:80"] {
        assert_eq!(holders(&all, "service", target).len(), 1, "{target}");
        assert_eq!(holders(&all, "pod", target).len(), 1, "{target}");
    }
    for target in [
        "shop/front/shop.example.com/",
        "shop/front/api.example.com/",
    ] {
        assert_eq!(holders(&all, "ingress", target).len(), 1, "{target}");
    }
    for (ns, svc) in SERVICES {
        let owners = all
            .iter()
            .filter(|e| {
                let labels = [("namespace", ns), ("service", svc), ("condition", "ready")];
                e.get("hopwatch_service_endpoints", &labels).is_some()
            })
            .count();
        assert_eq!(owners, 1, "{ns}/{svc}'s readiness owners");
    }
    let sweeps = |all: &[Expo]| -> Vec<f64> {
        all.iter()
            .map(|e| {
                e.sum(
                    "hopwatch_service_sweep_connects_total",
                    &[("result", "success")],
                )
            })
            .collect()
    };
    let before = sweeps(&all);
    std::thread::sleep(SWEEP);
    let after = sweeps(&scrapes(&lab).unwrap_or_else(|e| panic!("{e}")));
    for ((node, b), a) in THREE.iter().zip(&before).zip(&after) {
        assert!(a > b, "{node} swept nothing in {SWEEP:?}: {b} then {a}");
    }

    // One Service broken on one node that does not hold it: the sweep finds it.
    let cart = holders(&all, "service", "shop/cart:80")[0];
    let other = THREE
        .iter()
        .copied()
        .find(|n| *n != cart)
        .expect("three nodes");
    lab.fault(&["kube-proxy", "--node", other, "--service", "shop/cart"]);
    seen(&lab, other, ("shop", "cart"), "service", SWEEP);
    lab.heal(&["kube-proxy", "--node", other]);
    eventually("healthy again", Duration::from_secs(30), || healthy(&lab));

    // A Service broken everywhere: its holder sees it at its next connect.
    let web = holders(&all, "service", "shop/web:80")[0];
    lab.fault(&["target-port", "--service", "shop/web", "--port", "8081"]);
    seen(&lab, web, ("shop", "web"), "service", CONNECT);
    lab.heal(&["target-port", "--service", "shop/web", "--port", "8081"]);
    eventually("healthy again", Duration::from_secs(30), || healthy(&lab));

    // An Ingress broken: the node holding its rule sees it within an Ingress interval.
    let front = holders(&all, "ingress", "shop/front/api.example.com/")[0];
    lab.fault(&["cert", "--host", "api.example.com", "--kind", "expired"]);
    seen(&lab, front, ("shop", "api"), "ingress", INGRESS);
    lab.heal(&["cert", "--host", "api.example.com"]);
    eventually("healthy again", Duration::from_secs(30), || healthy(&lab));

    // A node's kube-proxy gone: the `always` Services fail there at their next connect (the
    // cluster DNS Service among them, so the verdict there is `dns`).
    lab.fault(&["kube-proxy", "--node", other]);
    // One DNS interval (2 s) and the lookup's timeout (1.5 s).
    seen(
        &lab,
        other,
        ("default", "kubernetes"),
        "dns",
        Duration::from_millis(3500),
    );
    lab.heal(&["kube-proxy", "--node", other]);
    eventually("healthy again", Duration::from_secs(30), || healthy(&lab));
}
