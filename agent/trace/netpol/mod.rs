//! The NetworkPolicy step, pure: whether the source pod may connect to the target Service's
//! pods and to the cluster DNS pods, which policy and rule decide, and what that means for the
//! hops already walked. The decisions are [`crate::discovery::netpol`]'s, the agent's own.
//!
//! A denial of the target is expected, as the agent's `policy_denied`: the step is `denied`,
//! not broken, and so are the Service and Pod hops when their connects came from the source
//! itself (trace running in that pod). A denial of DNS (port 53, UDP) is a fault: it breaks
//! every lookup of the source, and is named as the cause of a failed DNS hop.
//!
//! - this file: the source, the pods at the other end, and their decisions (pure);
//! - [`hop`]: the `netpol` hop from the decisions, with its text, JSON and commands (pure);
//! - [`explain`]: what the decisions mean for the hops walked before (pure);
//! - [`read`]: the API reads the step needs.

mod explain;
mod hop;
pub mod read;
#[cfg(test)]
mod tests;

pub use explain::explain;
pub use hop::{Step, hop};

use std::net::IpAddr;

use super::verdict::Finding;
use crate::discovery::model::{Labels, ObjKey};
use crate::discovery::netpol::{
    self, Connection, Decision, Direction, Known, Peer, PodRef, Policy, PortName, Protocol, Verdict,
};

/// The pod whose connections are decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub namespace: String,
    /// `None` for trace's own pod, known by namespace, IP and labels only.
    pub name: Option<String>,
    pub ip: IpAddr,
    pub labels: Labels,
    /// False when trace's own labels file could not be read.
    pub labels_complete: bool,
    pub namespace_labels: Labels,
    /// Trace's own connects come from this pod: their results are its results.
    pub connects_here: bool,
}

impl Source {
    /// `shop/web-1`, or `this pod (hopwatch 10.244.1.2)`.
    pub fn text(&self) -> String {
        match &self.name {
            Some(name) => format!("{}/{name}", self.namespace),
            None => format!("this pod ({} {})", self.namespace, self.ip),
        }
    }

    fn pod_ref(&self) -> PodRef<'_> {
        PodRef {
            namespace: &self.namespace,
            namespace_labels: &self.namespace_labels,
            labels: Known {
                labels: &self.labels,
                complete: self.labels_complete,
            },
        }
    }
}

/// A pod at the other end, and the port it is reached on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndPod {
    pub name: String,
    pub labels: Labels,
    pub ip: IpAddr,
    pub port: u16,
    /// The name the pod's container gives the port, which named ports in rules refer to.
    pub port_name: Option<String>,
}

/// The pods behind one Service port: the other end of one kind of connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ends {
    pub service: ObjKey,
    pub namespace_labels: Labels,
    pub protocol: Protocol,
    pub pods: Vec<EndPod>,
}

impl Ends {
    fn pod_ref<'a>(&'a self, pod: &'a EndPod) -> PodRef<'a> {
        PodRef {
            namespace: &self.service.namespace,
            namespace_labels: &self.namespace_labels,
            labels: Known {
                labels: &pod.labels,
                complete: true,
            },
        }
    }

    /// `shop/db 8080/TCP`: the first pod's port stands for all.
    fn text(&self) -> String {
        let port = self.pods.first().map_or(0, |p| p.port);
        format!("{} {port}/{}", self.service, self.protocol.as_str())
    }
}

/// What the step decides one kind of connection on: the ends, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Nothing to decide, and why: a Service without a selector, one without pods.
    Nothing(String),
    /// A read failed.
    Failed(Finding),
}

/// Everything the step reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// `Ok(None)`: no `--from`, and trace does not run in a pod.
    pub source: Result<Option<Source>, Finding>,
    /// How the source was named, for the facts: `--from`, or trace's own pod.
    pub source_origin: &'static str,
    /// The policies of the namespaces involved.
    pub policies: Result<Vec<Policy>, Finding>,
    /// Policies left out: a part the API server would have rejected.
    pub unreadable: Vec<ObjKey>,
    /// The target Service's pods, when the step checks them.
    pub target: Option<Result<Ends, Missing>>,
    /// The cluster DNS pods on 53/UDP and 53/TCP, when the step checks DNS.
    pub dns: Option<Result<[Ends; 2], Missing>>,
}

/// One kind of connection decided: pods grouped by verdict, and who selects them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub ends: Ends,
    pub groups: Vec<(Verdict, Vec<String>)>,
    /// The policies selecting the pods for ingress, any of them.
    pub ingress: Vec<ObjKey>,
}

/// Decides every pod of `ends` against the policies, for `source` (`None`: only lists the
/// policies selecting the pods).
pub fn decide(policies: &[Policy], source: Option<&Source>, ends: &Ends) -> Decided {
    let mut groups: Vec<(Verdict, Vec<String>)> = Vec::new();
    let mut ingress: Vec<ObjKey> = Vec::new();
    for pod in &ends.pods {
        for p in netpol::selecting(policies, Direction::Ingress, ends.pod_ref(pod)) {
            if !ingress.contains(&p.key) {
                ingress.push(p.key.clone());
            }
        }
        let Some(source) = source else { continue };
        let port_name = match &pod.port_name {
            Some(name) => PortName::Named(name),
            None => PortName::None,
        };
        let conn = Connection {
            source: Peer {
                pod: Some(source.pod_ref()),
                ip: source.ip,
            },
            destination: Peer {
                pod: Some(ends.pod_ref(pod)),
                ip: pod.ip,
            },
            port: pod.port,
            port_name,
            protocol: ends.protocol,
        };
        let verdict = netpol::evaluate(policies, &conn);
        match groups.iter_mut().find(|(v, _)| *v == verdict) {
            Some((_, pods)) => pods.push(pod.name.clone()),
            None => groups.push((verdict, vec![pod.name.clone()])),
        }
    }
    ingress.sort();
    Decided {
        ends: ends.clone(),
        groups,
        ingress,
    }
}

impl Decided {
    /// The group that denies, else one that cannot be decided, else the first (allowed).
    pub fn deciding(&self) -> Option<&(Verdict, Vec<String>)> {
        let find = |want: Option<bool>| self.groups.iter().find(|(v, _)| v.allowed() == want);
        find(Some(false))
            .or_else(|| find(None))
            .or(self.groups.first())
    }

    pub fn denied(&self) -> bool {
        self.deciding()
            .is_some_and(|(v, _)| v.allowed() == Some(false))
    }

    pub fn allowed(&self) -> bool {
        self.deciding()
            .is_some_and(|(v, _)| v.allowed() == Some(true))
    }

    /// `shop/web-1 → shop/db 8080/TCP: allowed by shop/allow-api-to-db ingress rule 1`.
    fn line(&self, source: &Source) -> String {
        let decision = match self.deciding() {
            Some((verdict, pods)) => verdict_text(verdict, pods, &source.text()),
            None => "no pod to decide for".to_string(),
        };
        format!("{} → {}: {decision}", source.text(), self.ends.text())
    }

    /// The policies a reader should look at: the deciding ones, else those selecting the pods.
    fn named(&self) -> Vec<ObjKey> {
        let mut out: Vec<ObjKey> = Vec::new();
        for (verdict, _) in &self.groups {
            for side in [&verdict.egress, &verdict.ingress] {
                match side {
                    Decision::Allowed { policy, .. } => out.push(policy.clone()),
                    Decision::Denied { selecting } => out.extend(selecting.iter().cloned()),
                    Decision::NotIsolated | Decision::Unknown => {}
                }
            }
        }
        if out.is_empty() {
            out = self.ingress.clone();
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `allowed by shop/x ingress rule 1`, `denied, the ingress of db-1 is selected by 2 policies,
/// none allows this source and port (…)`, or why it cannot be decided. Rules count from 1.
pub fn verdict_text(verdict: &Verdict, pods: &[String], source: &str) -> String {
    if let Some((direction, selecting)) = verdict.denied() {
        let (whose, other) = match direction {
            Direction::Ingress => (pods.join(", "), "source"),
            Direction::Egress => (source.to_string(), "destination"),
        };
        let n = selecting.len();
        return format!(
            "denied, the {} of {whose} is selected by {n} polic{}, none allows this {other} and port ({})",
            direction.as_str(),
            if n == 1 { "y" } else { "ies" },
            join(selecting)
        );
    }
    if verdict.allowed().is_none() {
        return "undecided: labels or a port name trace does not know could change it".into();
    }
    let sides = [
        (Direction::Egress, &verdict.egress),
        (Direction::Ingress, &verdict.ingress),
    ];
    let rules: Vec<String> = sides
        .into_iter()
        .filter_map(|(dir, d)| match d {
            Decision::Allowed { policy, rule } => {
                Some(format!("{policy} {} rule {}", dir.as_str(), rule + 1))
            }
            _ => None,
        })
        .collect();
    if rules.is_empty() {
        "allowed, no NetworkPolicy selects either end".to_string()
    } else {
        format!("allowed by {}", rules.join(" and "))
    }
}

fn join(keys: &[ObjKey]) -> String {
    let names: Vec<String> = keys.iter().map(ObjKey::to_string).collect();
    names.join(", ")
}
