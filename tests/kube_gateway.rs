//! Gateway API discovery end to end: a Gateway and an HTTPRoute, served by the fake API server
//! as a kube-apiserver serves them once the CRDs are installed, become load-balancer and
//! Ingress-hop targets of `hopwatch run`, requested through the Gateway's status address on its
//! listener's port; a route answering 404 is blamed on the edge hop; deleting the route removes
//! its series. Without the CRDs (the fake's lists answer 404) the agent is ready, marks the two
//! resources absent, and does not retry them in a loop; turned off, it does not ask at all.
//!
//! The Gateway's "data plane" is an HTTP server on a loopback address of the test's own /24,
//! on an unprivileged port; the public name resolves through a DNS server on port 53 of the
//! same /24, so the first test needs root (CI runs as root). Every probe stays on loopback.

#[allow(
    unused_imports,
    reason = "the guard re-exports watch types this file does not use"
)]
mod fakeapi_support;
#[allow(
    dead_code,
    unused_imports,
    reason = "shared with tests/kube_discovery.rs, which uses the rest"
)]
mod kube_support;
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use fakeapi_support::FakeApi;
use kube_support::dns::DnsServer;
use kube_support::{Agent, AgentOptions, Backend, Cluster, Net, probes, verdict_is};

const PROBE: Duration = Duration::from_secs(10);
const STORE: Duration = Duration::from_secs(3);
const KUBERNETES: &str = "  ingress: {interval_seconds: 1, timeout_seconds: 0.8}\n";
/// The Gateway's HTTP listener.
const PORT: u16 = 8080;

const ROUTE_PATH: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/front";
const ROOT: &str = "shop/httproute:front/shop.example.test/";
const API: &str = "shop/httproute:front/shop.example.test/api";
const HOST: &str = "shop/httproute:front/shop.example.test";

/// An HTTP server on `ip:PORT` answering `status` to everything; counts requests and keeps
/// the last Host header.
struct DataPlane {
    requests: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
}

impl DataPlane {
    fn start(ip: Ipv4Addr) -> DataPlane {
        let listener = TcpListener::bind((ip, PORT))
            .unwrap_or_else(|e| panic!("cannot listen on {ip}:{PORT}: {e}"));
        let requests = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let (count, code) = (Arc::clone(&requests), Arc::clone(&status));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let Ok(n) = stream.read(&mut buf) else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                if !head.contains(&format!("host: shop.example.test:{PORT}")) {
                    continue;
                }
                count.fetch_add(1, Ordering::Relaxed);
                let reply = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    code.load(Ordering::Relaxed)
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        DataPlane { requests, status }
    }
}

fn gateway(address: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": "infra", "name": "edge"},
        "spec": {"gatewayClassName": "lab", "listeners": [
            {"name": "http", "port": PORT, "protocol": "HTTP", "hostname": "*.example.test"}
        ]},
        "status": {"addresses": [{"type": "IPAddress", "value": address.to_string()}]}
    })
}

fn route(matches: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"namespace": "shop", "name": "front"},
        "spec": {
            "parentRefs": [{"name": "edge", "namespace": "infra"}],
            "hostnames": ["shop.example.test"],
            "rules": [{"matches": matches,
                       "backendRefs": [{"name": "web", "port": 80}]}]
        }
    })
}

fn prefix(path: &str) -> Value {
    json!({"path": {"type": "PathPrefix", "value": path}})
}

#[test]
fn httproutes_become_targets_are_blamed_as_ingresses_and_leave_no_series() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let lb_ip = net.ip(80);
    let plane = DataPlane::start(lb_ip);
    let dns = DnsServer::start(&[SocketAddr::from((net.ip(60), 53))]);
    dns.set("shop.example.test.", &[lb_ip]);
    let mut objects = web.objects();
    objects.push(gateway(lb_ip));
    objects.push(route(json!([prefix("/")])));
    let builder = FakeApi::builder().arg("--gateway-api");
    let cluster = Cluster::start_with(net, objects, builder);
    let options = AgentOptions {
        kubernetes: KUBERNETES.to_string(),
        public_nameserver: Some(net.ip(60)),
        ..AgentOptions::default()
    };
    let mut agent = Agent::start(&cluster, &options);

    let e = agent.wait_for(PROBE, "probe the route through the Gateway address", |e| {
        probes(e, "ingress", ROOT, Some("success")) >= 1.0
            && probes(e, "loadbalancer", HOST, Some("success")) >= 1.0
            && verdict_is(e, "shop", "web", "none")
    });
    let synced = |resource| e.value("hopwatch_kube_synced", &[("resource", resource)]);
    assert_eq!((synced("gateways"), synced("httproutes")), (1.0, 1.0));
    assert_eq!(
        e.value("hopwatch_kube_resource_absent", &[("resource", "gateways")]),
        0.0
    );
    assert_eq!(e.value("hopwatch_targets", &[("hop", "ingress")]), 1.0);
    assert_eq!(e.value("hopwatch_targets", &[("hop", "loadbalancer")]), 1.0);
    assert!(
        plane.requests.load(Ordering::Relaxed) >= 1,
        "requested on the listener's port with the route's host"
    );
    // The public name moves off the Gateway: the load-balancer hop sees it.
    dns.set("shop.example.test.", &[net.ip(81)]);
    agent.wait_for(PROBE, "see the public name miss the Gateway", |e| {
        probes(e, "loadbalancer", HOST, Some("dns_mismatch")) >= 1.0
            && verdict_is(e, "shop", "web", "loadbalancer")
    });
    dns.set("shop.example.test.", &[lb_ip]);
    assert_eq!(
        probes(&e, "loadbalancer", HOST, Some("dns_mismatch")),
        0.0,
        "the public name resolves to the Gateway's status address"
    );

    // A second match is a second target; an Exact match is probed, a regex one is not.
    let matches = json!([prefix("/"), {"path": {"type": "Exact", "value": "/api"}},
                         {"path": {"type": "RegularExpression", "value": "/v[0-9]+"}}]);
    cluster.fake.replace(ROUTE_PATH, &route(matches));
    agent.wait_for(STORE, "add the /api match", |e| {
        e.value("hopwatch_targets", &[("hop", "ingress")]) == 2.0
    });
    agent.wait_for(PROBE, "probe the /api match", |e| {
        probes(e, "ingress", API, Some("success")) >= 1.0
    });

    // The route answers 404: its own failure, blamed on the edge hop of the Service it
    // sends to, as an Ingress rule's would be.
    plane.status.store(404, Ordering::Relaxed);
    agent.wait_for(PROBE, "blame the route's 404 on the edge hop", |e| {
        probes(e, "ingress", ROOT, Some("http_status")) >= 1.0
            && verdict_is(e, "shop", "web", "ingress")
    });
    plane.status.store(200, Ordering::Relaxed);
    agent.wait_for(PROBE, "recover", |e| verdict_is(e, "shop", "web", "none"));

    // Deleted: every series of its targets goes.
    cluster.fake.delete(ROUTE_PATH);
    agent.wait_for(STORE, "drop the route targets", |e| {
        e.value("hopwatch_targets", &[("hop", "ingress")]) == 0.0
            && e.value("hopwatch_targets", &[("hop", "loadbalancer")]) == 0.0
    });
    let text = agent.text();
    let left: Vec<&str> = text.lines().filter(|l| l.contains("httproute:")).collect();
    assert!(left.is_empty(), "series left behind: {left:#?}");
}

/// List requests the fake API server logged for `resource` of the Gateway API.
fn lists(cluster: &Cluster, resource: &str) -> usize {
    let path = format!("GET /apis/gateway.networking.k8s.io/v1/{resource}?");
    cluster
        .fake
        .log()
        .lines()
        .filter(|l| l.contains(&path))
        .count()
}

#[test]
fn without_the_crds_the_agent_is_ready_and_marks_them_absent_without_a_retry_loop() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    agent.wait_ready(PROBE);
    let absent = |e: &support::prom::Exposition, resource| {
        let series = e.series("hopwatch_kube_resource_absent", &[("resource", resource)]);
        series.first().map(|s| s.value)
    };
    let e = agent.wait_for(PROBE, "mark the Gateway API absent", |e| {
        absent(e, "gateways") == Some(1.0) && absent(e, "httproutes") == Some(1.0)
    });
    for resource in ["gateways", "httproutes"] {
        assert_eq!(
            e.value("hopwatch_kube_synced", &[("resource", resource)]),
            1.0,
            "absent counts as listed: nothing to list"
        );
    }
    // A few seconds on: still one list each (the retry is a minute away), no restart counted.
    std::thread::sleep(Duration::from_secs(4));
    let e = agent.scrape();
    for resource in ["gateways", "httproutes"] {
        assert_eq!(
            lists(&cluster, resource),
            1,
            "{resource}: one list, no loop"
        );
        assert_eq!(
            e.value(
                "hopwatch_kube_watch_restarts_total",
                &[("resource", resource)]
            ),
            0.0,
            "{resource}"
        );
    }
    assert_eq!(agent.readyz(), 200);
    assert!(
        agent.log().contains("not served by the API server"),
        "{}",
        agent.log()
    );

    // Turned off: no series for them, and nothing more asked.
    let off = AgentOptions {
        kubernetes: "  gateway_api: {enabled: false}\n".to_string(),
        ..AgentOptions::default()
    };
    agent.reconfigure(&cluster, &off);
    let e = agent.wait_for(STORE, "drop the Gateway API series", |e| {
        e.series("hopwatch_kube_synced", &[("resource", "gateways")])
            .is_empty()
    });
    assert!(e.series("hopwatch_kube_resource_absent", &[]).is_empty());
    assert!(
        e.series(
            "hopwatch_kube_watch_restarts_total",
            &[("resource", "httproutes")]
        )
        .is_empty()
    );
    let before = lists(&cluster, "gateways");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lists(&cluster, "gateways"), before);
    assert_eq!(agent.readyz(), 200);
}
