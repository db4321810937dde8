//! The `hopwatch` binary end to end: `check-config`, and `run` serving its endpoints,
//! reloading its config and shutting down. DNS targets point at a UDP server on loopback that
//! the test runs, so nothing leaves the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "support/tempdir.rs"]
mod tempdir;

use tempdir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");

/// A DNS server on 127.0.0.1 that knows one name, `web.svc.test.` (A 192.0.2.10, no AAAA),
/// and answers NXDOMAIN for every other.
struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const KNOWN: &str = "web.svc.test.";

impl DnsServer {
    fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopping.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        DnsServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reply to one query: the question echoed, and an answer for [`KNOWN`]'s A record.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let (qname, end) = read_name(query, 12)?;
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    let question = query.get(12..end + 4)?;
    let known = qname.eq_ignore_ascii_case(KNOWN);
    let with_address = known && qtype == 1;
    let rcode = if known { 0 } else { 3 };
    let mut reply = vec![query[0], query[1], 0x80 | (query[2] & 0x79), 0x80 | rcode];
    reply.extend_from_slice(&[0, 1, 0, u8::from(with_address), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if with_address {
        // Name pointer to the question, A, IN, TTL 30, 4 bytes of address.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 10]);
    }
    Some(reply)
}

/// The dotted name starting at `at`, and the offset just after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            return Some((if name.is_empty() { ".".into() } else { name }, at));
        }
        name.push_str(std::str::from_utf8(msg.get(at..at + len)?).ok()?);
        name.push('.');
        at += len;
    }
}

/// A config with one DNS target per name, all sent to `dns`, probed every second.
fn config(dns: SocketAddr, resolv_conf: &Path, names: &[&str]) -> String {
    let mut text = format!(
        "listen: 127.0.0.1:9808\nmax_concurrency: 4\ndefaults:\n  interval_seconds: 1\n  \
         timeout_seconds: 0.8\n  jitter_seconds: 0\n  dns:\n    resolv_conf: {}\ndns:\n",
        resolv_conf.display()
    );
    for name in names {
        text.push_str(&format!("  - name: {name}\n    server: {dns}\n"));
    }
    text
}

const RESOLV_CONF: &str = "nameserver 127.0.0.1\nsearch default.svc.test svc.test\noptions ndots:5 timeout:1 attempts:1\n";

/// A running `hopwatch run`, killed on drop; its stderr is collected line by line.
struct Agent {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let mut child = Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving metrics on http://").nth(1) {
                    let _ = found.send(rest.trim_end_matches("/metrics").to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut agent = Agent {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match address.recv_timeout(Duration::from_secs(10)) {
            Ok(addr) => agent.addr = addr.parse().unwrap(),
            Err(_) => panic!(
                "no \"serving metrics on\" line in 10 s; stderr:\n{}",
                agent.stderr()
            ),
        }
        agent
    }

    fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        (
            head[9..12].parse().unwrap(),
            head.to_lowercase(),
            body.to_string(),
        )
    }

    fn metrics(&self) -> String {
        self.get("/metrics").2
    }

    /// Waits until the value of the series `series` (name and labels as exposed) satisfies `ok`.
    fn wait_for(&self, series: &str, ok: impl Fn(f64) -> bool, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.metrics();
            if value(&text, series).is_some_and(&ok) {
                return text;
            }
            if start.elapsed() > within {
                panic!(
                    "{series} not as expected after {within:?}:\n{text}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until stderr has a line containing `needle`.
    fn wait_log(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if start.elapsed() > within {
                panic!(
                    "no {needle:?} on stderr after {within:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill -{name} {pid} failed (is procps installed?)"
        );
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > within {
                panic!(
                    "still running {within:?} after the signal; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series written exactly as `series` in the exposition `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn at_least(n: f64) -> impl Fn(f64) -> bool {
    move |v| v >= n
}

const FIVE_SECONDS: Duration = Duration::from_secs(5);

#[test]
fn check_config_accepts_a_valid_file() {
    let dir = TempDir::new("check-ok");
    let resolv = dir.file("resolv.conf", RESOLV_CONF);
    let path = dir.file(
        "config.yaml",
        &config("127.0.0.1:5353".parse().unwrap(), &resolv, &["web", "api"]),
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, format!("{}: ok (2 targets)\n", path.display()));
}

#[test]
fn check_config_rejects_a_bad_file_with_exit_2() {
    let dir = TempDir::new("check-bad");
    let path = dir.file("config.yaml", "dns:\n  - name: web\n    colour: blue\n");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:3:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("colour"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn run_serves_metrics_health_and_readiness() {
    let dns = DnsServer::start();
    let dir = TempDir::new("run-serves");
    let resolv = dir.file("resolv.conf", RESOLV_CONF);
    let path = dir.file("config.yaml", &config(dns.addr, &resolv, &["web"]));
    let agent = Agent::start(&path);

    let (status, head, body) = agent.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("hopwatch_build_info{revision=\""), "{body}");
    assert!(body.contains("hopwatch_targets{hop=\"dns\"} 1\n"), "{body}");
    let (status, _, health) = agent.get("/healthz");
    assert_eq!((status, health.as_str()), (200, "ok\n"));
    assert_eq!(agent.get("/readyz").0, 200);
    assert_eq!(agent.get("/nope").0, 404);

    // The DNS probe against the test's server: `web` is found on the second search step.
    let ok = r#"hopwatch_probes_total{hop="dns",result="success",target="web"}"#;
    let text = agent.wait_for(ok, at_least(1.0), FIVE_SECONDS);
    let nxdomain = r#"hopwatch_dns_queries_total{mode="search",qtype="A",rcode="NXDOMAIN",server="static",target="web",transport="udp"}"#;
    assert!(value(&text, nxdomain).is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        value(
            &text,
            r#"hopwatch_dns_queries_per_lookup{mode="search",server="static",target="web"}"#
        ),
        Some(4.0)
    );
    assert!(
        !text.contains("127.0.0.1"),
        "no label carries an address: {text}"
    );
}

#[test]
fn sighup_with_a_bad_config_keeps_the_old_one() {
    let dns = DnsServer::start();
    let dir = TempDir::new("run-hup");
    let resolv = dir.file("resolv.conf", RESOLV_CONF);
    let path = dir.file("config.yaml", &config(dns.addr, &resolv, &["web"]));
    let agent = Agent::start(&path);
    agent.wait_for(r#"hopwatch_targets{hop="dns"}"#, |n| n == 1.0, FIVE_SECONDS);

    let ok = "hopwatch_config_last_reload_successful";
    assert_eq!(value(&agent.metrics(), ok), Some(1.0), "the initial load");
    std::fs::write(&path, "dns:\n  - name: web\n    interval_seconds: -1\n").unwrap();
    agent.signal("HUP");

    let failed = r#"hopwatch_config_reloads_total{result="failure"}"#;
    let text = agent.wait_for(failed, at_least(1.0), FIVE_SECONDS);
    assert_eq!(
        value(&text, r#"hopwatch_config_reloads_total{result="success"}"#),
        Some(0.0)
    );
    assert_eq!(value(&text, ok), Some(0.0), "{text}");
    assert_eq!(
        value(&text, r#"hopwatch_targets{hop="dns"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"target="web""#),
        "the old target still runs: {text}"
    );
    agent.wait_log("config rejected", FIVE_SECONDS);
    assert!(
        agent.stderr().contains("interval_seconds"),
        "{}",
        agent.stderr()
    );
    assert_eq!(agent.get("/healthz").0, 200);
}

#[test]
fn a_changed_config_file_is_picked_up() {
    let dns = DnsServer::start();
    let dir = TempDir::new("run-change");
    let resolv = dir.file("resolv.conf", RESOLV_CONF);
    let path = dir.file("config.yaml", &config(dns.addr, &resolv, &["web"]));
    let agent = Agent::start(&path);
    agent.wait_for(r#"hopwatch_targets{hop="dns"}"#, |n| n == 1.0, FIVE_SECONDS);

    // Replaced the way a ConfigMap update replaces it: a new file renamed over the old one.
    let next = dir.file(
        "config.yaml.new",
        &config(dns.addr, &resolv, &["api", "other"]),
    );
    std::fs::rename(next, &path).unwrap();

    let text = agent.wait_for(r#"hopwatch_targets{hop="dns"}"#, |n| n == 2.0, FIVE_SECONDS);
    assert_eq!(
        value(&text, r#"hopwatch_config_reloads_total{result="success"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "hopwatch_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(text.contains(r#"target="api""#), "{text}");
    assert!(
        !text.contains(r#"target="web""#),
        "the removed target's series are gone: {text}"
    );
}

#[test]
fn sigterm_exits_0_within_2_seconds() {
    let dns = DnsServer::start();
    let dir = TempDir::new("run-term");
    let resolv = dir.file("resolv.conf", RESOLV_CONF);
    let path = dir.file("config.yaml", &config(dns.addr, &resolv, &["web", "api"]));
    let mut agent = Agent::start(&path);
    agent.wait_for(r#"hopwatch_targets{hop="dns"}"#, |n| n == 2.0, FIVE_SECONDS);

    let start = Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(2));

    assert!(status.success(), "{status}; stderr:\n{}", agent.stderr());
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// A GET of `path` from `addr`: the status code and the body.
fn get_from(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: canary\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_string())
}

#[test]
fn the_canary_answers_on_its_own_port_and_a_reload_keeps_it() {
    let dns = DnsServer::start();
    let dir = TempDir::new("run-canary");
    let resolv = dir.file("resolv.conf", RESOLV_CONF);
    let base = config(dns.addr, &resolv, &["web"]);
    let path = dir.file(
        "config.yaml",
        &format!("{base}canary:\n  listen: 127.0.0.1:0\n"),
    );
    let agent = Agent::start(&path);
    agent.wait_log("answering the canary on http://", FIVE_SECONDS);
    let log = agent.stderr();
    let canary = log
        .split("answering the canary on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    assert_ne!(canary, agent.addr.to_string());

    for path in ["/", "/metrics"] {
        let (status, body) = get_from(&canary, path);
        assert_eq!(status, 200, "{path}");
        assert!(
            body.starts_with("hopwatch canary on node "),
            "{path}: {body}"
        );
    }
    let text = agent.wait_for("hopwatch_canary_requests_total", |n| n == 2.0, FIVE_SECONDS);
    assert_eq!(
        value(&text, r#"hopwatch_canary_errors_total{reason="bind"}"#),
        Some(0.0)
    );

    // A reload cannot move it, as it cannot move `listen`: the running one keeps answering.
    let next = dir.file(
        "config.yaml.new",
        &format!("{base}canary:\n  listen: 127.0.0.1:1\n"),
    );
    std::fs::rename(next, &path).unwrap();
    agent.wait_log("canary.listen 127.0.0.1:1 ignored", FIVE_SECONDS);
    assert_eq!(get_from(&canary, "/").0, 200);
}
