"""Prometheus in its own pod, scraping every agent once a second. Targets come from a file_sd
file carrying the `__meta_kubernetes_*` labels Kubernetes service discovery would give the
agents' pods, and the relabelling is the one the Prometheus Operator generates for a
ServiceMonitor: `node` from the pod's node name, `pod`, `job="hopwatch"`, with the target's
`namespace` and `service` dropped as deploy/servicemonitor.yaml drops them. Alert
and recording rules are loaded from the given files (by default alerts/*.y*ml of the
repository) after `promtool check rules` accepts them.

A real Alertmanager (Debian's) runs in the same pod with alerts/alertmanager.yaml, the shipped
inhibitions, and Prometheus sends it every alert: what pages is what it leaves active and not
inhibited."""

import glob
import json
import os

from . import timescale
from .netns import LabError, run
from .state import write_atomic

PORT = 9090
AM_PORT = 9093
AM_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "alerts", "alertmanager.yaml")


def rule_files(source, scale=1, scaled_dir=None):
    """Rule files under `source` (a file or a directory), each checked with promtool; with
    `scale` over 1, copies in `scaled_dir` with every duration divided by it (timescale.py).
    Returns (accepted files, warnings)."""
    if not source:
        return [], []
    if scale > 1:
        return scaled_files(rule_files(source)[0], scale, scaled_dir)
    if os.path.isdir(source):
        files = sorted(glob.glob(os.path.join(source, "*.yml")) + glob.glob(os.path.join(source, "*.yaml")))
    elif os.path.isfile(source):
        files = [source]
    else:
        return [], [f"rules: {source} does not exist; Prometheus runs without rules"]
    ok, warnings = [], []
    for f in files:
        check = run(["promtool", "check", "rules", f], check=False)
        if check.returncode == 0:
            ok.append(os.path.abspath(f))
        else:
            warnings.append(f"rules: {f} left out, promtool says: {(check.stdout + check.stderr).strip()[-400:]}")
    return ok, warnings


def scaled_files(files, scale, directory):
    os.makedirs(directory, exist_ok=True)
    ok = []
    for f in files:
        with open(f, encoding="utf-8") as src:
            text = timescale.header(os.path.relpath(f), scale) + timescale.scale(src.read(), scale)
        path = os.path.join(directory, os.path.basename(f))
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        check = run(["promtool", "check", "rules", path], check=False)
        if check.returncode != 0:
            raise LabError(f"rules: {f} scaled by {scale} is refused by promtool: "
                           f"{(check.stdout + check.stderr).strip()[-400:]}")
        ok.append(path)
    return ok, []


def targets(lab, gone=()):
    """The agents' pods as Kubernetes service discovery lists them, without the nodes in
    `gone` (whose agent pod no longer exists)."""
    return [{"targets": [f"{a.ip}:9808"],
             "labels": {"__meta_kubernetes_namespace": a.namespace, "__meta_kubernetes_pod_name": a.name,
                        "__meta_kubernetes_pod_node_name": a.node_name, "__meta_kubernetes_service_name": "hopwatch",
                        "__meta_kubernetes_pod_container_port_name": "metrics"}}
            for a in lab.role("agent") if a.node_name not in gone]


def config(st, rules, alertmanager):
    relabel = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "target_label": "endpoint"},
        # As deploy/servicemonitor.yaml does: the agents' own `namespace` and `service` labels
        # (the probed Service) must not be renamed to exported_* by the target's.
        {"action": "labeldrop", "regex": "namespace|service"},
    ]
    doc = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
                   "external_labels": {"cluster": "lab"}},
        "rule_files": rules,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{
            "job_name": "hopwatch",
            "file_sd_configs": [{"files": [st.file("prometheus", "agents.json")], "refresh_interval": "5s"}],
            "relabel_configs": relabel,
        }],
    }
    # JSON is YAML: no YAML library needed.
    return json.dumps(doc, indent=1) + "\n"


def write_targets(st, lab):
    """agents.json, which Prometheus re-reads every 5 s (atomically replaced)."""
    path = st.file("prometheus", "agents.json")
    write_atomic(path, json.dumps(targets(lab, st.data.get("agents_gone") or []), indent=1))


def write(st, lab, rules):
    d = st.file("prometheus")
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    write_targets(st, lab)
    path = os.path.join(d, "prometheus.yml")
    write_atomic(path, config(st, rules, f"{lab.role('prometheus')[0].ip}:{AM_PORT}"))
    return path


def argv(st, lab, config_path):
    ip = lab.role("prometheus")[0].ip
    return ["prometheus", f"--config.file={config_path}", f"--storage.tsdb.path={st.file('prometheus', 'data')}",
            f"--web.listen-address={ip}:{PORT}", "--web.enable-lifecycle", "--storage.tsdb.retention.time=1d",
            "--log.level=warn"]


def alertmanager_argv(st, lab):
    ip = lab.role("prometheus")[0].ip
    os.makedirs(st.file("alertmanager"), exist_ok=True)
    return ["prometheus-alertmanager", f"--config.file={os.path.abspath(AM_CONFIG)}",
            f"--storage.path={st.file('alertmanager')}", f"--web.listen-address={ip}:{AM_PORT}",
            "--cluster.listen-address=", "--log.level=warn"]
