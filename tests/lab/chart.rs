//! The Helm chart and deploy/ against the lab's real kube-apiserver (the control plane's 1.37),
//! with the Prometheus Operator's CRDs installed from that project's Go module
//! (tools/prometheus-operator-crds/fetch): `kubectl apply --dry-run=server` of the chart at its
//! defaults, with every optional part on (PodMonitor, canary Ingress), with the ServiceMonitor
//! instead, and of `kubectl kustomize deploy/`. Every object must pass the API server's strict
//! field validation, its admission and the CRDs' schemas. A ServiceMonitor with a misspelt field
//! must be refused, so a dry run that checks nothing cannot pass.

use std::path::Path;
use std::process::Output;

use crate::chart_support::{
    ALL_ON, ALL_ON_SERVICE_MONITOR, prometheus_operator_crds, rendered, repo,
};
use crate::harness::{Lab, lab_command, lab_ok};
use crate::tempdir::TempDir;

/// The kinds of the Prometheus Operator the chart and deploy/ ship objects of.
const CRDS: [&str; 3] = [
    "crd/servicemonitors.monitoring.coreos.com",
    "crd/podmonitors.monitoring.coreos.com",
    "crd/prometheusrules.monitoring.coreos.com",
];

const MISSPELT: &str = "\
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: misspelt, namespace: hopwatch}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: hopwatch}}
  endpoints:
    - port: metrics
      intervall: 15s
";

fn dry_run(file: &Path) -> Output {
    lab_command(&[
        "kubectl",
        "apply",
        "--dry-run=server",
        "-f",
        file.to_str().expect("a UTF-8 path"),
    ])
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The objects of a rendered manifest: one top-level `kind:` line each.
fn object_count(manifest: &str) -> usize {
    manifest.lines().filter(|l| l.starts_with("kind: ")).count()
}

#[test]
fn the_chart_and_deploy_pass_a_server_side_dry_run() {
    // Rendered and fetched before the lab is up: a missing helm or Go costs no lab.
    let crds = prometheus_operator_crds();
    let dir = TempDir::new("chart-dry-run");
    let all_on = dir.file("all-on.values.yaml", ALL_ON);
    let service_monitor = dir.file("service-monitor.values.yaml", ALL_ON_SERVICE_MONITOR);
    let all_on = all_on.to_str().unwrap();
    let mut manifests = vec![
        ("chart-defaults", rendered(dir.path(), &[])),
        ("chart-all-on", rendered(dir.path(), &["-f", all_on])),
        (
            "chart-all-on-servicemonitor",
            rendered(
                dir.path(),
                &["-f", all_on, "-f", service_monitor.to_str().unwrap()],
            ),
        ),
    ];
    let misspelt = dir.file("misspelt.yaml", MISSPELT);

    let lab = Lab::up();
    let out = lab_ok(&[
        "kubectl",
        "apply",
        "--server-side",
        "-f",
        crds.to_str().unwrap(),
    ]);
    assert!(
        out.contains("servicemonitors.monitoring.coreos.com"),
        "{out}"
    );
    let mut wait = vec![
        "kubectl",
        "wait",
        "--for=condition=established",
        "--timeout=60s",
    ];
    wait.extend(CRDS);
    lab_ok(&wait);
    let deploy = repo().join("deploy");
    manifests.push((
        "kustomize-deploy",
        lab_ok(&["kubectl", "kustomize", deploy.to_str().unwrap()]),
    ));

    for (what, manifest) in &manifests {
        let file = dir.file(&format!("{what}.yaml"), manifest);
        let out = dry_run(&file);
        let text = said(&out);
        assert!(out.status.success(), "{what}: the dry run failed:\n{text}");
        let accepted = text
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted,
            object_count(manifest),
            "{what}: not every object was accepted:\n{text}"
        );
        assert!(accepted >= 18, "{what}: {accepted} objects:\n{text}");
    }

    let out = dry_run(&misspelt);
    let text = said(&out);
    assert!(
        !out.status.success(),
        "a misspelt ServiceMonitor passed:\n{text}"
    );
    assert!(
        text.contains("unknown field \"spec.endpoints[0].intervall\""),
        "{text}"
    );
    drop(lab);
}
