//! The NetworkPolicy evaluator against an independent implementation: thousands of generated
//! policies and connections, decided by hopwatch's `discovery::netpol` and by netpol-oracle
//! (cyclonus's policy engine after the API server's defaulting, tools/netpol-oracle). They
//! must agree on every connection, egress and ingress separately.
//!
//! The oracle is `$HOPWATCH_NETPOL_ORACLE` (tests/run sets it), else what
//! `tools/netpol-oracle/build` prints (it builds once, then answers from its cache; needs Go).
//! Generation is deterministic: the same seed gives the same cases on every run.
//!
//! One question is never asked: `NotIn` on a label the object lacks. Kubernetes
//! (apimachinery's `labels.Selector`, and the labels documentation: "all resources without a
//! label with the environment key") counts it as a match; cyclonus 0.5.6 does not
//! (`IsMatchExpressionMatchForLabels`). So every generated pod carries `app` and `tier`, and
//! `NotIn` is only written for them; the optional `canary` label gets the other operators. The
//! table test `match_expressions` pins the Kubernetes answer.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use hopwatch::discovery::model::Labels;
use hopwatch::discovery::netpol::{
    Connection, Known, Peer, PodRef, PortName, Protocol, Verdict, evaluate, project,
};

const WORLDS: usize = 600;
const CONNECTIONS_PER_WORLD: usize = 25;
const SEED: u64 = 0x005e_ed17;

/// SplitMix64: small, deterministic, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMESPACES: [&str; 3] = ["shop", "other", "kube-system"];
/// Every pod has these two; `canary` is optional.
const KEYS: [&str; 2] = ["app", "tier"];
const OPTIONAL_KEY: &str = "canary";
const VALUES: [&str; 3] = ["web", "api", "db"];
const PORTS: [u16; 6] = [53, 80, 443, 5432, 8080, 8081];
const CIDRS: [&str; 7] = [
    "10.244.0.0/16",
    "10.244.1.0/24",
    "10.244.1.8/29",
    "0.0.0.0/0",
    "192.0.2.0/24",
    "fd00::/8",
    "10.244.2.16/28",
];

fn namespace_labels(ns: &str) -> Vec<(String, String)> {
    let team = if ns == "shop" { "shop" } else { "platform" };
    vec![
        ("kubernetes.io/metadata.name".into(), ns.into()),
        ("team".into(), team.into()),
    ]
}

fn labels(rng: &mut Rng) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = KEYS
        .iter()
        .map(|k| (k.to_string(), String::new()))
        .collect();
    for (_, v) in &mut out {
        *v = rng.pick(&VALUES).to_string();
    }
    if rng.chance(40) {
        out.push((OPTIONAL_KEY.to_string(), rng.pick(&VALUES).to_string()));
    }
    out
}

/// `keys` are on every object; `optional` on some, and never gets `NotIn` (see the top).
fn selector(rng: &mut Rng, keys: &[&str], optional: Option<&str>, values: &[&str]) -> Value {
    let mut sel = serde_json::Map::new();
    let mut any_key: Vec<&str> = keys.to_vec();
    any_key.extend(optional);
    if rng.chance(40) {
        let k = *rng.pick(&any_key);
        sel.insert("matchLabels".into(), json!({k: rng.pick(values)}));
    }
    if rng.chance(35) {
        let op = *rng.pick(&["In", "NotIn", "Exists", "DoesNotExist"]);
        let key = if op == "NotIn" {
            rng.pick(keys)
        } else {
            rng.pick(&any_key)
        };
        let mut e = json!({"key": key, "operator": op});
        if op == "In" || op == "NotIn" {
            let n = 1 + rng.below(2);
            let vs: Vec<&str> = (0..n).map(|_| *rng.pick(values)).collect();
            e["values"] = json!(vs);
        }
        sel.insert("matchExpressions".into(), json!([e]));
    }
    Value::Object(sel)
}

fn pod_selector(rng: &mut Rng) -> Value {
    selector(rng, &KEYS, Some(OPTIONAL_KEY), &VALUES)
}

fn ns_selector(rng: &mut Rng) -> Value {
    selector(
        rng,
        &["kubernetes.io/metadata.name", "team"],
        None,
        &["shop", "other", "platform"],
    )
}

fn peer(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!({"podSelector": pod_selector(rng)}),
        1 => json!({"namespaceSelector": ns_selector(rng)}),
        2 => json!({"podSelector": pod_selector(rng), "namespaceSelector": ns_selector(rng)}),
        _ => {
            let cidr = *rng.pick(&CIDRS);
            let mut block = json!({"cidr": cidr});
            let inner = CIDRS.iter().filter(|c| {
                c.contains(':') == cidr.contains(':') && c.len() > cidr.len() && **c != cidr
            });
            let inner: Vec<&&str> = inner.collect();
            if !inner.is_empty() && rng.chance(50) {
                block["except"] = json!([rng.pick(&inner)]);
            }
            json!({"ipBlock": block})
        }
    }
}

fn port(rng: &mut Rng) -> Value {
    let mut p = serde_json::Map::new();
    if rng.chance(60) {
        p.insert("protocol".into(), json!(rng.pick(&["TCP", "UDP", "SCTP"])));
    }
    match rng.below(4) {
        0 => {}
        1 => {
            p.insert("port".into(), json!(rng.pick(&["http", "pg", "dns"])));
        }
        2 => {
            let start = *rng.pick(&PORTS);
            p.insert("port".into(), json!(start));
            p.insert("endPort".into(), json!(start + rng.below(400) as u16));
        }
        _ => {
            p.insert("port".into(), json!(rng.pick(&PORTS)));
        }
    }
    Value::Object(p)
}

/// A list that is sometimes missing, sometimes empty, else 1 to 3 items.
fn maybe_list(rng: &mut Rng, item: fn(&mut Rng) -> Value) -> Option<Value> {
    match rng.below(5) {
        0 => None,
        1 => Some(json!([])),
        _ => Some(Value::Array(
            (0..1 + rng.below(3)).map(|_| item(rng)).collect(),
        )),
    }
}

fn rule(rng: &mut Rng, peers_field: &str) -> Value {
    let mut r = serde_json::Map::new();
    if let Some(peers) = maybe_list(rng, peer) {
        r.insert(peers_field.into(), peers);
    }
    if let Some(ports) = maybe_list(rng, port) {
        r.insert("ports".into(), ports);
    }
    Value::Object(r)
}

fn policy(rng: &mut Rng, n: usize) -> Value {
    let mut spec = serde_json::Map::new();
    if rng.chance(85) {
        spec.insert("podSelector".into(), pod_selector(rng));
    }
    let types: [&[&str]; 4] = [&[], &["Ingress"], &["Egress"], &["Ingress", "Egress"]];
    let types = *rng.pick(&types);
    if !types.is_empty() {
        spec.insert("policyTypes".into(), json!(types));
    }
    if let Some(rules) = maybe_list(rng, |r| rule(r, "from")) {
        spec.insert("ingress".into(), rules);
    }
    if let Some(rules) = maybe_list(rng, |r| rule(r, "to")) {
        spec.insert("egress".into(), rules);
    }
    json!({"metadata": {"namespace": rng.pick(&NAMESPACES), "name": format!("p{n}")},
           "spec": spec})
}

/// One end of a connection: a pod, or an address outside the pods.
#[derive(Clone)]
struct End {
    pod: Option<(String, Vec<(String, String)>)>,
    ip: IpAddr,
}

fn end(rng: &mut Rng) -> End {
    if rng.chance(15) {
        let ip = rng.pick(&["192.0.2.7", "198.51.100.1", "fd00::7", "10.244.1.9"]);
        return End {
            pod: None,
            ip: ip.parse().unwrap(),
        };
    }
    let ip = if rng.chance(10) {
        format!("fd00::{}", 1 + rng.below(30))
    } else {
        format!("10.244.{}.{}", rng.below(4), 1 + rng.below(30))
    };
    End {
        pod: Some((rng.pick(&NAMESPACES).to_string(), labels(rng))),
        ip: ip.parse().unwrap(),
    }
}

struct Case {
    source: End,
    destination: End,
    port: u16,
    port_name: Option<&'static str>,
    protocol: Protocol,
}

fn case(rng: &mut Rng) -> Case {
    let destination = end(rng);
    let port = *rng.pick(&PORTS);
    let named = match port {
        8080 => Some("http"),
        5432 => Some("pg"),
        53 => Some("dns"),
        _ => None,
    };
    Case {
        source: end(rng),
        port_name: named.filter(|_| destination.pod.is_some() && rng.chance(80)),
        destination,
        port,
        protocol: *rng.pick(&[Protocol::Tcp, Protocol::Udp, Protocol::Sctp]),
    }
}

fn end_json(e: &End) -> Value {
    let pod = e.pod.as_ref().map(|(ns, labels)| {
        let map = |pairs: &[(String, String)]| -> serde_json::Map<String, Value> {
            pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
        };
        json!({"namespace": ns, "namespace_labels": map(&namespace_labels(ns)),
               "labels": map(labels)})
    });
    json!({"pod": pod, "ip": e.ip.to_string()})
}

fn case_json(c: &Case) -> Value {
    json!({"source": end_json(&c.source), "destination": end_json(&c.destination),
           "port": c.port, "port_name": c.port_name.unwrap_or(""),
           "protocol": c.protocol.as_str()})
}

/// hopwatch's answer: [egress allowed, ingress allowed].
fn ours(policies: &[hopwatch::discovery::netpol::Policy], c: &Case) -> [bool; 2] {
    let ns_labels: Vec<Labels> = [&c.source, &c.destination]
        .iter()
        .map(|e| e.pod.as_ref().map(|(ns, _)| namespace_labels(ns)))
        .map(|pairs| pairs.unwrap_or_default().into_iter().collect())
        .collect();
    let pod_labels: Vec<Labels> = [&c.source, &c.destination]
        .iter()
        .map(|e| e.pod.as_ref().map(|(_, l)| l.clone()).unwrap_or_default())
        .map(|pairs| pairs.into_iter().collect())
        .collect();
    let conn = Connection {
        source: traffic_peer(&c.source, &ns_labels[0], &pod_labels[0]),
        destination: traffic_peer(&c.destination, &ns_labels[1], &pod_labels[1]),
        port: c.port,
        port_name: c.port_name.map_or(PortName::None, PortName::Named),
        protocol: c.protocol,
    };
    let v: Verdict = evaluate(policies, &conn);
    let side = |d| !matches!(d, &hopwatch::discovery::netpol::Decision::Denied { .. });
    assert_ne!(v.allowed(), None, "complete labels always decide");
    [side(&v.egress), side(&v.ingress)]
}

fn traffic_peer<'a>(e: &'a End, ns_labels: &'a Labels, labels: &'a Labels) -> Peer<'a> {
    Peer {
        pod: e.pod.as_ref().map(|(ns, _)| PodRef {
            namespace: ns,
            namespace_labels: ns_labels,
            labels: Known {
                labels,
                complete: true,
            },
        }),
        ip: e.ip,
    }
}

fn oracle() -> PathBuf {
    if let Some(path) = std::env::var_os("HOPWATCH_NETPOL_ORACLE") {
        return PathBuf::from(path);
    }
    let build = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/netpol-oracle/build");
    let out = Command::new(&build)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", build.display()));
    assert!(
        out.status.success(),
        "{} failed (it needs Go 1.26 and the Go module proxy)",
        build.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(text.lines().last().unwrap_or_default().trim())
}

fn ask_oracle(worlds: &[Value]) -> Vec<Vec<[bool; 2]>> {
    let path = oracle();
    let mut child = Command::new(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let input = serde_json::to_vec(worlds).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "netpol-oracle failed");
    serde_json::from_slice(&out.stdout).expect("the oracle's JSON")
}

#[test]
fn the_evaluator_agrees_with_cyclonus_on_every_generated_connection() {
    let mut rng = Rng(SEED);
    let mut worlds = Vec::new();
    let mut cases = Vec::new();
    for _ in 0..WORLDS {
        let policies: Vec<Value> = (0..1 + rng.below(4)).map(|n| policy(&mut rng, n)).collect();
        let conns: Vec<Case> = (0..CONNECTIONS_PER_WORLD).map(|_| case(&mut rng)).collect();
        let conn_json: Vec<Value> = conns.iter().map(case_json).collect();
        worlds.push(json!({"policies": policies, "connections": conn_json}));
        cases.push((policies, conns));
    }
    let theirs = ask_oracle(&worlds);
    assert_eq!(theirs.len(), WORLDS);
    let (mut agree, mut total, mut denied, mut disagreements) = (0, 0, 0, Vec::new());
    for ((policies, conns), answers) in cases.iter().zip(&theirs) {
        let projected: Vec<_> = policies
            .iter()
            .map(|p| project(&serde_json::from_value(p.clone()).unwrap()).expect("valid"))
            .collect();
        for (c, theirs) in conns.iter().zip(answers) {
            let ours = ours(&projected, c);
            total += 1;
            denied += usize::from(!(ours[0] && ours[1]));
            if ours == *theirs {
                agree += 1;
            } else if disagreements.len() < 5 {
                disagreements.push(format!(
                    "policies {}\nconnection {}\nhopwatch [egress, ingress] {ours:?}, cyclonus {theirs:?}",
                    Value::Array(policies.clone()),
                    case_json(c)
                ));
            }
        }
    }
    println!(
        "{agree} of {total} generated connections agree ({denied} denied by hopwatch) \
         over {WORLDS} sets of policies"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {total} disagree; the first:\n{}",
        total - agree,
        disagreements.join("\n\n")
    );
    // The generator must exercise both outcomes in quantity.
    assert!(
        denied > total / 10 && denied < total * 9 / 10,
        "{denied} of {total} denied"
    );
}
