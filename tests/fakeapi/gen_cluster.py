#!/usr/bin/env python3
"""Synthetic cluster for the fake apiserver: Services with EndpointSlices shaped like the
endpointslice controller's, plus namespaces, nodes and Ingresses; and the churn applied to it.

    gen_cluster.py generate --services 10000 --endpoints 10 --namespaces 50 --not-ready 10 -o cluster.json
    fake_apiserver.py --fixtures cluster.json --port 0
    gen_cluster.py churn --url http://127.0.0.1:PORT --percent 10      # 10% of slices per minute
    gen_cluster.py churn --url http://127.0.0.1:PORT --percent 0       # stop

Output is deterministic for a given --seed. Addresses: Service ClusterIPs from 10.100.0.0/16, pod
IPs from 10.64.0.0/10 (one per endpoint, unique), nodes node-0..N-1.
"""

import argparse
import json
import random
import sys
import urllib.request
import uuid

MANAGER = "endpointslice-controller.k8s.io"
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"
CREATED = "2025-01-01T00:00:00Z"


def _uid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "hopwatch-fakeapi/" + "/".join(parts)))


def _ip(base, n):
    return f"{base[0]}.{base[1] + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": _uid("ns", name), "creationTimestamp": CREATED,
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": _uid("node", name), "creationTimestamp": CREATED,
                         "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "zone-a"}},
            "spec": {"podCIDR": "10.64.0.0/24"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0"}}}


def service(ns, name, index):
    ip = _ip((10, 100), index + 1)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": _uid("svc", ns, name), "creationTimestamp": CREATED,
                         "labels": {"app": name, "hopwatch.test/shard": str(index % 10)}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                     "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
            "status": {"loadBalancer": {}}}


def endpoint(ns, svc, j, ip, node_name, ready, terminating):
    pod = f"{svc}-{j:03d}"
    return {"addresses": [ip],
            "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
            "nodeName": node_name, "zone": "zone-a",
            "targetRef": {"kind": "Pod", "namespace": ns, "name": pod, "uid": _uid("pod", ns, pod)}}


def endpoint_slice(ns, svc, endpoints, rng):
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    name = f"{svc}-{suffix}"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "uid": _uid("eps", ns, name),
                         "creationTimestamp": CREATED, "generateName": f"{svc}-",
                         "labels": {"kubernetes.io/service-name": svc,
                                    "endpointslice.kubernetes.io/managed-by": MANAGER},
                         "annotations": {TRIGGER: CREATED},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc,
                                              "uid": _uid("svc", ns, svc), "controller": True,
                                              "blockOwnerDeletion": True}],
                         "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                            "apiVersion": "discovery.k8s.io/v1", "time": CREATED,
                                            "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:addressType": {}, "f:endpoints": {}, "f:ports": {},
                                                         "f:metadata": {"f:labels": {}, "f:ownerReferences": {}}}}]},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


def ingress(ns, name, svc):
    host = f"{svc}.{ns}.example.test"
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "uid": _uid("ing", ns, name), "creationTimestamp": CREATED},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
                     "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                         "service": {"name": svc, "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}


def generate(services, endpoints, namespaces, nodes, not_ready_pct, terminating_pct, ingresses, seed):
    """All objects of the synthetic cluster, namespaces and nodes first."""
    rng = random.Random(seed)
    ns_names = [f"ns-{i:03d}" for i in range(namespaces)]
    node_names = [f"node-{i}" for i in range(nodes)]
    items = [namespace(n) for n in ns_names] + [node(n) for n in node_names]
    pod_index = 0
    for i in range(services):
        ns, svc = ns_names[i % namespaces], f"svc-{i:05d}"
        items.append(service(ns, svc, i))
        eps = []
        for j in range(endpoints):
            terminating = rng.random() * 100 < terminating_pct
            ready = rng.random() * 100 >= not_ready_pct
            eps.append(endpoint(ns, svc, j, _ip((10, 64), pod_index + 1), node_names[pod_index % nodes], ready, terminating))
            pod_index += 1
        items.append(endpoint_slice(ns, svc, eps, rng))
    if ingresses:
        items.append({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                      "metadata": {"name": "nginx", "uid": _uid("ingressclass", "nginx"), "creationTimestamp": CREATED},
                      "spec": {"controller": "k8s.io/ingress-nginx"}})
    for i in range(min(ingresses, services)):
        items.append(ingress(ns_names[i % namespaces], f"ing-{i:05d}", f"svc-{i:05d}"))
    return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}


def churn(obj, rng, stamp):
    """One realistic change: an EndpointSlice endpoint flips ready/serving (the controller also
    bumps the trigger-time annotation); any other object gets a counter annotation bumped."""
    md = obj.setdefault("metadata", {})
    annotations = md.get("annotations") or {}
    md["annotations"] = annotations
    eps = obj.get("endpoints") if obj.get("kind") == "EndpointSlice" else None
    if eps:
        cond = rng.choice(eps).setdefault("conditions", {})
        flipped = not cond.get("ready", True)
        cond["ready"], cond["serving"] = flipped, flipped
        annotations[TRIGGER] = stamp
    else:
        annotations["hopwatch.test/churn"] = str(int(annotations.get("hopwatch.test/churn", "0")) + 1)
    return obj


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write a List fixture")
    g.add_argument("--services", type=int, default=10000)
    g.add_argument("--endpoints", type=int, default=10, help="endpoints per EndpointSlice")
    g.add_argument("--namespaces", type=int, default=50)
    g.add_argument("--nodes", type=int, default=3)
    g.add_argument("--not-ready", type=float, default=10.0, help="percent of endpoints not ready")
    g.add_argument("--terminating", type=float, default=0.0, help="percent of endpoints terminating")
    g.add_argument("--ingresses", type=int, default=0)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("-o", "--output", default="-")
    c = sub.add_parser("churn", help="start or stop server-side churn on a running fake apiserver")
    c.add_argument("--url", required=True, help="http(s)://HOST:PORT of the fake apiserver")
    c.add_argument("--percent", type=float, required=True, help="percent of objects modified per minute; 0 stops")
    c.add_argument("--resource", default="discovery.k8s.io/v1/endpointslices",
                   help="GROUP/VERSION/PLURAL or v1/PLURAL")
    c.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        if args.namespaces < 1 or args.nodes < 1:
            ap.error("--namespaces and --nodes must be at least 1")
        cluster = generate(args.services, args.endpoints, args.namespaces, args.nodes, args.not_ready,
                           args.terminating, args.ingresses, args.seed)
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
        with out:
            json.dump(cluster, out, separators=(",", ":"))
        return 0
    reply = _post(args.url.rstrip("/") + "/_fake/churn",
                  {"resource": args.resource, "percentPerMinute": args.percent, "seed": args.seed})
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
