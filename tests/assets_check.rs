//! The shipped assets: alerts/, dashboards/, deploy/ and docs/RUNBOOK.md, checked with the
//! tools that consume them (promtool, kubectl, Kubernetes and Prometheus Operator schemas)
//! through the scripts in tests/assets/, and the dashboards' structure here.
//!
//! Needs `promtool` (Debian package `prometheus`), `kubectl`, `python3` and the Python
//! packages pyyaml, jsonschema, kubernetes-validate, cloudcoil.models.prometheus_operator,
//! grafana-foundation-sdk and mypy.
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
                   cloudcoil==0.6.0 cloudcoil.models.prometheus_operator==0.80.1.0 \
                   'grafana-foundation-sdk==1769699998!10.1.0' mypy==2.4.1";

/// The label variables of each dashboard, besides `datasource`: those its panels filter by.
const DASHBOARD_VARIABLES: [(&str, &[&str]); 5] = [
    ("hopwatch-agent.json", &["cluster", "node"]),
    ("hopwatch-dns.json", &["cluster", "namespace", "node"]),
    (
        "hopwatch-endpoints.json",
        &["cluster", "namespace", "service", "node"],
    ),
    (
        "hopwatch-nodes.json",
        &["cluster", "namespace", "service", "node"],
    ),
    (
        "hopwatch-request-path.json",
        &["cluster", "namespace", "service", "node"],
    ),
];

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

/// The generator is type-checked against the foundation SDK's types (its `py.typed` models of
/// Grafana's schema): a panel option of the wrong kind, or an enum value Grafana does not
/// have, fails here.
#[test]
fn the_dashboard_generator_type_checks_against_grafanas_schema() {
    let cache = TempDir::new("mypy");
    let cache = cache.path().to_string_lossy();
    let args = [
        "-m",
        "mypy",
        "--strict",
        "--cache-dir",
        &cache,
        "dashboards/generate.py",
    ];
    let out = run("python3", &args);
    assert!(
        !text(&out).contains("No module named mypy"),
        "mypy is missing; Python packages: {PIP}"
    );
    assert_success("mypy --strict dashboards/generate.py", &out);
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
    let boards = dashboards();
    assert_eq!(boards.len(), DASHBOARD_VARIABLES.len());
    for (name, expected) in DASHBOARD_VARIABLES {
        let board = &boards[name];
        assert_eq!(board["schemaVersion"], 39, "{name}");
        let vars = board["templating"]["list"].as_array().unwrap();
        let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(names[0], "datasource", "{name}: variables {names:?}");
        assert_eq!(names[1..], *expected, "{name}: variables");
        let by_name = |n: &str| vars.iter().find(|v| v["name"] == n);
        let ds = by_name("datasource").unwrap_or_else(|| panic!("{name}: no `datasource`"));
        assert_eq!(ds["type"], "datasource", "{name}");
        assert_eq!(ds["query"], "prometheus", "{name}");
        for &var in expected {
            let v = by_name(var).unwrap_or_else(|| panic!("{name}: no variable `{var}`"));
            assert_eq!(v["type"], "query", "{name}: {var}");
            assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}: {var}");
            assert_eq!(v["allValue"], ".*", "{name}: {var}");
        }
    }
}

#[test]
fn every_dashboard_variable_filters_some_panel_query() {
    let files: Vec<String> = dashboards()
        .keys()
        .map(|name| format!("dashboards/{name}"))
        .collect();
    let mut args = vec!["dashboards/generate.py", "--lint"];
    args.extend(files.iter().map(String::as_str));
    assert_success("dashboards/generate.py --lint", &run("python3", &args));
}

#[test]
fn the_dashboard_lint_rejects_a_variable_no_panel_uses() {
    let dir = TempDir::new("dashboards");
    let var = |name: &str| serde_json::json!({"type": "query", "name": name});
    let board = serde_json::json!({
        "templating": {"list": [var("datasource"), var("cluster"), var("node"), var("pod")]},
        "panels": [
            {"type": "row", "title": "r", "panels": [
                {"title": "nested", "datasource": {"uid": "${datasource}"},
                 "targets": [{"expr": "up{cluster=~\"${cluster:regex}\"}"}]}
            ]},
            {"title": "flat", "targets": [{"expr": "up{instance=~\"$node_ip\"}"}]}
        ]
    });
    let path = dir.file("board.json", &board.to_string());
    let out = run(
        "python3",
        &["dashboards/generate.py", "--lint", &path.to_string_lossy()],
    );
    assert_rejected(
        "generate.py --lint on unused variables",
        &out,
        &[
            "board.json: variable `node` is used by no panel query",
            "board.json: variable `pod` is used by no panel query",
        ],
    );
    let out = text(&out);
    for used in ["`datasource`", "`cluster`"] {
        assert!(!out.contains(used), "{used} is used:\n{out}");
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
    for record in [
        "hopwatch:slo_objective:ratio",
        "cluster_hop:hopwatch_probes:error_ratio_rate1h",
        "cluster_hop:hopwatch_probe_failures:rate5m",
    ] {
        assert!(all.contains(record), "no SLO panel reads `{record}`");
    }
}

/// The SLO panels' queries, in a real promtool with the rules of alerts/ loaded: a Service hop
/// failing 2 probes in 1000, against its 99.9 % objective, burns its budget twice as fast as
/// it lasts 30 days, and has spent it all over the last 4 hours (the whole 30-day window here).
#[test]
fn the_slo_panels_compute_the_budget_the_rules_define() {
    let boards = dashboards();
    let board = &boards["hopwatch-request-path.json"];
    let expr = |title: &str, ref_id: &str| -> String {
        let panel = board["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        let target = panel["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["refId"] == ref_id)
            .unwrap_or_else(|| panic!("{title}: no query {ref_id}"));
        let expr = target["expr"].as_str().unwrap().replace("$cluster", ".*");
        assert!(
            !expr.contains('$'),
            "{title} {ref_id}: a variable left: {expr}"
        );
        // Rounded: the rates' floating point is not the point.
        format!("round(({expr}), 0.001)")
    };
    let service = r#"{hop="service"}"#;
    let in_cluster = r#"{cluster="c", hop="service"}"#;
    let budget = "Error budget, last 30 days";
    let burn = "Error budget burn rate";
    let sli = "Success ratio by hop against its objective";
    let objectives: Vec<Value> = [
        ("dns", 0.999),
        ("ingress", 0.995),
        ("loadbalancer", 0.995),
        ("pod", 0.999),
        ("service", 0.999),
    ]
    .iter()
    .map(|(hop, v)| serde_json::json!({"labels": format!("{{hop=\"{hop}\"}}"), "value": v}))
    .collect();
    let cases = [
        (expr(budget, "A"), objectives.clone()),
        (
            expr(budget, "B"),
            vec![serde_json::json!({"labels": service, "value": 0.998})],
        ),
        (
            expr(budget, "C"),
            vec![serde_json::json!({"labels": service, "value": -1})],
        ),
        (
            expr(sli, "A"),
            vec![serde_json::json!({"labels": in_cluster, "value": 0.998})],
        ),
        (expr(sli, "B"), objectives),
        (
            expr(burn, "A"),
            vec![serde_json::json!({"labels": in_cluster, "value": 2})],
        ),
        (
            expr(burn, "B"),
            vec![serde_json::json!({"labels": in_cluster, "value": 2})],
        ),
    ];
    let probes = |result: &str, per_minute: u32| {
        serde_json::json!({
            "series": format!(
                "hopwatch_probes_total{{hop=\"service\", result=\"{result}\", \
                 target=\"shop/cart:80\", namespace=\"shop\", cluster=\"c\", node=\"n\"}}"
            ),
            "values": format!("0+{per_minute}x300"),
        })
    };
    let test = serde_json::json!({
        "rule_files": [repo().join("alerts/hopwatch.rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [probes("success", 998), probes("connect_refused", 2)],
            "promql_expr_test": cases.iter().map(|(expr, samples)| serde_json::json!({
                "expr": expr, "eval_time": "4h", "exp_samples": samples,
            })).collect::<Vec<_>>(),
        }],
    });
    let dir = TempDir::new("slo-panels");
    // JSON is YAML: promtool reads it as is.
    let path = dir.file("slo.yaml", &test.to_string());
    let out = run("promtool", &["test", "rules", &path.to_string_lossy()]);
    assert_success("promtool test rules on the SLO panels' queries", &out);
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
}

/// The data links of every panel: (dashboard, panel title, link).
fn data_links() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (name, panel) in panels() {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        for link in panel["fieldConfig"]["defaults"]["links"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push((name.clone(), title.clone(), link.clone()));
        }
    }
    out
}

#[test]
fn data_links_open_a_dashboard_with_its_own_variables() {
    let boards = dashboards();
    let by_uid: BTreeMap<&str, &Value> = boards
        .values()
        .map(|b| (b["uid"].as_str().unwrap(), b))
        .collect();
    let links = data_links();
    assert!(!links.is_empty(), "no data link in any dashboard");
    for (name, title, link) in &links {
        let url = link["url"].as_str().unwrap();
        let rest = url
            .strip_prefix("/d/")
            .unwrap_or_else(|| panic!("{name}: {title}: not a dashboard link: {url}"));
        let uid = rest.split('/').next().unwrap();
        let target = by_uid
            .get(uid)
            .unwrap_or_else(|| panic!("{name}: {title}: no dashboard `{uid}`: {url}"));
        let vars: BTreeSet<&str> = target["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        let query = url.split_once('?').map_or("", |(_, q)| q);
        for param in query.split('&') {
            // `var-NAME=...`, or `${NAME:queryparam}`, which Grafana writes as `var-NAME=...`.
            let var = param
                .strip_prefix("var-")
                .and_then(|p| p.split('=').next())
                .or_else(|| {
                    param
                        .strip_prefix("${")
                        .and_then(|p| p.strip_suffix(":queryparam}"))
                });
            if let Some(var) = var {
                assert!(
                    vars.contains(var),
                    "{name}: {title}: `{uid}` has no variable `{var}`: {url}"
                );
            }
        }
    }
    let broken = links
        .iter()
        .find(|(name, title, _)| name == "hopwatch-request-path.json" && title == "Broken paths")
        .map(|(_, _, link)| link["url"].as_str().unwrap())
        .expect("the Broken paths table links to the Endpoints dashboard");
    for part in [
        "/d/hopwatch-endpoints/",
        "${datasource:queryparam}",
        "${cluster:queryparam}",
        "var-namespace=${__data.fields.namespace}",
        "var-service=${__data.fields.service}",
        "${__url_time_range}",
    ] {
        assert!(
            broken.contains(part),
            "Broken paths link without `{part}`: {broken}"
        );
    }
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
