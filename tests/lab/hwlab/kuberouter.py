"""kube-router, the lab's NetworkPolicy enforcer: one per node, in the node's namespace, with
only its firewall on (`--run-firewall --run-router=false --run-service-proxy=false`), built by
tools/kube-router/build. It is the part of a CNI that enforces NetworkPolicies: it watches Pods,
Namespaces and NetworkPolicies and writes per-pod chains (KUBE-POD-FW-*) and ipsets into the
node's filter table, reached from FORWARD for the pods' bridged and routed traffic. A denied
connect is rejected (ICMP port unreachable) at the destination pod's node.

kube-router v2.1.0, the release the module proxy serves, has reported security flaws: it runs
here only inside the lab's namespaces, with a client certificate of its own limited to reads.

Stopping it (the `cni-off` fault, "a CNI that ignores policies") removes its chains and ipsets,
so the policies stay in the API server and nothing enforces them.
"""

import os
import subprocess

from . import netns
from . import plan as P
from .netns import LabError
from .state import stop_procs

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "kube-router", "build")
USER = "lab:kube-router"
# What kube-router's firewall reads (its own deployment manifests grant these and more).
RULES = [
    {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
]
# Its chains in the filter table: the three it jumps to from INPUT, FORWARD and OUTPUT, one per
# pod and one per policy.
CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
SYNCED_RULE = "rule to explicitly ACCEPT traffic that comply to network policies"


def binary():
    """$HOPWATCH_KUBE_ROUTER, or where tools/kube-router/build puts it; a clear error when it is
    not built."""
    path = os.environ.get("HOPWATCH_KUBE_ROUTER")
    if not path:
        try:
            out = subprocess.run([BUILD, "--path"], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            raise LabError(f"cannot ask {BUILD} where kube-router is: {err}") from None
        path = out.stdout.strip()
    if not os.access(path, os.X_OK):
        raise LabError(f"kube-router is not built ({path} missing): run tools/kube-router/build (about 2 minutes)")
    return path


def name(n):
    return f"kube-router-{P.node_name(n)}"


class Enforcer:
    def __init__(self, lab):
        self.lab, self.st, self.plan = lab, lab.st, lab.plan

    def kubeconfig(self):
        return self.st.file("pki", "kube-router.kubeconfig")

    def identity(self):
        """A client certificate for USER, and the read-only ClusterRole bound to it."""
        from .controlplane import kubeconfig

        pki = self.lab.pki
        crt = pki.client("kube-router", USER, None)
        kubeconfig(self.kubeconfig(), f"https://{self.lab.cp.api_pod.ip}:6443", pki.path("ca.crt"), crt,
                   pki.path("kube-router.key"))
        api = self.lab.api()
        api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "lab:kube-router"}, "rules": RULES})
        api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "lab:kube-router"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "lab:kube-router"},
                    "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]})

    def start(self, n):
        self.lab.start(name(n), self.plan.node_netns(n), [
            binary(), "--run-firewall", "--run-router=false", "--run-service-proxy=false",
            f"--kubeconfig={self.kubeconfig()}", f"--hostname-override={P.node_name(n)}",
            f"--service-cluster-ip-range={P.SERVICE_CIDR}", "--health-port=0", "--metrics-port=0",
            "--iptables-sync-period=5m"])

    def synced(self, n):
        """Whether node `n`'s filter table holds kube-router's chains, written to the end."""
        saved = netns.exec_in(self.plan.node_netns(n), ["iptables-save", "-t", "filter"]).stdout
        return SYNCED_RULE in saved

    def wait(self, n, seconds=60):
        self.lab.wait(f"kube-router on {P.node_name(n)}", lambda: self.synced(n), seconds, name(n))

    def running(self, n):
        return self.lab.running(name(n))

    def stop(self, n):
        """Stops node `n`'s kube-router and removes what it wrote: its chains, the jumps to
        them, and its ipsets. Returns the PID it had, or None."""
        rec = self.st.proc(name(n))
        pid = None
        if rec is not None:
            stop_procs([rec])
            self.st.drop_proc(rec)
            pid = rec["pid"]
        remove_rules(self.plan.node_netns(n))
        return pid


def remove_rules(ns):
    """Every kube-router chain of the filter table and every jump to one, then every ipset (the
    node's namespace has none but kube-router's)."""
    lines = netns.exec_in(ns, ["iptables-save", "-t", "filter"]).stdout.splitlines()
    ours = lambda chain: chain.startswith(CHAIN_PREFIXES)
    jumps = [line for line in lines if line.startswith("-A ") and not ours(line.split()[1])
             and any(f"-j {p}" in line for p in CHAIN_PREFIXES)]
    chains = [line[1:].split()[0] for line in lines if line.startswith(":") and ours(line[1:].split()[0])]
    if jumps or chains:
        body = ["-D" + j[2:] for j in jumps] + [f"-F {c}" for c in chains] + [f"-X {c}" for c in chains]
        netns.exec_in(ns, ["iptables-restore", "-w", "--noflush"], "\n".join(["*filter", *body, "COMMIT"]) + "\n")
    netns.exec_in(ns, ["ipset", "destroy"], check=False)
