//! Least privilege against the real authorizer: the agents run as deploy/'s ServiceAccount,
//! bound by deploy/'s ClusterRole exactly as `kubectl kustomize deploy/` renders it (the lab
//! applies that output, nothing retyped). Every watch the agents need must work, and the
//! ServiceAccount must be refused Secrets and every write. `hopwatch trace` gets deploy/'s
//! `hopwatch-trace` ClusterRole, which reads Pods too (the trace scenarios use it).
//!
//! Fails when deploy/rbac.yaml loses a permission an agent uses (that watch never syncs) or
//! gains Secrets or a write verb.

use std::time::Duration;

use crate::expo::Expo;
use crate::harness::{Lab, NODES, eventually, lab_command};
use crate::{WAIT, all_healthy};

const AGENT: &str = "system:serviceaccount:hopwatch:hopwatch";
const TRACE: &str = "system:serviceaccount:hopwatch:hopwatch-trace";
/// What the agents watch, as their `resource` label and as kubectl names it.
const WATCHED: [(&str, &str); 6] = [
    ("services", "services"),
    ("endpointslices", "endpointslices.discovery.k8s.io"),
    ("nodes", "nodes"),
    ("ingresses", "ingresses.networking.k8s.io"),
    ("networkpolicies", "networkpolicies.networking.k8s.io"),
    ("namespaces", "namespaces"),
];
const WRITES: [&str; 6] = [
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
];
const OTHERS: [&str; 5] = [
    "pods",
    "secrets",
    "configmaps",
    "serviceaccounts",
    "clusterroles.rbac.authorization.k8s.io",
];
/// What every authenticated identity may do (system:basic-user and friends): asking the API
/// server about itself.
const SELF_REVIEWS: [&str; 3] = [
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
];

/// `kubectl auth can-i VERB RESOURCE -A --as WHO`, with the control plane's kubectl.
fn can_i(who: &str, verb: &str, resource: &str) -> bool {
    let out = lab_command(&[
        "kubectl", "auth", "can-i", verb, resource, "-A", "--as", who,
    ]);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource} --as {who}: {answer:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

fn synced(e: &Expo, resource: &str) -> f64 {
    e.sum("hopwatch_kube_synced", &[("resource", resource)])
}

#[test]
fn agents_hold_exactly_the_permissions_they_use() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    // Every watch synced on every node, and none refused since (a 403 restarts the watch).
    std::thread::sleep(Duration::from_secs(5));
    for node in NODES {
        let e = lab.metrics(node);
        for (resource, _) in WATCHED {
            assert_eq!(synced(&e, resource), 1.0, "{node}: {resource} not synced");
            assert_eq!(
                e.sum(
                    "hopwatch_kube_watch_restarts_total",
                    &[("resource", resource)]
                ),
                0.0,
                "{node}: the {resource} watch restarted"
            );
        }
    }
    for (_, resource) in WATCHED {
        for verb in ["get", "list", "watch"] {
            assert!(
                can_i(AGENT, verb, resource),
                "agents cannot {verb} {resource}"
            );
        }
        for verb in WRITES {
            assert!(
                !can_i(AGENT, verb, resource),
                "agents may {verb} {resource}"
            );
        }
    }
    for resource in OTHERS {
        for verb in ["get", "list", "watch"].into_iter().chain(WRITES) {
            assert!(
                !can_i(AGENT, verb, resource),
                "agents may {verb} {resource}"
            );
        }
    }
    // Nothing else at all: the full list holds the watched resources, read-only, and the
    // reviews every identity has.
    let out = lab_command(&["kubectl", "auth", "can-i", "--list", "--as", AGENT]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "can-i --list: {listing}");
    for line in listing.lines().skip(1) {
        let resource = line.split_whitespace().next().unwrap_or("");
        let verbs = &line[line.rfind('[').unwrap_or(0)..];
        let read_only = verbs
            .trim_matches(|c| c == '[' || c == ']')
            .split_whitespace()
            .all(|v| ["get", "list", "watch"].contains(&v));
        assert!(
            read_only || SELF_REVIEWS.contains(&resource),
            "agents hold more than they use: {line}\n{listing}"
        );
        assert!(!resource.starts_with("secrets"), "{listing}");
    }
    // trace's role: Pods too, and what its NetworkPolicy step reads; read only, no Secrets.
    for verb in ["get", "list"] {
        for resource in ["pods", "namespaces", "networkpolicies.networking.k8s.io"] {
            assert!(
                can_i(TRACE, verb, resource),
                "trace cannot {verb} {resource}"
            );
        }
    }
    assert!(!can_i(TRACE, "get", "secrets"));
    assert!(!can_i(TRACE, "create", "pods"));
}
