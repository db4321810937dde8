//! Kubernetes discovery end to end: `hopwatch run` against the fake API server, probing real
//! TCP listeners and a DNS server on loopback addresses that the Services and EndpointSlices
//! name as their ClusterIPs and pod IPs. Every check reads the agent's own `/metrics`.
//!
//! Each test has its own fake API server, listeners, DNS server and agent on a /24 of its own,
//! so the tests run in parallel. Probes run every second; the deadlines below leave room for a
//! loaded machine without sleeping for fixed times.

#[allow(
    unused_imports,
    reason = "the guard re-exports watch types this file does not use"
)]
mod fakeapi_support;
mod kube_support;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use kube_support::listen::Listener;
use kube_support::objects::{Service, Slice};
use kube_support::{
    Agent, AgentOptions, Backend, Cluster, DNS_NAME, NODES, Net, lines_naming, of_service,
    path_status, probes, series_set, verdict_is,
};
use support::prom::Exposition;

/// A change made through the API needs no probe to show: the watch event, the 200 ms settle
/// and one scrape, about 0.25 s here. The goal is one probe interval (1 s); the deadline is
/// two, for a loaded machine.
const STORE: Duration = Duration::from_secs(2);

/// A result that needs probes: up to two 1 s rounds after the change, plus the settle.
const PROBE: Duration = Duration::from_secs(8);

/// Reconnecting after the API server failed: the client retries a 503 after its `Retry-After`
/// (1 s), and the watcher backs off 0.8–1.6 s, then 1.6–3.2 s, … after a reset connection.
const RECONNECT: Duration = Duration::from_secs(15);

fn endpoints(e: &Exposition, ns: &str, svc: &str, condition: &str) -> Option<f64> {
    of_service(
        e,
        "hopwatch_service_endpoints",
        ns,
        svc,
        &[("condition", condition)],
    )
}

fn empty(e: &Exposition, ns: &str, svc: &str, reason: &str) -> Option<f64> {
    of_service(
        e,
        "hopwatch_service_empty_endpoints",
        ns,
        svc,
        &[("reason", reason)],
    )
}

fn transitions(e: &Exposition, ns: &str, svc: &str) -> Option<f64> {
    of_service(e, "hopwatch_endpoint_ready_transitions_total", ns, svc, &[])
}

fn unreachable(e: &Exposition, ns: &str, svc: &str) -> Option<f64> {
    of_service(e, "hopwatch_service_unreachable_endpoints", ns, svc, &[])
}

fn restarts(e: &Exposition, resource: &str) -> f64 {
    e.value(
        "hopwatch_kube_watch_restarts_total",
        &[("resource", resource)],
    )
}

fn synced(e: &Exposition, resource: &str) -> f64 {
    e.value("hopwatch_kube_synced", &[("resource", resource)])
}

fn targets(e: &Exposition, hop: &str) -> f64 {
    e.value("hopwatch_targets", &[("hop", hop)])
}

/// The target of the lookup of [`DNS_NAME`] through the kube-dns ClusterIP.
fn cluster_dns_target() -> String {
    format!("{DNS_NAME}@kube-dns")
}

/// Whether `web` is fully probed and healthy: ClusterIP and both pods connected, verdict none.
fn healthy(e: &Exposition, web: &Backend) -> bool {
    let target = web.target();
    probes(e, "service", &target, Some("success")) >= 1.0
        && probes(e, "pod", &target, Some("success")) >= 2.0
        && verdict_is(e, &web.service.namespace, &web.service.name, "none")
}

#[test]
fn lists_then_turns_ready_and_probes_every_hop() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    cluster.fake.unavailable(60.0);
    let mut agent = Agent::start(&cluster, &AgentOptions::default());

    // While the API server answers 503, nothing is listed and the agent is not ready.
    let refused = "GET /apis/discovery.k8s.io/v1/endpointslices?";
    cluster.fake.wait_until("a list refused", PROBE, |f| {
        f.log()
            .lines()
            .any(|l| l.contains(refused) && l.contains("\" 503 "))
    });
    assert_eq!(agent.readyz(), 503, "not ready before the first list");
    let e = agent.scrape();
    for resource in ["services", "endpointslices", "nodes"] {
        assert_eq!(synced(&e, resource), 0.0, "{resource}");
    }
    assert!(e.series("hopwatch_service_endpoints", &[]).is_empty());
    assert!(e.series("hopwatch_path_status", &[]).is_empty());

    cluster.fake.unavailable(0.0);
    agent.wait_ready(RECONNECT);
    // Readiness waits for Services and EndpointSlices only; Nodes are optional and may be
    // listed a moment later.
    let e = agent.scrape();
    for resource in ["services", "endpointslices"] {
        assert_eq!(synced(&e, resource), 1.0, "{resource}");
    }
    let e = agent.wait_for(PROBE, "list the Nodes", |e| synced(e, "nodes") == 1.0);
    assert_eq!(endpoints(&e, "shop", "web", "ready"), Some(2.0));
    assert_eq!(endpoints(&e, "shop", "web", "serving"), Some(2.0));
    assert_eq!(endpoints(&e, "shop", "web", "not_ready"), Some(0.0));
    assert_eq!(endpoints(&e, "shop", "web", "terminating"), Some(0.0));
    assert_eq!(empty(&e, "shop", "web", "no_endpoints"), None);
    assert_eq!(empty(&e, "shop", "web", "none_ready"), None);
    // Service and Pod hops of shop/web, kube-dns (its TCP port) and default/kubernetes; the
    // lookup through the kube-dns ClusterIP and through its one replica.
    assert_eq!(targets(&e, "service"), 3.0);
    assert_eq!(targets(&e, "pod"), 3.0);
    assert_eq!(targets(&e, "dns"), 2.0);

    let target = web.target();
    let dns = cluster_dns_target();
    let replica = format!("{DNS_NAME}@kube-dns-54");
    let e = agent.wait_for(PROBE, "probe every hop of shop/web", |e| {
        healthy(e, &web)
            && probes(e, "dns", &dns, Some("success")) >= 1.0
            && probes(e, "dns", &replica, Some("success")) >= 1.0
    });
    assert_eq!(
        probes(&e, "service", &target, None),
        probes(&e, "service", &target, Some("success")),
        "every connect to the ClusterIP worked"
    );
    assert_eq!(
        probes(&e, "pod", &target, None),
        probes(&e, "pod", &target, Some("success"))
    );
    for (ns, svc) in [("kube-system", "kube-dns"), ("default", "kubernetes")] {
        assert_eq!(
            path_status(&e, ns, svc),
            [("none".to_string(), 1.0)],
            "{ns}/{svc}"
        );
    }
    assert_eq!(unreachable(&e, "shop", "web"), Some(0.0));
    let vip = web.vip.as_ref().expect("web has a ClusterIP listener");
    assert!(
        vip.accepted() >= 1,
        "the ClusterIP listener saw the Service hop"
    );
    for pod in &web.pods {
        assert!(pod.accepted() >= 1, "{} saw the Pod hop", pod.addr());
    }
    assert!(cluster.dns.queries() >= 1);
    assert_eq!(
        synced(&e, "ingresses"),
        1.0,
        "Ingresses are listed too (the fake API serves them)"
    );
}

#[test]
fn services_and_slices_created_changed_and_deleted_show_within_an_interval() {
    let net = Net::new();
    let mut web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));

    // Created.
    let api = Backend::new(&net, "shop", "api", 12, &[23, 24]);
    let started = Instant::now();
    api.create(&cluster.fake);
    let e = agent.wait_for(STORE, "show the new Service shop/api", |e| {
        endpoints(e, "shop", "api", "ready") == Some(2.0)
            && path_status(e, "shop", "api").len() == 1
            && !e
                .series("hopwatch_probes_total", &[("target", &api.target())])
                .is_empty()
    });
    eprintln!("shop/api showed {:?} after its creation", started.elapsed());
    assert_eq!(targets(&e, "service"), 4.0);
    assert_eq!(targets(&e, "pod"), 4.0);

    // A slice changed: one endpoint added, one no longer ready.
    let port = web.pods[0].port();
    let added = Listener::on(net.ip(25), port);
    web.slice = web.slice.clone().endpoint(net.ip(25), true, NODES[2]);
    web.slice.set_ready(net.ip(22), false);
    cluster.fake.replace(&web.slice.path(), &web.slice.json());
    agent.wait_for(STORE, "count shop/web's changed endpoints", |e| {
        endpoints(e, "shop", "web", "ready") == Some(2.0)
            && endpoints(e, "shop", "web", "not_ready") == Some(1.0)
            && endpoints(e, "shop", "web", "serving") == Some(2.0)
    });
    agent.wait_for(PROBE, "connect to the added endpoint", |_| {
        added.accepted() >= 1
    });

    // A Service changed: shop/api moves to another port, so its target is another one.
    let old_target = api.target();
    let moved = Listener::on(net.ip(12), 0);
    let target_port = api.pods[0].port();
    let service =
        Service::cluster_ip("shop", "api", net.ip(12)).port("http", moved.port(), target_port);
    cluster.fake.replace(&service.path(), &service.json());
    let new_target = format!("shop/api:{}", moved.port());
    let e = agent.wait_for(STORE, "follow shop/api to its new port", |e| {
        !e.series("hopwatch_probes_total", &[("target", &new_target)])
            .is_empty()
            && e.series("hopwatch_probes_total", &[("target", &old_target)])
                .is_empty()
    });
    let text = agent.text();
    assert!(
        !text.contains(&format!("target=\"{old_target}\"")),
        "no series of the old port remains:\n{text}"
    );
    assert_eq!(targets(&e, "service"), 4.0);
    agent.wait_for(PROBE, "probe shop/api on its new port", |e| {
        probes(e, "service", &new_target, Some("success")) >= 1.0
    });

    // Deleted: no series of shop/api remains, anywhere in the exposition.
    cluster.fake.delete(&api.slice.path());
    cluster.fake.delete(&service.path());
    let started = Instant::now();
    agent.wait_for(STORE, "drop every series of shop/api", |e| {
        e.series("hopwatch_path_status", &[("service", "api")])
            .is_empty()
    });
    eprintln!(
        "shop/api's series went {:?} after its deletion",
        started.elapsed()
    );
    let text = agent.text();
    let left = lines_naming(&text, "shop", "api");
    assert!(left.is_empty(), "series of the deleted shop/api: {left:#?}");
    let e = agent.scrape();
    assert_eq!(targets(&e, "service"), 3.0);
    assert_eq!(targets(&e, "pod"), 3.0);
    assert!(verdict_is(&e, "shop", "web", "none"));
}

#[test]
fn a_service_without_ready_endpoints_is_reported_empty_with_the_reason() {
    let net = Net::new();
    // No endpoint at all: an empty slice, and no slice.
    let orphan = Service::cluster_ip("shop", "orphan", net.ip(13)).port("http", 80, 8080);
    let orphan_slice = Slice::new("shop", "orphan-k2j4x", "orphan").port("http", 8080);
    let lonely = Service::cluster_ip("shop", "lonely", net.ip(15)).port("http", 80, 8080);
    // Endpoints that exist but are not Ready yet.
    let mut starting = Backend::new(&net, "shop", "starting", 14, &[26, 27]);
    starting.slice.set_ready(net.ip(26), false);
    starting.slice.set_ready(net.ip(27), false);
    let mut objects = vec![orphan.json(), orphan_slice.json(), lonely.json()];
    objects.extend(starting.objects());
    let cluster = Cluster::start(net, objects);
    let mut agent = Agent::start(&cluster, &AgentOptions::default());

    let orphan_target = "shop/orphan:80";
    let e = agent.wait_for(PROBE, "report the empty Services", |e| {
        empty(e, "shop", "orphan", "no_endpoints") == Some(1.0)
            && empty(e, "shop", "lonely", "no_endpoints") == Some(1.0)
            && empty(e, "shop", "starting", "none_ready") == Some(1.0)
            && probes(e, "service", orphan_target, Some("refused")) >= 1.0
    });
    for svc in ["orphan", "lonely", "starting"] {
        assert!(
            verdict_is(&e, "shop", svc, "endpoints"),
            "shop/{svc}: {:?}",
            path_status(&e, "shop", svc)
        );
        assert_eq!(endpoints(&e, "shop", svc, "ready"), Some(0.0), "{svc}");
    }
    assert_eq!(empty(&e, "shop", "orphan", "none_ready"), None);
    assert_eq!(empty(&e, "shop", "starting", "no_endpoints"), None);
    assert_eq!(endpoints(&e, "shop", "starting", "not_ready"), Some(2.0));
    assert_eq!(
        probes(&e, "pod", orphan_target, None),
        0.0,
        "no endpoint, no Pod-hop connect"
    );

    // The pods turn Ready: the Service is no longer empty, and its hops work.
    starting.slice.set_ready(net.ip(26), true);
    starting.slice.set_ready(net.ip(27), true);
    cluster
        .fake
        .replace(&starting.slice.path(), &starting.slice.json());
    let e = agent.wait_for(STORE, "see shop/starting's endpoints ready", |e| {
        endpoints(e, "shop", "starting", "ready") == Some(2.0)
    });
    assert_eq!(empty(&e, "shop", "starting", "none_ready"), None);
    assert_eq!(empty(&e, "shop", "starting", "no_endpoints"), None);
    agent.wait_for(PROBE, "find nothing broken on shop/starting", |e| {
        healthy(e, &starting)
    });

    // Its only slice is deleted: no endpoints at all now.
    cluster.fake.delete(&starting.slice.path());
    let e = agent.wait_for(STORE, "report shop/starting without endpoints", |e| {
        empty(e, "shop", "starting", "no_endpoints") == Some(1.0)
    });
    assert!(verdict_is(&e, "shop", "starting", "endpoints"));
    assert_eq!(endpoints(&e, "shop", "starting", "ready"), Some(0.0));
}

#[test]
fn a_broken_clusterip_and_a_dead_pod_are_told_apart() {
    let net = Net::new();
    let mut api = Backend::new(&net, "shop", "api", 12, &[23, 24]);
    let mut web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    // Nothing listens at shop/api's ClusterIP: this node's kube-proxy lost it.
    api.vip = None;
    let mut objects = api.objects();
    objects.extend(web.objects());
    let cluster = Cluster::start(net, objects);
    let mut agent = Agent::start(&cluster, &AgentOptions::default());

    let (api_target, web_target) = (api.target(), web.target());
    let e = agent.wait_for(PROBE, "find shop/api's ClusterIP refusing", |e| {
        probes(e, "service", &api_target, Some("refused")) >= 1.0
            && probes(e, "pod", &api_target, Some("success")) >= 2.0
            && healthy(e, &web)
    });
    assert!(
        verdict_is(&e, "shop", "api", "service"),
        "{:?}",
        path_status(&e, "shop", "api")
    );
    assert_eq!(unreachable(&e, "shop", "api"), Some(0.0), "its pods answer");
    assert_eq!(probes(&e, "service", &api_target, Some("success")), 0.0);

    // One of shop/web's pods dies while its endpoint stays Ready.
    let port = web.pods[1].port();
    drop(web.pods.remove(1));
    let e = agent.wait_for(PROBE, "find shop/web's dead pod", |e| {
        verdict_is(e, "shop", "web", "pod") && probes(e, "pod", &web_target, Some("refused")) >= 1.0
    });
    assert_eq!(unreachable(&e, "shop", "web"), Some(1.0));
    assert_eq!(endpoints(&e, "shop", "web", "ready"), Some(2.0));
    assert!(
        verdict_is(&e, "shop", "api", "service"),
        "shop/api is still judged on its own"
    );

    // It comes back.
    web.pods.push(Listener::on(net.ip(22), port));
    let e = agent.wait_for(PROBE, "see shop/web whole again", |e| {
        verdict_is(e, "shop", "web", "none")
    });
    assert_eq!(unreachable(&e, "shop", "web"), Some(0.0));
}

#[test]
fn readiness_flapping_is_counted_per_flip() {
    let net = Net::new();
    let mut web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    let e = agent.wait_for(STORE, "list shop/web", |e| {
        endpoints(e, "shop", "web", "ready") == Some(2.0)
    });
    assert_eq!(transitions(&e, "shop", "web"), Some(0.0), "no flip yet");

    const FLIPS: u32 = 6;
    for i in 0..FLIPS {
        web.slice.set_ready(net.ip(22), i % 2 == 1);
        cluster.fake.replace(&web.slice.path(), &web.slice.json());
    }
    let e = agent.wait_for(STORE, "count every flip", |e| {
        transitions(e, "shop", "web") == Some(f64::from(FLIPS))
    });
    assert_eq!(endpoints(&e, "shop", "web", "ready"), Some(2.0));

    // A new endpoint is not a flip.
    let _added = Listener::on(net.ip(23), web.pods[0].port());
    web.slice = web.slice.clone().endpoint(net.ip(23), true, NODES[2]);
    cluster.fake.replace(&web.slice.path(), &web.slice.json());
    let e = agent.wait_for(STORE, "count the added endpoint", |e| {
        endpoints(e, "shop", "web", "ready") == Some(3.0)
    });
    assert_eq!(transitions(&e, "shop", "web"), Some(f64::from(FLIPS)));
    // Two endpoints flipping in one update are two transitions.
    web.slice.set_ready(net.ip(21), false);
    web.slice.set_ready(net.ip(23), false);
    cluster.fake.replace(&web.slice.path(), &web.slice.json());
    agent.wait_for(STORE, "count two flips in one update", |e| {
        transitions(e, "shop", "web") == Some(f64::from(FLIPS + 2))
    });
}

#[test]
fn an_untimed_service_hop_is_counted_without_a_histogram() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let options = AgentOptions {
        service_histogram: false,
        ..AgentOptions::default()
    };
    let mut agent = Agent::start(&cluster, &options);
    let e = agent.wait_for(PROBE, "probe every hop of shop/web", |e| healthy(e, &web));
    let durations = |hop: &str| e.series("hopwatch_probe_duration_seconds_count", &[("hop", hop)]);
    assert_eq!(durations("service").len(), 0, "no Service-hop histogram");
    assert!(!durations("pod").is_empty(), "the Pod hop stays timed");
    assert!(
        !e.series(
            "hopwatch_dns_lookup_duration_seconds_count",
            &[("mode", "search")]
        )
        .is_empty(),
        "and the DNS hop, in its own family"
    );
    assert_eq!(durations("dns").len(), 0, "timed once, not twice");
    assert!(probes(&e, "service", &web.target(), Some("success")) >= 1.0);
}

/// List requests (not watches) of `path` the fake API server has answered.
fn lists(cluster: &Cluster, path: &str) -> usize {
    let request = format!("\"GET {path}?");
    cluster
        .fake
        .log()
        .lines()
        .filter(|l| l.contains(&request) && !l.contains("watch="))
        .count()
}

#[test]
fn a_reload_applies_new_selection_and_timing_without_relisting() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    agent.wait_for(PROBE, "probe every hop of shop/web", |e| healthy(e, &web));
    let listed = lists(&cluster, "/api/v1/services");
    assert!(
        listed >= 1,
        "the services were listed:\n{}",
        cluster.fake.log()
    );

    let options = AgentOptions {
        services: Some("    exclude_namespaces: [shop]\n".to_string()),
        service_histogram: false,
        ..AgentOptions::default()
    };
    agent.reconfigure(&cluster, &options);
    let e = agent.wait_for(PROBE, "drop shop/web and the Service-hop histogram", |e| {
        e.series("hopwatch_probes_total", &[("target", &web.target())])
            .is_empty()
            && e.series(
                "hopwatch_probe_duration_seconds_count",
                &[("hop", "service")],
            )
            .is_empty()
    });
    assert_eq!(
        targets(&e, "service"),
        2.0,
        "kube-dns and kubernetes stay probed"
    );
    assert_eq!(
        lists(&cluster, "/api/v1/services"),
        listed,
        "selection and timing come from the stores already held: no relist"
    );
}

#[test]
fn only_selected_services_have_series() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let mut private = Backend::new(&net, "shop", "private", 12, &[23]);
    private.service = private
        .service
        .clone()
        .label("team", "shop")
        .annotation("hopwatch.io/probe", "false");
    let ip = net.ip(40);
    let ignored = [
        Service::cluster_ip("shop", "batch", ip)
            .label("team", "shop")
            .label("tier", "batch"),
        Service::cluster_ip("shop", "unlabelled", ip),
        Service::cluster_ip("internal", "vault", ip).label("team", "infra"),
        Service::cluster_ip("kube-system", "metrics-server", ip).label("team", "infra"),
        Service::external_name("shop", "alias", "db.example.com").label("team", "shop"),
    ];
    let mut objects = web.objects();
    objects[0] = web.service.clone().label("team", "shop").json();
    objects.extend(private.objects());
    for svc in &ignored {
        let svc = svc.clone().port("http", 80, 8080);
        objects.push(svc.json());
        let slice = Slice::new(&svc.namespace, &format!("{}-q8v2n", svc.name), &svc.name)
            .port("http", 8080)
            .endpoint(net.ip(41), true, NODES[1]);
        objects.push(slice.json());
    }
    let cluster = Cluster::start(net, objects);
    let options = AgentOptions {
        services: Some(
            "    exclude_namespaces: [internal, kube-system]\n    \
             label_selector: \"team,tier notin (batch)\"\n"
                .to_string(),
        ),
        ..AgentOptions::default()
    };
    let mut agent = Agent::start(&cluster, &options);
    agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));

    let text = agent.text();
    let e = agent.scrape();
    for svc in ignored.iter().chain([&private.service]) {
        let left = lines_naming(&text, &svc.namespace, &svc.name);
        assert!(
            left.is_empty(),
            "{}/{} is not selected: {left:#?}",
            svc.namespace,
            svc.name
        );
    }
    // Always probed, although kube-system is excluded and neither has the `team` label.
    for (ns, svc) in [("kube-system", "kube-dns"), ("default", "kubernetes")] {
        assert_eq!(
            path_status(&e, ns, svc).len(),
            1,
            "{ns}/{svc} is always probed"
        );
        assert_eq!(endpoints(&e, ns, svc, "ready"), Some(1.0), "{ns}/{svc}");
    }
    assert_eq!(
        targets(&e, "service"),
        3.0,
        "shop/web, kube-dns, kubernetes"
    );

    // Opting out and back in takes effect without a restart.
    let opt =
        |value: &str| json!({ "metadata": { "annotations": { "hopwatch.io/probe": value } } });
    cluster.fake.patch(&web.service.path(), &opt("false"));
    cluster.fake.patch(&private.service.path(), &opt("true"));
    let e = agent.wait_for(STORE, "follow the opt-out and the opt-in", |e| {
        path_status(e, "shop", "web").is_empty() && path_status(e, "shop", "private").len() == 1
    });
    let text = agent.text();
    let left = lines_naming(&text, "shop", "web");
    assert!(left.is_empty(), "shop/web opted out: {left:#?}");
    assert_eq!(endpoints(&e, "shop", "private", "ready"), Some(1.0));
    agent.wait_for(PROBE, "probe shop/private", |e| healthy_one(e, &private));
}

/// A Namespace manifest with `labels`.
fn namespace(name: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name, "labels": labels } })
}

#[test]
fn a_namespace_selector_probes_only_the_labelled_namespaces() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cart = Backend::new(&net, "lab", "cart", 12, &[23]);
    let mut objects = web.objects();
    objects.extend(cart.objects());
    objects.push(namespace("shop", json!({ "team": "shop" })));
    objects.push(namespace("lab", json!({ "team": "lab" })));
    let cluster = Cluster::start(net, objects);
    let options = AgentOptions {
        services: Some("    namespace_selector: \"team in (shop)\"\n".to_string()),
        ..AgentOptions::default()
    };
    let mut agent = Agent::start(&cluster, &options);
    let e = agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));
    let left = lines_naming(&agent.text(), "lab", "cart");
    assert!(left.is_empty(), "lab is not labelled team=shop: {left:#?}");
    assert_eq!(
        targets(&e, "service"),
        3.0,
        "shop/web, and kube-dns and kubernetes, always probed"
    );

    // Relabelled: shop leaves the selector, lab enters it, without a restart.
    let team = |value: &str| json!({ "metadata": { "labels": { "team": value } } });
    cluster.fake.patch("/api/v1/namespaces/shop", &team("web"));
    cluster.fake.patch("/api/v1/namespaces/lab", &team("shop"));
    agent.wait_for(STORE, "follow the namespaces' labels", |e| {
        path_status(e, "shop", "web").is_empty() && path_status(e, "lab", "cart").len() == 1
    });
    let left = lines_naming(&agent.text(), "shop", "web");
    assert!(left.is_empty(), "shop/web's series are gone: {left:#?}");
    agent.wait_for(PROBE, "probe lab/cart", |e| healthy_one(e, &cart));
}

/// Like [`healthy`], for a Service with one endpoint.
fn healthy_one(e: &Exposition, backend: &Backend) -> bool {
    let target = backend.target();
    probes(e, "service", &target, Some("success")) >= 1.0
        && probes(e, "pod", &target, Some("success")) >= 1.0
        && verdict_is(e, &backend.service.namespace, &backend.service.name, "none")
}

/// The series that must survive a relist unchanged.
const KEPT: [&str; 6] = [
    "hopwatch_service_endpoints",
    "hopwatch_path_status",
    "hopwatch_service_unreachable_endpoints",
    "hopwatch_endpoint_ready_transitions_total",
    "hopwatch_targets",
    "hopwatch_probes_total",
];

#[test]
fn a_watch_expired_by_compaction_is_relisted_without_losing_series() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    // No bookmarks: they would move the watchers' resourceVersion past the compaction.
    let builder = fakeapi_support::FakeApi::builder().bookmark_interval(3600.0);
    let cluster = Cluster::start_with(net, web.objects(), builder);
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    let before = agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));
    let kept = series_set(&before, &KEPT);
    let target = web.target();
    let connects = probes(&before, "service", &target, Some("success"));

    // A write to a kind hopwatch does not watch leaves every watcher behind; compacting makes
    // their resourceVersion too old, and cutting the watches makes them resume from it.
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "strand"}});
    cluster.fake.create("/api/v1/namespaces", &namespace);
    cluster.fake.compact();
    cluster.fake.drop_watches();

    let e = agent.wait_for(RECONNECT, "restart the expired watches", |e| {
        ["services", "endpointslices", "nodes"]
            .iter()
            .all(|r| restarts(e, r) > restarts(&before, r))
    });
    assert_eq!(
        endpoints(&e, "shop", "web", "ready"),
        Some(2.0),
        "the cache is kept"
    );
    agent.wait_for(PROBE, "keep probing the cached targets", |e| {
        probes(e, "service", &target, Some("success")) > connects
    });
    // The relisted watches see changes again.
    let api = Backend::new(&net, "shop", "api", 12, &[23, 24]);
    api.create(&cluster.fake);
    let after = agent.wait_for(RECONNECT, "see a Service created after the relist", |e| {
        endpoints(e, "shop", "api", "ready") == Some(2.0)
    });
    let after_set = series_set(&after, &KEPT);
    let api_series: BTreeSet<String> = after_set
        .iter()
        .filter(|s| s.contains("\"api\"") || s.contains("shop/api:"))
        .cloned()
        .collect();
    let rest: BTreeSet<String> = after_set.difference(&api_series).cloned().collect();
    let lost: Vec<&String> = kept.difference(&rest).collect();
    let extra: Vec<&String> = rest.difference(&kept).collect();
    assert!(lost.is_empty(), "series lost over the relist: {lost:#?}");
    assert!(extra.is_empty(), "series added over the relist: {extra:#?}");
    assert_eq!(
        path_status(&after, "shop", "web").len(),
        1,
        "one verdict per Service"
    );
    assert_eq!(
        transitions(&after, "shop", "web"),
        Some(0.0),
        "a relist is not a flip"
    );
    assert!(verdict_is(&after, "shop", "web", "none"));
}

#[test]
fn an_api_outage_keeps_probing_and_catches_up_afterwards() {
    let net = Net::new();
    let mut web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    let before = agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));
    let target = web.target();

    // The API server resets every connection for 2 s, as one that is restarting would.
    let outage = Instant::now();
    cluster.fake.unavailable_reset(2.0);
    // Changes made while no client can read them: a new Service, and a pod not ready.
    let api = Backend::new(&net, "shop", "api", 12, &[23, 24]);
    web.slice.set_ready(net.ip(22), false);
    let mut changes = api.objects();
    changes.push(web.slice.json());
    cluster.fake.load(&kube_support::objects::list(changes));

    // Probing goes on from the cached targets, and the agent stays ready.
    let connects = probes(&before, "pod", &target, None);
    let e = agent.wait_for(PROBE, "keep probing and count the failed watches", |e| {
        probes(e, "pod", &target, None) >= connects + 2.0
            && restarts(e, "services") > restarts(&before, "services")
            && restarts(e, "endpointslices") > restarts(&before, "endpointslices")
    });
    assert_eq!(
        endpoints(&e, "shop", "web", "ready"),
        Some(2.0),
        "the cache"
    );
    assert_eq!(agent.readyz(), 200, "a listed cache stays ready");
    eprintln!("probed on during the outage, {:?} in", outage.elapsed());

    let e = agent.wait_for(RECONNECT, "catch up after the outage", |e| {
        endpoints(e, "shop", "api", "ready") == Some(2.0)
            && endpoints(e, "shop", "web", "ready") == Some(1.0)
    });
    eprintln!("caught up {:?} after the outage began", outage.elapsed());
    assert_eq!(endpoints(&e, "shop", "web", "not_ready"), Some(1.0));
    assert_eq!(transitions(&e, "shop", "web"), Some(1.0));
    agent.wait_for(PROBE, "probe the new Service", |e| healthy(e, &api));
}

#[test]
fn each_service_ports_endpoints_are_probed_by_exactly_one_node_with_pod_probe_nodes_1() {
    let net = Net::new();
    let backends: Vec<Backend> = (0..9u8)
        .map(|i| Backend::new(&net, "shop", &format!("s{i}"), 11 + i, &[31 + i]))
        .collect();
    let objects = backends.iter().flat_map(Backend::objects).collect();
    let cluster = Cluster::start(net, objects);
    let mut agents: Vec<Agent> = NODES
        .iter()
        .map(|node| {
            let options = AgentOptions {
                node: node.to_string(),
                pod_probe_nodes: 1,
                ..AgentOptions::default()
            };
            Agent::start(&cluster, &options)
        })
        .collect();

    // Until every endpoint has been probed by someone, and every ClusterIP by everyone.
    let give_up = Instant::now() + PROBE;
    loop {
        let scrapes: Vec<Exposition> = agents.iter_mut().map(Agent::scrape).collect();
        let done = backends.iter().all(|b| {
            let t = b.target();
            scrapes.iter().any(|e| probes(e, "pod", &t, None) >= 1.0)
                && scrapes
                    .iter()
                    .all(|e| probes(e, "service", &t, Some("success")) >= 1.0)
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "not every endpoint was probed within {PROBE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two more rounds on every agent, so that a second prober would have shown by now.
    let rounds: Vec<Vec<f64>> = agents
        .iter_mut()
        .map(|a| service_rounds(&a.scrape(), &backends))
        .collect();
    let scrapes: Vec<Exposition> = agents
        .iter_mut()
        .zip(&rounds)
        .map(|(agent, before)| {
            agent.wait_for(PROBE, "probe every ClusterIP twice more", |e| {
                let now = service_rounds(e, &backends);
                now.iter().zip(before).all(|(n, b)| *n >= b + 2.0)
            })
        })
        .collect();
    let mut per_node = [0usize; 3];
    for b in &backends {
        let t = b.target();
        let probers: Vec<&str> = NODES
            .iter()
            .zip(&scrapes)
            .filter(|(_, e)| probes(e, "pod", &t, None) > 0.0)
            .map(|(n, _)| *n)
            .collect();
        // A Service port's endpoints go to their nodes together.
        let expected: Vec<&str> = NODES
            .iter()
            .copied()
            .filter(|n| hopwatch::discovery::rendezvous::chosen(n, &t, &NODES, 1))
            .collect();
        assert_eq!(probers, expected, "{t}: probed by {probers:?}");
        for (i, n) in NODES.iter().enumerate() {
            per_node[i] += usize::from(probers.contains(n));
        }
        assert!(b.pods[0].accepted() >= 1, "{t}'s pod saw its connects");
        for e in &scrapes {
            assert!(verdict_is(e, "shop", &b.service.name, "none"), "{t}");
        }
    }
    assert_eq!(per_node.iter().sum::<usize>(), backends.len());
    eprintln!("endpoints per node: {per_node:?}");
}

/// Service-hop attempts per backend: one per round.
fn service_rounds(e: &Exposition, backends: &[Backend]) -> Vec<f64> {
    backends
        .iter()
        .map(|b| probes(e, "service", &b.target(), None))
        .collect()
}

#[test]
fn a_headless_service_is_checked_against_its_dns_answer() {
    let net = Net::new();
    let mut db = Backend::headless(&net, "shop", "db", &[31, 32]);
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let mut objects = db.objects();
    objects.extend(web.objects());
    let cluster = Cluster::start(net, objects);
    let fqdn = "db.shop.svc.cluster.local.";
    cluster.dns.set(fqdn, &[net.ip(31), net.ip(32)]);
    let mut agent = Agent::start(&cluster, &AgentOptions::default());

    let e = agent.wait_for(PROBE, "check shop/db's DNS answer", |e| {
        probes(e, "dns", "shop/db", Some("success")) >= 1.0
            && probes(e, "pod", &db.target(), Some("success")) >= 2.0
            && verdict_is(e, "shop", "db", "none")
    });
    assert!(
        !e.series(
            "hopwatch_dns_lookups_total",
            &[("target", "shop/db"), ("server", "kube-dns")]
        )
        .is_empty(),
        "the headless lookup goes through the kube-dns ClusterIP"
    );
    assert!(
        e.series(
            "hopwatch_probes_total",
            &[("hop", "service"), ("target", &db.target())]
        )
        .is_empty(),
        "no ClusterIP, no Service hop"
    );

    // DNS answers with an address that is not an endpoint.
    cluster.dns.set(fqdn, &[net.ip(31), net.ip(33)]);
    let e = agent.wait_for(PROBE, "find shop/db's DNS answer wrong", |e| {
        probes(e, "dns", "shop/db", Some("dns_mismatch")) >= 1.0
            && verdict_is(e, "shop", "db", "dns")
    });
    assert!(
        verdict_is(&e, "shop", "web", "none"),
        "only shop/db is affected"
    );

    // DNS is right again; then an endpoint stops being Ready while DNS still returns it.
    cluster.dns.set(fqdn, &[net.ip(31), net.ip(32)]);
    agent.wait_for(PROBE, "see shop/db's DNS agree again", |e| {
        verdict_is(e, "shop", "db", "none")
    });
    let mismatches = probes(&agent.scrape(), "dns", "shop/db", Some("dns_mismatch"));
    db.slice.set_ready(net.ip(32), false);
    cluster.fake.replace(&db.slice.path(), &db.slice.json());
    agent.wait_for(PROBE, "compare DNS with the endpoints now Ready", |e| {
        probes(e, "dns", "shop/db", Some("dns_mismatch")) > mismatches
            && verdict_is(e, "shop", "db", "dns")
    });
    cluster.dns.set(fqdn, &[net.ip(31)]);
    agent.wait_for(PROBE, "see DNS follow the endpoints", |e| {
        verdict_is(e, "shop", "db", "none")
    });
}

#[test]
fn a_kubeconfig_unreadable_at_start_is_retried_until_it_reads() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let path = cluster.fake.kubeconfig().to_path_buf();
    let whole = std::fs::read_to_string(&path).expect("read the fake's kubeconfig");
    // Half written, as a kubeconfig rewritten in place is for a moment.
    std::fs::write(&path, &whole[..whole.len() / 2]).expect("truncate the kubeconfig");
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    let failing = |e: &Exposition| e.value("hopwatch_kube_client_errors_total", &[]);
    let e = agent.wait_for(RECONNECT, "count the failed client builds", |e| {
        failing(e) >= 2.0
    });
    assert_eq!(synced(&e, "services"), 0.0);
    assert_eq!(agent.readyz(), 503, "ready without a listed cluster");

    std::fs::write(&path, &whole).expect("restore the kubeconfig");
    agent.wait_ready(RECONNECT);
    let e = agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));
    let after = failing(&e);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        failing(&agent.scrape()),
        after,
        "no failed build once the client is up"
    );
}

#[test]
fn a_reload_to_an_unreadable_kubeconfig_keeps_the_running_watches() {
    let net = Net::new();
    let web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &AgentOptions::default());
    agent.wait_ready(RECONNECT);
    agent.wait_for(PROBE, "probe shop/web", |e| healthy(e, &web));
    let failing = |e: &Exposition| e.value("hopwatch_kube_client_errors_total", &[]);
    let before = agent.scrape();
    let target = web.target();
    let connects = probes(&before, "pod", &target, None);
    // The new config names a kubeconfig that is not there yet.
    let missing = AgentOptions {
        kubeconfig: Some("/nonexistent/hopwatch-kubeconfig".into()),
        ..AgentOptions::default()
    };
    agent.reconfigure(&cluster, &missing);
    let e = agent.wait_for(RECONNECT, "count the failed client and keep probing", |e| {
        failing(e) >= 1.0 && probes(e, "pod", &target, None) >= connects + 2.0
    });
    assert_eq!(synced(&e, "services"), 1.0, "the running watches stay");
    assert_eq!(agent.readyz(), 200, "still ready on the running watches");
}
