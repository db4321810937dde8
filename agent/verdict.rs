//! The verdict per Service from this node's point of view: the first hop on the request path
//! that fails. Pure bookkeeping over the latest probe results; `metrics.rs` exports it as
//! `hopwatch_path_status{namespace,service,broken_hop}`.
//!
//! The hops are checked in the order a request takes them, with endpoints before the Service
//! hop because an empty Service makes its ClusterIP refuse connections too:
//!
//! 1. `dns`: the cluster DNS Service's ClusterIP failed this node's last lookup of any
//!    configured name, or, for a headless Service, its own answer disagreed with its ready
//!    endpoints.
//! 2. `loadbalancer`: for a Service behind an Ingress, the public name did not resolve to the
//!    load balancer, or the load balancer did not accept a connection.
//! 3. `ingress`: a request through the Ingress failed on its own account: TLS, a wrong route
//!    (404), a connection problem.
//! 4. `endpoints`: the Service has no ready endpoint.
//! 5. `service`: this node's last connect to any of the Service's ClusterIP ports failed.
//! 6. `pod`: this node's last connect to any ready endpoint it probes failed.
//! 7. `ingress` again, when the Ingress answered 502, 503 or 504 (its upstream failed) but
//!    nothing behind it looks broken from this node.
//!
//! Otherwise `none`. A hop without a result yet counts as working, and so does a connect that
//! failed with `policy_denied`: the NetworkPolicies deny it to the agent, as they should. A
//! load-balancer hop whose result is `unknown` (the Ingress publishes no load balancer) blames
//! nothing either: its `hopwatch_probes_total{result="unknown"}` series says why.
//!
//! An HTTPRoute is an Ingress here: its hostnames and path matches are targets of the same two
//! edge hops, through its parent Gateway, and route to the Service of their first backendRef.

use std::collections::{BTreeMap, HashMap};

use crate::discovery::model::ObjKey;
use crate::probe::{Detail, Failure, Hop, Outcome, TargetKey};

/// The first broken hop of a Service's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BrokenHop {
    None,
    Dns,
    LoadBalancer,
    Ingress,
    Endpoints,
    Service,
    Pod,
}

impl BrokenHop {
    pub const ALL: [BrokenHop; 7] = [
        BrokenHop::None,
        BrokenHop::Dns,
        BrokenHop::LoadBalancer,
        BrokenHop::Ingress,
        BrokenHop::Endpoints,
        BrokenHop::Service,
        BrokenHop::Pod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BrokenHop::None => "none",
            BrokenHop::Dns => "dns",
            BrokenHop::LoadBalancer => "loadbalancer",
            BrokenHop::Ingress => "ingress",
            BrokenHop::Endpoints => "endpoints",
            BrokenHop::Service => "service",
            BrokenHop::Pod => "pod",
        }
    }
}

/// Which targets belong to a Service, and whether it has ready endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub empty: bool,
    /// This node probes the Service every interval at some hop (not only in the sweep): its
    /// `hopwatch_path_status` is exported whatever the verdict, not only while broken.
    pub detailed: bool,
    pub service_targets: Vec<TargetKey>,
    pub pod_targets: Vec<TargetKey>,
    /// The headless Service's own DNS check.
    pub dns_target: Option<TargetKey>,
    /// Load-balancer probes of the hosts whose Ingress routes to the Service.
    pub lb_targets: Vec<TargetKey>,
    /// Requests through Ingress paths that route to the Service.
    pub ingress_targets: Vec<TargetKey>,
}

/// The last result of one target: whether it worked, and how many connects failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Last {
    ok: bool,
    failed_connects: u32,
    /// An Ingress answered 502, 503 or 504: its upstream, the Service, failed.
    upstream_failed: bool,
}

/// What one Service's verdict is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceVerdict {
    pub broken: BrokenHop,
    /// Ready endpoints this node failed to reach in the last round.
    pub unreachable: u32,
    /// From [`Membership::detailed`].
    pub detailed: bool,
}

/// The latest results and the Service membership they are judged by.
#[derive(Debug, Default)]
pub struct Verdicts {
    services: BTreeMap<ObjKey, Membership>,
    /// Lookups through the cluster DNS Service's ClusterIP.
    cluster_dns: Vec<TargetKey>,
    last: HashMap<TargetKey, Last>,
    /// The Services each target's result counts for.
    index: HashMap<TargetKey, Vec<ObjKey>>,
}

impl Verdicts {
    /// Replaces the Service membership after discovery changed; returns the Services that are
    /// gone, whose series must go too.
    pub fn set_services(
        &mut self,
        services: BTreeMap<ObjKey, Membership>,
        cluster_dns: Vec<TargetKey>,
    ) -> Vec<ObjKey> {
        let gone = self
            .services
            .keys()
            .filter(|k| !services.contains_key(*k))
            .cloned()
            .collect();
        self.index.clear();
        for (svc, m) in &services {
            for key in m
                .service_targets
                .iter()
                .chain(&m.pod_targets)
                .chain(&m.dns_target)
                .chain(&m.lb_targets)
                .chain(&m.ingress_targets)
            {
                self.index.entry(key.clone()).or_default().push(svc.clone());
            }
        }
        self.services = services;
        self.cluster_dns = cluster_dns;
        gone
    }

    /// The verdicts a result of `key` can change: every Service's for a cluster DNS lookup,
    /// else those of the Services the target belongs to.
    pub fn affected(&self, key: &TargetKey) -> BTreeMap<ObjKey, ServiceVerdict> {
        if self.cluster_dns.contains(key) {
            return self.all();
        }
        let services = self.index.get(key).map(Vec::as_slice).unwrap_or_default();
        services
            .iter()
            .filter_map(|svc| Some((svc.clone(), self.judge(self.services.get(svc)?))))
            .collect()
    }

    /// Notes a target's result; returns whether any verdict may have changed.
    pub fn observe(&mut self, key: &TargetKey, outcome: &Outcome) -> bool {
        let failed_connects = match &outcome.detail {
            Detail::Connects(connects) => {
                connects.iter().filter(|c| broken(c.result)).count() as u32
            }
            _ => 0,
        };
        let upstream_failed = match &outcome.detail {
            Detail::Http(report) => matches!(report.status, Some(502..=504)),
            _ => false,
        };
        let last = Last {
            ok: !broken(outcome.result),
            failed_connects,
            upstream_failed,
        };
        self.last.insert(key.clone(), last) != Some(last)
    }

    /// Forgets the result of a target that is gone.
    pub fn forget(&mut self, key: &TargetKey) {
        self.last.remove(key);
    }

    /// One Service's verdict; `None` when it is not among the Services probed.
    pub fn verdict(&self, svc: &ObjKey) -> Option<ServiceVerdict> {
        self.services.get(svc).map(|m| self.judge(m))
    }

    /// Every Service's verdict.
    pub fn all(&self) -> BTreeMap<ObjKey, ServiceVerdict> {
        self.services
            .iter()
            .map(|(k, m)| (k.clone(), self.judge(m)))
            .collect()
    }

    fn ok(&self, key: &TargetKey) -> bool {
        self.last.get(key).is_none_or(|l| l.ok)
    }

    fn judge(&self, m: &Membership) -> ServiceVerdict {
        let unreachable = m
            .pod_targets
            .iter()
            .filter_map(|k| self.last.get(k))
            .map(|l| l.failed_connects)
            .sum();
        let failing = |keys: &[TargetKey]| keys.iter().any(|k| !self.ok(k));
        let upstream = |k: &TargetKey| self.last.get(k).is_some_and(|l| l.upstream_failed);
        let ingress_own = m
            .ingress_targets
            .iter()
            .any(|k| !self.ok(k) && !upstream(k));
        let broken =
            if failing(&self.cluster_dns) || m.dns_target.as_ref().is_some_and(|k| !self.ok(k)) {
                BrokenHop::Dns
            } else if failing(&m.lb_targets) {
                BrokenHop::LoadBalancer
            } else if ingress_own {
                BrokenHop::Ingress
            } else if m.empty {
                BrokenHop::Endpoints
            } else if failing(&m.service_targets) {
                BrokenHop::Service
            } else if unreachable > 0 {
                BrokenHop::Pod
            } else if failing(&m.ingress_targets) {
                BrokenHop::Ingress
            } else {
                BrokenHop::None
            };
        ServiceVerdict {
            broken,
            unreachable,
            detailed: m.detailed,
        }
    }
}

/// A failure that breaks a hop: any but `policy_denied`, which is what the cluster's
/// NetworkPolicies ask for, and `unknown`, which judges nothing ([`Failure::breaks`]).
fn broken(result: Result<(), Failure>) -> bool {
    result.is_err_and(Failure::breaks)
}

/// The key of a target of `hop` with `id`.
pub fn key(hop: Hop, id: &str) -> TargetKey {
    TargetKey {
        hop,
        id: id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tcp::Connect;
    use crate::probe::{Failure, Outcome};
    use std::time::Duration;

    fn outcome(ok: bool) -> Outcome {
        let result = if ok { Ok(()) } else { Err(Failure::Refused) };
        Outcome {
            result,
            duration: Duration::ZERO,
            detail: Detail::None,
        }
    }

    fn round(results: &[bool]) -> Outcome {
        let connects: Vec<Connect> = results
            .iter()
            .map(|ok| Connect {
                result: if *ok { Ok(()) } else { Err(Failure::Timeout) },
                duration: Duration::ZERO,
            })
            .collect();
        Outcome {
            result: Ok(()),
            duration: Duration::ZERO,
            detail: Detail::Connects(connects),
        }
    }

    fn setup(empty: bool) -> (Verdicts, ObjKey) {
        let svc = ObjKey::new("shop", "web");
        let membership = Membership {
            empty,
            detailed: true,
            service_targets: vec![key(Hop::Service, "shop/web:80")],
            pod_targets: vec![key(Hop::Pod, "shop/web:80")],
            dns_target: None,
            lb_targets: vec![key(Hop::LoadBalancer, "shop/front/shop.example.com")],
            ingress_targets: vec![key(Hop::Ingress, "shop/front/shop.example.com/")],
        };
        let mut v = Verdicts::default();
        v.set_services(
            BTreeMap::from([(svc.clone(), membership)]),
            vec![key(Hop::Dns, "kubernetes.default@kube-dns")],
        );
        (v, svc)
    }

    #[test]
    fn the_first_failing_hop_in_request_order_wins() {
        let (mut v, svc) = setup(false);
        assert_eq!(v.all()[&svc].broken, BrokenHop::None, "no results yet");
        v.observe(&key(Hop::Pod, "shop/web:80"), &round(&[true, false, false]));
        assert_eq!(
            v.all()[&svc],
            ServiceVerdict {
                broken: BrokenHop::Pod,
                unreachable: 2,
                detailed: true,
            }
        );
        v.observe(&key(Hop::Service, "shop/web:80"), &outcome(false));
        assert_eq!(v.all()[&svc].broken, BrokenHop::Service);
        v.observe(
            &key(Hop::Dns, "kubernetes.default@kube-dns"),
            &outcome(false),
        );
        assert_eq!(v.all()[&svc].broken, BrokenHop::Dns);
        v.observe(
            &key(Hop::Dns, "kubernetes.default@kube-dns"),
            &outcome(true),
        );
        v.observe(&key(Hop::Service, "shop/web:80"), &outcome(true));
        v.observe(&key(Hop::Pod, "shop/web:80"), &round(&[true]));
        assert_eq!(
            v.all()[&svc],
            ServiceVerdict {
                broken: BrokenHop::None,
                unreachable: 0,
                detailed: true,
            }
        );
    }

    #[test]
    fn an_empty_service_points_at_endpoints_even_when_its_clusterip_refuses() {
        let (mut v, svc) = setup(true);
        v.observe(&key(Hop::Service, "shop/web:80"), &outcome(false));
        assert_eq!(v.all()[&svc].broken, BrokenHop::Endpoints);
    }

    fn http(status: u16, result: Result<(), Failure>) -> Outcome {
        let mut report = crate::probe::http::HttpReport::for_tests("https://shop.example.com/");
        report.status = Some(status);
        report.result = result;
        report.outcome()
    }

    #[test]
    fn an_ingress_503_points_downstream_when_the_service_is_empty() {
        let (mut v, svc) = setup(true);
        let ingress = key(Hop::Ingress, "shop/front/shop.example.com/");
        v.observe(&ingress, &http(503, Err(Failure::HttpStatus)));
        assert_eq!(v.all()[&svc].broken, BrokenHop::Endpoints);
        let (mut v, svc) = setup(false);
        v.observe(&ingress, &http(503, Err(Failure::HttpStatus)));
        assert_eq!(
            v.all()[&svc].broken,
            BrokenHop::Ingress,
            "nothing behind it is broken"
        );
        v.observe(&ingress, &http(404, Err(Failure::HttpStatus)));
        v.observe(&key(Hop::Service, "shop/web:80"), &outcome(false));
        assert_eq!(
            v.all()[&svc].broken,
            BrokenHop::Ingress,
            "a 404 is the Ingress's own"
        );
        v.observe(
            &key(Hop::LoadBalancer, "shop/front/shop.example.com"),
            &outcome(false),
        );
        assert_eq!(v.all()[&svc].broken, BrokenHop::LoadBalancer);
    }

    #[test]
    fn gone_services_are_returned() {
        let (mut v, svc) = setup(false);
        assert_eq!(v.set_services(BTreeMap::new(), vec![]), vec![svc]);
        assert!(v.all().is_empty());
    }
}
