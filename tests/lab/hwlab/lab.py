"""Bringing the lab up and down, and keeping its generated parts in step with the API server.

`up` builds, in order: the PKI, the network (underlay switch, nodes, pods), the control plane
(etcd, kube-apiserver, kube-controller-manager), the objects (Nodes, Services, Pods and their
status, the Ingress), kube-proxy on every node, CoreDNS, the agents' ServiceAccount and RBAC
(from deploy/), the workloads, nginx, one hopwatch agent per node, Prometheus and the loopback
portal. Each namespace is written to the state file before it is created and each process
right after it starts, so `down` removes exactly what exists.

What the lab still generates itself, from what the API server serves: the ingress
controller's nginx config, and the public DNS zones (as external-dns would publish them).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from . import dns, ingress, netns, objects, prom
from . import plan as P
from .controlplane import ControlPlane, kubeconfig, wait_for
from .kubeapi import API_PORT, Api
from .kuberouter import Enforcer
from .netns import LabError
from .pki import Pki
from .state import PREFIX, alive, reap, stop_procs, write_atomic

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, "deploy")
GATEWAY_API_FETCH = os.path.join(REPO, "tools", "gateway-api", "fetch")
# The Gateway API kinds the agents watch, installed from their CRDs so that the API server
# serves them as a cluster with the Gateway API does.
GATEWAY_API_CRDS = ("gatewayclasses", "gateways", "httproutes")
# `up --sharded`: every (node, Service port) pair is connected to once in this period.
SWEEP_SECONDS = 6
# The agents' identity: deploy/'s ServiceAccount, bound by deploy/'s ClusterRole.
AGENT_SA = ("hopwatch", "hopwatch")
# The kinds of deploy/ the lab applies: the agents' identity and its permissions.
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
# The lab's stand-in for the people who run `hopwatch trace`: bound to deploy/'s hopwatch-trace.
TRACE_SA = "hopwatch-trace"

# Programs `up` runs, and the Debian package of each.
REQUIRED = [("ip", "iproute2"), ("iptables", "iptables"), ("iptables-restore", "iptables"),
            ("iptables-save", "iptables"), ("nginx", "nginx-light"),
            ("prometheus", "prometheus"), ("promtool", "prometheus"), ("openssl", "openssl"),
            ("prometheus-alertmanager", "prometheus-alertmanager"),
            ("ipset", "ipset")]


def on_path(program):
    return any(os.access(os.path.join(d, program), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep) if d)


def preflight():
    if os.geteuid() != 0:
        raise LabError("the lab builds network namespaces and needs root: run it with sudo")
    missing = sorted({pkg for prog, pkg in REQUIRED if not on_path(prog)})
    if missing:
        raise LabError(f"missing programs; install them with: apt-get install {' '.join(missing)}")
    if sys.version_info < (3, 10):
        raise LabError("the lab needs Python 3.10 or newer")


class Lab:
    def __init__(self, st):
        self.st = st
        p = st.params
        self.plan = P.make(p["domain"], p["nodes"]) if p.get("domain") else None
        # `lab up --canary`: the agents answer the canary, and its Service selects them.
        self.canary = bool(p.get("canary"))
        self.sharded = bool(p.get("sharded"))
        self.pki = Pki(st.file("pki"))
        self.children = {}  # processes this invocation started: their exit codes can be read
        self.cp = ControlPlane(self) if self.plan else None
        self.enforcer = Enforcer(self) if self.plan else None

    # ---------------------------------------------------------------- helpers

    def api(self):
        return Api(self.plan.pod("kube-apiserver-node-1").netns, self.pki.path("ca.crt"),
                   self.pki.path("admin.crt"), self.pki.path("admin.key"))

    def start(self, name, ns, argv, env=None):
        log = self.st.file("logs", name + ".log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        proc = netns.spawn(ns, argv, log, env=env) if ns else netns.spawn_root(argv, log, env=env)
        self.st.add_proc(name, proc.pid, ns)
        self.children[name] = proc
        return proc

    def log_tail(self, name, lines=15):
        try:
            with open(self.st.file("logs", name + ".log"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def wait(self, what, check, seconds, proc_name=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return
            rec = self.st.proc(proc_name) if proc_name else None
            if rec and not alive(rec):
                child = self.children.get(proc_name)
                code = child.wait() if child else None
                reap()
                how = f"exited with {code}" if code is not None else "exited"
                raise LabError(f"{what}: {proc_name} {how}; its log says:\n{self.log_tail(proc_name)}")
            time.sleep(0.05)
        tail = f"; its log says:\n{self.log_tail(proc_name)}" if proc_name else ""
        raise LabError(f"{what}: not ready after {seconds} s{tail}")

    def make_netns(self, name):
        if name in netns.list_netns():
            raise LabError(f"namespace {name} already exists: another lab is up (`lab down`, or `ip netns del {name}`)")
        self.st.add_netns(name)
        netns.run(["ip", "netns", "add", name])
        netns.ip(name, "link", "set", "lo", "up")

    def write_file(self, path, text, outside=False):
        if outside:
            self.st.add_file(path)
        write_atomic(path, text)

    # ---------------------------------------------------------------- network

    def network(self):
        lab = self.plan
        self.make_netns(P.UNDERLAY)
        netns.ip(P.UNDERLAY, "link", "add", "br0", "type", "bridge")
        netns.ip(P.UNDERLAY, "link", "set", "br0", "up")
        for n in lab.node_range():
            self.node(n)
        for n in lab.node_range():
            for m in lab.node_range():
                if m != n:
                    netns.ip(lab.node_netns(n), "route", "add", P.node_cidr(m), "via", P.underlay_ip(m))
        for pod in lab.pods:
            self.pod(pod)

    def node(self, n):
        ns, gw = self.plan.node_netns(n), P.node_gw(n)
        self.make_netns(ns)
        netns.ip(ns, "link", "add", "cni0", "type", "bridge")
        netns.ip(ns, "addr", "add", f"{gw}/24", "dev", "cni0")
        netns.ip(ns, "link", "set", "cni0", "up")
        netns.ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"n{n}", "netns", P.UNDERLAY)
        netns.ip(P.UNDERLAY, "link", "set", f"n{n}", "master", "br0", "up")
        netns.ip(ns, "addr", "add", f"{P.underlay_ip(n)}/24", "dev", "eth0")
        netns.ip(ns, "link", "set", "eth0", "up")
        # A locally sent packet needs *a* route before nat OUTPUT can DNAT it.
        for cidr in (P.SERVICE_CIDR, P.LB_CIDR):
            netns.ip(ns, "route", "add", cidr, "dev", "cni0", "src", gw)
        netns.sysctl(ns, "net.ipv4.ip_forward", 1)
        netns.sysctl(ns, "net.bridge.bridge-nf-call-iptables", 1)

    def pod(self, pod):
        node_ns = self.plan.node_netns(pod.node)
        self.make_netns(pod.netns)
        netns.ip(node_ns, "link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        netns.ip(node_ns, "link", "set", pod.veth, "master", "cni0", "up")
        netns.ip(node_ns, "link", "set", pod.veth, "type", "bridge_slave", "hairpin", "on")
        netns.ip(pod.netns, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
        netns.ip(pod.netns, "link", "set", "eth0", "up")
        netns.ip(pod.netns, "route", "add", "default", "via", P.node_gw(pod.node))
        self.write_file(f"/etc/netns/{pod.netns}/resolv.conf", self.resolv_conf(pod), outside=True)

    def resolv_conf(self, pod, kubelet_default=False):
        """kubelet's resolv.conf for a ClusterFirst pod, its search list followed by the node's
        own domains (the `search` fault adds some, as a host's resolv.conf would). The agents'
        DaemonSet adds dnsConfig options timeout:1 attempts:1 so that a resolver timeout fits
        the lab's 2 s interval; `kubelet_default` leaves them out (5 s timeout, 2 attempts)."""
        agent = pod.role == "agent" and not kubelet_default
        options = "ndots:5 timeout:1 attempts:1" if agent else "ndots:5"
        node_domains = (self.st.data.get("node_search") or {}).get(pod.node_name) or []
        search = " ".join(self.plan.search(pod.namespace) + node_domains)
        return f"nameserver {P.DNS_IP}\nsearch {search}\noptions {options}\n"

    def write_resolv_confs(self, node):
        """Rewrites the resolv.conf of every pod on `node`, and its agent's (read at every probe)."""
        for pod in self.plan.pods:
            if pod.node == node:
                self.write_file(f"/etc/netns/{pod.netns}/resolv.conf", self.resolv_conf(pod))
        agent = self.plan.agent(node)
        d = self.st.file("agents", agent.node_name)
        self.write_file(os.path.join(d, "resolv.conf"), self.resolv_conf(agent))
        self.write_file(os.path.join(d, "resolv-kubelet.conf"), self.resolv_conf(agent, kubelet_default=True))

    # ---------------------------------------------------------------- sync

    def apply(self, node=None, honour_faults=True):
        """Re-syncs what the lab generates (the public DNS zones, nginx) from the API server, and
        starts the kube-proxy and kube-router of `node` (or of every node) where they are not
        running, unless a kube-proxy or cni-off fault keeps them stopped."""
        snap = self.api().snapshot()
        faults = self.st.data["faults"]
        for n in ([node] if node else self.plan.node_range()):
            if not (honour_faults and f"kube-proxy {P.node_name(n)}" in faults) and not self.cp.kube_proxy_running(n):
                self.cp.start_kube_proxy(n)
                self.cp.wait_kube_proxy(n)
            if not (honour_faults and "cni-off" in faults) and not self.enforcer.running(n):
                self.enforcer.start(n)
                self.enforcer.wait(n)
        dns.write_zones(self.st, self.plan, snap)
        if ingress.write(self.st, self.pki, snap, self.st.data.setdefault("certs", {})) and self.running("nginx"):
            self.signal("nginx", signal.SIGHUP)
        return snap

    def settle(self, check, what, seconds=30):
        """Waits until `check(snapshot)` holds for what the controllers wrote, then re-syncs
        what the lab generates. Returns the snapshot."""
        wait_for(what, lambda: check(self.api().snapshot()), seconds)
        self.cp.wait_kube_proxies()
        return self.apply()

    def running(self, name):
        rec = self.st.proc(name)
        return rec is not None and alive(rec)

    def signal(self, name, sig):
        rec = self.st.proc(name)
        if rec is None or not alive(rec):
            raise LabError(f"{name} is not running")
        os.kill(rec["pid"], sig)

    # ---------------------------------------------------------------- processes

    def start_control_plane(self):
        self.cp.identities()
        self.cp.start_etcd()
        self.cp.start_apiserver()
        self.cp.start_controller_manager()
        self.install_gateway_api()

    def install_gateway_api(self):
        """The Gateway API CRDs ($HOPWATCH_GATEWAY_API_CRDS, else what tools/gateway-api/fetch
        gives: the module's standard channel, cached), each until the API server serves it."""
        crds = os.environ.get("HOPWATCH_GATEWAY_API_CRDS")
        if not crds:
            out = subprocess.run([GATEWAY_API_FETCH], capture_output=True, text=True)
            if out.returncode != 0:
                raise LabError(f"{GATEWAY_API_FETCH} failed: {out.stderr.strip()[-500:]}")
            crds = out.stdout.strip().splitlines()[-1]
        for kind in GATEWAY_API_CRDS:
            path = os.path.join(crds, f"gateway.networking.k8s.io_{kind}.yaml")
            if not os.path.exists(path):
                raise LabError(f"the Gateway API CRD {path} is missing: run {GATEWAY_API_FETCH}")
            self.cp.kubectl("apply", "--server-side", "-f", path)
        self.cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        *(f"crd/{kind}.gateway.networking.k8s.io" for kind in GATEWAY_API_CRDS))

    def create_objects(self):
        """The lab's objects, and the status kubelet and a cloud controller would write."""
        api = self.api()
        for obj in objects.namespaces():
            api.create(obj)
        for n in self.plan.node_range():
            api.create(objects.node(self.plan, n))
            api.patch(f"/api/v1/nodes/{P.node_name(n)}/status", objects.node_status(n))
        for obj in objects.services(self.plan, self.canary):
            api.create(obj)
        api.patch("/api/v1/namespaces/%s/services/%s/status" % objects.INGRESS_SERVICE, {"status": objects.LB_STATUS})
        # ServiceAccount admission refuses pods until the serviceaccount controller has made
        # the namespace's `default` account.
        for ns in {p.namespace for p in self.plan.pods if p.role in objects.CONTAINER_PORTS}:
            wait_for(f"ServiceAccount {ns}/default", lambda ns=ns: self.exists(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 30)
        for pod in self.plan.pods:
            if pod.role in objects.CONTAINER_PORTS:
                api.create(objects.pod_object(pod))
                self.write_pod_status(pod, True)
        api.create(objects.ingress_class())
        ing = api.create(objects.ingress())
        api.patch(f"/apis/networking.k8s.io/v1/namespaces/shop/ingresses/{ing['metadata']['name']}/status",
                  {"status": objects.LB_STATUS})

    def exists(self, path):
        return self.api().raw("GET", path)[0] == 200

    def write_pod_status(self, pod, ready):
        """kubelet's part: the Pod's status, Running and (not) Ready."""
        self.api().patch(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status", objects.pod_status(pod, ready))

    def wait_endpoints(self, seconds=60):
        """Until the endpointslice controller lists every Ready pod behind its Service."""
        want = objects.expected_endpoints(self.plan, self.canary)

        def listed(snap):
            got = {}
            for sl in snap["slices"]:
                md = sl["metadata"]
                key = (md["namespace"], (md.get("labels") or {}).get("kubernetes.io/service-name"))
                got.setdefault(key, set()).update(a for ep in sl.get("endpoints") or [] if objects.ready(ep)
                                                  for a in ep.get("addresses") or [])
            missing = {k: v for k, v in want.items() if sorted(got.get(k, ())) != v}
            return not missing or None

        self.settle(listed, "EndpointSlices of every Service", seconds)

    def agent_rbac(self):
        """deploy/'s ServiceAccount, ClusterRoles and ClusterRoleBinding, taken from the rendered
        kustomize output (not retyped); returns a token of that ServiceAccount for the agents.
        trace gets a ServiceAccount of its own, bound to deploy/'s `hopwatch-trace` role as a
        cluster admin would bind it to the people who run trace (`agents/trace.kubeconfig`)."""
        rendered = self.cp.kubectl("kustomize", DEPLOY).stdout
        docs = [d for d in rendered.split("\n---\n")
                if any(f"\nkind: {k}\n" in "\n" + d + "\n" for k in RBAC_KINDS)]
        text = "\n---\n".join(docs) + "\n"
        self.write_file(self.st.file("agents", "rbac.yaml"), text)
        self.cp.kubectl("apply", "-f", "-", input_text=text)
        ns, name = AGENT_SA
        self.cp.kubectl("-n", ns, "create", "serviceaccount", TRACE_SA)
        self.cp.kubectl("create", "clusterrolebinding", "lab-hopwatch-trace", "--clusterrole=hopwatch-trace",
                        f"--serviceaccount={ns}:{TRACE_SA}")
        kubeconfig(self.st.file("agents", "trace.kubeconfig"), f"https://{P.API_IP}:{P.API_PORT}",
                   self.pki.path("ca.crt"), token=self.token(TRACE_SA))
        return self.token(name)

    def token(self, service_account):
        """A TokenRequest token of a ServiceAccount in the agents' namespace."""
        ns = AGENT_SA[0]
        token = self.cp.kubectl("-n", ns, "create", "token", service_account, "--duration=48h").stdout.strip()
        if not token:
            raise LabError(f"no token for ServiceAccount {ns}/{service_account}")
        return token

    def start_coredns(self):
        """CoreDNS with the ClusterRole of CoreDNS's own Kubernetes manifest, bound to its
        client certificate's user."""
        api = self.api()
        api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "system:coredns"},
                    "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                               "verbs": ["list", "watch"]},
                              {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                               "verbs": ["list", "watch"]}]})
        api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "system:coredns"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "system:coredns"},
                    "subjects": [{"kind": "User", "name": "lab:coredns", "apiGroup": "rbac.authorization.k8s.io"}]})
        pod = self.plan.role("dns")[0]
        conf = self.st.file("coredns", "Corefile")
        self.write_file(conf, dns.corefile(self.st, self.plan))
        self.start("coredns", pod.netns, [self.cp.bin("coredns"), "-conf", conf])
        probe = f"kubernetes.default.svc.{self.plan.domain}"
        self.wait("CoreDNS", lambda: dns.query(pod.netns, pod.ip, probe, timeout=0.3) == 0, 30, "coredns")

    def start_workload(self, pod):
        self.start(pod.name, pod.netns, [sys.executable, os.path.join(HERE, "bin", "podserver.py"), pod.name,
                                         str(objects.WORKLOAD_PORT)])

    def wait_workload(self, pod):
        self.wait(f"pod {pod.name}", lambda: netns.tcp_open(pod.netns, ("127.0.0.1", objects.WORKLOAD_PORT)), 15,
                  pod.name)

    def start_nginx(self):
        pod = self.plan.role("ingress")[0]
        d = self.st.file("nginx")
        self.start("nginx", pod.netns, ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")])
        self.wait("nginx", lambda: netns.tcp_open(pod.netns, ("127.0.0.1", 443)), 15, "nginx")

    def agent_config(self, agent):
        d = self.st.file("agents", agent.node_name)
        resolv = os.path.join(d, "resolv.conf")
        self.write_file(resolv, self.resolv_conf(agent))
        kubelet_resolv = os.path.join(d, "resolv-kubelet.conf")
        self.write_file(kubelet_resolv, self.resolv_conf(agent, kubelet_default=True))
        ca = self.pki.path("ca.crt")
        kubeconfig = self.st.file("agents", "kubeconfig")
        q = json.dumps
        config = "\n".join([
            "# hopwatch in the lab: one agent per node, in a pod on that node (see docs/LAB.md).",
            f"listen: {q(f'{agent.ip}:{P.AGENT_PORT}')}",
            "defaults:",
            "  interval_seconds: 2",
            "  timeout_seconds: 1.5",
            "  dns:",
            f"    resolv_conf: {q(resolv)}",
            "dns:",
            *[line for name in ("shop.example.com", objects.AMP_NAME) for line in (
                f"  - name: {name}", f"    resolv_conf: {q(resolv)}")],
            # A pod's lookup with kubelet's resolv.conf as written (5 s timeout, 2 attempts):
            # a lost query shows as the 5 s wait HopwatchDNSResolverTimeouts looks for.
            f"  - name: kubernetes.default.svc.{self.plan.domain}.",
            "    id: kubernetes.default@kubelet-resolv.conf",
            f"    server: {P.DNS_IP}",
            f"    resolv_conf: {q(kubelet_resolv)}",
            "    interval_seconds: 8",
            "    timeout_seconds: 7",
            "kubernetes:",
            f"  kubeconfig: {q(kubeconfig)}",
            f"  cluster_domain: {self.plan.domain}",
            f"  pod_probe_nodes: {1 if self.sharded else min(2, self.plan.nodes)}",
            "  connect:",
            "    interval_seconds: 1",
            "    timeout_seconds: 0.8",
            *(["    service_probe_nodes: 1", f"    sweep_seconds: {SWEEP_SECONDS}"] if self.sharded else []),
            "  dns:",
            "    names: [kubernetes.default]",
            "    interval_seconds: 2",
            "    timeout_seconds: 1.5",
            f"    resolv_conf: {q(resolv)}",
            "  ingress:",
            *(["    probe_nodes: 1"] if self.sharded else []),
            f"    ca_file: {q(ca)}",
            "    interval_seconds: 2",
            "    timeout_seconds: 1.5",
            *(["canary:", f"  listen: {q(f'0.0.0.0:{P.CANARY_PORT}')}",
               f"  service: {'/'.join(objects.CANARY)}"] if self.canary else []),
            ""])
        path = os.path.join(d, "config.yaml")
        self.write_file(path, config)
        return path

    def start_agents(self):
        # The agents' kubeconfig: the in-cluster server and CA, and deploy/'s ServiceAccount's
        # token (kube-rs's in-cluster paths under /var/run/secrets cannot be provided here).
        kubeconfig(self.st.file("agents", "kubeconfig"), f"https://{P.API_IP}:{P.API_PORT}", self.pki.path("ca.crt"),
                   token=self.agent_rbac())
        for agent in self.plan.role("agent"):
            self.start_agent(agent)
        for agent in self.plan.role("agent"):
            self.wait_agent(agent)

    def start_agent(self, agent):
        binary = self.st.params["binary"]
        path = self.agent_config(agent)
        check = netns.run([binary, "check-config", path], check=False)
        if check.returncode != 0:
            raise LabError(f"hopwatch rejects the lab's config: {(check.stderr + check.stdout).strip()}")
        # The DaemonSet's downward API volume: the pod's labels, as kubelet would write them.
        labels = self.st.file("agents", agent.node_name, "labels")
        self.write_file(labels, "".join(f'{k}="{v}"\n' for k, v in objects.POD_LABELS["agent"](agent).items()))
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOPWATCH_POD_LABELS_FILE": labels,
               "NODE_NAME": agent.node_name, "POD_IP": agent.ip, "POD_NAME": agent.name,
               "POD_NAMESPACE": agent.namespace, "KUBERNETES_SERVICE_HOST": P.API_IP,
               "KUBERNETES_SERVICE_PORT": str(P.API_PORT),
               "RUST_LOG": os.environ.get("HOPWATCH_LAB_LOG", "info")}
        self.start(f"hopwatch-{agent.node_name}", agent.netns, [binary, "run", "--config", path], env=env)

    def wait_agent(self, agent):
        ready = lambda: http_get(agent.netns, agent.ip, P.AGENT_PORT, "/readyz")[0] == 200
        self.wait(f"hopwatch on {agent.node_name}", ready, 60, f"hopwatch-{agent.node_name}")

    def start_prometheus(self):
        rules, warnings = prom.rule_files(self.st.params.get("rules"), int(self.st.params.get("time_scale") or 1),
                                          self.st.file("prometheus", "rules"))
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        self.st.params["rule_files"] = rules
        self.st.save()
        pod = self.plan.role("prometheus")[0]
        self.start("alertmanager", pod.netns, prom.alertmanager_argv(self.st, self.plan))
        am_ready = lambda: http_get(pod.netns, pod.ip, prom.AM_PORT, "/-/ready")[0] == 200
        self.wait("Alertmanager", am_ready, 30, "alertmanager")
        config = prom.write(self.st, self.plan, rules)
        self.start("prometheus", pod.netns, prom.argv(self.st, self.plan, config))
        ready = lambda: http_get(pod.netns, pod.ip, prom.PORT, "/-/ready")[0] == 200
        self.wait("Prometheus", ready, 30, "prometheus")

    def start_portal(self):
        base = int(self.st.params.get("port_base", 0))
        lab = self.plan
        specs = [("prometheus", base, lab.role("prometheus")[0].netns, lab.role("prometheus")[0].ip, prom.PORT),
                 ("alertmanager", base + 2 if base else 0, lab.role("prometheus")[0].netns,
                  lab.role("prometheus")[0].ip, prom.AM_PORT),
                 ("api", base + 1 if base else 0, lab.pod("kube-apiserver-node-1").netns, "127.0.0.1", API_PORT)]
        specs += [(a.node_name, base + 10 + a.node if base else 0, a.netns, a.ip, P.AGENT_PORT)
                  for a in lab.role("agent")]
        argv = [sys.executable, os.path.join(HERE, "bin", "portal.py")]
        argv += [f"{name}={port}:{ns}:{ip}:{p}" for name, port, ns, ip, p in specs]
        self.start("portal", None, argv)
        log = self.st.file("logs", "portal.log")
        found = {}

        def listening():
            with open(log, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("{"):
                        found.update(json.loads(line))
                        return True
            return False

        self.wait("portal", listening, 10, "portal")
        self.st.data["ports"] = found
        self.st.save()
        kubeconfig(self.st.file("kubeconfig"), f"https://127.0.0.1:{found['api']}", self.pki.path("ca.crt"),
                   self.pki.path("admin.crt"), self.pki.path("admin.key"))

    # ---------------------------------------------------------------- up / down

    def up(self):
        self.pki.ca()
        self.network()
        self.start_control_plane()
        self.create_objects()
        self.enforcer.identity()
        # kube-router first, each until its chains are written: started together, its first
        # rewrite of the filter table could land between kube-proxy creating KUBE-SERVICES and
        # jumping to it, and kube-proxy retries a failed sync only 30 s later.
        for n in self.plan.node_range():
            self.enforcer.start(n)
        for n in self.plan.node_range():
            self.enforcer.wait(n)
        for n in self.plan.node_range():
            self.cp.start_kube_proxy(n)
        self.wait_endpoints()
        for n in self.plan.node_range():
            self.cp.wait_kube_proxy(n)
        self.start_coredns()
        for pod in self.plan.role("workload"):
            self.start_workload(pod)
        for pod in self.plan.role("workload"):
            self.wait_workload(pod)
        self.start_nginx()
        self.start_agents()
        self.start_prometheus()
        self.start_portal()

    def urls(self):
        ports = self.st.data.get("ports") or {}
        out = {name: f"http://127.0.0.1:{port}" for name, port in ports.items() if name != "api"}
        if "api" in ports:
            out["api"] = f"https://127.0.0.1:{ports['api']}"
        return out


def down(st):
    """Stops every recorded process, deletes every recorded namespace and file. Safe to run
    again, after a crash, or after a partial `up`."""
    left = stop_procs(st.data["procs"])
    for rec in left:
        print(f"warning: pid {rec['pid']} ({rec['name']}) does not stop", file=sys.stderr)
    existing = set(netns.list_netns())
    for ns in reversed(st.data["netns"]):
        if not ns.startswith(PREFIX) or ns not in existing:
            continue
        pids = netns.run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        netns.run(["ip", "netns", "del", ns], check=False)
    for path in st.data["files"]:
        try:
            os.remove(path)
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass
    st.data.update(procs=[], netns=[], files=[])
    st.save()


def http_get(ns, ip, port, path, timeout=2.0):
    """(status, body) of a plain HTTP GET sent from inside `ns`; (0, error) when it fails."""
    return http_request(ns, ip, port, "GET", path, timeout=timeout)


def http_request(ns, ip, port, method, path, body=None, timeout=2.0):
    """(status, body) of a plain HTTP request sent from inside `ns`; (0, error) when it fails."""
    try:
        s = netns.connect_in(ns, (ip, port), timeout)
    except OSError as err:
        return 0, str(err)
    data = (body or "").encode()
    head = f"{method} {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    try:
        s.sendall(head.encode() + b"\r\n" + data)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    except (OSError, socket.timeout) as err:
        return 0, str(err)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, "bad response"
    return status, body.decode(errors="replace")
