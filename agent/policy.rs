//! NetworkPolicies in the running agent: which of this node's Service-hop and Pod-hop targets
//! the policies deny to the agent's own pod, and what their results then mean.
//!
//! Denied connects are still sent. Only a sent connect can show that the CNI does not enforce
//! the policies, and it costs one SYN per round. A denied connect that fails is recorded as
//! `policy_denied`, which the verdict and the SLO ratios leave out; one that succeeds marks
//! the policy unenforced (`hopwatch_networkpolicy_unenforced`).
//!
//! The agent knows its own labels (downward API file), namespace and IP, and of a target's
//! pods only the labels of their Service's selector. A target counts as denied only when
//! that is enough to be sure, for every one of its endpoints (`discovery::netpol` returns
//! `Unknown` otherwise); then its connects fail as expected instead of as an outage.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::discovery::model::{Labels, ObjKey, ServiceInfo, TargetPort};
use crate::discovery::netpol::{self, Connection, Known, Peer, PodRef, PortName, Protocol};
use crate::discovery::store::Stores;
use crate::discovery::targets::Derived;
use crate::probe::{Detail, Failure, Hop, Outcome, TargetKey};
use crate::verdict::key;

/// Where the DaemonSet's downward API volume puts the agent pod's labels.
pub const LABELS_FILE: &str = "/etc/podinfo/labels";
/// Names another labels file, for an agent run outside the DaemonSet's pod spec.
pub const LABELS_FILE_ENV: &str = "HOPWATCH_POD_LABELS_FILE";

/// The agent's own pod, the source of every connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfPod {
    pub namespace: String,
    pub ip: IpAddr,
    pub labels: Labels,
    /// False when the labels file could not be read: rules on the agent's labels stay open.
    pub labels_complete: bool,
}

/// The agent's pod from the downward API: `POD_NAMESPACE`, `POD_IP` and [`LABELS_FILE`] (or
/// the file `HOPWATCH_POD_LABELS_FILE` names). `None` outside a pod, when the policies cannot
/// be applied to anything.
pub fn self_pod() -> Option<SelfPod> {
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())?;
    let ip = std::env::var("POD_IP").ok()?.parse().ok()?;
    let path = std::env::var_os(LABELS_FILE_ENV).unwrap_or_else(|| LABELS_FILE.into());
    let text = std::fs::read_to_string(path).ok();
    Some(SelfPod {
        namespace,
        ip,
        labels: text.as_deref().map(parse_labels).unwrap_or_default(),
        labels_complete: text.is_some(),
    })
}

/// The downward API's labels file: one `key="value"` a line, the value quoted as Go does.
pub fn parse_labels(text: &str) -> Labels {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.to_string(), v.replace("\\\"", "\"").replace("\\\\", "\\")))
        })
        .collect()
}

/// A target the policies deny to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub service: ObjKey,
    /// The policy the unenforced series names: of those selecting the denying side (egress of
    /// the agent, else ingress of the target), the first that allows nothing that way (a
    /// default deny), else the first.
    pub policy: ObjKey,
}

/// Every Service-hop and Pod-hop target of `derived` that the policies deny to `me`. Pure.
pub fn denials(stores: &Stores, me: &SelfPod, derived: &Derived) -> BTreeMap<TargetKey, Denial> {
    let mut out = BTreeMap::new();
    for pods in &derived.pods {
        let Some(svc) = stores.services.get(&pods.service) else {
            continue;
        };
        if let Some(policy) = denied(stores, me, svc, &pods.id, &pods.endpoints) {
            let denial = Denial {
                service: svc.key.clone(),
                policy,
            };
            out.insert(key(Hop::Service, &pods.id), denial.clone());
            out.insert(key(Hop::Pod, &pods.id), denial);
        }
    }
    let probed: std::collections::BTreeSet<TargetKey> = derived
        .services
        .iter()
        .map(|s| key(Hop::Service, &s.id))
        .chain(derived.pods.iter().map(|p| key(Hop::Pod, &p.id)))
        .collect();
    out.retain(|k, _| probed.contains(k));
    out
}

/// The denying policy when every endpoint of the Service port `id` is denied for certain.
fn denied(
    stores: &Stores,
    me: &SelfPod,
    svc: &ServiceInfo,
    id: &str,
    endpoints: &[SocketAddr],
) -> Option<ObjKey> {
    if !svc.has_selector() || endpoints.is_empty() {
        return None;
    }
    let own_ns = stores.namespaces.get(&me.namespace)?;
    let their_ns = stores.namespaces.get(&svc.key.namespace)?;
    let port: u16 = id.rsplit_once(':')?.1.parse().ok()?;
    let port_name = match svc.ports.iter().find(|p| p.port == port)?.target_port {
        TargetPort::Name(ref name) => PortName::Named(name),
        TargetPort::Number(_) => PortName::Unknown,
    };
    let source = Peer {
        pod: Some(PodRef {
            namespace: &me.namespace,
            namespace_labels: own_ns,
            labels: Known {
                labels: &me.labels,
                complete: me.labels_complete,
            },
        }),
        ip: me.ip,
    };
    let mut policy = None;
    for endpoint in endpoints {
        let conn = Connection {
            source,
            destination: Peer {
                pod: Some(PodRef {
                    namespace: &svc.key.namespace,
                    namespace_labels: their_ns,
                    labels: Known {
                        labels: &svc.selector,
                        complete: false,
                    },
                }),
                ip: endpoint.ip(),
            },
            port: endpoint.port(),
            port_name,
            protocol: Protocol::Tcp,
        };
        let verdict = netpol::evaluate(stores.policies.values(), &conn);
        let (direction, selecting) = verdict.denied()?;
        policy.get_or_insert_with(|| blame(stores, direction, selecting));
    }
    policy
}

/// Of the policies that select a pod and together deny a connection, the one to name: the
/// first with no rule at all for the direction (`podSelector` plus an empty `ingress`, the
/// default deny that makes the others' rules the only way in), else the first.
fn blame(stores: &Stores, direction: netpol::Direction, selecting: &[ObjKey]) -> ObjKey {
    let allows_nothing = |key: &ObjKey| {
        let Some(p) = stores.policies.get(key) else {
            return false;
        };
        let rules = match direction {
            netpol::Direction::Ingress => &p.ingress,
            netpol::Direction::Egress => &p.egress,
        };
        rules.as_ref().is_some_and(Vec::is_empty)
    };
    selecting
        .iter()
        .find(|k| allows_nothing(k))
        .unwrap_or(&selecting[0])
        .clone()
}

/// A denied target's outcome as it is recorded: its failed connects become `policy_denied`.
/// Also whether any connect succeeded, which the policy forbids.
pub fn expected_denial(outcome: &Outcome) -> (Outcome, bool) {
    let rename = |r: Result<(), Failure>| r.map_err(|_| Failure::PolicyDenied);
    let mut succeeded = outcome.result.is_ok();
    let detail = match &outcome.detail {
        Detail::Connects(connects) => {
            succeeded = connects.iter().any(|c| c.result.is_ok());
            let connects = connects
                .iter()
                .map(|c| crate::probe::tcp::Connect {
                    result: rename(c.result),
                    duration: c.duration,
                })
                .collect();
            Detail::Connects(connects)
        }
        other => other.clone(),
    };
    let outcome = Outcome {
        result: rename(outcome.result),
        duration: outcome.duration,
        detail,
    };
    (outcome, succeeded)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::discovery::model::{Address, ServicePort};
    use crate::discovery::targets::{PodTarget, ServiceTarget};
    use crate::probe::tcp::Connect;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    fn service(name: &str, port: u16, target: u16) -> ServiceInfo {
        ServiceInfo {
            key: ObjKey::new("shop", name),
            address: Address::ClusterIp([10, 96, 0, 1].into()),
            ports: vec![ServicePort {
                name: None,
                port,
                tcp: true,
                target_port: TargetPort::Number(target),
            }],
            selector: labels(&[("app", name)]),
            labels: Labels::default(),
            probe_annotation: None,
            critical: false,
        }
    }

    fn policy(name: &str, spec: serde_json::Value) -> netpol::Policy {
        let object = json!({"metadata": {"namespace": "shop", "name": name}, "spec": spec});
        netpol::project(&serde_json::from_value(object).unwrap()).unwrap()
    }

    /// The seed: deny all ingress in `shop`, allow only `app=api` to `app=db` on 5432.
    fn seed() -> (Stores, Derived) {
        let mut stores = Stores::default();
        for ns in ["shop", "hopwatch"] {
            let l = labels(&[("kubernetes.io/metadata.name", ns)]);
            stores.namespaces.insert(ns.to_string(), l);
        }
        for p in [
            policy(
                "deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            ),
            policy(
                "db-from-api",
                json!({"podSelector": {"matchLabels": {"app": "db"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                    "ports": [{"port": 5432}]}]}),
            ),
        ] {
            stores.policies.insert(p.key.clone(), p);
        }
        let db = service("db", 5432, 5432);
        stores.services.insert(db.key.clone(), db);
        let derived = Derived {
            services: vec![ServiceTarget {
                service: ObjKey::new("shop", "db"),
                id: "shop/db:5432".into(),
                address: "10.96.0.1:5432".parse().unwrap(),
                owner: true,
                sweep: false,
            }],
            pods: vec![PodTarget {
                service: ObjKey::new("shop", "db"),
                id: "shop/db:5432".into(),
                endpoints: vec!["10.244.1.5:5432".parse().unwrap()],
            }],
            ..Derived::default()
        };
        (stores, derived)
    }

    fn agent(pairs: &[(&str, &str)], complete: bool) -> SelfPod {
        SelfPod {
            namespace: "hopwatch".into(),
            ip: [10, 244, 1, 2].into(),
            labels: labels(pairs),
            labels_complete: complete,
        }
    }

    #[test]
    fn the_seed_scenario_denies_both_hops_of_db_to_the_agent() {
        let (stores, derived) = seed();
        let me = agent(&[("app.kubernetes.io/name", "hopwatch")], true);
        let found = denials(&stores, &me, &derived);
        // Both select db and neither lets the agent in: the default deny is the one named.
        let policy = ObjKey::new("shop", "deny-all");
        assert_eq!(found.len(), 2);
        for hop in [Hop::Service, Hop::Pod] {
            assert_eq!(found[&key(hop, "shop/db:5432")].policy, policy);
        }
    }

    #[test]
    fn an_agent_the_policies_allow_or_cannot_decide_gets_no_denial() {
        let (mut stores, derived) = seed();
        let p = policy(
            "db-from-probers",
            json!({"podSelector": {"matchLabels": {"app": "db"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "hopwatch"}},
                                          "podSelector": {"matchLabels": {"role": "prober"}}}]}]}),
        );
        stores.policies.insert(p.key.clone(), p);
        let prober = agent(&[("role", "prober")], true);
        assert!(denials(&stores, &prober, &derived).is_empty());
        // An `app=api` agent is still denied: db-from-api's podSelector alone means `shop`.
        assert_eq!(
            denials(&stores, &agent(&[("app", "api")], true), &derived).len(),
            2
        );
        // Its labels unknown, the agent could be a prober.
        assert!(denials(&stores, &agent(&[], false), &derived).is_empty());
        // Namespaces not listed yet: nothing is expected to be denied.
        stores.namespaces.clear();
        assert!(denials(&stores, &agent(&[], true), &derived).is_empty());
    }

    #[test]
    fn failed_connects_of_a_denied_target_become_policy_denied() {
        let connect = |result| Connect {
            result,
            duration: std::time::Duration::from_millis(1),
        };
        let outcome = Outcome {
            result: Err(Failure::Timeout),
            duration: std::time::Duration::from_secs(3),
            detail: Detail::Connects(vec![connect(Err(Failure::Timeout)), connect(Ok(()))]),
        };
        let (renamed, succeeded) = expected_denial(&outcome);
        assert!(
            succeeded,
            "one connect went through: the policy is not enforced"
        );
        assert_eq!(renamed.result, Err(Failure::PolicyDenied));
        let Detail::Connects(c) = renamed.detail else {
            panic!("connects")
        };
        assert_eq!(c[0].result, Err(Failure::PolicyDenied));
        assert_eq!(c[1].result, Ok(()));
    }

    #[test]
    fn the_downward_api_labels_file() {
        let text = "app.kubernetes.io/name=\"hopwatch\"\npod-template-hash=\"7c9\"\nq=\"a\\\"b\"\n";
        let l = parse_labels(text);
        assert_eq!(l.get("app.kubernetes.io/name"), Some("hopwatch"));
        assert_eq!(l.get("pod-template-hash"), Some("7c9"));
        assert_eq!(l.get("q"), Some("a\"b"));
    }
}
