//! Series about the cluster rather than one probe: endpoint readiness per Service, the path
//! verdict, and the Kubernetes watches. Part of the metrics module, the only place metric
//! names are written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;
use crate::discovery::model::ObjKey;
use crate::discovery::targets::{EmptyReason, Readiness};
use crate::verdict::{BrokenHop, ServiceVerdict};

/// The Kubernetes resources hopwatch watches, as `resource` label values.
pub const RESOURCES: [&str; 6] = [
    "services",
    "endpointslices",
    "nodes",
    "ingresses",
    "networkpolicies",
    "namespaces",
];

const CONDITIONS: [&str; 4] = ["ready", "serving", "terminating", "not_ready"];

/// Series per Service and per watched resource.
pub struct ClusterMetrics {
    endpoints: IntGaugeVec,
    empty: IntGaugeVec,
    transitions: IntCounterVec,
    unreachable: IntGaugeVec,
    path_status: IntGaugeVec,
    watch_restarts: IntCounterVec,
    client_errors: IntCounterVec,
    synced: IntGaugeVec,
    policy_denied: IntGaugeVec,
    unenforced: IntGaugeVec,
    invalid_annotations: IntGaugeVec,
    /// Transitions already added to the counter, per Service.
    exported: Mutex<HashMap<ObjKey, u64>>,
}

impl ClusterMetrics {
    pub(super) fn new(r: &Registrar) -> ClusterMetrics {
        let m = ClusterMetrics {
            endpoints: r.int_gauges(
                "hopwatch_service_endpoints",
                "Endpoints of a Service by condition (ready, serving, terminating, not_ready), from its EndpointSlices.",
                &["namespace", "service", "condition"],
            ),
            empty: r.int_gauges(
                "hopwatch_service_empty_endpoints",
                "1 while a Service that should have backends has no ready endpoint; reason no_endpoints or none_ready.",
                &["namespace", "service", "reason"],
            ),
            transitions: r.counters(
                "hopwatch_endpoint_ready_transitions_total",
                "Endpoints of a Service whose Ready condition flipped.",
                &["namespace", "service"],
            ),
            unreachable: r.int_gauges(
                "hopwatch_service_unreachable_endpoints",
                "Ready endpoints of a Service that this node's direct connects failed to reach in the last round.",
                &["namespace", "service"],
            ),
            path_status: r.int_gauges(
                "hopwatch_path_status",
                "1 for the first broken hop of a Service's path from this node (none when all work).",
                &["namespace", "service", "broken_hop"],
            ),
            watch_restarts: r.counters(
                "hopwatch_kube_watch_restarts_total",
                "Kubernetes watch failures after which the watch was re-established with backoff.",
                &["resource"],
            ),
            client_errors: r.counters(
                "hopwatch_kube_client_errors_total",
                "Failed attempts to build the Kubernetes client (kubeconfig or in-cluster config); each is tried again with backoff.",
                &[],
            ),
            synced: r.int_gauges(
                "hopwatch_kube_synced",
                "1 once the resource has been listed completely at least once.",
                &["resource"],
            ),
            policy_denied: r.int_gauges(
                "hopwatch_networkpolicy_denied_targets",
                "Service-hop and Pod-hop targets of a Service that NetworkPolicies deny to this agent: their connects count as policy_denied.",
                &["namespace", "service"],
            ),
            unenforced: r.int_gauges(
                "hopwatch_networkpolicy_unenforced",
                "1 when this node's last connect to a target the NetworkPolicy denies to the agent succeeded: the CNI does not enforce it.",
                &["namespace", "policy"],
            ),
            invalid_annotations: r.int_gauges(
                "hopwatch_invalid_annotations",
                "Selected Ingresses whose hopwatch.io/expected-addresses value this agent could not parse (the log says why); their load-balancer hop is unknown.",
                &[],
            ),
            exported: Mutex::new(HashMap::new()),
        };
        m.client_errors.with_label_values::<&str>(&[]);
        m.invalid_annotations
            .with_label_values(&[] as &[&str])
            .set(0);
        for resource in RESOURCES {
            m.watch_restarts.with_label_values(&[resource]);
            m.synced.with_label_values(&[resource]).set(0);
        }
        m
    }

    /// Sets a Service's endpoint counts, its empty flag and its readiness flips so far.
    pub fn set_readiness(&self, svc: &ObjKey, r: &Readiness, transitions: u64) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        let counts = [r.ready, r.serving, r.terminating, r.not_ready];
        for (condition, n) in CONDITIONS.into_iter().zip(counts) {
            self.endpoints
                .with_label_values(&[ns, name, condition])
                .set(i64::from(n));
        }
        for reason in [EmptyReason::NoEndpoints, EmptyReason::NoneReady] {
            if r.empty == Some(reason) {
                self.empty
                    .with_label_values(&[ns, name, reason.as_str()])
                    .set(1);
            } else {
                let _ = self.empty.remove_label_values(&[ns, name, reason.as_str()]);
            }
        }
        let mut exported = self
            .exported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = exported.entry(svc.clone()).or_insert(0);
        let counter = self.transitions.with_label_values(&[ns, name]);
        counter.inc_by(transitions.saturating_sub(*before));
        *before = transitions.max(*before);
    }

    /// Sets a Service's verdict: one `path_status` series, for its broken hop.
    pub fn set_verdict(&self, svc: &ObjKey, verdict: &ServiceVerdict) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        for hop in BrokenHop::ALL {
            if hop == verdict.broken {
                self.path_status
                    .with_label_values(&[ns, name, hop.as_str()])
                    .set(1);
            } else {
                let _ = self
                    .path_status
                    .remove_label_values(&[ns, name, hop.as_str()]);
            }
        }
        self.unreachable
            .with_label_values(&[ns, name])
            .set(i64::from(verdict.unreachable));
    }

    /// Drops every series of a Service that is gone.
    pub fn forget_service(&self, svc: &ObjKey) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        for condition in CONDITIONS {
            let _ = self.endpoints.remove_label_values(&[ns, name, condition]);
        }
        for reason in [EmptyReason::NoEndpoints, EmptyReason::NoneReady] {
            let _ = self.empty.remove_label_values(&[ns, name, reason.as_str()]);
        }
        for hop in BrokenHop::ALL {
            let _ = self
                .path_status
                .remove_label_values(&[ns, name, hop.as_str()]);
        }
        let _ = self.transitions.remove_label_values(&[ns, name]);
        let _ = self.unreachable.remove_label_values(&[ns, name]);
        self.exported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(svc);
    }

    /// Replaces the denied-target counts: one series per Service with denied targets.
    pub fn set_policy_denied(&self, counts: &BTreeMap<ObjKey, usize>) {
        self.policy_denied.reset();
        for (svc, n) in counts {
            self.policy_denied
                .with_label_values(&[&svc.namespace, &svc.name])
                .set(*n as i64);
        }
    }

    /// Replaces the unenforced flags: one series per policy that denies a target.
    pub fn set_unenforced(&self, policies: &BTreeMap<ObjKey, bool>) {
        self.unenforced.reset();
        for (policy, unenforced) in policies {
            self.unenforced
                .with_label_values(&[&policy.namespace, &policy.name])
                .set(i64::from(*unenforced));
        }
    }

    /// How many selected Ingresses carry an annotation value that does not parse.
    pub fn set_invalid_annotations(&self, n: usize) {
        self.invalid_annotations
            .with_label_values(&[] as &[&str])
            .set(n as i64);
    }

    /// A watch failed and will be retried.
    pub fn watch_restarted(&self, resource: &str) {
        self.watch_restarts.with_label_values(&[resource]).inc();
    }

    /// The Kubernetes client could not be built and will be tried again.
    pub fn client_failed(&self) {
        self.client_errors.with_label_values::<&str>(&[]).inc();
    }

    pub fn set_synced(&self, resource: &str, synced: bool) {
        self.synced
            .with_label_values(&[resource])
            .set(i64::from(synced));
    }
}
