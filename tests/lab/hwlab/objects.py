"""The Kubernetes objects the fake API server starts with: Namespaces, Nodes, Services,
EndpointSlices shaped like the endpointslice controller's, the Pods behind them (labels,
node, declared ports, IP, Ready condition, as kubelet reports them), an IngressClass and an
Ingress whose status carries the load balancer address. Everything else in the lab
(kube-proxy rules, DNS zones, the ingress controller's routes) is generated from what the
API server serves, never from this module directly.

A fault that changes readiness changes the Pod's Ready condition and its endpoint's
together (`set_pod_ready`), as kubelet and the endpointslice controller would; one that
kills a pod's process leaves both Ready, which is the point of it.
"""

from . import plan as P

WORKLOAD_PORT = 8080
# The ports each role's containers declare: (name, containerPort, protocol).
CONTAINER_PORTS = {
    "workload": [("http", WORKLOAD_PORT, "TCP")],
    "dns": [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
    "ingress": [("http", 80, "TCP"), ("https", 443, "TCP")],
}
# The labels of each role's pods: what the Services of build() select.
POD_LABELS = {
    "workload": lambda pod: {"app": pod.app},
    "dns": lambda pod: {"k8s-app": "kube-dns"},
    "ingress": lambda pod: {"app": "ingress-nginx"},
}
# Service → (ClusterIP or "None", [(port name, port, target port, protocol)])
SERVICES = {
    ("shop", "web"): ("10.96.100.10", [("http", 80, WORKLOAD_PORT, "TCP")]),
    ("shop", "api"): ("10.96.100.11", [("http", 80, WORKLOAD_PORT, "TCP")]),
    ("shop", "cart"): ("10.96.100.12", [("http", 80, WORKLOAD_PORT, "TCP")]),
    ("shop", "db"): ("None", [("http", WORKLOAD_PORT, WORKLOAD_PORT, "TCP")]),
}
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


def service(namespace, name, cluster_ip, ports, selector=None, svc_type="ClusterIP", status=None):
    spec = {"type": svc_type, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
            "ports": [{"name": n, "port": p, "targetPort": t, "protocol": proto} for n, p, t, proto in ports]}
    if selector:
        spec["selector"] = selector
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": meta(namespace, name, {"app": name}), "spec": spec}
    if status:
        obj["status"] = status
    return obj


def endpoint(pod, ready=True):
    return {"addresses": [pod.ip], "conditions": {"ready": ready, "serving": ready, "terminating": False},
            "nodeName": pod.node_name, "targetRef": {"kind": "Pod", "namespace": pod.namespace, "name": pod.name}}


def slice_name(service_name):
    return f"{service_name}-lab00"


def endpoint_slice(namespace, service_name, ports, pods, managed_by="endpointslice-controller.k8s.io"):
    labels = {"kubernetes.io/service-name": service_name, "endpointslice.kubernetes.io/managed-by": managed_by}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta(namespace, slice_name(service_name), labels),
            "addressType": "IPv4",
            "ports": [{"name": n, "port": t, "protocol": proto} for n, _, t, proto in ports],
            "endpoints": [endpoint(p) for p in pods]}


def build(lab):
    """The initial objects of a lab laid out by `lab` (a plan.Plan)."""
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
             for ns in ["default", "kube-system", "shop", "ingress-nginx", "hopwatch", "monitoring"]]
    items += [node(lab, n) for n in lab.node_range()]
    api = lab.pod("kube-apiserver-node-1")
    api_ports = [("https", P.API_PORT, 6443, "TCP")]
    items.append(service("default", "kubernetes", P.API_IP, api_ports))
    items.append(endpoint_slice("default", "kubernetes", api_ports, [api], "endpointslice-mirroring-controller.k8s.io"))
    dns_ports = [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP")]
    items.append(service("kube-system", "kube-dns", P.DNS_IP, dns_ports, {"k8s-app": "kube-dns"}))
    items.append(endpoint_slice("kube-system", "kube-dns", dns_ports, lab.role("dns")))
    ing_ports = [("http", 80, 80, "TCP"), ("https", 443, 443, "TCP")]
    lb_status = {"loadBalancer": {"ingress": [{"ip": P.LB_IP}]}}
    items.append(service("ingress-nginx", "ingress-nginx-controller", "10.96.100.30", ing_ports,
                         {"app": "ingress-nginx"}, "LoadBalancer", lb_status))
    items.append(endpoint_slice("ingress-nginx", "ingress-nginx-controller", ing_ports, lab.role("ingress")))
    for (namespace, name), (cluster_ip, ports) in SERVICES.items():
        pods = [p for p in lab.role("workload") if p.app == name]
        items.append(service(namespace, name, cluster_ip, ports, {"app": name}))
        items.append(endpoint_slice(namespace, name, ports, pods))
    items += [pod_object(p) for p in lab.pods if p.role in CONTAINER_PORTS]
    items.append({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                  "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})
    items.append(ingress())
    return {"apiVersion": "v1", "kind": "List", "items": items}


def node(lab, n):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": P.node_name(n), "labels": {"kubernetes.io/hostname": P.node_name(n)}},
            "spec": {"podCIDR": P.node_cidr(n), "podCIDRs": [P.node_cidr(n)]},
            "status": {"addresses": [{"type": "InternalIP", "address": P.underlay_ip(n)},
                                     {"type": "Hostname", "address": P.node_name(n)}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def container_name(pod):
    """The name of the pod's one container: its app (`web`), or its role."""
    return pod.app or pod.role


def pod_object(pod):
    """The Pod of a lab pod (a plan.Pod), Running and Ready on its node."""
    ports = [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in CONTAINER_PORTS[pod.role]]
    container = {"name": container_name(pod), "image": f"registry.lab/{container_name(pod)}:lab", "ports": ports}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(pod.namespace, pod.name, POD_LABELS[pod.role](pod)),
            "spec": {"nodeName": pod.node_name, "containers": [container]},
            "status": pod_status(pod, True)}


def pod_status(pod, ready):
    """The status kubelet reports for a running pod whose container is (not) ready."""
    return {"phase": "Running", "hostIP": P.underlay_ip(pod.node), "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
            "conditions": pod_conditions(container_name(pod), ready),
            "containerStatuses": [{"name": container_name(pod), "ready": ready, "started": True, "restartCount": 0,
                                   "image": f"registry.lab/{container_name(pod)}:lab",
                                   "state": {"running": {}}}]}


def pod_conditions(container, ready):
    flag = "True" if ready else "False"
    unready = {} if ready else {"reason": "ContainersNotReady",
                                "message": f"containers with unready status: [{container}]"}
    return [{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag, **unready}, {"type": "Ready", "status": flag, **unready}]


def set_pod_ready(obj, ready):
    """Turns a Pod object's container and Ready conditions to `ready`, in place, as kubelet
    would when its readiness probe starts or stops passing."""
    status = obj.setdefault("status", {})
    containers = status.get("containerStatuses") or []
    for c in containers:
        c["ready"] = ready
    names = [c.get("name", "") for c in containers] or [c.get("name", "") for c in obj["spec"]["containers"]]
    fresh = {c["type"]: c for c in pod_conditions(" ".join(names), ready)}
    kept = [c for c in status.get("conditions") or [] if c.get("type") not in ("ContainersReady", "Ready")]
    status["conditions"] = kept + [fresh["ContainersReady"], fresh["Ready"]]
    return obj


def selects(selector, labels):
    """Whether a Service selector (equality only) picks a pod with these labels."""
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


def ingress():
    rules = [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": svc, "port": {"number": port}}}}]}} for host, (svc, port) in INGRESS_HOSTS.items()]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta("shop", "front"),
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": sorted(INGRESS_HOSTS), "secretName": "shop-tls"}],
                     "rules": rules},
            "status": {"loadBalancer": {"ingress": [{"ip": P.LB_IP}]}}}
