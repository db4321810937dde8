"""kube-proxy in iptables mode, one sync of one node: the rules kube-proxy would write for the
Services and EndpointSlices the API server serves, loaded the way kube-proxy loads them
(`iptables-restore --noflush`: every KUBE-* chain declared, hence flushed, then refilled;
chains of Services that went away declared and deleted with `-X`).

Chain names are kube-proxy's: "KUBE-SVC-" + base32(sha256(servicePortName + protocol))[:16],
and likewise KUBE-SEP (with the endpoint) and KUBE-EXT (load balancer addresses).

Endpoints: the Ready ones (a missing `ready` condition counts as Ready, as the API says).
A Service port without any gets kube-proxy's REJECT (icmp-port-unreachable) in the filter
table, for its ClusterIP and its load balancer addresses alike.
"""

import base64
import hashlib
import shlex

from . import netns
from . import plan as P

MASQ_MARK = "0x4000"


def chain_hash(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def ready(ep):
    return (ep.get("conditions") or {}).get("ready") is not False


def service_ports(snapshot, exclude=()):
    """[{spn, proto, ip, port, lb, endpoints}] for every ClusterIP Service port."""
    slices = {}
    for s in snapshot["slices"]:
        md = s["metadata"]
        svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
        if svc:
            slices.setdefault((md["namespace"], svc), []).append(s)
    out = []
    for svc in snapshot["services"]:
        md, spec = svc["metadata"], svc.get("spec") or {}
        key = (md["namespace"], md["name"])
        ip = spec.get("clusterIP")
        if f"{key[0]}/{key[1]}" in exclude or not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        lb = [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]
        for port in spec.get("ports") or []:
            name = port.get("name") or ""
            proto = (port.get("protocol") or "TCP").lower()
            out.append({"spn": f"{key[0]}/{key[1]}" + (f":{name}" if name else ""), "proto": proto, "ip": ip,
                        "port": port["port"], "lb": lb if spec.get("type") == "LoadBalancer" else [],
                        "endpoints": endpoints(slices.get(key, []), name, proto)})
    return out


def endpoints(slices, port_name, proto):
    found = []
    for s in sorted(slices, key=lambda s: s["metadata"]["name"]):
        number = next((p["port"] for p in s.get("ports") or []
                       if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP").lower() == proto), None)
        if number is None:
            continue
        for ep in s.get("endpoints") or []:
            if ready(ep):
                for addr in ep.get("addresses") or []:
                    hostport = f"{addr}:{number}"
                    if hostport not in found:
                        found.append(hostport)
    return found


def restore_text(ports, stale_nat=()):
    """The iptables-restore input for one sync."""
    filt, nat, chains = [], [], []
    for sp in ports:
        spn, proto, ip, port = sp["spn"], sp["proto"], sp["ip"], sp["port"]
        match = f"-p {proto} -m {proto} --dport {port}"
        if not sp["endpoints"]:
            filt.append(f'-A KUBE-SERVICES -d {ip}/32 {match} -m comment --comment "{spn} has no endpoints" '
                        f'-j REJECT --reject-with icmp-port-unreachable')
            for lb in sp["lb"]:
                filt.append(f'-A KUBE-EXTERNAL-SERVICES -d {lb}/32 {match} -m comment --comment "{spn} has no endpoints" '
                            f'-j REJECT --reject-with icmp-port-unreachable')
            continue
        svc = "KUBE-SVC-" + chain_hash(spn + proto)
        chains.append(svc)
        nat.append(f'-A KUBE-SERVICES -d {ip}/32 {match} -m comment --comment "{spn} cluster IP" -j {svc}')
        nat.append(f'-A {svc} ! -s {P.POD_CIDR} -d {ip}/32 {match} -m comment --comment "{spn} cluster IP" -j KUBE-MARK-MASQ')
        if sp["lb"]:
            ext = "KUBE-EXT-" + chain_hash(spn + proto)
            chains.append(ext)
            for lb in sp["lb"]:
                nat.append(f'-A KUBE-SERVICES -d {lb}/32 {match} -m comment --comment "{spn} loadbalancer IP" -j {ext}')
            nat.append(f'-A {ext} -m comment --comment "masquerade traffic for {spn} external destinations" -j KUBE-MARK-MASQ')
            nat.append(f"-A {ext} -j {svc}")
        n = len(sp["endpoints"])
        for i, ep in enumerate(sp["endpoints"]):
            sep = "KUBE-SEP-" + chain_hash(spn + proto + ep)
            chains.append(sep)
            prob = "" if i == n - 1 else f" -m statistic --mode random --probability {1.0 / (n - i):.10f}"
            nat.append(f'-A {svc} -m comment --comment "{spn} -> {ep}"{prob} -j {sep}')
            nat.append(f'-A {sep} -s {ep.rsplit(":", 1)[0]}/32 -m comment --comment "{spn}" -j KUBE-MARK-MASQ')
            nat.append(f'-A {sep} {match} -m comment --comment "{spn}" -j DNAT --to-destination {ep}')
    base = ("KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING")
    stale = [c for c in stale_nat if c not in chains and c not in base]
    return "\n".join([
        "*filter",
        ":KUBE-SERVICES - [0:0]", ":KUBE-EXTERNAL-SERVICES - [0:0]", ":KUBE-FORWARD - [0:0]",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        *filt, "COMMIT",
        "*nat",
        ":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]", ":KUBE-POSTROUTING - [0:0]",
        *[f":{c} - [0:0]" for c in chains + stale],
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        *nat,
        *[f"-X {c}" for c in stale],
        "COMMIT",
    ]) + "\n"


# (table, chain, rule): the jumps from the built-in chains, ensured after every sync.
JUMPS = [
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
]


def _rule_argv(rule):
    return shlex.split(rule)


def kube_chains(ns, table):
    out = netns.exec_in(ns, ["iptables-save", "-t", table]).stdout
    return [line[1:].split()[0] for line in out.splitlines() if line.startswith(":KUBE-")]


def sync(ns, snapshot, exclude=()):
    """One kube-proxy sync of node namespace `ns`. `exclude` lists Services (ns/name) this
    node's kube-proxy does not know about (the kube-proxy fault)."""
    ports = service_ports(snapshot, exclude)
    netns.exec_in(ns, ["iptables-restore", "-w", "--noflush"], restore_text(ports, kube_chains(ns, "nat")))
    for table, chain, rule in JUMPS:
        argv = ["iptables", "-w", "-t", table]
        if netns.exec_in(ns, argv + ["-C", chain] + _rule_argv(rule), check=False).returncode != 0:
            netns.exec_in(ns, argv + ["-A", chain] + _rule_argv(rule))
    return ports


def remove_all(ns):
    """What a node looks like with kube-proxy's rules gone: no jump, no KUBE-* chain."""
    for table, chain, rule in JUMPS:
        argv = ["iptables", "-w", "-t", table, "-D", chain] + _rule_argv(rule)
        while netns.exec_in(ns, argv, check=False).returncode == 0:
            pass
    for table in ("filter", "nat"):
        chains = kube_chains(ns, table)
        if chains:
            text = "\n".join([f"*{table}", *[f":{c} - [0:0]" for c in chains], *[f"-X {c}" for c in chains], "COMMIT"])
            netns.exec_in(ns, ["iptables-restore", "-w", "--noflush"], text + "\n")
