//! `hopwatch probe dns` end to end: the built binary against Knot DNS on loopback.
//!
//! The text output lists every wire query in order; `--json` is one object with exactly the
//! documented keys; the exit code says resolved (0), not resolved (1) or usage error (2). The
//! queries the command reports are checked against what the server counted.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::knot::{self, Knot};
use support::net::closed_udp_port;
use support::process::output_within;
use support::{POD_RESOLV_CONF, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");

/// The keys of the `--json` object and of each query in it.
const TOP_KEYS: [&str; 6] = [
    "name",
    "flavor",
    "result",
    "answers",
    "duration_seconds",
    "queries",
];
const QUERY_KEYS: [&str; 5] = ["qname", "qtype", "transport", "rcode", "duration_seconds"];

/// Runs `hopwatch probe dns NAME --resolv-conf FILE ARGS…`.
fn probe_dns(name: &str, resolv_conf: &std::path::Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["probe", "dns", name, "--resolv-conf"])
        .arg(resolv_conf)
        .args(args)
        .env("RUST_LOG", "warn");
    output_within(command, Duration::from_secs(60))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn exit_code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {output:?}"))
}

/// The query names of the pod walk of `name`: four search domains, then as-is.
fn pod_walk(name: &str) -> Vec<String> {
    [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
        "node.internal.",
    ]
    .iter()
    .map(|d| format!("{name}.{d}"))
    .chain([format!("{name}.")])
    .collect()
}

fn parse_json(output: &Output) -> Value {
    let text = stdout(output);
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn count(queries: &[Value], key: &str, value: &str) -> u64 {
    queries.iter().filter(|q| q[key] == value).count() as u64
}

/// The queries in the JSON are the queries the server counted, by transport, type and rcode.
fn assert_server_saw(queries: &[Value], seen: &knot::Counters) {
    let ctx = format!("server saw {:?}", seen.0);
    assert_eq!(queries.len() as u64, seen.queries(), "{ctx}");
    assert_eq!(count(queries, "transport", "udp"), seen.udp(), "{ctx}");
    assert_eq!(count(queries, "transport", "tcp"), seen.tcp(), "{ctx}");
    for qtype in ["A", "AAAA"] {
        assert_eq!(count(queries, "qtype", qtype), seen.qtype(qtype), "{ctx}");
    }
    for rcode in ["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] {
        assert_eq!(count(queries, "rcode", rcode), seen.rcode(rcode), "{ctx}");
    }
}

fn server_arg(addr: SocketAddr) -> String {
    addr.to_string()
}

#[test]
fn text_lists_every_query_in_order() {
    let knot = Knot::start();
    let dir = TempDir::new("cli-text");
    let conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let before = knot.counters();
    let out = probe_dns(
        "api.example.com",
        &conf,
        &["--server", &server_arg(knot.addr())],
    );
    let seen = knot.counters().since(&before);
    assert_eq!(exit_code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let walk = pod_walk("api.example.com");
    // Every query is a line naming its qname, in walk order, two per step.
    let query_lines: Vec<&str> = text
        .lines()
        .filter(|l| walk.iter().any(|q| l.split_whitespace().any(|w| w == q)))
        .collect();
    assert_eq!(query_lines.len(), 10, "{text}");
    for (i, line) in query_lines.iter().enumerate() {
        let qname = &walk[i / 2];
        assert!(
            line.split_whitespace().any(|w| w == qname),
            "line {i}: {line}\n{text}"
        );
        let rcode = if i < 8 { "NXDOMAIN" } else { "NOERROR" };
        assert!(line.contains(rcode), "line {i} should say {rcode}: {line}");
        assert!(line.contains("udp"), "line {i}: {line}");
    }
    let types: Vec<BTreeSet<&str>> = query_lines
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .flat_map(|l| l.split_whitespace())
                .filter(|w| *w == "A" || *w == "AAAA")
                .collect()
        })
        .collect();
    assert!(
        types.iter().all(|t| *t == BTreeSet::from(["A", "AAAA"])),
        "{text}"
    );
    assert!(
        text.contains(knot::API_V4) && text.contains(knot::API_V6),
        "{text}"
    );
    assert_eq!(
        (seen.udp(), seen.rcode("NXDOMAIN"), seen.rcode("NOERROR")),
        (10, 8, 2)
    );
}

#[test]
fn json_has_exactly_the_documented_keys() {
    let knot = Knot::start();
    let dir = TempDir::new("cli-json");
    let conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let walk = pod_walk("api.example.com");
    for flavor in ["glibc", "musl", "musl-legacy", "go"] {
        let before = knot.counters();
        let server = server_arg(knot.addr());
        let args = ["--server", &server, "--flavor", flavor, "--json"];
        let out = probe_dns("api.example.com", &conf, &args);
        let seen = knot.counters().since(&before);
        assert_eq!(exit_code(&out), 0, "{flavor}: {}", stderr(&out));
        let json = parse_json(&out);
        assert_eq!(keys(&json), BTreeSet::from(TOP_KEYS), "{flavor}: {json}");
        assert_eq!(json["name"], "api.example.com");
        assert_eq!(json["flavor"], flavor);
        assert_eq!(json["result"], "success");
        let answers: BTreeSet<&str> = json["answers"]
            .as_array()
            .expect("answers is an array")
            .iter()
            .map(|a| a.as_str().expect("answers are strings"))
            .collect();
        assert_eq!(answers, BTreeSet::from([knot::API_V4, knot::API_V6]));
        assert!(json["duration_seconds"].as_f64().is_some_and(|d| d >= 0.0));
        let queries = json["queries"].as_array().expect("queries is an array");
        assert_eq!(queries.len(), 10, "{flavor}: {json}");
        for (i, q) in queries.iter().enumerate() {
            assert_eq!(keys(q), BTreeSet::from(QUERY_KEYS), "{flavor}: {q}");
            assert_eq!(q["qname"], walk[i / 2].as_str(), "{flavor}: query {i}");
            assert_eq!(q["transport"], "udp");
            assert!(q["duration_seconds"].as_f64().is_some_and(|d| d >= 0.0));
        }
        for pair in queries.chunks(2) {
            let types: BTreeSet<&str> = pair.iter().filter_map(|q| q["qtype"].as_str()).collect();
            assert_eq!(types, BTreeSet::from(["A", "AAAA"]), "{flavor}");
        }
        assert_eq!(count(queries, "rcode", "NXDOMAIN"), 8, "{flavor}");
        assert_server_saw(queries, &seen);
    }
}

#[test]
fn a_name_that_does_not_resolve_exits_1() {
    let knot = Knot::start();
    let dir = TempDir::new("cli-nx");
    let conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let before = knot.counters();
    let server = server_arg(knot.addr());
    let out = probe_dns(
        "nosuch.example.com",
        &conf,
        &["--server", &server, "--json"],
    );
    let seen = knot.counters().since(&before);
    assert_eq!(exit_code(&out), 1, "{}", stderr(&out));
    let json = parse_json(&out);
    assert_eq!(json["result"], "nxdomain");
    assert_eq!(json["answers"], Value::Array(Vec::new()));
    let queries = json["queries"].as_array().expect("queries is an array");
    assert_eq!(count(queries, "rcode", "NXDOMAIN"), 10);
    assert_server_saw(queries, &seen);

    let out = probe_dns("nosuch.example.com", &conf, &["--server", &server]);
    assert_eq!(exit_code(&out), 1, "text output too: {}", stderr(&out));
}

#[test]
fn an_unreachable_server_exits_1() {
    let dir = TempDir::new("cli-closed");
    let conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let server = server_arg(closed_udp_port());
    let out = probe_dns("api.example.com", &conf, &["--server", &server, "--json"]);
    assert_eq!(exit_code(&out), 1, "{}", stderr(&out));
    let json = parse_json(&out);
    assert_eq!(json["result"], "unreachable");
    let queries = json["queries"].as_array().expect("queries is an array");
    assert_eq!(count(queries, "rcode", "UNREACHABLE"), 4, "{json}");
}

/// Usage errors exit 2, say what was wrong on stderr, print nothing on stdout and send no
/// query.
#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let knot = Knot::start();
    let dir = TempDir::new("cli-usage");
    let conf = dir.file("resolv.conf", POD_RESOLV_CONF);
    let missing = dir.path().join("no-such-resolv.conf");
    let server = server_arg(knot.addr());
    let before = knot.counters();
    let cases: [(&str, &std::path::Path, Vec<&str>, &str); 4] = [
        (
            "api.example.com",
            &conf,
            vec!["--server", &server, "--flavor", "bogus"],
            "bogus",
        ),
        (
            "api.example.com",
            &missing,
            vec!["--server", &server],
            "no-such-resolv.conf",
        ),
        (
            "api.example.com",
            &conf,
            vec!["--server", "not-an-address"],
            "not-an-address",
        ),
        (
            "api.example.com",
            &conf,
            vec!["--server", &server, "--no-such-flag"],
            "--no-such-flag",
        ),
    ];
    for (name, resolv_conf, args, mentioned) in cases {
        let out = probe_dns(name, resolv_conf, &args);
        assert_eq!(exit_code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(mentioned),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    let out = output_within(
        {
            let mut c = Command::new(BIN);
            c.args(["probe", "dns"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(exit_code(&out), 2, "a missing NAME: {}", stderr(&out));
    assert_eq!(
        knot.counters().since(&before).queries(),
        0,
        "no query was sent"
    );
}

/// Which flavor an image needs is told the same way in `--help` and in config/README.md.
#[test]
fn the_image_to_flavor_table_is_in_the_help_and_the_config_docs() {
    let mut command = Command::new(BIN);
    command.args(["probe", "dns", "--help"]);
    let help = stdout(&output_within(command, Duration::from_secs(30)));
    let docs = include_str!("../config/README.md");
    for (image, flavor) in hopwatch::probe::dns::IMAGE_FLAVORS {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(image))
            .unwrap_or_else(|| panic!("{image:?} is not in `probe dns --help`:\n{help}"));
        assert!(line.trim_end().ends_with(flavor.as_str()), "{line}");
        let row = format!("| {image} | `{flavor}` |");
        assert!(docs.contains(&row), "{row} is not in config/README.md");
    }
}
