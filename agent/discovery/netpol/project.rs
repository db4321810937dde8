//! From the API's NetworkPolicy to [`Policy`], with the API server's defaults applied:
//! `policyTypes`, TCP, a missing `podSelector` selecting every pod.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    Cidr, Policy, PolicyPeer, PolicyPort, PortSpec, Protocol, Requirement, Rule, Selector,
};
use crate::discovery::model::ObjKey;

/// Projects a policy; `None` for one without a name or namespace, or with a part the API
/// server would have rejected (an unknown operator or protocol, a bad CIDR). Leaving such a
/// policy out can only make hopwatch expect fewer denials, never more.
pub fn project(policy: &NetworkPolicy) -> Option<Policy> {
    let key = ObjKey::new(
        policy.metadata.namespace.as_deref()?,
        policy.metadata.name.as_deref()?,
    );
    let spec = policy.spec.clone().unwrap_or_default();
    let (ingress, egress) = policy_types(&spec);
    let ingress_rules = spec.ingress.unwrap_or_default();
    let egress_rules = spec.egress.unwrap_or_default();
    Some(Policy {
        key,
        pod_selector: selector(spec.pod_selector.as_ref())?,
        ingress: match ingress {
            true => Some(rules(ingress_rules.iter().map(|r| (&r.from, &r.ports)))?),
            false => None,
        },
        egress: match egress {
            true => Some(rules(egress_rules.iter().map(|r| (&r.to, &r.ports)))?),
            false => None,
        },
    })
}

/// Whether the policy affects ingress and egress. The API server's default for a policy
/// without `policyTypes`: `Ingress`, and `Egress` too when `egress` has a rule.
fn policy_types(spec: &NetworkPolicySpec) -> (bool, bool) {
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

type RuleParts<'a> = (
    &'a Option<Vec<NetworkPolicyPeer>>,
    &'a Option<Vec<NetworkPolicyPort>>,
);

fn rules<'a>(parts: impl Iterator<Item = RuleParts<'a>>) -> Option<Vec<Rule>> {
    parts
        .map(|(peers, ports)| {
            Some(Rule {
                peers: peers.iter().flatten().map(peer).collect::<Option<_>>()?,
                ports: ports.iter().flatten().map(port).collect::<Option<_>>()?,
            })
        })
        .collect()
}

fn peer(p: &NetworkPolicyPeer) -> Option<PolicyPeer> {
    if let Some(block) = &p.ip_block {
        return Some(PolicyPeer::IpBlock {
            cidr: Cidr::parse(&block.cidr)?,
            except: block
                .except
                .iter()
                .flatten()
                .map(|c| Cidr::parse(c))
                .collect::<Option<_>>()?,
        });
    }
    if p.pod_selector.is_none() && p.namespace_selector.is_none() {
        return None;
    }
    let optional = |s: &Option<LabelSelector>| match s {
        None => Some(None),
        Some(s) => selector(Some(s)).map(Some),
    };
    Some(PolicyPeer::Pods {
        namespaces: optional(&p.namespace_selector)?,
        pods: optional(&p.pod_selector)?,
    })
}

fn port(p: &NetworkPolicyPort) -> Option<PolicyPort> {
    let protocol = match p.protocol.as_deref() {
        None | Some("TCP") => Protocol::Tcp,
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        Some(_) => return None,
    };
    let spec = match &p.port {
        None => None,
        Some(IntOrString::Int(n)) => Some(PortSpec::Number(u16::try_from(*n).ok()?)),
        Some(IntOrString::String(name)) => Some(PortSpec::Name(name.clone())),
    };
    Some(PolicyPort {
        protocol,
        port: spec,
        end_port: p.end_port.map(u16::try_from).transpose().ok()?,
    })
}

/// A missing selector is the empty one, which selects everything.
fn selector(s: Option<&LabelSelector>) -> Option<Selector> {
    let Some(s) = s else {
        return Some(Selector::default());
    };
    let mut reqs: Vec<Requirement> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let (k, vs) = (e.key.clone(), e.values.clone().unwrap_or_default());
        reqs.push(match e.operator.as_str() {
            "In" => Requirement::In(k, vs),
            "NotIn" => Requirement::NotIn(k, vs),
            "Exists" => Requirement::Exists(k),
            "DoesNotExist" => Requirement::DoesNotExist(k),
            _ => return None,
        });
    }
    Some(Selector(reqs))
}
