//! Table tests, each from a sentence of the NetworkPolicy v1 API reference (quoted).

use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;

/// A pod in the table: namespace, labels, IP.
struct Pod {
    ns: &'static str,
    labels: Labels,
    ip: IpAddr,
}

fn pod(ns: &'static str, labels: &[(&str, &str)], ip: &str) -> Pod {
    Pod {
        ns,
        labels: labels.iter().copied().collect(),
        ip: ip.parse().unwrap(),
    }
}

/// Namespace labels: every namespace has its name label; `shop` also has `team=shop`.
fn ns_labels(ns: &str) -> Labels {
    let mut pairs = vec![("kubernetes.io/metadata.name", ns)];
    if ns == "shop" {
        pairs.push(("team", "shop"));
    }
    pairs.into_iter().collect()
}

fn policy(ns: &str, name: &str, spec: Value) -> Policy {
    let object = json!({"metadata": {"namespace": ns, "name": name}, "spec": spec});
    project(&serde_json::from_value(object).unwrap()).expect("a valid policy")
}

fn web() -> Pod {
    pod("shop", &[("app", "web")], "10.244.1.10")
}
fn api() -> Pod {
    pod("shop", &[("app", "api")], "10.244.1.11")
}
fn db() -> Pod {
    pod("shop", &[("app", "db")], "10.244.2.20")
}
fn other_api() -> Pod {
    pod("other", &[("app", "api")], "10.244.3.30")
}

/// The verdict for `from` → `to` on TCP `port` (named `http` when it is 8080).
fn verdict(policies: &[Policy], from: &Pod, to: &Pod, port: u16) -> Verdict {
    verdict_proto(policies, from, to, port, Protocol::Tcp)
}

fn verdict_proto(policies: &[Policy], from: &Pod, to: &Pod, port: u16, p: Protocol) -> Verdict {
    let (from_ns, to_ns) = (ns_labels(from.ns), ns_labels(to.ns));
    let conn = Connection {
        source: end(from, &from_ns),
        destination: end(to, &to_ns),
        port,
        port_name: if port == 8080 {
            PortName::Named("http")
        } else {
            PortName::None
        },
        protocol: p,
    };
    evaluate(policies, &conn)
}

fn end<'a>(pod: &'a Pod, ns: &'a Labels) -> Peer<'a> {
    Peer {
        pod: Some(PodRef {
            namespace: pod.ns,
            namespace_labels: ns,
            labels: Known {
                labels: &pod.labels,
                complete: true,
            },
        }),
        ip: pod.ip,
    }
}

fn allowed(policies: &[Policy], from: &Pod, to: &Pod, port: u16) -> bool {
    verdict(policies, from, to, port)
        .allowed()
        .expect("decided")
}

fn deny_all_ingress() -> Policy {
    policy(
        "shop",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    )
}

fn allow_api_to_db() -> Policy {
    policy(
        "shop",
        "db-from-api",
        json!({"podSelector": {"matchLabels": {"app": "db"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                            "ports": [{"port": 5432}]}]}),
    )
}

#[test]
fn no_policy_selects_the_pod_so_everything_is_allowed() {
    // "By default, pods are non-isolated; they accept traffic from any source."
    let v = verdict(&[], &web(), &db(), 5432);
    assert_eq!(v.ingress, Decision::NotIsolated);
    assert_eq!(v.allowed(), Some(true));
}

#[test]
fn an_empty_ingress_list_isolates_and_allows_nothing() {
    // "If this field is empty then this NetworkPolicy does not allow any traffic (and serves
    // solely to ensure that the pods it selects are isolated by default)."
    let v = verdict(&[deny_all_ingress()], &web(), &db(), 5432);
    assert_eq!(
        v.ingress,
        Decision::Denied {
            selecting: vec![ObjKey::new("shop", "deny-all")]
        }
    );
}

#[test]
fn policies_are_additive_and_the_allowing_rule_is_named() {
    // "traffic is allowed if it matches at least one rule across all of the NetworkPolicy
    // objects whose podSelector matches the pod."
    let set = [deny_all_ingress(), allow_api_to_db()];
    assert_eq!(
        verdict(&set, &api(), &db(), 5432).ingress,
        Decision::Allowed {
            policy: ObjKey::new("shop", "db-from-api"),
            rule: 0
        }
    );
    let denied = verdict(&set, &web(), &db(), 5432);
    assert_eq!(
        denied.denied(),
        Some((
            Direction::Ingress,
            &[
                ObjKey::new("shop", "db-from-api"),
                ObjKey::new("shop", "deny-all")
            ][..]
        ))
    );
    assert!(!allowed(&set, &api(), &db(), 5433), "wrong port");
    assert!(
        !allowed(&set, &web(), &api(), 80),
        "deny-all isolates api, nothing allows web"
    );
}

#[test]
fn deny_all_isolates_every_pod_of_its_namespace_only() {
    // "An empty podSelector selects all pods in this namespace."
    let set = [deny_all_ingress()];
    assert!(!allowed(&set, &web(), &api(), 80));
    assert!(allowed(&set, &web(), &other_api(), 80));
}

#[test]
fn policy_types_default_from_the_rules_present() {
    // "If this field is not specified, it will default based on the existence of ingress or
    // egress rules; policies that contain an egress section are assumed to affect egress, and
    // all policies (whether or not they contain an ingress section) are assumed to affect
    // ingress."
    let egress_rules_only = policy(
        "shop",
        "egress-rules",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}),
    );
    assert!(egress_rules_only.ingress.is_some() && egress_rules_only.egress.is_some());
    let set = [egress_rules_only];
    assert!(!allowed(&set, &api(), &web(), 80), "ingress isolated too");
    assert!(allowed(&set, &web(), &db(), 5432));
    assert!(
        !allowed(&set, &web(), &api(), 80),
        "egress to api not allowed"
    );
    // An empty egress list is not an egress section.
    let empty = policy("shop", "e", json!({"podSelector": {}, "egress": []}));
    assert_eq!(
        (empty.ingress.is_some(), empty.egress.is_some()),
        (true, false)
    );
}

#[test]
fn an_egress_only_policy_names_its_type() {
    // "If you want to write an egress-only policy, you must explicitly specify policyTypes
    // [ "Egress" ]."
    let p = policy(
        "shop",
        "no-egress",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}),
    );
    let set = [p];
    let v = verdict(&set, &web(), &db(), 5432);
    assert_eq!(
        v.egress,
        Decision::Denied {
            selecting: vec![ObjKey::new("shop", "no-egress")]
        }
    );
    assert_eq!(v.ingress, Decision::NotIsolated);
    assert!(
        allowed(&set, &db(), &web(), 80),
        "ingress of web not affected"
    );
}

#[test]
fn missing_or_empty_from_and_ports_match_everything() {
    // "If this field is empty or missing, this rule matches all sources (traffic not
    // restricted by source)." and "...this rule matches all ports".
    for rule in [
        json!({}),
        json!({"from": []}),
        json!({"from": [], "ports": []}),
    ] {
        let p = policy(
            "shop",
            "open",
            json!({"podSelector": {}, "ingress": [rule]}),
        );
        assert!(
            allowed(std::slice::from_ref(&p), &other_api(), &db(), 1),
            "{p:?}"
        );
    }
}

#[test]
fn pod_selector_alone_is_the_policy_namespace() {
    // "Otherwise it selects the Pods matching PodSelector in the policy's own namespace."
    let set = [deny_all_ingress(), allow_api_to_db()];
    assert!(!allowed(&set, &other_api(), &db(), 5432));
}

#[test]
fn namespace_selector_alone_and_together_with_pod_selector() {
    // "If podSelector is also set, then the NetworkPolicyPeer as a whole selects the Pods
    // matching podSelector in the Namespaces selected by namespaceSelector. Otherwise it
    // selects all Pods in the Namespaces selected by namespaceSelector."
    let from = |peer: Value| {
        vec![
            deny_all_ingress(),
            policy(
                "shop",
                "p",
                json!({"podSelector": {}, "ingress": [{"from": [peer]}]}),
            ),
        ]
    };
    let other_web = pod("other", &[("app", "web")], "10.244.3.31");
    let ns_only = from(
        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}),
    );
    assert!(allowed(&ns_only, &other_web, &db(), 1));
    assert!(!allowed(&ns_only, &api(), &db(), 1));
    let both = from(
        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}},
                           "podSelector": {"matchLabels": {"app": "api"}}}),
    );
    assert!(allowed(&both, &other_api(), &db(), 1));
    assert!(!allowed(&both, &other_web, &db(), 1));
    assert!(
        !allowed(&both, &api(), &db(), 1),
        "right pod, wrong namespace"
    );
    // An empty namespaceSelector selects every namespace.
    let all_ns =
        from(json!({"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}));
    assert!(allowed(&all_ns, &other_api(), &db(), 1) && allowed(&all_ns, &api(), &db(), 1));
    // Two peers are ORed; one peer's two selectors are ANDed.
    let either = from(json!({"namespaceSelector": {"matchLabels": {"team": "shop"}}}));
    assert!(allowed(&either, &web(), &db(), 1) && !allowed(&either, &other_api(), &db(), 1));
}

#[test]
fn match_expressions() {
    let with = |expr: Value| {
        vec![policy(
            "shop",
            "p",
            json!({"podSelector": {"matchExpressions": [expr]}}),
        )]
    };
    let isolated = |set: &[Policy]| !allowed(set, &web(), &db(), 1);
    assert!(isolated(&with(
        json!({"key": "app", "operator": "In", "values": ["db", "x"]})
    )));
    assert!(!isolated(&with(
        json!({"key": "app", "operator": "NotIn", "values": ["db"]})
    )));
    assert!(isolated(&with(
        json!({"key": "tier", "operator": "NotIn", "values": ["db"]})
    )));
    assert!(isolated(&with(json!({"key": "app", "operator": "Exists"}))));
    assert!(!isolated(&with(
        json!({"key": "app", "operator": "DoesNotExist"})
    )));
}

#[test]
fn ip_block_with_except() {
    // "IPBlock describes a particular CIDR ... except is a slice of CIDRs that should not be
    // included within an IPBlock."
    let set = [policy(
        "shop",
        "cidr",
        json!({"podSelector": {"matchLabels": {"app": "db"}},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.1.0/24"]}}]}]}),
    )];
    assert!(!allowed(&set, &web(), &db(), 1), "10.244.1.10 is excepted");
    assert!(
        allowed(&set, &other_api(), &db(), 1),
        "10.244.3.30 is inside"
    );
    let v6 = pod("other", &[], "fd00::1");
    assert!(
        !allowed(&set, &v6, &db(), 1),
        "another family is never inside"
    );
}

#[test]
fn numeric_and_named_ports_and_ranges() {
    // "port represents the port on the given protocol. This can either be a numerical or
    // named port on a pod. If this field is not provided, this matches all port names and
    // numbers." "endPort indicates that the range of ports from port to endPort if set,
    // inclusive, should be allowed by the policy."
    let ports = |ports: Value| {
        [policy(
            "shop",
            "p",
            json!({"podSelector": {}, "ingress": [{"ports": ports}]}),
        )]
    };
    let range = ports(json!([{"port": 8000, "endPort": 8100}]));
    assert!(allowed(&range, &web(), &db(), 8000) && allowed(&range, &web(), &db(), 8100));
    assert!(!allowed(&range, &web(), &db(), 8101));
    let named = ports(json!([{"port": "http"}]));
    assert!(allowed(&named, &web(), &db(), 8080), "8080 is named http");
    assert!(!allowed(&named, &web(), &db(), 80));
    // "The protocol (TCP, UDP, or SCTP) which traffic must match. If not specified, this
    // field defaults to TCP."
    let tcp = ports(json!([{"port": 53}]));
    assert!(
        !verdict_proto(&tcp, &web(), &db(), 53, Protocol::Udp)
            .allowed()
            .unwrap()
    );
    let udp_any = ports(json!([{"protocol": "UDP"}]));
    assert!(
        verdict_proto(&udp_any, &web(), &db(), 53, Protocol::Udp)
            .allowed()
            .unwrap()
    );
    assert!(!allowed(&udp_any, &web(), &db(), 53));
}

#[test]
fn both_ends_must_allow() {
    let no_egress = policy(
        "shop",
        "e",
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"]}),
    );
    let set = [deny_all_ingress(), allow_api_to_db(), no_egress];
    let v = verdict(&set, &api(), &db(), 5432);
    assert!(matches!(v.ingress, Decision::Allowed { .. }));
    assert_eq!(v.denied().map(|d| d.0), Some(Direction::Egress));
}

#[test]
fn labels_not_known_leave_the_decision_open() {
    // The agent knows a destination only by its Service's selector.
    let selector: Labels = [("app", "db")].into_iter().collect();
    let ns = ns_labels("shop");
    let me = api();
    let conn = |labels| Connection {
        source: Peer {
            pod: Some(PodRef {
                namespace: me.ns,
                namespace_labels: &ns,
                labels: Known {
                    labels: &me.labels,
                    complete: true,
                },
            }),
            ip: me.ip,
        },
        destination: Peer {
            pod: Some(PodRef {
                namespace: "shop",
                namespace_labels: &ns,
                labels,
            }),
            ip: db().ip,
        },
        port: 5432,
        port_name: PortName::Unknown,
        protocol: Protocol::Tcp,
    };
    let partial = Known {
        labels: &selector,
        complete: false,
    };
    let set = [deny_all_ingress(), allow_api_to_db()];
    assert_eq!(evaluate(&set, &conn(partial)).allowed(), Some(true));
    let tier = policy(
        "shop",
        "tier",
        json!({"podSelector": {"matchLabels": {"tier": "x"}}}),
    );
    let set = [deny_all_ingress(), tier];
    assert_eq!(evaluate(&set, &conn(partial)).allowed(), None);
    let named = policy(
        "shop",
        "named",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "pg"}]}]}),
    );
    assert_eq!(evaluate(&[named], &conn(partial)).allowed(), None);
}

#[test]
fn selectors_print_like_kubectl() {
    let p = policy(
        "shop",
        "p",
        json!({"podSelector": {"matchLabels": {"app": "db"},
               "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                    {"key": "legacy", "operator": "DoesNotExist"}]}}),
    );
    assert_eq!(p.pod_selector.to_string(), "app=db,tier in (a,b),!legacy");
    assert_eq!(Selector::default().to_string(), "<all>");
}

#[test]
fn cidrs() {
    let c = Cidr::parse("10.244.0.0/16").unwrap();
    assert!(c.contains("10.244.255.1".parse().unwrap()));
    assert!(!c.contains("10.245.0.1".parse().unwrap()));
    assert!(
        Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap())
    );
    assert!(Cidr::parse("10.0.0.1/33").is_none() && Cidr::parse("10.0.0.1").is_none());
    assert!(
        Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap())
    );
}
