//! The lab from a test: [`Lab::up`] builds it with `tests/lab/lab up` and its `Drop` takes it
//! down with `lab down`, also while a failed assertion unwinds (after printing the tail of
//! every log, so the failure can be read). One lab at a time: the namespace names are
//! machine-wide, so every test holds [`SERIAL`] for as long as its lab lives.
//!
//! The agents, Prometheus and the API server are reached through the lab's loopback portal
//! (127.0.0.1, ports picked at `up`), never by entering a namespace from here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::expo::Expo;

/// Held by the test whose lab is up.
static SERIAL: Mutex<()> = Mutex::new(());

/// The cluster domain of every lab the suite builds: deliberately not `cluster.local`.
pub const DOMAIN: &str = "cluster.lab";
pub const NODES: [&str; 2] = ["node-1", "node-2"];
/// The suite's own run directory (`HOPWATCH_LAB_TEST_DIR`, by default
/// `/tmp/hopwatch-lab-test`); a lab left there by a killed run is taken down first.
pub fn run_dir() -> String {
    std::env::var("HOPWATCH_LAB_TEST_DIR").unwrap_or_else(|_| "/tmp/hopwatch-lab-test".into())
}

/// The first letters of every namespace of the lab (`HOPWATCH_LAB_PREFIX`, by default `hwl-`,
/// as `tests/lab/lab` reads it): two suites with different prefixes and run directories can
/// run side by side.
pub fn prefix() -> String {
    std::env::var("HOPWATCH_LAB_PREFIX").unwrap_or_else(|_| "hwl-".into())
}

/// Programs the lab runs, with the Debian package of each.
const TOOLS: [(&str, &str); 10] = [
    ("ip", "iproute2"),
    ("ipset", "ipset"),
    ("iptables", "iptables"),
    ("iptables-restore", "iptables"),
    ("iptables-save", "iptables"),
    ("nginx", "nginx-light"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("openssl", "openssl"),
    ("python3", "python3"),
];

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab")
}

/// Fails the test unless it runs as root with every program the lab needs.
pub fn require_root_and_tools() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2));
    assert_eq!(
        euid,
        Some("0"),
        "the lab builds network namespaces and needs root: run the tests as root"
    );
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(p, _)| !std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        .map(|(p, pkg)| format!("`{p}` (apt-get install {pkg})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the lab needs {} on PATH",
        missing.join(", ")
    );
}

/// Runs the lab command with the suite's run directory; returns its output, whatever it is.
pub fn lab_command(args: &[&str]) -> Output {
    Command::new(script())
        .args(args)
        .env("HOPWATCH_LAB_DIR", run_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()))
}

/// Like [`lab_command`], panicking with its output when it fails; returns stdout.
pub fn lab_ok(args: &[&str]) -> String {
    let out = lab_command(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`lab {}` failed ({}):\n{}{stdout}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The agent the lab runs: `HOPWATCH_LAB_BINARY`, by default the binary cargo built (a long
/// run such as the soak can take a copy, and leave cargo free to rebuild meanwhile).
pub fn agent_binary() -> String {
    std::env::var("HOPWATCH_LAB_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hopwatch").into())
}

/// Takes `lab up` arguments for a suite lab: [`agent_binary`], loopback ports picked at
/// random, the repository's alert rules.
pub fn up_args() -> Vec<String> {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
    vec![
        "up".into(),
        "--domain".into(),
        DOMAIN.into(),
        "--nodes".into(),
        NODES.len().to_string(),
        "--binary".into(),
        agent_binary(),
        "--port-base".into(),
        "0".into(),
        "--rules".into(),
        rules.display().to_string(),
    ]
}

/// Serializes labs; a test that panicked while holding the lock leaves nothing to protect.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running lab, taken down on drop.
pub struct Lab {
    pub status: Value,
    // Dropped last: the next lab may start only once this one is down.
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds a lab (2 nodes, domain `cluster.lab`) with the hopwatch binary cargo built.
    pub fn up() -> Lab {
        Lab::up_with(&[])
    }

    /// [`Lab::up`] with more `lab up` arguments (e.g. `--time-scale 30`).
    pub fn up_with(extra: &[&str]) -> Lab {
        require_root_and_tools();
        let serial = serial();
        // A lab left behind by a killed run of this suite.
        lab_ok(&["down"]);
        let args = up_args();
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let out = lab_command(&args);
        if !out.status.success() {
            let logs = log_tails();
            lab_command(&["down"]);
            panic!(
                "`lab up` failed ({}):\n{}{}\n{logs}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let status: Value = serde_json::from_str(&lab_ok(&["status", "--json"]))
            .unwrap_or_else(|e| panic!("`lab status --json` is not JSON: {e}"));
        Lab {
            status,
            _serial: serial,
        }
    }

    /// `lab fault ARGS…`: the JSON line it printed.
    pub fn fault(&self, args: &[&str]) -> Value {
        let mut all = vec!["fault"];
        all.extend_from_slice(args);
        json_line(&lab_ok(&all))
    }

    /// `lab heal ARGS…`: the JSON line it printed.
    pub fn heal(&self, args: &[&str]) -> Value {
        let mut all = vec!["heal"];
        all.extend_from_slice(args);
        json_line(&lab_ok(&all))
    }

    fn port(&self, name: &str) -> u64 {
        self.status["ports"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no portal port for {name} in {}", self.status["ports"]))
    }

    /// One scrape of the agent on `node`.
    pub fn try_metrics(&self, node: &str) -> Result<Expo, String> {
        let (code, body) = http_get(&format!("127.0.0.1:{}", self.port(node)), "/metrics")?;
        if code != 200 {
            return Err(format!("agent on {node}: HTTP {code}"));
        }
        Expo::parse(&body)
    }

    pub fn metrics(&self, node: &str) -> Expo {
        self.try_metrics(node).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every node's scrape, in [`NODES`] order.
    pub fn all_metrics(&self) -> Vec<Expo> {
        NODES.iter().map(|n| self.metrics(n)).collect()
    }

    /// An instant query to the lab's Prometheus: the `result` array.
    pub fn prom_query(&self, query: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let (code, body) = http_get(&format!("127.0.0.1:{}", self.port("prometheus")), &path)?;
        let doc: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if code != 200 || doc["status"] != "success" {
            return Err(format!("query {query}: HTTP {code}: {body}"));
        }
        Ok(doc["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// What Prometheus holds against a lab meant to be healthy: every failure counter of the
    /// last hour (also of targets gone since) and every non-zero recorded error ratio, to
    /// print when an alert is active that should not be.
    pub fn failure_evidence(&self) -> String {
        [
            r#"last_over_time(hopwatch_probes_total{result!="success"}[1h])"#,
            "max_over_time(cluster_hop:hopwatch_probes:error_ratio_rate5m[1h]) != 0",
            "min_over_time(cluster_hop:hopwatch_probes:error_ratio_rate5m[1h]) != 0",
        ]
        .iter()
        .map(|q| format!("{q}: {:#?}", self.prom_query(q)))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// kube-apiserver's state: `running`, `ready`, and `watches` open by resource.
    pub fn api_state(&self) -> Value {
        json_line(&lab_ok(&["api-state"]))
    }

    /// CoreDNS's counters: `{"all": {...}, "amp": {...}}`, each by `query-type`,
    /// `response-code` and `protocol`.
    pub fn dns_stats(&self) -> Value {
        json_line(&lab_ok(&["dns-stats"]))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", log_tails());
        }
        let out = lab_command(&["down"]);
        if !out.status.success() {
            eprintln!(
                "lab down failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The last lines of every log of the suite's lab, for a failed test's output.
pub fn log_tails() -> String {
    let dir = Path::new(&run_dir()).join("logs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return format!("(no logs in {})", dir.display());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut out = String::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        out += &format!("--- {} ---\n{}\n", path.display(), tail.join("\n"));
    }
    out
}

fn json_line(stdout: &str) -> Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    serde_json::from_str(line.unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON line ({e}) in {stdout:?}"))
}

/// A plain HTTP/1.0 GET; `(status, body)`.
pub fn http_get(address: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(address).map_err(|e| format!("connect {address}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read from {address}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    Ok((code, body.to_string()))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Calls `check` until it returns `Ok` or `timeout` has passed; panics with the last error.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let until = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= until => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

impl Lab {
    /// Every alert the lab's Prometheus holds (`/api/v1/alerts`), pending or firing: each
    /// `{"labels": {...}, "state": ..., ...}`.
    /// Every alert the lab's Alertmanager holds, inhibited ones included: each with its
    /// `labels` and `status` (`state` `active` or `suppressed`, `inhibitedBy`).
    pub fn am_alerts(&self) -> Result<Vec<Value>, String> {
        let address = format!("127.0.0.1:{}", self.port("alertmanager"));
        let (code, body) = http_get(&address, "/api/v2/alerts")?;
        if code != 200 {
            return Err(format!("/api/v2/alerts: HTTP {code}: {body}"));
        }
        let doc: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        Ok(doc.as_array().cloned().unwrap_or_default())
    }

    pub fn prom_alerts(&self) -> Result<Vec<Value>, String> {
        let address = format!("127.0.0.1:{}", self.port("prometheus"));
        let (code, body) = http_get(&address, "/api/v1/alerts")?;
        let doc: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if code != 200 || doc["status"] != "success" {
            return Err(format!("/api/v1/alerts: HTTP {code}: {body}"));
        }
        Ok(doc["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}
