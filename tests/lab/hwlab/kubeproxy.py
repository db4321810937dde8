"""What a node looks like when its kube-proxy has stopped and its rules are gone: the `kube-proxy`
fault stops the real kube-proxy of the node (controlplane.py starts it) and then deletes, from
the node's iptables, either everything kube-proxy wrote or one Service's rules only. The next
kube-proxy to start on the node writes them all again.

Rules are read with iptables-save and deleted with one iptables-restore --noflush per table,
so a rule is deleted exactly as kube-proxy wrote it.
"""

import shlex

from . import netns
from .kuberouter import CHAIN_PREFIXES

TABLES = ("filter", "nat")


def saved(ns, table):
    return netns.exec_in(ns, ["iptables-save", "-t", table]).stdout.splitlines()


def kube_chains(ns, table):
    return [line[1:].split()[0] for line in saved(ns, table) if line.startswith(":KUBE-")]


def service_chains(ns):
    """The names of the KUBE-SVC- chains in the node's nat table."""
    return [c for c in kube_chains(ns, "nat") if c.startswith("KUBE-SVC-")]


def _restore(ns, table, lines):
    if lines:
        netns.exec_in(ns, ["iptables-restore", "-w", "--noflush"], "\n".join([f"*{table}", *lines, "COMMIT"]) + "\n")


def ours(chain):
    """Whether a KUBE- chain is kube-proxy's: kube-router (kuberouter.py) writes KUBE- chains too."""
    return chain.startswith("KUBE-") and not chain.startswith(CHAIN_PREFIXES)


def remove_all(ns):
    """No jump to a kube-proxy chain from any other chain, and no kube-proxy chain at all."""
    for table in TABLES:
        lines = saved(ns, table)
        jumps = [line for line in lines if line.startswith("-A ") and not ours(line.split()[1])
                 and " -j KUBE-" in line and ours(line.split(" -j ", 1)[1].split()[0])]
        chains = [line[1:].split()[0] for line in lines if line.startswith(":") and ours(line[1:].split()[0])]
        _restore(ns, table, ["-D" + j[2:] for j in jumps] + [f":{c} - [0:0]" for c in chains]
                 + [f"-X {c}" for c in chains])


def remove_service(ns, service):
    """The rules that send `service` (namespace/name) traffic anywhere: its entries in
    KUBE-SERVICES, KUBE-EXTERNAL-SERVICES and KUBE-NODEPORTS, found by kube-proxy's comment
    (`"shop/api:http cluster IP"`). Returns how many rules were deleted."""
    deleted = 0
    for table in TABLES:
        gone = []
        for line in saved(ns, table):
            if not line.startswith("-A "):
                continue
            words = shlex.split(line)
            comment = words[words.index("--comment") + 1] if "--comment" in words else ""
            name = comment.split(" ", 1)[0].split(":", 1)[0]
            if words[1] in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS") and name == service:
                gone.append("-D" + line[2:])
        _restore(ns, table, gone)
        deleted += len(gone)
    return deleted
