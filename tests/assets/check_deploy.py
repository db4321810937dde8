#!/usr/bin/env python3
"""Checks deploy/ (run by tests/assets_check.rs).

1. `kubectl kustomize deploy/` renders.
2. Every object validates against its schema, unknown fields rejected: the built-in kinds
   against the newest Kubernetes release kubernetes-validate ships, the Prometheus Operator's
   ServiceMonitor and PrometheusRule against the JSON schemas of the
   cloudcoil.models.prometheus_operator models (generated from the operator's CRDs), with
   jsonschema.
3. The objects say what hopwatch needs: least-privilege RBAC, the DaemonSet's network,
   security and probes, a valid agent config (`hopwatch check-config`), a Service and a
   ServiceMonitor that find the agents and attach `node`, the canary Service (and the
   optional canary Ingress) in front of the agents' canary port and named in the config, the
   rules and dashboards as they are in alerts/ and dashboards/, a NetworkPolicy letting only
   the monitoring namespace reach the metrics port (the canary port open, egress open), and an
   image tagged with the crate's version.

    check_deploy.py --hopwatch PATH                  # all of it; PATH is the hopwatch binary
    check_deploy.py --hopwatch PATH --rendered FILE  # steps 2 and 3 on the objects of FILE
                                                     # (the Helm chart's, tests/chart.rs)
    check_deploy.py --validate-only FILE             # step 2 only, on the objects of FILE

Exits 1 listing every problem, 3 when kubectl or a Python package is missing (the message
says which).
"""

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MISSING = []
try:
    import yaml
except ImportError:
    MISSING.append("pyyaml")
try:
    import jsonschema
except ImportError:
    MISSING.append("jsonschema")
try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:
    MISSING.append("kubernetes-validate")
try:
    from cloudcoil.models.prometheus_operator import v1 as prometheus_operator
except ImportError:
    MISSING.append("cloudcoil.models.prometheus_operator")

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "hopwatch"
RUNAS = 65532
# get/list/watch on exactly these, and nothing else.
RBAC = {("", "services"), ("", "nodes"), ("", "namespaces"), ("discovery.k8s.io", "endpointslices"),
        ("networking.k8s.io", "ingresses"), ("networking.k8s.io", "networkpolicies"),
        ("gateway.networking.k8s.io", "gateways"), ("gateway.networking.k8s.io", "httproutes")}
READ_VERBS = {"get", "list", "watch"}
# `hopwatch trace` (its own ClusterRole, bound by whoever runs trace): what it reads, get and list.
TRACE_ROLE = "hopwatch-trace"
TRACE_RBAC = {("", "services"), ("", "pods"), ("", "nodes"), ("", "namespaces"),
              ("discovery.k8s.io", "endpointslices"), ("networking.k8s.io", "ingresses"),
              ("networking.k8s.io", "networkpolicies")}
TRACE_VERBS = {"get", "list"}
# `kubectl apply` (client side) keeps the whole object in an annotation of at most 256 KiB.
MAX_OBJECT_BYTES = 262144
# The canary (deploy/canary/): its Service, on by default, and its optional Ingress.
CANARY = "hopwatch-canary"
CANARY_INGRESS = ROOT / "deploy" / "canary" / "ingress" / "ingress.yaml"
CRD_MODELS = {"ServiceMonitor": "ServiceMonitor", "PodMonitor": "PodMonitor",
              "PrometheusRule": "PrometheusRule"}
# The namespace Prometheus scrapes from, the only one deploy/networkpolicy.yaml lets in.
MONITORING = "monitoring"


class Problems(list):
    def add(self, where, message):
        self.append(f"{where}: {message}")


def name_of(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# Schemas ---------------------------------------------------------------------------------


def strict(schema):
    """Forbids properties a schema does not list, as the API server's field validation does."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def crd_validator(kind):
    model = getattr(prometheus_operator, CRD_MODELS[kind])
    schema = strict(copy.deepcopy(model.model_json_schema(by_alias=True)))
    return jsonschema.Draft202012Validator(schema)


def deepest(error):
    """The most specific of a jsonschema error and the errors under it: in an anyOf of an
    object and null, the object's error, which lies deeper in the instance."""
    if not error.context:
        return error
    candidates = [deepest(e) for e in error.context]
    return max(candidates, key=lambda e: (len(e.absolute_path), e.validator != "type"))


def validate_schemas(objects, problems: Problems):
    version = kv_utils.latest_version()
    validators = {}
    for obj in objects:
        where = name_of(obj)
        kind = obj.get("kind")
        if kind in CRD_MODELS:
            validator = validators.setdefault(kind, crd_validator(kind))
            for error in validator.iter_errors(obj):
                e = deepest(error)
                path = ".".join(str(p) for p in e.absolute_path)
                problems.add(where, f"{path}: {e.message[:300]}")
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.add(where, f"{path}: {e.message[:300]} (Kubernetes {version})")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.add(where, e.message)
    return version


# What hopwatch needs ---------------------------------------------------------------------


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def one(objects, kind, problems: Problems, name=None):
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    if len(found) != 1:
        problems.add("deploy", f"expected one {kind}{' ' + name if name else ''}, found {len(found)}")
        return None
    return found[0]


def check_namespaces(objects, problems: Problems):
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            if ns:
                problems.add(name_of(obj), "cluster-scoped, yet has a namespace")
        elif ns != NAMESPACE:
            problems.add(name_of(obj), f"namespace {ns!r}, expected {NAMESPACE!r}")
        size = len(json.dumps(obj))
        if size > MAX_OBJECT_BYTES:
            problems.add(name_of(obj), f"{size} bytes: too large for `kubectl apply`")


def grants(role, verbs, problems: Problems):
    """The (group, resource) pairs a ClusterRole grants; every rule must have exactly `verbs`."""
    granted = set()
    for rule in role.get("rules", []):
        if set(rule) - {"apiGroups", "resources", "verbs"}:
            problems.add(name_of(role), f"rule with more than groups, resources, verbs: {rule}")
        if set(rule.get("verbs", [])) != verbs:
            problems.add(name_of(role), f"verbs {rule.get('verbs')}: must be exactly {', '.join(sorted(verbs))}")
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                granted.add((group, resource))
    return granted


def check_rbac(objects, problems: Problems):
    roles = by_kind(objects, "ClusterRole")
    names = sorted(r["metadata"]["name"] for r in roles)
    if len(roles) != 2:
        problems.add("deploy", f"expected two ClusterRoles, the agents' and {TRACE_ROLE}; found {names}")
    agent_roles = [r for r in roles if r["metadata"]["name"] != TRACE_ROLE]
    role = agent_roles[0] if len(agent_roles) == 1 else None
    if role:
        granted = grants(role, READ_VERBS, problems)
        if granted != RBAC:
            problems.add(name_of(role), f"grants {sorted(granted)}; expected exactly {sorted(RBAC)}")
    trace = one(objects, "ClusterRole", problems, TRACE_ROLE)
    if trace:
        granted = grants(trace, TRACE_VERBS, problems)
        if granted != TRACE_RBAC:
            problems.add(name_of(trace), f"grants {sorted(granted)}; expected exactly {sorted(TRACE_RBAC)}")
    if by_kind(objects, "Role") or by_kind(objects, "RoleBinding"):
        problems.add("deploy", "no namespaced Role or RoleBinding expected")
    binding = one(objects, "ClusterRoleBinding", problems)
    account = one(objects, "ServiceAccount", problems)
    if binding and role and account:
        if binding["roleRef"] != {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}:
            problems.add(name_of(binding), f"roleRef {binding['roleRef']} is not the ClusterRole")
        subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"],
                   "namespace": account["metadata"]["namespace"]}
        if binding.get("subjects") != [subject]:
            problems.add(name_of(binding), f"subjects {binding.get('subjects')}; expected [{subject}]")
    if account and account.get("automountServiceAccountToken") is not False:
        problems.add(name_of(account), "automountServiceAccountToken must be false: only the "
                                       "agent's pods mount the token")


def env_field(container, name):
    for env in container.get("env", []):
        if env.get("name") == name:
            return env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    return None


def check_pod_security(where, spec, container, problems: Problems):
    pod_sc, sc = spec.get("securityContext", {}), container.get("securityContext", {})

    def effective(key):
        return sc.get(key, pod_sc.get(key))

    if effective("runAsNonRoot") is not True:
        problems.add(where, "runAsNonRoot must be true")
    if effective("runAsUser") != RUNAS:
        problems.add(where, f"runAsUser must be {RUNAS}")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.add(where, "readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.add(where, "allowPrivilegeEscalation must be false")
    if sc.get("privileged"):
        problems.add(where, "must not be privileged")
    caps = sc.get("capabilities", {})
    if caps.get("drop") != ["ALL"] or caps.get("add"):
        problems.add(where, "capabilities: drop [ALL] and add nothing")
    if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.add(where, "seccompProfile must be RuntimeDefault")
    for volume in spec.get("volumes", []):
        if set(volume) - {"name", "configMap", "emptyDir", "projected"}:
            problems.add(where, f"volume {volume.get('name')}: only configMap, emptyDir, projected")


def check_daemonset(objects, problems: Problems, priority_classes):
    ds = one(objects, "DaemonSet", problems)
    if not ds:
        return None
    where = name_of(ds)
    spec = ds["spec"]["template"]["spec"]
    containers = spec.get("containers", [])
    if len(containers) != 1:
        problems.add(where, f"{len(containers)} containers, expected 1")
        return None
    c = containers[0]
    if spec.get("hostNetwork"):
        problems.add(where, "must run in the pod network, not hostNetwork")
    if spec.get("dnsPolicy") != "ClusterFirst":
        problems.add(where, "dnsPolicy must be ClusterFirst: the probes resolve as pods do")
    if spec.get("automountServiceAccountToken") is not True:
        problems.add(where, "automountServiceAccountToken must be true: the agent watches the API")
    account = one(objects, "ServiceAccount", problems)
    if account and spec.get("serviceAccountName") != account["metadata"]["name"]:
        problems.add(where, "serviceAccountName is not the shipped ServiceAccount")
    if env_field(c, "NODE_NAME") != "spec.nodeName":
        problems.add(where, "env NODE_NAME must come from spec.nodeName")
    if env_field(c, "POD_IP") != "status.podIP":
        problems.add(where, "env POD_IP must come from status.podIP")
    if not any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
               for t in spec.get("tolerations", [])):
        problems.add(where, "needs a toleration {operator: Exists} to run on every node")
    pc = spec.get("priorityClassName")
    if pc != "system-node-critical" and pc not in priority_classes:
        problems.add(where, f"priorityClassName {pc!r} is neither shipped nor system-node-critical")
    strategy = ds["spec"].get("updateStrategy", {})
    if strategy.get("type") != "RollingUpdate" or "maxUnavailable" not in strategy.get("rollingUpdate", {}):
        problems.add(where, "updateStrategy must be RollingUpdate with maxUnavailable")
    resources = c.get("resources", {})
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if res not in resources.get(kind, {}):
                problems.add(where, f"resources.{kind}.{res} missing")
    check_pod_security(where, spec, c, problems)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("metrics") != 9808:
        problems.add(where, "needs the port `metrics` 9808")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("metrics", 9808):
            problems.add(where, f"{probe} must GET {path} on the metrics port")
    return ds


def check_config(objects, ds, hopwatch: Path, problems: Problems):
    """The ConfigMap the DaemonSet mounts holds the file its --config names, and it is valid."""
    c = ds["spec"]["template"]["spec"]["containers"][0]
    where = name_of(ds)
    args = c.get("args", [])
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        problems.add(where, "args must pass --config FILE")
        return None
    path = Path(args[args.index("--config") + 1])
    mounts = [m for m in c.get("volumeMounts", []) if m.get("mountPath") == str(path.parent)]
    if len(mounts) != 1:
        problems.add(where, f"nothing mounted at {path.parent}")
        return None
    if "subPath" in mounts[0]:
        problems.add(where, "the config mount must not use subPath: it would not follow updates")
    volume = next((v for v in ds["spec"]["template"]["spec"].get("volumes", [])
                   if v["name"] == mounts[0]["name"]), {})
    cm_name = volume.get("configMap", {}).get("name")
    cm = one(objects, "ConfigMap", problems, cm_name)
    if not cm:
        return None
    text = cm.get("data", {}).get(path.name)
    if text is None:
        problems.add(name_of(cm), f"has no key {path.name}")
        return None
    with tempfile.TemporaryDirectory(prefix="hopwatch-deploy-") as tmp:
        file = Path(tmp) / path.name
        file.write_text(text, encoding="utf-8")
        proc = subprocess.run([str(hopwatch), "check-config", str(file)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        problems.add(name_of(cm), f"hopwatch check-config: {(proc.stderr or proc.stdout).strip()}")
    config = yaml.safe_load(text) or {}
    if not isinstance(config.get("kubernetes"), dict):
        problems.add(name_of(cm), "the config must have a kubernetes section")
    port = int(str(config.get("listen", "0.0.0.0:9808")).rsplit(":", 1)[1])
    if port != 9808:
        problems.add(name_of(cm), f"listen port {port} is not the metrics port 9808")
    return config


def check_service_and_monitor(objects, ds, config, problems: Problems):
    """The headless Service finds the agents, and one ServiceMonitor (through that Service) or
    one PodMonitor (straight to the pods) scrapes them, attaching `node` and dropping the
    target's own `namespace` and `service`."""
    svc = one(objects, "Service", problems, "hopwatch")
    if not (svc and ds):
        return
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    selector = svc["spec"].get("selector", {})
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        problems.add(name_of(svc), "its selector does not match the agents' pods")
    annotation = ((config or {}).get("kubernetes") or {}).get("services", {}).get(
        "annotation", "hopwatch.io/probe")
    if svc["metadata"].get("annotations", {}).get(annotation) != "false":
        problems.add(name_of(svc), f"needs {annotation}: \"false\" (the agents must not probe it)")
    monitors = by_kind(objects, "ServiceMonitor") + by_kind(objects, "PodMonitor")
    if len(monitors) != 1:
        problems.add("deploy", f"expected one ServiceMonitor or PodMonitor, found "
                               f"{[name_of(m) for m in monitors]}")
        return
    sm = monitors[0]
    if sm["kind"] == "ServiceMonitor":
        labels, endpoints = svc["metadata"].get("labels", {}), sm["spec"].get("endpoints", [])
        ports = {p.get("name") for p in svc["spec"].get("ports", [])}
        target = "the Service"
    else:
        labels, endpoints = pod_labels, sm["spec"].get("podMetricsEndpoints", [])
        ports = {p.get("name") for p in ds["spec"]["template"]["spec"]["containers"][0].get("ports", [])}
        target = "the agents' pods"
    match = sm["spec"]["selector"].get("matchLabels", {})
    if not match or any(labels.get(k) != v for k, v in match.items()):
        problems.add(name_of(sm), f"its selector does not match {target}")
    if not endpoints:
        problems.add(name_of(sm), "scrapes no endpoint")
    for ep in endpoints:
        if ep.get("port") not in ports:
            problems.add(name_of(sm), f"endpoint port {ep.get('port')!r} is not a port of {target}")
        relabel = ep.get("relabelings", [])
        if not any(r.get("sourceLabels") == ["__meta_kubernetes_pod_node_name"]
                   and r.get("targetLabel") == "node" for r in relabel):
            problems.add(name_of(sm), "must set `node` from __meta_kubernetes_pod_node_name")
        drops = [r for r in relabel if r.get("action") == "labeldrop"]
        if not any(re.fullmatch(r["regex"], "namespace") and re.fullmatch(r["regex"], "service")
                   for r in drops):
            problems.add(name_of(sm), "must labeldrop the target's namespace and service "
                                      "(they clash with hopwatch's own)")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_canary(objects, ds, config, problems: Problems):
    """The canary Service selects the agents' pods on their canary port, which the config's
    canary.listen serves and which is not the metrics port; the config names it as the canary
    and probes it always; the ServiceMonitor does not scrape it; the optional Ingress routes to
    it and validates."""
    svc = one(objects, "Service", problems, CANARY)
    if not svc:
        return
    where = name_of(svc)
    template = ds["spec"]["template"]
    if not selects(svc["spec"].get("selector", {}), template["metadata"]["labels"]):
        problems.add(where, "its selector does not match the agents' pods")
    if svc["spec"].get("clusterIP") == "None" or svc["spec"].get("type", "ClusterIP") != "ClusterIP":
        problems.add(where, "must be a ClusterIP Service: the agents probe its ClusterIP")
    container_ports = {p.get("name"): p["containerPort"] for p in template["spec"]["containers"][0].get("ports", [])}
    numbers = set(container_ports.values())
    for port in svc["spec"].get("ports", []):
        target = port.get("targetPort", port.get("port"))
        number = container_ports.get(target) if isinstance(target, str) else target
        if number not in numbers:
            problems.add(where, f"targetPort {target!r} is not a port of the agents' container")
        elif number == container_ports.get("metrics") or target == "metrics":
            problems.add(where, "must not target the metrics port: the canary never exposes /metrics")
    annotation = ((config or {}).get("kubernetes") or {}).get("services", {}).get(
        "annotation", "hopwatch.io/probe")
    if svc["metadata"].get("annotations", {}).get(annotation) == "false":
        problems.add(where, f"{annotation}: \"false\" would keep the agents from probing it")
    for sm in by_kind(objects, "ServiceMonitor"):
        if selects(sm["spec"]["selector"].get("matchLabels", {}), svc["metadata"].get("labels", {})):
            problems.add(name_of(sm), f"selects {CANARY}, which has no metrics")
    canary = (config or {}).get("canary") or {}
    listen = str(canary.get("listen", ""))
    if not listen or int(listen.rsplit(":", 1)[1]) != container_ports.get("canary"):
        problems.add(name_of(ds), f"the config's canary.listen {listen!r} is not the container port `canary`")
    name = f"{NAMESPACE}/{CANARY}"
    if canary.get("service") != name:
        problems.add("hopwatch-config", f"canary.service must be {name}")
    always = (((config or {}).get("kubernetes") or {}).get("services") or {}).get("always", [])
    if name not in always:
        problems.add("hopwatch-config", f"kubernetes.services.always must list {name}")
    check_canary_ingress(svc, problems)


def check_canary_ingress(svc, problems: Problems):
    ingresses = [o for o in yaml.safe_load_all(CANARY_INGRESS.read_text(encoding="utf-8")) if o]
    validate_schemas(ingresses, problems)
    ports = {p.get("name") for p in svc["spec"].get("ports", [])}
    for ing in ingresses:
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path.get("backend", {}).get("service", {})
                if backend.get("name") != CANARY or backend.get("port", {}).get("name") not in ports:
                    problems.add(name_of(ing), f"path {path.get('path')!r} must route to a port of {CANARY}")


def check_network_policy(objects, ds, problems: Problems):
    """The agents' NetworkPolicy: Ingress only (egress stays open: the agents must reach what
    they probe), the metrics port from the monitoring namespace only, the canary port from
    anywhere, and nothing else."""
    policy = one(objects, "NetworkPolicy", problems)
    if not (policy and ds):
        return
    where, spec = name_of(policy), policy["spec"]
    template = ds["spec"]["template"]
    if not selects(spec.get("podSelector", {}).get("matchLabels", {}), template["metadata"]["labels"]):
        problems.add(where, "its podSelector does not select the agents' pods")
    if spec.get("policyTypes") != ["Ingress"] or "egress" in spec:
        problems.add(where, "policyTypes must be [Ingress]: the agents' egress stays open")
    ports = {p.get("name"): p["containerPort"] for p in template["spec"]["containers"][0].get("ports", [])}
    opened = {}
    for rule in spec.get("ingress", []):
        for port in rule.get("ports", []):
            number = ports.get(port.get("port")) if isinstance(port.get("port"), str) else port.get("port")
            if number is None:
                problems.add(where, f"port {port.get('port')!r} is not a port of the agents' container")
            opened.setdefault(number, []).append(rule.get("from"))
        if not rule.get("ports"):
            problems.add(where, "a rule without ports opens every port")
    metrics = opened.get(ports.get("metrics"), [])
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING}}}
    if len(metrics) != 1 or not metrics[0] or any(
            peer.get("namespaceSelector") != monitoring["namespaceSelector"] for peer in metrics[0]):
        problems.add(where, f"the metrics port must be open to the {MONITORING} namespace only, "
                            f"as namespaceSelector kubernetes.io/metadata.name={MONITORING}: {metrics}")
    if "canary" in ports and opened.get(ports["canary"]) != [None]:
        problems.add(where, "the canary port must be open to every source: every agent probes it")
    others = set(opened) - {ports.get("metrics"), ports.get("canary")}
    if others:
        problems.add(where, f"opens ports {sorted(others)}, which are not the agents'")


def check_rules_and_dashboards(objects, problems: Problems):
    rule = one(objects, "PrometheusRule", problems)
    source = yaml.safe_load((ROOT / "alerts" / "hopwatch.rules.yaml").read_text(encoding="utf-8"))
    if rule and rule["spec"].get("groups") != source["groups"]:
        problems.add(name_of(rule), "its groups differ from alerts/hopwatch.rules.yaml")
    shipped = {}
    for cm in by_kind(objects, "ConfigMap"):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            shipped.update(cm.get("data", {}))
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        if shipped.get(path.name) != path.read_text(encoding="utf-8"):
            problems.add("deploy", f"no ConfigMap labelled grafana_dashboard=\"1\" holds "
                                   f"dashboards/{path.name} as it is")


def check_image(ds, problems: Problems):
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    version = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.M).group(1)
    image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
    if not image.endswith(f":{version}"):
        problems.add(name_of(ds), f"image {image} is not tagged with the crate version {version}")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    if not re.search(rf"^USER {RUNAS}(:{RUNAS})?$", dockerfile, re.M):
        problems.add("deploy/Dockerfile", f"must run as USER {RUNAS}")
    if not re.search(r"^FROM scratch$", dockerfile, re.M):
        problems.add("deploy/Dockerfile", "must be FROM scratch (the binary is static)")
    for name in ("passwd", "group"):
        entries = (ROOT / "deploy" / "image" / "etc" / name).read_text(encoding="utf-8").splitlines()
        if not any(line.split(":")[2:3] == [str(RUNAS)] for line in entries):
            problems.add(f"deploy/image/etc/{name}", f"has no entry with id {RUNAS}")


def render(problems: Problems):
    proc = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy")], capture_output=True, text=True)
    if proc.returncode != 0:
        problems.add("kubectl kustomize deploy/", proc.stderr.strip())
        return []
    return [o for o in yaml.safe_load_all(proc.stdout) if o]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hopwatch", type=Path, help="the hopwatch binary, for check-config")
    ap.add_argument("--validate-only", type=Path, metavar="FILE")
    ap.add_argument("--rendered", type=Path, metavar="FILE",
                    help="check the objects of FILE instead of `kubectl kustomize deploy/`")
    args = ap.parse_args()
    if MISSING:
        print(f"missing Python packages: pip install {' '.join(MISSING)}", file=sys.stderr)
        return 3
    problems = Problems()
    if args.validate_only:
        objects = [o for o in yaml.safe_load_all(args.validate_only.read_text()) if o]
        version = validate_schemas(objects, problems)
    else:
        if not args.rendered and not shutil.which("kubectl"):
            print("kubectl not found: install it (it is not a Debian package; the Kubernetes "
                  "apt repository or a release binary)", file=sys.stderr)
            return 3
        if not args.hopwatch:
            ap.error("--hopwatch PATH is required")
        if args.rendered:
            objects = [o for o in yaml.safe_load_all(args.rendered.read_text()) if o]
        else:
            objects = render(problems)
        version = validate_schemas(objects, problems)
        check_namespaces(objects, problems)
        check_rbac(objects, problems)
        priority_classes = {p["metadata"]["name"] for p in by_kind(objects, "PriorityClass")}
        ds = check_daemonset(objects, problems, priority_classes)
        if ds:
            config = check_config(objects, ds, args.hopwatch, problems)
            check_service_and_monitor(objects, ds, config, problems)
            check_canary(objects, ds, config, problems)
            check_network_policy(objects, ds, problems)
            check_image(ds, problems)
        check_rules_and_dashboards(objects, problems)
    for p in problems:
        print(p, file=sys.stderr)
    kinds = sorted({o.get("kind", "?") for o in objects})
    print(f"{len(objects)} objects ({', '.join(kinds)}), schemas of Kubernetes {version} and "
          f"the Prometheus Operator models: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
