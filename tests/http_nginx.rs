//! The Ingress and load-balancer hops against a real nginx (Debian's `nginx-light` or `nginx`)
//! terminating TLS with certificates generated at run time: every certificate fault has its own
//! reason, the expiry is the one generated, the phases add up, and the status codes nginx
//! logged are the ones the probe reported.
//!
//! The probe dials 127.0.0.1 while SNI and `Host` carry the test host names, as it dials a load
//! balancer's address for a public name. See `nginx_support` for the lab.

mod nginx_support;
mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use hopwatch::probe::http::cli::{EXIT_FAILURE, EXIT_SUCCESS};
use hopwatch::probe::http::{
    self, CaBundle, CliArgs, HttpReport, HttpSpec, HttpUrl, LbExpected, Phase, Resolver, format_utc,
};
use hopwatch::probe::{Detail, Failure};
use nginx_support::pki::Leaf;
use nginx_support::{
    BAD_GATEWAY, CHAIN, EXPIRED, FUTURE, Lab, NO_ENDPOINTS, NOBODY, OK, SOON, UNKNOWN_CA, WRONG,
};
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// `https://HOST:PORT/` dialled at the lab's 127.0.0.1, verified against the lab's CA.
fn https(lab: &Lab, host: &str) -> HttpSpec {
    let url = HttpUrl::parse(&format!("https://{host}:{}/", lab.https.port())).unwrap();
    HttpSpec {
        connect_to: Some(lab.https),
        ca: CaBundle::from_file(&lab.ca_file).unwrap(),
        ..HttpSpec::new(url)
    }
}

fn insecure(spec: HttpSpec) -> HttpSpec {
    HttpSpec {
        insecure: true,
        ..spec
    }
}

/// The phases ran in this order, none took zero time, and they add up to no more than the total.
fn assert_phases(report: &HttpReport, want: &[Phase]) {
    let names: Vec<Phase> = report.phases.iter().map(|(p, _)| *p).collect();
    assert_eq!(names, want, "{report:#?}");
    for (phase, duration) in &report.phases {
        assert!(*duration > Duration::ZERO, "{phase:?} took zero time");
    }
    let sum: Duration = report.phases.iter().map(|(_, d)| *d).sum();
    assert!(
        sum <= report.total,
        "phases {sum:?} > total {:?}",
        report.total
    );
    assert!(report.total < Duration::from_secs(5), "{report:#?}");
}

/// The probe's expiry is what was generated, to the second.
fn assert_expiry(report: &HttpReport, leaf: &Leaf) {
    let tls = report.tls.as_ref().expect("certificate facts");
    assert!(
        (tls.not_after_earliest - leaf.chain_not_after).abs() <= 1,
        "not_after {} != generated {}",
        tls.not_after_earliest,
        leaf.chain_not_after
    );
    assert!((tls.not_before - leaf.not_before).abs() <= 1);
    assert_eq!(tls.sans, leaf.sans);
}

#[tokio::test]
async fn a_valid_certificate_succeeds_with_every_phase_timed() {
    let lab = Lab::start();
    let report = http::request(&https(&lab, OK), deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_eq!(report.failed_phase, None);
    assert_eq!(report.status, Some(200));
    assert_eq!(report.address, Some(lab.https));
    assert!(report.answers.is_empty());
    // connect_to given: no DNS phase at all, rather than a zero one.
    assert_phases(&report, &[Phase::Connect, Phase::Tls, Phase::Ttfb]);
    assert_eq!(report.phase(Phase::Dns), None);
    assert_expiry(&report, &lab.pki.valid);
    let tls = report.tls.as_ref().unwrap();
    assert!(tls.verified);
    assert_eq!(tls.verify_error, None);
    assert_eq!(tls.protocol.as_deref(), Some("TLSv1.3"));
    // nginx saw the host name as SNI and Host although 127.0.0.1 was dialled.
    let logged = lab.logged(1);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].sni, OK);
    assert_eq!(logged[0].host, OK);
    assert_eq!(logged[0].status, 200);
    assert_eq!(logged[0].connection, "close");
}

#[tokio::test]
async fn each_certificate_fault_has_its_own_reason_and_its_expiry() {
    let lab = Lab::start();
    let cases = [
        (EXPIRED, Failure::TlsExpired, &lab.pki.expired),
        (FUTURE, Failure::TlsNotYetValid, &lab.pki.future),
        (UNKNOWN_CA, Failure::TlsUnknownCa, &lab.pki.unknown_ca),
        (WRONG, Failure::TlsHostnameMismatch, &lab.pki.wrong),
    ];
    for (host, reason, leaf) in cases {
        let report = http::request(&https(&lab, host), deadline()).await;
        assert_eq!(
            report.result,
            Err(reason),
            "{host}: {}",
            report.render_text()
        );
        assert_eq!(report.failed_phase, Some(Phase::Tls), "{host}");
        assert_eq!(report.status, None, "{host}");
        assert_phases(&report, &[Phase::Connect, Phase::Tls]);
        assert_expiry(&report, leaf);
        let tls = report.tls.as_ref().unwrap();
        assert!(!tls.verified, "{host}");
        assert_eq!(tls.verify_error, Some(reason), "{host}");
        assert_eq!(tls.protocol, None, "{host}: the handshake was aborted");
    }
    // The handshakes were aborted: nginx never saw a request.
    assert_eq!(lab.logged(0), []);
}

#[tokio::test]
async fn insecure_completes_the_request_and_still_reports_the_verdict() {
    let lab = Lab::start();
    let cases = [
        (EXPIRED, Failure::TlsExpired, &lab.pki.expired),
        (FUTURE, Failure::TlsNotYetValid, &lab.pki.future),
        (UNKNOWN_CA, Failure::TlsUnknownCa, &lab.pki.unknown_ca),
        (WRONG, Failure::TlsHostnameMismatch, &lab.pki.wrong),
    ];
    for (host, reason, leaf) in cases {
        let report = http::request(&insecure(https(&lab, host)), deadline()).await;
        assert_eq!(report.result, Ok(()), "{host}: {}", report.render_text());
        assert_eq!(report.status, Some(200), "{host}");
        assert_phases(&report, &[Phase::Connect, Phase::Tls, Phase::Ttfb]);
        assert_expiry(&report, leaf);
        let tls = report.tls.as_ref().unwrap();
        assert!(!tls.verified, "{host}");
        assert_eq!(tls.verify_error, Some(reason), "{host}");
        assert!(tls.protocol.is_some(), "{host}");
        let text = report.render_text();
        let verdict = format!("certificate NOT verified: {reason} (ignored: insecure)");
        assert!(text.contains(&verdict), "{text}");
    }
    let sni: Vec<String> = lab.logged(4).into_iter().map(|l| l.sni).collect();
    assert_eq!(sni, [EXPIRED, FUTURE, UNKNOWN_CA, WRONG]);
}

#[tokio::test]
async fn a_certificate_expiring_in_five_days_verifies_and_shows_its_days_left() {
    let lab = Lab::start();
    let report = http::request(&https(&lab, SOON), deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_expiry(&report, &lab.pki.soon);
    assert_eq!(lab.pki.soon.not_after - lab.now, 5 * 86_400);
    let text = report.render_text();
    let expires = format_utc(lab.pki.soon.not_after);
    assert!(
        text.contains(&format!("cert     expires {expires} (5.0 days left)")),
        "{text}"
    );
    assert!(text.contains("certificate verified"), "{text}");
}

#[tokio::test]
async fn the_expiry_is_the_earliest_of_the_presented_chain() {
    let lab = Lab::start();
    let report = http::request(&https(&lab, CHAIN), deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    let leaf = &lab.pki.chained;
    assert!(leaf.chain_not_after < leaf.not_after);
    assert_expiry(&report, leaf);
}

#[tokio::test]
async fn unexpected_status_codes_fail_with_http_status_and_are_counted() {
    let lab = Lab::start();
    let cases = [
        (NOBODY, 404),
        (BAD_GATEWAY, 502),
        (NO_ENDPOINTS, 503),
        (OK, 200),
        (NO_ENDPOINTS, 503),
    ];
    let mut counted: BTreeMap<u16, usize> = BTreeMap::new();
    for (host, code) in cases {
        let report = http::request(&https(&lab, host), deadline()).await;
        assert_eq!(
            report.status,
            Some(code),
            "{host}: {}",
            report.render_text()
        );
        let want = if code == 200 {
            Ok(())
        } else {
            Err(Failure::HttpStatus)
        };
        assert_eq!(report.result, want, "{host}");
        assert_eq!(report.failed_phase, want.err().map(|_| Phase::Ttfb));
        assert_phases(&report, &[Phase::Connect, Phase::Tls, Phase::Ttfb]);
        // The certificate was fine: nginx's default server has a wildcard for every host.
        assert_eq!(
            report.tls.as_ref().map(|t| t.verified),
            Some(true),
            "{host}"
        );
        *counted.entry(code).or_default() += 1;
    }
    let mut logged: BTreeMap<u16, usize> = BTreeMap::new();
    for line in lab.logged(cases.len()) {
        *logged.entry(line.status).or_default() += 1;
    }
    assert_eq!(
        counted,
        BTreeMap::from([(200, 1), (404, 1), (502, 1), (503, 2)])
    );
    assert_eq!(logged, counted);
}

#[tokio::test]
async fn an_expected_status_set_accepts_what_it_lists() {
    let lab = Lab::start();
    let spec = HttpSpec {
        expected_status: vec![404..=404, 500..=599],
        ..https(&lab, NOBODY)
    };
    let report = http::request(&spec, deadline()).await;
    assert_eq!((report.result, report.status), (Ok(()), Some(404)));
    let spec = HttpSpec {
        url: HttpUrl::parse(&format!("https://{OK}:{}/", lab.https.port())).unwrap(),
        ..spec
    };
    let refused = http::request(&spec, deadline()).await;
    assert_eq!(
        (refused.result, refused.status),
        (Err(Failure::HttpStatus), Some(200))
    );
}

#[tokio::test]
async fn plain_http_has_no_tls_phase() {
    let lab = Lab::start();
    for (host, code) in [(OK, 200), (NOBODY, 404)] {
        let url = HttpUrl::parse(&format!("http://{host}:{}/", lab.http.port())).unwrap();
        let spec = HttpSpec {
            connect_to: Some(lab.http),
            ..HttpSpec::new(url)
        };
        let report = http::request(&spec, deadline()).await;
        assert_eq!(report.status, Some(code), "{}", report.render_text());
        assert_eq!(report.tls, None);
        assert_phases(&report, &[Phase::Connect, Phase::Ttfb]);
    }
    let logged = lab.logged(2);
    assert_eq!(logged[0].sni, "-", "no TLS, no SNI");
    assert_eq!((logged[0].host.as_str(), logged[0].status), (OK, 200));
    assert_eq!((logged[1].host.as_str(), logged[1].status), (NOBODY, 404));
}

#[tokio::test]
async fn the_wrong_scheme_for_the_port_is_named() {
    let lab = Lab::start();
    // A ClientHello to the plain-HTTP port: nginx answers 400 in plain text, not TLS.
    let tls_to_plain = HttpSpec {
        connect_to: Some(lab.http),
        ..https(&lab, OK)
    };
    let report = http::request(&tls_to_plain, deadline()).await;
    assert_eq!(
        report.result,
        Err(Failure::TlsHandshake),
        "{}",
        report.render_text()
    );
    assert_eq!(report.failed_phase, Some(Phase::Tls));
    assert_eq!(report.tls, None, "no certificate was presented");
    // Plain HTTP to the TLS port: nginx answers 400 "plain HTTP request was sent to HTTPS port".
    let url = HttpUrl::parse(&format!("http://{OK}:{}/", lab.https.port())).unwrap();
    let plain_to_tls = HttpSpec {
        connect_to: Some(lab.https),
        ..HttpSpec::new(url)
    };
    let report = http::request(&plain_to_tls, deadline()).await;
    assert_eq!(
        report.result,
        Err(Failure::HttpStatus),
        "{}",
        report.render_text()
    );
    assert_eq!(report.status, Some(400));
}

#[tokio::test]
async fn the_dns_phase_resolves_the_host_and_dials_the_first_answer() {
    let lab = Lab::start();
    // `localhost` is in /etc/hosts (the valid certificate names it), so the system resolver
    // answers without a packet leaving the machine; nginx listens on [::1] too when it exists.
    let url = HttpUrl::parse(&format!("https://localhost:{}/", lab.https.port())).unwrap();
    let spec = HttpSpec {
        ca: CaBundle::from_file(&lab.ca_file).unwrap(),
        ..HttpSpec::new(url)
    };
    let report = http::request(&spec, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_phases(
        &report,
        &[Phase::Dns, Phase::Connect, Phase::Tls, Phase::Ttfb],
    );
    assert!(report.answers.contains(&"127.0.0.1".parse().unwrap()));
    let first = report.answers[0];
    assert_eq!(
        report.address.map(|a| (a.ip(), a.port())),
        Some((first, lab.https.port()))
    );
    // A resolver hook: the answers are given, the phase is still timed and the first is dialled.
    let hooked = HttpSpec {
        resolver: Resolver::Static(vec![lab.https.ip()]),
        connect_to: None,
        ..https(&lab, OK)
    };
    let report = http::request(&hooked, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_phases(
        &report,
        &[Phase::Dns, Phase::Connect, Phase::Tls, Phase::Ttfb],
    );
    assert_eq!(report.address, Some(lab.https));
    assert!(report.render_text().contains("→ 127.0.0.1"));
}

#[tokio::test]
async fn a_closed_port_is_refused_in_the_connect_phase() {
    let lab = Lab::start();
    let spec = HttpSpec {
        connect_to: Some(lab.closed()),
        ..https(&lab, OK)
    };
    let report = http::request(&spec, deadline()).await;
    assert_eq!(report.result, Err(Failure::Refused));
    assert_eq!(report.failed_phase, Some(Phase::Connect));
    assert_eq!((report.status, &report.tls), (None, &None));
    assert_phases(&report, &[Phase::Connect]);
}

#[tokio::test]
async fn the_outcome_carries_the_report_for_metrics() {
    let lab = Lab::start();
    let report = http::request(&https(&lab, NO_ENDPOINTS), deadline()).await;
    let outcome = report.clone().outcome();
    assert_eq!(outcome.result, Err(Failure::HttpStatus));
    assert_eq!(outcome.duration, report.total);
    assert_eq!(outcome.detail, Detail::Http(report));
}

#[tokio::test]
async fn the_load_balancer_hop_checks_the_answer_then_connects() {
    let lab = Lab::start();
    let (port, lb) = (lab.https.port(), lab.https.ip());
    let ok = http::loadbalancer(
        "localhost",
        port,
        &LbExpected::addresses(&[lb]),
        &Resolver::System,
        deadline(),
    )
    .await;
    assert_eq!(ok.report.result, Ok(()), "{}", ok.render_text());
    assert_phases(&ok.report, &[Phase::Dns, Phase::Connect]);
    assert_eq!(ok.report.address, Some(lab.https));
    // The name points at a pod instead: a mismatch, while the load balancer itself answers.
    let pod: IpAddr = "10.244.1.5".parse().unwrap();
    let stale = Resolver::Static(vec![pod]);
    let mismatch = http::loadbalancer(
        "shop.example.test",
        port,
        &LbExpected::addresses(&[lb]),
        &stale,
        deadline(),
    )
    .await;
    assert_eq!(mismatch.report.result, Err(Failure::DnsMismatch));
    assert_eq!(mismatch.report.failed_phase, Some(Phase::Dns));
    assert_phases(&mismatch.report, &[Phase::Dns, Phase::Connect]);
    assert_eq!(
        mismatch.report.address,
        Some(lab.https),
        "connects to the LB, not the pod"
    );
    let text = mismatch.render_text();
    assert!(
        text.starts_with("load balancer shop.example.test:"),
        "{text}"
    );
    assert!(text.contains("(expected 127.0.0.1)"), "{text}");
    assert!(text.contains("→ 10.244.1.5"), "{text}");
    assert!(text.contains("result   dns_mismatch (in dns)"), "{text}");
    assert_eq!(
        mismatch.to_json()["expected"],
        serde_json::json!(["127.0.0.1"])
    );
    // The load balancer refuses: the answer was right, the connect names the failure.
    let closed = lab.closed();
    let answer = Resolver::Static(vec![closed.ip()]);
    let refused = http::loadbalancer(
        "shop.example.test",
        closed.port(),
        &LbExpected::addresses(&[closed.ip()]),
        &answer,
        deadline(),
    )
    .await;
    assert_eq!(refused.report.result, Err(Failure::Refused));
    assert_eq!(refused.report.failed_phase, Some(Phase::Connect));
    // An Ingress without a load-balancer address leaves nothing to judge.
    let none = http::loadbalancer(
        "localhost",
        port,
        &LbExpected::default(),
        &Resolver::System,
        deadline(),
    )
    .await;
    assert_eq!(none.report.result, Err(Failure::Unknown));
}

fn cli_args(lab: &Lab, host: &str) -> CliArgs {
    CliArgs {
        url: format!("https://{host}:{}/", lab.https.port()),
        connect_to: Some("127.0.0.1".to_string()),
        ca_file: Some(lab.ca_file.clone()),
        insecure: false,
        json: false,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn the_cli_prints_the_report_and_exits_by_the_result() {
    let lab = Lab::start();
    let (text, code) = http::cli(&cli_args(&lab, OK)).await.unwrap();
    assert_eq!(code, EXIT_SUCCESS, "{text}");
    assert!(
        text.starts_with(&format!("GET https://{OK}:{}/\n", lab.https.port())),
        "{text}"
    );
    assert!(
        text.contains("dns              -    (address given, not resolved)"),
        "{text}"
    );
    assert!(text.contains("\nstatus   200 (http/1.1)\n"), "{text}");
    assert!(text.contains("TLSv1.3, certificate verified"), "{text}");
    assert!(text.ends_with("result   success\n"), "{text}");
    let (text, code) = http::cli(&cli_args(&lab, EXPIRED)).await.unwrap();
    assert_eq!(code, EXIT_FAILURE, "{text}");
    assert!(text.ends_with("result   tls_expired (in tls)\n"), "{text}");
    let json_insecure = CliArgs {
        insecure: true,
        json: true,
        ..cli_args(&lab, EXPIRED)
    };
    let (text, code) = http::cli(&json_insecure).await.unwrap();
    assert_eq!(code, EXIT_SUCCESS, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["result"], "success");
    assert_eq!(json["status"], 200);
    assert_eq!(json["tls"]["verified"], false);
    assert_eq!(json["tls"]["verify_error"], "tls_expired");
    assert_eq!(json["tls"]["not_after"], lab.pki.expired.not_after);
    assert!(json["phases"]["tls"].as_f64().unwrap() > 0.0);
    assert_eq!(json["phases"].get("dns"), None);
}
