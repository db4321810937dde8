"""`lab churn`: the churn of a busy cluster, for the soak (tests/soak, docs/RELIABILITY.md).

For `--seconds`, through the real API server:
    pods          the shop's workload pods flip Ready, `--flips` a second in all, round robin
                  (kubelet's part: the endpointslice controller and kube-proxy follow)
    objects       every `--period` seconds a Service `shop/churn-N` (selecting the web pods,
                  ClusterIP allocated by the API server) and an Ingress `shop/churn-N` for
                  churn-N.example.com are created, and the oldest pair beyond `--keep` deleted
    config        every `--reload` seconds each agent's config file is rewritten (atomically)
                  with one target's interval changed, which the agent reloads

Each event is printed as a JSON line when it happens (`{"t": seconds, "created": name}`,
`{"t": …, "deleted": name}`, `{"t": …, "reload": n}`), so a test can tell which objects are alive;
the last line sums it up. Afterwards every pod is Ready again, every churn object deleted and
every config file back as it was.
"""

import json
import sys
import time

from . import objects as O
from .kubeapi import ApiError
from .state import write_atomic

NAMESPACE = "shop"
PREFIX = "churn-"
# The line of the agents' config whose value is toggled: the kubelet-resolv.conf DNS target's
# interval (lab.agent_config writes it), a change a reload applies without touching the others.
RELOAD_LINE = ("    interval_seconds: 8\n", "    interval_seconds: 9\n")


def emit(start, **event):
    print(json.dumps({"t": round(time.monotonic() - start, 3), **event}, sort_keys=True), flush=True)


def service(name):
    ports = [{"name": "http", "port": 80, "targetPort": O.WORKLOAD_PORT, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": O.meta(NAMESPACE, name, {"app": name}),
            "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "ports": ports}}


def ingress(name):
    backend = {"service": {"name": name, "port": {"number": 80}}}
    rule = {"host": f"{name}.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": O.meta(NAMESPACE, name),
            "spec": {"ingressClassName": "nginx", "rules": [rule]}}


def delete_pair(api, name):
    api.delete(f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/ingresses/{name}")
    api.delete(f"/api/v1/namespaces/{NAMESPACE}/services/{name}")


class Churn:
    def __init__(self, lab, seconds, flips, period, keep, reload):
        self.lab, self.seconds, self.flips, self.period, self.keep, self.reload = \
            lab, seconds, flips, period, keep, reload
        self.pods = [p for p in lab.plan.role("workload") if p.namespace == NAMESPACE]
        self.configs = [lab.st.file("agents", a.node_name, "config.yaml") for a in lab.plan.role("agent")]
        self.originals = {}
        self.alive = []
        self.not_ready = set()
        self.counts = {"flips": 0, "created": 0, "deleted": 0, "reloads": 0, "api_errors": 0}

    def run(self):
        api = self.lab.api()
        start = time.monotonic()
        for path in self.configs:
            with open(path, encoding="utf-8") as f:
                self.originals[path] = f.read()
        next_object, next_reload, made, i = start, start + self.reload, 0, 0
        try:
            while time.monotonic() - start < self.seconds:
                now = time.monotonic()
                if now >= next_object:
                    made += 1
                    self.create(api, f"{PREFIX}{made}", start)
                    next_object += self.period
                if now >= next_reload:
                    self.reload_configs(start)
                    next_reload += self.reload
                self.flip(self.pods[i % len(self.pods)])
                i += 1
                time.sleep(max(0.0, start + i / self.flips - time.monotonic()))
        finally:
            self.restore(api, start)
        emit(start, summary=self.counts)

    def flip(self, pod):
        ready = pod.name in self.not_ready
        try:
            self.lab.write_pod_status(pod, ready)
        except ApiError:
            self.counts["api_errors"] += 1
            return
        (self.not_ready.discard if ready else self.not_ready.add)(pod.name)
        self.counts["flips"] += 1

    def create(self, api, name, start):
        api.create(service(name))
        api.create(ingress(name))
        self.alive.append(name)
        self.counts["created"] += 1
        emit(start, created=name)
        while len(self.alive) > self.keep:
            old = self.alive.pop(0)
            delete_pair(api, old)
            self.counts["deleted"] += 1
            emit(start, deleted=old)

    def reload_configs(self, start):
        self.counts["reloads"] += 1
        old, new = RELOAD_LINE if self.counts["reloads"] % 2 else RELOAD_LINE[::-1]
        for path in self.configs:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            write_atomic(path, text.replace(old, new, 1))
        emit(start, reload=self.counts["reloads"])

    def restore(self, api, start):
        for pod in self.pods:
            if pod.name in self.not_ready:
                self.lab.write_pod_status(pod, True)
        self.not_ready.clear()
        for name in self.alive:
            delete_pair(api, name)
            self.counts["deleted"] += 1
            emit(start, deleted=name)
        self.alive = []
        for path, text in self.originals.items():
            write_atomic(path, text)


def run(lab, args):
    for field in ("seconds", "flips", "period", "keep", "reload"):
        if getattr(args, field) <= 0:
            print(f"lab churn: --{field} must be positive", file=sys.stderr)
            return 2
    Churn(lab, args.seconds, args.flips, args.period, args.keep, args.reload).run()
    return 0
