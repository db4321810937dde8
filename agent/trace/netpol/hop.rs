//! The `netpol` hop: its status, summary, facts, JSON and kubectl commands, from the
//! decisions.

use serde_json::{Value, json};

use super::{Decided, Inputs, Missing, Source, decide, join, verdict_text};
use crate::discovery::model::{Labels, ObjKey};
use crate::discovery::netpol::{self, Decision, Direction};
use crate::trace::verdict::{Cause, Finding, kubectl};
use crate::trace::{Hop, HopName};

fn decision_json(d: &Decision) -> Value {
    match d {
        Decision::NotIsolated => json!({"decision": "not_isolated"}),
        Decision::Allowed { policy, rule } => {
            json!({"decision": "allowed", "policy": policy.to_string(), "rule": rule + 1})
        }
        Decision::Denied { selecting } => {
            json!({"decision": "denied", "policies": selecting.iter().map(ObjKey::to_string).collect::<Vec<_>>()})
        }
        Decision::Unknown => json!({"decision": "unknown"}),
    }
}

fn decided_json(d: &Decided) -> Value {
    let decision = match d.deciding().map(|(v, _)| v.allowed()) {
        Some(Some(true)) => "allowed",
        Some(Some(false)) => "denied",
        Some(None) => "unknown",
        None => "no_pods",
    };
    let groups: Vec<Value> = d
        .groups
        .iter()
        .map(|(v, pods)| {
            json!({"pods": pods, "egress": decision_json(&v.egress), "ingress": decision_json(&v.ingress)})
        })
        .collect();
    json!({
        "service": d.ends.service.to_string(),
        "protocol": d.ends.protocol.as_str(),
        "port": d.ends.pods.first().map(|p| p.port),
        "decision": decision,
        "ingress_policies": d.ingress.iter().map(ObjKey::to_string).collect::<Vec<_>>(),
        "pods": groups,
    })
}

fn source_json(s: &Source, origin: &str) -> Value {
    let labels: serde_json::Map<String, Value> =
        s.labels.iter().map(|(k, v)| (k.into(), json!(v))).collect();
    json!({
        "pod": s.name.as_ref().map(|n| format!("{}/{n}", s.namespace)),
        "namespace": s.namespace,
        "ip": s.ip.to_string(),
        "labels": labels,
        "labels_complete": s.labels_complete,
        "origin": origin,
    })
}

/// The step's decisions, for [`hop`] and [`explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub target: Option<Decided>,
    /// 53/UDP, then 53/TCP.
    pub dns: Option<[Decided; 2]>,
    /// Why DNS is denied, when 53/UDP is: the finding a failed DNS hop takes.
    pub dns_denied: Option<Finding>,
}

/// The `netpol` hop, and the decisions [`explain`] applies to the other hops.
pub fn hop(inputs: &Inputs) -> (Hop, Step) {
    let mut step = Step {
        target: None,
        dns: None,
        dns_denied: None,
    };
    let hop = Hop::new(HopName::NetworkPolicy);
    let policies = match &inputs.policies {
        Ok(p) => p.as_slice(),
        Err(finding) => return (hop.unknown(finding.detail.clone(), finding.clone()), step),
    };
    let source = match &inputs.source {
        Ok(source) => source.as_ref(),
        Err(finding) => return (hop.unknown(finding.detail.clone(), finding.clone()), step),
    };
    let mut hop = hop;
    let mut confirm: Vec<String> = Vec::new();
    if let Some(s) = source {
        // Trace's own pod is already named by its IP.
        let who = match &s.name {
            Some(_) => format!("{} {}", s.text(), s.ip),
            None => s.text(),
        };
        hop = hop
            .with("source", source_json(s, inputs.source_origin))
            .fact(format!(
                "source: {who} {} ({})",
                labels_text(&s.labels),
                inputs.source_origin
            ));
        let egress = netpol::selecting(policies, Direction::Egress, s.pod_ref());
        let keys: Vec<ObjKey> = egress.iter().map(|p| p.key.clone()).collect();
        hop = hop
            .with(
                "egress_policies",
                json!(keys.iter().map(ObjKey::to_string).collect::<Vec<_>>()),
            )
            .fact(format!(
                "egress policies selecting {}: {}",
                s.text(),
                list_or_none(&keys)
            ));
        if !keys.is_empty() {
            confirm.push(kubectl::networkpolicies(&s.namespace));
        }
    }
    for key in &inputs.unreadable {
        hop = hop.fact(format!(
            "policy {key} left out: a field the API server would reject"
        ));
    }
    let mut problems: Vec<Finding> = Vec::new();
    match &inputs.target {
        Some(Ok(ends)) => {
            let d = decide(policies, source, ends);
            let pods: Vec<String> = ends.pods.iter().map(|p| p.name.clone()).collect();
            hop = hop.fact(format!(
                "ingress policies selecting {} ({}): {}",
                ends.service,
                pods.join(", "),
                list_or_none(&d.ingress)
            ));
            confirm.push(kubectl::networkpolicies(&ends.service.namespace));
            step.target = Some(d);
        }
        Some(Err(Missing::Nothing(why))) => hop = hop.fact(format!("target: {why}")),
        Some(Err(Missing::Failed(f))) => problems.push(f.clone()),
        None => {}
    }
    match &inputs.dns {
        Some(Ok([udp, tcp])) => {
            step.dns = Some([decide(policies, source, udp), decide(policies, source, tcp)]);
        }
        Some(Err(Missing::Nothing(why))) => hop = hop.fact(format!("dns: {why}")),
        Some(Err(Missing::Failed(f))) => problems.push(f.clone()),
        None => {}
    }
    let mut data = serde_json::Map::new();
    if let Some(d) = &step.target {
        data.insert("target".into(), decided_json(d));
    }
    if let Some([udp, tcp]) = &step.dns {
        data.insert(
            "dns".into(),
            json!({"udp": decided_json(udp), "tcp": decided_json(tcp)}),
        );
    }
    for (key, value) in data {
        hop = hop.with(&key, value);
    }
    let named: Vec<ObjKey> = step
        .target
        .iter()
        .chain(step.dns.iter().flatten())
        .flat_map(Decided::named)
        .collect();
    for key in &named {
        let command = kubectl::describe_networkpolicy(&key.namespace, &key.name);
        if !confirm.contains(&command) {
            confirm.push(command);
        }
    }
    hop.confirm = confirm.clone();
    let Some(source) = source else {
        return (unknown_source(hop, &step, confirm), step);
    };
    let hop = conclude(hop, &mut step, source, problems, confirm);
    (hop, step)
}

/// The hop's status and summary from the decisions: DNS denied breaks it, a denied target is
/// expected, an undecided one or a failed read leaves it unknown.
fn conclude(
    mut hop: Hop,
    step: &mut Step,
    source: &Source,
    problems: Vec<Finding>,
    confirm: Vec<String>,
) -> Hop {
    if let Some([udp, tcp]) = &step.dns {
        hop = hop
            .fact(format!("dns: {}", udp.line(source)))
            .fact(format!("dns: {}", tcp.line(source)));
        if udp.denied() {
            let detail = format!(
                "the NetworkPolicies deny {} the cluster DNS: {}; every lookup from it times out",
                source.text(),
                udp.line(source)
            );
            let finding = Finding::new(Cause::DnsPolicyDenied, detail, confirm.clone());
            step.dns_denied = Some(finding.clone());
            return hop.broken(udp.line(source), finding);
        }
    }
    if let Some(problem) = problems.into_iter().next() {
        return hop.unknown(problem.detail.clone(), problem);
    }
    let Some(target) = &step.target else {
        let summary = match &step.dns {
            Some([udp, _]) => udp.line(source),
            None => "nothing to decide".to_string(),
        };
        return hop.ok(summary);
    };
    for (verdict, pods) in target.groups.iter().filter(|_| target.groups.len() > 1) {
        hop = hop.fact(format!(
            "{}: {}",
            pods.join(", "),
            verdict_text(verdict, pods, &source.text())
        ));
    }
    let line = target.line(source);
    match target.deciding().map(|(v, _)| v.allowed()) {
        Some(Some(false)) => {
            let finding = Finding::new(Cause::PolicyDenied, line.clone(), confirm);
            hop.denied(line, finding)
        }
        Some(None) => {
            let detail = format!("{line}: see the policies selecting either end");
            hop.unknown(line, Finding::new(Cause::SourceUnknown, detail, confirm))
        }
        _ => hop.ok(line),
    }
}

/// Without a source, only who selects the target pods; the decision needs `--from`. When
/// nobody does, the target's side is decided: no policy stops any source there.
fn unknown_source(hop: Hop, step: &Step, confirm: Vec<String>) -> Hop {
    let selecting = step
        .target
        .as_ref()
        .map(|d| d.ingress.clone())
        .unwrap_or_default();
    if let (Some(target), true) = (&step.target, selecting.is_empty()) {
        return hop.ok(format!(
            "no NetworkPolicy selects the pods of {} for ingress: none stops a source there (a source's own egress policies need --from)",
            target.ends.service
        ));
    }
    let n = selecting.len();
    let detail = format!(
        "source unknown: trace runs outside a pod and no --from names one; {n} polic{} select{} the target pods for ingress{}; give --from pod/NAMESPACE/NAME to decide",
        if n == 1 { "y" } else { "ies" },
        if n == 1 { "s" } else { "" },
        if n == 0 {
            String::new()
        } else {
            format!(" ({})", join(&selecting))
        }
    );
    let summary = detail.clone();
    hop.unknown(summary, Finding::new(Cause::SourceUnknown, detail, confirm))
}

fn list_or_none(keys: &[ObjKey]) -> String {
    if keys.is_empty() {
        "none".to_string()
    } else {
        join(keys)
    }
}

fn labels_text(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        "(no labels)".to_string()
    } else {
        pairs.join(",")
    }
}
