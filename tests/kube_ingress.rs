//! Ingress discovery end to end: Ingress objects and their status, served by the fake API
//! server, become load-balancer and Ingress targets of `hopwatch run`; changing an Ingress
//! changes its targets, and deleting it removes them with every series they had.
//!
//! The load balancer is an HTTP server on a loopback address of the test's own /24, on port
//! 80 as a real one would be, so this test needs root (CI runs as root).

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
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use kube_support::{Agent, AgentOptions, Backend, Cluster, Net, probes};

const PROBE: Duration = Duration::from_secs(10);
const STORE: Duration = Duration::from_secs(3);

/// Edge probes every second; the public names resolve nowhere here, which the load-balancer
/// hop reports, while the Ingress hop dials the load balancer address directly.
const KUBERNETES: &str = "  ingress: {interval_seconds: 1, timeout_seconds: 0.8}\n";

/// An HTTP "load balancer" on `ip:80` answering 200 to everything; counts requests.
struct LoadBalancer {
    requests: Arc<AtomicUsize>,
}

impl LoadBalancer {
    fn start(ip: Ipv4Addr) -> LoadBalancer {
        let listener = TcpListener::bind((ip, 80)).unwrap_or_else(|e| {
            panic!("cannot listen on {ip}:80 ({e}); this test needs root, as CI has")
        });
        let requests = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                    count.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                }
            }
        });
        LoadBalancer { requests }
    }
}

fn ingress(paths: &[&str], lb: Ipv4Addr) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|p| {
            json!({"path": p, "pathType": "Prefix",
                   "backend": {"service": {"name": "web", "port": {"name": "http"}}}})
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": "shop", "name": "front"},
        "spec": {"rules": [{"host": "shop.example.test", "http": {"paths": paths}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": lb.to_string()}]}}
    })
}

const PATH: &str = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/front";
const ROOT: &str = "shop/front/shop.example.test/";
const API: &str = "shop/front/shop.example.test/api";
const HOST: &str = "shop/front/shop.example.test";

#[test]
fn ingresses_become_targets_follow_changes_and_leave_no_series_when_deleted() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let lb_ip = net.ip(80);
    let lb = LoadBalancer::start(lb_ip);
    let mut objects = web.objects();
    objects.push(ingress(&["/"], lb_ip));
    let cluster = Cluster::start(net, objects);
    let options = AgentOptions {
        kubernetes: KUBERNETES.to_string(),
        ..AgentOptions::default()
    };
    let mut agent = Agent::start(&cluster, &options);

    // Listed: one load-balancer target for the host, one Ingress target for the path, which
    // reaches the load balancer with Host set to the rule's host.
    let e = agent.wait_for(
        PROBE,
        "probe the Ingress path through the load balancer",
        |e| probes(e, "ingress", ROOT, Some("success")) >= 1.0,
    );
    assert_eq!(e.value("hopwatch_targets", &[("hop", "ingress")]), 1.0);
    assert_eq!(e.value("hopwatch_targets", &[("hop", "loadbalancer")]), 1.0);
    assert!(
        e.value(
            "hopwatch_http_responses_total",
            &[("target", ROOT), ("code", "200")]
        ) >= 1.0
    );
    assert!(lb.requests.load(Ordering::Relaxed) >= 1);
    let e = agent.wait_for(PROBE, "probe the load-balancer hop", |e| {
        probes(e, "loadbalancer", HOST, None) >= 1.0
    });
    assert_eq!(
        probes(&e, "loadbalancer", HOST, Some("success")),
        0.0,
        "the public name resolves nowhere in this test, so the hop must not pass"
    );

    // Changed: a second path becomes a second target.
    cluster.fake.replace(PATH, &ingress(&["/", "/api"], lb_ip));
    agent.wait_for(STORE, "add the /api path", |e| {
        e.value("hopwatch_targets", &[("hop", "ingress")]) == 2.0
    });
    agent.wait_for(PROBE, "probe the /api path", |e| {
        probes(e, "ingress", API, Some("success")) >= 1.0
    });

    // Deleted: every series of its targets goes.
    cluster.fake.delete(PATH);
    let e = agent.wait_for(STORE, "drop the Ingress targets", |e| {
        e.value("hopwatch_targets", &[("hop", "ingress")]) == 0.0
            && e.value("hopwatch_targets", &[("hop", "loadbalancer")]) == 0.0
    });
    let text = agent.text();
    let left: Vec<&str> = text.lines().filter(|l| l.contains("shop/front/")).collect();
    assert!(left.is_empty(), "series left behind: {left:#?}");
    assert!(
        probes(&e, "service", &web.target(), None) >= 1.0,
        "the Service hop goes on"
    );
}
