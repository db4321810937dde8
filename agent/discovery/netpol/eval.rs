//! One connection against a set of policies: egress out of the source, ingress into the
//! destination, each decided by the policies of that pod's namespace.

use std::net::IpAddr;

use super::{Direction, Known, Policy, PolicyPeer, PolicyPort, PortSpec, Protocol, Rule, and_all};
use crate::discovery::model::{Labels, ObjKey};

/// A pod at one end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub namespace: &'a str,
    /// All of them, `kubernetes.io/metadata.name` included, as the API serves them.
    pub namespace_labels: &'a Labels,
    pub labels: Known<'a>,
}

/// One end of a connection: a pod, or an address outside the cluster's pods.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub pod: Option<PodRef<'a>>,
    pub ip: IpAddr,
}

/// The destination port's name on its pod, which named ports in rules refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortName<'a> {
    Named(&'a str),
    /// The pod declares no name for the port, or the destination is no pod.
    None,
    /// Not known: a named port in a rule could match it or not.
    Unknown,
}

/// A connection attempt, as a NetworkPolicy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    pub source: Peer<'a>,
    pub destination: Peer<'a>,
    pub port: u16,
    pub port_name: PortName<'a>,
    pub protocol: Protocol,
}

/// What the policies of one side decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    /// The first rule that allows it, policies taken in the order given (the store's: by
    /// namespace and name); `rule` indexes the policy's `ingress` or `egress` list.
    Allowed { policy: ObjKey, rule: usize },
    /// Selected by these policies (sorted), and no rule of theirs allows the connection.
    Denied { selecting: Vec<ObjKey> },
    /// Labels or a port name that are not known decide it.
    Unknown,
}

/// Both sides of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub egress: Decision,
    pub ingress: Decision,
}

impl Verdict {
    /// `Some(false)` when a side denies, `None` when a side is unknown, else `Some(true)`.
    pub fn allowed(&self) -> Option<bool> {
        let sides = [&self.egress, &self.ingress];
        if sides.iter().any(|d| matches!(d, Decision::Denied { .. })) {
            Some(false)
        } else if sides.contains(&&Decision::Unknown) {
            None
        } else {
            Some(true)
        }
    }

    /// The side that denies, egress first (the packet leaves the source before it arrives).
    pub fn denied(&self) -> Option<(Direction, &[ObjKey])> {
        let sides = [
            (Direction::Egress, &self.egress),
            (Direction::Ingress, &self.ingress),
        ];
        sides.into_iter().find_map(|(dir, d)| match d {
            Decision::Denied { selecting } => Some((dir, selecting.as_slice())),
            _ => None,
        })
    }
}

/// Decides `conn` against `policies` (any order; the store keeps them sorted by key).
pub fn evaluate<'p>(
    policies: impl IntoIterator<Item = &'p Policy> + Clone,
    conn: &Connection<'_>,
) -> Verdict {
    let side = |dir, pod: Option<PodRef<'_>>, other: &Peer<'_>| match pod {
        Some(pod) => decide(policies.clone(), dir, pod, other, conn),
        None => Decision::NotIsolated,
    };
    Verdict {
        egress: side(Direction::Egress, conn.source.pod, &conn.destination),
        ingress: side(Direction::Ingress, conn.destination.pod, &conn.source),
    }
}

/// The policies that select `pod` for `direction`, for certain.
pub fn selecting<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    direction: Direction,
    pod: PodRef<'_>,
) -> Vec<&'p Policy> {
    policies
        .into_iter()
        .filter(|p| selects(p, direction, pod) == Some(true))
        .collect()
}

fn selects(policy: &Policy, direction: Direction, pod: PodRef<'_>) -> Option<bool> {
    if policy.key.namespace != pod.namespace || policy.rules(direction).is_none() {
        return Some(false);
    }
    policy.pod_selector.matches(pod.labels)
}

/// One side: isolated when a policy selects `pod`, then allowed when one of their rules does.
fn decide<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    direction: Direction,
    pod: PodRef<'_>,
    other: &Peer<'_>,
    conn: &Connection<'_>,
) -> Decision {
    let (mut selecting, mut unsure) = (Vec::new(), false);
    for policy in policies {
        match selects(policy, direction, pod) {
            Some(true) => {}
            Some(false) => continue,
            // It may or may not isolate the pod, and may allow what the others deny.
            None => {
                unsure = true;
                continue;
            }
        }
        let rules = policy.rules(direction).unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            match rule_allows(&policy.key.namespace, rule, other, conn) {
                Some(true) => {
                    return Decision::Allowed {
                        policy: policy.key.clone(),
                        rule: i,
                    };
                }
                None => unsure = true,
                Some(false) => {}
            }
        }
        selecting.push(policy.key.clone());
    }
    match (selecting.is_empty(), unsure) {
        (_, true) => Decision::Unknown,
        (true, false) => Decision::NotIsolated,
        (false, false) => {
            selecting.sort();
            Decision::Denied { selecting }
        }
    }
}

fn rule_allows(
    policy_namespace: &str,
    rule: &Rule,
    other: &Peer<'_>,
    conn: &Connection<'_>,
) -> Option<bool> {
    let peers = rule.peers.is_empty()
        || any(rule
            .peers
            .iter()
            .map(|p| peer_matches(policy_namespace, p, other)))?;
    let ports = rule.ports.is_empty() || any(rule.ports.iter().map(|p| port_matches(p, conn)))?;
    Some(peers && ports)
}

/// Three-valued OR: any definite true wins over unknown.
fn any(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut result = Some(false);
    for v in values {
        match v {
            Some(true) => return Some(true),
            None => result = None,
            Some(false) => {}
        }
    }
    result
}

fn peer_matches(policy_namespace: &str, peer: &PolicyPeer, other: &Peer<'_>) -> Option<bool> {
    match peer {
        PolicyPeer::IpBlock { cidr, except } => {
            Some(cidr.contains(other.ip) && !except.iter().any(|e| e.contains(other.ip)))
        }
        PolicyPeer::Pods { namespaces, pods } => {
            let Some(pod) = other.pod else {
                return Some(false);
            };
            let namespace = match namespaces {
                None => Some(pod.namespace == policy_namespace),
                Some(selector) => selector.matches(Known {
                    labels: pod.namespace_labels,
                    complete: true,
                }),
            };
            let pod_ok = pods.as_ref().map_or(Some(true), |s| s.matches(pod.labels));
            and_all([namespace, pod_ok].into_iter())
        }
    }
}

fn port_matches(port: &PolicyPort, conn: &Connection<'_>) -> Option<bool> {
    if port.protocol != conn.protocol {
        return Some(false);
    }
    match &port.port {
        None => Some(true),
        Some(PortSpec::Number(start)) => Some(match port.end_port {
            Some(end) => (*start..=end).contains(&conn.port),
            None => *start == conn.port,
        }),
        Some(PortSpec::Name(name)) => match conn.port_name {
            PortName::Named(actual) => Some(actual == name),
            PortName::None => Some(false),
            PortName::Unknown => None,
        },
    }
}
