//! CPU per probe, hopwatch against blackbox_exporter, on the same loopback targets in the same
//! run: DNS lookups against Knot, TCP connects to nginx, HTTPS requests to nginx with TLS.
//!
//! blackbox_exporter is driven through `/probe` by a load generator in this process with a fixed
//! request count and concurrency, and its CPU time is read from `/proc/PID/stat`. hopwatch runs
//! as the agent does (the real `Scheduler`, the probe, `Metrics::record`, on a current-thread
//! runtime) in a child process of its own at the probe rate blackbox reached, and reads its own
//! CPU time. Both measured processes are pinned to core 1; the load generator and the servers
//! are not pinned (CPU time is counted per process, so where they run changes only the rate).
//! Equal wire work: one DNS query (A, FQDN), one TCP handshake, one TLS 1.3 handshake and GET
//! on a fresh connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hopwatch::config::Config;
use hopwatch::metrics::Metrics;
use hopwatch::probe::dns::DnsCheck;
use hopwatch::probe::http::{CaBundle, HttpSpec, HttpTarget, HttpUrl};
use hopwatch::probe::tcp::ConnectTarget;
use hopwatch::probe::{Detail, Hop, Outcome, Target, TargetKey};
use hopwatch::schedule::{Scheduler, Sink};

use crate::servers::{Blackbox, HttpConn, pinned, sample, this_exe};
use crate::{common, nginx_support, support};

/// The name both tools ask Knot for: one A query, no search list.
const NAME: &str = "kubernetes.default.svc.cluster.local";
/// The core the measured processes run on.
const MEASURED_CORE: usize = 1;

/// One kind of probe and where it goes.
#[derive(Debug, Clone)]
struct Kind {
    name: &'static str,
    module: &'static str,
    bb_target: String,
    /// Arguments of `hopwatch-worker` after the kind, count and rate.
    worker_args: Vec<String>,
    probes: usize,
}

/// What one side measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    probes: usize,
    failures: usize,
    cpu: Duration,
    wall: Duration,
}

impl Measured {
    fn per_thousand(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / self.probes.max(1) as f64
    }

    fn rate(&self) -> f64 {
        self.probes as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs the comparison `repeats` times and prints the table (medians over repeats).
pub fn run(repeats: usize, scale: f64) {
    let knot = support::knot::Knot::start();
    let lab = nginx_support::Lab::start();
    let dir = support::TempDir::new("bench-cpu");
    let resolv = dir.file("resolv.conf", support::POD_RESOLV_CONF);
    let blackbox = Blackbox::start(dir.path(), &modules(&lab.ca_file), MEASURED_CORE);
    let kinds = kinds(&knot, &lab, &resolv, scale);
    println!(
        "## CPU per probe: hopwatch vs blackbox_exporter {}\n",
        blackbox.version
    );
    println!("{}\n", common::machine());
    println!(
        "| probe | blackbox CPU-s / 1000 | hopwatch CPU-s / 1000 | hopwatch / blackbox | rate (probes/s) | probes per run |"
    );
    println!("|---|---|---|---|---|---|");
    for kind in &kinds {
        let mut pairs = Vec::new();
        for _ in 0..repeats {
            let bb = drive_blackbox(&blackbox, kind, 4);
            let hw = run_worker(kind, bb.rate());
            assert_eq!(bb.failures, 0, "blackbox {} probes failed", kind.name);
            assert_eq!(hw.failures, 0, "hopwatch {} probes failed", kind.name);
            pairs.push((bb, hw));
        }
        print_row(kind, &pairs);
    }
    println!();
}

fn print_row(kind: &Kind, pairs: &[(Measured, Measured)]) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let bb = median(pairs.iter().map(|p| p.0.per_thousand()).collect());
    let hw = median(pairs.iter().map(|p| p.1.per_thousand()).collect());
    let ratio = median(
        pairs
            .iter()
            .map(|p| p.1.per_thousand() / p.0.per_thousand())
            .collect(),
    );
    let rate = median(pairs.iter().map(|p| p.0.rate()).collect());
    println!(
        "| {} | {bb:.3} | {hw:.3} | {ratio:.2} | {rate:.0} | {} |",
        kind.name, kind.probes
    );
}

fn modules(ca_file: &Path) -> String {
    format!(
        "  dns_a:\n    prober: dns\n    timeout: 5s\n    dns:\n      transport_protocol: udp\n      \
         preferred_ip_protocol: ip4\n      query_name: {NAME}\n      query_type: A\n  \
         tcp:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n  \
         https:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      \
         headers:\n        Host: {host}\n      tls_config:\n        ca_file: {ca}\n        \
         server_name: {host}\n",
        host = nginx_support::OK,
        ca = ca_file.display(),
    )
}

fn kinds(
    knot: &support::knot::Knot,
    lab: &nginx_support::Lab,
    resolv: &Path,
    scale: f64,
) -> Vec<Kind> {
    let n = |base: f64| ((base * scale) as usize).max(50);
    vec![
        Kind {
            name: "DNS (UDP, A, one query)",
            module: "dns_a",
            bb_target: knot.addr().to_string(),
            worker_args: vec![knot.addr().to_string(), resolv.display().to_string()],
            probes: n(20_000.0),
        },
        Kind {
            name: "TCP connect",
            module: "tcp",
            bb_target: lab.http.to_string(),
            worker_args: vec![lab.http.to_string()],
            probes: n(20_000.0),
        },
        Kind {
            name: "HTTPS GET (TLS 1.3, new connection)",
            module: "https",
            bb_target: format!("https://{}/", lab.https),
            worker_args: vec![lab.https.to_string(), lab.ca_file.display().to_string()],
            probes: n(4_000.0),
        },
    ]
}

/// `concurrency` keep-alive connections each asking `/probe` in a loop, after a warm-up.
fn drive_blackbox(bb: &Blackbox, kind: &Kind, concurrency: usize) -> Measured {
    let path = Blackbox::path(kind.module, &kind.bb_target);
    let warm = load(bb.addr, &path, 200, concurrency);
    assert_eq!(warm, 0, "blackbox warm-up probes of {} failed", kind.name);
    let before = common::cpu_time(bb.pid()).expect("blackbox CPU time");
    let start = Instant::now();
    let failures = load(bb.addr, &path, kind.probes, concurrency);
    let wall = start.elapsed();
    let cpu = common::cpu_time(bb.pid()).expect("blackbox CPU time") - before;
    Measured {
        probes: kind.probes,
        failures,
        cpu,
        wall,
    }
}

/// Sends `total` requests over `concurrency` connections; returns how many probes failed.
fn load(addr: SocketAddr, path: &str, total: usize, concurrency: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, path) = (Arc::clone(&next), path.to_string());
            std::thread::spawn(move || {
                let mut conn = HttpConn::open(addr).expect("connect to blackbox");
                let mut failures = 0;
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let (code, body) = conn.get(&path).expect("a /probe answer");
                    if code != 200 || sample(&body, "probe_success") != Some(1.0) {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .sum()
}

/// Runs hopwatch's side in a child pinned to the measured core and reads what it printed.
fn run_worker(kind: &Kind, rate: f64) -> Measured {
    let out = pinned(MEASURED_CORE, &this_exe())
        .arg("hopwatch-worker")
        .arg(kind.module)
        .arg(kind.probes.to_string())
        .arg(format!("{rate:.0}"))
        .args(&kind.worker_args)
        .output()
        .expect("run the hopwatch worker");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hopwatch worker failed: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("worker output lacks {name}: {text}"))
    };
    Measured {
        probes: field("probes") as usize,
        failures: field("failures") as usize,
        cpu: Duration::from_secs_f64(field("cpu_seconds")),
        wall: Duration::from_secs_f64(field("wall_seconds")),
    }
}

/// Counts finished probes for the worker and forwards them to the real metrics.
struct Counting {
    metrics: Metrics,
    probes: AtomicUsize,
    failures: AtomicUsize,
    want: usize,
    done: tokio::sync::Notify,
}

impl Sink for Counting {
    fn started(&self, key: &TargetKey) {
        self.metrics.start(key);
    }

    fn record(&self, key: &TargetKey, outcome: &Outcome) {
        self.metrics.record(key, outcome);
        let n = match &outcome.detail {
            Detail::Connects(c) => c.len(),
            _ => 1,
        };
        if let Err(failure) = outcome.result
            && self.failures.fetch_add(n, Ordering::Relaxed) == 0
        {
            eprintln!("first failed probe: {key}: {failure}");
        }
        if self.probes.fetch_add(n, Ordering::Relaxed) + n >= self.want {
            self.done.notify_one();
        }
    }

    fn lag(&self, lag: Duration) {
        self.metrics.observe_lag(lag);
    }

    fn forget(&self, key: &TargetKey) {
        self.metrics.forget(key);
    }
}

/// The worker's main: `hopwatch-worker MODULE PROBES RATE ADDR [FILE]`. Runs `PROBES` probes at
/// `RATE` per second through the scheduler and prints its own CPU time.
pub fn worker_main(args: &[String]) {
    let [module, probes, rate, addr, rest @ ..] = args else {
        panic!("usage: hopwatch-worker MODULE PROBES RATE ADDR [FILE]");
    };
    let probes: usize = probes.parse().expect("PROBES");
    let rate: f64 = rate.parse().expect("RATE");
    let addr: SocketAddr = addr.parse().expect("ADDR");
    let file = rest.first().map(String::as_str).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (cpu, wall, failures) = runtime.block_on(drive(module, probes, rate, addr, file));
    println!(
        "probes={probes} failures={failures} cpu_seconds={:.3} wall_seconds={:.3}",
        cpu.as_secs_f64(),
        wall.as_secs_f64()
    );
}

async fn drive(
    module: &str,
    probes: usize,
    rate: f64,
    addr: SocketAddr,
    file: &str,
) -> (Duration, Duration, usize) {
    // About 500 ms between the starts of one target, as many targets as that takes: a
    // timeout of 400 ms leaves a busy loopback server room.
    let count = ((rate * 0.5).round() as usize).clamp(10, 5000).min(probes);
    let interval = Duration::from_secs_f64(count as f64 / rate.max(1.0));
    let targets: Vec<Target> = (0..count)
        .map(|i| target(module, i, addr, file, interval))
        .collect();
    let sink = Arc::new(Counting {
        metrics: Metrics::new(),
        probes: AtomicUsize::new(0),
        failures: AtomicUsize::new(0),
        want: probes,
        done: tokio::sync::Notify::new(),
    });
    let mut scheduler = Scheduler::new(64, Arc::clone(&sink));
    let pid = std::process::id();
    let before = common::cpu_time(pid).expect("own CPU time");
    let start = Instant::now();
    scheduler.reconcile(targets).await;
    sink.done.notified().await;
    let wall = start.elapsed();
    let cpu = common::cpu_time(pid).expect("own CPU time") - before;
    scheduler.shutdown().await;
    (cpu, wall, sink.failures.load(Ordering::Relaxed))
}

/// The `i`th of the worker's identical targets: same address, its own key and stagger.
fn target(module: &str, i: usize, addr: SocketAddr, file: &str, interval: Duration) -> Target {
    let schedule = hopwatch::config::Schedule {
        interval,
        timeout: interval.mul_f64(0.8).max(Duration::from_millis(5)),
        jitter: Duration::ZERO,
    };
    match module {
        "dns_a" => Target::Dns(DnsCheck::configured(dns_target(i, addr, file, interval))),
        "tcp" => Target::Connect(ConnectTarget {
            key: key(Hop::Service, i),
            addresses: vec![addr],
            schedule,
        }),
        "https" => {
            let pem = std::fs::read(file).expect("the CA file");
            let url = HttpUrl::parse(&format!("https://{}/", nginx_support::OK)).expect("URL");
            let spec = HttpSpec {
                connect_to: Some(addr),
                ca: CaBundle::from_pem(&pem, file).expect("the CA"),
                ..HttpSpec::new(url)
            };
            Target::Http(HttpTarget {
                key: key(Hop::Ingress, i),
                spec,
                schedule,
            })
        }
        other => panic!("unknown module {other}"),
    }
}

fn key(hop: Hop, i: usize) -> TargetKey {
    TargetKey {
        hop,
        id: format!("bench-{i}"),
    }
}

/// A DNS target as the config file would give it, so that its fields stay the config's own.
fn dns_target(
    i: usize,
    server: SocketAddr,
    resolv: &str,
    interval: Duration,
) -> hopwatch::config::DnsTarget {
    let seconds = interval.as_secs_f64();
    let yaml = format!(
        "dns:\n  - name: {NAME}.\n    id: bench-{i}\n    server: \"{server}\"\n    qtypes: [A]\n    \
         resolv_conf: {resolv}\n    interval_seconds: {seconds}\n    timeout_seconds: {:.4}\n    \
         jitter_seconds: 0\n",
        (seconds * 0.8).max(0.005)
    );
    let config = Config::parse(&yaml, "bench.yaml").unwrap_or_else(|e| panic!("{e}"));
    config.dns.into_iter().next().expect("one target")
}
