//! The shipped assets: alerts/, dashboards/, deploy/ and docs/RUNBOOK.md, checked with the
//! tools that consume them (promtool, kubectl, Kubernetes and Prometheus Operator schemas)
//! through the scripts in tests/assets/, and the dashboards' structure here.
//!
//! Needs `promtool` (Debian package `prometheus`), `kubectl`, `python3` and the Python
//! packages pyyaml, jsonschema, kubernetes-validate and cloudcoil.models.prometheus_operator.
//! A missing one fails the test with what to install; tests/run installs them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "support/tempdir.rs"]
mod tempdir;

use tempdir::TempDir;

/// What to install for each program the checks run.
const INSTALL: &[(&str, &str)] = &[
    (
        "promtool",
        "apt-get install prometheus (Debian ships promtool in it; a policy-rc.d keeps the \
         service from starting, as in tests/run)",
    ),
    (
        "kubectl",
        "kubectl is not a Debian package: the Kubernetes apt repository or a release binary",
    ),
    ("python3", "apt-get install python3"),
    (
        "amtool",
        "apt-get install prometheus-alertmanager (amtool and the Alertmanager itself)",
    ),
];

/// The Python packages the scripts import, as `pip install` takes them.
const PIP: &str = "python3 -m pip install pyyaml jsonschema kubernetes-validate==1.37.0 \
                   cloudcoil==0.6.0 cloudcoil.models.prometheus_operator==0.80.1.0";

/// The variables every dashboard offers, besides `datasource`.
const DASHBOARD_VARIABLES: [&str; 4] = ["cluster", "namespace", "service", "node"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The program's path, or a panic saying how to install it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from);
    let found = std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        let how = INSTALL
            .iter()
            .find(|(tool, _)| *tool == name)
            .map_or("see tests/run", |(_, how)| how);
        panic!("`{name}` not found on PATH; to install it: {how}")
    })
}

/// Runs a command from the repository root and returns its output.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(tool(program))
        .args(args)
        .current_dir(repo())
        // Python must leave no __pycache__ in the tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Panics with the command's output unless it succeeded. Exit status 3 is the scripts' "a
/// Python package is missing", whose message names it; the panic adds the whole list.
fn assert_success(what: &str, output: &Output) {
    let out = text(output);
    if output.status.code() == Some(3) {
        panic!("{what}: a requirement is missing:\n{out}\nPython packages: {PIP}");
    }
    assert!(output.status.success(), "{what} failed:\n{out}");
}

/// Panics unless the command failed (exit 1, not a missing tool) and said each of `needles`.
fn assert_rejected(what: &str, output: &Output, needles: &[&str]) {
    let out = text(output);
    if output.status.code() == Some(3) {
        panic!("{what}: a requirement is missing:\n{out}\nPython packages: {PIP}");
    }
    assert_eq!(output.status.code(), Some(1), "{what} should fail:\n{out}");
    for needle in needles {
        assert!(out.contains(needle), "{what}: no `{needle}` in:\n{out}");
    }
}

// Alerts --------------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_check() {
    let out = run(
        "promtool",
        &["check", "rules", "alerts/hopwatch.rules.yaml"],
    );
    assert_success("promtool check rules", &out);
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
}

#[test]
fn alertmanager_inhibition_keeps_an_expired_certificate_to_one_page() {
    tool("amtool");
    let out = run("python3", &["tests/assets/check_alertmanager.py"]);
    assert_success("tests/assets/check_alertmanager.py", &out);
    assert!(text(&out).contains("pages once"), "{}", text(&out));
}

#[test]
fn alert_rule_unit_tests_pass() {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("alerts/tests"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| path.to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "rule test files: {files:?}");
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    assert_success("promtool test rules", &run("promtool", &args));
}

#[test]
fn every_alert_is_documented_tested_and_fast_enough() {
    let out = run("python3", &["tests/assets/check_alerts.py"]);
    assert_success("tests/assets/check_alerts.py", &out);
}

#[test]
fn the_alert_check_rejects_an_undocumented_untested_alert() {
    let dir = TempDir::new("alerts");
    let rules = dir.file(
        "rules.yaml",
        "groups:\n  - name: g\n    rules:\n      - alert: HopwatchNoSuchThing\n        \
         expr: vector(1)\n        labels: {severity: page}\n        annotations:\n          \
         summary: s\n          description: d\n",
    );
    let tests = TempDir::new("alert-tests");
    tests.file("t.yaml", "tests: []\n");
    let out = run(
        "python3",
        &[
            "tests/assets/check_alerts.py",
            "--rules",
            &rules.to_string_lossy(),
            "--tests",
            &tests.path().to_string_lossy(),
        ],
    );
    assert_rejected(
        "check_alerts.py on a bad alert",
        &out,
        &[
            "severity label must be one of",
            "no `runbook_url` annotation",
            "does not give the likely cause",
            "HopwatchNoSuchThing (page): no test case",
            "HopwatchNoSuchThing: no test case",
            "HopwatchServiceNoReadyEndpoints: no such alert",
        ],
    );
}

#[test]
fn prometheusrule_is_generated_from_the_rules_file() {
    let out = run("python3", &["alerts/prometheusrule.py", "--check"]);
    assert_success("alerts/prometheusrule.py --check", &out);
}

// Queries -------------------------------------------------------------------------------

#[test]
fn every_query_is_valid_promql_on_exported_metrics() {
    let out = run("python3", &["tests/assets/check_queries.py"]);
    assert_success("tests/assets/check_queries.py", &out);
}

#[test]
fn the_query_check_rejects_unknown_metrics_labels_values_and_syntax() {
    let dir = TempDir::new("queries");
    let target = |expr: &str| serde_json::json!({"refId": "A", "expr": expr});
    let board = serde_json::json!({
        "templating": {"list": [
            {"type": "query", "name": "v", "query": "label_values(hopwatch_no_such_metric, node)"}
        ]},
        "panels": [
            {"title": "unknown metric", "targets": [target("rate(hopwatch_probe_total[5m])")]},
            {"title": "bad syntax", "targets": [target("sum(rate(hopwatch_probes_total[5m])")]},
            {"title": "unknown label", "targets": [target("hopwatch_probes_total{phase=\"tls\"}")]},
            {"title": "unknown value", "targets": [target("hopwatch_probes_total{hop=\"lb\"}")]},
            {"title": "not a histogram", "targets": [target("hopwatch_probes_total_bucket")]},
            {"title": "bad variable", "targets": [target("up{node=~\"$nodes\"}")]}
        ]
    });
    dir.file("bad.json", &board.to_string());
    let runbook = dir.file(
        "RUNBOOK.md",
        "## X\n\n```promql\nhopwatch_targets{hop=\"web\"}\n```\n",
    );
    let out = run(
        "python3",
        &[
            "tests/assets/check_queries.py",
            "--dashboards",
            &dir.path().to_string_lossy(),
            "--runbook",
            &runbook.to_string_lossy(),
        ],
    );
    assert_rejected(
        "check_queries.py on bad queries",
        &out,
        &[
            "metric `hopwatch_no_such_metric` is not exported",
            "metric `hopwatch_probe_total` is not exported",
            "'bad syntax' A: promtool: ",
            "`hopwatch_probes_total` has no label `phase`",
            "hop=\"lb\": not a value of `hop`",
            "metric `hopwatch_probes_total_bucket` is not exported",
            "unknown Grafana variable $nodes",
            "hop=\"web\": not a value of `hop`",
        ],
    );
}

// Dashboards ----------------------------------------------------------------------------

#[test]
fn dashboards_are_generated_by_their_script() {
    let out = run("python3", &["dashboards/generate.py", "--check"]);
    assert_success("dashboards/generate.py --check", &out);
}

fn dashboards() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let board = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            out.insert(file_name(&path), board);
        }
    }
    out
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn there_are_five_dashboards_with_distinct_uids() {
    let boards = dashboards();
    let names: Vec<&str> = boards.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "hopwatch-agent.json",
            "hopwatch-dns.json",
            "hopwatch-endpoints.json",
            "hopwatch-nodes.json",
            "hopwatch-request-path.json",
        ]
    );
    let uids: BTreeSet<&str> = boards
        .values()
        .map(|b| b["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), boards.len(), "uids: {uids:?}");
}

#[test]
fn every_dashboard_has_the_datasource_and_label_variables() {
    for (name, board) in dashboards() {
        assert_eq!(board["schemaVersion"], 39, "{name}");
        let vars = board["templating"]["list"].as_array().unwrap();
        let by_name = |n: &str| vars.iter().find(|v| v["name"] == n);
        let ds = by_name("datasource").unwrap_or_else(|| panic!("{name}: no `datasource`"));
        assert_eq!(ds["type"], "datasource", "{name}");
        assert_eq!(ds["query"], "prometheus", "{name}");
        for var in DASHBOARD_VARIABLES {
            let v = by_name(var).unwrap_or_else(|| panic!("{name}: no variable `{var}`"));
            assert_eq!(v["type"], "query", "{name}: {var}");
            assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}: {var}");
            assert_eq!(v["allValue"], ".*", "{name}: {var}");
        }
    }
}

/// Every panel but the rows, with its dashboard's name.
fn panels() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, board) in dashboards() {
        for panel in board["panels"].as_array().unwrap() {
            if panel["type"] != "row" {
                out.push((name.clone(), panel.clone()));
            }
        }
    }
    out
}

#[test]
fn every_panel_queries_the_chosen_datasource_and_explains_itself() {
    for (name, panel) in panels() {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{name}: a panel without a title");
        let description = panel["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{name}: {title}: no description");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{name}: {title}"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{name}: {title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}: {title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
}

#[test]
fn panels_fit_the_grid_without_overlapping() {
    for (name, board) in dashboards() {
        let mut cells = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for panel in board["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{name}: duplicate id"
            );
            let pos = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| pos[k].as_u64().unwrap());
            assert!(x + w <= 24 && w > 0 && h > 0, "{name}: {pos}");
            for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
                assert!(
                    cells.insert(cell),
                    "{name}: {} overlaps at {cell:?}",
                    panel["title"]
                );
            }
        }
    }
}

#[test]
fn the_request_path_dashboard_shows_the_hops_in_request_order() {
    let boards = dashboards();
    let board = &boards["hopwatch-request-path.json"];
    let stats: Vec<&str> = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "stat" && p["gridPos"]["y"] == 1)
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        stats,
        ["DNS", "Load balancer", "Ingress", "Service", "Pod"],
        "the first row of success ratios"
    );
    let all = board.to_string();
    assert!(all.contains("hopwatch_path_status"), "no verdict table");
}

// Deploy --------------------------------------------------------------------------------

#[test]
fn deploy_renders_validates_and_gives_hopwatch_what_it_needs() {
    tool("kubectl");
    let out = run(
        "python3",
        &[
            "tests/assets/check_deploy.py",
            "--hopwatch",
            env!("CARGO_BIN_EXE_hopwatch"),
        ],
    );
    assert_success("tests/assets/check_deploy.py", &out);
    let said = text(&out);
    assert!(said.contains("schemas of Kubernetes"), "{said}");
}

#[test]
fn schema_validation_rejects_unknown_and_invalid_fields() {
    let dir = TempDir::new("schemas");
    let manifest = dir.file(
        "bad.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  \
         selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    \
         spec:\n      hostNetwrk: true\n      containers: [{name: c, image: i}]\n\
         ---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\n\
         spec:\n  selector: {matchLabels: {a: b}}\n  endpoints:\n    - port: metrics\n      \
         intervall: 15s\n      relabelings: [{action: bogus}]\n\
         ---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\n\
         spec:\n  groups:\n    - name: g\n      rules:\n        - alert: A\n          \
         expr: vector(1)\n          severity: critical\n\
         ---\napiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\n\
         spec:\n  selector: {matchLabels: {a: b}}\n  podMetricsEndpoints:\n    - port: metrics\n      \
         scrapeIntervall: 15s\n\
         ---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n\
         spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  ingress:\n    - form: []\n",
    );
    let out = run(
        "python3",
        &[
            "tests/assets/check_deploy.py",
            "--validate-only",
            &manifest.to_string_lossy(),
        ],
    );
    assert_rejected(
        "schema validation of bad objects",
        &out,
        &[
            "DaemonSet/x: spec.template.spec: Additional properties are not allowed ('hostNetwrk'",
            "ServiceMonitor/x: spec.endpoints.0: Additional properties are not allowed ('intervall'",
            "ServiceMonitor/x: spec.endpoints.0.relabelings.0.action: 'bogus' is not one of",
            "PrometheusRule/x: spec.groups.0.rules.0: Additional properties are not allowed ('severity'",
            "PodMonitor/x: spec.podMetricsEndpoints.0: Additional properties are not allowed ('scrapeIntervall'",
            "NetworkPolicy/x: spec.ingress.0: Additional properties are not allowed ('form'",
        ],
    );
}
