"""The cluster DNS: Knot DNS in the kube-dns pod, authoritative for the cluster domain and for
the shop's public names, with zone files generated from what the API server serves:

    <svc>.<ns>.svc.<domain>          A  ClusterIP              (ClusterIP Services)
    <svc>.<ns>.svc.<domain>          A  each Ready endpoint    (headless Services)
    _<port>._<proto>.<svc>.<ns>.svc  SRV                       (named ports, like CoreDNS)
    shop.example.com, api.example.com A the Ingress's load balancer address (status)
    www.example.org                  A the same address: probed by a static DNS target only
    .                                every other name: NXDOMAIN (an empty root zone)

Query counters come from Knot's mod-stats module, read with `knotc stats` / `zone-stats`.
Two instances count: `all` sees every query; `amp` only sees the queries of names under
example.org *and* of the names the search list makes of them
(www.example.org.hopwatch.svc.<domain> …): each of those is a zone of its own with the
`amp` module, so its counters are exactly the wire queries of lookups of www.example.org,
whatever else is being looked up at the same time.
"""

import os
import random
import socket
import struct
import time

from . import netns
from . import objects as O
from .kubeproxy import ready
from .netns import LabError
from .state import read_text

AGENT_NAMESPACE = "hopwatch"


def knot_conf(st, lab, dns_ip):
    d = st.file("knot")
    zones = zone_names(lab)
    lines = [
        "server:",
        f"    listen: {dns_ip}@53",
        f"    rundir: {d}",
        "    user: root:root",
        "    background-workers: 1",
        "    udp-workers: 1",
        "    tcp-workers: 1",
        "control:",
        f"    listen: {d}/knot.sock",
        "log:",
        "  - target: stderr",
        "    any: notice",
        "database:",
        f"    storage: {d}/db",
        "mod-stats:",
        *[line for inst in ("all", "amp") for line in (
            f"  - id: {inst}", "    request-protocol: on", "    query-type: on", "    response-code: on")],
        "template:",
        "  - id: default",
        f"    storage: {d}/zones",
        "    global-module: mod-stats/all",
        "    zonefile-sync: -1",
        "    zonefile-load: whole",
        "    journal-content: none",
        "zone:",
    ]
    for zone, amp in zones:
        lines += [f"  - domain: {zone}", f"    file: {zone_file(zone)}"]
        if amp:
            lines.append("    module: mod-stats/amp")
    return "\n".join(lines) + "\n"


def zone_file(zone):
    return "root.zone" if zone == "." else f"{zone}.zone"


def amp_zones(lab):
    base = O.AMP_NAME.split(".", 1)[1]
    return [base] + [f"{base}.{s}" for s in lab.search(AGENT_NAMESPACE)]


def zone_names(lab):
    """(zone, counted by `amp`), the cluster domain first and the root zone last."""
    external = sorted({n.split(".", 1)[1] for n in O.EXTERNAL_NAMES} - set(amp_zones(lab)))
    return [(lab.domain, False)] + [(z, False) for z in external] + [(z, True) for z in amp_zones(lab)] + [(".", False)]


def soa(zone, serial, domain):
    """SOA and NS of `zone`; every zone names the cluster DNS as its server."""
    origin = "." if zone == "." else zone + "."
    return [f"$ORIGIN {origin}", "$TTL 30",
            f"@ IN SOA ns.dns.{domain}. hostmaster.{domain}. {serial} 7200 1800 86400 30",
            f"@ IN NS ns.dns.{domain}."]


def records(lab, snapshot, overrides=None):
    """{zone: [record lines]} for the current objects; `overrides` {public name: address}
    replaces what external-dns would publish (the `lb-dns` fault: a stale record)."""
    zones = {z: [] for z, _ in zone_names(lab)}
    cluster = zones[lab.domain]
    cluster.append(f"ns.dns IN A {lab.pod('kube-dns-0').ip}")
    ready_ips = {}
    for s in snapshot["slices"]:
        md = s["metadata"]
        svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
        for ep in s.get("endpoints") or []:
            if svc and ready(ep):
                ready_ips.setdefault((md["namespace"], svc), []).extend(ep.get("addresses") or [])
    for svc in sorted(snapshot["services"], key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        md, spec = svc["metadata"], svc.get("spec") or {}
        owner = f"{md['name']}.{md['namespace']}.svc"
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            cluster.append(f"{owner} IN A {ip}")
        elif ip == "None":
            cluster += [f"{owner} IN A {a}" for a in sorted(set(ready_ips.get((md["namespace"], md["name"]), [])))]
        for port in spec.get("ports") or []:
            if port.get("name"):
                proto = (port.get("protocol") or "TCP").lower()
                cluster.append(f"_{port['name']}._{proto}.{owner} IN SRV 0 100 {port['port']} {owner}.{lab.domain}.")
    # Every name is below the root zone, so its NS needs glue there.
    zones["."].append(f"ns.dns.{lab.domain}. IN A {lab.pod('kube-dns-0').ip}")
    lb = lb_address(snapshot)
    for name in O.EXTERNAL_NAMES:
        zone = name.split(".", 1)[1]
        address = (overrides or {}).get(name) or ingress_address(snapshot, name) or lb
        if address:
            zones[zone].append(f"{name.split('.', 1)[0]} IN A {address}")
    return zones


def ingress_address(snapshot, host):
    """What external-dns would publish for `host`: its Ingress's load balancer address."""
    for ing in snapshot["ingresses"]:
        hosts = [r.get("host") for r in (ing.get("spec") or {}).get("rules") or []]
        lbs = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if host in hosts and lbs and lbs[0].get("ip"):
            return lbs[0]["ip"]
    return None


def lb_address(snapshot):
    for ing in snapshot["ingresses"]:
        lbs = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if lbs and lbs[0].get("ip"):
            return lbs[0]["ip"]
    return None


def write_zones(st, lab, snapshot):
    """Writes the zone files whose records changed; returns the zones written."""
    directory = st.file("knot", "zones")
    os.makedirs(directory, exist_ok=True)
    serials = st.data.setdefault("dns_serials", {})
    changed = []
    for zone, lines in records(lab, snapshot, st.data.get("dns_overrides")).items():
        body = "\n".join(lines)
        marker = os.path.join(directory, zone_file(zone) + ".body")
        old = read_text(marker)
        if old == body:
            continue
        serials[zone] = serials.get(zone, 0) + 1
        path = os.path.join(directory, zone_file(zone))
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("\n".join(soa(zone, serials[zone], lab.domain) + lines) + "\n")
        os.replace(path + ".tmp", path)
        with open(marker, "w", encoding="utf-8") as f:
            f.write(body)
        changed.append(zone)
    st.save()
    return changed


def knotc(st, *args, check=True):
    return netns.run(["knotc", "-s", st.file("knot", "knot.sock"), *args], check=check)


def reload_zones(st, zones):
    for zone in zones:
        knotc(st, "zone-reload", zone)


def query(ns, server, name, qtype=1, timeout=1.0):
    """One UDP query from namespace `ns`; returns the rcode, or None without an answer."""
    qid = random.randrange(65536)
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", qtype, 1)
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, (server, 53))
        reply, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    return reply[3] & 0x0F if len(reply) >= 12 and reply[:2] == packet[:2] else None


def wait_answering(ns, server, name, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if query(ns, server, name, timeout=0.3) == 0:
            return
        time.sleep(0.05)
    raise LabError(f"Knot at {server} did not answer {name} in {seconds} s (see knot.log in the run directory)")


def parse_stats(text):
    """`knotc stats` lines like `mod-stats.response-code[NXDOMAIN] = 3` (or zone-stats lines
    prefixed with `[zone.] `) → {"response-code": {"NXDOMAIN": 3}, …}, summed over lines."""
    out = {}
    for line in text.splitlines():
        if "mod-stats." not in line or "=" not in line:
            continue
        key, value = line.split("mod-stats.", 1)[1].rsplit("=", 1)
        key = key.strip()
        if "[" in key:
            counter, item = key[:-1].split("[", 1)
        else:
            counter, item = key, ""
        bucket = out.setdefault(counter, {})
        bucket[item] = bucket.get(item, 0) + int(value.strip())
    return out


def stats(st, lab):
    """{"all": counters of every query, "amp": counters of the www.example.org zones}."""
    amp = "\n".join(knotc(st, "zone-stats", z).stdout for z in amp_zones(lab))
    return {"all": parse_stats(knotc(st, "stats").stdout), "amp": parse_stats(amp)}
