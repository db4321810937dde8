//! The request checks of the Ingress hop against a real nginx: HTTP/2 when nginx offers it by
//! ALPN and HTTP/1.1 when it does not, a client certificate made by openssl for a server with
//! `ssl_verify_client on`, configured headers, body patterns, redirects followed or not, and
//! methods other than GET. What the probe reports is checked against what nginx logged. A
//! server that refuses a missing client certificate in the handshake is `openssl s_server`.
//!
//! See `nginx_support` for the lab; the probe dials 127.0.0.1 with SNI and `Host` set to the
//! test host names, as it dials a load balancer for a public name.

mod nginx_support;
mod support;

use std::time::Duration;

use bytes::Bytes;
use hopwatch::metrics::Metrics;
use hopwatch::probe::http::{
    self, BodyPattern, CaBundle, ClientCert, Headers, HttpReport, HttpSpec, HttpUrl, Phase,
    Protocol,
};
use hopwatch::probe::{Failure, Hop, TargetKey};
use hyper::Method;
use nginx_support::{APP, Lab, MTLS, TOKEN};
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// `https://HOST:PORT/PATH` dialled at `at` (one of the lab's ports), verified against the
/// lab's CA; redirects followed, as configured targets do by default.
fn spec(lab: &Lab, host: &str, at: std::net::SocketAddr, path: &str) -> HttpSpec {
    let scheme = if at == lab.http { "http" } else { "https" };
    let url = HttpUrl::parse(&format!("{scheme}://{host}:{}{path}", at.port())).unwrap();
    HttpSpec {
        connect_to: Some(at),
        ca: CaBundle::from_file(&lab.ca_file).unwrap(),
        follow_redirects: true,
        ..HttpSpec::new(url)
    }
}

fn phases(report: &HttpReport) -> Vec<Phase> {
    report.phases.iter().map(|(p, _)| *p).collect()
}

/// The fields of one `app.log` line: method, URI, status, protocol, token, length, verify.
fn fields(line: &str) -> Vec<String> {
    line.split('|').map(str::to_string).collect()
}

#[tokio::test]
async fn h2_is_used_when_nginx_offers_it_and_http1_when_it_does_not() {
    let lab = Lab::start();
    let h2 = http::request(&spec(&lab, APP, lab.h2, "/body"), deadline()).await;
    assert_eq!(h2.result, Ok(()), "{}", h2.render_text());
    assert_eq!(h2.protocol, Some(Protocol::Http2));
    assert_eq!(h2.status, Some(200));
    assert_eq!(
        phases(&h2),
        [Phase::Connect, Phase::Tls, Phase::Ttfb],
        "every phase timed over h2 too"
    );
    assert!(h2.phases.iter().all(|(_, d)| *d > Duration::ZERO));
    let h1 = http::request(&spec(&lab, APP, lab.https, "/body"), deadline()).await;
    assert_eq!(h1.result, Ok(()), "{}", h1.render_text());
    assert_eq!(h1.protocol, Some(Protocol::Http1));
    let plain = http::request(&spec(&lab, APP, lab.http, "/body"), deadline()).await;
    assert_eq!(
        plain.protocol,
        Some(Protocol::Http1),
        "plain HTTP stays 1.1"
    );
    let logged = lab.app_logged(3);
    let protocols: Vec<String> = logged.iter().map(|l| fields(l)[3].clone()).collect();
    assert_eq!(
        protocols,
        ["HTTP/2.0", "HTTP/1.1", "HTTP/1.1"],
        "{logged:?}"
    );

    // The metric says which, and moves when the server changes.
    let metrics = Metrics::new();
    let key = TargetKey {
        hop: Hop::Ingress,
        id: "app".into(),
    };
    metrics.record(&key, &h2.clone().outcome());
    let text = metrics.encode();
    assert!(
        text.contains(
            "hopwatch_http_protocol_info{hop=\"ingress\",protocol=\"h2\",target=\"app\"} 1\n"
        ),
        "{text}"
    );
    metrics.record(&key, &h1.outcome());
    let text = metrics.encode();
    assert!(
        text.contains("protocol=\"http/1.1\",target=\"app\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("protocol=\"h2\""), "{text}");
}

#[tokio::test]
async fn every_request_is_a_fresh_connection_and_handshake_over_h2() {
    let lab = Lab::start();
    let spec = spec(&lab, APP, lab.h2, "/");
    for _ in 0..3 {
        let report = http::request(&spec, deadline()).await;
        assert_eq!(report.protocol, Some(Protocol::Http2));
        let tls = report.phase(Phase::Tls).expect("a TLS phase every time");
        assert!(tls > Duration::ZERO);
        assert_eq!(
            report.tls.as_ref().and_then(|t| t.protocol.as_deref()),
            Some("TLSv1.3")
        );
    }
}

#[tokio::test]
async fn a_client_certificate_from_the_trusted_ca_gets_through_mtls() {
    let lab = Lab::start();
    let clients = &lab.clients;
    let without = http::request(&spec(&lab, MTLS, lab.https, "/"), deadline()).await;
    // nginx completes the handshake and answers 400 "No required SSL certificate was sent".
    assert_eq!(
        without.result,
        Err(Failure::HttpStatus),
        "{}",
        without.render_text()
    );
    assert_eq!(without.status, Some(400));
    let with = HttpSpec {
        client_cert: Some(ClientCert::from_files(&clients.cert, &clients.key).unwrap()),
        ..spec(&lab, MTLS, lab.https, "/")
    };
    let report = http::request(&with, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_eq!(report.status, Some(200));
    let stranger = HttpSpec {
        client_cert: Some(
            ClientCert::from_files(&clients.stranger_cert, &clients.stranger_key).unwrap(),
        ),
        ..spec(&lab, MTLS, lab.https, "/")
    };
    let refused = http::request(&stranger, deadline()).await;
    // A certificate nginx cannot verify: 400 "The SSL certificate error".
    assert_eq!(refused.result, Err(Failure::HttpStatus));
    assert_eq!(refused.status, Some(400));
    let verify: Vec<String> = lab
        .app_logged(3)
        .iter()
        .map(|l| fields(l)[6].clone())
        .collect();
    assert_eq!(verify.len(), 3, "{verify:?}");
    assert_eq!(verify[0], "NONE");
    assert_eq!(verify[1], "SUCCESS");
    assert!(verify[2].starts_with("FAILED"), "{verify:?}");
}

#[tokio::test]
async fn configured_headers_are_sent_and_nginx_checks_them() {
    let lab = Lab::start();
    let bare = http::request(&spec(&lab, APP, lab.https, "/token"), deadline()).await;
    assert_eq!(bare.result, Err(Failure::HttpStatus));
    assert_eq!(bare.status, Some(403));
    for at in [lab.https, lab.h2, lab.http] {
        let with = HttpSpec {
            headers: Headers::parse([("X-Probe-Token", TOKEN)]).unwrap(),
            ..spec(&lab, APP, at, "/token")
        };
        let report = http::request(&with, deadline()).await;
        assert_eq!(report.result, Ok(()), "{at}: {}", report.render_text());
        assert_eq!(report.status, Some(200));
        // The report, which the CLI prints and `Debug` shows, never carries the value.
        assert!(!format!("{report:?}{with:?}").contains(TOKEN));
    }
    let tokens: Vec<String> = lab
        .app_logged(4)
        .iter()
        .map(|l| fields(l)[4].clone())
        .collect();
    assert_eq!(tokens, ["-", TOKEN, TOKEN, TOKEN]);
}

#[tokio::test]
async fn the_body_must_match_every_pattern() {
    let lab = Lab::start();
    for at in [lab.https, lab.h2] {
        let matching = HttpSpec {
            expected_body: vec![
                BodyPattern::new("^hello").unwrap(),
                BodyPattern::new("build=[0-9]+").unwrap(),
            ],
            ..spec(&lab, APP, at, "/body")
        };
        let report = http::request(&matching, deadline()).await;
        assert_eq!(report.result, Ok(()), "{}", report.render_text());
        assert_eq!(
            phases(&report),
            [Phase::Connect, Phase::Tls, Phase::Ttfb, Phase::Transfer]
        );
        let missing = HttpSpec {
            expected_body: vec![
                BodyPattern::new("^hello").unwrap(),
                BodyPattern::new("build=[a-z]+").unwrap(),
            ],
            ..matching
        };
        let report = http::request(&missing, deadline()).await;
        assert_eq!(report.result, Err(Failure::HttpBodyMismatch));
        assert_eq!(report.failed_phase, Some(Phase::Transfer));
        assert_eq!(report.status, Some(200));
        assert_eq!(
            report.completed_phases().count(),
            4,
            "the body was read: every phase completed"
        );
    }
    // Without patterns the body is not read: no transfer phase.
    let plain = http::request(&spec(&lab, APP, lab.https, "/body"), deadline()).await;
    assert_eq!(phases(&plain), [Phase::Connect, Phase::Tls, Phase::Ttfb]);
}

#[tokio::test]
async fn redirects_are_followed_to_the_final_status_or_not_at_all() {
    let lab = Lab::start();
    let followed = http::request(&spec(&lab, APP, lab.https, "/redirect"), deadline()).await;
    assert_eq!(followed.result, Ok(()), "{}", followed.render_text());
    assert_eq!(followed.status, Some(200), "the final response");
    let body = format!("https://{APP}:{}/body", lab.https.port());
    assert_eq!(followed.redirects, [body]);
    assert_eq!(
        phases(&followed),
        [Phase::Connect, Phase::Tls, Phase::Ttfb],
        "each phase summed over both requests"
    );
    // To plain HTTP on another port of the same host: `connect_to`'s address, the new port.
    let across = http::request(&spec(&lab, APP, lab.https, "/redirect-http"), deadline()).await;
    assert_eq!(across.result, Ok(()), "{}", across.render_text());
    assert_eq!(across.address, Some(lab.http));
    assert_eq!(across.protocol, Some(Protocol::Http1));
    let not_followed = HttpSpec {
        follow_redirects: false,
        ..spec(&lab, APP, lab.https, "/redirect")
    };
    let report = http::request(&not_followed, deadline()).await;
    assert_eq!(report.result, Ok(()), "a 302 is expected by default");
    assert_eq!(report.status, Some(302));
    assert!(report.redirects.is_empty());
    let strict = HttpSpec {
        expected_status: vec![200..=200],
        ..not_followed
    };
    let report = http::request(&strict, deadline()).await;
    assert_eq!(report.result, Err(Failure::HttpStatus));
    let looping = http::request(&spec(&lab, APP, lab.h2, "/loop"), deadline()).await;
    assert_eq!(looping.result, Err(Failure::HttpTooManyRedirects));
    assert_eq!(looping.redirects.len(), 10);
    assert_eq!(looping.status, Some(302));
    let uris: Vec<String> = lab
        .app_logged(17)
        .iter()
        .map(|l| fields(l)[1].clone())
        .collect();
    assert_eq!(uris.len(), 17, "{uris:?}");
    assert_eq!(
        uris.iter().filter(|u| *u == "/loop").count(),
        11,
        "the first request and ten redirects"
    );
}

/// Discovered targets follow a redirect on their own host only: whoever writes an Ingress
/// controls its `Location`, and the agent dials only what the API or the config names.
#[tokio::test]
async fn a_redirect_to_another_host_is_followed_only_when_the_target_allows_it() {
    let lab = Lab::start();
    let away = format!("http://127.0.0.1:{}/body", lab.http.port());
    let configured = http::request(&spec(&lab, APP, lab.https, "/redirect-away"), deadline()).await;
    assert_eq!(configured.redirects, [away], "{}", configured.render_text());
    assert_eq!(
        configured.address,
        Some(format!("127.0.0.1:{}", lab.http.port()).parse().unwrap())
    );
    let discovered = HttpSpec {
        cross_host_redirects: false,
        ..spec(&lab, APP, lab.https, "/redirect-away")
    };
    let report = http::request(&discovered, deadline()).await;
    assert_eq!(report.result, Ok(()), "a 302 is expected by default");
    assert_eq!(
        report.status,
        Some(302),
        "the redirect is the response judged"
    );
    assert!(report.redirects.is_empty());
    assert_eq!(
        report.address,
        Some(lab.https),
        "nothing but connect_to was dialled"
    );
    // The same host on another port and scheme is still followed.
    let same_host = HttpSpec {
        cross_host_redirects: false,
        ..spec(&lab, APP, lab.https, "/redirect-http")
    };
    let report = http::request(&same_host, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_eq!(report.address, Some(lab.http));
}

#[tokio::test]
async fn head_and_post_are_sent_as_configured() {
    let lab = Lab::start();
    let head = HttpSpec {
        method: Method::HEAD,
        ..spec(&lab, APP, lab.https, "/body")
    };
    let report = http::request(&head, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_eq!(report.method, Method::HEAD);
    let get = http::request(&spec(&lab, APP, lab.h2, "/post-only"), deadline()).await;
    assert_eq!(get.status, Some(405));
    for at in [lab.https, lab.h2] {
        let post = HttpSpec {
            method: Method::POST,
            body: Bytes::from_static(b"{\"q\": \"probe\"}"),
            headers: Headers::parse([("Content-Type", "application/json")]).unwrap(),
            ..spec(&lab, APP, at, "/post-only")
        };
        let report = http::request(&post, deadline()).await;
        assert_eq!(report.result, Ok(()), "{at}: {}", report.render_text());
        assert_eq!(report.status, Some(200));
    }
    let logged: Vec<Vec<String>> = lab.app_logged(4).iter().map(|l| fields(l)).collect();
    let seen: Vec<(&str, &str, &str)> = logged
        .iter()
        .map(|f| (f[0].as_str(), f[2].as_str(), f[5].as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("HEAD", "200", "-"),
            ("GET", "405", "-"),
            ("POST", "200", "14"),
            ("POST", "200", "14"),
        ]
    );
}

#[tokio::test]
async fn a_post_redirected_by_a_302_is_followed_with_a_get() {
    let lab = Lab::start();
    // /redirect is a 302: a POST becomes a GET without its body, as Go's client does.
    let post = HttpSpec {
        method: Method::POST,
        body: Bytes::from_static(b"x=1"),
        ..spec(&lab, APP, lab.https, "/redirect")
    };
    let report = http::request(&post, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    let logged: Vec<Vec<String>> = lab.app_logged(2).iter().map(|l| fields(l)).collect();
    let seen: Vec<(&str, &str)> = logged
        .iter()
        .map(|f| (f[0].as_str(), f[1].as_str()))
        .collect();
    assert_eq!(seen, [("POST", "/redirect"), ("GET", "/body")]);
}

/// `openssl s_server` requiring a client certificate (`-Verify 1`), killed on drop.
struct SServer(std::process::Child);

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_server_that_refuses_in_the_handshake_is_a_tls_failure() {
    let lab = Lab::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-tls1_3", "-Verify", "1"])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(lab.file("valid.crt"))
        .arg("-key")
        .arg(lab.file("valid.key"))
        .arg("-CAfile")
        .arg(&lab.clients.ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server (apt-get install openssl)");
    let _server = SServer(child);
    let at: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(at).is_err() {
        assert!(
            std::time::Instant::now() < give_up,
            "s_server did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = HttpUrl::parse(&format!("https://{MTLS}:{port}/")).unwrap();
    let without = HttpSpec {
        connect_to: Some(at),
        ca: CaBundle::from_file(&lab.ca_file).unwrap(),
        ..HttpSpec::new(url)
    };
    let report = http::request(&without, deadline()).await;
    // TLS 1.3: the client's handshake is over before the server judges its certificate, so
    // the alert (certificate_required) is read with the response, in the ttfb phase.
    assert_eq!(
        report.result,
        Err(Failure::TlsHandshake),
        "{}",
        report.render_text()
    );
    let with = HttpSpec {
        client_cert: Some(ClientCert::from_files(&lab.clients.cert, &lab.clients.key).unwrap()),
        ..without
    };
    let report = http::request(&with, deadline()).await;
    assert_eq!(report.result, Ok(()), "{}", report.render_text());
    assert_eq!(report.status, Some(200));
}
