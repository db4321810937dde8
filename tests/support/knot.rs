//! Knot DNS (`knotd`) as the test's authoritative server, and its own query counters.
//!
//! Knot gives real authoritative answers: NXDOMAIN and NODATA with the SOA, SERVFAIL for a
//! zone declared without a file, REFUSED for names outside every zone (there is no root zone),
//! and TC for a large RRset asked without EDNS. Its `mod-stats` module counts every query by
//! protocol, query type and response code, which lets a test check that the queries the agent
//! reports are the queries the server saw.
//!
//! The server runs as the current user (root in CI, any user elsewhere: it binds no
//! privileged port and drops no privileges). [`Knot`] kills it by PID and removes its
//! directory on drop, also while a failed assertion unwinds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;
use super::net::udp_query;

/// What to install when a Knot program is missing.
const INSTALL: &str = "apt-get install knot knot-dnsutils";

/// The A and AAAA records of `api.example.com`, the "external" name.
pub const API_V4: &str = "192.0.2.10";
pub const API_V6: &str = "2001:db8::10";
/// `kubernetes.default.svc.cluster.local`: A only, so AAAA gets NODATA.
pub const KUBERNETES_V4: &str = "10.96.0.1";
/// `headless.default.svc.cluster.local`: one A per ready pod.
pub const HEADLESS_V4: [&str; 2] = ["10.244.0.11", "10.244.0.12"];
/// `big.default.svc.cluster.local` has this many A records: too many for 512 bytes.
pub const BIG_RECORDS: usize = 60;

/// A zone the server is authoritative for.
#[derive(Debug, Clone)]
pub struct Zone {
    pub domain: String,
    /// The zone file's text; `None` declares the zone without a file, so every query for a
    /// name in it gets SERVFAIL.
    pub text: Option<String>,
}

impl Zone {
    pub fn new(domain: &str, text: &str) -> Zone {
        Zone {
            domain: domain.to_owned(),
            text: Some(text.to_owned()),
        }
    }

    /// A zone declared with no zone file: SERVFAIL for everything in it.
    pub fn broken(domain: &str) -> Zone {
        Zone {
            domain: domain.to_owned(),
            text: None,
        }
    }
}

/// The zones every DNS test uses, modelled on a cluster and the world outside it:
///
/// - `cluster.local`: Services. `kubernetes.default.svc` (A only), `kube-dns.kube-system.svc`,
///   `dual.default.svc` (A and AAAA), `headless.default.svc` (two A), `ext.default.svc` (a
///   CNAME to `api.example.com.`, which Knot does not follow into the other zone, so the
///   answer is the CNAME alone) and `big.default.svc` ([`BIG_RECORDS`] A records).
/// - `example.com`: plays the internet; `api` has A and AAAA.
/// - `node.internal`: the node's own search domain, empty, so every name in it is NXDOMAIN.
/// - `broken.test`: declared without a file, so SERVFAIL.
///
/// Anything else is REFUSED, as there is no root zone.
pub fn default_zones() -> Vec<Zone> {
    vec![
        Zone::new("cluster.local", &cluster_local_zone()),
        Zone::new("example.com", EXAMPLE_COM_ZONE),
        Zone::new("node.internal", NODE_INTERNAL_ZONE),
        Zone::broken("broken.test"),
    ]
}

fn cluster_local_zone() -> String {
    let mut text = String::from(CLUSTER_LOCAL_ZONE);
    for i in 1..=BIG_RECORDS {
        let _ = writeln!(text, "big.default.svc A 10.97.0.{i}");
    }
    text
}

const CLUSTER_LOCAL_ZONE: &str = "\
$ORIGIN cluster.local.
$TTL 30
@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5
@ NS ns.dns.cluster.local.
ns.dns A 10.96.0.10
kubernetes.default.svc A 10.96.0.1
kube-dns.kube-system.svc A 10.96.0.10
dual.default.svc A 10.96.0.20
dual.default.svc AAAA fd00::20
headless.default.svc A 10.244.0.11
headless.default.svc A 10.244.0.12
ext.default.svc CNAME api.example.com.
";

const EXAMPLE_COM_ZONE: &str = "\
$ORIGIN example.com.
$TTL 300
@ SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 60
@ NS ns.example.com.
ns A 192.0.2.1
api A 192.0.2.10
api AAAA 2001:db8::10
";

const NODE_INTERNAL_ZONE: &str = "\
$ORIGIN node.internal.
$TTL 300
@ SOA ns.node.internal. hostmaster.node.internal. 1 7200 1800 86400 60
@ NS ns.node.internal.
";

/// A running `knotd`, killed by PID and its directory removed on drop.
#[derive(Debug)]
pub struct Knot {
    child: Child,
    addr: SocketAddr,
    control: PathBuf,
    knotc: PathBuf,
    log: PathBuf,
    // Dropped after `child` is killed (fields drop in order, and `Drop::drop` runs first).
    dir: TempDir,
}

impl Knot {
    /// Starts Knot with [`default_zones`].
    pub fn start() -> Knot {
        Knot::with_zones(&default_zones())
    }

    /// Starts Knot serving `zones` on a free UDP and TCP port of a loopback address of its
    /// own, and returns once it answers queries and its control socket accepts commands.
    pub fn with_zones(zones: &[Zone]) -> Knot {
        let knotd = program("knotd");
        let knotc = program("knotc");
        let dir = TempDir::new("knot");
        let ip = super::loopback_ip();
        let addr = SocketAddr::from((ip, super::free_port(ip)));
        let conf = write_config(dir.path(), addr, zones);
        let log = dir.path().join("knotd.log");
        let child = spawn(&knotd, &conf, &log);
        let mut knot = Knot {
            child,
            addr,
            control: dir.path().join("knot.sock"),
            knotc,
            log,
            dir,
        };
        knot.wait_ready(zones);
        knot
    }

    /// Where the server listens, for UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory holding the config, zones, control socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's counters once they have stopped moving: a reply can reach the client an
    /// instant before its worker thread has counted it.
    pub fn counters(&self) -> Counters {
        let mut last = self.read_counters();
        let give_up = Instant::now() + Duration::from_secs(3);
        loop {
            std::thread::sleep(Duration::from_millis(40));
            let now = self.read_counters();
            if now == last || Instant::now() > give_up {
                return now;
            }
            last = now;
        }
    }

    fn read_counters(&self) -> Counters {
        let output = self.knotc_stats();
        assert!(
            output.status.success(),
            "knotc stats failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        Counters::parse(&String::from_utf8_lossy(&output.stdout))
    }

    fn knotc_stats(&self) -> std::process::Output {
        Command::new(&self.knotc)
            .arg("-s")
            .arg(&self.control)
            .arg("-t")
            .arg("5")
            .arg("stats")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.knotc.display()))
    }

    fn wait_ready(&mut self, zones: &[Zone]) {
        let probe = zones
            .iter()
            .find(|z| z.text.is_some())
            .map_or("cluster.local.".to_owned(), |z| format!("{}.", z.domain));
        let give_up = Instant::now() + Duration::from_secs(15);
        while udp_query(self.addr, &probe, "SOA", Duration::from_millis(200)).is_none() {
            self.check_alive(give_up, "answer a query");
        }
        while !self.knotc_stats().status.success() {
            self.check_alive(give_up, "accept control commands");
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        assert!(
            !log.contains("cannot bind"),
            "knotd could not bind {}:\n{log}",
            self.addr
        );
    }

    fn check_alive(&mut self, give_up: Instant, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "knotd exited ({status}) before it would {what}:\n{}",
                self.log()
            );
        }
        assert!(
            Instant::now() < give_up,
            "knotd on {} did not {what} within 15 s:\n{}",
            self.addr,
            self.log()
        );
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- knotd log ({}) ---\n{}",
                self.addr,
                tail(&self.log(), 40)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds a Knot program on PATH or in the sbin directories a non-root PATH lacks.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found: {INSTALL}"))
}

fn spawn(knotd: &Path, conf: &Path, log: &Path) -> Child {
    let log_file = std::fs::File::create(log).expect("create the knotd log");
    Command::new(knotd)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", knotd.display()))
}

/// Writes `knot.conf` and the zone files into `dir`; returns the config's path.
///
/// One worker per kind keeps the server small. `mod-stats` is loaded for every zone and for
/// queries that match none (REFUSED), so all queries are counted.
fn write_config(dir: &Path, addr: SocketAddr, zones: &[Zone]) -> PathBuf {
    let zone_dir = dir.join("zones");
    std::fs::create_dir_all(&zone_dir).expect("create the zone directory");
    let mut conf = format!(
        "server:\n    rundir: \"{dir}\"\n    listen: [ {ip}@{port} ]\n\
         \x20   udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{dir}/db\"\n\
         mod-stats:\n  - id: stats\n    request-protocol: on\n    query-type: on\n\
         \x20   response-code: on\n    server-operation: on\n\
         template:\n  - id: default\n    storage: \"{zones}\"\n    file: \"%s.zone\"\n\
         \x20   semantic-checks: off\n    journal-content: none\n    zonefile-sync: -1\n\
         \x20   global-module: mod-stats/stats\n\
         zone:\n",
        dir = dir.display(),
        ip = addr.ip(),
        port = addr.port(),
        zones = zone_dir.display(),
    );
    for zone in zones {
        let _ = writeln!(conf, "  - domain: {}", zone.domain);
        if let Some(text) = &zone.text {
            let file = zone_dir.join(format!("{}.zone", zone.domain));
            std::fs::write(&file, text).expect("write a zone file");
        }
    }
    let path = dir.join("knot.conf");
    std::fs::write(&path, conf).expect("write knot.conf");
    path
}

/// Knot's `mod-stats` counters, keyed as `knotc stats` prints them without the module
/// prefix: `request-protocol[udp4]`, `query-type[AAAA]`, `response-code[NXDOMAIN]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

impl Counters {
    /// Parses `knotc stats` output (`mod-stats.query-type[A] = 3` lines).
    pub fn parse(text: &str) -> Counters {
        let map = text
            .lines()
            .filter_map(|line| line.strip_prefix("mod-stats."))
            .filter_map(|line| line.split_once(" = "))
            .filter_map(|(key, value)| Some((key.trim().to_owned(), value.trim().parse().ok()?)))
            .collect();
        Counters(map)
    }

    /// One counter; counters never incremented are absent from `knotc stats` and read 0.
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// What was counted since `before`.
    pub fn since(&self, before: &Counters) -> Counters {
        let map = self
            .0
            .iter()
            .map(|(key, value)| (key.clone(), value - before.get(key)))
            .filter(|(_, value)| *value > 0)
            .collect();
        Counters(map)
    }

    /// Queries over UDP (IPv4; every test server is on 127.0.0.0/8).
    pub fn udp(&self) -> u64 {
        self.get("request-protocol[udp4]") + self.get("request-protocol[udp6]")
    }

    pub fn tcp(&self) -> u64 {
        self.get("request-protocol[tcp4]") + self.get("request-protocol[tcp6]")
    }

    /// Queries of a type: `"A"`, `"AAAA"`.
    pub fn qtype(&self, qtype: &str) -> u64 {
        self.get(&format!("query-type[{qtype}]"))
    }

    /// Responses with an rcode: `"NOERROR"`, `"NXDOMAIN"`, `"SERVFAIL"`, `"REFUSED"`.
    pub fn rcode(&self, rcode: &str) -> u64 {
        self.get(&format!("response-code[{rcode}]"))
    }

    /// Every query, whatever its protocol.
    pub fn queries(&self) -> u64 {
        self.udp() + self.tcp()
    }
}
