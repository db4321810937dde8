"""Faults the lab can inject, each undone by `heal` with the same arguments. Every fault is
written to the state file while it is active (`lab status` lists them; `lab heal all` undoes
them all). Each prints one JSON line describing what it did.

    no-endpoints --service NS/NAME   the Service's EndpointSlice loses every endpoint while its
                                     pods stay as they are; kube-proxy, DNS, nginx re-synced
    none-ready   --service NS/NAME   every endpoint of the Service, and its Pod, turns not Ready
    kill-pod     --pod POD           the pod's server process is killed; its endpoint stays Ready
    kube-proxy   --node N [--service NS/NAME]
                                     that node's kube-proxy rules are gone (all of them, or the
                                     Service's only) until it is re-synced (`lab apply --node N`)
    dns-down                         knotd is frozen (SIGSTOP): queries get no answer
    dns-block    --node N            UDP and TCP port 53 dropped for pods of node N, as a bad
                                     NetworkPolicy would (filter FORWARD in the node)
    cert         --host H --kind expired|expiring|wrong-host|valid
                                     the ingress controller presents that certificate for H
                                     (expiring: valid for 10 more days)
    latency      --pod POD --ms MS   every packet into the pod is held MS ms (NFQUEUE + nfqdelay)
    api-down     --seconds S         the API server answers 503 for S seconds (watches dropped)
    api-gone                         every watch is cut and the history compacted, so resuming
                                     watches get 410 Gone and relist
    flap         --service NS/NAME --pod POD [--count N] [--period S]
                                     the pod's endpoint flips Ready N times, every S seconds,
                                     re-syncing kube-proxy each time; ends Ready
    selector     --service NS/NAME --selector KEY=VALUE
                                     the Service selects KEY=VALUE, which no pod carries: its
                                     EndpointSlice keeps only the pods the new selector picks
                                     (as the endpointslice controller would), then a re-sync
    target-port  --service NS/NAME --port N
                                     the Service's targetPort becomes N while its pods listen on
                                     (and declare) 8080; the EndpointSlice's ports follow, and
                                     kube-proxy DNATs to N, which the pods refuse; endpoints
                                     stay Ready
"""

import json
import os
import signal
import sys
import time

from . import ingress, kubeproxy, netns
from . import objects as O
from . import plan as P
from .netns import LabError
from .opsfaults import OpsFaults
from .pki import not_after
from .state import stop_procs

NAMES = ["no-endpoints", "none-ready", "kill-pod", "kube-proxy", "dns-down", "dns-block", "cert", "latency",
         "api-down", "api-gone", "flap", "lb-dns", "search", "dns-loss", "throttle", "agent-stop", "agent-gone",
         "rbac", "config", "selector", "target-port"]
NETPOL_CHAIN = "HWL-NETPOL"


def need(args, *fields):
    for f in fields:
        if getattr(args, f, None) in (None, ""):
            raise LabError(f"this fault needs --{f.replace('_', '-')}")


def split_service(text):
    if text.count("/") != 1:
        raise LabError(f"--service {text!r}: write it as namespace/name, e.g. shop/web")
    return text.split("/")


def key(name, args):
    """The state key of an active fault: its name and its target."""
    target = args.get("service") or args.get("pod") or args.get("node") or args.get("host") or ""
    if name == "kube-proxy":
        target = args["node"]
    if name == "rbac":
        target = args["resource"]
    return f"{name} {target}".strip()


class Faults(OpsFaults):
    def __init__(self, lab):
        self.lab, self.st = lab, lab.st

    def inject(self, name, args):
        fn = getattr(self, "fault_" + name.replace("-", "_"), None)
        if fn is None:
            raise LabError(f"no fault {name!r}; faults: {', '.join(NAMES)}")
        return fn(args)

    def heal(self, name, args):
        if name == "all":
            return {"healed": [self.heal_key(k) for k in list(self.st.data["faults"])]}
        fn = getattr(self, "heal_" + name.replace("-", "_"), None)
        if fn is None:
            raise LabError(f"no fault {name!r}; faults: {', '.join(NAMES)}, or `all`")
        return fn(args)

    def heal_key(self, k):
        name = k.split(" ", 1)[0]
        saved = self.st.data["faults"][k]
        self.heal(name, _Args(saved))
        return k

    def record(self, name, args, extra=None):
        saved = {k: v for k, v in vars(args).items() if v is not None}
        saved.update(json.loads(json.dumps(extra or {})))  # a copy: the caller goes on editing its objects
        self.st.set_fault(key(name, saved), saved)

    def forget(self, name, args):
        self.st.clear_fault(key(name, {k: v for k, v in vars(args).items() if v is not None}))

    def node(self, args):
        need(args, "node")
        try:
            n = P.node_of(args.node, self.lab.plan.nodes)
        except ValueError as err:
            raise LabError(str(err)) from None
        args.node = P.node_name(n)
        return n

    def pod(self, args, role="workload"):
        need(args, "pod")
        try:
            pod = self.lab.plan.pod(args.pod)
        except KeyError:
            names = [p.name for p in self.lab.plan.role(role)]
            raise LabError(f"no pod {args.pod!r}; pods: {', '.join(names)}") from None
        if pod.role != role:
            raise LabError(f"{args.pod} is not a workload pod")
        return pod

    # ------------------------------------------------------------ endpoints

    def slice_of(self, args):
        need(args, "service")
        ns, name = split_service(args.service)
        return self.lab.api().slice(ns, O.slice_name(name))

    def fault_no_endpoints(self, args):
        sl = self.slice_of(args)
        self.record("no-endpoints", args, {"endpoints": sl.get("endpoints") or []})
        sl["endpoints"] = []
        self.lab.api().put_slice(sl)
        self.lab.apply()
        return {"service": args.service, "endpoints": 0}

    def heal_no_endpoints(self, args):
        saved = self.st.data["faults"].get(key("no-endpoints", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active no-endpoints fault on {args.service}")
        sl = self.slice_of(args)
        sl["endpoints"] = saved["endpoints"]
        self.lab.api().put_slice(sl)
        self.forget("no-endpoints", args)
        self.lab.apply()
        return {"service": args.service, "endpoints": len(saved["endpoints"])}

    def fault_none_ready(self, args):
        sl = self.slice_of(args)
        self.record("none-ready", args, {"endpoints": sl.get("endpoints") or []})
        for ep in sl.get("endpoints") or []:
            ep["conditions"] = {"ready": False, "serving": False, "terminating": False}
        self.lab.api().put_slice(sl)
        self.pods_follow(sl)
        self.lab.apply()
        return {"service": args.service, "ready": 0}

    def heal_none_ready(self, args):
        saved = self.st.data["faults"].get(key("none-ready", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active none-ready fault on {args.service}")
        sl = self.slice_of(args)
        sl["endpoints"] = saved["endpoints"]
        self.lab.api().put_slice(sl)
        self.pods_follow(sl)
        self.forget("none-ready", args)
        self.lab.apply()
        return {"service": args.service}

    def set_ready(self, args, pod, value):
        sl = self.slice_of(args)
        hit = False
        for ep in sl.get("endpoints") or []:
            if (ep.get("targetRef") or {}).get("name") == pod.name:
                ep["conditions"] = {"ready": value, "serving": value, "terminating": False}
                hit = True
        if not hit:
            raise LabError(f"{pod.name} is not an endpoint of {args.service}")
        self.lab.api().put_slice(sl)
        self.set_pod_ready(pod.namespace, pod.name, value)
        self.lab.apply()

    def fault_flap(self, args):
        pod = self.pod(args)
        count, period = int(args.count or 20), float(args.period or 1.0)
        self.record("flap", args)
        ready, started = True, time.monotonic()
        for i in range(count):
            ready = not ready
            self.set_ready(args, pod, ready)
            time.sleep(max(0.0, started + (i + 1) * period - time.monotonic()))
        if not ready:
            self.set_ready(args, pod, True)
            count += 1
        self.forget("flap", args)
        return {"service": args.service, "pod": pod.name, "flips": count}

    def heal_flap(self, args):
        pod = self.pod(args)
        self.set_ready(args, pod, True)
        self.forget("flap", args)
        return {"service": args.service, "pod": pod.name}

    # ------------------------------------------------------------ pods

    def fault_kill_pod(self, args):
        pod = self.pod(args)
        rec = self.st.proc(pod.name)
        if rec is None:
            raise LabError(f"{pod.name} has no recorded process")
        stop_procs([rec])
        self.st.drop_proc(rec)
        self.record("kill-pod", args)
        return {"pod": pod.name, "killed": rec["pid"]}

    def heal_kill_pod(self, args):
        pod = self.pod(args)
        if not self.lab.running(pod.name):
            self.lab.start_workload(pod)
            self.lab.wait_workload(pod)
        self.forget("kill-pod", args)
        return {"pod": pod.name, "pid": self.st.proc(pod.name)["pid"]}

    def fault_latency(self, args):
        pod = self.pod(args)
        need(args, "ms")
        queue = 100 + self.lab.plan.pods.index(pod)
        name = f"nfqdelay-{pod.name}"
        self.lab.start(name, pod.netns, [sys.executable, os.path.join(self.lab_home(), "bin", "nfqdelay.py"),
                                          str(queue), str(args.ms)])
        self.lab.wait("nfqdelay", lambda: "ready" in self.lab.log_tail(name), 10, name)
        netns.exec_in(pod.netns, ["iptables", "-w", "-I", "INPUT", "-j", "NFQUEUE", "--queue-num", str(queue),
                                  "--queue-bypass"])
        self.record("latency", args, {"queue": queue})
        return {"pod": pod.name, "ms": float(args.ms)}

    def heal_latency(self, args):
        pod = self.pod(args)
        saved = self.st.data["faults"].get(key("latency", {"pod": pod.name}))
        if saved is None:
            raise LabError(f"no active latency fault on {pod.name}")
        netns.exec_in(pod.netns, ["iptables", "-w", "-D", "INPUT", "-j", "NFQUEUE", "--queue-num",
                                  str(saved["queue"]), "--queue-bypass"], check=False)
        recs = self.st.procs(f"nfqdelay-{pod.name}")
        stop_procs(recs)
        for r in recs:
            self.st.drop_proc(r)
        self.forget("latency", args)
        return {"pod": pod.name}

    @staticmethod
    def lab_home():
        return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    # ------------------------------------------------------------ nodes

    def fault_kube_proxy(self, args):
        n = self.node(args)
        ns = self.lab.plan.node_netns(n)
        if args.service:
            split_service(args.service)
            kubeproxy.sync(ns, self.lab.api().snapshot(), exclude=[args.service])
        else:
            kubeproxy.remove_all(ns)
        self.record("kube-proxy", args)
        return {"node": args.node, "service": args.service or "all"}

    def heal_kube_proxy(self, args):
        n = self.node(args)
        self.st.clear_fault(f"kube-proxy {args.node}")
        self.lab.apply(node=n)
        return {"node": args.node}

    def fault_dns_block(self, args):
        n = self.node(args)
        netns.install_forward_chain(self.lab.plan.node_netns(n), NETPOL_CHAIN, [
            ["-s", P.node_cidr(n), "-p", proto, "--dport", "53", "-j", "DROP"] for proto in ("udp", "tcp")])
        self.record("dns-block", args)
        return {"node": args.node}

    def heal_dns_block(self, args):
        netns.remove_forward_chain(self.lab.plan.node_netns(self.node(args)), NETPOL_CHAIN)
        self.forget("dns-block", args)
        return {"node": args.node}

    # ------------------------------------------------------------ DNS server

    def fault_dns_down(self, args):
        self.lab.signal("knotd", signal.SIGSTOP)
        self.record("dns-down", args)
        return {"knotd": "stopped"}

    def heal_dns_down(self, args):
        self.lab.signal("knotd", signal.SIGCONT)
        self.forget("dns-down", args)
        return {"knotd": "running"}

    # ------------------------------------------------------------ ingress

    def fault_cert(self, args):
        need(args, "host", "kind")
        if args.kind not in ingress.CERT_KINDS:
            raise LabError(f"--kind {args.kind!r}: use one of {', '.join(ingress.CERT_KINDS)}")
        certs = self.st.data.setdefault("certs", {})
        if args.kind == "valid":
            certs.pop(args.host, None)
            self.forget("cert", args)
        else:
            certs[args.host] = args.kind
            self.record("cert", args)
        self.st.save()
        self.lab.apply()
        crt, _ = ingress.cert_files(self.lab.pki, args.host, args.kind)
        return {"host": args.host, "kind": args.kind, "not_after": not_after(crt)}

    def heal_cert(self, args):
        need(args, "host")
        args.kind = "valid"
        return self.fault_cert(args)

    # ------------------------------------------------------------ API server

    def fault_api_down(self, args):
        seconds = float(args.seconds or 30)
        out = self.lab.api().fake("unavailable", f"seconds={seconds}")
        self.record("api-down", args)
        return out

    def heal_api_down(self, args):
        self.forget("api-down", args)
        return self.lab.api().fake("unavailable", "seconds=0")

    def fault_api_gone(self, args):
        api = self.lab.api()
        # Bookmarks would carry the watchers' resourceVersion past the compaction; pause them,
        # write to a kind no agent watches, compact, and cut the watches.
        api.fake("config", body={"bookmarkIntervalSeconds": 3600})
        stamp = str(time.time())
        api.request("PATCH", "/api/v1/namespaces/default", {"metadata": {"annotations": {"lab/api-gone": stamp}}},
                    content_type="application/merge-patch+json")
        compacted = api.fake("compact")
        dropped = api.fake("drop-watches")
        api.fake("config", body={"bookmarkIntervalSeconds": 5})
        return {"compacted": compacted.get("compactedResourceVersion"), "dropped": dropped.get("dropped")}

    def heal_api_gone(self, args):
        return {}

    # ------------------------------------------------------------ Service spec
    # The fake API server runs no controllers: the selector and target-port faults write
    # what the endpointslice controller would write after the change, and what kubelet
    # writes for readiness.

    def service_of(self, args):
        need(args, "service")
        ns, name = split_service(args.service)
        return self.lab.api().request("GET", service_path(ns, name))

    def put_service(self, svc):
        md = svc["metadata"]
        md.pop("resourceVersion", None)
        self.lab.api().request("PUT", service_path(md["namespace"], md["name"]), svc)

    def pods(self, namespace):
        return self.lab.api().list(f"/api/v1/namespaces/{namespace}/pods")

    def set_pod_ready(self, namespace, name, ready):
        """The Pod's Ready condition, as kubelet reports it; a pod the API does not hold
        (the API server's own endpoint) is left alone."""
        pod = next((p for p in self.pods(namespace) if p["metadata"]["name"] == name), None)
        if pod is None:
            return
        pod["metadata"].pop("resourceVersion", None)
        self.lab.api().request("PUT", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
                               O.set_pod_ready(pod, ready))

    def pods_follow(self, sl):
        """Every Pod behind the slice's endpoints takes its endpoint's readiness."""
        for ep in sl.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            if ref.get("kind") == "Pod" and ref.get("name"):
                ready = (ep.get("conditions") or {}).get("ready") is not False
                self.set_pod_ready(ref.get("namespace") or sl["metadata"]["namespace"], ref["name"], ready)

    def selected_endpoints(self, namespace, selector):
        """The endpoints the endpointslice controller lists for `selector`: the pods it picks,
        Ready as their Ready condition says."""
        out = []
        for obj in self.pods(namespace):
            if not O.selects(selector, obj["metadata"].get("labels")):
                continue
            conds = (obj.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
            out.append(O.endpoint(self.lab.plan.pod(obj["metadata"]["name"]), ready))
        return out

    def not_active(self, name, args):
        """A second fault of the same kind would save the first one's values as the originals."""
        if key(name, {"service": args.service}) in self.st.data["faults"]:
            raise LabError(f"a {name} fault is already active on {args.service}: heal it first")

    def fault_selector(self, args):
        need(args, "selector")
        key_, value = parse_label(args.selector)
        svc, sl = self.service_of(args), self.slice_of(args)
        self.not_active("selector", args)
        old = dict(svc["spec"].get("selector") or {})
        self.record("selector", args, {"old_selector": old, "endpoints": sl.get("endpoints") or []})
        svc["spec"]["selector"] = dict(old, **{key_: value})
        self.put_service(svc)
        sl["endpoints"] = self.selected_endpoints(svc["metadata"]["namespace"], svc["spec"]["selector"])
        self.lab.api().put_slice(sl)
        self.lab.apply()
        return {"service": args.service, "selector": svc["spec"]["selector"], "endpoints": len(sl["endpoints"])}

    def heal_selector(self, args):
        saved = self.st.data["faults"].get(key("selector", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active selector fault on {args.service}")
        svc, sl = self.service_of(args), self.slice_of(args)
        svc["spec"]["selector"] = saved["old_selector"]
        self.put_service(svc)
        sl["endpoints"] = saved["endpoints"]
        self.lab.api().put_slice(sl)
        self.forget("selector", args)
        self.lab.apply()
        return {"service": args.service, "selector": saved["old_selector"], "endpoints": len(saved["endpoints"])}

    def fault_target_port(self, args):
        need(args, "port")
        if not str(args.port).isdigit() or not 1 <= int(args.port) <= 65535:
            raise LabError(f"--port {args.port!r}: a port number, 1 to 65535")
        port = int(args.port)
        svc, sl = self.service_of(args), self.slice_of(args)
        self.not_active("target-port", args)
        self.record("target-port", args,
                    {"ports": svc["spec"].get("ports") or [], "slice_ports": sl.get("ports") or []})
        for p in svc["spec"].get("ports") or []:
            p["targetPort"] = port
        for p in sl.get("ports") or []:
            p["port"] = port
        self.put_service(svc)
        self.lab.api().put_slice(sl)
        self.lab.apply()
        return {"service": args.service, "target_port": port}

    def heal_target_port(self, args):
        saved = self.st.data["faults"].get(key("target-port", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active target-port fault on {args.service}")
        svc, sl = self.service_of(args), self.slice_of(args)
        svc["spec"]["ports"] = saved["ports"]
        sl["ports"] = saved["slice_ports"]
        self.put_service(svc)
        self.lab.api().put_slice(sl)
        self.forget("target-port", args)
        self.lab.apply()
        return {"service": args.service, "target_port": [p.get("targetPort") for p in saved["ports"]]}


def parse_label(text):
    if not text or text.count("=") != 1 or not all(text.split("=")):
        raise LabError(f"--selector {text!r}: write it as key=value, e.g. app=carts")
    return text.split("=")


def service_path(namespace, name):
    return f"/api/v1/namespaces/{namespace}/services/{name}"


class _Args:
    """Saved fault arguments, read like argparse's namespace."""

    def __init__(self, saved):
        self.__dict__.update({"service": None, "pod": None, "node": None, "host": None, "kind": None, "ms": None,
                              "seconds": None, "count": None, "period": None,
                              "ip": None, "domains": None, "percent": None, "resource": None, "selector": None,
                              "port": None})
        self.__dict__.update({k: v for k, v in saved.items() if k in self.__dict__})


def printed(result):
    print(json.dumps(result, sort_keys=True), flush=True)
