//! Ingress discovery end to end: Ingress objects and their status, served by the fake API
//! server, become load-balancer and Ingress targets of `hopwatch run`; changing an Ingress
//! changes its targets, and deleting it removes them with every series they had.
//!
//! The load balancer is an HTTP server on a loopback address of the test's own /24, on port
//! 80 as a real one would be, so this test needs root (CI runs as root). Where the public
//! names must resolve, a DNS server on port 53 of the same /24 answers for them: every probe
//! stays on loopback.

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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use kube_support::dns::DnsServer;
use kube_support::{Agent, AgentOptions, Backend, Cluster, Net, probes, verdict_is};
use support::prom::Exposition;

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

/// The test Ingress for `/` with `status` and `annotations` as given.
fn ingress_with(status: Value, annotations: Value) -> Value {
    let mut ing = ingress(&["/"], Ipv4Addr::UNSPECIFIED);
    ing["status"] = status;
    ing["metadata"]["annotations"] = annotations;
    ing
}

fn lb_status(entries: Value) -> Value {
    json!({"loadBalancer": {"ingress": entries}})
}

/// The public DNS of the test's /24, on port 53 of `.60`, as the agent's resolv.conf names it.
fn public_dns(net: &Net) -> DnsServer {
    DnsServer::start(&[SocketAddr::from((net.ip(60), 53))])
}

/// An agent probing the edge every second, resolving public names with `dns`.
fn edge_agent(cluster: &Cluster, net: &Net) -> Agent {
    let options = AgentOptions {
        kubernetes: KUBERNETES.to_string(),
        public_nameserver: Some(net.ip(60)),
        ..AgentOptions::default()
    };
    Agent::start(cluster, &options)
}

/// Load-balancer probes of the test host with `result` since `before` (a previous count).
fn more(e: &Exposition, result: &str, before: f64) -> bool {
    probes(e, "loadbalancer", HOST, Some(result)) > before
}

#[test]
fn a_load_balancer_published_by_hostname_is_resolved_and_compared() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let lb_ip = net.ip(80);
    let _lb = LoadBalancer::start(lb_ip);
    let dns = public_dns(&net);
    dns.set("lb-1.elb.example.test.", &[lb_ip]);
    dns.set("shop.example.test.", &[lb_ip]);
    let mut objects = web.objects();
    let status = lb_status(json!([{"hostname": "lb-1.elb.example.test"}]));
    objects.push(ingress_with(status, json!({})));
    let cluster = Cluster::start(net, objects);
    let mut agent = edge_agent(&cluster, &net);

    // The status names the load balancer only by hostname: resolved, it is the address the
    // public name has, and it accepts the connection.
    let e = agent.wait_for(PROBE, "probe the load balancer by its hostname", |e| {
        more(e, "success", 0.0) && verdict_is(e, "shop", "web", "none")
    });
    assert_eq!(probes(&e, "loadbalancer", HOST, Some("config_error")), 0.0);
    assert_eq!(probes(&e, "loadbalancer", HOST, Some("dns_mismatch")), 0.0);
    // No status IP to dial: the Ingress hop resolves the public name, which leads there too.
    agent.wait_for(PROBE, "request the path through the public name", |e| {
        probes(e, "ingress", ROOT, Some("success")) >= 1.0
    });

    // The public name moves elsewhere: the comparison sees it.
    dns.set("shop.example.test.", &[net.ip(81)]);
    agent.wait_for(PROBE, "see the public name miss the load balancer", |e| {
        more(e, "dns_mismatch", 0.0) && verdict_is(e, "shop", "web", "loadbalancer")
    });
}

#[test]
fn a_cdn_in_front_is_expected_by_annotation_and_no_status_is_unknown() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let (lb_ip, cdn_ip) = (net.ip(80), net.ip(82));
    let _lb = LoadBalancer::start(lb_ip);
    let cdn = LoadBalancer::start(cdn_ip);
    let dns = public_dns(&net);
    dns.set("shop.example.test.", &[cdn_ip]);
    dns.set("edge-7.cdn.example.test.", &[cdn_ip]);
    let status = lb_status(json!([{"ip": lb_ip.to_string()}]));
    let mut objects = web.objects();
    objects.push(ingress_with(status.clone(), json!({})));
    let cluster = Cluster::start(net, objects);
    let mut agent = edge_agent(&cluster, &net);

    // Without the annotation the CDN answer is not the load balancer.
    agent.wait_for(PROBE, "see the CDN answer as a mismatch", |e| {
        more(e, "dns_mismatch", 0.0) && verdict_is(e, "shop", "web", "loadbalancer")
    });

    // The annotation names the CDN: the answer is what is expected, and the CDN is connected.
    let cdn_names =
        json!({"hopwatch.io/expected-addresses": "198.51.100.7, edge-7.cdn.example.test"});
    cluster
        .fake
        .replace(PATH, &ingress_with(status.clone(), cdn_names));
    let before = probes(&agent.scrape(), "loadbalancer", HOST, Some("success"));
    let e = agent.wait_for(PROBE, "accept the CDN by annotation", |e| {
        more(e, "success", before) && verdict_is(e, "shop", "web", "none")
    });
    let mismatches = probes(&e, "loadbalancer", HOST, Some("dns_mismatch"));
    std::thread::sleep(Duration::from_secs(2));
    let e = agent.scrape();
    assert_eq!(
        probes(&e, "loadbalancer", HOST, Some("dns_mismatch")),
        mismatches,
        "no mismatch while the public name resolves to the annotated CDN"
    );
    assert!(
        cdn.requests.load(Ordering::Relaxed) == 0,
        "the hop connects, it sends no request"
    );
    assert_eq!(e.value("hopwatch_invalid_annotations", &[]), 0.0);

    // A value that does not parse is counted, and leaves the hop unknown, not broken.
    let bad = json!({"hopwatch.io/expected-addresses": "198.51.100.7; cdn"});
    cluster.fake.replace(PATH, &ingress_with(status, bad));
    agent.wait_for(PROBE, "count the bad annotation", |e| {
        e.value("hopwatch_invalid_annotations", &[]) == 1.0 && more(e, "unknown", 0.0)
    });

    // No status at all, no annotation: unknown, and the verdict blames nothing. The status
    // is a subresource, replaced on its own as the Ingress controller would.
    let bare = ingress_with(json!({}), json!({}));
    cluster.fake.replace(PATH, &bare);
    cluster.fake.replace(&format!("{PATH}/status"), &bare);
    let e = agent.wait_for(PROBE, "judge the hop unknown", |e| {
        e.value("hopwatch_invalid_annotations", &[]) == 0.0
            && more(e, "unknown", 0.0)
            && verdict_is(e, "shop", "web", "none")
    });
    let unknown = probes(&e, "loadbalancer", HOST, Some("unknown"));
    let e = agent.wait_for(PROBE, "keep judging it unknown", |e| {
        more(e, "unknown", unknown)
    });
    assert!(verdict_is(&e, "shop", "web", "none"));
    let log = agent.log();
    assert!(
        log.contains(
            "Ingress shop/front: annotation hopwatch.io/expected-addresses: `198.51.100.7; cdn` \
             is neither an IP address nor a DNS name"
        ),
        "{log}"
    );
}

/// An HTTP "load balancer" on `ip:80` answering 200 to everything, keeping each request head.
fn recording_lb(ip: Ipv4Addr) -> Arc<std::sync::Mutex<Vec<String>>> {
    let listener = TcpListener::bind((ip, 80)).unwrap_or_else(|e| {
        panic!("cannot listen on {ip}:80 ({e}); this test needs root, as CI has")
    });
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            if let Ok(n @ 1..) = stream.read(&mut buf) {
                let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                seen.lock().unwrap().push(head);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        }
    });
    heads
}

#[test]
fn annotations_override_the_path_status_and_headers_and_a_bad_one_is_counted() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let lb_ip = net.ip(80);
    let heads = recording_lb(lb_ip);
    let status = lb_status(json!([{"ip": lb_ip.to_string()}]));
    let overrides = json!({
        "hopwatch.io/path": "/healthz?full=1",
        "hopwatch.io/expected-status": "204",
        "hopwatch.io/headers": "X-Probe: hopwatch\nAuthorization: Bearer s3cret",
    });
    let mut objects = web.objects();
    objects.push(ingress_with(status.clone(), overrides));
    let cluster = Cluster::start(net, objects);
    let options = AgentOptions {
        kubernetes: KUBERNETES.to_string(),
        ..AgentOptions::default()
    };
    let mut agent = Agent::start(&cluster, &options);

    // The annotated path is requested with the headers, and a 200 is not the annotated 204.
    const HEALTHZ: &str = "shop/front/shop.example.test/healthz?full=1";
    let e = agent.wait_for(PROBE, "request the annotated path", |e| {
        probes(e, "ingress", HEALTHZ, Some("http_status")) >= 1.0
    });
    assert_eq!(
        probes(&e, "ingress", ROOT, None),
        0.0,
        "the rule path is not requested"
    );
    assert_eq!(e.value("hopwatch_invalid_annotations", &[]), 0.0);
    let head = heads.lock().unwrap().first().cloned().unwrap_or_default();
    assert!(
        head.starts_with("get /healthz?full=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-probe: hopwatch\r\n"), "{head}");
    assert!(
        head.contains("\r\nauthorization: bearer s3cret\r\n"),
        "{head}"
    );

    // A status that does not parse: counted and logged, the rule probed with the defaults.
    let bad = json!({"hopwatch.io/expected-status": "2xx"});
    cluster.fake.replace(PATH, &ingress_with(status, bad));
    agent.wait_for(PROBE, "count the bad annotation and probe the rule", |e| {
        e.value("hopwatch_invalid_annotations", &[]) == 1.0
            && probes(e, "ingress", ROOT, Some("success")) >= 1.0
    });
    let log = agent.log();
    assert!(
        log.contains(
            "Ingress shop/front: annotation hopwatch.io/expected-status: `2xx` is not a status \
             code from 100 to 599 or a range such as 200-299; its rules are probed with the \
             configured settings until it is fixed"
        ),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "no header value is ever logged");
}
