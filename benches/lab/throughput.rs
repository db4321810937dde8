//! Throughput ceiling on loopback, one core: how many TCP connect probes and DNS lookups per
//! second hopwatch's probe code does on the agent's current-thread runtime, next to a blocking
//! round-trip loop in plain Rust (the distance to the machine's own limit) and raw tokio
//! connects (the distance to the runtime's).
//!
//! The measuring process is pinned to core 0; the acceptor, Knot and nginx run on core 1.

use std::cell::Cell;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hopwatch::config::Config;
use hopwatch::metrics::Metrics;
use hopwatch::probe::dns::{self, DnsCheck, Flavor, LookupOptions, QueryTypes, ResolvConf};
use hopwatch::probe::{Hop, TargetKey, tcp};

use crate::common;
use crate::servers::{Acceptor, find_pid, pin_pid, pinned, this_exe};
use crate::{nginx_support, support};

const NAME: &str = "kubernetes.default.svc.cluster.local.";

/// Starts the servers on core 1, measures in a child on core 0, prints the table.
pub fn run(seconds: f64, concurrency: usize) {
    let acceptor = Acceptor::start(&this_exe(), 1);
    let knot = support::knot::Knot::start();
    let knot_pid = find_pid(&knot.dir().display().to_string()).expect("knotd's PID");
    pin_pid(knot_pid, 1);
    let lab = nginx_support::Lab::start();
    let nginx_pid = find_pid(
        &lab.ca_file
            .parent()
            .expect("the lab's directory")
            .display()
            .to_string(),
    )
    .expect("nginx's PID");
    pin_pid(nginx_pid, 1);
    let dir = support::TempDir::new("bench-throughput");
    let resolv = dir.file("resolv.conf", support::POD_RESOLV_CONF);
    let out = pinned(0, &this_exe())
        .arg("throughput-inner")
        .arg(join(&acceptor.addrs))
        .arg(knot.addr().to_string())
        .arg(&resolv)
        .arg(lab.https.to_string())
        .arg(&lab.ca_file)
        .arg(seconds.to_string())
        .arg(concurrency.to_string())
        .output()
        .expect("run the throughput worker");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "throughput worker failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One measured loop: operations, failures, wall time, CPU time.
struct Rate {
    ops: u64,
    failures: u64,
    wall: Duration,
    cpu: Duration,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
}

/// `throughput-inner ACCEPTOR KNOT RESOLV SECONDS CONCURRENCY`
pub fn inner_main(args: &[String]) {
    let [acceptor, knot, resolv, https, ca_file, seconds, concurrency] = args else {
        panic!("usage: throughput-inner ACCEPTOR KNOT RESOLV HTTPS CA_FILE SECONDS CONCURRENCY");
    };
    let https: SocketAddr = https.parse().expect("HTTPS");
    let ca = std::fs::read(ca_file).expect("the CA file");
    let acceptor = crate::servers::parse_addrs(acceptor);
    let knot: SocketAddr = knot.parse().expect("KNOT");
    let resolv = PathBuf::from(resolv);
    let span = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let c: usize = concurrency.parse().expect("CONCURRENCY");
    println!("## Throughput ceiling on loopback, one core ({c} probes in flight)\n");
    println!("{}\n", common::machine());
    println!("| what | ops/s | mean time per op | failed | CPU of the measuring core |");
    println!("|---|---|---|---|---|");
    row(
        "TCP: blocking connect+close loop (plain Rust, 1 in flight)",
        &measured(|| blocking_connects(&acceptor, span)),
    );
    row(
        "TCP: raw tokio TcpStream::connect",
        &measured(|| tokio_connects(&acceptor, span, c)),
    );
    row(
        "TCP: hopwatch tcp::connect",
        &measured(|| hopwatch_connects(&acceptor, span, c, false)),
    );
    row(
        "TCP: hopwatch tcp::connect + Metrics::record",
        &measured(|| hopwatch_connects(&acceptor, span, c, true)),
    );
    row(
        "DNS: blocking UDP query loop (plain Rust, 1 in flight)",
        &measured(|| blocking_queries(knot, span)),
    );
    row(
        "DNS: hopwatch dns::lookup (A, FQDN: 1 query)",
        &measured(|| lookups(knot, span, c)),
    );
    row(
        "DNS: hopwatch dns::probe + Metrics::record (reads resolv.conf)",
        &measured(|| dns_probes(knot, &resolv, span, c)),
    );
    let tls_c = c.min(16);
    row(
        "HTTPS: rustls handshake + GET, one shared config (the floor)",
        &measured(|| raw_https(https, &ca, span, tls_c)),
    );
    row(
        "HTTPS: hopwatch http::request (new connection, TLS 1.3, verdict, chain facts)",
        &measured(|| hopwatch_https(https, &ca, span, tls_c)),
    );
    println!();
}

fn row(name: &str, r: &Rate) {
    let per_op = r.wall.as_secs_f64() / r.ops.max(1) as f64;
    let cpu = r.cpu.as_secs_f64() / r.wall.as_secs_f64() * 100.0;
    println!(
        "| {name} | {:.0} | {:.1} µs | {} | {cpu:.0} % |",
        r.per_second(),
        per_op * 1e6,
        r.failures
    );
}

/// Runs `work` (which returns ops, failures and wall time) and adds the CPU it took.
fn measured(work: impl FnOnce() -> (u64, u64, Duration)) -> Rate {
    let pid = std::process::id();
    let before = common::cpu_time(pid).expect("own CPU time");
    let (ops, failures, wall) = work();
    let cpu = common::cpu_time(pid).expect("own CPU time") - before;
    Rate {
        ops,
        failures,
        wall,
        cpu,
    }
}

fn join(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    all.join(",")
}

fn blocking_connects(addrs: &[SocketAddr], span: Duration) -> (u64, u64, Duration) {
    let start = Instant::now();
    let (mut ops, mut failures) = (0, 0);
    while start.elapsed() < span {
        match TcpStream::connect(addrs[ops as usize % addrs.len()]) {
            Ok(stream) => drop(stream),
            Err(_) => failures += 1,
        }
        ops += 1;
    }
    (ops, failures, start.elapsed())
}

fn blocking_queries(server: SocketAddr, span: Duration) -> (u64, u64, Duration) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    socket.connect(server).expect("connect UDP");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let (_, query) = support::net::encode_query(NAME, "A", None);
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    let (mut ops, mut failures) = (0, 0);
    while start.elapsed() < span {
        socket.send(&query).expect("send");
        if socket.recv(&mut buf).is_err() {
            failures += 1;
        }
        ops += 1;
    }
    (ops, failures, start.elapsed())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `c` copies of `one` in a loop on one current-thread runtime for `span`.
fn concurrently<F, Fut>(span: Duration, c: usize, one: F) -> (u64, u64, Duration)
where
    F: Fn(usize) -> Fut + 'static,
    Fut: std::future::Future<Output = bool> + 'static,
{
    let ops = Rc::new(Cell::new(0u64));
    let failures = Rc::new(Cell::new(0u64));
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    let one = Rc::new(one);
    for i in 0..c {
        let (ops, failures, one) = (Rc::clone(&ops), Rc::clone(&failures), Rc::clone(&one));
        local.spawn_local(async move {
            while start.elapsed() < span {
                if !one(i).await {
                    failures.set(failures.get() + 1);
                }
                ops.set(ops.get() + 1);
            }
        });
    }
    runtime().block_on(local);
    (ops.get(), failures.get(), start.elapsed())
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(2)
}

fn tokio_connects(addrs: &[SocketAddr], span: Duration, c: usize) -> (u64, u64, Duration) {
    let addrs = addrs.to_vec();
    concurrently(span, c, move |i| {
        let addr = addrs[i % addrs.len()];
        async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
    })
}

fn hopwatch_connects(
    addrs: &[SocketAddr],
    span: Duration,
    c: usize,
    record: bool,
) -> (u64, u64, Duration) {
    let metrics = Rc::new(Metrics::new());
    let addrs = addrs.to_vec();
    concurrently(span, c, move |i| {
        let metrics = Rc::clone(&metrics);
        let addr = addrs[i % addrs.len()];
        async move {
            let report = tcp::connect(addr, deadline()).await;
            if record {
                let key = TargetKey {
                    hop: Hop::Pod,
                    id: format!("ns/svc-{i}:80"),
                };
                metrics.record(&key, &report.outcome());
            }
            report.result.is_ok()
        }
    })
}

fn lookups(server: SocketAddr, span: Duration, c: usize) -> (u64, u64, Duration) {
    let opts = Rc::new(LookupOptions {
        conf: ResolvConf::parse(support::POD_RESOLV_CONF, Flavor::Glibc),
        flavor: Flavor::Glibc,
        qtypes: QueryTypes::A,
        server: Some(server),
    });
    concurrently(span, c, move |_| {
        let opts = Rc::clone(&opts);
        async move { dns::lookup(NAME, &opts, deadline()).await.result.is_ok() }
    })
}

fn dns_probes(
    server: SocketAddr,
    resolv: &std::path::Path,
    span: Duration,
    c: usize,
) -> (u64, u64, Duration) {
    let yaml = format!(
        "dns:\n  - name: {NAME}\n    id: bench\n    server: \"{server}\"\n    qtypes: [A]\n    resolv_conf: {}\n",
        resolv.display()
    );
    let config = Config::parse(&yaml, "bench.yaml").unwrap_or_else(|e| panic!("{e}"));
    let check = Rc::new(DnsCheck::configured(config.dns[0].clone()));
    let metrics = Rc::new(Metrics::new());
    let key = check.target.key();
    concurrently(span, c, move |_| {
        let (check, metrics, key) = (Rc::clone(&check), Rc::clone(&metrics), key.clone());
        async move {
            let outcome = dns::probe(&check, deadline()).await;
            metrics.record(&key, &outcome);
            outcome.result.is_ok()
        }
    })
}

fn hopwatch_https(addr: SocketAddr, ca: &[u8], span: Duration, c: usize) -> (u64, u64, Duration) {
    use hopwatch::probe::http::{self, CaBundle, HttpSpec, HttpUrl};
    let url = HttpUrl::parse(&format!("https://{}/", nginx_support::OK)).expect("URL");
    let spec = Rc::new(HttpSpec {
        connect_to: Some(addr),
        ca: CaBundle::from_pem(ca, "ca.pem").expect("the CA"),
        ..HttpSpec::new(url)
    });
    concurrently(span, c, move |_| {
        let spec = Rc::clone(&spec);
        async move { http::request(&spec, deadline()).await.result.is_ok() }
    })
}

/// The least a client can do for the same request: one config for every connection, the
/// handshake, a GET, the response read to its end.
fn raw_https(addr: SocketAddr, ca: &[u8], span: Duration, c: usize) -> (u64, u64, Duration) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a trust anchor");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        nginx_support::OK
    );
    concurrently(span, c, move |_| {
        let (connector, request) = (connector.clone(), request.clone());
        async move {
            let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                return false;
            };
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(nginx_support::OK).expect("a server name");
            let Ok(mut tls) = connector.connect(name, tcp).await else {
                return false;
            };
            let mut response = Vec::new();
            tls.write_all(request.as_bytes()).await.is_ok()
                && tls.read_to_end(&mut response).await.is_ok()
                && response.starts_with(b"HTTP/1.1 200")
        }
    })
}
