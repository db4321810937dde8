//! Scenarios of the edge: the Ingress presenting an expired or wrong-host certificate, an
//! Ingress whose backend Service has no endpoints, and the load balancer published by DNS
//! name, not published at all, and behind a CDN.

use crate::harness::{Lab, NODES, eventually};
use crate::{WAIT, all_healthy, probes, verdict_is, wait_increase};

const SHOP_INGRESS: &str = "shop/front/shop.example.com/";

/// Waits until every node's Ingress probes of shop.example.com fail with `result` and report
/// the certificate's `not_after`.
fn wait_tls(lab: &Lab, result: &str, not_after: f64) {
    wait_increase(lab, &NODES, result, 1.0, |e| {
        probes(e, "ingress", SHOP_INGRESS, result)
    });
    eventually("the certificate's notAfter", WAIT, || {
        for node in NODES {
            let e = lab.try_metrics(node)?;
            let got = e.get(
                "hopwatch_tls_cert_not_after_timestamp_seconds",
                &[("target", SHOP_INGRESS)],
            );
            if got != Some(not_after) {
                return Err(format!("{node}: {got:?} != {not_after}"));
            }
        }
        verdict_is(lab, &NODES, ("shop", "web"), "ingress")
    });
}

#[test]
fn ingress_with_expired_then_wrong_host_certificate() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let cert = |kind: &'static str| ["cert", "--host", "shop.example.com", "--kind", kind];
    let expired = lab.fault(&cert("expired"));
    let not_after = expired["not_after"].as_f64().expect("not_after");
    assert_eq!(
        not_after, 1_706_745_600.0,
        "the lab's expired certificate ends 2024-02-01"
    );
    wait_tls(&lab, "tls_expired", not_after);
    let wrong = lab.fault(&cert("wrong-host"));
    wait_tls(
        &lab,
        "tls_hostname_mismatch",
        wrong["not_after"].as_f64().expect("not_after"),
    );
    let valid = lab.heal(&["cert", "--host", "shop.example.com"]);
    let valid_until = valid["not_after"].as_f64().expect("not_after");
    eventually("recovered", WAIT, || all_healthy(&lab));
    let e = lab.metrics("node-1");
    assert_eq!(
        e.get(
            "hopwatch_tls_cert_not_after_timestamp_seconds",
            &[("target", SHOP_INGRESS)]
        ),
        Some(valid_until)
    );
}

#[test]
fn ingress_backend_without_endpoints_answers_503_and_points_at_endpoints() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    lab.fault(&["no-endpoints", "--service", "shop/api"]);
    wait_increase(&lab, &NODES, "503 from the Ingress", 1.0, |e| {
        e.sum(
            "hopwatch_http_responses_total",
            &[
                ("hop", "ingress"),
                ("target", "shop/front/api.example.com/"),
                ("code", "503"),
            ],
        )
    });
    eventually("shop/api's verdict is endpoints, not ingress", WAIT, || {
        verdict_is(&lab, &NODES, ("shop", "api"), "endpoints")
    });
    verdict_is(&lab, &NODES, ("shop", "web"), "none").unwrap_or_else(|e| panic!("{e}"));
    lab.heal(&["no-endpoints", "--service", "shop/api"]);
    eventually("recovered", WAIT, || all_healthy(&lab));
}

const LB_TARGETS: [&str; 2] = ["shop/front/shop.example.com", "shop/front/api.example.com"];

/// Waits until every node's load-balancer probes of both hosts have `result` twice more.
fn wait_lb(lab: &Lab, result: &str) {
    for target in LB_TARGETS {
        wait_increase(lab, &NODES, result, 2.0, |e| {
            probes(e, "loadbalancer", target, result)
        });
    }
}

/// Load balancers as clouds publish them: by DNS name (AWS), not published at all yet, and
/// behind a CDN whose address hopwatch learns from the Ingress's annotation.
#[test]
fn load_balancer_by_hostname_unpublished_and_behind_a_cdn() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let failed = |e: &crate::expo::Expo| {
        e.all("hopwatch_probes_total", &[("hop", "loadbalancer")])
            .filter(|s| !matches!(s.label("result"), "success" | "unknown"))
            .map(|s| s.value)
            .sum::<f64>()
    };

    // By name: the status's hostname is resolved and compared; the hop works as by address.
    lab.fault(&["lb-hostname"]);
    let before: Vec<f64> = NODES.iter().map(|n| failed(&lab.metrics(n))).collect();
    wait_lb(&lab, "success");
    all_healthy(&lab).unwrap_or_else(|e| panic!("by hostname: {e}"));
    let after: Vec<f64> = NODES.iter().map(|n| failed(&lab.metrics(n))).collect();
    assert_eq!(
        before, after,
        "load-balancer failures with a hostname status"
    );
    lab.heal(&["lb-hostname"]);

    // No status: nothing to judge, so `unknown`, and every verdict stays `none`.
    lab.fault(&["lb-unpublished"]);
    wait_lb(&lab, "unknown");
    all_healthy(&lab).unwrap_or_else(|e| panic!("without status: {e}"));
    lab.heal(&["lb-unpublished"]);

    // A CDN in front: its address is not the load balancer's, a mismatch until the Ingress
    // says which addresses to expect.
    lab.fault(&["cdn"]);
    wait_lb(&lab, "dns_mismatch");
    eventually("verdict loadbalancer behind the CDN", WAIT, || {
        verdict_is(&lab, &NODES, ("shop", "web"), "loadbalancer")?;
        verdict_is(&lab, &NODES, ("shop", "api"), "loadbalancer")
    });
    lab.fault(&["expected-addresses"]);
    wait_lb(&lab, "success");
    eventually("healthy behind the annotated CDN", WAIT, || {
        all_healthy(&lab)
    });
    for node in NODES {
        let e = lab.metrics(node);
        assert_eq!(e.sum("hopwatch_invalid_annotations", &[]), 0.0, "{node}");
    }
    lab.heal(&["expected-addresses"]);
    lab.heal(&["cdn"]);
    eventually("healthy again", WAIT, || all_healthy(&lab));
}
