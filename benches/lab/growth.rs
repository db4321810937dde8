//! Cost as the cluster grows, from the target-selection code: a fixed set of Services, more and
//! more nodes, and what one agent probes per minute and exports. `discovery::targets::derive`
//! runs on synthetic stores for a sample of nodes; the series are counted from a real
//! `Metrics` after one round of every target and the readiness and verdict series of every
//! Service, with the Service hop timed (the default) and untimed
//! (`kubernetes.connect.service_histogram: false`).

use std::time::{Duration, Instant};

use hopwatch::discovery::targets::{Derived, Settings, derive};
use hopwatch::metrics::Metrics;
use hopwatch::probe::tcp::Connect;
use hopwatch::probe::{Detail, Hop, Outcome, TargetKey};
use hopwatch::verdict::{BrokenHop, ServiceVerdict};

use crate::common::{self, Shape};

/// The default connect interval (`kubernetes.connect.interval_seconds`).
const CONNECT_INTERVAL: Duration = Duration::from_secs(15);

/// One node's share.
struct NodeCost {
    service_connects: usize,
    pod_connects: usize,
    series: usize,
    /// With `service_histogram: false`.
    series_untimed: usize,
    derive: Duration,
}

/// Prints the table for `services` Services × `ports` ports × `endpoints` endpoints.
pub fn run(services: usize, ports: usize, endpoints: usize, node_counts: &[usize], k: usize) {
    println!(
        "## Cost per node as the cluster grows: {services} Services × {ports} TCP ports × {endpoints} ready endpoints, pod_probe_nodes {k}\n"
    );
    println!("{}\n", common::machine());
    println!(
        "| nodes | Service-hop connects / node / min | Pod-hop connects / node / min (mean, max) | expected Pod-hop (endpoints·ports·k/nodes) | series / agent (mean) | without the Service-hop histogram | derive time / change |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &nodes in node_counts {
        let stores = common::stores(Shape {
            services,
            ports,
            endpoints,
            nodes,
        });
        let settings = Settings {
            pod_probe_nodes: k,
            ..Settings::default()
        };
        let sample: Vec<usize> = (0..nodes).step_by((nodes / 12).max(1)).take(12).collect();
        let costs: Vec<NodeCost> = sample
            .iter()
            .map(|n| cost(&stores, &settings, &common::node_name(*n)))
            .collect();
        print_row(nodes, services * ports * endpoints, k, &costs);
    }
    println!();
}

fn print_row(nodes: usize, endpoint_ports: usize, k: usize, costs: &[NodeCost]) {
    let per_min = 60.0 / CONNECT_INTERVAL.as_secs_f64();
    let mean = |f: fn(&NodeCost) -> usize| {
        costs.iter().map(f).sum::<usize>() as f64 / costs.len().max(1) as f64
    };
    let max_pod = costs.iter().map(|c| c.pod_connects).max().unwrap_or(0);
    let expected = endpoint_ports as f64 * k.min(nodes) as f64 / nodes as f64;
    let mut derive: Vec<Duration> = costs.iter().map(|c| c.derive).collect();
    derive.sort();
    println!(
        "| {nodes} | {:.0} | {:.0}, {:.0} | {:.0} | {:.0} | {:.0} | {} ms |",
        mean(|c| c.service_connects) * per_min,
        mean(|c| c.pod_connects) * per_min,
        max_pod as f64 * per_min,
        expected * per_min,
        mean(|c| c.series),
        mean(|c| c.series_untimed),
        common::ms(derive[derive.len() / 2]),
    );
}

fn cost(stores: &hopwatch::discovery::store::Stores, settings: &Settings, node: &str) -> NodeCost {
    let start = Instant::now();
    let derived = derive(stores, settings, node);
    let took = start.elapsed();
    NodeCost {
        service_connects: derived.services.len(),
        pod_connects: derived.pods.iter().map(|p| p.endpoints.len()).sum(),
        series: series(&derived, true),
        series_untimed: series(&derived, false),
        derive: took,
    }
}

/// The sample lines an agent with these targets exports after one round of each; `timed`:
/// whether the Service hop is timed.
fn series(derived: &Derived, timed: bool) -> usize {
    let metrics = Metrics::new();
    metrics.set_timed(Hop::Service, timed);
    let round = |n: usize| Outcome {
        result: Ok(()),
        duration: Duration::from_micros(200),
        detail: Detail::Connects(vec![
            Connect {
                result: Ok(()),
                duration: Duration::from_micros(200),
            };
            n
        ]),
    };
    for s in &derived.services {
        let key = TargetKey {
            hop: Hop::Service,
            id: s.id.clone(),
        };
        metrics.start(&key);
        metrics.record(&key, &round(1));
    }
    for p in &derived.pods {
        let key = TargetKey {
            hop: Hop::Pod,
            id: p.id.clone(),
        };
        metrics.start(&key);
        metrics.record(&key, &round(p.endpoints.len()));
    }
    let verdict = ServiceVerdict {
        broken: BrokenHop::None,
        unreachable: 0,
    };
    for (svc, readiness) in &derived.readiness {
        metrics.cluster.set_readiness(svc, readiness, 0);
        metrics.cluster.set_verdict(svc, &verdict);
    }
    common::sample_lines(&metrics.encode())
}
