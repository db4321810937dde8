//! Timing fidelity: a known delay on the TCP handshake, and the latency each tool reports.
//!
//! Runs in a network namespace of its own (root needed): nginx and blackbox_exporter on its
//! loopback, and an `iptables -j NFQUEUE` rule that hands every SYN to nginx's ports to
//! `benches/nfqdelay.py`, which holds it for the delay (this kernel has no `sch_netem`). Each
//! sample takes, back to back: a blocking `connect(2)` timed around the call (the reference),
//! hopwatch's TCP connect and HTTPS connect phase (the library functions `probe tcp` and
//! `probe http` print), and blackbox's `probe_duration_seconds` (tcp module) and
//! `probe_http_duration_seconds{phase="connect"}` (http module).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hopwatch::probe::http::{self, CaBundle, HttpSpec, HttpUrl, Phase};
use hopwatch::probe::tcp;

use crate::common::{self, ms, quantile};
use crate::servers::{Blackbox, Guard, HttpConn, sample, this_exe};
use crate::{nginx_support, support};

const NFQDELAY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/nfqdelay.py");

/// Makes a network namespace, runs the measurement inside it, removes the namespace.
pub fn run(samples: usize, delays_ms: &[u64]) {
    assert!(
        std::env::var("USER").as_deref() == Ok("root") || is_root(),
        "the timing-fidelity benchmark needs root (network namespace, iptables, NFQUEUE)"
    );
    let ns = Netns::new(&format!("hwbench-{}", std::process::id()));
    let delays: Vec<String> = delays_ms.iter().map(u64::to_string).collect();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(this_exe())
        .arg("fidelity-inner")
        .arg(samples.to_string())
        .args(&delays)
        .status()
        .expect("run ip netns exec");
    assert!(status.success(), "the fidelity run failed: {status}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap_or_else(|e| panic!("cannot run ip ({e}): apt-get install iproute2"));
        assert!(status.success(), "ip netns add {name} failed");
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// What one tool reported, per sample.
#[derive(Default)]
struct Series {
    name: &'static str,
    values: Vec<Duration>,
}

/// Inside the namespace: `fidelity-inner SAMPLES DELAY_MS...`.
pub fn inner_main(args: &[String]) {
    let samples: usize = args.first().and_then(|s| s.parse().ok()).expect("SAMPLES");
    let delays: Vec<u64> = args[1..]
        .iter()
        .map(|d| d.parse().expect("DELAY_MS"))
        .collect();
    run_cmd("ip", &["link", "set", "lo", "up"]);
    let lab = nginx_support::Lab::start();
    let dir = support::TempDir::new("bench-fidelity");
    let blackbox = Blackbox::start(dir.path(), &modules(&lab.ca_file), 1);
    println!("## Timing fidelity: SYN delayed by NFQUEUE\n");
    println!("{}\n", common::machine());
    println!(
        "| injected delay | tool (what it reports) | median | median error vs injected | p99 abs error vs injected | median error vs reference connect |"
    );
    println!("|---|---|---|---|---|---|");
    for delay in delays {
        let _delayer =
            (delay > 0).then(|| Delayer::start(delay, &[lab.http.port(), lab.https.port()]));
        let series = measure(&lab, &blackbox, samples);
        print_rows(delay, &series);
    }
    println!();
}

fn modules(ca_file: &Path) -> String {
    format!(
        "  tcp:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n  \
         https:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      \
         headers:\n        Host: {host}\n      tls_config:\n        ca_file: {ca}\n        \
         server_name: {host}\n",
        host = nginx_support::OK,
        ca = ca_file.display(),
    )
}

fn measure(lab: &nginx_support::Lab, bb: &Blackbox, samples: usize) -> [Series; 5] {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let pem = std::fs::read(&lab.ca_file).expect("the CA file");
    let url = HttpUrl::parse(&format!("https://{}/", nginx_support::OK)).expect("URL");
    let spec = HttpSpec {
        connect_to: Some(lab.https),
        ca: CaBundle::from_pem(&pem, "ca.pem").expect("the CA"),
        ..HttpSpec::new(url)
    };
    let mut conn = HttpConn::open(bb.addr).expect("connect to blackbox");
    let tcp_path = Blackbox::path("tcp", &lab.http.to_string());
    let https_path = Blackbox::path("https", &format!("https://{}/", lab.https));
    let mut s = [
        Series {
            name: "reference: blocking connect(2)",
            ..Series::default()
        },
        Series {
            name: "hopwatch TCP connect",
            ..Series::default()
        },
        Series {
            name: "blackbox tcp probe_duration_seconds",
            ..Series::default()
        },
        Series {
            name: "hopwatch HTTPS connect phase",
            ..Series::default()
        },
        Series {
            name: "blackbox http connect phase",
            ..Series::default()
        },
    ];
    for _ in 0..samples {
        s[0].values.push(reference(lab.http));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let report = runtime.block_on(tcp::connect(lab.http, deadline));
        assert!(report.result.is_ok(), "hopwatch connect failed: {report:?}");
        s[1].values.push(report.duration);
        s[2].values.push(blackbox_seconds(
            &mut conn,
            &tcp_path,
            "probe_duration_seconds",
        ));
        let report = runtime.block_on(http::request(&spec, deadline));
        assert!(report.result.is_ok(), "hopwatch https failed: {report:?}");
        s[3].values
            .push(report.phase(Phase::Connect).expect("a connect phase"));
        let phase = "probe_http_duration_seconds{phase=\"connect\"}";
        s[4].values
            .push(blackbox_seconds(&mut conn, &https_path, phase));
    }
    s
}

/// A blocking connect timed right around the call: the closest this process can get to the
/// handshake's own duration.
fn reference(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let stream = TcpStream::connect(addr).expect("reference connect");
    let took = start.elapsed();
    drop(stream);
    took
}

fn blackbox_seconds(conn: &mut HttpConn, path: &str, name: &str) -> Duration {
    let (code, body) = conn.get(path).expect("a /probe answer");
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success"), Some(1.0), "{body}");
    let seconds = sample(&body, name).unwrap_or_else(|| panic!("no {name} in {body}"));
    Duration::from_secs_f64(seconds)
}

fn print_rows(delay_ms: u64, series: &[Series; 5]) {
    let injected = Duration::from_millis(delay_ms);
    for s in series {
        let mut sorted = s.values.clone();
        sorted.sort();
        let signed: Vec<f64> = s
            .values
            .iter()
            .map(|v| v.as_secs_f64() - injected.as_secs_f64())
            .collect();
        let mut abs: Vec<Duration> = signed
            .iter()
            .map(|e| Duration::from_secs_f64(e.abs()))
            .collect();
        abs.sort();
        let vs_ref: Vec<f64> = s
            .values
            .iter()
            .zip(&series[0].values)
            .map(|(v, r)| v.as_secs_f64() - r.as_secs_f64())
            .collect();
        println!(
            "| {delay_ms} ms | {} | {} ms | {:+.3} ms | {} ms | {:+.3} ms |",
            s.name,
            ms(quantile(&sorted, 0.5)),
            median(signed) * 1e3,
            ms(quantile(&abs, 0.99)),
            median(vs_ref) * 1e3,
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn run_cmd(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e})"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// nfqdelay.py holding the SYNs to `ports`, and the iptables rules that feed it. Removed on
/// drop.
struct Delayer {
    rules: Vec<Vec<String>>,
    _process: Guard,
}

impl Delayer {
    fn start(delay_ms: u64, ports: &[u16]) -> Delayer {
        let queue = (4000 + std::process::id() % 60_000).to_string();
        // Real-time priority: other work on the machine must not stretch the hold time.
        let mut child = Command::new("chrt")
            .args(["-f", "50", "python3", NFQDELAY])
            .arg(&queue)
            .arg(delay_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chrt -f 50 python3 {NFQDELAY}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let process = Guard(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("nfqdelay's first line");
        assert!(
            line.starts_with("nfqdelay:"),
            "nfqdelay did not start: {line:?}"
        );
        let rules: Vec<Vec<String>> = ports
            .iter()
            .map(|port| {
                [
                    "INPUT",
                    "-p",
                    "tcp",
                    "--syn",
                    "--dport",
                    &port.to_string(),
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &queue,
                ]
                .map(str::to_string)
                .to_vec()
            })
            .collect();
        for rule in &rules {
            let mut args = vec!["-A".to_string()];
            args.extend(rule.iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cmd("iptables", &args);
        }
        Delayer {
            rules,
            _process: process,
        }
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = Command::new("iptables").arg("-D").args(rule).status();
        }
    }
}
