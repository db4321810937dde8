//! NetworkPolicies enforced by a real enforcer: kube-router's firewall on every node
//! (tests/lab/hwlab/kuberouter.py). The seed scenario of the debugging method (deny all ingress
//! in `shop`, allow api → db), a policy that denies the agents alone, one that blocks DNS
//! egress from `shop`, and the same policies with the enforcer off (a CNI that ignores them).
//!
//! What must hold: the agents' connects the policies deny are refused by the data path and
//! recorded as `policy_denied`, the verdict stays healthy, and nothing else fails; with the
//! enforcer off the same connects succeed and `hopwatch_networkpolicy_unenforced` names the
//! default-deny policy on every node.

use std::process::Command;

use serde_json::Value;

use crate::expo::Expo;
use crate::harness::{DOMAIN, Lab, NODES, eventually, prefix, run_dir};
use crate::trace::trace_env;
use crate::{WAIT, all_healthy, probes};

/// The Service-hop and Pod-hop targets of `shop`: every one is denied to the agents.
const SHOP: [&str; 4] = ["shop/web:80", "shop/api:80", "shop/cart:80", "shop/db:8080"];

/// `policy_denied` results of both hops of `target` on one node.
fn denied(e: &Expo, target: &str) -> f64 {
    probes(e, "service", target, "policy_denied") + probes(e, "pod", target, "policy_denied")
}

/// Failed results of the Service and Pod hops other than `policy_denied`, on one node.
fn other_failures(e: &Expo) -> f64 {
    e.all("hopwatch_probes_total", &[])
        .filter(|s| matches!(s.label("hop"), "service" | "pod"))
        .filter(|s| !matches!(s.label("result"), "success" | "policy_denied"))
        .map(|s| s.value)
        .sum()
}

fn unenforced(e: &Expo, policy: &str) -> f64 {
    e.sum(
        "hopwatch_networkpolicy_unenforced",
        &[("namespace", "shop"), ("policy", policy)],
    )
}

/// Whether one DNS query from the lab pod `pod` to the cluster DNS gets an answer.
fn dns_answers(pod: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{}{pod}", prefix()), "kdig"])
        .args(["@10.96.0.10", "+timeout=1", "+retry=0", "+short"])
        .arg(format!("kubernetes.default.svc.{DOMAIN}"))
        .output()
        .expect("run kdig");
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "10.96.0.1"
}

/// `hopwatch trace svc/shop/db --from pod/shop/FROM --json` from node-1's agent pod, told
/// which pod it runs in as the DaemonSet's downward API tells it: the `netpol` hop and the
/// verdict.
fn trace_from(from: &str) -> (Value, Value) {
    let labels = format!("{}/agents/node-1/labels", run_dir());
    let env = [
        ("POD_NAMESPACE", "hopwatch"),
        ("POD_IP", "10.244.1.2"),
        ("HOPWATCH_POD_LABELS_FILE", labels.as_str()),
    ];
    let from = format!("pod/shop/{from}");
    let (_, doc) = trace_env("svc/shop/db", &["--from", &from], &env);
    let hop = doc["hops"]
        .as_array()
        .and_then(|hops| hops.iter().find(|h| h["name"] == "netpol"))
        .cloned()
        .unwrap_or_else(|| panic!("trace --from {from}: no netpol hop: {doc:#}"));
    (hop, doc["verdict"].clone())
}

#[test]
fn enforced_policies_are_expected_denials_and_an_ignoring_cni_is_named() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));

    // `lab fault` returns once the data path refuses what the policies deny (web → db, the
    // agents → shop) and passes what they allow (api → db, the ingress controller → web).
    let seed = lab.fault(&["netpol"]);
    assert_eq!(seed["enforced"], true, "{seed}");
    lab.fault(&["netpol-agents"]);
    let before: Vec<(f64, f64)> = NODES
        .iter()
        .map(|n| {
            let e = lab.metrics(n);
            (denied(&e, "shop/db:8080"), other_failures(&e))
        })
        .collect();
    eventually(
        "the agents' connects to shop are policy_denied",
        WAIT,
        || {
            for (node, (db_before, _)) in NODES.iter().zip(&before) {
                let e = lab.try_metrics(node)?;
                for target in SHOP {
                    if denied(&e, target) == 0.0 {
                        return Err(format!("{node}: no policy_denied for {target}"));
                    }
                }
                if denied(&e, "shop/db:8080") < db_before + 2.0 {
                    return Err(format!("{node}: shop/db's denials do not grow"));
                }
            }
            Ok(())
        },
    );
    // Enforced: nothing connects that should not, the verdict stays healthy, no other failure.
    all_healthy(&lab).unwrap_or_else(|e| panic!("with enforced policies: {e}"));
    for (node, (_, failures_before)) in NODES.iter().zip(&before) {
        let e = lab.metrics(node);
        assert_eq!(
            other_failures(&e),
            *failures_before,
            "{node}: Service/Pod failures other than policy_denied"
        );
        for policy in ["default-deny-ingress", "deny-hopwatch"] {
            assert_eq!(unenforced(&e, policy), 0.0, "{node}: {policy} unenforced");
        }
        assert!(
            e.sum(
                "hopwatch_networkpolicy_denied_targets",
                &[("namespace", "shop"), ("service", "db")]
            ) >= 1.0,
            "{node}: shop/db not counted as denied"
        );
    }

    // The Endpoints dashboard's panel has them, through the lab's Prometheus.
    eventually("Prometheus has the denied targets", WAIT, || {
        let q = "max by (namespace, service) (hopwatch_networkpolicy_denied_targets)";
        let found = lab.prom_query(q)?.len();
        if found >= SHOP.len() {
            Ok(())
        } else {
            Err(format!("{q}: {found} series"))
        }
    });

    // trace takes the step: from web-1 the policies deny db and trace names them; from api-1
    // allow-api-to-db lets it in. Either way nothing is broken: denials are the policies' will.
    let (hop, verdict) = trace_from("web-1");
    assert_eq!(hop["status"], "denied", "{hop:#}");
    let selecting = hop["data"]["target"]["ingress_policies"].to_string();
    for policy in ["shop/default-deny-ingress", "shop/allow-api-to-db"] {
        assert!(selecting.contains(policy), "{policy} not named: {hop:#}");
    }
    assert!(verdict["broken_hop"].is_null(), "{verdict:#}");
    let (hop, verdict) = trace_from("api-1");
    assert_eq!(hop["status"], "ok", "{hop:#}");
    let summary = hop["summary"].to_string();
    assert!(
        summary.contains("allowed by shop/allow-api-to-db"),
        "{hop:#}"
    );
    assert!(verdict["broken_hop"].is_null(), "{verdict:#}");

    // DNS egress blocked for shop's pods: their queries go unanswered, the agents' do not,
    // and trace from a shop pod names the policy as the cause.
    lab.fault(&["netpol-dns"]);
    assert!(
        !dns_answers("web-1"),
        "web-1's DNS answered despite deny-dns-egress"
    );
    assert!(
        dns_answers("hopwatch-node-1"),
        "the agent pod's DNS is blocked too"
    );
    let (hop, verdict) = trace_from("web-1");
    assert_eq!(verdict["broken_hop"], "netpol", "{verdict:#}");
    assert_eq!(verdict["cause"], "dns_policy_denied", "{verdict:#}");
    assert_eq!(
        hop["data"]["egress_policies"],
        serde_json::json!(["shop/deny-dns-egress"]),
        "{hop:#}"
    );
    lab.heal(&["netpol-dns"]);
    assert!(
        dns_answers("web-1"),
        "web-1's DNS still blocked after the heal"
    );

    // The CNI ignores the policies: the agents' denied connects succeed, on every node.
    lab.fault(&["cni-off"]);
    eventually("the default deny is named unenforced", WAIT, || {
        for node in NODES {
            let e = lab.try_metrics(node)?;
            if unenforced(&e, "default-deny-ingress") != 1.0 {
                return Err(format!("{node}: default-deny-ingress not unenforced"));
            }
        }
        Ok(())
    });
    eventually(
        "Prometheus has the unenforced policy on both nodes",
        WAIT,
        || {
            let q = "max by (namespace, policy, node) (hopwatch_networkpolicy_unenforced) == 1";
            let found = lab.prom_query(q)?.len();
            if found >= NODES.len() {
                Ok(())
            } else {
                Err(format!("{q}: {found} series"))
            }
        },
    );
    lab.heal(&["cni-off"]);
    eventually("enforced again", WAIT, || {
        for node in NODES {
            let e = lab.try_metrics(node)?;
            if unenforced(&e, "default-deny-ingress") != 0.0 {
                return Err(format!("{node}: default-deny-ingress still unenforced"));
            }
        }
        Ok(())
    });

    lab.heal(&["netpol-agents"]);
    lab.heal(&["netpol"]);
    eventually("no target denied", WAIT, || {
        for node in NODES {
            let e = lab.try_metrics(node)?;
            for family in [
                "hopwatch_networkpolicy_denied_targets",
                "hopwatch_networkpolicy_unenforced",
            ] {
                let left = e.all(family, &[]).count();
                if left != 0 {
                    return Err(format!("{node}: {left} {family} series left"));
                }
            }
        }
        all_healthy(&lab)
    });
}
