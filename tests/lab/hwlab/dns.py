"""The cluster DNS: the real CoreDNS in the kube-dns pod (10.244.1.10, behind the kube-dns
ClusterIP 10.96.0.10), with a Corefile of these server blocks:

    <domain> in-addr.arpa ip6.arpa  the `kubernetes` plugin: Services, headless endpoints, SRV
                                    records, PTRs, all from the API server's watch
    example.org.<search domain>     the names the agents' search list makes of www.example.org
                                    (three zones): NXDOMAIN, by the `template` plugin
    example.com, example.org        public names, from zone files the lab writes (the `file`
                                    plugin): shop.example.com and api.example.com point at the
                                    Ingress's load balancer address, as external-dns would
                                    publish them; www.example.org is looked up by a static DNS
                                    target only
    .                               every other name: NXDOMAIN

Every block has `prometheus :9153`, so CoreDNS's own counters (`coredns_dns_requests_total` by
type, `coredns_dns_responses_total` by rcode, both by zone) can be set against what the agents
count: the `amp` zones (example.org and the search-list ones) see exactly the wire queries of
lookups of www.example.org, whatever else is being looked up at the same time.
"""

import os
import random
import socket
import struct
import time

from . import netns
from . import objects as O
from . import plan as P
from .netns import LabError
from .state import read_text

AGENT_NAMESPACE = "hopwatch"
METRICS_PORT = 9153
PUBLIC_ZONES = ("example.com", "example.org")


def corefile(st, lab):
    zones = st.file("coredns", "zones")
    kubeconfig = st.file("pki", "coredns.kubeconfig")
    nxdomain = ["    template ANY ANY {", "        rcode NXDOMAIN",
                f'        authority "{{{{ .Zone }}}} 30 IN SOA ns.dns.{lab.domain}. hostmaster.{lab.domain}. 1 7200 1800 86400 30"',
                "    }"]
    blocks = [
        [f"{lab.domain}:53 in-addr.arpa:53 ip6.arpa:53 {{", "    errors",
         f"    kubernetes {lab.domain} in-addr.arpa ip6.arpa {{", f"        kubeconfig {kubeconfig} lab",
         "        pods insecure", "        fallthrough in-addr.arpa ip6.arpa", "    }"],
        [" ".join(f"{z}:53" for z in amp_zones(lab)[1:]) + " {", "    errors", *nxdomain],
        *[[f"{z}:53 {{", "    errors", f"    file {os.path.join(zones, z + '.zone')} {{", "        reload 1s", "    }"]
          for z in PUBLIC_ZONES],
        [".:53 {", "    errors", *nxdomain],
    ]
    return "\n".join(line for block in blocks for line in block + [f"    prometheus :{METRICS_PORT}", "}"]) + "\n"


def amp_zones(lab):
    """The zones only lookups of www.example.org reach: example.org and the names the agents'
    search list makes of it."""
    base = O.AMP_NAME.split(".", 1)[1]
    return [base] + [f"{base}.{s}" for s in lab.search(AGENT_NAMESPACE)]


def soa(zone, serial, domain):
    """SOA and NS of `zone`; every zone names the cluster DNS as its server."""
    origin = "." if zone == "." else zone + "."
    return [f"$ORIGIN {origin}", "$TTL 30",
            f"@ IN SOA ns.dns.{domain}. hostmaster.{domain}. {serial} 7200 1800 86400 30",
            f"@ IN NS ns.dns.{domain}."]


# The cloud's DNS name for its load balancer, as AWS publishes `…elb.amazonaws.com`: always
# in the public zone, and in the Ingress's status under the `lb-hostname` fault.
LB_HOSTNAME = "lb-front.example.com"


def records(snapshot, overrides=None):
    """{public zone: [record lines]} for the current objects; `overrides` {public name: address}
    replaces what external-dns would publish (the `lb-dns` fault: a stale record)."""
    zones = {z: [] for z in PUBLIC_ZONES}
    zones[LB_HOSTNAME.split(".", 1)[1]].append(f"{LB_HOSTNAME.split('.', 1)[0]} IN A {P.LB_IP}")
    for name in O.EXTERNAL_NAMES:
        zone = name.split(".", 1)[1]
        label = name.split(".", 1)[0]
        override = (overrides or {}).get(name)
        published = ingress_address(snapshot, name)
        if override:
            zones[zone].append(f"{label} IN A {override}")
        elif published and published[0] == "hostname":
            zones[zone].append(f"{label} IN CNAME {published[1]}.")
        else:
            zones[zone].append(f"{label} IN A {published[1] if published else P.LB_IP}")
    return zones


def ingress_address(snapshot, host):
    """What external-dns would publish for `host` from its Ingress's load balancer status:
    ("ip", address) for an A record, ("hostname", name) for a CNAME, or None without status."""
    for ing in snapshot["ingresses"]:
        hosts = [r.get("host") for r in (ing.get("spec") or {}).get("rules") or []]
        lbs = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if host in hosts and lbs:
            if lbs[0].get("ip"):
                return ("ip", lbs[0]["ip"])
            if lbs[0].get("hostname"):
                return ("hostname", lbs[0]["hostname"])
    return None


def write_zones(st, lab, snapshot):
    """Writes the public zone files whose records changed (CoreDNS reloads a zone within a
    second of its SOA serial changing); returns the zones written."""
    directory = st.file("coredns", "zones")
    os.makedirs(directory, exist_ok=True)
    serials = st.data.setdefault("dns_serials", {})
    changed = []
    for zone, lines in records(snapshot, st.data.get("dns_overrides")).items():
        body = "\n".join(lines)
        marker = os.path.join(directory, zone + ".zone.body")
        old = read_text(marker)
        if old == body:
            continue
        serials[zone] = serials.get(zone, 0) + 1
        path = os.path.join(directory, zone + ".zone")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("\n".join(soa(zone, serials[zone], lab.domain) + lines) + "\n")
        os.replace(path + ".tmp", path)
        with open(marker, "w", encoding="utf-8") as f:
            f.write(body)
        changed.append(zone)
    st.save()
    return changed


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
    raise LabError(f"CoreDNS at {server} did not answer {name} in {seconds} s (see logs/coredns.log)")


def parse_metrics(text):
    """[(name, {label: value}, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = {}
        for part in labels.rstrip("}").split('",'):
            if "=" in part:
                k, v = part.split("=", 1)
                pairs[k.strip(",")] = v.strip('"')
        try:
            out.append((name, pairs, float(value)))
        except ValueError:
            continue
    return out


def stats(lab):
    """CoreDNS's query counters: {"all": {...}, "amp": {...}}, each
    {"query-type": {A: n, …}, "response-code": {NXDOMAIN: n, …}, "protocol": {udp: n, …}}, "amp"
    summing only the zones of www.example.org's lookups."""
    from .lab import http_get  # lab imports this module

    pod = lab.plan.role("dns")[0]
    status, body = http_get(pod.netns, pod.ip, METRICS_PORT, "/metrics")
    if status != 200:
        raise LabError(f"CoreDNS metrics: {status or body}")
    amp = {z + "." for z in amp_zones(lab.plan)}
    out = {"all": {}, "amp": {}}
    for name, labels, value in parse_metrics(body):
        if name == "coredns_dns_requests_total":
            keys = (("query-type", labels.get("type")), ("protocol", labels.get("proto")))
        elif name == "coredns_dns_responses_total":
            keys = (("response-code", labels.get("rcode")),)
        else:
            continue
        for scope in ("all", "amp") if labels.get("zone") in amp else ("all",):
            for counter, item in keys:
                bucket = out[scope].setdefault(counter, {})
                bucket[item] = bucket.get(item, 0) + int(value)
    return out
