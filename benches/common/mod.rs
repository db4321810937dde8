//! What both bench targets share: synthetic clusters and metrics, process accounting read from
//! `/proc`, and a description of the machine for the reports.

#![allow(dead_code, reason = "shared by two bench targets; each uses a part")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hopwatch::discovery::model::{
    Address, Endpoint, ObjKey, ServiceInfo, ServicePort, SliceInfo, SlicePort, TargetPort,
};
use hopwatch::discovery::store::Stores;
use hopwatch::metrics::Metrics;
use hopwatch::probe::tcp::Connect;
use hopwatch::probe::{Detail, Failure, Hop, Outcome, TargetKey};

/// The shape of a synthetic cluster.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub services: usize,
    pub ports: usize,
    pub endpoints: usize,
    pub nodes: usize,
}

/// A synthetic cluster: `services` ClusterIP Services with `ports` TCP ports each, one
/// EndpointSlice per Service with `endpoints` ready endpoints spread over `nodes` nodes.
/// Addresses are from 127.0.0.0/8 so nothing built from them can leave the machine.
pub fn stores(shape: Shape) -> Stores {
    let mut stores = Stores::default();
    stores.nodes = (0..shape.nodes).map(node_name).collect();
    let mut pod = 0u32;
    for s in 0..shape.services {
        let key = ObjKey::new(&format!("ns-{:03}", s % 50), &format!("svc-{s:05}"));
        stores
            .services
            .insert(key.clone(), service(&key, s, shape.ports));
        let endpoints = ready_endpoints(&mut stores, &key, shape.endpoints, &mut pod, shape.nodes);
        stores.apply_slice(SliceInfo {
            key: ObjKey::new(&key.namespace, &format!("{}-abcde", key.name)),
            service: key,
            ports: (0..shape.ports)
                .map(|p| SlicePort {
                    name: Some(format!("p{p}")),
                    port: 8080 + p as u16,
                    tcp: true,
                })
                .collect(),
            endpoints,
        });
    }
    stores
}

/// `count` ready endpoints of the Service `key`, pods numbered on from `pod`, spread over
/// `nodes` nodes, each with an address of its own from 127.0.0.0/8.
pub fn ready_endpoints(
    stores: &mut Stores,
    key: &ObjKey,
    count: usize,
    pod: &mut u32,
    nodes: usize,
) -> Vec<Endpoint> {
    let mut endpoints = Vec::with_capacity(count);
    for _ in 0..count {
        *pod += 1;
        let node = stores.intern(&node_name(*pod as usize % nodes.max(1)));
        endpoints.push(Endpoint {
            address: loopback(0x40_0000 + *pod),
            ready: true,
            serving: true,
            terminating: false,
            node: Some(node),
            pod: Some(format!("{}-{pod}", key.name).into_boxed_str()),
        });
    }
    endpoints
}

pub fn service(key: &ObjKey, index: usize, ports: usize) -> ServiceInfo {
    ServiceInfo {
        key: key.clone(),
        address: Address::ClusterIp(loopback(0x10_0000 + index as u32)),
        ports: (0..ports)
            .map(|p| ServicePort {
                name: Some(format!("p{p}")),
                port: 80 + p as u16,
                tcp: true,
                target_port: TargetPort::Number(8080 + p as u16),
            })
            .collect(),
        selector: [("app", key.name.as_str())].into_iter().collect(),
        labels: [("app", key.name.as_str())].into_iter().collect(),
        probe_annotation: None,
        critical: false,
    }
}

/// `node-N`, as the fake API server's generator names nodes.
pub fn node_name(n: usize) -> String {
    format!("node-{n}")
}

/// The `n`th address of 127.0.0.0/8 (skipping 127.0.0.0).
pub fn loopback(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | (n & 0x00ff_ffff)))
}

/// Metrics holding about `series` sample lines: Pod-hop targets, each with a success counter,
/// a refused counter and a duration histogram, plus the agent's own series.
pub fn metrics_with_series(series: usize) -> Metrics {
    let metrics = Metrics::new();
    // 2 counters + 18 buckets, +Inf, _sum and _count.
    let per_target = 2 + 21;
    for t in 0..series.div_ceil(per_target) {
        let key = pod_key(t);
        metrics.start(&key);
        metrics.record(&key, &connect_round(8));
    }
    metrics
}

/// The key of the `n`th synthetic Pod-hop target.
pub fn pod_key(n: usize) -> TargetKey {
    TargetKey {
        hop: Hop::Pod,
        id: format!("ns-{:03}/svc-{n:05}:80", n % 50),
    }
}

/// A connect round of `connects` endpoints, one of them refused.
pub fn connect_round(connects: usize) -> Outcome {
    let connects: Vec<Connect> = (0..connects)
        .map(|i| Connect {
            result: if i == 0 {
                Err(Failure::Refused)
            } else {
                Ok(())
            },
            duration: Duration::from_micros(120 + i as u64),
        })
        .collect();
    Outcome {
        result: Err(Failure::Refused),
        duration: Duration::from_micros(130),
        detail: Detail::Connects(connects),
    }
}

/// Sample lines (not `#` comments) of an exposition.
pub fn sample_lines(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

/// User plus system CPU time of a process, all its threads, the exited ones included.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are space-separated.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| std::io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed /proc/PID/stat"))
    };
    let total = ticks(11)? + ticks(12)?;
    // USER_HZ is 100 on every Linux architecture that hopwatch targets.
    Ok(Duration::from_millis(total * 10))
}

/// A `/proc/PID/status` field in KiB, such as `VmRSS` or `VmHWM`.
pub fn status_kib(pid: u32, field: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

/// The machine the numbers come from: cores, CPU model, kernel and the load right now.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    // Counted from cpuinfo: a process pinned with taskset sees one core through the API.
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores, {model}, Linux {}, load average {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// The `q` quantile (0..=1) of `sorted`, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with three decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// A free TCP port's address on 127.0.0.1.
pub fn free_loopback_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    listener.local_addr().expect("local address")
}
