//! What the step's decisions mean for the hops walked before it, when their connects came
//! from the source itself.

use super::{Step, join, verdict_text};
use crate::trace::verdict::{Cause, Finding};
use crate::trace::{Hop, HopName, Status};

/// What the decisions mean for the hops already walked, when their connects came from the
/// source itself: a denied target turns the failed Service and Pod hops into expected
/// denials, an allowed one rules the policies out, and a denied DNS is the failed DNS hop's
/// cause. A denied target that answered anyway is a policy the CNI does not enforce.
pub fn explain(hops: &mut [Hop], step: &Step, source_here: bool) {
    if !source_here {
        return;
    }
    if let Some(finding) = &step.dns_denied {
        for hop in hops
            .iter_mut()
            .filter(|h| h.name == HopName::Dns && h.status == Status::Broken)
        {
            if matches!(hop.cause(), Some(Cause::DnsTimeout | Cause::DnsFailed)) {
                hop.finding = Some(finding.clone());
            }
        }
    }
    let Some(target) = &step.target else { return };
    let connects = |h: &Hop| {
        matches!(h.name, HopName::Service | HopName::Pod)
            && matches!(
                h.cause(),
                Some(Cause::ServiceUnreachable | Cause::PodUnreachable)
            )
            && h.status == Status::Broken
    };
    if target.denied() {
        let names = join(&target.named());
        let reason = target
            .deciding()
            .map(|(v, p)| verdict_text(v, p, "this pod"))
            .unwrap_or_default();
        for hop in hops.iter_mut().filter(|h| connects(h)) {
            let summary = format!(
                "{}: denied by NetworkPolicy {names} (expected)",
                hop.summary
            );
            let detail = format!(
                "{}: the connects fail as the NetworkPolicies say: {reason}",
                hop.summary
            );
            // The step's commands, listed under the verdict, confirm it; the pod's logs do not.
            let finding = Finding::new(Cause::PolicyDenied, detail, Vec::new());
            *hop = hop.clone().denied(summary, finding);
        }
        let answered = hops
            .iter()
            .any(|h| h.name == HopName::Pod && h.status == Status::Ok);
        if let Some(netpol) = hops.iter_mut().find(|h| h.name == HopName::NetworkPolicy)
            && answered
        {
            netpol.facts.push(format!(
                "yet the pods accepted this pod's connects: the CNI does not enforce {names}"
            ));
        }
    } else if target.allowed() {
        let why = target
            .deciding()
            .map(|(v, p)| verdict_text(v, p, "this pod"))
            .unwrap_or_default();
        for hop in hops.iter_mut().filter(|h| connects(h)) {
            if let Some(f) = hop.finding.as_mut() {
                f.detail = format!("{}; the NetworkPolicies do not stop it ({why})", f.detail);
            }
        }
    }
}
