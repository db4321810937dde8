//! Infrastructure or application: a broken Service's verdict judged against the canary's on
//! the same node. Pure; `metrics` exports it as `hopwatch_path_cause{namespace,service,cause}`.
//!
//! The canary is broken at the same or an earlier hop of the request path than the Service:
//! what breaks the canary is in front of the Service too, and the infrastructure is to blame.
//! Otherwise the canary's path goes through where the Service's breaks, so the Service (its
//! pods, its endpoints, its own Ingress rule) is. Hops are ordered as the verdict checks them
//! ([`BrokenHop`]'s order): dns, loadbalancer, ingress, endpoints, service, pod.

use std::collections::BTreeMap;

use crate::discovery::model::ObjKey;
use crate::verdict::{BrokenHop, ServiceVerdict, Verdicts};

/// Why a Service's path is broken from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The canary's path is broken at the same or an earlier hop.
    Infrastructure,
    /// The canary's path works up to and through the Service's broken hop.
    Application,
    /// The canary Service is not among the Services this agent probes.
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 3] = [Cause::Infrastructure, Cause::Application, Cause::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Infrastructure => "infrastructure",
            Cause::Application => "application",
            Cause::Unknown => "unknown",
        }
    }
}

/// The cause of a Service's verdict `service`, given the canary's (`None`: not probed).
/// `None` while the Service's path works: there is nothing to explain.
pub fn cause(service: BrokenHop, canary: Option<BrokenHop>) -> Option<Cause> {
    if service == BrokenHop::None {
        return None;
    }
    Some(match canary {
        None => Cause::Unknown,
        Some(BrokenHop::None) => Cause::Application,
        Some(hop) if hop <= service => Cause::Infrastructure,
        Some(_) => Cause::Application,
    })
}

/// What to export after the verdicts in `changed` were set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The canary's own verdict; `None` while it is not probed.
    pub canary: Option<BrokenHop>,
    /// The cause of each Service to update: those of `changed`, or every Service when the
    /// canary's verdict is among them, since it judges them all.
    pub causes: BTreeMap<ObjKey, Option<Cause>>,
}

/// Judges the Services of `changed` (every Service, if the canary is one of them) against the
/// canary Service `canary`.
pub fn judge(
    verdicts: &Verdicts,
    canary: &ObjKey,
    changed: &BTreeMap<ObjKey, ServiceVerdict>,
) -> Judged {
    let canary_hop = verdicts.verdict(canary).map(|v| v.broken);
    let judge_all = |all: &BTreeMap<ObjKey, ServiceVerdict>| {
        all.iter()
            .map(|(svc, v)| (svc.clone(), cause(v.broken, canary_hop)))
            .collect()
    };
    let causes = if changed.contains_key(canary) {
        judge_all(&verdicts.all())
    } else {
        judge_all(changed)
    };
    Judged {
        canary: canary_hop,
        causes,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::tcp::Connect;
    use crate::probe::{Detail, Failure, Hop, Outcome, TargetKey};
    use crate::verdict::{Membership, key};

    fn failed() -> Outcome {
        Outcome {
            result: Err(Failure::Refused),
            duration: Duration::ZERO,
            detail: Detail::None,
        }
    }

    fn pods_unreachable() -> Outcome {
        Outcome {
            result: Ok(()),
            duration: Duration::ZERO,
            detail: Detail::Connects(vec![Connect {
                result: Err(Failure::Timeout),
                duration: Duration::ZERO,
            }]),
        }
    }

    fn member(svc: &ObjKey, empty: bool) -> Membership {
        let id = format!("{svc}:80");
        Membership {
            empty,
            service_targets: vec![key(Hop::Service, &id)],
            pod_targets: vec![key(Hop::Pod, &id)],
            ..Membership::default()
        }
    }

    fn canary() -> ObjKey {
        ObjKey::new("hopwatch", "hopwatch-canary")
    }

    fn app() -> ObjKey {
        ObjKey::new("shop", "web")
    }

    /// The canary and `shop/web`, both with endpoints unless `app_empty`.
    fn setup(app_empty: bool) -> Verdicts {
        let mut v = Verdicts::default();
        let members = [
            (canary(), member(&canary(), false)),
            (app(), member(&app(), app_empty)),
        ];
        v.set_services(BTreeMap::from(members), vec![]);
        v
    }

    fn service_hop(svc: &ObjKey) -> TargetKey {
        key(Hop::Service, &format!("{svc}:80"))
    }

    /// Every Service's cause, as exported after a full round.
    fn causes(v: &Verdicts) -> Judged {
        judge(v, &canary(), &v.all())
    }

    #[test]
    fn the_rule_in_request_order() {
        use BrokenHop as H;
        assert_eq!(
            cause(H::None, Some(H::Dns)),
            None,
            "a working path has no cause"
        );
        assert_eq!(cause(H::Pod, None), Some(Cause::Unknown));
        assert_eq!(cause(H::Pod, Some(H::None)), Some(Cause::Application));
        assert_eq!(
            cause(H::Service, Some(H::Service)),
            Some(Cause::Infrastructure)
        );
        assert_eq!(cause(H::Pod, Some(H::Dns)), Some(Cause::Infrastructure));
        assert_eq!(cause(H::Ingress, Some(H::Pod)), Some(Cause::Application));
        assert_eq!(
            cause(H::Endpoints, Some(H::Service)),
            Some(Cause::Application)
        );
    }

    #[test]
    fn a_broken_canary_is_infrastructure_and_a_working_app_has_no_cause() {
        let mut v = setup(false);
        v.observe(&service_hop(&canary()), &failed());
        let judged = causes(&v);
        assert_eq!(judged.canary, Some(BrokenHop::Service));
        assert_eq!(judged.causes[&canary()], Some(Cause::Infrastructure));
        assert_eq!(judged.causes[&app()], None);
    }

    #[test]
    fn an_app_without_ready_endpoints_is_application_while_the_canary_works() {
        let mut v = setup(true);
        v.observe(&service_hop(&app()), &failed());
        let judged = causes(&v);
        assert_eq!(judged.canary, Some(BrokenHop::None));
        assert_eq!(judged.causes[&app()], Some(Cause::Application));
        assert_eq!(judged.causes[&canary()], None);
    }

    #[test]
    fn both_broken_at_the_service_hop_is_infrastructure() {
        let mut v = setup(false);
        v.observe(&service_hop(&app()), &failed());
        v.observe(&service_hop(&canary()), &failed());
        let judged = causes(&v);
        assert_eq!(judged.causes[&app()], Some(Cause::Infrastructure));
        assert_eq!(judged.causes[&canary()], Some(Cause::Infrastructure));
    }

    #[test]
    fn a_canary_broken_only_further_down_leaves_the_app_to_blame() {
        let mut v = setup(false);
        v.observe(&service_hop(&app()), &failed());
        v.observe(
            &key(Hop::Pod, &format!("{}:80", canary())),
            &pods_unreachable(),
        );
        let judged = causes(&v);
        assert_eq!(judged.canary, Some(BrokenHop::Pod));
        assert_eq!(judged.causes[&app()], Some(Cause::Application));
    }

    #[test]
    fn a_canary_not_probed_makes_every_cause_unknown() {
        let mut v = Verdicts::default();
        v.set_services(BTreeMap::from([(app(), member(&app(), true))]), vec![]);
        let judged = causes(&v);
        assert_eq!(judged.canary, None);
        assert_eq!(judged.causes[&app()], Some(Cause::Unknown));
    }

    #[test]
    fn a_change_of_the_canary_judges_every_service_again() {
        let mut v = setup(false);
        v.observe(&service_hop(&app()), &failed());
        let app_only = v.affected(&service_hop(&app()));
        assert_eq!(judge(&v, &canary(), &app_only).causes.len(), 1);
        v.observe(&service_hop(&canary()), &failed());
        let canary_changed = v.affected(&service_hop(&canary()));
        assert_eq!(
            canary_changed.len(),
            1,
            "only the canary's own verdict changed"
        );
        let judged = judge(&v, &canary(), &canary_changed);
        assert_eq!(
            judged.causes[&app()],
            Some(Cause::Infrastructure),
            "re-judged"
        );
    }
}
