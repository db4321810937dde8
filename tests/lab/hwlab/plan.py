"""The lab's layout, computed from its parameters alone (domain, node count): nodes, pods,
addresses and namespace names. Every other module asks this one where things are.

Addresses (all inside the lab's own namespaces):
    10.244.N.0/24   pod CIDR of node N; 10.244.N.1 is the node's cni0 bridge
    172.18.0.(10+N) node N on the underlay switch (namespace hwl-underlay)
    10.96.0.0/12    Service ClusterIPs (kube-proxy DNATs them on every node)
    10.250.0.10     the load balancer address of the ingress controller's Service
"""

import os
from dataclasses import dataclass, field

# Every namespace name starts with this; another prefix lets a second lab run beside the first.
PREFIX = os.environ.get("HOPWATCH_LAB_PREFIX") or "hwl-"
SERVICE_CIDR = "10.96.0.0/12"
POD_CIDR = "10.244.0.0/16"
LB_CIDR = "10.250.0.0/24"
LB_IP = "10.250.0.10"
API_IP, API_PORT = "10.96.0.1", 443
DNS_IP = "10.96.0.10"
AGENT_PORT = 9808
# The agents' canary responder (`lab up --canary`), as in deploy/.
CANARY_PORT = 9809
UNDERLAY = PREFIX + "underlay"
MAX_NODES = 8


@dataclass
class Pod:
    name: str
    namespace: str  # Kubernetes namespace
    node: int  # 1-based
    ip: str
    role: str  # agent, apiserver, dns, ingress, prometheus, workload
    app: str = ""

    @property
    def netns(self):
        return PREFIX + self.name

    @property
    def veth(self):
        return "veth" + self.ip.rsplit(".", 1)[1]

    @property
    def node_name(self):
        return node_name(self.node)


@dataclass
class Plan:
    domain: str
    nodes: int
    pods: list = field(default_factory=list)

    def pod(self, name):
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(name)

    def role(self, role):
        return [p for p in self.pods if p.role == role]

    def agent(self, node):
        return next(p for p in self.pods if p.role == "agent" and p.node == node)

    def node_netns(self, node):
        return PREFIX + node_name(node)

    def all_netns(self):
        """Every namespace, in creation order: underlay, nodes, pods."""
        return [UNDERLAY] + [self.node_netns(n) for n in self.node_range()] + [p.netns for p in self.pods]

    def node_range(self):
        return range(1, self.nodes + 1)

    def search(self, namespace):
        return [f"{namespace}.svc.{self.domain}", f"svc.{self.domain}", self.domain]


def node_name(n):
    return f"node-{n}"


def node_of(arg, nodes):
    """`node-2`, `2` → 2; raises ValueError naming the allowed values."""
    text = str(arg)
    number = text[len("node-"):] if text.startswith("node-") else text
    if not number.isdigit() or not 1 <= int(number) <= nodes:
        raise ValueError(f"no node {arg!r}: the lab has node-1 … node-{nodes}")
    return int(number)


def node_cidr(n):
    return f"10.244.{n}.0/24"


def node_gw(n):
    return f"10.244.{n}.1"


def underlay_ip(n):
    return f"172.18.0.{10 + n}"


# Workloads: (name, Kubernetes namespace, app, preferred node). With fewer nodes, the
# preferred node wraps around.
WORKLOADS = [
    ("web-1", "shop", "web", 1),
    ("web-2", "shop", "web", 2),
    ("web-3", "shop", "web", 2),
    ("api-1", "shop", "api", 1),
    ("api-2", "shop", "api", 2),
    ("db-1", "shop", "db", 1),
    ("db-2", "shop", "db", 2),
    ("cart-1", "shop", "cart", 2),
]


def make(domain, nodes):
    plan = Plan(domain=domain, nodes=nodes)
    plan.pods += [Pod(f"hopwatch-{node_name(n)}", "hopwatch", n, f"10.244.{n}.2", "agent", "hopwatch")
                  for n in plan.node_range()]
    plan.pods += [
        Pod("kube-apiserver-node-1", "kube-system", 1, "10.244.1.5", "apiserver"),
        Pod("kube-dns-0", "kube-system", 1, "10.244.1.10", "dns", "kube-dns"),
        Pod("ingress-nginx-controller-0", "ingress-nginx", 1, "10.244.1.20", "ingress", "ingress-nginx"),
        Pod("prometheus-0", "monitoring", 1, "10.244.1.30", "prometheus", "prometheus"),
    ]
    next_host = {n: 11 for n in plan.node_range()}
    for name, namespace, app, preferred in WORKLOADS:
        n = (preferred - 1) % nodes + 1
        plan.pods.append(Pod(name, namespace, n, f"10.244.{n}.{next_host[n]}", "workload", app))
        next_host[n] += 1
    return plan
