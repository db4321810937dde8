//! The Helm chart, charts/hopwatch: `helm lint`, `helm template` at the defaults and with every
//! optional part on, the same schema and semantic checks as deploy/ (tests/assets/check_deploy.py),
//! the refusals of broken values, and the chart against kustomize: at its defaults the chart
//! must render exactly the objects `kubectl kustomize deploy/` renders, compared as parsed
//! objects, every difference printed.
//!
//! Needs helm v4 (`HOPWATCH_HELM`, set by tests/run, or built here by tools/helm/build),
//! `kubectl` on PATH (tests/run puts the control plane's there) and what
//! tests/assets_check.rs needs for check_deploy.py (python3 and its Python packages). A missing
//! one fails the test, saying what to install.

#[path = "support/chart.rs"]
mod chart;
#[path = "support/tempdir.rs"]
mod tempdir;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use chart::{ALL_ON, ALL_ON_SERVICE_MONITOR, rendered, repo, run_helm, template, text};
use tempdir::TempDir;

/// The Python packages check_deploy.py imports, as `pip install` takes them.
const PIP: &str = "python3 -m pip install pyyaml jsonschema kubernetes-validate==1.37.0 \
                   cloudcoil==0.6.0 cloudcoil.models.prometheus_operator==0.80.1.0";

/// Every object of a multi-document manifest, by `Kind namespace/name`; a panic names a
/// document that does not parse, a key given twice or an object that appears twice. YAML 1.2
/// booleans only: `y` and `n` stay strings, as the API server reads them.
fn objects(what: &str, manifest: &str) -> BTreeMap<String, Value> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(manifest, options)
        .unwrap_or_else(|e| panic!("{what}: not YAML: {e}\n{manifest}"));
    let mut out = BTreeMap::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let meta = &doc["metadata"];
        let key = format!(
            "{} {}/{}",
            doc["kind"].as_str().unwrap_or("?"),
            meta["namespace"].as_str().unwrap_or(""),
            meta["name"].as_str().unwrap_or("?")
        );
        if let Some(previous) = out.insert(key.clone(), doc) {
            panic!("{what}: {key} twice (first: {previous})");
        }
    }
    out
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(160) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text,
    }
}

/// Every difference between two values, as `path: kustomize …, chart …` lines.
fn diff(path: &str, kustomize: &Value, chart: &Value, out: &mut Vec<String>) {
    match (kustomize, chart) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let at = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(&at, x, y, out),
                    (Some(x), None) => out.push(format!("{at}: only in kustomize: {}", short(x))),
                    (None, Some(y)) => out.push(format!("{at}: only in the chart: {}", short(y))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!(
            "{path}: kustomize {}, chart {}",
            short(a),
            short(b)
        )),
        _ => {}
    }
}

/// Every difference between two manifests: objects only in one, and each differing field.
fn manifest_diff(kustomize: &str, chart: &str) -> Vec<String> {
    let a = objects("kustomize", kustomize);
    let b = objects("the chart", chart);
    let mut out = Vec::new();
    for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => diff(key, x, y, &mut out),
            (Some(_), None) => out.push(format!("{key}: only in kustomize")),
            (None, Some(_)) => out.push(format!("{key}: only in the chart")),
            (None, None) => {}
        }
    }
    out
}

/// kubectl: on PATH (tests/run puts the control plane's 1.37 there), else the control plane's.
fn kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let control_plane = std::env::var_os("HOPWATCH_CONTROLPLANE_BIN").map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(control_plane)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`kubectl` not found on PATH nor in HOPWATCH_CONTROLPLANE_BIN: tests/run puts \
                 the control plane's on PATH (tools/controlplane/build builds it)"
            )
        })
}

fn kustomize_deploy() -> String {
    let out = Command::new(kubectl())
        .args(["kustomize", "deploy"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tests/assets/check_deploy.py on a rendered manifest: the schemas of Kubernetes and of the
/// Prometheus Operator, and everything it checks of deploy/.
fn check_deploy(what: &str, dir: &TempDir, manifest: &str) {
    let file = dir.file(&format!("{what}.yaml"), manifest);
    let out = Command::new("python3")
        .arg("tests/assets/check_deploy.py")
        .arg("--hopwatch")
        .arg(env!("CARGO_BIN_EXE_hopwatch"))
        .arg("--rendered")
        .arg(&file)
        .current_dir(repo())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (apt-get install python3): {e}"));
    let said = text(&out);
    assert_ne!(
        out.status.code(),
        Some(3),
        "{what}: a requirement is missing:\n{said}\n{PIP}"
    );
    assert!(
        out.status.success(),
        "{what}: check_deploy.py failed:\n{said}"
    );
    assert!(said.contains("schemas of Kubernetes"), "{what}: {said}");
}

fn kinds(objects: &BTreeMap<String, Value>) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .values()
        .map(|o| o["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    kinds.sort();
    kinds
}

/// deploy/hopwatch.yaml without the canary: no `canary:` section, not in `always`.
fn config_without_canary() -> String {
    let config = std::fs::read_to_string(repo().join("deploy/hopwatch.yaml")).unwrap();
    let mut out = String::new();
    let mut in_canary = false;
    for line in config.lines() {
        if line.starts_with("canary:") {
            in_canary = true;
            continue;
        }
        if in_canary && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        in_canary = false;
        out.push_str(&line.replace(", hopwatch/hopwatch-canary", ""));
        out.push('\n');
    }
    assert!(
        out.lines()
            .all(|l| l.trim_start().starts_with('#') || !l.contains("canary")),
        "{out}"
    );
    out
}

#[test]
fn helm_lints_the_chart_at_its_defaults_and_with_every_part_on() {
    let home = TempDir::new("helm-lint");
    let all_on = home.file("all-on.yaml", ALL_ON);
    let chart = chart::chart();
    let chart = chart.to_str().unwrap();
    for args in [
        vec!["lint", "--strict", chart],
        vec!["lint", "--strict", chart, "-f", all_on.to_str().unwrap()],
    ] {
        let out = run_helm(home.path(), &args);
        let said = text(&out);
        assert!(out.status.success(), "helm {}:\n{said}", args.join(" "));
        assert!(
            said.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{said}"
        );
    }
}

#[test]
fn at_its_defaults_the_chart_renders_what_kustomize_renders_from_deploy() {
    let home = TempDir::new("helm-vs-kustomize");
    let chart = rendered(home.path(), &[]);
    let kustomize = kustomize_deploy();
    let differences = manifest_diff(&kustomize, &chart);
    assert!(
        differences.is_empty(),
        "helm template charts/hopwatch (default values) and kubectl kustomize deploy/ differ \
         in {} place(s):\n  {}\n(deploy/ is the reference: change the chart, or both)",
        differences.len(),
        differences.join("\n  ")
    );
    // Not two empty renders: deploy/'s every kind is there.
    let objects = objects("the chart", &chart);
    for kind in [
        "Namespace",
        "PriorityClass",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Service",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(
            kinds(&objects).iter().any(|k| k == kind),
            "no {kind} rendered"
        );
    }
}

#[test]
fn the_manifest_diff_names_every_difference() {
    let a = "kind: A\nmetadata: {name: x, namespace: n}\nspec: {port: 1, list: [a, b]}\n---\n\
             kind: B\nmetadata: {name: y}\n";
    let b = "kind: A\nmetadata: {name: x, namespace: n}\nspec: {port: \"1\", list: [a, c], new: 2}\n\
             ---\nkind: C\nmetadata: {name: z}\n";
    assert_eq!(
        manifest_diff(a, b),
        [
            "A n/x.spec.list[1]: kustomize \"b\", chart \"c\"",
            "A n/x.spec.port: kustomize 1, chart \"1\"",
            "A n/x.spec.new: only in the chart: 2",
            "B /y: only in kustomize",
            "C /z: only in the chart",
        ]
    );
    assert!(manifest_diff(a, a).is_empty());
}

#[test]
fn the_default_config_is_deploys_word_for_word() {
    let values = std::fs::read_to_string(chart::chart().join("values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&values).expect("values.yaml parses");
    let deploy = std::fs::read_to_string(repo().join("deploy/hopwatch.yaml")).unwrap();
    assert!(
        values["config"].as_str() == Some(deploy.as_str()),
        "charts/hopwatch/values.yaml's `config` is not deploy/hopwatch.yaml: copy the file into \
         it, indented by two spaces under `config: |`"
    );
}

#[test]
fn rendered_objects_pass_the_schema_and_deploy_checks() {
    let home = TempDir::new("helm-checks");
    let all_on = home.file("all-on.yaml", ALL_ON);
    let service_monitor = home.file("service-monitor.yaml", ALL_ON_SERVICE_MONITOR);
    let all_on = all_on.to_str().unwrap();
    let renders = [
        ("defaults", rendered(home.path(), &[])),
        ("all-on", rendered(home.path(), &["-f", all_on])),
        (
            "all-on-servicemonitor",
            rendered(
                home.path(),
                &["-f", all_on, "-f", service_monitor.to_str().unwrap()],
            ),
        ),
    ];
    for (what, manifest) in &renders {
        check_deploy(what, &home, manifest);
    }
}

#[test]
fn every_optional_part_switches_on_and_off() {
    let home = TempDir::new("helm-parts");
    let all_on = home.file("all-on.yaml", ALL_ON);
    let on = objects(
        "all on",
        &rendered(home.path(), &["-f", all_on.to_str().unwrap()]),
    );
    for kind in [
        "PodMonitor",
        "Ingress",
        "NetworkPolicy",
        "PrometheusRule",
        "Namespace",
    ] {
        assert!(kinds(&on).iter().any(|k| k == kind), "all on: no {kind}");
    }
    assert!(!kinds(&on).iter().any(|k| k == "ServiceMonitor"));
    for (key, object) in &on {
        assert_eq!(
            object["metadata"]["labels"]["team"], "sre",
            "{key}: no commonLabels"
        );
    }
    let ds = &on["DaemonSet hopwatch/hopwatch"]["spec"]["template"]["spec"];
    assert_eq!(ds["imagePullSecrets"][0]["name"], "registry");
    assert_eq!(ds["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        ds["containers"][0]["image"],
        "ghcr.io/hopwatch/hopwatch:0.1.0"
    );

    let config = home.file("no-canary.yaml", &config_without_canary());
    let off = objects(
        "all off",
        &rendered(
            home.path(),
            &[
                "--set",
                "namespace.create=false,priorityClass.create=false,priorityClass.name=",
                "--set",
                "serviceMonitor.enabled=false,prometheusRule.enabled=false",
                "--set",
                "dashboards.enabled=false,networkPolicy.enabled=false,canary.enabled=false",
                "--set-file",
                &format!("config={}", config.display()),
            ],
        ),
    );
    assert_eq!(
        kinds(&off),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Service",
            "ServiceAccount"
        ]
    );
    let ds = &off["DaemonSet hopwatch/hopwatch"]["spec"]["template"]["spec"];
    assert!(ds.get("priorityClassName").is_none(), "{ds}");

    // The release namespace, when namespace.name is empty and the chart does not create it.
    let own = objects(
        "release namespace",
        &rendered(
            home.path(),
            &[
                "-n",
                "observability",
                "--set",
                "namespace.create=false,namespace.name=,canary.enabled=false",
                "--set-file",
                &format!("config={}", config.display()),
            ],
        ),
    );
    assert!(
        own.contains_key("DaemonSet observability/hopwatch"),
        "{:?}",
        own.keys()
    );
    let binding = &own["ClusterRoleBinding /hopwatch"]["subjects"][0];
    assert_eq!(binding["namespace"], "observability");
}

#[test]
fn broken_values_are_refused_saying_what_to_change() {
    let home = TempDir::new("helm-refusals");
    let config = home.file("no-canary.yaml", &config_without_canary());
    let no_canary = format!("config={}", config.display());
    let cases: [(&[&str], &str); 10] = [
        (
            &["--set", "podMonitor.enabled=true"],
            "serviceMonitor.enabled and podMonitor.enabled: choose one",
        ),
        (
            &["--set", "canary.enabled=false"],
            "canary.enabled is false, yet the config names the canary Service hopwatch/hopwatch-canary",
        ),
        (
            &["--set", "namespace.name=probes"],
            "the config must name the canary Service probes/hopwatch-canary as canary.service",
        ),
        (
            &["-n", "hopwatch"],
            "the chart cannot create the release namespace \"hopwatch\"",
        ),
        (
            &[
                "--set",
                "canary.enabled=false,canary.ingress.enabled=true",
                "--set-file",
                &no_canary,
            ],
            "canary.ingress.enabled needs canary.enabled",
        ),
        (&["--set", "config="], "config: empty"),
        (&["--set", "config=[1]"], "config: not a YAML mapping"),
        (
            &["--set", "serviceMonitr.enabled=true"],
            "additional properties 'serviceMonitr' not allowed",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy': value must be one of",
        ),
        (
            &["--set", "serviceMonitor.interval=15sec"],
            "at '/serviceMonitor/interval': '15sec' does not match pattern",
        ),
    ];
    for (args, needle) in cases {
        match template(home.path(), args) {
            Ok(manifest) => panic!("helm template {} rendered:\n{manifest}", args.join(" ")),
            Err(said) => assert!(
                said.contains(needle),
                "helm template {}: no `{needle}` in:\n{said}",
                args.join(" ")
            ),
        }
    }
}
