//! Scenarios of the edge: the Ingress presenting an expired or wrong-host certificate, and an
//! Ingress whose backend Service has no endpoints.

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
