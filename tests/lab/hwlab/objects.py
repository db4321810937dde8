"""The Kubernetes objects the lab writes into the real API server: Namespaces, Nodes, Services
(with fixed ClusterIPs), the Pods behind them, an IngressClass and an Ingress. Everything else
comes from the real control plane: EndpointSlices from the endpointslice controller, the
`default/kubernetes` Service and its endpoints from kube-apiserver, ServiceAccounts from the
serviceaccount controller, ClusterIP rules from kube-proxy and answers from CoreDNS. The
ingress controller's routes (nginx) are generated from what the API server serves.

The status of Nodes, Pods and the load balancer is written here too (`*_status`), through the
status subresource: the Pod status stands in for kubelet, the one component the lab does not
run (labels, node, declared ports, IP, Ready condition, as kubelet reports them). A fault that
changes readiness changes the Pod's Ready condition only, and the endpointslice controller
rewrites the slice; one that kills a pod's process leaves it Ready, which is the point of it.
"""

import datetime

from . import plan as P

WORKLOAD_PORT = 8080
# The ports each role's containers declare: (name, containerPort, protocol).
CONTAINER_PORTS = {
    "workload": [("http", WORKLOAD_PORT, "TCP")],
    "dns": [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
    "ingress": [("http", 80, "TCP"), ("https", 443, "TCP")],
    "agent": [("metrics", P.AGENT_PORT, "TCP")],
}
# The labels of each role's pods: what the Services of build() select.
POD_LABELS = {
    "workload": lambda pod: {"app": pod.app},
    "dns": lambda pod: {"k8s-app": "kube-dns"},
    "ingress": lambda pod: {"app": "ingress-nginx"},
    # deploy/daemonset.yaml's pod template; the agent reads them from its downward API file.
    "agent": lambda pod: {"app.kubernetes.io/name": "hopwatch", "app.kubernetes.io/component": "agent"},
}
# Service → (ClusterIP or "None", [(port name, port, target port, protocol)])
SERVICES = {
    ("shop", "web"): ("10.96.100.10", [("http", 80, WORKLOAD_PORT, "TCP")]),
    ("shop", "api"): ("10.96.100.11", [("http", 80, WORKLOAD_PORT, "TCP")]),
    ("shop", "cart"): ("10.96.100.12", [("http", 80, WORKLOAD_PORT, "TCP")]),
    ("shop", "db"): ("None", [("http", WORKLOAD_PORT, WORKLOAD_PORT, "TCP")]),
}
# `lab up --canary`: deploy/canary/'s Service, in front of the agents' canary responders.
CANARY = ("hopwatch", "hopwatch-canary")
CANARY_IP = "10.96.100.40"
INGRESS_HOSTS = {"shop.example.com": ("web", 80), "api.example.com": ("api", 80)}
# Names outside the cluster domain, answered by the lab DNS: the public hosts of the shop.
# www.example.org is probed by a static DNS target only (see dns.py: its zones count queries).
EXTERNAL_NAMES = ["shop.example.com", "api.example.com", "www.example.org"]
AMP_NAME = "www.example.org"


def meta(namespace, name, labels=None, annotations=None):
    md = {"name": name, "namespace": namespace}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return md


def service(namespace, name, cluster_ip, ports, selector=None, svc_type="ClusterIP"):
    spec = {"type": svc_type, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
            "ports": [{"name": n, "port": p, "targetPort": t, "protocol": proto} for n, p, t, proto in ports]}
    if selector:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(namespace, name, {"app": name}), "spec": spec}


NAMESPACES = ["kube-system", "shop", "ingress-nginx", "hopwatch", "monitoring"]
INGRESS_SERVICE = ("ingress-nginx", "ingress-nginx-controller")
# The load balancer's address, as a cloud controller would write it into the Service's status.
LB_STATUS = {"loadBalancer": {"ingress": [{"ip": P.LB_IP, "ipMode": "VIP"}]}}


def namespaces():
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES]


def services(lab, canary=False):
    """Every Service the lab creates (`default/kubernetes` is kube-apiserver's own), with the
    canary Service when `canary`."""
    dns_ports = [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP")]
    items = [service("kube-system", "kube-dns", P.DNS_IP, dns_ports, {"k8s-app": "kube-dns"})]
    ing_ports = [("http", 80, 80, "TCP"), ("https", 443, 443, "TCP")]
    items.append(service(*INGRESS_SERVICE, "10.96.100.30", ing_ports, {"app": "ingress-nginx"}, "LoadBalancer"))
    for (namespace, name), (cluster_ip, ports) in SERVICES.items():
        items.append(service(namespace, name, cluster_ip, ports, {"app": name}))
    if canary:
        agents = POD_LABELS["agent"](None)
        items.append(service(*CANARY, CANARY_IP, [("http", 80, P.CANARY_PORT, "TCP")], agents))
    return items


def expected_endpoints(lab, canary=False):
    """{(namespace, service): sorted pod IPs}: what the endpointslice controller must list once
    every pod is Ready (the canary's agents too, when `canary`)."""
    out = {("kube-system", "kube-dns"): [p.ip for p in lab.role("dns")],
           INGRESS_SERVICE: [p.ip for p in lab.role("ingress")]}
    for (namespace, name) in SERVICES:
        out[(namespace, name)] = sorted(p.ip for p in lab.role("workload") if p.app == name)
    if canary:
        out[CANARY] = sorted(p.ip for p in lab.role("agent"))
    return out


def pods(lab):
    return [pod_object(p) for p in lab.pods if p.role in CONTAINER_PORTS]


def ingress_class():
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(lab, n):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": P.node_name(n), "labels": {"kubernetes.io/hostname": P.node_name(n),
                                                             "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": P.node_cidr(n), "podCIDRs": [P.node_cidr(n)]}}


def node_status(n):
    """What kubelet reports for a healthy node: its address and a Ready condition."""
    stamp = now()
    return {"status": {"addresses": [{"type": "InternalIP", "address": P.underlay_ip(n)},
                                     {"type": "Hostname", "address": P.node_name(n)}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "the lab writes this status: there is no kubelet",
                                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}}


def container_name(pod):
    """The name of the pod's one container: its app (`web`), or its role."""
    return pod.app or pod.role


def pod_object(pod):
    """The Pod of a lab pod (a plan.Pod), Running and Ready on its node."""
    ports = [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in CONTAINER_PORTS[pod.role]]
    container = {"name": container_name(pod), "image": f"registry.lab/{container_name(pod)}:lab", "ports": ports}
    # No ServiceAccount token: nothing in the pod would read it, and no kubelet would mount it.
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(pod.namespace, pod.name, POD_LABELS[pod.role](pod)),
            "spec": {"nodeName": pod.node_name, "containers": [container], "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 0}}


def pod_status(pod, ready):
    """The status kubelet reports for a running pod whose container is (not) ready: the lab
    writes it through the status subresource, standing in for kubelet."""
    name, stamp = container_name(pod), now()
    return {"status": {"phase": "Running", "hostIP": P.underlay_ip(pod.node),
                       "hostIPs": [{"ip": P.underlay_ip(pod.node)}], "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                       "startTime": stamp, "conditions": pod_conditions(name, ready),
                       "containerStatuses": [{"name": name, "ready": ready, "started": True, "restartCount": 0,
                                              "image": f"registry.lab/{name}:lab", "imageID": "",
                                              "state": {"running": {"startedAt": stamp}}}]}}


def pod_conditions(container, ready):
    flag = "True" if ready else "False"
    unready = {} if ready else {"reason": "ContainersNotReady",
                                "message": f"containers with unready status: [{container}]"}
    return [{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag, **unready}, {"type": "Ready", "status": flag, **unready}]


def ingress():
    rules = [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": svc, "port": {"number": port}}}}]}} for host, (svc, port) in INGRESS_HOSTS.items()]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta("shop", "front"),
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": sorted(INGRESS_HOSTS), "secretName": "shop-tls"}],
                     "rules": rules}}


def ready(ep):
    """An EndpointSlice endpoint is Ready unless its `ready` condition says false (a missing
    condition counts as Ready, as the API says)."""
    return (ep.get("conditions") or {}).get("ready") is not False
