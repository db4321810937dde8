//! NetworkPolicy v1 semantics, pure: which policies select a pod, and whether one connection
//! is allowed, by which policy and rule, or denied, by which policies.
//!
//! The model follows the API reference (networking.k8s.io/v1):
//!
//! - A pod is isolated for ingress (egress) when a policy of its namespace selects it with
//!   `Ingress` (`Egress`) among its `policyTypes`. Without `policyTypes` a policy has `Ingress`,
//!   plus `Egress` when its `egress` list is non-empty: `egress: []` is not an egress policy.
//! - An isolated pod accepts a connection when any rule of any selecting policy allows it:
//!   policies are additive, none can deny what another allows.
//! - A rule allows a peer when its `from`/`to` is empty or missing (everyone) or one of its
//!   peers matches, and its `ports` is empty or missing (every port) or one of its ports matches.
//! - A peer's `podSelector` alone selects pods of the policy's namespace, `namespaceSelector`
//!   alone every pod of the selected namespaces, both together the selected pods of the
//!   selected namespaces; an empty selector selects everything it ranges over.
//! - `ipBlock` matches the peer's IP when it is inside `cidr` and outside every `except`. It is
//!   matched against pod IPs too, as most CNIs do (the reference leaves it to the plugin).
//! - A port matches the protocol (default TCP) and the number, the range `port..=endPort`, or a
//!   named port of the destination pod; a rule port without `port` matches every port.
//! - A connection is allowed when the source's egress and the destination's ingress both are.
//!
//! Pods known only in part (the agent knows a destination's labels only from its Service's
//! selector) give [`Decision::Unknown`] wherever the missing labels could change the answer.

mod eval;
mod project;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use super::model::{Labels, ObjKey};

pub use eval::{Connection, Decision, Peer, PodRef, PortName, Verdict, evaluate, selecting};
pub use project::project;

/// One label requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A `matchLabels` entry.
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A `metav1.LabelSelector`; no requirement selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Requirement>);

/// Labels of a pod or namespace, and whether they are all of them.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub labels: &'a Labels,
    /// False when only some labels are known: a requirement on another key is undecided.
    pub complete: bool,
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Equals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => k,
        }
    }

    /// `None` when the label is not known and could decide either way.
    fn matches(&self, known: Known<'_>) -> Option<bool> {
        let value = known.labels.get(self.key());
        if value.is_none() && !known.complete {
            return None;
        }
        let among = |vs: &[String], v: &str| vs.iter().any(|x| x == v);
        Some(match self {
            Requirement::Equals(_, want) => value == Some(want.as_str()),
            Requirement::In(_, vs) => value.is_some_and(|v| among(vs, v)),
            Requirement::NotIn(_, vs) => value.is_none_or(|v| !among(vs, v)),
            Requirement::Exists(_) => value.is_some(),
            Requirement::DoesNotExist(_) => value.is_none(),
        })
    }
}

impl Selector {
    /// Whether `known` is selected: `None` when labels that are not known decide it.
    pub fn matches(&self, known: Known<'_>) -> Option<bool> {
        and_all(self.0.iter().map(|r| r.matches(known)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Three-valued AND: any definite false wins over unknown.
pub(crate) fn and_all(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut result = Some(true);
    for v in values {
        match v {
            Some(false) => return Some(false),
            None => result = None,
            Some(true) => {}
        }
    }
    result
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax: `app=db,tier in (a,b),!legacy`; `<all>` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<all>");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// An IP range, `addr/prefix`, with the host bits kept as written (they do not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8` or `fd00::/64`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside; an address of the other family never is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A `from` or `to` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyPeer {
    /// `podSelector` and/or `namespaceSelector`. `namespaces: None` is the policy's own
    /// namespace; `pods: None` every pod of the selected namespaces.
    Pods {
        namespaces: Option<Selector>,
        pods: Option<Selector>,
    },
    IpBlock {
        cidr: Cidr,
        except: Vec<Cidr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// A rule's `port`: a number or the name of a container port of the destination pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Number(u16),
    Name(String),
}

/// A `ports` entry. `port: None` matches every port of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPort {
    pub protocol: Protocol,
    pub port: Option<PortSpec>,
    /// With a numeric `port`: the range `port..=end_port`.
    pub end_port: Option<u16>,
}

/// One `ingress` or `egress` rule. An empty list of peers or ports means all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub peers: Vec<PolicyPeer>,
    pub ports: Vec<PolicyPort>,
}

/// What hopwatch keeps of a NetworkPolicy, `policyTypes` already applied: `ingress: None`
/// means the policy does not affect ingress; `Some(vec![])` isolates the pods for ingress and
/// allows nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub key: ObjKey,
    pub pod_selector: Selector,
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

/// Which way a connection crosses a policy: into the selected pod, or out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl Policy {
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}
