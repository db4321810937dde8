//! The step on the debugging method's scenario: deny all ingress in `shop`, allow `app=api`
//! to `app=db` on TCP 8080; and a namespace `blocked` whose egress allows only TCP 443.

use serde_json::json;

use super::*;
use crate::discovery::netpol::Protocol;
use crate::trace::verdict::{Cause, Finding};
use crate::trace::{Hop, HopName, Status};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

fn ns(name: &str) -> Labels {
    labels(&[("kubernetes.io/metadata.name", name)])
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> Policy {
    let object = json!({"metadata": {"namespace": ns, "name": name}, "spec": spec});
    crate::discovery::netpol::project(&serde_json::from_value(object).unwrap()).unwrap()
}

fn policies() -> Vec<Policy> {
    vec![
        policy(
            "blocked",
            "deny-dns-egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}),
        ),
        policy(
            "shop",
            "allow-api-to-db",
            json!({"podSelector": {"matchLabels": {"app": "db"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                "ports": [{"protocol": "TCP", "port": 8080}]}]}),
        ),
        policy(
            "shop",
            "default-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
    ]
}

fn source(namespace: &str, name: &str, app: &str, here: bool) -> Source {
    Source {
        namespace: namespace.into(),
        name: Some(name.into()),
        ip: [10, 244, 1, 9].into(),
        labels: labels(&[("app", app)]),
        labels_complete: true,
        namespace_labels: ns(namespace),
        connects_here: here,
    }
}

fn db() -> Ends {
    Ends {
        service: ObjKey::new("shop", "db"),
        namespace_labels: ns("shop"),
        protocol: Protocol::Tcp,
        pods: vec![EndPod {
            name: "db-1".into(),
            labels: labels(&[("app", "db")]),
            ip: [10, 244, 2, 5].into(),
            port: 8080,
            port_name: Some("http".into()),
        }],
    }
}

fn coredns(protocol: Protocol, name: &str) -> Ends {
    Ends {
        service: ObjKey::new("kube-system", "kube-dns"),
        namespace_labels: ns("kube-system"),
        protocol,
        pods: vec![EndPod {
            name: "coredns-1".into(),
            labels: labels(&[("k8s-app", "kube-dns")]),
            ip: [10, 244, 0, 3].into(),
            port: 53,
            port_name: Some(name.into()),
        }],
    }
}

fn inputs(source: Option<Source>, dns: bool) -> Inputs {
    Inputs {
        source: Ok(source),
        source_origin: "--from",
        policies: Ok(policies()),
        unreadable: Vec::new(),
        target: Some(Ok(db())),
        dns: dns.then(|| {
            Ok([
                coredns(Protocol::Udp, "dns"),
                coredns(Protocol::Tcp, "dns-tcp"),
            ])
        }),
    }
}

const SEED: &str = "shop/allow-api-to-db, shop/default-deny-ingress";

#[test]
fn a_source_no_rule_allows_is_denied_naming_every_selecting_policy() {
    let (hop, step) = hop(&inputs(Some(source("shop", "web-1", "web", false)), true));
    assert_eq!(hop.status, Status::Denied);
    assert_eq!(hop.cause(), Some(Cause::PolicyDenied));
    assert_eq!(
        hop.summary,
        format!(
            "shop/web-1 → shop/db 8080/TCP: denied, the ingress of db-1 is selected by 2 policies, none allows this source and port ({SEED})"
        )
    );
    assert_eq!(
        hop.confirm,
        [
            "kubectl -n shop get networkpolicy",
            "kubectl -n shop describe networkpolicy allow-api-to-db",
            "kubectl -n shop describe networkpolicy default-deny-ingress",
        ]
    );
    assert_eq!(hop.data["target"]["decision"], "denied");
    assert_eq!(hop.data["dns"]["udp"]["decision"], "allowed");
    assert!(step.target.as_ref().is_some_and(Decided::denied));
    assert_eq!(step.dns_denied, None);
}

#[test]
fn an_allowed_source_names_the_policy_and_its_rule_counted_from_one() {
    let (hop, _) = hop(&inputs(Some(source("shop", "api-1", "api", false)), false));
    assert_eq!(hop.status, Status::Ok);
    assert_eq!(
        hop.summary,
        "shop/api-1 → shop/db 8080/TCP: allowed by shop/allow-api-to-db ingress rule 1"
    );
    assert_eq!(
        hop.data["target"]["pods"][0]["ingress"],
        json!({"decision": "allowed", "policy": "shop/allow-api-to-db", "rule": 1})
    );
    assert_eq!(
        hop.data["target"]["pods"][0]["egress"]["decision"],
        "not_isolated"
    );
}

#[test]
fn a_policy_denying_port_53_breaks_the_step_as_the_dns_cause() {
    let (hop, step) = hop(&inputs(
        Some(source("blocked", "app-1", "app", false)),
        true,
    ));
    assert_eq!(hop.status, Status::Broken);
    assert_eq!(hop.cause(), Some(Cause::DnsPolicyDenied));
    let line = "blocked/app-1 → kube-system/kube-dns 53/UDP: denied, the egress of blocked/app-1 is selected by 1 policy, none allows this destination and port (blocked/deny-dns-egress)";
    assert_eq!(hop.summary, line);
    let finding = step.dns_denied.expect("DNS is denied");
    assert_eq!(
        finding.detail,
        format!(
            "the NetworkPolicies deny blocked/app-1 the cluster DNS: {line}; every lookup from it times out"
        )
    );
    assert!(
        finding
            .confirm
            .contains(&"kubectl -n blocked describe networkpolicy deny-dns-egress".to_string()),
        "{:?}",
        finding.confirm
    );
}

#[test]
fn without_a_source_the_step_lists_who_selects_the_target() {
    let (unknown, _) = hop(&inputs(None, false));
    assert_eq!(unknown.status, Status::Unknown);
    assert_eq!(unknown.cause(), Some(Cause::SourceUnknown));
    assert_eq!(
        unknown.summary,
        format!(
            "source unknown: trace runs outside a pod and no --from names one; 2 policies select the target pods for ingress ({SEED}); give --from pod/NAMESPACE/NAME to decide"
        )
    );
    let mut open = inputs(None, false);
    open.policies = Ok(Vec::new());
    let (hop, _) = hop(&open);
    assert_eq!(hop.status, Status::Ok);
    assert!(
        hop.summary
            .starts_with("no NetworkPolicy selects the pods of shop/db for ingress")
    );
    let mut unread = inputs(None, false);
    let forbidden = Finding::new(
        Cause::ApiForbidden,
        "cannot list networkpolicies in shop: 403",
        Vec::new(),
    );
    unread.policies = Err(forbidden);
    assert_eq!(
        hop_status(&unread),
        (Status::Unknown, Some(Cause::ApiForbidden))
    );
}

fn hop_status(inputs: &Inputs) -> (Status, Option<Cause>) {
    let (hop, _) = hop(inputs);
    (hop.status, hop.cause())
}

fn failed_connects() -> Vec<Hop> {
    let unreachable = |name, cause| {
        Hop::new(name).broken(
            "0 of 1 ready endpoints accept connections on 8080",
            Finding::new(
                cause,
                "no answer: a NetworkPolicy or the network drops the connection",
                vec!["kubectl -n shop logs db-1".into()],
            ),
        )
    };
    let dns = Hop::new(HopName::Dns).broken(
        "db.shop.svc.cluster.local → nothing",
        Finding::new(Cause::DnsTimeout, "no DNS server answered", Vec::new()),
    );
    vec![
        dns,
        unreachable(HopName::Service, Cause::ServiceUnreachable),
        Hop::new(HopName::Endpoints).ok("1 ready"),
        unreachable(HopName::Pod, Cause::PodUnreachable),
    ]
}

#[test]
fn connects_denied_to_the_pod_trace_runs_in_are_expected() {
    let (_, step) = hop(&inputs(Some(source("shop", "web-1", "web", true)), false));
    let mut hops = failed_connects();
    explain(&mut hops, &step, true);
    let pod = &hops[3];
    assert_eq!(pod.status, Status::Denied);
    assert_eq!(
        pod.summary,
        format!(
            "0 of 1 ready endpoints accept connections on 8080: denied by NetworkPolicy {SEED} (expected)"
        )
    );
    assert_eq!(pod.cause(), Some(Cause::PolicyDenied));
    assert_eq!(hops[1].status, Status::Denied);
    // Connects from somewhere else say nothing of the source's.
    let mut elsewhere = failed_connects();
    explain(&mut elsewhere, &step, false);
    assert_eq!(elsewhere, failed_connects());
}

#[test]
fn an_allowed_source_rules_the_policies_out_of_a_failed_connect() {
    let (_, step) = hop(&inputs(Some(source("shop", "api-1", "api", true)), false));
    let mut hops = failed_connects();
    explain(&mut hops, &step, true);
    assert_eq!(hops[3].status, Status::Broken);
    assert_eq!(
        hops[3].finding.as_ref().unwrap().detail,
        "no answer: a NetworkPolicy or the network drops the connection; the NetworkPolicies do not stop it (allowed by shop/allow-api-to-db ingress rule 1)"
    );
}

#[test]
fn a_failed_lookup_from_a_pod_whose_dns_is_denied_blames_the_policy() {
    let (_, step) = hop(&inputs(Some(source("blocked", "app-1", "app", true)), true));
    let mut hops = failed_connects();
    explain(&mut hops, &step, true);
    assert_eq!(hops[0].status, Status::Broken);
    assert_eq!(hops[0].cause(), Some(Cause::DnsPolicyDenied));
    assert!(
        hops[0]
            .finding
            .as_ref()
            .unwrap()
            .detail
            .contains("(blocked/deny-dns-egress)")
    );
}

#[test]
fn pods_that_decide_differently_are_listed_by_group() {
    let mut ends = db();
    let mut other = ends.pods[0].clone();
    other.name = "db-canary".into();
    other.labels = labels(&[("app", "db-canary")]);
    ends.pods.push(other);
    let api = source("shop", "api-1", "api", false);
    let decided = decide(&policies(), Some(&api), &ends);
    assert_eq!(decided.groups.len(), 2);
    assert!(
        decided.denied(),
        "db-canary only has deny-all: the denial decides"
    );
    let (verdict, pods) = decided.deciding().unwrap();
    assert_eq!(pods, &["db-canary".to_string()]);
    assert_eq!(
        verdict_text(verdict, pods, "shop/api-1"),
        "denied, the ingress of db-canary is selected by 1 policy, none allows this source and port (shop/default-deny-ingress)"
    );
}
