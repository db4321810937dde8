"""The kinds the fake apiserver serves: discovery data, selectable fields, defaulting, Table columns.

The object store itself is kind-agnostic; everything kind-specific lives here, so adding a kind is
one `Resource(...)` entry (plus, optionally, Table columns).
"""

import datetime
import ipaddress
import threading
from dataclasses import dataclass, field

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    """One served resource, e.g. services in core/v1."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple = ()
    categories: tuple = ()
    # fieldSelector name -> path in the object, besides metadata.name / metadata.namespace
    fields: dict = field(default_factory=dict)
    columns: tuple = ()  # (name, type, format, priority)
    cells: object = None  # fn(obj) -> cells for `columns` without Name and Age
    status_subresource: bool = True  # PUT/PATCH of the object itself leaves .status alone

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self):
        return (self.group, self.version, self.plural)

    def selectable_fields(self):
        base = {"metadata.name": ("metadata", "name")}
        if self.namespaced:
            base["metadata.namespace"] = ("metadata", "namespace")
        return {**base, **self.fields}


def field_values(res, obj):
    """The string value of every selectable field (missing → '', bool → 'true'/'false')."""
    out = {}
    for name, path in res.selectable_fields().items():
        val = obj
        for part in path:
            val = val.get(part) if isinstance(val, dict) else None
        out[name] = ("true" if val else "false") if isinstance(val, bool) else ("" if val is None else str(val))
    return out


# ---------------------------------------------------------------- Table cells (kubectl printing)

def human_age(created, now):
    """kubectl's duration.HumanDuration of now - creationTimestamp."""
    try:
        ts = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    secs = int((now - ts).total_seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 120:
        return f"{max(secs, 0)}s"
    mins, hours = secs // 60, secs // 3600
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def _lb_addresses(obj):
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i.get("ip") or i.get("hostname") or "" for i in ingress]


def _service_cells(obj):
    spec = obj.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if kind == "LoadBalancer":
        external = external + _lb_addresses(obj) or ["<pending>"]
    elif kind == "ExternalName":
        external = [spec.get("externalName", "")]
    ports = [f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
             else f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []]
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [kind, spec.get("clusterIP") or "<none>", ",".join(external) or "<none>",
            ",".join(ports) or "<none>", selector or "<none>"]


def _endpointslice_cells(obj):
    ports = ",".join(str(p.get("port")) for p in obj.get("ports") or [] if p.get("port") is not None)
    addrs = [a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [obj.get("addressType", ""), ports or "<unset>", shown or "<unset>"]


def _ingress_cells(obj):
    spec = obj.get("spec") or {}
    hosts = ",".join(r.get("host") for r in spec.get("rules") or [] if r.get("host")) or "*"
    ports = "80, 443" if spec.get("tls") else "80"
    return [spec.get("ingressClassName") or "<none>", hosts, ",".join(_lb_addresses(obj)), ports]


def _pod_cells(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    phase = status.get("reason") or status.get("phase") or "Pending"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return [f"{ready}/{len(spec.get('containers') or [])}", phase, restarts,
            status.get("podIP") or "<none>", spec.get("nodeName") or "<none>"]


def _node_cells(obj):
    conds = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    roles = sorted(k.split("/", 1)[1] for k in ((obj.get("metadata") or {}).get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    version = ((obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return ["Ready" if ready else "NotReady", ",".join(roles) or "<none>", version]


def _namespace_cells(obj):
    return [(obj.get("status") or {}).get("phase") or "Active"]


def _networkpolicy_cells(obj):
    # kubectl's Pod-Selector column: matchLabels as k=v, or <none> for an empty selector.
    sel = ((obj.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
    return [",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"]


def _ingressclass_cells(obj):
    spec = obj.get("spec") or {}
    params = spec.get("parameters") or {}
    shown = f"{params.get('kind')}/{params.get('name')}" if params else "<none>"
    return [spec.get("controller", ""), shown]


def _col(name, prio=0, kind="string", fmt=""):
    return (name, kind, fmt, prio)


AGE = _col("Age", kind="string")

RESOURCES = [
    Resource("", "v1", "namespaces", "Namespace", "namespace", False, ("ns",),
             fields={"status.phase": ("status", "phase")},
             columns=(_col("Status"), AGE), cells=_namespace_cells),
    Resource("", "v1", "nodes", "Node", "node", False, ("no",),
             fields={"spec.unschedulable": ("spec", "unschedulable")},
             columns=(_col("Status"), _col("Roles"), AGE, _col("Version")), cells=_node_cells),
    Resource("", "v1", "pods", "Pod", "pod", True, ("po",), ("all",),
             fields={"spec.nodeName": ("spec", "nodeName"), "status.phase": ("status", "phase"),
                     "status.podIP": ("status", "podIP"), "spec.hostNetwork": ("spec", "hostNetwork"),
                     "spec.serviceAccountName": ("spec", "serviceAccountName")},
             columns=(_col("Ready"), _col("Status"), _col("Restarts", kind="integer"), AGE,
                      _col("IP", 1), _col("Node", 1)), cells=_pod_cells),
    Resource("", "v1", "services", "Service", "service", True, ("svc",), ("all",),
             fields={"spec.clusterIP": ("spec", "clusterIP"), "spec.type": ("spec", "type")},
             columns=(_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE,
                      _col("Selector", 1)), cells=_service_cells),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", "endpointslice", True,
             columns=(_col("AddressType"), _col("Ports"), _col("Endpoints"), AGE),
             cells=_endpointslice_cells, status_subresource=False),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", "ingress", True, ("ing",),
             columns=(_col("Class"), _col("Hosts"), _col("Address"), _col("Ports"), AGE),
             cells=_ingress_cells),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "networkpolicy", True,
             ("netpol",), columns=(_col("Pod-Selector"), AGE), cells=_networkpolicy_cells,
             status_subresource=False),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", "ingressclass", False,
             columns=(_col("Controller"), _col("Parameters"), AGE), cells=_ingressclass_cells,
             status_subresource=False),
]

# The Gateway API is a set of CRDs a cluster may not have: served only with --gateway-api, as a
# kube-apiserver serves them once their CRDs are installed. Without it, their lists are 404.
GATEWAY_API = [
    Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway", "gateway", True, ("gtw",),
             ("gateway-api",), status_subresource=True),
    Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", "httproute", True, (),
             ("gateway-api",), status_subresource=True),
]

BY_KEY = {r.key: r for r in RESOURCES}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


def serve_gateway_api():
    """Serves the Gateway API kinds too; called before the store is made."""
    for r in GATEWAY_API:
        if r.key not in BY_KEY:
            RESOURCES.append(r)
            BY_KEY[r.key] = r
            BY_KIND[(r.api_version, r.kind)] = r


def lookup(group, version, plural):
    return BY_KEY.get((group, version, plural))


def by_kind(api_version, kind):
    return BY_KIND.get((api_version, kind))


# ---------------------------------------------------------------- defaulting on create

class ClusterIPAllocator:
    """Hands out Service ClusterIPs from 10.96.0.0/12 like the apiserver's allocator (sequentially)."""

    def __init__(self, cidr="10.96.0.0/12"):
        self.net = ipaddress.ip_network(cidr)
        self.next = 10  # skip .1 (the kubernetes Service) and a few reserved ones
        self.lock = threading.Lock()

    def allocate(self):
        with self.lock:
            self.next += 1
            return str(self.net.network_address + self.next)


ALLOCATOR = ClusterIPAllocator()


def apply_defaults(res, obj):
    """The few defaults real clients rely on when reading back what they created."""
    if res.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = ALLOCATOR.allocate()
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif res.kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            obj["metadata"]["name"]


# ---------------------------------------------------------------- discovery documents

def api_resource_list(group, version):
    """APIResourceList for /api/v1 or /apis/{group}/{version}; None when not served."""
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        return None
    items = []
    for r in served:
        item = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                "kind": r.kind, "verbs": VERBS}
        if r.short_names:
            item["shortNames"] = list(r.short_names)
        if r.categories:
            item["categories"] = list(r.categories)
        items.append(item)
        if r.status_subresource:
            items.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                          "kind": r.kind, "verbs": ["get", "patch", "update"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}


def api_group(group):
    versions = sorted({r.version for r in RESOURCES if r.group == group})
    if not group or not versions:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs,
            "preferredVersion": gvs[0]}


def api_group_list():
    groups = sorted({r.group for r in RESOURCES if r.group})
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
                       for g in groups]}


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "fakeapi",
           "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
           "compiler": "gc", "platform": "linux/amd64"}


# ---------------------------------------------------------------- meta.k8s.io/v1 Table

def table_columns(res):
    cols = [("Name", "string", "name", 0)] + list(res.columns or (AGE,))
    return [{"name": n, "type": t, "format": f, "description": n, "priority": p} for n, t, f, p in cols]


def table_row(res, obj, now, include):
    """One Table row; `include` is the includeObject option: Metadata (default), Object or None."""
    md = obj.get("metadata") or {}
    cells = list(res.cells(obj)) if res.cells else []
    age = human_age(md.get("creationTimestamp"), now)
    names = [c[0] for c in (res.columns or (AGE,))]
    cells.insert(names.index("Age") if "Age" in names else len(cells), age)
    row = {"cells": [md.get("name", "")] + cells}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md}
    return row


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)
