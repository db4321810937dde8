"""The real Kubernetes control plane of the lab, built by tools/controlplane/build:

    etcd                     in the API server's pod, on 127.0.0.1:2379 there
    kube-apiserver           the same pod (10.244.1.5:6443), TLS, RBAC, ServiceAccount tokens;
                             behind the `default/kubernetes` ClusterIP 10.96.0.1:443
    kube-controller-manager  the same pod: the endpointslice, endpoints, serviceaccount,
                             garbage-collector and namespace controllers, and none that need a
                             kubelet (node-lifecycle would mark every pod not ready)
    kube-proxy               one per node, in the node's namespace, iptables mode
    CoreDNS                  in the kube-dns pod (10.244.1.10), `kubernetes` plugin for the
                             cluster domain, `prometheus` on :9153 (dns.py writes its Corefile)

The one stand-in left is kubelet: the lab creates the Pod objects itself and writes their
status (podIP, Ready) as kubelet would (objects.py), and the real controllers take it from
there. Each process writes its log to logs/<name>.log in the run directory.
"""

import base64
import json
import os
import signal
import subprocess
import time

from . import netns
from . import plan as P
from .netns import LabError
from .state import stop_procs, write_atomic

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(REPO, "tools", "controlplane", "build")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kubectl", "coredns")
ETCD = "http://127.0.0.1:2379"
KCM_CONTROLLERS = ["endpointslice-controller", "endpoints-controller", "serviceaccount-controller",
                   "garbage-collector-controller", "namespace-controller"]
KUBE_PROXY_HEALTH = 10256


def bin_dir():
    """Where the control-plane binaries are: $HOPWATCH_CONTROLPLANE_BIN, or the build's cache."""
    explicit = os.environ.get("HOPWATCH_CONTROLPLANE_BIN")
    if explicit:
        return explicit
    try:
        out = subprocess.run([BUILD, "--bin-dir"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise LabError(f"cannot ask {BUILD} where the control plane is: {err}") from None
    return out.stdout.strip()


def binaries():
    """{name: path} of every control-plane binary; a clear error when one is missing."""
    d = bin_dir()
    paths = {b: os.path.join(d, b) for b in BINARIES}
    missing = [b for b, p in paths.items() if not os.access(p, os.X_OK)]
    if missing:
        raise LabError(f"the control plane is not built ({', '.join(missing)} missing in {d}): "
                       f"run tools/controlplane/build (20 to 40 minutes the first time)")
    return paths


def kubeconfig(path, server, ca, cert=None, key=None, token=None):
    """A kubeconfig file for one identity: a client certificate, or a bearer token."""
    user = {"client-certificate": cert, "client-key": key} if cert else {"token": token}
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "lab", "cluster": {"server": server, "certificate-authority": ca}}],
              "users": [{"name": "lab", "user": user}],
              "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
              "current-context": "lab"}
    write_atomic(path, json.dumps(config, indent=1))  # JSON is YAML: kubectl, kube-rs and client-go read it
    return path


class ControlPlane:
    """Starts and stops the control-plane processes of one lab (a lab.Lab)."""

    def __init__(self, lab):
        self.lab, self.st, self.pki, self.plan = lab, lab.st, lab.pki, lab.plan
        self.bins = None

    def bin(self, name):
        if self.bins is None:
            self.bins = binaries()
        return self.bins[name]

    @property
    def api_pod(self):
        return self.plan.pod("kube-apiserver-node-1")

    def kubeconfig_path(self, name):
        return self.st.file("pki", name + ".kubeconfig")

    # ------------------------------------------------------------ identities

    def identities(self):
        """Certificates and kubeconfigs of every control-plane client."""
        pki, ca = self.pki, self.pki.path("ca.crt")
        api = self.api_pod
        pki.leaf("apiserver", [
            "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            f"DNS:kubernetes.default.svc.{self.plan.domain}", "DNS:localhost",
            f"IP:{P.API_IP}", f"IP:{api.ip}", "IP:127.0.0.1"])
        pki.signing_key("sa")
        local, pod = "https://127.0.0.1:6443", f"https://{api.ip}:6443"
        for name, cn, org, server in (("admin", "lab-admin", "system:masters", local),
                                      ("kube-proxy", "system:kube-proxy", None, pod),
                                      ("coredns", "lab:coredns", None, pod)):
            crt = pki.client(name, cn, org)
            kubeconfig(self.kubeconfig_path(name), server, ca, crt, pki.path(name + ".key"))

    # ------------------------------------------------------------ etcd and the API server

    def start_etcd(self):
        data = self.st.file("etcd")
        os.makedirs(data, exist_ok=True)
        self.lab.start("etcd", self.api_pod.netns, [
            self.bin("etcd"), "--name", "lab", "--data-dir", data, "--unsafe-no-fsync", "--log-level", "warn",
            "--listen-client-urls", ETCD, "--advertise-client-urls", ETCD,
            "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "lab=http://127.0.0.1:2380"])
        self.lab.wait("etcd", lambda: self.etcd("/health").get("health") == "true", 30, "etcd")

    def etcd(self, path, body=None):
        """One call of etcd's JSON gateway ({} when it does not answer)."""
        from .lab import http_request  # lab imports this module
        status, text = http_request(self.api_pod.netns, "127.0.0.1", 2379, "POST" if body is not None else "GET",
                                    path, json.dumps(body) if body is not None else None)
        try:
            return json.loads(text) if status == 200 else {}
        except ValueError:
            return {}

    def apiserver_argv(self):
        pki, api = self.pki, self.api_pod
        return [
            self.bin("kube-apiserver"), f"--etcd-servers={ETCD}",
            f"--advertise-address={api.ip}", "--bind-address=0.0.0.0", "--secure-port=6443",
            f"--tls-cert-file={pki.path('apiserver.crt')}", f"--tls-private-key-file={pki.path('apiserver.key')}",
            f"--client-ca-file={pki.path('ca.crt')}", "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={P.SERVICE_CIDR}",
            f"--service-account-issuer=https://kubernetes.default.svc.{self.plan.domain}",
            f"--service-account-key-file={pki.path('sa.pub')}",
            f"--service-account-signing-key-file={pki.path('sa.key')}",
            # No kubelet, no node-lifecycle controller: nothing would ever lift the taint.
            "--disable-admission-plugins=TaintNodesByCondition",
            f"--cert-dir={self.st.file('pki', 'apiserver-generated')}",
            "--profiling=false", "--v=1"]

    def start_apiserver(self):
        """Starts kube-apiserver and waits until it is ready and lists itself behind the
        `default/kubernetes` Service (its endpoint reconciler does that within seconds)."""
        self.lab.start("kube-apiserver", self.api_pod.netns, self.apiserver_argv())
        self.lab.wait("kube-apiserver", self.lab.api().ready, 90, "kube-apiserver")
        api, address = self.lab.api(), self.api_pod.ip
        wait_for("kube-apiserver behind default/kubernetes",
                 lambda: any(address in (ep.get("addresses") or []) for sl in api.slices_of("default", "kubernetes")
                             for ep in sl.get("endpoints") or []), 60)

    def stop_apiserver(self):
        """Stops kube-apiserver the way a crash or a lost node does (SIGKILL): its clients'
        connections go with it, and it does not take its own address out of the
        `default/kubernetes` endpoints on the way. Returns the PID it had."""
        rec = self.st.proc("kube-apiserver")
        if rec is None:
            raise LabError("kube-apiserver is not running")
        os.kill(rec["pid"], signal.SIGKILL)
        stop_procs([rec])
        self.st.drop_proc(rec)
        # Its leader thread is a zombie before the other threads have exited and closed the
        # listening socket: wait until the port refuses, or a new kube-apiserver cannot bind.
        wait_for("kube-apiserver's port closed", lambda: not netns.tcp_open(self.api_pod.netns, ("127.0.0.1", 6443)),
                 30, interval=0.05)
        return rec["pid"]

    def compact_etcd(self):
        """Writes one key outside Kubernetes' prefix (so etcd's revision is past every
        resourceVersion a client holds) and compacts etcd's history up to it: a watch resuming
        from any resourceVersion it was given then gets 410 Gone. Returns the revision."""
        put = self.etcd("/v3/kv/put", {"key": base64.b64encode(b"/hopwatch-lab/api-gone").decode(),
                                       "value": base64.b64encode(str(time.time()).encode()).decode()})
        revision = int((put.get("header") or {}).get("revision") or 0)
        if not revision:
            raise LabError(f"etcd did not take the write before compaction: {put}")
        done = self.etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        if "header" not in done:
            raise LabError(f"etcd did not compact to {revision}: {done}")
        return revision

    def start_controller_manager(self):
        kc = self.kubeconfig_path("admin")
        self.lab.start("kube-controller-manager", self.api_pod.netns, [
            self.bin("kube-controller-manager"), f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1", "--leader-elect=false",
            "--use-service-account-credentials=false", f"--root-ca-file={self.pki.path('ca.crt')}",
            f"--cluster-cidr={P.POD_CIDR}", f"--service-cluster-ip-range={P.SERVICE_CIDR}",
            f"--controllers={','.join(KCM_CONTROLLERS)}", "--v=1"])

    # ------------------------------------------------------------ kube-proxy

    def kube_proxy_name(self, n):
        return f"kube-proxy-{P.node_name(n)}"

    def start_kube_proxy(self, n):
        path = self.st.file("kube-proxy", P.node_name(n) + ".yaml")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": self.kubeconfig_path("kube-proxy")},
            # Every namespace shares the machine's hostname: kube-proxy must be told its Node.
            "hostnameOverride": P.node_name(n), "mode": "iptables", "clusterCIDR": P.POD_CIDR,
            "bindAddress": P.underlay_ip(n),
            "metricsBindAddress": f"{P.underlay_ip(n)}:10249",
            "healthzBindAddress": f"{P.underlay_ip(n)}:{KUBE_PROXY_HEALTH}",
            # Conntrack sysctls are global or read-only outside the root namespace: leave them.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"minSyncPeriod": "0s", "syncPeriod": "30s"},
        }
        write_atomic(path, json.dumps(config, indent=1))
        name = self.kube_proxy_name(n)
        self.lab.start(name, self.plan.node_netns(n), [self.bin("kube-proxy"), f"--config={path}", "--v=1"])

    def wait_kube_proxy(self, n, seconds=60):
        """Until the node's kube-proxy has written its rules (its healthz answers 200 only after
        a successful sync)."""
        from .lab import http_get

        ns, ip = self.plan.node_netns(n), P.underlay_ip(n)
        self.lab.wait(f"kube-proxy on {P.node_name(n)}",
                      lambda: http_get(ns, ip, KUBE_PROXY_HEALTH, "/healthz")[0] == 200, seconds,
                      self.kube_proxy_name(n))

    def kube_proxy_synced(self, n):
        """Whether node `n`'s kube-proxy has no change waiting: nothing pending, and its last
        sync ended after the last one was queued (its own metrics)."""
        from .dns import parse_metrics
        from .lab import http_get

        status, body = http_get(self.plan.node_netns(n), P.underlay_ip(n), 10249, "/metrics")
        if status != 200:
            return False
        values = {(name, labels.get("ip_family")): v for name, labels, v in parse_metrics(body)}
        pending = sum(values.get((f"kubeproxy_sync_proxy_rules_{k}_changes_pending", None), 1)
                      for k in ("endpoint", "service"))
        done = values.get(("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "IPv4"), 0)
        queued = values.get(("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "IPv4"), 0)
        return pending == 0 and done >= queued

    def wait_kube_proxies(self, seconds=30):
        """Until every running kube-proxy has written the rules for what the API server holds
        now (a change seen through the API reaches kube-proxy's watch within milliseconds)."""
        time.sleep(0.2)
        for n in self.plan.node_range():
            if self.kube_proxy_running(n):
                wait_for(f"kube-proxy on {P.node_name(n)} synced", lambda n=n: self.kube_proxy_synced(n), seconds,
                         interval=0.05)

    def stop_kube_proxy(self, n):
        rec = self.st.proc(self.kube_proxy_name(n))
        if rec is None:
            return None
        stop_procs([rec])
        self.st.drop_proc(rec)
        return rec["pid"]

    def kube_proxy_running(self, n):
        return self.lab.running(self.kube_proxy_name(n))

    # ------------------------------------------------------------ kubectl

    def kubectl(self, *args, input_text=None, check=True):
        """kubectl (the control plane's own version) as the lab admin, run in the API server's
        pod namespace."""
        argv = [self.bin("kubectl"), f"--kubeconfig={self.kubeconfig_path('admin')}", *args]
        return netns.exec_in(self.api_pod.netns, argv, input_text=input_text, check=check)


def wait_for(what, check, seconds, interval=0.2):
    """Calls `check` until it returns something true; raises naming `what` (and the last value
    or error it gave) after `seconds`."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except LabError as err:
            last = err
        time.sleep(interval)
    raise LabError(f"{what}: not after {seconds} s (last: {last})")

