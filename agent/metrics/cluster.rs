//! Series about the cluster rather than one probe: endpoint readiness per Service, the path
//! verdict, and the Kubernetes watches. Part of the metrics module, the only place metric
//! names are written.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;
use crate::discovery::model::ObjKey;
use crate::discovery::targets::{EmptyReason, Readiness};
use crate::discovery::watch::Presence;
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

/// The optional resources (CRDs): their series exist only while they are watched.
pub const OPTIONAL_RESOURCES: [&str; 2] = ["gateways", "httproutes"];

const CONDITIONS: [&str; 4] = ["ready", "serving", "terminating", "not_ready"];

/// How long an agent keeps exporting the readiness of a Service it no longer owns. The new
/// owner, which sees the same Node list change within seconds, has been scraped by then: the
/// series never have a gap, and `max by (namespace, service)` never counts them twice.
pub const HANDOVER: Duration = Duration::from_secs(120);

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
    absent: IntGaugeVec,
    policy_denied: IntGaugeVec,
    unenforced: IntGaugeVec,
    invalid_annotations: IntGaugeVec,
    critical: IntGaugeVec,
    sweep: IntCounterVec,
    /// The Services whose readiness this agent exports, with the transitions already added
    /// to their counter, and since when it no longer owns them (during the handover).
    exported: Mutex<HashMap<ObjKey, Exported>>,
}

/// One Service's exported readiness.
#[derive(Debug, Clone, Copy, Default)]
struct Exported {
    transitions: u64,
    released: Option<Instant>,
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
            absent: r.int_gauges(
                "hopwatch_kube_resource_absent",
                "1 while the API server does not serve a watched optional resource (its CRD is not installed): nothing to list, asked again every minute.",
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
                "Annotation values of selected Ingresses this agent could not parse (the log says why): a bad hopwatch.io/expected-addresses leaves the load-balancer hop unknown, a bad override (path, expected-status, headers) the configured request.",
                &[],
            ),
            critical: r.int_gauges(
                "hopwatch_service_critical",
                "1 for a Service annotated hopwatch.io/critical: \"true\"; exported with its readiness, by one agent.",
                &["namespace", "service"],
            ),
            sweep: r.counters(
                "hopwatch_service_sweep_connects_total",
                "Service-hop connects of the sweep (the ClusterIP ports this node probes once per sweep, not every interval), by result; a failing port also shows in hopwatch_path_status.",
                &["result"],
            ),
            exported: Mutex::new(HashMap::new()),
        };
        m.sweep.with_label_values(&["success"]);
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

    fn exported(&self) -> MutexGuard<'_, HashMap<ObjKey, Exported>> {
        self.exported.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets a Service's endpoint counts, its empty and critical flags and its readiness flips
    /// so far, when this agent `owned` it or gave it up less than [`HANDOVER`] ago; drops
    /// them after that.
    pub fn set_readiness(
        &self,
        svc: &ObjKey,
        r: &Readiness,
        transitions: u64,
        owned: bool,
        now: Instant,
    ) {
        let mut exported = self.exported();
        let entry = match (owned, exported.get_mut(svc)) {
            (true, Some(e)) => {
                e.released = None;
                e
            }
            (true, None) => exported.entry(svc.clone()).or_default(),
            (false, None) => return,
            (false, Some(e)) => {
                let since = *e.released.get_or_insert(now);
                if now.duration_since(since) >= HANDOVER {
                    drop(exported);
                    self.drop_readiness(svc);
                    return;
                }
                e
            }
        };
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        let counter = self.transitions.with_label_values(&[ns, name]);
        counter.inc_by(transitions.saturating_sub(entry.transitions));
        entry.transitions = transitions.max(entry.transitions);
        drop(exported);
        if r.critical {
            self.critical.with_label_values(&[ns, name]).set(1);
        } else {
            let _ = self.critical.remove_label_values(&[ns, name]);
        }
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
    }

    /// When the next handover ends: the readiness series of a Service this agent gave up are
    /// to be dropped then.
    pub fn handover_due(&self) -> Option<Instant> {
        self.exported()
            .values()
            .filter_map(|e| e.released)
            .min()
            .map(|since| since + HANDOVER)
    }

    /// Drops a Service's readiness series.
    fn drop_readiness(&self, svc: &ObjKey) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        for condition in CONDITIONS {
            let _ = self.endpoints.remove_label_values(&[ns, name, condition]);
        }
        for reason in [EmptyReason::NoEndpoints, EmptyReason::NoneReady] {
            let _ = self.empty.remove_label_values(&[ns, name, reason.as_str()]);
        }
        let _ = self.transitions.remove_label_values(&[ns, name]);
        let _ = self.critical.remove_label_values(&[ns, name]);
        self.exported().remove(svc);
    }

    /// Counts one connect of the sweep.
    pub fn sweep_connect(&self, result: &str) {
        self.sweep.with_label_values(&[result]).inc();
    }

    /// Sets a Service's verdict: one `path_status` series, for its broken hop. A Service this
    /// node reaches only in the sweep has no series while nothing is broken, so that a node's
    /// series do not grow with the cluster's Services.
    pub fn set_verdict(&self, svc: &ObjKey, verdict: &ServiceVerdict) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        let shown = verdict.detailed || verdict.broken != BrokenHop::None;
        for hop in BrokenHop::ALL {
            if shown && hop == verdict.broken {
                self.path_status
                    .with_label_values(&[ns, name, hop.as_str()])
                    .set(1);
            } else {
                let _ = self
                    .path_status
                    .remove_label_values(&[ns, name, hop.as_str()]);
            }
        }
        if verdict.detailed || verdict.unreachable > 0 {
            self.unreachable
                .with_label_values(&[ns, name])
                .set(i64::from(verdict.unreachable));
        } else {
            let _ = self.unreachable.remove_label_values(&[ns, name]);
        }
    }

    /// Drops every series of a Service that is gone.
    pub fn forget_service(&self, svc: &ObjKey) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        self.drop_readiness(svc);
        for hop in BrokenHop::ALL {
            let _ = self
                .path_status
                .remove_label_values(&[ns, name, hop.as_str()]);
        }
        let _ = self.unreachable.remove_label_values(&[ns, name]);
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

    /// How many annotation values of selected Ingresses do not parse.
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

    /// Where an optional resource stands. Not watched, it has no series; absent, it counts
    /// as listed (there is nothing to list), so that a cluster without the CRD does not look
    /// unsynced.
    pub fn set_presence(&self, resource: &str, presence: Presence) {
        if presence == Presence::Off {
            let _ = self.synced.remove_label_values(&[resource]);
            let _ = self.absent.remove_label_values(&[resource]);
            let _ = self.watch_restarts.remove_label_values(&[resource]);
            return;
        }
        self.watch_restarts.with_label_values(&[resource]);
        let listed = matches!(presence, Presence::Listed | Presence::Absent);
        self.set_synced(resource, listed);
        self.absent
            .with_label_values(&[resource])
            .set(i64::from(presence == Presence::Absent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// The `hopwatch_service_endpoints{condition="ready"}` value each agent exports, if any.
    fn ready(agent: &Metrics, svc: &ObjKey) -> Option<i64> {
        let wanted = format!(
            "hopwatch_service_endpoints{{condition=\"ready\",namespace=\"{}\",service=\"{}\"}} ",
            svc.namespace, svc.name
        );
        agent
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(&wanted).and_then(|v| v.parse().ok()))
    }

    /// Agent A owns the Service until a Node is added at t = 10 s; agent B, which wins it, sees
    /// the change 5 s later than A does. Every second, as Prometheus would scrape both: at least
    /// one exports the series (no gap), and `max` over them is the Service's count, so a
    /// `sum` over Services of that `max` counts it once (no double count). A stops after the
    /// handover, at the time it asked to be woken.
    #[test]
    fn a_readiness_handover_has_no_gap_and_no_double_count() {
        let svc = ObjKey::new("shop", "web");
        let (a, b) = (Metrics::new(), Metrics::new());
        let t0 = Instant::now();
        let r = Readiness {
            ready: 3,
            ..Readiness::default()
        };
        let (mut both, mut woken) = (0, false);
        for s in 0..300u64 {
            let now = t0 + Duration::from_secs(s);
            // A derives at every change it sees and when its handover is due.
            let due = a.cluster.handover_due();
            if s == 0 || s == 10 || due.is_some_and(|d| d <= now) {
                woken |= due.is_some_and(|d| d <= now);
                a.cluster.set_readiness(&svc, &r, 0, s < 10, now);
            }
            if s == 0 || s == 15 {
                b.cluster.set_readiness(&svc, &r, 0, s >= 15, now);
            }
            let exported: Vec<i64> = [&a, &b].iter().filter_map(|m| ready(m, &svc)).collect();
            assert!(!exported.is_empty(), "a gap at {s} s");
            assert_eq!(exported.iter().max(), Some(&3), "at {s} s");
            both += usize::from(exported.len() == 2);
        }
        assert!(woken, "A asked to be woken to end the handover");
        assert_eq!(ready(&a, &svc), None, "A stopped after the handover");
        assert_eq!(ready(&b, &svc), Some(3));
        let overlap = both as u64;
        assert!(
            (HANDOVER.as_secs() - 5..=HANDOVER.as_secs() + 1).contains(&overlap),
            "both exported for {overlap} s"
        );
        assert_eq!(a.cluster.handover_due(), None);
    }

    #[test]
    fn a_service_reached_only_in_the_sweep_has_a_verdict_series_only_while_broken() {
        let m = Metrics::new();
        let svc = ObjKey::new("shop", "web");
        let verdict = |broken, detailed| ServiceVerdict {
            broken,
            unreachable: 0,
            detailed,
        };
        let lines = |m: &Metrics| {
            m.encode()
                .lines()
                .filter(|l| l.starts_with("hopwatch_path_status{"))
                .count()
        };
        m.cluster
            .set_verdict(&svc, &verdict(BrokenHop::None, false));
        assert_eq!(lines(&m), 0);
        m.cluster
            .set_verdict(&svc, &verdict(BrokenHop::Service, false));
        assert_eq!(lines(&m), 1);
        m.cluster
            .set_verdict(&svc, &verdict(BrokenHop::None, false));
        assert_eq!(lines(&m), 0);
        m.cluster.set_verdict(&svc, &verdict(BrokenHop::None, true));
        assert_eq!(lines(&m), 1, "a Service probed every interval shows none");
    }
}
