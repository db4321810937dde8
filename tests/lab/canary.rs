//! Scenarios of the canary (`lab up --canary`): every agent answers the canary on port 9809,
//! the Service hopwatch/hopwatch-canary selects the agents, and each agent judges every broken
//! Service against the canary's path from its node (`hopwatch_path_cause`). The canary broken
//! while an application is fine, the reverse, and both broken by one node's kube-proxy.

use crate::expo::Expo;
use crate::harness::{self, Lab, NODES, eventually};
use crate::{SERVICES, WAIT, probes, verdict, verdict_is, wait_increase};

const CANARY: (&str, &str) = ("hopwatch", "hopwatch-canary");

/// The cause of a Service's verdict on one node: `None` while its path works.
fn cause(e: &Expo, (namespace, service): (&str, &str)) -> Option<String> {
    e.all(
        "hopwatch_path_cause",
        &[("namespace", namespace), ("service", service)],
    )
    .find(|s| s.value == 1.0)
    .map(|s| s.label("cause").to_string())
}

/// The canary's first broken hop on one node, from its own series.
fn canary_path(e: &Expo) -> Option<String> {
    e.all("hopwatch_canary_path_status", &[])
        .find(|s| s.value == 1.0)
        .map(|s| s.label("broken_hop").to_string())
}

/// Ok when every Service, the canary included, works on every node, and no cause is exported.
fn healthy(lab: &Lab) -> Result<(), String> {
    for node in NODES {
        let e = lab.try_metrics(node)?;
        for svc in SERVICES.into_iter().chain([CANARY]) {
            let got = verdict(&e, svc.0, svc.1);
            if got.as_deref() != Some("none") {
                return Err(format!("{node}: {}/{} is {got:?}", svc.0, svc.1));
            }
        }
        if canary_path(&e).as_deref() != Some("none") {
            return Err(format!("{node}: canary path {:?}", canary_path(&e)));
        }
        let causes = e.all("hopwatch_path_cause", &[]).count();
        if causes != 0 {
            return Err(format!("{node}: {causes} hopwatch_path_cause series"));
        }
    }
    Ok(())
}

/// Ok when the Service's cause on every node in `nodes` is `want` (`None`: no series).
fn cause_is(
    lab: &Lab,
    nodes: &[&str],
    svc: (&str, &str),
    want: Option<&str>,
) -> Result<(), String> {
    for node in nodes {
        let got = cause(&lab.try_metrics(node)?, svc);
        if got.as_deref() != want {
            return Err(format!(
                "{node}: {}/{} cause {got:?}, not {want:?}",
                svc.0, svc.1
            ));
        }
    }
    Ok(())
}

fn up_healthy() -> Lab {
    let lab = Lab::up_with(&["--canary"]);
    eventually(
        "every Service and the canary healthy on every node",
        WAIT,
        || healthy(&lab),
    );
    // The agents reach each other's canary responders, directly and through the ClusterIP.
    wait_increase(&lab, &NODES, "canary pod connects", 2.0, |e| {
        probes(e, "pod", "hopwatch/hopwatch-canary:80", "success")
    });
    wait_increase(&lab, &NODES, "canary ClusterIP connects", 2.0, |e| {
        probes(e, "service", "hopwatch/hopwatch-canary:80", "success")
    });
    lab
}

#[test]
fn a_broken_canary_next_to_a_working_application_is_infrastructure_on_that_node_only() {
    let lab = up_healthy();
    lab.fault(&[
        "kube-proxy",
        "--node",
        "node-2",
        "--service",
        "hopwatch/hopwatch-canary",
    ]);
    eventually("node-2's canary broken at the Service hop", WAIT, || {
        verdict_is(&lab, &["node-2"], CANARY, "service")?;
        let e = lab.try_metrics("node-2")?;
        match canary_path(&e).as_deref() {
            Some("service") => cause_is(&lab, &["node-2"], CANARY, Some("infrastructure")),
            other => Err(format!("node-2: canary path {other:?}")),
        }
    });
    // The applications work, so they have no cause; node-1 sees nothing wrong at all.
    for svc in SERVICES {
        verdict_is(&lab, &NODES, svc, "none").unwrap_or_else(|e| panic!("{e}"));
        cause_is(&lab, &NODES, svc, None).unwrap_or_else(|e| panic!("{e}"));
    }
    let e = lab.metrics("node-1");
    assert_eq!(canary_path(&e).as_deref(), Some("none"));
    assert_eq!(e.all("hopwatch_path_cause", &[]).count(), 0);
    // `lab apply --node` is kube-proxy's next sync.
    harness::lab_ok(&["apply", "--node", "node-2"]);
    eventually("recovered, no cause left", WAIT, || healthy(&lab));
}

#[test]
fn a_broken_application_next_to_a_working_canary_is_application() {
    let lab = up_healthy();
    lab.fault(&[
        "selector",
        "--service",
        "shop/api",
        "--selector",
        "app=payments",
    ]);
    eventually(
        "shop/api broken at endpoints, cause application, on every node",
        WAIT,
        || {
            verdict_is(&lab, &NODES, ("shop", "api"), "endpoints")?;
            cause_is(&lab, &NODES, ("shop", "api"), Some("application"))
        },
    );
    for node in NODES {
        let e = lab.metrics(node);
        assert_eq!(canary_path(&e).as_deref(), Some("none"), "{node}");
        assert_eq!(cause(&e, CANARY), None, "{node}");
        assert_eq!(cause(&e, ("shop", "web")), None, "{node}");
    }
    lab.heal(&["selector", "--service", "shop/api"]);
    eventually("recovered, no cause left", WAIT, || healthy(&lab));
}

#[test]
fn a_node_without_kube_proxy_makes_every_broken_service_there_infrastructure() {
    let lab = up_healthy();
    // Every ClusterIP fails on node-2, the cluster DNS Service's included: every verdict there
    // is broken, the canary's at the same hop, so every cause is infrastructure.
    lab.fault(&["kube-proxy", "--node", "node-2"]);
    eventually(
        "every Service on node-2 broken, cause infrastructure",
        WAIT,
        || {
            let e = lab.try_metrics("node-2")?;
            let canary = canary_path(&e);
            if matches!(canary.as_deref(), None | Some("none" | "unknown")) {
                return Err(format!("node-2: canary path {canary:?}"));
            }
            for svc in SERVICES.into_iter().chain([CANARY]) {
                let hop = verdict(&e, svc.0, svc.1);
                if hop.as_deref() == Some("none") {
                    continue;
                }
                let got = cause(&e, svc);
                if got.as_deref() != Some("infrastructure") {
                    return Err(format!("node-2: {}/{} at {hop:?} is {got:?}", svc.0, svc.1));
                }
            }
            cause_is(&lab, &["node-2"], ("shop", "web"), Some("infrastructure"))
        },
    );
    let e = lab.metrics("node-1");
    assert_eq!(canary_path(&e).as_deref(), Some("none"));
    assert_eq!(
        e.all("hopwatch_path_cause", &[]).count(),
        0,
        "node-1 is fine"
    );
    harness::lab_ok(&["apply", "--node", "node-2"]);
    eventually("recovered, no cause left", WAIT, || healthy(&lab));
}
