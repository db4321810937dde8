//! The fleet: what every agent of a DaemonSet exports and probes, with the shipped
//! `deploy/hopwatch.yaml`, on a synthetic cluster of N nodes. No network: each sampled agent
//! runs the real code from the stores to the exposition (`discovery::targets::derive`,
//! `cluster::build`, the verdicts, the readiness handover, `Metrics`) after one successful
//! round of every target it was given, and its series are counted per metric family. The
//! fleet's total is the sampled agents' mean times the node count.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hopwatch::agent;
use hopwatch::cluster;
use hopwatch::config::{Config, KubernetesConfig};
use hopwatch::discovery::ingress::{BackendPort, EdgeKind, IngressInfo, IngressPath};
use hopwatch::discovery::model::{ObjKey, ServicePort, SliceInfo, SlicePort, TargetPort};
use hopwatch::discovery::store::Stores;
use hopwatch::discovery::targets::derive;
use hopwatch::metrics::Metrics;
use hopwatch::probe::dns::{
    DnsCycle, Flavor, LookupReport, Mode, Qtype, QueryRecord, QueryStatus, Transport,
};
use hopwatch::probe::http::{HttpReport, Phase, Protocol, TlsInfo};
use hopwatch::probe::tcp::Connect;
use hopwatch::probe::{Detail, Hop, Outcome, Target};
use hopwatch::verdict::Verdicts;

use crate::common;

/// The cluster of the fleet goal: Services with 1 or 2 TCP ports (1.5 on average), 25 ready
/// endpoints each, and Ingress rules, one host each, routed to the first Services.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub services: usize,
    pub endpoints: usize,
    pub rules: usize,
}

/// Series of one metric family, summed over the fleet.
type Families = BTreeMap<String, f64>;

/// Prints the table for each node count.
pub fn run(fleet: Fleet, node_counts: &[usize], sample: usize) {
    let config = deploy_config();
    let kube = config.kubernetes.as_ref().expect("deploy/ has kubernetes:");
    println!(
        "## The fleet: {} Services × 1.5 TCP ports × {} ready endpoints, {} Ingress rules, deploy/hopwatch.yaml\n",
        fleet.services, fleet.endpoints, fleet.rules
    );
    println!("{}\n", common::machine());
    let d = &kube.discovery;
    println!(
        "pod_probe_nodes {}, service_probe_nodes {}, ingress probe_nodes {}, connect every {:?}, sweep every {:?}, Ingress every {:?}; {sample} agents sampled per row.\n",
        d.pod_probe_nodes,
        d.service_probe_nodes,
        d.edge_probe_nodes,
        kube.connect.interval,
        kube.sweep.interval,
        kube.ingress_schedule.interval,
    );
    let mut rows = Vec::new();
    for &nodes in node_counts {
        let stores = stores(fleet, nodes);
        let step = (nodes / sample).max(1);
        let agents: Vec<Agent> = (0..nodes)
            .step_by(step)
            .take(sample)
            .map(|n| agent_round(&stores, &config, kube, &common::node_name(n)))
            .collect();
        let edge = Edge {
            targets: 2 * fleet.rules,
            interval: kube.ingress_schedule.interval,
        };
        rows.push((nodes, Row::of(&agents, nodes, edge)));
    }
    println!(
        "| nodes | series, all agents | series / agent (mean, max) | Service-hop connects / node / s (every interval + sweep) | Pod-hop connects / node / s | probes / s per Ingress rule, whole fleet | DNS lookups / s per CoreDNS replica (2), whole fleet | derive per change |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (nodes, row) in &rows {
        println!(
            "| {nodes} | {} | {:.0}, {} | {:.2} + {:.2} | {:.2} | {:.3} | {:.2} | {} ms |",
            thousands(row.total),
            row.total / *nodes as f64,
            row.max_series,
            row.service_per_s,
            row.sweep_per_s,
            row.pod_per_s,
            row.edge_per_rule_per_s,
            row.queries_per_replica_per_s,
            common::ms(row.derive),
        );
    }
    println!("\n### Series per metric family, whole fleet\n");
    print!("| family | formula |");
    for (nodes, _) in &rows {
        print!(" {nodes} nodes |");
    }
    println!();
    print!("|---|---|");
    for _ in &rows {
        print!("---|");
    }
    println!();
    let families: std::collections::BTreeSet<&String> =
        rows.iter().flat_map(|(_, r)| r.families.keys()).collect();
    for family in families {
        print!("| `{family}` | {} |", formula(family));
        for (_, row) in &rows {
            let n = row.families.get(family).copied().unwrap_or(0.0);
            print!(" {} |", thousands(n));
        }
        println!();
    }
    println!();
}

/// How a family's series grow, in the words of docs/METRICS.md: N nodes, S Services, P Service
/// ports, R Ingress rules, H load-balancer hosts, C CoreDNS replicas, k the `*_probe_nodes`.
fn formula(family: &str) -> &'static str {
    match family {
        "hopwatch_probes_total" | "hopwatch_probe_duration_seconds" => {
            "per probed target (below) × results seen; the histogram × 21"
        }
        "hopwatch_service_endpoints"
        | "hopwatch_service_empty_endpoints"
        | "hopwatch_endpoint_ready_transitions_total"
        | "hopwatch_service_critical" => "S × conditions, once per cluster (owner)",
        "hopwatch_path_status" | "hopwatch_service_unreachable_endpoints" => {
            "Services a node probes every interval (always + k·S/N) × N, + broken (node, Service)"
        }
        "hopwatch_service_sweep_connects_total" => "N × results seen",
        f if f.starts_with("hopwatch_dns_") => {
            "N × configured names × (search + fqdn) × qtypes × rcodes, + k·C lookups"
        }
        f if f.starts_with("hopwatch_http_") || f.starts_with("hopwatch_tls_") => {
            "k_edge × R (Ingress) + k_edge × H (load balancer), × phases or certificates"
        }
        f if f.starts_with("process_") => "N × 6",
        _ => "N × a constant",
    }
}

/// One sampled agent after one round.
struct Agent {
    families: Families,
    series: usize,
    service_connects_per_s: f64,
    sweep_connects_per_s: f64,
    pod_connects_per_s: f64,
    edge_targets: usize,
    replica_lookups_per_s: f64,
    derive: Duration,
}

struct Row {
    total: f64,
    max_series: usize,
    families: Families,
    service_per_s: f64,
    sweep_per_s: f64,
    pod_per_s: f64,
    edge_per_rule_per_s: f64,
    queries_per_replica_per_s: f64,
    derive: Duration,
}

/// The cluster's edge targets: an Ingress rule and its load-balancer host for each rule.
struct Edge {
    targets: usize,
    interval: Duration,
}

impl Row {
    fn of(agents: &[Agent], nodes: usize, edge: Edge) -> Row {
        let n = agents.len().max(1) as f64;
        let scale = nodes as f64 / n;
        let mean = |f: fn(&Agent) -> f64| agents.iter().map(f).sum::<f64>() / n;
        let mut families = Families::new();
        for a in agents {
            for (family, count) in &a.families {
                *families.entry(family.clone()).or_default() += count * scale;
            }
        }
        let mut derive: Vec<Duration> = agents.iter().map(|a| a.derive).collect();
        derive.sort();
        Row {
            total: families.values().sum(),
            max_series: agents.iter().map(|a| a.series).max().unwrap_or(0),
            families,
            service_per_s: mean(|a| a.service_connects_per_s),
            sweep_per_s: mean(|a| a.sweep_connects_per_s),
            pod_per_s: mean(|a| a.pod_connects_per_s),
            // How many agents hold each edge target (the sample's mean share times the
            // nodes, over the targets), each probing it once per Ingress interval.
            edge_per_rule_per_s: mean(|a| a.edge_targets as f64) * nodes as f64
                / edge.targets.max(1) as f64
                / edge.interval.as_secs_f64(),
            queries_per_replica_per_s: mean(|a| a.replica_lookups_per_s) * nodes as f64
                / REPLICAS as f64,
            derive: derive.get(derive.len() / 2).copied().unwrap_or_default(),
        }
    }
}

/// CoreDNS replicas in the synthetic cluster.
const REPLICAS: usize = 2;

fn deploy_config() -> Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/hopwatch.yaml");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// One agent: derive, build, one successful round of every target, the verdicts and the
/// readiness it owns.
fn agent_round(stores: &Stores, config: &Config, kube: &KubernetesConfig, node: &str) -> Agent {
    let start = Instant::now();
    let derived = derive(stores, &kube.discovery, node);
    let derive = start.elapsed();
    let mut plan = cluster::build(&derived, kube);
    let metrics = Metrics::new();
    metrics.set_timed(Hop::Service, kube.service_histogram);
    metrics.set_untimed_targets(std::mem::take(&mut plan.untimed));
    let now = Instant::now();
    for (svc, readiness) in &derived.readiness {
        let owned = derived.owned.contains(svc);
        metrics.cluster.set_readiness(svc, readiness, 0, owned, now);
    }
    let mut targets = agent::targets(config);
    targets.append(&mut plan.targets);
    let mut verdicts = Verdicts::default();
    verdicts.set_services(plan.members, plan.cluster_dns);
    let (mut service, mut sweep, mut pod, mut edge, mut replica) = (0.0, 0.0, 0.0, 0, 0.0);
    for target in &targets {
        let key = target.key();
        let outcome = outcome(target);
        verdicts.observe(&key, &outcome);
        let per_s = |n: usize, every: Duration| n as f64 / every.as_secs_f64();
        match target {
            Target::Connect(c) if plan.sweep.contains(&key) => {
                sweep += per_s(c.addresses.len(), c.schedule.interval);
                metrics.cluster.sweep_connect("success");
                continue;
            }
            Target::Connect(c) if key.hop == Hop::Service => {
                service += per_s(c.addresses.len(), c.schedule.interval);
            }
            Target::Connect(c) => pod += per_s(c.addresses.len(), c.schedule.interval),
            Target::Http(_) | Target::LoadBalancer(_) => edge += 1,
            // Direct to a replica, through the ClusterIP or through resolv.conf: every lookup
            // lands on one of the replicas.
            Target::Dns(d) => replica += per_s(1, d.target.schedule.interval),
        }
        metrics.start(&key);
        metrics.record(&key, &outcome);
    }
    for (svc, verdict) in verdicts.all() {
        metrics.cluster.set_verdict(&svc, &verdict);
    }
    let text = metrics.encode();
    let families = families(&text);
    Agent {
        series: families.values().sum::<f64>() as usize,
        families,
        service_connects_per_s: service,
        sweep_connects_per_s: sweep,
        pod_connects_per_s: pod,
        edge_targets: edge,
        replica_lookups_per_s: replica,
        derive,
    }
}

/// Sample lines per family, histogram lines under the histogram's name.
fn families(text: &str) -> Families {
    let histograms: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram"))
        .collect();
    let mut out = Families::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| histograms.contains(f))
            .unwrap_or(name);
        *out.entry(family.to_string()).or_default() += 1.0;
    }
    out
}

/// What a healthy round of `target` reports.
fn outcome(target: &Target) -> Outcome {
    let connect = Connect {
        result: Ok(()),
        duration: Duration::from_micros(200),
    };
    match target {
        Target::Connect(c) => Outcome {
            result: Ok(()),
            duration: connect.duration,
            detail: Detail::Connects(vec![connect; c.addresses.len()]),
        },
        Target::Dns(d) => dns_outcome(&d.target.name, &d.server),
        Target::Http(_) | Target::LoadBalancer(_) => http_outcome(),
    }
}

/// A lookup through a three-entry search list, A and AAAA: two NXDOMAIN steps, then the
/// answer; then the FQDN baseline.
fn dns_outcome(name: &str, server: &str) -> Outcome {
    let query = |qname: &str, qtype, status| QueryRecord {
        qname: qname.to_string(),
        qtype,
        transport: Transport::Udp,
        server: "127.0.0.53:53".parse().expect("an address"),
        status,
        duration: Duration::from_micros(300),
        answers: u16::from(status == QueryStatus::NoError),
        truncated: false,
    };
    let report = |mode, queries: Vec<QueryRecord>| LookupReport {
        name: name.to_string(),
        mode,
        flavor: Flavor::Glibc,
        result: Ok(()),
        addresses: vec![IpAddr::from([127, 0, 0, 10])],
        duration: Duration::from_millis(1),
        queries,
        discarded: hopwatch::probe::dns::Discards::default(),
    };
    let (nx, ok) = (QueryStatus::NxDomain, QueryStatus::NoError);
    let mut search = Vec::new();
    for (step, status) in [("a.", nx), ("b.", nx), ("", ok)] {
        for qtype in [Qtype::A, Qtype::Aaaa] {
            search.push(query(&format!("{name}.{step}"), qtype, status));
        }
    }
    let fqdn = vec![
        query(&format!("{name}."), Qtype::A, ok),
        query(&format!("{name}."), Qtype::Aaaa, ok),
    ];
    Outcome {
        result: Ok(()),
        duration: Duration::from_millis(1),
        detail: Detail::Dns(DnsCycle {
            server: server.to_string(),
            search: report(Mode::Search, search),
            fqdn: Some(report(Mode::Fqdn, fqdn)),
        }),
    }
}

fn http_outcome() -> Outcome {
    let ms = Duration::from_millis(1);
    HttpReport {
        url: "https://rule.example.com/".into(),
        method: Default::default(),
        address: Some("127.0.0.80:443".parse().expect("an address")),
        answers: vec![IpAddr::from([127, 0, 0, 80])],
        result: Ok(()),
        failed_phase: None,
        phases: vec![
            (Phase::Dns, ms),
            (Phase::Connect, ms),
            (Phase::Tls, ms),
            (Phase::Ttfb, ms),
        ],
        status: Some(200),
        protocol: Some(Protocol::Http2),
        redirects: vec![],
        tls: Some(TlsInfo {
            not_after_earliest: 1_900_000_000,
            not_before: 1_800_000_000,
            verified: true,
            verify_error: None,
            sans: vec!["rule.example.com".into()],
            protocol: Some("TLSv1.3".into()),
        }),
        total: ms * 4,
    }
    .outcome()
}

/// The fleet's cluster on `nodes` nodes: its Services (the first one is kube-dns with
/// [`REPLICAS`] replicas, then `default/kubernetes` and the canary), their slices and
/// Ingresses.
pub fn stores(fleet: Fleet, nodes: usize) -> Stores {
    let mut stores = Stores::default();
    stores.nodes = (0..nodes).map(common::node_name).collect();
    let mut pod = 0u32;
    for s in 0..fleet.services {
        let key = match s {
            0 => ObjKey::new("kube-system", "kube-dns"),
            1 => ObjKey::new("default", "kubernetes"),
            2 => ObjKey::new("hopwatch", "hopwatch-canary"),
            _ => ObjKey::new(&format!("ns-{:03}", s % 200), &format!("svc-{s:05}")),
        };
        let ports = if s == 0 { 2 } else { 1 + s % 2 };
        let count = if s == 0 { REPLICAS } else { fleet.endpoints };
        let mut svc = common::service(&key, s, ports);
        if s == 0 {
            // kube-dns: 53/UDP and 53/TCP.
            svc.ports = vec![
                ServicePort {
                    name: Some("dns".into()),
                    port: 53,
                    tcp: false,
                    target_port: TargetPort::Number(53),
                },
                ServicePort {
                    name: Some("dns-tcp".into()),
                    port: 53,
                    tcp: true,
                    target_port: TargetPort::Number(53),
                },
            ];
        }
        let slice_ports = svc
            .ports
            .iter()
            .map(|p| SlicePort {
                name: p.name.clone(),
                port: match p.target_port {
                    TargetPort::Number(n) => n,
                    TargetPort::Name(_) => p.port,
                },
                tcp: p.tcp,
            })
            .collect();
        stores.services.insert(key.clone(), svc);
        let endpoints = common::ready_endpoints(&mut stores, &key, count, &mut pod, nodes);
        stores.apply_slice(SliceInfo {
            key: ObjKey::new(&key.namespace, &format!("{}-abcde", key.name)),
            service: key,
            ports: slice_ports,
            endpoints,
        });
    }
    for r in 0..fleet.rules {
        let backend = 2 + r % (fleet.services - 2).max(1);
        let backend = ObjKey::new(
            &format!("ns-{:03}", backend % 200),
            &format!("svc-{backend:05}"),
        );
        let host = format!("rule-{r}.example.com");
        let key = ObjKey::new(&backend.namespace, &format!("ing-{r}"));
        stores.ingresses.insert(
            key.clone(),
            IngressInfo {
                key,
                kind: EdgeKind::Ingress,
                class: Some("nginx".into()),
                paths: vec![IngressPath {
                    host: host.clone(),
                    path: "/".into(),
                    path_type: "Prefix".into(),
                    backend: Some((backend, BackendPort::Number(80))),
                    port: None,
                }],
                tls_hosts: [host].into_iter().collect(),
                load_balancer: vec![IpAddr::from([127, 0, 0, 80])],
                load_balancer_names: vec![],
                expected_annotation: None,
                probe_annotation: None,
                overrides: Default::default(),
                override_errors: vec![],
            },
        );
    }
    stores
}

fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The quick check `cargo test` runs: a small fleet, the per-node series within the budget.
pub fn self_check() {
    let fleet = Fleet {
        services: 60,
        endpoints: 5,
        rules: 10,
    };
    let config = deploy_config();
    let kube = config.kubernetes.as_ref().expect("kubernetes:");
    let stores = stores(fleet, 50);
    let agent = agent_round(&stores, &config, kube, &common::node_name(7));
    assert!(agent.series > 50, "{} series", agent.series);
    assert!(agent.families.contains_key("hopwatch_probes_total"));
    assert!(agent.sweep_connects_per_s > 0.0, "the sweep runs");
}
