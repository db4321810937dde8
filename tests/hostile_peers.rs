//! Peers that misbehave on purpose, each on loopback: an HTTP server that sends its headers
//! one byte a second, one whose headers never end, one with a 1 GiB body, a TLS port that
//! never answers the ClientHello, a TLS server that sends a chain of 100 certificates, a TCP
//! peer that accepts and never reads, and a DNS server that sets TC on every UDP answer while
//! its TCP side accepts and never answers.
//!
//! One `hopwatch run` probes them all next to a healthy TCP target. What must hold: every
//! probe of a hostile peer ends within its timeout with the failure that names it, the
//! healthy target keeps its schedule (no probe starts late by more than 250 ms), and the
//! agent's peak memory stays under 64 MiB although one peer offers a gigabyte.

#[allow(
    dead_code,
    reason = "the nginx tests' PKI; this file uses its long chain only"
)]
#[path = "nginx_support/pki.rs"]
mod pki;
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use support::process::{Process, http_get};
use support::prom::Exposition;
use support::{TempDir, loopback_ip};

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");
/// Every hostile target's timeout; the interval is 2 s.
const TIMEOUT: f64 = 1.5;

/// A TCP server on `ip` that hands each connection to `handler` on a thread of its own.
fn serve(ip: Ipv4Addr, handler: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("bind a hostile peer");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || handler(stream));
        }
    });
    addr
}

/// Reads the request head (or gives up after a second), so the reply follows a request.
fn read_request(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.read(&mut [0u8; 4096]);
}

fn slow_headers(mut s: TcpStream) {
    read_request(&mut s);
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
        if s.write_all(&[*byte]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn endless_headers(mut s: TcpStream) {
    read_request(&mut s);
    let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
    if s.write_all(b"HTTP/1.1 200 OK\r\n").is_err() {
        return;
    }
    while s.write_all(line.as_bytes()).is_ok() {}
}

fn huge_body(mut s: TcpStream) {
    read_request(&mut s);
    let head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1073741824\r\n\r\n";
    if s.write_all(head).is_err() {
        return;
    }
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..(1 << 14) {
        if s.write_all(&chunk).is_err() {
            return;
        }
    }
}

/// Accepts, then neither reads nor writes: a TLS server that never answers the ClientHello,
/// a TCP peer that never reads, a DNS-over-TCP server that never answers.
fn silent(s: TcpStream) {
    std::thread::sleep(Duration::from_secs(120));
    drop(s);
}

/// A TLS server on `ip` whose chain is a leaf for `localhost` and 99 intermediates under a
/// root, and that root's PEM (the probe is given it as its CA, so path building has to work
/// through all of them).
fn long_chain_tls(ip: Ipv4Addr) -> (SocketAddr, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64;
    let chain = pki::long_chain(&["localhost"], 100, now);
    let certs: Vec<CertificateDer<'static>> = chain
        .chain_der
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key_der));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the long chain as the server's certificate");
    let config = Arc::new(config);
    let listener = TcpListener::bind((ip, 0)).expect("bind the long-chain TLS server");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::Stream::new(&mut conn, &mut stream);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            });
        }
    });
    (addr, chain.root_pem)
}

fn healthy(s: TcpStream) {
    drop(s);
}

/// A DNS server on `ip`: every UDP query is answered with its question and TC set (the
/// answer did not fit), and the TCP port it sends the resolver to accepts and stays silent.
fn truncating_dns(ip: Ipv4Addr) -> SocketAddr {
    let tcp = TcpListener::bind((ip, 0)).expect("bind DNS over TCP");
    let addr = tcp.local_addr().expect("its address");
    let udp = UdpSocket::bind(addr).expect("bind DNS over UDP on the same port");
    std::thread::spawn(move || {
        for stream in tcp.incoming().map_while(Result::ok) {
            std::thread::spawn(move || silent(stream));
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80 | 0x02; // QR, TC
            reply[3] = 0x00; // NOERROR
            reply[6..12].fill(0); // no answer, authority or additional records
            let _ = udp.send_to(&reply, from);
        }
    });
    addr
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The results a target had so far, with their counts (results never seen left out).
fn result_of(e: &Exposition, hop: &str, target: &str) -> Vec<(String, f64)> {
    e.series("hopwatch_probes_total", &[("hop", hop), ("target", target)])
        .into_iter()
        .filter(|s| s.value > 0.0)
        .map(|s| (s.label("result").unwrap_or_default().to_string(), s.value))
        .collect()
}

#[test]
fn hostile_peers_are_bounded_by_their_timeouts_and_leave_the_others_on_schedule() {
    let ip = loopback_ip();
    let slow = serve(ip, slow_headers);
    let endless = serve(ip, endless_headers);
    let huge = serve(ip, huge_body);
    let tls = serve(ip, silent);
    let never_reads = serve(ip, silent);
    let ok = serve(ip, healthy);
    let (long_chain, long_chain_root) = long_chain_tls(ip);
    let dns = truncating_dns(ip);
    let listen = SocketAddr::from((ip, support::free_port(ip)));

    let dir = TempDir::new("hostile");
    let resolv = dir.file("resolv.conf", "nameserver 127.0.0.1\noptions attempts:1\n");
    let root = dir.file("long-chain-root.pem", &long_chain_root);
    let config = format!(
        "listen: \"{listen}\"\nmax_concurrency: 16\n\
         defaults: {{interval_seconds: 2, timeout_seconds: {TIMEOUT}, jitter_seconds: 0, dns: {{resolv_conf: \"{resolv}\"}}}}\n\
         http:\n  \
           - {{url: \"http://{slow}/\", id: slow-headers}}\n  \
           - {{url: \"http://{endless}/\", id: endless-headers}}\n  \
           - {{url: \"http://{huge}/\", id: huge-body}}\n  \
           - {{url: \"https://{tls}/\", id: silent-tls}}\n  \
           - {{url: \"https://localhost:{port}/\", id: long-chain, connect_to: \"{long_chain}\", ca_file: \"{root}\"}}\n\
         tcp:\n  \
           - {{address: \"{never_reads}\", id: never-reads}}\n  \
           - {{address: \"{ok}\", id: healthy, interval_seconds: 0.25, timeout_seconds: 0.2}}\n\
         dns:\n  \
           - {{name: example.test., id: tc-forever, server: \"{dns}\", qtypes: [A]}}\n",
        resolv = resolv.display(),
        port = long_chain.port(),
        root = root.display(),
    );
    let path = dir.file("config.yaml", &config);
    let mut command = Command::new(BIN);
    command.args(["run", "--config"]).arg(&path);
    let mut agent = Process::spawn("hopwatch", command, dir.path().join("agent.log"));

    // Four rounds of every hostile target.
    let started = Instant::now();
    let mut e = None;
    while started.elapsed() < Duration::from_secs(30) {
        agent.assert_running();
        std::thread::sleep(Duration::from_millis(500));
        let Ok(response) = http_get(listen, "/metrics") else {
            continue;
        };
        let scraped = Exposition::parse(&response.body).expect("exposition text");
        let rounds = scraped.sum(
            "hopwatch_probes_total",
            &[("hop", "ingress"), ("target", "slow-headers")],
        );
        if rounds >= 4.0 {
            e = Some(scraped);
            break;
        }
    }
    let e = e.unwrap_or_else(|| panic!("no four rounds in 30 s:\n{}", agent.log()));

    for (hop, target, want) in [
        ("ingress", "slow-headers", "timeout"),
        ("ingress", "endless-headers", "http_error"),
        ("ingress", "silent-tls", "timeout"),
        // rustls-webpki builds no path through more than 6 intermediates.
        ("ingress", "long-chain", "tls_handshake"),
        ("dns", "tc-forever", "timeout"),
    ] {
        let results = result_of(&e, hop, target);
        assert!(
            !results.is_empty() && results.iter().all(|(r, _)| r == want),
            "{target}: {results:?}, want only {want}"
        );
    }
    // The huge body: the status line decides (500), the gigabyte is never read.
    let results = result_of(&e, "ingress", "huge-body");
    assert!(
        results.iter().all(|(r, _)| r == "http_status"),
        "huge-body: {results:?}"
    );
    // A peer that never reads still accepts: a TCP connect succeeds.
    assert!(
        result_of(&e, "service", "never-reads")
            .iter()
            .all(|(r, _)| r == "success"),
        "never-reads: {:?}",
        result_of(&e, "service", "never-reads")
    );

    // Every probe ended within its timeout (plus the slack of one scheduler tick).
    for target in [
        "slow-headers",
        "endless-headers",
        "huge-body",
        "silent-tls",
        "long-chain",
    ] {
        let over = e.sum(
            "hopwatch_probe_duration_seconds_count",
            &[("hop", "ingress"), ("target", target)],
        ) - bucket(&e, "ingress", target, TIMEOUT + 0.5);
        assert_eq!(over, 0.0, "{target}: probes longer than the timeout");
    }

    // The healthy target kept its 250 ms schedule meanwhile.
    let healthy = result_of(&e, "service", "healthy");
    assert!(
        healthy.iter().all(|(r, _)| r == "success"),
        "healthy: {healthy:?}"
    );
    let healthy_rounds: f64 = healthy.iter().map(|(_, n)| n).sum();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        healthy_rounds >= (elapsed - 2.0) * 4.0 * 0.8,
        "healthy: {healthy_rounds} rounds in {elapsed:.1} s"
    );
    let lag_total = e.sum("hopwatch_schedule_lag_seconds_count", &[]);
    let lag_on_time = e
        .series("hopwatch_schedule_lag_seconds_bucket", &[])
        .into_iter()
        .filter(|s| {
            s.label("le")
                .and_then(|le| le.parse::<f64>().ok())
                .is_some_and(|le| (le - 0.25).abs() < 1e-9)
        })
        .map(|s| s.value)
        .sum::<f64>();
    assert_eq!(
        lag_on_time, lag_total,
        "probes started more than 250 ms late"
    );

    let peak = peak_rss_kib(agent.pid());
    assert!(
        peak > 0 && peak < 64 * 1024,
        "peak RSS {peak} KiB with a gigabyte on offer"
    );
    eprintln!("peak RSS {peak} KiB, {healthy_rounds} healthy rounds in {elapsed:.1} s");
}

/// Observations of a target's duration histogram at or under `le` seconds (the nearest
/// bucket boundary at or above it).
fn bucket(e: &Exposition, hop: &str, target: &str, le: f64) -> f64 {
    e.series(
        "hopwatch_probe_duration_seconds_bucket",
        &[("hop", hop), ("target", target)],
    )
    .into_iter()
    .filter_map(|s| Some((s.label("le")?.parse::<f64>().ok()?, s.value)))
    .filter(|(bound, _)| *bound >= le)
    .map(|(_, v)| v)
    .fold(
        f64::NAN,
        |best, v| if best.is_nan() { v } else { best.min(v) },
    )
}
