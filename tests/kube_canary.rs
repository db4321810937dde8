//! The canary through the binary: `hopwatch run` against the fake API server, with
//! `canary.service` naming a Service of its own, judges every broken Service against the
//! canary's path (`hopwatch_path_cause`) as it breaks and heals. Real TCP listeners on loopback
//! stand in for ClusterIPs and pods; dropping a ClusterIP's listener breaks its Service hop.

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

use std::time::Duration;

use kube_support::{Agent, AgentOptions, Backend, Cluster, Net, verdict_is};
use support::prom::Exposition;

/// Up to a few 1 s probe rounds after a change, plus the settle, on a loaded machine.
const PROBE: Duration = Duration::from_secs(8);

const CANARY: (&str, &str) = ("hopwatch", "hopwatch-canary");

/// The `cause` of the Service's `hopwatch_path_cause` series at 1; `None` without one.
fn cause(e: &Exposition, (namespace, service): (&str, &str)) -> Option<String> {
    let labels = [("namespace", namespace), ("service", service)];
    let series = e.series("hopwatch_path_cause", &labels);
    let ones: Vec<_> = series.iter().filter(|s| s.value == 1.0).collect();
    assert!(ones.len() <= 1, "more than one cause: {ones:?}");
    ones.first()
        .map(|s| s.label("cause").unwrap_or("?").to_string())
}

fn canary_path(e: &Exposition) -> Vec<String> {
    e.series("hopwatch_canary_path_status", &[])
        .iter()
        .filter(|s| s.value == 1.0)
        .map(|s| s.label("broken_hop").unwrap_or("?").to_string())
        .collect()
}

fn options() -> AgentOptions {
    AgentOptions {
        top_level: "canary:\n  service: hopwatch/hopwatch-canary\n".to_string(),
        ..AgentOptions::default()
    }
}

#[test]
fn a_broken_service_is_application_until_the_canary_breaks_at_the_same_hop() {
    let net = Net::new();
    let mut canary = Backend::new(&net, CANARY.0, CANARY.1, 12, &[23]);
    let mut web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    let mut objects = canary.objects();
    objects.extend(web.objects());
    let cluster = Cluster::start(net, objects);
    let mut agent = Agent::start(&cluster, &options());

    let e = agent.wait_for(PROBE, "see the canary and shop/web healthy", |e| {
        canary_path(e) == ["none"]
            && verdict_is(e, "shop", "web", "none")
            && verdict_is(e, CANARY.0, CANARY.1, "none")
    });
    assert!(
        e.series("hopwatch_path_cause", &[]).is_empty(),
        "healthy: no cause"
    );

    // shop/web's ClusterIP stops answering; the canary's still does: the application's fault.
    web.vip = None;
    let e = agent.wait_for(PROBE, "judge shop/web's broken ClusterIP", |e| {
        verdict_is(e, "shop", "web", "service")
    });
    assert_eq!(cause(&e, ("shop", "web")).as_deref(), Some("application"));
    assert_eq!(cause(&e, CANARY), None);
    assert_eq!(canary_path(&e), ["none"]);

    // The canary's ClusterIP breaks too, at the same hop: the infrastructure's fault, for both.
    canary.vip = None;
    let e = agent.wait_for(PROBE, "see the canary broken at the Service hop", |e| {
        canary_path(e) == ["service"]
    });
    assert_eq!(
        cause(&e, ("shop", "web")).as_deref(),
        Some("infrastructure")
    );
    assert_eq!(cause(&e, CANARY).as_deref(), Some("infrastructure"));
    drop(cluster);
}

#[test]
fn a_canary_that_is_not_probed_makes_every_cause_unknown() {
    let net = Net::new();
    let mut web = Backend::new(&net, "shop", "web", 11, &[21, 22]);
    web.vip = None;
    let cluster = Cluster::start(net, web.objects());
    let mut agent = Agent::start(&cluster, &options());
    let e = agent.wait_for(PROBE, "judge shop/web without a canary", |e| {
        verdict_is(e, "shop", "web", "service")
    });
    assert_eq!(cause(&e, ("shop", "web")).as_deref(), Some("unknown"));
    assert_eq!(canary_path(&e), ["unknown"]);
}
