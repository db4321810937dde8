//! `hopwatch trace` end to end: the real binary walks a path made of real parts on loopback
//! (Knot for DNS, nginx with TLS as the Ingress behind the load balancer address, listeners
//! as ClusterIP and pods, the fake API server holding the objects) and must name the broken
//! hop and its cause for each way the path can break. See `trace_support` for the cluster.

#[allow(
    unused_imports,
    reason = "the watch types it re-exports are for other tests"
)]
mod fakeapi_support;
mod nginx_support;
mod support;
mod trace_support;

use serde_json::Value;

use support::net::Blackhole;
use trace_support::{
    Forbid, Scene, Spec, hop, hopwatch, hopwatch_in_pod, statuses, trace_json, trace_json_in_pod,
};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

#[test]
fn a_healthy_path_is_all_green_and_exits_0() {
    let scene = Scene::start(&Spec::default());
    let url = scene.url(nginx_support::OK, "/api/items?page=2");
    let (code, trace) = trace_json(scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 0, "{trace:#}");
    assert_eq!(
        statuses(&trace),
        pairs(&[
            ("dns", "ok"),
            ("loadbalancer", "ok"),
            ("tls", "ok"),
            ("ingress", "ok"),
            ("service", "ok"),
            ("endpoints", "ok"),
            ("pod", "ok"),
        ])
    );
    assert_eq!(trace["ok"], true);
    assert_eq!(trace["verdict"]["broken_hop"], Value::Null);
    let dns = hop(&trace, "dns");
    assert_eq!(dns["data"]["answers"], serde_json::json!(["127.0.0.1"]));
    // Three search domains, A and AAAA each, then the name as written.
    assert_eq!(dns["data"]["queries"].as_array().map(Vec::len), Some(8));
    assert_eq!(
        text(&dns["summary"]),
        "ok.example.test → 127.0.0.1 (8 queries, 6 NXDOMAIN)"
    );
    let lb = hop(&trace, "loadbalancer");
    assert_eq!(lb["data"]["address"], scene.nginx.https.to_string());
    assert_eq!(hop(&trace, "tls")["data"]["verified"], true);
    let ingress = hop(&trace, "ingress");
    assert_eq!(ingress["data"]["status"], 200);
    assert_eq!(ingress["data"]["routing"]["differ"], false);
    assert_eq!(
        ingress["data"]["routing"]["ingress-nginx"]["ingress"],
        "shop/front"
    );
    assert_eq!(
        hop(&trace, "service")["data"]["address"],
        scene.cluster_ip.to_string()
    );
    assert_eq!(hop(&trace, "endpoints")["data"]["ready"], 2);
    let pods = hop(&trace, "pod")["data"]["endpoints"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["result"] == "success"), "{pods:?}");

    // Gateway API routing picks the same rule here, and the walk follows it.
    let mut args = scene.args(&url, scene.fake.kubeconfig());
    args.extend(["--routing".to_string(), "gateway-api".to_string()]);
    let (code, gateway) = trace_json(args);
    assert_eq!(code, 0, "{gateway:#}");
    assert_eq!(
        hop(&gateway, "ingress")["data"]["routing"]["semantics"],
        "gateway-api"
    );

    // The same walk as text: a line per hop, then the verdict.
    let (code, out, _) = hopwatch(&scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("trace {url}\n✓ dns ")), "{out}");
    for name in [
        "loadbalancer",
        "tls",
        "ingress",
        "service",
        "endpoints",
        "pod",
    ] {
        assert!(out.contains(&format!("\n✓ {name} ")), "{name}: {out}");
    }
    assert!(
        out.contains("2 of 2 ready endpoints accept connections on"),
        "{out}"
    );
    assert!(
        out.ends_with("\nverdict: healthy, every hop answered\n"),
        "{out}"
    );
}

#[test]
fn a_selector_that_matches_no_pod_names_the_label() {
    let scene = Scene::start(&Spec {
        selector_app: "web-api",
        slice: false,
        cluster_ip_accepts: false,
        ..Spec::default()
    });
    let (code, trace) = trace_json(scene.args("svc/shop/web", scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    assert_eq!(
        statuses(&trace),
        pairs(&[
            ("dns", "ok"),
            ("service", "broken"),
            ("endpoints", "broken"),
            ("pod", "skipped"),
        ])
    );
    // The ClusterIP refuses because the Service is empty: the endpoints are blamed.
    assert_eq!(trace["verdict"]["broken_hop"], "endpoints");
    assert_eq!(trace["verdict"]["cause"], "selector_mismatch");
    assert_eq!(
        text(&trace["verdict"]["detail"]),
        "Service shop/web selects nothing: selector app=web-api, pods carry app=web (web-1, web-2)"
    );
    let confirm = trace["verdict"]["confirm"].as_array().unwrap();
    for command in [
        "kubectl -n shop get endpointslices -l kubernetes.io/service-name=web",
        "kubectl -n shop get pods --show-labels",
    ] {
        assert!(
            confirm.iter().any(|c| c == command),
            "{command}: {confirm:?}"
        );
    }
    assert_eq!(
        hop(&trace, "endpoints")["data"]["selector"],
        serde_json::json!({"selector": "app=web-api", "result": "off_by_one", "key": "app",
                           "expected": "web-api", "actual": "web", "pods": ["web-1", "web-2"]})
    );
    let dns = hop(&trace, "dns");
    assert_eq!(
        dns["data"]["answers"],
        serde_json::json!([scene.cluster_ip.ip().to_string()])
    );

    let (_, out, _) = hopwatch(&scene.args("svc/shop/web", scene.fake.kubeconfig()));
    assert!(
        out.contains("\nverdict: broken at endpoints (selector_mismatch)\n  Service shop/web selects nothing: selector app=web-api, pods carry app=web (web-1, web-2)\n"),
        "{out}"
    );
}

#[test]
fn pods_that_match_but_are_not_ready_are_shown_with_their_conditions() {
    let scene = Scene::start(&Spec {
        pods_ready: false,
        ..Spec::default()
    });
    let url = scene.url(nginx_support::OK, "/api");
    let (code, trace) = trace_json(scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    let endpoints = hop(&trace, "endpoints");
    assert_eq!(endpoints["status"], "broken");
    assert_eq!(
        text(&endpoints["summary"]),
        "0 ready, 2 not ready, 0 terminating"
    );
    assert_eq!(trace["verdict"]["broken_hop"], "endpoints");
    assert_eq!(trace["verdict"]["cause"], "pods_not_ready");
    assert_eq!(
        text(&trace["verdict"]["detail"]),
        "pods match the selector of Service shop/web, but none is Ready: \
         web-1 Ready=False (ContainersNotReady: containers with unready status: [web]); \
         web-2 Ready=False (ContainersNotReady: containers with unready status: [web])"
    );
    assert_eq!(hop(&trace, "pod")["status"], "skipped");
}

#[test]
fn a_target_port_the_pods_do_not_declare_is_named_with_their_ports() {
    let scene = Scene::start(&Spec {
        wrong_target_port: true,
        ..Spec::default()
    });
    let url = scene.url(nginx_support::OK, "/api");
    let (code, trace) = trace_json(scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    assert_eq!(hop(&trace, "endpoints")["status"], "ok");
    let pod = hop(&trace, "pod");
    assert_eq!(pod["status"], "broken");
    assert_eq!(
        text(&pod["summary"]),
        format!(
            "0 of 2 ready endpoints accept connections on {}",
            scene.target_port
        )
    );
    assert_eq!(
        pod["data"]["refused_pod"],
        serde_json::json!({"pod": "web-1", "port": scene.target_port, "declared": [
            {"container": "web", "name": "http", "port": scene.pod_port, "protocol": "TCP"}]})
    );
    assert_eq!(trace["verdict"]["broken_hop"], "pod");
    assert_eq!(trace["verdict"]["cause"], "port_mismatch");
    assert_eq!(
        text(&trace["verdict"]["detail"]),
        format!(
            "pod shop/web-1 is Ready but {}:{} refused: targetPort {}, container web declares {}/TCP",
            scene.pod_ips[0], scene.target_port, scene.target_port, scene.pod_port
        )
    );
    assert!(
        trace["verdict"]["confirm"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "kubectl -n shop get pod web-1 -o jsonpath='{.spec.containers[*].ports}'")
    );
}

#[test]
fn an_expired_certificate_breaks_tls_and_the_walk_goes_on() {
    let scene = Scene::start(&Spec {
        host: nginx_support::EXPIRED,
        ..Spec::default()
    });
    let url = scene.url(nginx_support::EXPIRED, "/api");
    let (code, trace) = trace_json(scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    assert_eq!(
        statuses(&trace),
        pairs(&[
            ("dns", "ok"),
            ("loadbalancer", "ok"),
            ("tls", "broken"),
            ("ingress", "ok"),
            ("service", "ok"),
            ("endpoints", "ok"),
            ("pod", "ok"),
        ])
    );
    let tls = hop(&trace, "tls");
    assert_eq!(tls["data"]["verify_error"], "tls_expired");
    assert_eq!(tls["data"]["not_after"], scene.nginx.pki.expired.not_after);
    assert_eq!(trace["verdict"]["cause"], "tls_expired");
    let detail = text(&trace["verdict"]["detail"]);
    assert!(
        detail.starts_with("the certificate for expired.example.test expired "),
        "{detail}"
    );
    assert!(detail.ends_with("(10.0 days ago)"), "{detail}");
    // Behind the bad certificate the Ingress still answers: the unverified retry saw it.
    assert_eq!(hop(&trace, "ingress")["data"]["status"], 200);
    assert!(
        trace["verdict"]["confirm"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap_or("").contains("get secret front-tls"))
    );
}

#[test]
fn a_path_no_rule_matches_is_a_404_from_the_default_backend() {
    let scene = Scene::start(&Spec {
        host: nginx_support::NOBODY,
        ..Spec::default()
    });
    let url = scene.url(nginx_support::NOBODY, "/apiv2");
    let (code, trace) = trace_json(scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    let ingress = hop(&trace, "ingress");
    assert_eq!(ingress["status"], "broken");
    assert_eq!(ingress["data"]["status"], 404);
    assert_eq!(ingress["data"]["routing"]["ingress-nginx"], Value::Null);
    assert_eq!(ingress["data"]["routing"]["gateway-api"], Value::Null);
    assert_eq!(trace["verdict"]["broken_hop"], "ingress");
    assert_eq!(trace["verdict"]["cause"], "no_rule_match");
    assert_eq!(
        text(&trace["verdict"]["detail"]),
        format!(
            "no rule matches /apiv2 under ingress-nginx routing (the controller answered: HTTP 404); rules for the host: shop/front nobody.example.test /api (Prefix) → web:{}",
            scene.cluster_ip.port()
        )
    );
    for name in ["service", "endpoints", "pod"] {
        assert_eq!(hop(&trace, name)["status"], "skipped", "{name}");
    }
    assert_eq!(
        trace["verdict"]["confirm"],
        serde_json::json!(["kubectl -n shop describe ingress front"])
    );
}

#[test]
fn a_dns_server_that_does_not_answer_breaks_dns_and_the_rest_is_still_walked() {
    let scene = Scene::start(&Spec::default());
    let dead = Blackhole::start();
    let url = scene.url(nginx_support::OK, "/api");
    let mut args = scene.args(&url, scene.fake.kubeconfig());
    let server = args.iter().position(|a| a == "--server").unwrap() + 1;
    args[server] = dead.addr().to_string();
    let (code, trace) = trace_json(args);
    assert_eq!(code, 1, "{trace:#}");
    let dns = hop(&trace, "dns");
    assert_eq!(dns["status"], "broken");
    assert_eq!(dns["data"]["result"], "timeout");
    assert_eq!(trace["verdict"]["broken_hop"], "dns");
    assert_eq!(trace["verdict"]["cause"], "dns_timeout");
    assert!(
        text(&trace["verdict"]["detail"]).starts_with("no DNS server answered: "),
        "{trace:#}"
    );
    // The load balancer comes from the Ingress status, so everything after DNS still runs.
    let lb = hop(&trace, "loadbalancer");
    assert_eq!(lb["status"], "ok");
    assert_eq!(lb["data"]["source"], "Ingress status");
    for name in ["tls", "ingress", "service", "endpoints", "pod"] {
        assert_eq!(hop(&trace, name)["status"], "ok", "{name}");
    }
    assert!(!dead.received().is_empty());
}

#[test]
fn a_public_name_pointing_at_a_pod_is_named_as_such() {
    let scene = Scene::start(&Spec {
        dns_points_at_pod: true,
        ..Spec::default()
    });
    let url = scene.url(nginx_support::OK, "/api");
    let (code, trace) = trace_json(scene.args(&url, scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    let pod_ip = scene.pod_ips[0].to_string();
    assert_eq!(
        hop(&trace, "dns")["data"]["answers"],
        serde_json::json!([pod_ip])
    );
    assert_eq!(trace["verdict"]["broken_hop"], "dns");
    assert_eq!(trace["verdict"]["cause"], "dns_pod_ip");
    assert_eq!(
        text(&trace["verdict"]["detail"]),
        format!(
            "ok.example.test answers {pod_ip}, the IP of pod shop/web-1 (endpoint of Service shop/web), not the load balancer 127.0.0.1: DNS must point at the load balancer, never at a pod"
        )
    );
    assert!(trace["verdict"]["confirm"].as_array().unwrap().iter().any(
        |c| *c == format!("kubectl get pods -A -o wide --field-selector status.podIP={pod_ip}")
    ));
    assert_eq!(
        hop(&trace, "loadbalancer")["data"]["source"],
        "Ingress status"
    );
    assert_eq!(hop(&trace, "pod")["status"], "ok");
}

#[test]
fn a_forbidden_read_is_reported_on_its_hop_and_the_walk_continues() {
    let scene = Scene::start(&Spec::default());
    let forbid = Forbid::start(&scene.fake, "endpointslices", &scene.dir);
    let url = scene.url(nginx_support::OK, "/api");
    let (code, trace) = trace_json(scene.args(&url, &forbid.kubeconfig));
    assert_eq!(code, 1, "not everything could be checked: {trace:#}");
    let endpoints = hop(&trace, "endpoints");
    assert_eq!(endpoints["status"], "unknown");
    assert_eq!(endpoints["cause"], "api_forbidden", "{endpoints:#}");
    assert!(
        text(&endpoints["summary"]).starts_with(
            "cannot list endpointslices in shop: 403 endpointslices.discovery.k8s.io is forbidden"
        ),
        "{endpoints:#}"
    );
    // The pods the selector picks stand in for the endpoints: the pod hop still runs.
    assert_eq!(hop(&trace, "pod")["status"], "ok");
    assert_eq!(
        hop(&trace, "pod")["data"]["endpoints"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    for name in ["dns", "loadbalancer", "tls", "ingress", "service"] {
        assert_eq!(hop(&trace, name)["status"], "ok", "{name}");
    }
    assert_eq!(trace["verdict"]["broken_hop"], Value::Null);
    assert_eq!(trace["verdict"]["unchecked"][0]["hop"], "endpoints");
    assert!(
        trace["verdict"]["confirm"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "kubectl auth can-i list endpointslices -n shop")
    );
    let (_, out, _) = hopwatch(&scene.args(&url, &forbid.kubeconfig));
    assert!(
        out.contains("\n? endpoints ")
            && out.contains("verdict: no broken hop found, but not every hop could be checked"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let scene = Scene::start(&Spec::default());
    let kubeconfig = scene.fake.kubeconfig();
    let cases: [(Vec<String>, &str); 3] = [
        (
            scene.args("shop.example.com", kubeconfig),
            "hopwatch: \"shop.example.com\": expected a URL",
        ),
        (
            {
                let mut args = scene.args("svc/shop/web", kubeconfig);
                let at = args.iter().position(|a| a == "--resolv-conf").unwrap() + 1;
                args[at] = "/nonexistent/resolv.conf".into();
                args
            },
            "hopwatch: cannot read /nonexistent/resolv.conf: ",
        ),
        (
            scene.args(
                "svc/shop/web",
                std::path::Path::new("/nonexistent/kubeconfig"),
            ),
            "hopwatch: cannot read kubeconfig /nonexistent/kubeconfig: ",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = hopwatch(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.starts_with(want), "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
    }
}

#[test]
fn a_missing_service_and_an_unreachable_api_are_told_apart() {
    let scene = Scene::start(&Spec::default());
    let (code, trace) = trace_json(scene.args("svc/shop/nope", scene.fake.kubeconfig()));
    assert_eq!(code, 1, "{trace:#}");
    assert_eq!(hop(&trace, "dns")["cause"], "dns_nxdomain");
    let service = hop(&trace, "service");
    assert_eq!(service["cause"], "service_not_found");
    assert_eq!(text(&service["detail"]), "Service shop/nope does not exist");

    // A kubeconfig whose server refuses connections: the API hops are unchecked, the
    // network hops still run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let original = std::fs::read_to_string(scene.fake.kubeconfig()).unwrap();
    let rewritten = original.replace(
        &format!("http://{}", scene.fake.addr()),
        &format!("http://{dead}"),
    );
    let kubeconfig = scene.dir.file("dead.kubeconfig", &rewritten);
    let url = scene.url(nginx_support::OK, "/api");
    let (code, trace) = trace_json(scene.args(&url, &kubeconfig));
    assert_eq!(code, 1, "{trace:#}");
    assert_eq!(
        statuses(&trace),
        pairs(&[
            ("dns", "ok"),
            ("loadbalancer", "ok"),
            ("tls", "ok"),
            ("ingress", "unknown"),
            ("service", "skipped"),
            ("endpoints", "skipped"),
            ("pod", "skipped"),
        ])
    );
    let ingress = hop(&trace, "ingress");
    assert_eq!(ingress["cause"], "api_unavailable");
    assert_eq!(ingress["data"]["status"], 200);
    assert!(
        text(&ingress["summary"]).starts_with("cannot list ingresses in all namespaces: "),
        "{ingress:#}"
    );
    assert_eq!(hop(&trace, "loadbalancer")["data"]["source"], "DNS answer");
    assert_eq!(trace["verdict"]["broken_hop"], Value::Null);
    assert_eq!(trace["verdict"]["unchecked"][0]["hop"], "ingress");
}

/// `hopwatch trace ARGS` as text, and as JSON, with the downward API's variables `env`.
fn both(
    scene: &Scene,
    target: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> (i32, String, i32, Value) {
    let mut args = scene.args(target, scene.fake.kubeconfig());
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, out, err) = hopwatch_in_pod(&args, env);
    assert!(err.is_empty(), "{err}");
    let (json_code, json) = trace_json_in_pod(args, env);
    (code, out, json_code, json)
}

fn netpol_scene(db_accepts: bool) -> Scene {
    Scene::start(&Spec {
        netpol: true,
        db_accepts,
        ..Spec::default()
    })
}

/// The downward API of a pod: its namespace, IP and labels file.
fn in_pod(
    scene: &Scene,
    ns: &str,
    ip: std::net::Ipv4Addr,
    labels: &str,
) -> Vec<(&'static str, String)> {
    let file = scene.dir.file(&format!("labels-{ns}"), labels);
    vec![
        ("POD_NAMESPACE", ns.to_string()),
        ("POD_IP", ip.to_string()),
        ("HOPWATCH_POD_LABELS_FILE", file.display().to_string()),
    ]
}

const SEED_POLICIES: &str = "shop/allow-api-to-db, shop/default-deny-ingress";

#[test]
fn from_a_pod_the_policies_deny_the_step_names_them_and_the_denial_is_expected() {
    let scene = netpol_scene(true);
    let (code, out, json_code, trace) =
        both(&scene, "svc/shop/db", &["--from", "pod/shop/web-1"], &[]);
    let want = format!(
        "shop/web-1 → shop/db 8080/TCP: denied, the ingress of db-1 is selected by 2 policies, none allows this source and port ({SEED_POLICIES})"
    );
    // Expected, as the agent's policy_denied: not a broken hop, exit 0.
    assert_eq!((code, json_code), (0, 0), "{out}");
    let netpol = hop(&trace, "netpol");
    assert_eq!(netpol["status"], "denied", "{netpol:#}");
    assert_eq!(netpol["cause"], "policy_denied");
    assert_eq!(text(&netpol["summary"]), want);
    assert_eq!(
        netpol["data"]["target"]["ingress_policies"],
        serde_json::json!(["shop/allow-api-to-db", "shop/default-deny-ingress"])
    );
    assert_eq!(
        netpol["data"]["target"]["pods"][0]["ingress"],
        serde_json::json!({"decision": "denied", "policies": ["shop/allow-api-to-db", "shop/default-deny-ingress"]})
    );
    assert_eq!(netpol["data"]["dns"]["udp"]["decision"], "allowed");
    assert_eq!(netpol["data"]["source"]["pod"], "shop/web-1");
    assert_eq!(trace["verdict"]["broken_hop"], Value::Null);
    assert_eq!(trace["verdict"]["denied"][0]["hop"], "netpol");
    assert_eq!(
        trace["verdict"]["confirm"],
        serde_json::json!([
            "kubectl -n shop get networkpolicy",
            "kubectl -n shop describe networkpolicy allow-api-to-db",
            "kubectl -n shop describe networkpolicy default-deny-ingress"
        ])
    );
    // The walk's own connects came from here, not from web-1: they stand.
    assert_eq!(hop(&trace, "pod")["status"], "ok");
    assert!(
        out.contains(&format!("\n⊘ netpol               -  {want}\n")),
        "{out}"
    );
    assert!(
        out.contains("\n      ingress policies selecting shop/db (db-1): shop/allow-api-to-db, shop/default-deny-ingress\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\nverdict: healthy; the NetworkPolicies deny this source, as written (expected)\n  netpol: {want}\nconfirm with:\n  kubectl -n shop get networkpolicy\n"
        )),
        "{out}"
    );
}

#[test]
fn from_a_pod_a_rule_allows_the_step_names_the_policy_and_rule() {
    let scene = netpol_scene(true);
    let (code, out, _, trace) = both(&scene, "svc/shop/db", &["--from", "pod/shop/api-1"], &[]);
    assert_eq!(code, 0, "{out}");
    let netpol = hop(&trace, "netpol");
    assert_eq!(netpol["status"], "ok", "{netpol:#}");
    assert_eq!(
        text(&netpol["summary"]),
        "shop/api-1 → shop/db 8080/TCP: allowed by shop/allow-api-to-db ingress rule 1"
    );
    assert_eq!(
        netpol["data"]["target"]["pods"][0]["ingress"],
        serde_json::json!({"decision": "allowed", "policy": "shop/allow-api-to-db", "rule": 1})
    );
    assert!(
        out.contains("\nverdict: healthy, every hop answered\nconfirm with:\n  kubectl -n shop get networkpolicy\n  kubectl -n shop describe networkpolicy allow-api-to-db\n"),
        "{out}"
    );
}

#[test]
fn a_policy_blocking_dns_egress_is_named_as_the_dns_cause() {
    let scene = netpol_scene(true);
    // From another pod: the walk's own lookups work, the step breaks on app-1's DNS.
    let (code, out, _, trace) = both(&scene, "svc/shop/db", &["--from", "pod/blocked/app-1"], &[]);
    assert_eq!(code, 1, "{out}");
    let dns_line = "blocked/app-1 → kube-system/kube-dns 53/UDP: denied, the egress of blocked/app-1 is selected by 1 policy, none allows this destination and port (blocked/deny-dns-egress)";
    let netpol = hop(&trace, "netpol");
    assert_eq!(netpol["status"], "broken", "{netpol:#}");
    assert_eq!(text(&netpol["summary"]), dns_line);
    assert_eq!(trace["verdict"]["broken_hop"], "netpol");
    assert_eq!(trace["verdict"]["cause"], "dns_policy_denied");
    assert_eq!(
        text(&trace["verdict"]["detail"]),
        format!(
            "the NetworkPolicies deny blocked/app-1 the cluster DNS: {dns_line}; every lookup from it times out"
        )
    );
    assert_eq!(
        netpol["data"]["egress_policies"],
        serde_json::json!(["blocked/deny-dns-egress"])
    );
    assert_eq!(netpol["data"]["dns"]["tcp"]["decision"], "denied");
    let confirm = trace["verdict"]["confirm"].as_array().unwrap();
    for command in [
        "kubectl -n blocked get networkpolicy",
        "kubectl -n blocked describe networkpolicy deny-dns-egress",
    ] {
        assert!(
            confirm.iter().any(|c| c == command),
            "{command}: {confirm:?}"
        );
    }
    assert!(
        out.contains("\nverdict: broken at netpol (dns_policy_denied)\n"),
        "{out}"
    );

    // Inside app-1, with the lookups timing out: the policy is the DNS hop's cause.
    let dead = Blackhole::start();
    let env = in_pod(
        &scene,
        "blocked",
        scene.netpol.as_ref().unwrap().app,
        "app=\"app\"\n",
    );
    let mut args = scene.args("svc/shop/db", scene.fake.kubeconfig());
    let server = args.iter().position(|a| a == "--server").unwrap() + 1;
    args[server] = dead.addr().to_string();
    let (code, trace) = trace_json_in_pod(args, &env);
    assert_eq!(code, 1, "{trace:#}");
    let dns = hop(&trace, "dns");
    assert_eq!(dns["status"], "broken");
    assert_eq!(dns["cause"], "dns_policy_denied", "{dns:#}");
    assert_eq!(trace["verdict"]["broken_hop"], "dns");
    assert!(
        text(&trace["verdict"]["detail"]).contains("(blocked/deny-dns-egress)"),
        "{trace:#}"
    );
    assert_eq!(
        hop(&trace, "netpol")["data"]["source"]["origin"],
        "trace's own pod"
    );
}

#[test]
fn from_an_allowed_pod_trace_own_denied_connects_are_still_expected() {
    // Trace runs in web-1, which the policies deny db; it is asked about api-1, which they
    // allow. The step decides for api-1; the walk's own connects, denied, are expected.
    let scene = netpol_scene(false);
    let env = in_pod(&scene, "shop", scene.pod_ips[0], "app=\"web\"\n");
    let (code, out, _, trace) = both(&scene, "svc/shop/db", &["--from", "pod/shop/api-1"], &env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(hop(&trace, "netpol")["status"], "ok", "{trace:#}");
    assert_eq!(hop(&trace, "pod")["status"], "denied", "{trace:#}");
    assert_eq!(hop(&trace, "pod")["cause"], "policy_denied");
    assert_eq!(trace["verdict"]["broken_hop"], Value::Null, "{trace:#}");
}

#[test]
fn connects_the_policies_deny_to_trace_own_pod_are_expected_not_broken() {
    let scene = netpol_scene(false);
    let web_1 = scene.pod_ips[0];
    let env = in_pod(&scene, "shop", web_1, "app=\"web\"\n");
    let (code, out, _, trace) = both(&scene, "svc/shop/db", &[], &env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        statuses(&trace),
        pairs(&[
            ("dns", "ok"),
            ("service", "denied"),
            ("endpoints", "ok"),
            ("pod", "denied"),
            ("netpol", "denied"),
        ])
    );
    let pod = hop(&trace, "pod");
    assert_eq!(pod["cause"], "policy_denied");
    assert_eq!(
        text(&pod["summary"]),
        format!(
            "0 of 1 ready endpoints accept connections on 8080: denied by NetworkPolicy {SEED_POLICIES} (expected)"
        )
    );
    assert!(out.contains("\n⊘ pod "), "{out}");
    assert_eq!(trace["verdict"]["ok"], true);
    let denied: Vec<&str> = trace["verdict"]["denied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| text(&d["hop"]))
        .collect();
    assert_eq!(denied, ["service", "pod", "netpol"]);

    // Without a pod to decide for, the step lists who selects the target and says so.
    let (code, out, _, trace) = both(&scene, "svc/shop/db", &[], &[]);
    assert_eq!(code, 1, "{out}");
    let netpol = hop(&trace, "netpol");
    assert_eq!(netpol["status"], "unknown");
    assert_eq!(netpol["cause"], "source_unknown");
    assert_eq!(
        text(&netpol["summary"]),
        format!(
            "source unknown: trace runs outside a pod and no --from names one; 2 policies select the target pods for ingress ({SEED_POLICIES}); give --from pod/NAMESPACE/NAME to decide"
        )
    );
    assert_eq!(trace["verdict"]["cause"], "pod_unreachable");
    assert!(
        out.contains("  kubectl -n shop get networkpolicy\n"),
        "{out}"
    );
}

#[test]
fn denied_connects_that_succeed_mean_the_cni_does_not_enforce() {
    let scene = netpol_scene(true);
    let env = in_pod(&scene, "shop", scene.pod_ips[0], "app=\"web\"\n");
    let (code, out, _, trace) = both(&scene, "svc/shop/db", &["--from", "pod/shop/web-1"], &env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(hop(&trace, "pod")["status"], "ok");
    let facts = hop(&trace, "netpol")["facts"].as_array().unwrap().clone();
    let want = format!(
        "yet the pods accepted this pod's connects: the CNI does not enforce {SEED_POLICIES}"
    );
    assert!(facts.iter().any(|f| *f == want), "{facts:?}");
}

#[test]
fn a_bad_from_is_a_usage_error_naming_it() {
    let scene = netpol_scene(true);
    for (from, want) in [
        (
            "pod/bad",
            "hopwatch: --from \"pod/bad\": expected pod/NAMESPACE/NAME, e.g. pod/shop/web-1\n",
        ),
        (
            "pod/shop/nope",
            "hopwatch: --from \"pod/shop/nope\": no such pod (cannot get pods shop/nope: 404 ",
        ),
    ] {
        let mut args = scene.args("svc/shop/db", scene.fake.kubeconfig());
        args.extend(["--from".to_string(), from.to_string()]);
        let (code, out, err) = hopwatch(&args);
        assert_eq!(code, 2, "{from}: {out}{err}");
        assert!(err.starts_with(want), "{from}: {err}");
        assert!(out.is_empty(), "{out}");
    }
}

#[test]
fn the_expected_addresses_annotation_replaces_the_status_as_in_the_agent() {
    let scene = Scene::start(&Spec::default());
    let url = scene.url(nginx_support::OK, "/api");
    let path = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/front";
    let run = || trace_json(scene.args(&url, scene.fake.kubeconfig()));
    let annotate = |value: &str| {
        let patch = serde_json::json!({"metadata": {"annotations": {
            "hopwatch.io/expected-addresses": value
        }}});
        scene.fake.patch(path, &patch);
    };
    // The status names another load balancer (on loopback): the answer 127.0.0.1 is not it.
    let status =
        serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.9"}]}}});
    scene.fake.patch(&format!("{path}/status"), &status);
    let (code, trace) = run();
    assert_eq!(code, 1, "{trace:#}");
    assert_eq!(trace["verdict"]["cause"], "dns_not_load_balancer");

    // A CDN in front answers 127.0.0.1, and the annotation says so: the path is green, and
    // the load balancer hop connects to the answer.
    annotate("198.51.100.7, 127.0.0.1");
    let (code, trace) = run();
    assert_eq!(code, 0, "{trace:#}");
    assert_eq!(hop(&trace, "loadbalancer")["data"]["source"], "DNS answer");

    // A value that does not parse is named on the DNS hop, and nothing is compared.
    annotate("127.0.0.1; cdn");
    let (code, trace) = run();
    assert_eq!(code, 0, "{trace:#}");
    let facts = hop(&trace, "dns")["facts"].to_string();
    assert!(
        facts.contains(
            "Ingress shop/front: annotation hopwatch.io/expected-addresses: `127.0.0.1; cdn` is neither an IP address nor a DNS name"
        ),
        "{facts}"
    );
}
