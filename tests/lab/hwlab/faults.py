"""Faults the lab can inject, each undone by `heal` with the same arguments. Every fault is
written to the state file while it is active (`lab status` lists them; `lab heal all` undoes
them all). Each prints one JSON line describing what it did.

    no-endpoints --service NS/NAME   the Service's selector gets a label no pod carries; the
                                     endpointslice controller empties its EndpointSlice
    controller-down [--service NS/NAME]
                                     kube-controller-manager is stopped; with --service, the
                                     Service's EndpointSlices are deleted too, and nothing writes
                                     them again while the controller is down
    none-ready   --service NS/NAME   every Pod behind the Service turns not Ready (its Ready
                                     condition); the controller marks the endpoints not ready
    scale-zero   --service NS/NAME   a Deployment scaled to zero: the Service's Pod objects are
                                     deleted, its selector stays; the controller empties its slices
    critical     --service NS/NAME   the Service is annotated hopwatch.io/critical: "true"
    kill-pod     --pod POD           the pod's server process is killed; its endpoint stays Ready
    kube-proxy   --node N [--service NS/NAME]
                                     that node's kube-proxy is stopped and its rules deleted (all
                                     of them, or the Service's only) until it is started again
                                     (`lab apply --node N`, or heal)
    dns-down                         CoreDNS is frozen (SIGSTOP): queries get no answer
    dns-kill                         CoreDNS is killed (a crash): nothing listens on its port 53,
                                     its endpoint stays Ready; healed by starting it again
    dns-block    --node N            UDP and TCP port 53 dropped for pods of node N, as a bad
                                     NetworkPolicy would (mangle FORWARD in the node)
    cert         --host H --kind expired|expiring|wrong-host|valid
                                     the ingress controller presents that certificate for H
                                     (expiring: valid for 10 more days)
    latency      --pod POD --ms MS   every packet into the pod is held MS ms (NFQUEUE + nfqdelay)
    api-down                         kube-apiserver is stopped (its watches drop with it) until
                                     healed
    api-gone                         kube-apiserver is stopped, etcd compacted to its current
                                     revision and kube-apiserver started again: every watch
                                     resuming from its old resourceVersion gets 410 Gone
    flap         --service NS/NAME --pod POD [--count N] [--period S]
                                     the Pod's Ready condition flips N times, every S seconds,
                                     each flip waited for in its EndpointSlice; ends Ready
    selector     --service NS/NAME --selector KEY=VALUE
                                     the Service selects KEY=VALUE too; the controller keeps only
                                     the pods the new selector picks (none, for a value no pod
                                     carries)
    target-port  --service NS/NAME --port N
                                     the Service's targetPort becomes N while its pods listen on
                                     (and declare) 8080; the controller writes N into the
                                     EndpointSlice, kube-proxy DNATs to N, the pods refuse;
                                     endpoints stay Ready
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
from .edgefaults import EdgeFaults
from .netpolfaults import NetpolFaults
from .opsfaults import OpsFaults
from .pki import not_after
from .state import stop_procs

# The label the no-endpoints fault adds to a Service's selector: no pod carries it.
NO_POD_LABEL = ("lab.hopwatch.dev/no-pod", "true")

NAMES = ["no-endpoints", "controller-down", "none-ready", "scale-zero", "critical", "kill-pod", "kube-proxy", "dns-down", "dns-kill", "dns-block", "cert", "latency",
         "api-down", "api-gone", "flap", "lb-dns", "search", "dns-loss", "throttle", "agent-stop", "agent-gone",
         "rbac", "netpol", "netpol-dns", "netpol-agents", "cni-off", "config", "selector", "target-port",
         "lb-hostname", "lb-unpublished", "cdn", "expected-addresses", "tls-reset"]
DNS_BLOCK_CHAIN = "HWL-DNSBLOCK"


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


class Faults(OpsFaults, NetpolFaults, EdgeFaults):
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
    # The API server's controllers do the rest: each fault changes a Service or a Pod's
    # status, then waits until the endpointslice controller has written what follows.

    def fault_no_endpoints(self, args):
        out = self.change_selector(args, "no-endpoints", NO_POD_LABEL)
        return {"service": args.service, "endpoints": out["endpoints"]}

    def heal_no_endpoints(self, args):
        out = self.restore_selector(args, "no-endpoints")
        return {"service": args.service, "endpoints": out["endpoints"]}

    def fault_controller_down(self, args):
        self.record("controller-down", args)
        rec = self.st.proc("kube-controller-manager")
        if rec is not None:
            stop_procs([rec])
            self.st.drop_proc(rec)
        deleted = []
        if args.service:
            ns, name = split_service(args.service)
            for sl in self.lab.api().slices_of(ns, name):
                self.lab.api().delete(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/"
                                      f"{sl['metadata']['name']}")
                deleted.append(sl["metadata"]["name"])
            self.lab.settle(lambda snap: not endpoints_of(snap, ns, name), f"{args.service} without slices")
        return {"stopped": rec["pid"] if rec else None, "deleted": deleted}

    def heal_controller_down(self, args):
        if not self.lab.running("kube-controller-manager"):
            self.lab.cp.start_controller_manager()
        self.forget("controller-down", args)
        self.lab.wait_endpoints()
        return {"kube-controller-manager": self.st.proc("kube-controller-manager")["pid"]}

    def service_pods(self, args):
        """The lab's pods the Service selects (plan.Pod objects)."""
        svc = self.service_of(args)
        selector = svc["spec"].get("selector") or {}
        return [p for p in self.lab.plan.pods if p.role in O.POD_LABELS and p.namespace == svc["metadata"]["namespace"]
                and selector and all(O.POD_LABELS[p.role](p).get(k) == v for k, v in selector.items())]

    def pods_ready(self, args, pods, ready):
        """Writes the pods' Ready condition (kubelet's part), then waits until the Service's
        EndpointSlices say the same of each of them."""
        for pod in pods:
            self.lab.write_pod_status(pod, ready)
        ns, name = split_service(args.service)
        want = {p.ip: ready for p in pods}
        self.lab.settle(lambda snap: all(endpoints_of(snap, ns, name).get(ip) == r for ip, r in want.items()),
                        f"{args.service}'s endpoints {'ready' if ready else 'not ready'}")

    def fault_none_ready(self, args):
        pods = self.service_pods(args)
        self.record("none-ready", args, {"pods": [p.name for p in pods]})
        self.pods_ready(args, pods, False)
        return {"service": args.service, "ready": 0}

    def heal_none_ready(self, args):
        saved = self.st.data["faults"].get(key("none-ready", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active none-ready fault on {args.service}")
        pods = [self.lab.plan.pod(name) for name in saved["pods"]]
        self.pods_ready(args, pods, True)
        self.forget("none-ready", args)
        return {"service": args.service}

    def fault_scale_zero(self, args):
        """A Deployment scaled to zero: the Service's Pod objects are deleted (their servers
        are left running: nothing routes to them), and the endpointslice controller empties
        its slices. The selector is unchanged."""
        pods = self.service_pods(args)
        self.record("scale-zero", args, {"pods": [p.name for p in pods]})
        api = self.lab.api()
        for pod in pods:
            # Without a kubelet to confirm, a graceful delete would leave them terminating.
            api.delete(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}?gracePeriodSeconds=0")
        ns, name = split_service(args.service)
        self.lab.settle(lambda snap: not endpoints_of(snap, ns, name), f"{args.service} without endpoints")
        return {"service": args.service, "deleted": [p.name for p in pods]}

    def heal_scale_zero(self, args):
        saved = self.st.data["faults"].get(key("scale-zero", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active scale-zero fault on {args.service}")
        pods = [self.lab.plan.pod(name) for name in saved["pods"]]
        api = self.lab.api()
        for pod in pods:
            api.create(O.pod_object(pod))
        self.pods_ready(args, pods, True)
        self.forget("scale-zero", args)
        return {"service": args.service, "created": saved["pods"]}

    def fault_critical(self, args):
        """Annotates the Service `hopwatch.io/critical: "true"`."""
        ns, name = split_service(args.service)
        self.lab.api().patch(f"/api/v1/namespaces/{ns}/services/{name}",
                             {"metadata": {"annotations": {"hopwatch.io/critical": "true"}}})
        self.record("critical", args)
        return {"service": args.service, "critical": True}

    def heal_critical(self, args):
        ns, name = split_service(args.service)
        self.lab.api().patch(f"/api/v1/namespaces/{ns}/services/{name}",
                             {"metadata": {"annotations": {"hopwatch.io/critical": None}}})
        self.forget("critical", args)
        return {"service": args.service, "critical": False}

    def fault_flap(self, args):
        pod = self.pod(args)
        if pod not in self.service_pods(args):
            raise LabError(f"{pod.name} is not behind {args.service}")
        count, period = int(args.count or 20), float(args.period or 1.0)
        self.record("flap", args)
        ready, started = True, time.monotonic()
        for i in range(count):
            ready = not ready
            self.pods_ready(args, [pod], ready)
            time.sleep(max(0.0, started + (i + 1) * period - time.monotonic()))
        if not ready:
            self.pods_ready(args, [pod], True)
            count += 1
        self.forget("flap", args)
        return {"service": args.service, "pod": pod.name, "flips": count}

    def heal_flap(self, args):
        pod = self.pod(args)
        self.pods_ready(args, [pod], True)
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
        self.record("kube-proxy", args)
        pid = self.lab.cp.stop_kube_proxy(n)
        if args.service:
            deleted = kubeproxy.remove_service(ns, args.service)
            if not deleted:
                raise LabError(f"{args.node}'s kube-proxy wrote no rule for {args.service}")
        else:
            kubeproxy.remove_all(ns)
        return {"node": args.node, "service": args.service or "all", "stopped": pid}

    def heal_kube_proxy(self, args):
        n = self.node(args)
        self.st.clear_fault(f"kube-proxy {args.node}")
        self.lab.apply(node=n)
        return {"node": args.node}

    def fault_dns_block(self, args):
        n = self.node(args)
        netns.install_forward_chain(self.lab.plan.node_netns(n), DNS_BLOCK_CHAIN, [
            ["-s", P.node_cidr(n), "-p", proto, "--dport", "53", "-j", "DROP"] for proto in ("udp", "tcp")])
        self.record("dns-block", args)
        return {"node": args.node}

    def heal_dns_block(self, args):
        netns.remove_forward_chain(self.lab.plan.node_netns(self.node(args)), DNS_BLOCK_CHAIN)
        self.forget("dns-block", args)
        return {"node": args.node}

    # ------------------------------------------------------------ DNS server

    def fault_dns_down(self, args):
        self.lab.signal("coredns", signal.SIGSTOP)
        self.record("dns-down", args)
        return {"coredns": "stopped"}

    def heal_dns_down(self, args):
        self.lab.signal("coredns", signal.SIGCONT)
        self.forget("dns-down", args)
        return {"coredns": "running"}

    def fault_dns_kill(self, args):
        """CoreDNS crashed: its process killed, nothing listens on the pod's port 53 (the
        endpoint stays Ready, as kubelet has not noticed yet)."""
        rec = self.st.proc("coredns")
        if rec is None:
            raise LabError("CoreDNS has no recorded process")
        stop_procs([rec])
        self.st.drop_proc(rec)
        self.record("dns-kill", args)
        return {"coredns": "killed", "pid": rec["pid"]}

    def heal_dns_kill(self, args):
        if not self.lab.running("coredns"):
            self.lab.start_coredns()
        self.forget("dns-kill", args)
        return {"coredns": "running", "pid": self.st.proc("coredns")["pid"]}

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
        self.record("api-down", args)
        return {"stopped": self.lab.cp.stop_apiserver()}

    def heal_api_down(self, args):
        if not self.lab.running("kube-apiserver"):
            self.lab.cp.start_apiserver()
        self.forget("api-down", args)
        return {"kube-apiserver": self.st.proc("kube-apiserver")["pid"]}

    def fault_api_gone(self, args):
        """A restarted kube-apiserver fills its watch cache from etcd's current revision, and
        etcd has forgotten everything older: resumed watches get 410 Gone and relist."""
        self.lab.cp.stop_apiserver()
        revision = self.lab.cp.compact_etcd()
        self.lab.cp.start_apiserver()
        return {"compacted": revision}

    def heal_api_gone(self, args):
        return {}

    # ------------------------------------------------------------ Service spec

    def service_of(self, args):
        need(args, "service")
        ns, name = split_service(args.service)
        return self.lab.api().get(service_path(ns, name))

    def not_active(self, name, args):
        """A second fault of the same kind would save the first one's values as the originals."""
        if key(name, {"service": args.service}) in self.st.data["faults"]:
            raise LabError(f"a {name} fault is already active on {args.service}: heal it first")

    def selected_ips(self, namespace, selector):
        """The IPs of the lab's pods `selector` picks, as the endpointslice controller lists them."""
        return sorted(p.ip for p in self.lab.plan.pods if p.role in O.POD_LABELS and p.namespace == namespace
                      and all(O.POD_LABELS[p.role](p).get(k) == v for k, v in selector.items()))

    def set_selector(self, args, selector):
        ns, name = split_service(args.service)
        svc = self.service_of(args)
        svc["spec"]["selector"] = selector  # replaced whole: a merge patch cannot drop a label
        self.lab.api().request("PUT", service_path(ns, name), svc)
        want = self.selected_ips(ns, selector)
        self.lab.settle(lambda snap: sorted(endpoints_of(snap, ns, name)) == want,
                        f"{args.service}'s EndpointSlice for selector {selector}")
        return len(want)

    def change_selector(self, args, fault, label):
        svc = self.service_of(args)
        self.not_active(fault, args)
        old = dict(svc["spec"].get("selector") or {})
        self.record(fault, args, {"old_selector": old})
        selector = dict(old, **{label[0]: label[1]})
        return {"selector": selector, "endpoints": self.set_selector(args, selector)}

    def restore_selector(self, args, fault):
        saved = self.st.data["faults"].get(key(fault, {"service": args.service}))
        if saved is None:
            raise LabError(f"no active {fault} fault on {args.service}")
        count = self.set_selector(args, saved["old_selector"])
        self.forget(fault, args)
        return {"selector": saved["old_selector"], "endpoints": count}

    def fault_selector(self, args):
        need(args, "service", "selector")
        out = self.change_selector(args, "selector", parse_label(args.selector))
        return {"service": args.service, **out}

    def heal_selector(self, args):
        out = self.restore_selector(args, "selector")
        return {"service": args.service, **out}

    def set_target_port(self, args, ports):
        ns, name = split_service(args.service)
        self.lab.api().patch(service_path(ns, name), {"spec": {"ports": ports}})
        want = sorted({p["targetPort"] for p in ports})
        self.lab.settle(lambda snap: slice_ports(snap, ns, name) == want,
                        f"{args.service}'s EndpointSlice ports {want}")

    def fault_target_port(self, args):
        need(args, "service", "port")
        if not str(args.port).isdigit() or not 1 <= int(args.port) <= 65535:
            raise LabError(f"--port {args.port!r}: a port number, 1 to 65535")
        port = int(args.port)
        svc = self.service_of(args)
        self.not_active("target-port", args)
        ports = svc["spec"].get("ports") or []
        self.record("target-port", args, {"ports": ports})
        self.set_target_port(args, [dict(p, targetPort=port) for p in ports])
        return {"service": args.service, "target_port": port}

    def heal_target_port(self, args):
        saved = self.st.data["faults"].get(key("target-port", {"service": args.service}))
        if saved is None:
            raise LabError(f"no active target-port fault on {args.service}")
        self.set_target_port(args, saved["ports"])
        self.forget("target-port", args)
        return {"service": args.service, "target_port": [p.get("targetPort") for p in saved["ports"]]}


def endpoints_of(snapshot, namespace, service):
    """{address: ready} of every endpoint the Service's EndpointSlices list."""
    out = {}
    for sl in snapshot["slices"]:
        md = sl["metadata"]
        if md["namespace"] == namespace and (md.get("labels") or {}).get("kubernetes.io/service-name") == service:
            for ep in sl.get("endpoints") or []:
                for address in ep.get("addresses") or []:
                    out[address] = O.ready(ep)
    return out


def slice_ports(snapshot, namespace, service):
    """The sorted port numbers of the Service's EndpointSlices."""
    return sorted({p.get("port") for sl in snapshot["slices"]
                   if sl["metadata"]["namespace"] == namespace
                   and (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == service
                   for p in sl.get("ports") or []})


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
