//! The TCP probe against real kube-proxy-style netfilter rules, real routes and real ICMP, in
//! network namespaces this test creates. Needs root, `ip` and `iptables`.
//!
//! ```text
//! node netns (hostNetwork: the probe runs here)            pod netns
//!   veth0 10.77.0.1/24  <------------ veth pair ------------>  eth0 10.77.0.2/24, listener :8080
//!   route 10.96.0.0/12 dev veth0 (the Service CIDR)             INPUT: REJECT with each ICMP
//!   nat    10.96.0.50:80 KUBE-SERVICES → KUBE-SVC → KUBE-SEP     code on ports 9001-9008
//!          → DNAT 10.77.0.2:8080
//!   filter 10.96.0.51:80 REJECT icmp-port-unreachable (a Service without endpoints)
//!          10.96.0.52:80 DROP (blackholed)
//!   routes unreachable 10.99.0.1, prohibit 10.99.0.2, blackhole 10.99.0.3; none for 10.200.0.0/16
//! ```
//!
//! The probe runs inside the node namespace by re-running this binary there (`netns_support`).

mod netns_support;

use std::time::Duration;

use hopwatch::probe::tcp;
use netns_support::{Netns, NsProcess};

const SERVICE: &str = "10.96.0.50:80";
const EMPTY_SERVICE: &str = "10.96.0.51:80";
const BLACKHOLED_SERVICE: &str = "10.96.0.52:80";
const POD: &str = "10.77.0.2:8080";

// Linux errnos the kernel returns from connect.
const EACCES: i32 = 13;
const EINVAL: i32 = 22;
const ENOPROTOOPT: i32 = 92;
const ENETUNREACH: i32 = 101;
const ECONNREFUSED: i32 = 111;
const EHOSTUNREACH: i32 = 113;

/// kube-proxy's iptables mode for the node, trimmed to what a locally originated connect meets
/// (nat and filter OUTPUT; no masquerading, the node's address is on the pod's link).
const KUBE_PROXY_RULES: &str = "\
*filter
:KUBE-SERVICES - [0:0]
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.51/32 -p tcp -m comment --comment \"hwt/empty:http has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-SERVICES -d 10.96.0.52/32 -p tcp -m comment --comment \"hwt/blackholed:http\" -m tcp --dport 80 -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-HWTWEBHTTP000000 - [0:0]
:KUBE-SEP-HWTWEBHTTPPOD000 - [0:0]
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment \"hwt/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-HWTWEBHTTP000000
-A KUBE-SVC-HWTWEBHTTP000000 -m comment --comment \"hwt/web:http -> 10.77.0.2:8080\" -j KUBE-SEP-HWTWEBHTTPPOD000
-A KUBE-SEP-HWTWEBHTTPPOD000 -p tcp -m comment --comment \"hwt/web:http\" -m tcp -j DNAT --to-destination 10.77.0.2:8080
COMMIT
";

/// The pod's own firewall answers each port with a different rejection.
const POD_REJECTS: [(u16, &str); 8] = [
    (9001, "icmp-host-unreachable"),
    (9002, "icmp-net-unreachable"),
    (9003, "icmp-admin-prohibited"),
    (9004, "icmp-host-prohibited"),
    (9005, "icmp-net-prohibited"),
    (9006, "icmp-proto-unreachable"),
    (9007, "tcp-reset"),
    (9008, "icmp-port-unreachable"),
];

/// The node and pod namespaces, wired and ruled as in the module docs.
struct Lab {
    /// The test function this lab belongs to; its children re-run it.
    test: &'static str,
    node: Netns,
    pod: Netns,
}

impl Lab {
    fn up(test: &'static str) -> Lab {
        netns_support::require_root_and(&[
            ("ip", "iproute2"),
            ("iptables", "iptables"),
            ("iptables-restore", "iptables"),
            ("tee", "coreutils"),
        ]);
        let lab = Lab {
            test,
            node: Netns::new("node"),
            pod: Netns::new("pod"),
        };
        netns_support::veth(
            (&lab.node, "veth0", "10.77.0.1/24"),
            (&lab.pod, "eth0", "10.77.0.2/24"),
        );
        // The Service CIDR needs a route, or a SYN to a ClusterIP fails with ENETUNREACH before
        // it reaches nat OUTPUT, where kube-proxy rewrites it.
        lab.node
            .ip("route add 10.96.0.0/12 dev veth0 src 10.77.0.1");
        for route in [
            "unreachable 10.99.0.1/32",
            "prohibit 10.99.0.2/32",
            "blackhole 10.99.0.3/32",
        ] {
            lab.node.ip(&format!("route add {route}"));
        }
        lab.node.iptables_restore(KUBE_PROXY_RULES);
        lab.pod.iptables_restore(&pod_rules());
        // Without this the pod sends 6 ICMP errors, then one a second, and later probes time out.
        lab.pod.sysctl("net.ipv4.icmp_ratelimit", "0");
        lab
    }

    /// Starts the pod's listener on :8080; it stops when the guard drops.
    fn serve(&self) -> NsProcess<'_> {
        self.pod.spawn_self(self.test, "listen 0.0.0.0:8080")
    }

    /// Connects from the node to each address in turn, each with its own `timeout`.
    fn probe(&self, addresses: &[&str], timeout: Duration) -> Vec<Seen> {
        let role = format!("connect {} {}", timeout.as_millis(), addresses.join(" "));
        let budget = timeout * addresses.len() as u32 + Duration::from_secs(10);
        let lines = self.node.run_self(self.test, &role, budget);
        let seen: Vec<Seen> = lines.iter().map(|l| Seen::parse(l)).collect();
        assert_eq!(
            seen.len(),
            addresses.len(),
            "one line per address: {lines:?}"
        );
        seen
    }

    fn probe_one(&self, address: &str, timeout: Duration) -> Seen {
        self.probe(&[address], timeout).remove(0)
    }

    /// Packets the node's blackhole DROP rule has matched.
    fn dropped_packets(&self) -> u64 {
        let table = self
            .node
            .exec("iptables -w -t filter -L KUBE-SERVICES -n -v -x");
        let line = table
            .lines()
            .find(|l| l.contains("DROP") && l.contains("10.96.0.52"));
        let line = line.unwrap_or_else(|| panic!("no DROP rule for 10.96.0.52 in:\n{table}"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    }
}

fn pod_rules() -> String {
    let rejects: String = POD_REJECTS
        .iter()
        .map(|(port, with)| {
            format!("-A INPUT -p tcp -m tcp --dport {port} -j REJECT --reject-with {with}\n")
        })
        .collect();
    format!("*filter\n{rejects}COMMIT\n")
}

/// One connect as the child in the node namespace reported it.
#[derive(Debug)]
struct Seen {
    address: String,
    result: String,
    os_error: Option<i32>,
    duration: Duration,
    local: Option<String>,
}

impl Seen {
    fn parse(line: &str) -> Seen {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Seen {
            address: v["address"].as_str().unwrap().to_string(),
            result: v["result"].as_str().unwrap().to_string(),
            os_error: v["os_error"].as_i64().map(|e| e as i32),
            duration: Duration::from_secs_f64(v["duration_seconds"].as_f64().unwrap()),
            local: v["local"].as_str().map(str::to_string),
        }
    }

    fn assert(&self, result: &str, os_error: Option<i32>) {
        assert_eq!(
            (self.result.as_str(), self.os_error),
            (result, os_error),
            "{self:?}"
        );
    }
}

/// What a re-run copy of this binary does inside a namespace (see `netns_support`).
fn child(role: &str) {
    let words: Vec<&str> = role.split_whitespace().collect();
    match words.as_slice() {
        ["listen", address] => listen(address),
        ["connect", millis, addresses @ ..] => connect_each(millis.parse().unwrap(), addresses),
        _ => panic!("unknown role {role:?}"),
    }
}

fn listen(address: &str) {
    let listener = std::net::TcpListener::bind(address).unwrap();
    netns_support::say("ready");
    // Accept and close, until the parent kills this process.
    for stream in listener.incoming() {
        drop(stream);
    }
}

fn connect_each(millis: u64, addresses: &[&str]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for address in addresses {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(millis);
        let report = runtime.block_on(tcp::connect(address.parse().unwrap(), deadline));
        let mut json = report.to_json();
        json["os_error"] = report.os_error.into();
        json["local"] = report.local.map(|l| l.ip().to_string()).into();
        netns_support::say(&json.to_string());
    }
}

const SHORT: Duration = Duration::from_secs(1);

#[test]
fn service_hop_meets_kube_proxy_rules() {
    if let Some(role) = netns_support::role() {
        return child(&role);
    }
    let lab = Lab::up("service_hop_meets_kube_proxy_rules");
    let _server = lab.serve();

    let dnat = lab.probe_one(SERVICE, SHORT);
    dnat.assert("success", None);
    assert_eq!(dnat.local.as_deref(), Some("10.77.0.1"), "{dnat:?}");
    assert!(
        dnat.duration > Duration::ZERO && dnat.duration < SHORT,
        "{dnat:?}"
    );

    let no_endpoints = lab.probe_one(EMPTY_SERVICE, SHORT);
    no_endpoints.assert("refused", Some(ECONNREFUSED));

    let before = lab.dropped_packets();
    let dropped = lab.probe_one(BLACKHOLED_SERVICE, SHORT);
    dropped.assert("timeout", None);
    assert!(
        dropped.duration >= SHORT && dropped.duration < SHORT * 2,
        "{dropped:?}"
    );
    assert!(lab.dropped_packets() > before, "the SYN met the DROP rule");
}

#[test]
fn pod_hop_sees_its_listener_go() {
    if let Some(role) = netns_support::role() {
        return child(&role);
    }
    let lab = Lab::up("pod_hop_sees_its_listener_go");
    let server = lab.serve();
    lab.probe_one(POD, SHORT).assert("success", None);

    drop(server);
    for seen in lab.probe(&[POD, SERVICE], SHORT) {
        seen.assert("refused", Some(ECONNREFUSED));
    }
    // A pod IP nobody answers ARP for: the neighbour lookup fails after 3 solicitations, 1 s apart.
    let gone = lab.probe_one("10.77.0.9:8080", Duration::from_secs(5));
    gone.assert("unreachable", Some(EHOSTUNREACH));
    assert!(gone.duration >= Duration::from_secs(2), "{gone:?}");
}

#[test]
fn icmp_and_route_errors_have_distinct_names() {
    if let Some(role) = netns_support::role() {
        return child(&role);
    }
    let lab = Lab::up("icmp_and_route_errors_have_distinct_names");
    let expected = [
        ("10.77.0.2:9001", "unreachable", EHOSTUNREACH), // icmp-host-unreachable
        ("10.77.0.2:9002", "unreachable", ENETUNREACH),  // icmp-net-unreachable
        ("10.77.0.2:9003", "unreachable", EHOSTUNREACH), // icmp-admin-prohibited (IPv4)
        ("10.77.0.2:9004", "unreachable", EHOSTUNREACH), // icmp-host-prohibited
        ("10.77.0.2:9005", "unreachable", ENETUNREACH),  // icmp-net-prohibited
        ("10.77.0.2:9006", "unreachable", ENOPROTOOPT),  // icmp-proto-unreachable
        ("10.77.0.2:9007", "refused", ECONNREFUSED),     // tcp-reset
        ("10.77.0.2:9008", "refused", ECONNREFUSED),     // icmp-port-unreachable
        ("10.99.0.1:80", "unreachable", EHOSTUNREACH),   // unreachable route
        ("10.99.0.2:80", "prohibited", EACCES),          // prohibit route
        ("10.99.0.3:80", "unreachable", EINVAL),         // blackhole route
        ("10.200.0.1:80", "unreachable", ENETUNREACH),   // no route
    ];
    let addresses: Vec<&str> = expected.iter().map(|(a, _, _)| *a).collect();
    let seen = lab.probe(&addresses, SHORT);
    for ((address, result, errno), seen) in expected.iter().zip(&seen) {
        assert_eq!(seen.address, *address);
        seen.assert(result, Some(*errno));
        assert!(
            seen.duration < SHORT,
            "an error, not the deadline: {seen:?}"
        );
    }
}

#[test]
fn a_failed_test_leaves_no_namespace_or_process_behind() {
    if let Some(role) = netns_support::role() {
        return child(&role);
    }
    const TEST: &str = "a_failed_test_leaves_no_namespace_or_process_behind";
    let mut left = None;
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::up(TEST);
        let server = lab.serve();
        left = Some((
            [lab.node.name().to_string(), lab.pod.name().to_string()],
            server.pid(),
        ));
        panic!("a deliberate failure, to check the cleanup");
    }));
    assert!(failed.is_err());
    let (names, pid) = left.unwrap();
    let listed = netns_support::namespaces();
    for name in &names {
        assert!(
            !listed.contains(name),
            "{name} is still in `ip netns list`: {listed:?}"
        );
    }
    // The PID may belong to someone else by now, but not to this test's listener.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(TEST),
        "listener {pid} still runs"
    );
}
