//! Series of the canary: the cause of each broken Service's verdict, the canary's own path
//! from this node, and the canary responder's requests and faults. Part of the metrics
//! module, the only place metric names are written.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;
use crate::canary::{Cause, Fault};
use crate::discovery::model::ObjKey;
use crate::verdict::BrokenHop;

/// The `broken_hop` of `hopwatch_canary_path_status` while the canary Service is not among
/// the Services this agent probes.
const NOT_PROBED: &str = "unknown";

/// Series of the canary.
pub struct CanaryMetrics {
    cause: IntGaugeVec,
    path: IntGaugeVec,
    requests: IntCounterVec,
    faults: IntCounterVec,
}

impl CanaryMetrics {
    pub(super) fn new(r: &Registrar) -> CanaryMetrics {
        CanaryMetrics {
            cause: r.int_gauges(
                "hopwatch_path_cause",
                "1 while a Service's path from this node is broken: infrastructure when the canary Service's path is broken at the same or an earlier hop, application when not, unknown when the canary is not probed.",
                &["namespace", "service", "cause"],
            ),
            path: r.int_gauges(
                "hopwatch_canary_path_status",
                "1 for the first broken hop of the canary Service's path from this node (none when all work, unknown when it is not probed).",
                &["broken_hop"],
            ),
            requests: r.counters(
                "hopwatch_canary_requests_total",
                "Requests the canary responder answered.",
                &[],
            ),
            faults: r.counters(
                "hopwatch_canary_errors_total",
                "Faults of the canary responder by reason: bind, accept, over_limit, timeout, request.",
                &["reason"],
            ),
        }
    }

    /// The responder runs: its counters appear at 0.
    pub fn responder_started(&self) {
        self.requests.with_label_values::<&str>(&[]);
        for fault in Fault::ALL {
            self.faults.with_label_values(&[fault.as_str()]);
        }
    }

    /// The responder answered a request.
    pub fn served(&self) {
        self.requests.with_label_values::<&str>(&[]).inc();
    }

    /// The responder met a fault (already logged).
    pub fn fault(&self, fault: Fault) {
        self.faults.with_label_values(&[fault.as_str()]).inc();
    }

    /// Sets a Service's cause: one series while its path is broken, none while it works.
    pub fn set_cause(&self, svc: &ObjKey, cause: Option<Cause>) {
        let (ns, name) = (svc.namespace.as_str(), svc.name.as_str());
        for c in Cause::ALL {
            if Some(c) == cause {
                self.cause.with_label_values(&[ns, name, c.as_str()]).set(1);
            } else {
                let _ = self.cause.remove_label_values(&[ns, name, c.as_str()]);
            }
        }
    }

    /// Drops the cause of a Service that is gone.
    pub fn forget_service(&self, svc: &ObjKey) {
        self.set_cause(svc, None);
    }

    /// Sets the canary's own verdict: its first broken hop, or `None` while it is not probed.
    pub fn set_canary_path(&self, broken: Option<BrokenHop>) {
        let value = broken.map_or(NOT_PROBED, BrokenHop::as_str);
        let values = BrokenHop::ALL.map(BrokenHop::as_str);
        for v in values.into_iter().chain([NOT_PROBED]) {
            if v == value {
                self.path.with_label_values(&[v]).set(1);
            } else {
                let _ = self.path.remove_label_values(&[v]);
            }
        }
    }

    /// No canary Service is configured: no causes, no canary path.
    pub fn clear(&self) {
        self.cause.reset();
        self.path.reset();
    }
}
