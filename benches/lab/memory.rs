//! Memory at cluster scale: `hopwatch run` (the release binary) against the fake API server
//! serving 10,000 Services and 100,000 endpoints in EndpointSlices, with 1 % of the slices
//! changed per minute. Every address of the synthetic cluster is moved into 127.0.0.0/8 before
//! it is served, so the probes the agent starts (refused connects) never leave the machine.
//!
//! Four runs: a small config without Kubernetes (idle footprint); discovery of a cluster with no
//! Services; the full cluster held in the stores but nothing selected for probing (what holding
//! the cluster costs); the full cluster with one shard (1,000 Services, 10,000 endpoints)
//! probed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, status_kib};
use crate::fakeapi_support::{FakeApi, generate_cluster};
use crate::servers::{Guard, HttpConn};
use crate::support::TempDir;

/// What one run of the agent looked like.
struct Footprint {
    name: String,
    sync: Option<Duration>,
    peak_kib: u64,
    steady_kib: u64,
    targets: String,
    cpu_percent: f64,
}

/// Runs the four configurations and prints the table. `seconds` is how long the probed run
/// is watched after the sync.
pub fn run(services: usize, endpoints: usize, seconds: u64) {
    let bin = hopwatch_binary();
    let dir = TempDir::new("bench-memory");
    let mut rows = vec![idle(&bin, &dir)];
    let empty = loopback_cluster(&dir, 0, endpoints, "empty.json");
    let api = FakeApi::builder()
        .fixtures_file(&empty)
        .arg("--quiet")
        .start();
    rows.push(agent(
        &bin,
        &dir,
        &api,
        "discovery, cluster with no Services",
        "hopwatch.test/shard=none",
        20,
    ));
    drop(api);
    let full = loopback_cluster(&dir, services, endpoints, "full.json");
    let api = FakeApi::builder()
        .fixtures_file(&full)
        .arg("--quiet")
        .start();
    api.churn("discovery.k8s.io/v1/endpointslices", 1.0);
    let name = format!(
        "{services} Services / {} endpoints held, none probed",
        services * endpoints
    );
    rows.push(agent(
        &bin,
        &dir,
        &api,
        &name,
        "hopwatch.test/shard=none",
        60,
    ));
    let name = format!(
        "{services} Services / {} endpoints held, {} Services probed",
        services * endpoints,
        services / 10
    );
    rows.push(agent(
        &bin,
        &dir,
        &api,
        &name,
        "hopwatch.test/shard=0",
        seconds,
    ));
    print(&rows, services * endpoints);
}

fn print(rows: &[Footprint], endpoints: usize) {
    println!(
        "## Memory: `hopwatch run` against the fake API server, 1 % of slices changed per minute\n"
    );
    println!("{}\n", common::machine());
    println!(
        "| run | initial sync | peak RSS (VmHWM) | steady RSS (median VmRSS) | targets | agent CPU |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let sync = r
            .sync
            .map_or("–".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
        println!(
            "| {} | {sync} | {:.1} MiB | {:.1} MiB | {} | {:.1} % |",
            r.name,
            r.peak_kib as f64 / 1024.0,
            r.steady_kib as f64 / 1024.0,
            r.targets,
            r.cpu_percent
        );
    }
    println!(
        "\nThe stores alone, built in a fresh process from synthetic objects: {}.",
        stores_alone_fresh(endpoints)
    );
    if let [_, empty, held, ..] = rows {
        let bytes = (held.steady_kib as f64 - empty.steady_kib as f64) * 1024.0 / endpoints as f64;
        println!(
            "\nHeld per endpoint (steady RSS, cluster held minus empty cluster, / {endpoints}): {bytes:.0} bytes."
        );
    }
    println!();
}

/// The release binary: `HOPWATCH_BIN`, else `$CARGO_TARGET_DIR/release/hopwatch`.
fn hopwatch_binary() -> PathBuf {
    let bin = std::env::var_os("HOPWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
                PathBuf::from,
            );
            target.join("release/hopwatch")
        });
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build --release` (benches/run does)",
        bin.display()
    );
    bin
}

/// A synthetic cluster with every address moved into 127.0.0.0/8, written to `dir/name`.
fn loopback_cluster(dir: &TempDir, services: usize, endpoints: usize, name: &str) -> PathBuf {
    let (s, e) = (services.to_string(), endpoints.to_string());
    let args = [
        "--services",
        &s,
        "--endpoints",
        &e,
        "--namespaces",
        "50",
        "--not-ready",
        "10",
        "--nodes",
        "3",
        "--ingresses",
        "0",
        "--seed",
        "1",
    ];
    let generated = generate_cluster(dir.path(), &args);
    let text = std::fs::read_to_string(&generated).expect("read the generated cluster");
    let mut list: Value = serde_json::from_str(&text).expect("the generated cluster is JSON");
    for item in list["items"].as_array_mut().into_iter().flatten() {
        to_loopback(item);
    }
    let path = dir.path().join(name);
    std::fs::write(&path, list.to_string()).expect("write the cluster");
    path
}

/// Rewrites ClusterIPs and endpoint addresses from 10.a.b.c to 127.a.b.c.
fn to_loopback(item: &mut Value) {
    let fix = |v: &mut Value| {
        if let Some(ip) = v.as_str().and_then(|s| s.strip_prefix("10.")) {
            *v = Value::String(format!("127.{ip}"));
        }
    };
    if let Some(spec) = item.get_mut("spec") {
        if let Some(ip) = spec.get_mut("clusterIP") {
            fix(ip);
        }
        for ip in spec
            .get_mut("clusterIPs")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            fix(ip);
        }
    }
    for ep in item
        .get_mut("endpoints")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for ip in ep
            .get_mut("addresses")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            fix(ip);
        }
    }
}

/// The idle footprint: two DNS targets, no Kubernetes, 10 s.
fn idle(bin: &Path, dir: &TempDir) -> Footprint {
    let listen = common::free_loopback_port();
    let config = format!(
        "listen: \"{listen}\"\ndns:\n  - name: example.com.\n    server: \"127.0.0.1:9\"\n  \
         - name: kubernetes.default\n    server: \"127.0.0.1:9\"\n"
    );
    let path = dir.path().join("idle.yaml");
    std::fs::write(&path, config).expect("write idle.yaml");
    let agent = spawn(bin, &path, &[]);
    wait_ready(listen, Duration::from_secs(10));
    watch(
        "small config (2 DNS targets), no Kubernetes",
        &agent,
        listen,
        None,
        Duration::from_secs(10),
    )
}

/// One agent with a `kubernetes` section against `api`, watched for `seconds` after sync.
fn agent(
    bin: &Path,
    dir: &TempDir,
    api: &FakeApi,
    name: &str,
    selector: &str,
    seconds: u64,
) -> Footprint {
    let listen = common::free_loopback_port();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\nsearch svc.cluster.local\noptions ndots:5\n",
    )
    .expect("write resolv.conf");
    let config = format!(
        "listen: \"{listen}\"\nmax_concurrency: 64\ndns:\n  - name: example.com.\n    server: \"127.0.0.1:9\"\n\
         kubernetes:\n  kubeconfig: {kc}\n  pod_probe_nodes: 3\n  services:\n    label_selector: \"{selector}\"\n    \
         always: []\n  dns:\n    resolv_conf: {resolv}\n",
        kc = api.kubeconfig().display(),
        resolv = resolv.display(),
    );
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, config).expect("write agent.yaml");
    let started = Instant::now();
    let agent = spawn(bin, &path, &[("NODE_NAME", "node-0")]);
    wait_ready(listen, Duration::from_secs(300));
    let sync = started.elapsed();
    watch(
        name,
        &agent,
        listen,
        Some(sync),
        Duration::from_secs(seconds),
    )
}

fn spawn(bin: &Path, config: &Path, env: &[(&str, &str)]) -> Guard {
    let child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    Guard(child)
}

/// Polls `/readyz` every 20 ms until it answers 200.
fn wait_ready(listen: SocketAddr, limit: Duration) {
    let give_up = Instant::now() + limit;
    loop {
        let ready = HttpConn::open(listen)
            .and_then(|mut c| c.get("/readyz"))
            .is_ok_and(|(code, _)| code == 200);
        if ready {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "hopwatch on {listen} not ready within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Samples VmRSS every second for `span`, then reads VmHWM and the target counts.
fn watch(
    name: &str,
    agent: &Guard,
    listen: SocketAddr,
    sync: Option<Duration>,
    span: Duration,
) -> Footprint {
    let pid = agent.pid();
    let cpu0 = common::cpu_time(pid).expect("agent CPU time");
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < span {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(status_kib(pid, "VmRSS").expect("VmRSS"));
    }
    let cpu = common::cpu_time(pid).expect("agent CPU time") - cpu0;
    let steady = {
        let mut late = samples[samples.len() / 2..].to_vec();
        late.sort_unstable();
        late[late.len() / 2]
    };
    let (_, metrics) = HttpConn::open(listen)
        .and_then(|mut c| c.get("/metrics"))
        .expect("scrape the agent");
    let targets: Vec<String> = ["service", "pod", "dns"]
        .iter()
        .filter_map(|hop| {
            let n =
                crate::servers::sample(&metrics, &format!("hopwatch_targets{{hop=\"{hop}\"}}"))?;
            Some(format!("{n:.0} {hop}"))
        })
        .collect();
    Footprint {
        name: name.to_string(),
        sync,
        peak_kib: status_kib(pid, "VmHWM").expect("VmHWM"),
        steady_kib: steady,
        targets: targets.join(", "),
        cpu_percent: cpu.as_secs_f64() / start.elapsed().as_secs_f64() * 100.0,
    }
}

/// RSS grown by building the stores for `endpoints` endpoints (10 per Service) in this
/// process: what the compact projections themselves cost, allocator overhead included.
pub fn stores_alone(endpoints: usize) -> String {
    let pid = std::process::id();
    let before = status_kib(pid, "VmRSS").expect("VmRSS");
    let shape = common::Shape {
        services: endpoints / 10,
        ports: 1,
        endpoints: 10,
        nodes: 3,
    };
    let stores = std::hint::black_box(common::stores(shape));
    let after = status_kib(pid, "VmRSS").expect("VmRSS");
    let bytes = (after.saturating_sub(before)) as f64 * 1024.0;
    drop(stores);
    format!(
        "{:.1} MiB for {endpoints} endpoints, {:.0} bytes per endpoint",
        bytes / 1048576.0,
        bytes / endpoints as f64
    )
}

/// [`stores_alone`] in a child process of its own: this one's heap already holds the freed
/// memory of the generated cluster, which new allocations would reuse unseen.
fn stores_alone_fresh(endpoints: usize) -> String {
    let out = Command::new(crate::servers::this_exe())
        .arg("stores-alone")
        .arg(endpoints.to_string())
        .output()
        .expect("run the stores-alone child");
    assert!(out.status.success(), "stores-alone failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
