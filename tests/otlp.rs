//! The OTLP push against a real HTTP receiver: what `/metrics` shows is what is pushed.
//!
//! Each test records fixed probe outcomes into a [`Metrics`], pushes once (or lets the
//! exporter push) to a loopback receiver, and decodes the request with `opentelemetry-proto`'s
//! own types. The end-to-end tests run `hopwatch run` with an `otlp:` section: its pushes
//! agree with its `/metrics`, and SIGTERM makes one last push.

mod otlp_support;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hopwatch::metrics::Metrics;
use hopwatch::otlp::{Client, Environment, ExportError, Exporter, Settings};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use otlp_support::agent::Agent;
use otlp_support::fixtures::{dns_outcome, key, pki, recorded};
use otlp_support::receiver::{Answer, Received, Receiver};
use otlp_support::samples::{
    Sample, names, resource, samples, text_samples, without_process_values,
};
use support::process::http_get;
use support::prom::Exposition;

const WAIT: Duration = Duration::from_secs(5);

fn settings(endpoint: String) -> Settings {
    Settings {
        endpoint,
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(2),
        headers: Vec::new(),
        resource: Vec::new(),
    }
}

fn pod() -> Environment {
    Environment {
        pod_name: Some("hopwatch-x7k2p".into()),
        pod_namespace: Some("monitoring".into()),
        pod_ip: Some("10.244.1.7".into()),
        node_name: Some("node-1".into()),
        host_name: Some("hopwatch-x7k2p".into()),
    }
}

/// One second after the epoch: a start time no clock reading can be confused with.
const STARTED: Duration = Duration::from_secs(1);

fn client(settings: &Settings, metrics: &Arc<Metrics>) -> Client {
    let roots = rustls::RootCertStore::empty();
    let started = UNIX_EPOCH + STARTED;
    Client::with(settings, Arc::clone(metrics), started, &pod(), roots)
        .unwrap_or_else(|err| panic!("{err}"))
}

async fn push(client: &mut Client) {
    if let Err(err) = client.push().await {
        panic!("the push failed: {err}");
    }
}

#[tokio::test]
async fn a_push_carries_every_series_of_metrics_with_the_same_value() {
    let receiver = Receiver::start();
    let metrics = recorded();
    let mut client = client(&settings(receiver.endpoint()), &metrics);
    let text = metrics.encode();
    push(&mut client).await;

    let request = receiver.next(WAIT).decode();
    let pushed = without_process_values(samples(&request));
    let scraped = without_process_values(text_samples(&text));
    assert!(
        names(&scraped).iter().any(|n| n == "hopwatch_probes_total")
            && names(&scraped).iter().any(|n| n.starts_with("process_")),
        "the comparison covers probes and process series:\n{text}"
    );
    let only_in = |a: &[Sample], b: &[Sample]| -> Vec<Sample> {
        a.iter().filter(|s| !b.contains(s)).cloned().collect()
    };
    assert_eq!(
        (only_in(&pushed, &scraped), only_in(&scraped, &pushed)),
        (vec![], vec![]),
        "(pushed only, scraped only)"
    );
    assert_eq!(pushed.len(), scraped.len(), "no series twice");
}

#[tokio::test]
async fn types_help_and_units_follow_the_families() {
    let receiver = Receiver::start();
    let metrics = recorded();
    let mut client = client(&settings(receiver.endpoint()), &metrics);
    push(&mut client).await;
    let request = receiver.next(WAIT).decode();
    let scope = &request.resource_metrics[0].scope_metrics[0];
    let scope_name = scope
        .scope
        .as_ref()
        .map(|s| (s.name.as_str(), s.version.as_str()));
    assert_eq!(scope_name, Some(("hopwatch", env!("CARGO_PKG_VERSION"))));

    let metrics = otlp_support::samples::metrics(&request);
    let kind = |name: &str| match &metrics[name].data {
        Some(Data::Sum(_)) => "sum",
        Some(Data::Gauge(_)) => "gauge",
        Some(Data::Histogram(_)) => "histogram",
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(kind("hopwatch_probes_total"), "sum");
    assert_eq!(kind("hopwatch_targets"), "gauge");
    assert_eq!(kind("hopwatch_dns_lookup_duration_seconds"), "histogram");
    let probes = &metrics["hopwatch_probes_total"];
    assert_eq!(
        probes.description,
        "Probe attempts by hop, target and result (success or the failure reason)."
    );
    assert_eq!(metrics["hopwatch_dns_lookup_duration_seconds"].unit, "s");
    assert_eq!(probes.unit, "");
}

#[tokio::test]
async fn the_request_names_its_source_and_carries_the_configured_headers() {
    let receiver = Receiver::start();
    let metrics = recorded();
    let mut settings = settings(receiver.endpoint());
    settings.headers = vec![
        ("Authorization".into(), "Bearer t0ken".into()),
        ("X-Scope-OrgID".into(), "team-a".into()),
    ];
    settings.resource = vec![
        ("k8s.cluster.name".into(), "lab".into()),
        ("service.namespace".into(), "monitoring".into()),
    ];
    let mut client = client(&settings, &metrics);
    push(&mut client).await;
    let received = receiver.next(WAIT);

    assert_eq!(
        (received.method.as_str(), received.path.as_str()),
        ("POST", "/v1/metrics")
    );
    assert_eq!(received.header("content-type"), "application/x-protobuf");
    assert_eq!(received.header("authorization"), "Bearer t0ken");
    assert_eq!(received.header("x-scope-orgid"), "team-a");
    assert_eq!(received.header("host"), receiver.addr().to_string());
    assert!(received.header("user-agent").starts_with("hopwatch/"));
    let expected = [
        ("service.name", "hopwatch"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("service.instance.id", "hopwatch-x7k2p"),
        ("host.name", "hopwatch-x7k2p"),
        ("k8s.node.name", "node-1"),
        ("k8s.pod.name", "hopwatch-x7k2p"),
        ("k8s.namespace.name", "monitoring"),
        ("k8s.pod.ip", "10.244.1.7"),
        ("k8s.cluster.name", "lab"),
        ("service.namespace", "monitoring"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(resource(&received.decode()), expected);
}

/// Start times of `name`'s points in `request`, by `target` attribute.
fn starts(received: &Received, name: &str) -> Vec<(String, u64)> {
    let request = received.decode();
    let metrics = otlp_support::samples::metrics(&request);
    let Some(Data::Sum(sum)) = &metrics[name].data else {
        panic!("{name} is not a sum");
    };
    let mut out: Vec<(String, u64)> = sum
        .data_points
        .iter()
        .map(|p| {
            let labels = otlp_support::samples::labels(&p.attributes);
            (labels["target"].clone(), p.start_time_unix_nano)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn a_vanished_target_is_not_sent_any_more_and_returns_as_a_new_series() {
    let receiver = Receiver::start();
    let metrics = recorded();
    let mut client = client(&settings(receiver.endpoint()), &metrics);
    let process_start = u64::try_from(STARTED.as_nanos()).unwrap();

    push(&mut client).await;
    let first = receiver.next(WAIT);
    let both = [
        ("slow".to_string(), process_start),
        ("web".to_string(), process_start),
    ];
    assert_eq!(starts(&first, "hopwatch_probes_total"), both);

    metrics.forget(&key("web"));
    push(&mut client).await;
    let second = receiver.next(WAIT);
    assert!(
        samples(&second.decode())
            .iter()
            .all(|s| s.1.get("target").map(String::as_str) != Some("web")),
        "a forgotten target's series are not pushed"
    );
    assert_eq!(starts(&second, "hopwatch_probes_total"), [both[0].clone()]);

    metrics.record(&key("web"), &dns_outcome());
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    push(&mut client).await;
    let third = starts(&receiver.next(WAIT), "hopwatch_probes_total");
    let (web, web_start) = &third[1];
    assert_eq!((third[0].clone(), web.as_str()), (both[0].clone(), "web"));
    assert!(
        *web_start > process_start && u128::from(*web_start) <= before.as_nanos(),
        "the returning series starts at the previous push, not at process start: {web_start}"
    );
}

fn exports(metrics: &Metrics) -> (f64, f64) {
    let parsed = Exposition::parse(&metrics.encode()).unwrap_or_else(|e| panic!("{e}"));
    let value = |result| parsed.value("hopwatch_otlp_exports_total", &[("result", result)]);
    (value("success"), value("failure"))
}

#[tokio::test]
async fn failures_are_counted_and_say_why() {
    let receiver = Receiver::start();
    let metrics = recorded();
    let mut settings = settings(receiver.endpoint());
    settings.timeout = Duration::from_millis(300);
    let mut client = client(&settings, &metrics);
    assert_eq!(
        exports(&metrics),
        (0.0, 0.0),
        "both results exist from the start"
    );

    receiver.answer(Answer::Reply(
        503,
        "text/plain",
        b"collector overloaded\n".to_vec(),
    ));
    let err = client.push().await.err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("the endpoint answered 503 Service Unavailable: collector overloaded")
    );
    assert_eq!(exports(&metrics), (0.0, 1.0));

    receiver.answer(Answer::Silent);
    let started = Instant::now();
    let err = client.push().await.err();
    assert!(matches!(err, Some(ExportError::Timeout(_))), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout holds"
    );

    receiver.answer(Answer::Ok);
    push(&mut client).await;
    assert_eq!(exports(&metrics), (1.0, 2.0));
    let requests = std::iter::from_fn(|| receiver.try_next()).count();
    assert_eq!(requests, 3, "no retry beyond the pushes asked for");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_failure() {
    let metrics = recorded();
    let endpoint = format!("http://{}/v1/metrics", support::free_tcp_addr());
    let mut client = client(&settings(endpoint), &metrics);
    let err = client.push().await.err();
    assert_eq!(
        err.as_ref().map(ExportError::as_str),
        Some("connect"),
        "{err:?}"
    );
    assert_eq!(exports(&metrics), (0.0, 1.0));
}

#[tokio::test]
async fn a_partial_success_is_a_success_that_names_the_rejected_points() {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    use prost::Message;
    let receiver = Receiver::start();
    let metrics = recorded();
    let mut client = client(&settings(receiver.endpoint()), &metrics);
    let response = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 2,
            error_message: "out of order".into(),
        }),
    };
    receiver.answer(Answer::Reply(
        200,
        "application/x-protobuf",
        response.encode_to_vec(),
    ));
    let rejected = client.push().await.unwrap_or_else(|e| panic!("{e}"));
    let rejected = rejected.map(|r| (r.data_points, r.message));
    assert_eq!(rejected, Some((2, "out of order".to_string())));
    assert_eq!(exports(&metrics), (1.0, 0.0));
}

#[tokio::test]
async fn https_is_verified_against_the_roots() {
    let (config, roots) = pki();
    let receiver = Receiver::start_tls(config);
    let metrics = recorded();
    let settings = settings(receiver.endpoint());
    let started = UNIX_EPOCH + STARTED;

    let mut trusting = Client::with(&settings, Arc::clone(&metrics), started, &pod(), roots)
        .unwrap_or_else(|err| panic!("{err}"));
    push(&mut trusting).await;
    let pushed = samples(&receiver.next(WAIT).decode());
    assert!(names(&pushed).iter().any(|n| n == "hopwatch_probes_total"));

    // The webpki roots do not include the test CA: the handshake must fail.
    let mut public =
        Client::new(&settings, Arc::clone(&metrics), started).unwrap_or_else(|err| panic!("{err}"));
    let err = public.push().await.err();
    assert_eq!(
        err.as_ref().map(ExportError::as_str),
        Some("tls"),
        "{err:?}"
    );
    assert!(
        receiver.try_next().is_none(),
        "nothing is sent to an unverified server"
    );
}

/// Waits (on the test's runtime) for the next request.
async fn next_request(receiver: &Receiver) -> Received {
    let give_up = Instant::now() + WAIT;
    loop {
        if let Some(received) = receiver.try_next() {
            return received;
        }
        assert!(Instant::now() < give_up, "no push within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn probes_of(received: &Received, target: &str) -> f64 {
    samples(&received.decode())
        .iter()
        .filter(|s| s.0 == "hopwatch_probes_total")
        .filter(|s| s.1.get("target").map(String::as_str) == Some(target))
        .map(|s| s.2)
        .sum()
}

#[tokio::test]
async fn the_exporter_pushes_every_interval_and_once_more_on_shutdown() {
    let receiver = Receiver::start();
    let metrics = recorded();
    let client = client(&settings(receiver.endpoint()), &metrics);
    let interval = Duration::from_millis(200);
    let started = Instant::now();
    let exporter = Exporter::start(client, interval);

    let first = next_request(&receiver).await;
    assert!(
        started.elapsed() >= interval,
        "the first push waits one interval"
    );
    next_request(&receiver).await;
    assert_eq!(probes_of(&first, "web"), 3.0);

    metrics.record(&key("web"), &dns_outcome());
    exporter.shutdown().await;
    let mut last = None;
    while let Some(received) = receiver.try_next() {
        last = Some(received);
    }
    let last = last.unwrap_or_else(|| panic!("no push on shutdown"));
    assert_eq!(
        probes_of(&last, "web"),
        4.0,
        "the final push has the last probe"
    );
}

fn probe_series(samples: &[Sample]) -> Vec<Sample> {
    let probes = samples.iter().filter(|s| s.0 == "hopwatch_probes_total");
    probes.cloned().collect()
}

fn timed_out(samples: &[Sample]) -> f64 {
    let timeouts = probe_series(samples)
        .into_iter()
        .filter(|s| s.1["result"] == "timeout");
    timeouts.map(|s| s.2).sum()
}

#[test]
fn the_agent_pushes_what_it_serves() {
    let receiver = Receiver::start();
    let mut agent = Agent::start(&receiver.endpoint(), 1);
    let give_up = Instant::now() + Duration::from_secs(20);
    // Until a push with a timed-out probe comes between two scrapes.
    let (before, received, after) = loop {
        let log = agent.process.log();
        assert!(
            Instant::now() < give_up,
            "no push with a probe result:\n{log}"
        );
        let before = agent.scrape();
        let received = receiver.next(Duration::from_secs(5));
        let after = agent.scrape();
        if timed_out(&samples(&received.decode())) > 0.0 {
            break (probe_series(&before), received, probe_series(&after));
        }
    };
    let pushed = probe_series(&samples(&received.decode()));
    let labels = |s: &[Sample]| s.iter().map(|s| s.1.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&pushed), labels(&after), "the same series in both");
    // A series may appear between the first scrape and the push: it was 0 then.
    let value_before = |labels: &BTreeMap<String, String>| {
        let same = before.iter().find(|b| &b.1 == labels);
        same.map_or(0.0, |b| b.2)
    };
    for (p, a) in pushed.iter().zip(&after) {
        let (b, a) = (value_before(&p.1), a.2);
        let labels = &p.1;
        let p = p.2;
        assert!(
            b <= p && p <= a,
            "{labels:?}: scraped {b}, pushed {p}, scraped {a}"
        );
    }

    assert_eq!(received.header("authorization"), "Bearer e2e");
    let resource = resource(&received.decode());
    for (key, value) in [
        ("service.name", "hopwatch"),
        ("service.instance.id", "hopwatch-e2e"),
        ("k8s.node.name", "node-e2e"),
        ("k8s.pod.ip", "127.0.0.1"),
        ("k8s.cluster.name", "lab"),
    ] {
        let pair = (key.to_string(), value.to_string());
        assert!(resource.contains(&pair), "{pair:?} not in {resource:?}");
    }
}

#[test]
fn the_agent_pushes_once_more_when_it_stops() {
    let receiver = Receiver::start();
    // No periodic push within the test: whatever arrives is the one on shutdown.
    let mut agent = Agent::start(&receiver.endpoint(), 3600);
    agent.wait_until("time a probe out", |a| {
        let text = http_get(a.listen, "/metrics")
            .map(|r| r.body)
            .unwrap_or_default();
        timed_out(&text_samples(&text)) > 0.0
    });
    let scraped = timed_out(&agent.scrape());
    assert!(receiver.try_next().is_none(), "no push before the interval");

    agent.terminate();
    let last = receiver.next(Duration::from_secs(1));
    let pushed = samples(&last.decode());
    assert!(
        timed_out(&pushed) >= scraped,
        "the final push has the last results"
    );
    assert!(receiver.try_next().is_none(), "one push on shutdown");
}
