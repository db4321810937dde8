//! Lab benchmarks: hopwatch against real servers on loopback, side by side with
//! blackbox_exporter, each printing a Markdown table for docs/PERFORMANCE.md.
//!
//! `cargo bench --bench lab -- SUBCOMMAND [--option value]…` (benches/run runs them all):
//!
//! | subcommand   | what                                                           |
//! |--------------|----------------------------------------------------------------|
//! | `cpu`        | CPU per probe vs blackbox_exporter: DNS, TCP, HTTPS            |
//! | `fidelity`   | reported latency vs a delay injected with NFQUEUE (root)       |
//! | `schedule`   | schedule lag of 5,000 targets on one core                      |
//! | `throughput` | connects/s and lookups/s on one core vs the loopback limit     |
//! | `memory`     | RSS of `hopwatch run` against 10,000 Services / 100,000 endpoints |
//! | `fleet`      | series and probe load of the whole DaemonSet at 10 to 5,000 nodes |
//! | `all`        | all of the above                                               |
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it checks its own measuring
//! code quickly, without servers.

#[path = "../common/mod.rs"]
mod common;
mod cpu;
#[allow(
    unused_imports,
    reason = "the test support is shared; the lab uses a part"
)]
#[path = "../../tests/fakeapi_support/mod.rs"]
mod fakeapi_support;
mod fidelity;
mod fleet;
mod memory;
#[path = "../../tests/nginx_support/mod.rs"]
mod nginx_support;
mod schedule;
mod servers;
#[path = "../../tests/support/mod.rs"]
mod support;
mod throughput;

use std::collections::HashMap;

const USAGE: &str =
    "usage: lab (cpu|fidelity|schedule|throughput|memory|fleet|all) [--option value]…";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    args.retain(|a| a != "--bench");
    let Some((command, rest)) = args.split_first() else {
        if bench {
            println!("{USAGE}\n(benches/run runs every lab benchmark)");
        } else {
            self_check();
        }
        return;
    };
    match command.as_str() {
        "acceptor" => servers::acceptor_main(),
        "hopwatch-worker" => cpu::worker_main(rest),
        "schedule-inner" => schedule::inner_main(rest),
        "throughput-inner" => throughput::inner_main(rest),
        "fidelity-inner" => fidelity::inner_main(rest),
        "stores-alone" => {
            let endpoints = rest.first().and_then(|n| n.parse().ok()).unwrap_or(100_000);
            println!("{}", memory::stores_alone(endpoints));
        }
        public => run(public, &options(rest)),
    }
}

/// `--name value` pairs.
fn options(args: &[String]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            panic!("{USAGE}: option {:?} has no value", pair[0]);
        };
        let name = name
            .strip_prefix("--")
            .unwrap_or_else(|| panic!("{USAGE}: {name:?}"));
        out.insert(name.to_string(), value.clone());
    }
    out
}

fn get<T: std::str::FromStr>(options: &HashMap<String, String>, name: &str, default: T) -> T {
    options.get(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("--{name} {v:?} is not valid"))
    })
}

fn run(command: &str, o: &HashMap<String, String>) {
    let all = command == "all";
    if all || command == "fleet" {
        let fleet = fleet::Fleet {
            services: get(o, "services", 2000),
            endpoints: get(o, "endpoints", 25),
            rules: get(o, "rules", 500),
        };
        fleet::run(fleet, &[10, 500, 5000], get(o, "sample", 24));
    }
    if all || command == "cpu" {
        cpu::run(get(o, "repeats", 3), get(o, "scale", 1.0));
    }
    if all || command == "fidelity" {
        fidelity::run(get(o, "samples", 200), &[0, 20]);
    }
    if all || command == "schedule" {
        // A handful of targets first: the lag the timer alone gives; then the load.
        schedule::run(50, get(o, "interval", 5.0), get(o, "seconds", 20.0));
        schedule::run(
            get(o, "targets", 5000),
            get(o, "interval", 5.0),
            get(o, "seconds", 20.0),
        );
    }
    if all || command == "throughput" {
        throughput::run(get(o, "seconds", 3.0), get(o, "concurrency", 128));
    }
    if all || command == "memory" {
        memory::run(get(o, "services", 10_000), 10, get(o, "seconds", 120));
    }
    let known = [
        "all",
        "fleet",
        "cpu",
        "fidelity",
        "schedule",
        "throughput",
        "memory",
    ];
    assert!(known.contains(&command), "{USAGE}");
}

/// What `cargo test --all-targets` runs: the measuring code on small inputs, in well under a
/// second, with no server but a loopback listener of its own.
fn self_check() {
    check_counting();
    check_sampling();
    check_connect_loop();
    fleet::self_check();
    println!("lab self-check: 4 passed, 0 failed");
}

/// Rendezvous hashing gives every endpoint-port to exactly `k` of the nodes.
fn check_counting() {
    use hopwatch::discovery::targets::{Settings, derive};
    let shape = common::Shape {
        services: 10,
        ports: 2,
        endpoints: 3,
        nodes: 7,
    };
    let stores = common::stores(shape);
    let settings = Settings {
        pod_probe_nodes: 3,
        ..Settings::default()
    };
    let total: usize = (0..shape.nodes)
        .map(|n| {
            let derived = derive(&stores, &settings, &common::node_name(n));
            assert_eq!(
                derived.services.len(),
                20,
                "every node connects to every ClusterIP port, every interval or in the sweep"
            );
            derived
                .pods
                .iter()
                .map(|p| p.endpoints.len())
                .sum::<usize>()
        })
        .sum();
    assert_eq!(
        total,
        10 * 2 * 3 * 3,
        "each endpoint-port from exactly 3 nodes"
    );
    let metrics = common::metrics_with_series(1000);
    let lines = common::sample_lines(&metrics.encode());
    assert!(
        (1000..1200).contains(&lines),
        "{lines} sample lines for ~1000 asked"
    );
}

/// Reading numbers out of an exposition and out of /proc.
fn check_sampling() {
    let text = "# HELP x\nprobe_success 1\nprobe_http_duration_seconds{phase=\"connect\"} 0.0201\n";
    assert_eq!(servers::sample(text, "probe_success"), Some(1.0));
    assert_eq!(
        servers::sample(text, "probe_http_duration_seconds{phase=\"connect\"}"),
        Some(0.0201)
    );
    assert_eq!(servers::sample(text, "probe_duration_seconds"), None);
    let pid = std::process::id();
    assert!(common::status_kib(pid, "VmRSS").expect("VmRSS") > 0);
    common::cpu_time(pid).expect("own CPU time");
    let sorted: Vec<std::time::Duration> =
        (1..=100).map(std::time::Duration::from_millis).collect();
    assert_eq!(
        common::quantile(&sorted, 0.99),
        std::time::Duration::from_millis(99)
    );
    assert_eq!(
        common::quantile(&sorted, 0.5),
        std::time::Duration::from_millis(50)
    );
}

/// hopwatch's connect against a listener of this process, as the throughput loop runs it.
fn check_connect_loop() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for _ in 0..50 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        let report = runtime.block_on(hopwatch::probe::tcp::connect(addr, deadline));
        assert_eq!(report.result, Ok(()), "{report:?}");
    }
}
