"""The load balancer as clouds publish it, and a CDN in front of it. Mixed into faults.Faults:

    lb-hostname                      the Ingress's status carries the load balancer's DNS name
                                     (lb-front.example.com, as AWS publishes an ELB's), not
                                     its address; the public names become CNAMEs to it
    lb-unpublished                   the Ingress's status is empty, as before a controller
                                     writes it or with one that never does; the public records
                                     stay as they were
    cdn                              the Ingress's public names answer a CDN's address
                                     (10.250.0.50), which every node forwards to the ingress
                                     controller (DNAT), as a CDN forwards to its origin
    expected-addresses               the Ingress is annotated
                                     hopwatch.io/expected-addresses: 10.250.0.50, the CDN's
                                     address, so hopwatch compares the public names with it
    tls-reset --node N               one TLS handshake of node N's agent reset (the first
                                     ClientHello to port 443 answered by a TCP reset), once
"""

import time

from . import netns
from . import objects as O
from .dns import LB_HOSTNAME
from .netns import LabError

CDN_IP = "10.250.0.50"
CDN_CHAIN = "HWL-CDN"
ANNOTATION = "hopwatch.io/expected-addresses"
INGRESS = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/front"


RESET_COMMENT = "hopwatch-lab-tls-reset"


class EdgeFaults:

    def fault_tls_reset(self, args):
        """One TLS handshake reset, once: the first ClientHello node N's agent sends to port
        443 is answered by a TCP reset, then the rule is gone. Nothing to heal."""
        n = self.node(args)
        agent = next(a for a in self.lab.plan.role("agent") if a.node == n)
        rule = ["OUTPUT", "-p", "tcp", "--dport", "443", "--tcp-flags", "PSH", "PSH",
                "-m", "comment", "--comment", RESET_COMMENT, "-j", "REJECT", "--reject-with", "tcp-reset"]
        ipt = ["iptables", "-w"]
        netns.exec_in(agent.netns, ipt + ["-I"] + rule[:1] + ["1"] + rule[1:])
        try:
            deadline = time.monotonic() + 90
            hits = 0
            while time.monotonic() < deadline:
                listing = netns.exec_in(agent.netns, ipt + ["-L", "OUTPUT", "-v", "-x", "-n"]).stdout
                hits = sum(int(line.split()[0]) for line in listing.splitlines() if RESET_COMMENT in line)
                if hits:
                    break
                time.sleep(0.05)
        finally:
            netns.exec_in(agent.netns, ipt + ["-D"] + rule, check=False)
        if not hits:
            raise LabError(f"no TLS handshake from {args.node}'s agent in 90 s: nothing was reset")
        return {"node": args.node, "reset": hits}

    def ingress_status(self, status):
        self.lab.api().patch(INGRESS + "/status", {"status": status})

    def fault_lb_hostname(self, args):
        self.ingress_status({"loadBalancer": {"ingress": [{"hostname": LB_HOSTNAME}]}})
        self.record("lb-hostname", args)
        self.lab.apply()
        return {"status": {"hostname": LB_HOSTNAME}}

    def restore_status(self, name, args):
        """Heals `lb-hostname` and `lb-unpublished`: the status the cloud controller wrote."""
        self.ingress_status(O.LB_STATUS)
        self.forget(name, args)
        self.lab.apply()
        return {"status": O.LB_STATUS}

    def heal_lb_hostname(self, args):
        return self.restore_status("lb-hostname", args)

    def fault_lb_unpublished(self, args):
        # A merge patch cannot empty a list: replace the whole loadBalancer field.
        self.ingress_status({"loadBalancer": {"ingress": None}})
        self.record("lb-unpublished", args)
        self.lab.apply()
        return {"status": {}}

    def heal_lb_unpublished(self, args):
        return self.restore_status("lb-unpublished", args)

    def fault_cdn(self, args):
        nginx = self.lab.plan.role("ingress")[0]
        for n in self.lab.plan.node_range():
            ns = self.lab.plan.node_netns(n)
            ipt = ["iptables", "-w", "-t", "nat"]
            netns.exec_in(ns, ipt + ["-N", CDN_CHAIN], check=False)
            netns.exec_in(ns, ipt + ["-F", CDN_CHAIN])
            netns.exec_in(ns, ipt + ["-A", CDN_CHAIN, "-d", CDN_IP, "-p", "tcp", "-j", "DNAT",
                                     "--to-destination", nginx.ip])
            if netns.exec_in(ns, ipt + ["-C", "PREROUTING", "-j", CDN_CHAIN], check=False).returncode != 0:
                netns.exec_in(ns, ipt + ["-I", "PREROUTING", "1", "-j", CDN_CHAIN])
        overrides = self.st.data.setdefault("dns_overrides", {})
        for host in O.INGRESS_HOSTS:
            overrides[host] = CDN_IP
        self.record("cdn", args)
        self.lab.apply()
        return {"published": {h: CDN_IP for h in O.INGRESS_HOSTS}, "origin": nginx.ip}

    def heal_cdn(self, args):
        for n in self.lab.plan.node_range():
            ns = self.lab.plan.node_netns(n)
            ipt = ["iptables", "-w", "-t", "nat"]
            while netns.exec_in(ns, ipt + ["-D", "PREROUTING", "-j", CDN_CHAIN], check=False).returncode == 0:
                pass
            netns.exec_in(ns, ipt + ["-F", CDN_CHAIN], check=False)
            netns.exec_in(ns, ipt + ["-X", CDN_CHAIN], check=False)
        overrides = self.st.data.get("dns_overrides") or {}
        for host in O.INGRESS_HOSTS:
            overrides.pop(host, None)
        self.forget("cdn", args)
        self.lab.apply()
        return {"published": "the load balancer's address"}

    def fault_expected_addresses(self, args):
        self.lab.api().patch(INGRESS, {"metadata": {"annotations": {ANNOTATION: CDN_IP}}})
        self.record("expected-addresses", args)
        return {"annotation": {ANNOTATION: CDN_IP}}

    def heal_expected_addresses(self, args):
        self.lab.api().patch(INGRESS, {"metadata": {"annotations": {ANNOTATION: None}}})
        self.forget("expected-addresses", args)
        return {"annotation": None}
