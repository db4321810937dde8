//! The Helm chart from a test: helm itself (`HOPWATCH_HELM`, which tests/run sets, or
//! tools/helm/build), charts/hopwatch rendered with chosen values, the values that switch every
//! optional part on, and the Prometheus Operator's CRDs (`HOPWATCH_PROMETHEUS_OPERATOR_CRDS`,
//! or tools/prometheus-operator-crds/fetch). Test binaries include this file with `#[path]`.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Every optional part of the chart on, scraped by a PodMonitor, with a label, a pull secret,
/// an annotation, an affinity and an extra variable wherever the chart takes one.
pub const ALL_ON: &str = "\
commonLabels: {team: sre}
imagePullSecrets: [{name: registry}]
image: {pullPolicy: IfNotPresent}
serviceMonitor: {enabled: false}
podMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
dashboards: {enabled: true}
networkPolicy: {enabled: true, metrics: {podSelector: {app.kubernetes.io/name: prometheus}}}
canary:
  enabled: true
  ingress: {enabled: true, className: nginx, annotations: {example.com/owner: sre}}
podAnnotations: {example.com/scrape: \"false\"}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
env: [{name: RUST_BACKTRACE, value: \"1\"}]
";

/// [`ALL_ON`] with the ServiceMonitor instead of the PodMonitor (the chart refuses both).
pub const ALL_ON_SERVICE_MONITOR: &str = "\
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
podMonitor: {enabled: false}
";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart() -> PathBuf {
    repo().join("charts/hopwatch")
}

/// The last line a build script printed on stdout (its progress goes to stderr, shown), or a
/// panic with what it said.
fn built(script: &str, what: &str) -> PathBuf {
    let out = Command::new(repo().join(script))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script} ({what}): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("").trim();
    assert!(
        out.status.success() && !last.is_empty(),
        "{script} failed ({}); {what} is needed, and building it needs Go 1.26 and the Go \
         module proxy:\n{stdout}",
        out.status
    );
    PathBuf::from(last)
}

/// helm v4: `HOPWATCH_HELM`, or what tools/helm/build builds (or has cached).
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let path = std::env::var_os("HOPWATCH_HELM")
            .map_or_else(|| built("tools/helm/build", "helm"), PathBuf::from);
        assert!(
            path.is_file(),
            "helm not found at {} (HOPWATCH_HELM, or the last line of tools/helm/build)",
            path.display()
        );
        path
    })
}

/// The directory of the Prometheus Operator's CRD files: `HOPWATCH_PROMETHEUS_OPERATOR_CRDS`,
/// or what tools/prometheus-operator-crds/fetch fetches (or has cached).
pub fn prometheus_operator_crds() -> PathBuf {
    let dir = std::env::var_os("HOPWATCH_PROMETHEUS_OPERATOR_CRDS").map_or_else(
        || {
            built(
                "tools/prometheus-operator-crds/fetch",
                "the Prometheus Operator's CRDs",
            )
        },
        PathBuf::from,
    );
    assert!(
        dir.join("monitoring.coreos.com_servicemonitors.yaml")
            .is_file(),
        "no Prometheus Operator CRDs in {}",
        dir.display()
    );
    dir
}

/// Runs helm with `args`, its own state under `home` (nothing of the machine's helm setup is
/// read or written).
pub fn run_helm(home: &Path, args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .current_dir(repo())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm().display()))
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `helm template hopwatch charts/hopwatch ARGS…`: the manifests, or helm's error output.
pub fn template(home: &Path, args: &[&str]) -> Result<String, String> {
    let chart = chart();
    let mut all = vec![
        "template",
        "hopwatch",
        chart.to_str().expect("a UTF-8 path"),
    ];
    all.extend_from_slice(args);
    let out = run_helm(home, &all);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

/// [`template`], panicking with helm's output when it fails.
pub fn rendered(home: &Path, args: &[&str]) -> String {
    template(home, args).unwrap_or_else(|e| panic!("helm template {} failed:\n{e}", args.join(" ")))
}
