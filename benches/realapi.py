#!/usr/bin/env python3
"""hopwatch against the real kube-apiserver at cluster scale: the cluster of the memory benchmark
(tests/fakeapi/gen_cluster.py: 10,000 Services in 50 namespaces, 10,000 EndpointSlices of 10
endpoints, 10 % not ready, 3 nodes) created through the API of a real etcd and kube-apiserver
(tools/controlplane/build), then one agent (the release binary) started against it. Prints a
Markdown table: the agent's time to ready, its RSS, and the watch events per second it kept up
with while EndpointSlices were rewritten as fast as this machine's API server would take them.

    sudo benches/realapi.py [--services 10000] [--endpoints 10] [--binary PATH] [--seconds 60]

Everything runs in one network namespace that has only loopback (the cluster's addresses are
added to `lo` there): the probes of the agent's 1,000 selected Services go nowhere else. The
namespace, etcd, kube-apiserver and the agent are removed at the end, also on failure.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ["HOPWATCH_LAB_PREFIX"] = "hwb-"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))

from hwlab import netns  # noqa: E402
from hwlab.kubeapi import ApiError, collection_path  # noqa: E402
from hwlab.lab import Lab, down, http_get  # noqa: E402
from hwlab.state import State  # noqa: E402

MARKER_NS = "bench-marker"
AGENT_LISTEN = ("127.0.0.1", 9808)


def generate(services, endpoints):
    out = subprocess.run([sys.executable, os.path.join(REPO, "tests", "fakeapi", "gen_cluster.py"), "generate",
                          "--services", str(services), "--endpoints", str(endpoints), "--namespaces", "50",
                          "--not-ready", "10", "--nodes", "3", "--ingresses", "0", "--seed", "1", "-o", "-"],
                         capture_output=True, text=True, check=True)
    items = json.loads(out.stdout)["items"]
    for item in items:
        item["metadata"].pop("ownerReferences", None)  # the generator's uids are not the server's
        item["metadata"].pop("uid", None)
        item["metadata"].pop("resourceVersion", None)
        item["metadata"].pop("creationTimestamp", None)
    return items


def create_all(lab, items, workers=8):
    """Creates `items` through the API, `workers` requests at a time; returns the seconds taken."""
    api = lab.api()
    started = time.monotonic()
    for kind in ("Namespace", "Node", "Service", "EndpointSlice"):
        batch = [i for i in items if i["kind"] == kind]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda obj: post(api, obj), batch):
                pass
        print(f"  {len(batch)} {kind} objects created ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return time.monotonic() - started


def post(api, obj):
    if obj["kind"] == "EndpointSlice":
        path = f"/apis/discovery.k8s.io/v1/namespaces/{obj['metadata']['namespace']}/endpointslices"
    else:
        path = collection_path(obj)
    for attempt in range(5):
        try:
            return api.request("POST", path, obj, timeout=60)
        except ApiError as err:
            if err.status == 409:
                return None
            if err.status not in (429, 500, 503, 504) or attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    return None


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(lab, ns, name, labels):
    status, body = http_get(ns, *AGENT_LISTEN, "/metrics", timeout=5)
    if status != 200:
        return None
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in body.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            return float(line.rsplit(" ", 1)[1])
    return None


def start_agent(lab, ns, selector):
    d = lab.st.file("agent-" + selector.replace("/", "_").replace("=", "_"))
    os.makedirs(d, exist_ok=True)
    resolv = os.path.join(d, "resolv.conf")
    with open(resolv, "w", encoding="utf-8") as f:
        f.write("nameserver 127.0.0.1\nsearch svc.cluster.local\noptions ndots:5\n")
    config = os.path.join(d, "config.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(f"listen: \"{AGENT_LISTEN[0]}:{AGENT_LISTEN[1]}\"\nmax_concurrency: 64\n"
                f"kubernetes:\n  kubeconfig: {lab.cp.kubeconfig_path('admin')}\n  pod_probe_nodes: 3\n"
                f"  services:\n    label_selector: \"{selector}\"\n    always: []\n"
                f"  dns:\n    resolv_conf: {resolv}\n")
    started = time.monotonic()
    proc = lab.start("hopwatch", ns, [lab.st.params["binary"], "run", "--config", config],
                     env={"NODE_NAME": "node-0", "RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")})
    lab.wait("hopwatch /readyz", lambda: http_get(ns, *AGENT_LISTEN, "/readyz")[0] == 200, 300, "hopwatch")
    return proc, time.monotonic() - started


def stop_agent(lab):
    from hwlab.state import stop_procs
    recs = lab.st.procs("hopwatch")
    stop_procs(recs)
    for r in recs:
        lab.st.drop_proc(r)


def churn(lab, slices, seconds, workers=8):
    """Rewrites EndpointSlices (one endpoint's ready flag flipped each time) as fast as the API
    server takes them, for `seconds`; returns the number of updates it accepted."""
    stop = time.monotonic() + seconds
    count = [0]
    lock = threading.Lock()

    def worker(k):
        api = lab.api()
        i = k
        while time.monotonic() < stop:
            obj = slices[i % len(slices)]
            i += workers
            ep = obj["endpoints"][0]
            ep["conditions"]["ready"] = not ep["conditions"].get("ready", True)
            md = obj["metadata"]
            path = f"/apis/discovery.k8s.io/v1/namespaces/{md['namespace']}/endpointslices/{md['name']}"
            try:
                api.patch(path, {"endpoints": obj["endpoints"]})
            except ApiError:
                continue
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0]


def marker_lag(lab, ns, ready):
    """Sets the marker Service's ready endpoints to `ready` and returns the seconds until the
    agent's hopwatch_service_endpoints says so."""
    api = lab.api()
    eps = [{"addresses": [f"10.250.9.{i + 1}"], "conditions": {"ready": i < ready}} for i in range(4)]
    api.patch(f"/apis/discovery.k8s.io/v1/namespaces/{MARKER_NS}/endpointslices/marker", {"endpoints": eps})
    started = time.monotonic()
    labels = {"namespace": MARKER_NS, "service": "marker", "condition": "ready"}
    while time.monotonic() - started < 120:
        if metric(lab, ns, "hopwatch_service_endpoints", labels) == ready:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


def marker(lab):
    """A Service the agent selects, whose readiness the churn run changes to time the agent."""
    api = lab.api()
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MARKER_NS}})
    api.create({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "marker", "namespace": MARKER_NS, "labels": {"hopwatch.test/shard": "0"}},
                "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    api.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{MARKER_NS}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "marker", "namespace": MARKER_NS,
                     "labels": {"kubernetes.io/service-name": "marker",
                                "endpointslice.kubernetes.io/managed-by": "bench"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.250.9.1"], "conditions": {"ready": True}}]})


def watch_rss(pid, seconds):
    samples = []
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        samples.append(rss_kib(pid))
        time.sleep(1)
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    steady = sorted(samples[len(samples) // 2:])[len(samples[len(samples) // 2:]) // 2]
    return steady, rss_kib(pid, "VmHWM"), cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=60, help="how long RSS is watched per run")
    ap.add_argument("--churn-seconds", type=int, default=30)
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"),
                                                    "release", "hopwatch"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("benches/realapi.py builds a network namespace: run it as root")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} missing: cargo build --release")
    st = State(tempfile.mkdtemp(prefix="hopwatch-realapi-"))
    st.data["params"] = {"domain": "cluster.local", "nodes": 1, "binary": args.binary}
    st.save()
    lab = Lab(st)
    ns = lab.cp.api_pod.netns
    try:
        lab.pki.ca()
        lab.make_netns(ns)
        for address in ("10.244.1.5/32",):
            netns.ip(ns, "addr", "add", address, "dev", "lo")
        lab.cp.identities()
        lab.cp.start_etcd()
        lab.cp.start_apiserver()
        items = generate(args.services, args.endpoints)
        endpoints = sum(len(i.get("endpoints") or []) for i in items if i["kind"] == "EndpointSlice")
        print(f"creating {len(items)} objects ({endpoints} endpoints)", file=sys.stderr)
        load = create_all(lab, items)
        marker(lab)
        rows = []
        for selector, name in (("hopwatch.test/shard=none", "held, none probed"),
                               ("hopwatch.test/shard=0", "held, 1,000 Services probed")):
            proc, ready = start_agent(lab, ns, selector)
            steady, peak, cpu = watch_rss(proc.pid, args.seconds)
            rows.append((name, ready, peak, steady, cpu))
            if selector.endswith("=0"):
                slices = [i for i in items if i["kind"] == "EndpointSlice"]
                idle_lag = marker_lag(lab, ns, 2)
                cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
                updates = churn(lab, slices, args.churn_seconds)
                churn_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
                lag = marker_lag(lab, ns, 3)
                rate = updates / args.churn_seconds
            stop_agent(lab)
        print(f"\n## hopwatch against the real kube-apiserver: {args.services:,} Services / {endpoints:,} endpoints\n")
        print(f"Created through the API in {load:.0f} s ({len(items) / load:.0f} objects/s, "
              f"8 clients). kube-apiserver v1.37.2, etcd v3.7.3, `--unsafe-no-fsync`.\n")
        print("| run | ready after | peak RSS (VmHWM) | steady RSS (median VmRSS) | agent CPU |")
        print("|---|---|---|---|---|")
        for name, ready, peak, steady, cpu in rows:
            print(f"| {name} | {ready:.2f} s | {peak / 1024:.1f} MiB | {steady / 1024:.1f} MiB | {cpu:.1f} % |")
        print(f"\nWatch events: {updates:,} EndpointSlice updates in {args.churn_seconds} s "
              f"({rate:.0f}/s, as fast as the API server took them from 8 clients); agent CPU {churn_cpu:.0f} % "
              f"meanwhile. A marker Service's readiness change reached the agent's /metrics "
              f"{idle_lag:.2f} s after it was written when idle, {lag:.2f} s right after the churn.")
    finally:
        down(st)
        import shutil
        shutil.rmtree(st.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
