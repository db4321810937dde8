"""NetworkPolicies, enforced by kube-router on every node (kuberouter.py). Each fault creates its
policies and waits until the data path shows them: a connect they deny is refused, one they
allow goes through (or, with `cni-off`, everything goes through). Mixed into faults.Faults:

    netpol                           the debugging method's policies in `shop`: deny every
                                     ingress (default-deny-ingress), allow app=api to reach
                                     app=db on 8080 (allow-api-to-db), and the ingress
                                     controller's namespace to reach every pod
                                     (allow-from-ingress-nginx), as a cluster that keeps its
                                     Ingress working would. The agents are denied every `shop`
                                     pod: their connects are refused and expected
    netpol-dns                       `shop`'s pods may open TCP 8080 and nothing else
                                     (deny-dns-egress): their DNS queries get no answer
    netpol-agents                    app=cart admits every namespace but `hopwatch`
                                     (deny-hopwatch): the agents alone are refused
    cni-off                          kube-router is stopped on every node and its rules removed:
                                     the policies stay in the API server and nothing enforces
                                     them (a CNI that ignores NetworkPolicies)
"""

from . import dns, netns
from . import plan as P
from .controlplane import wait_for
from .netns import LabError

NP = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}
NS_NAME = "kubernetes.io/metadata.name"


def policy(name, spec, namespace="shop"):
    return {**NP, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# The debugging method's example: deny all ingress in the namespace, then allow api → db.
SEED_POLICIES = [
    policy("default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}),
    policy("allow-api-to-db", {
        "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                     "ports": [{"protocol": "TCP", "port": 8080}]}]}),
    policy("allow-from-ingress-nginx", {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NS_NAME: "ingress-nginx"}}}]}]}),
]
DNS_POLICY = policy("deny-dns-egress", {
    "podSelector": {}, "policyTypes": ["Egress"],
    "egress": [{"ports": [{"protocol": "TCP", "port": 8080}]}]})
AGENTS_POLICY = policy("deny-hopwatch", {
    "podSelector": {"matchLabels": {"app": "cart"}}, "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": NS_NAME, "operator": "NotIn", "values": ["hopwatch"]}]}}]}]})
POLICIES = {"netpol": SEED_POLICIES, "netpol-dns": [DNS_POLICY], "netpol-agents": [AGENTS_POLICY]}


def path(p):
    return f"/apis/networking.k8s.io/v1/namespaces/{p['metadata']['namespace']}/networkpolicies/{p['metadata']['name']}"


class NetpolFaults:

    def enforcing(self):
        return "cni-off" not in self.st.data["faults"]

    def create_policies(self, name, args, allowed, denied):
        """Creates the fault's policies, then waits until the `allowed` connects go through and
        the `denied` ones do not (all of them go through when nothing enforces)."""
        api = self.lab.api()
        for p in POLICIES[name]:
            api.create(p)
        self.record(name, args)
        enforced = self.enforcing()
        self.wait_connects(allowed, denied if enforced else [], allowed_too=[] if enforced else denied)
        return {"created": [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in POLICIES[name]],
                "enforced": enforced}

    def delete_policies(self, name, args, allowed):
        """Deletes the fault's policies; with no other policy fault left, waits until the
        connects they denied go through again."""
        for p in POLICIES[name]:
            self.lab.api().delete(path(p))
        self.forget(name, args)
        if not any(f in self.st.data["faults"] for f in POLICIES):
            self.wait_connects(allowed, [])
        return {"deleted": [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in POLICIES[name]]}

    def wait_connects(self, allowed, denied, allowed_too=()):
        """Until every (source pod, destination pod, port) of `allowed` and `allowed_too`
        connects and none of `denied` does."""
        plan = self.lab.plan

        def now():
            wrong = [f"{s} → {d}:{port} connects" for s, d, port in denied
                     if netns.tcp_open(plan.pod(s).netns, (plan.pod(d).ip, port))]
            wrong += [f"{s} → {d}:{port} refused" for s, d, port in [*allowed, *allowed_too]
                      if not netns.tcp_open(plan.pod(s).netns, (plan.pod(d).ip, port))]
            if wrong:
                raise LabError("; ".join(wrong))
            return True

        wait_for("the NetworkPolicies in effect", now, 30)

    # ------------------------------------------------------------ the faults

    def seed_checks(self):
        agent = self.lab.plan.agent(1).name
        allowed = [("api-1", "db-1", 8080), ("api-1", "db-2", 8080), ("ingress-nginx-controller-0", "web-1", 8080)]
        denied = [("web-1", "db-1", 8080), ("web-1", "db-2", 8080), (agent, "db-1", 8080), (agent, "web-2", 8080)]
        return allowed, denied

    def fault_netpol(self, args):
        return self.create_policies("netpol", args, *self.seed_checks())

    def heal_netpol(self, args):
        allowed, denied = self.seed_checks()
        return self.delete_policies("netpol", args, allowed + denied)

    def fault_netpol_dns(self, args):
        out = self.create_policies("netpol-dns", args, [], [])
        self.wait_dns(answered=not out["enforced"])
        return out

    def heal_netpol_dns(self, args):
        out = self.delete_policies("netpol-dns", args, [])
        self.wait_dns(answered=True)
        return out

    def wait_dns(self, answered):
        """Until a query from web-1 to the cluster DNS is (not) answered."""
        pod, name = self.lab.plan.pod("web-1"), f"kubernetes.default.svc.{self.lab.plan.domain}"
        wait_for(f"DNS from web-1 {'answered' if answered else 'blocked'}",
                 lambda: (dns.query(pod.netns, P.DNS_IP, name, timeout=0.3) is not None) == answered, 30)

    def agents_checks(self):
        agents = [a.name for a in self.lab.plan.role("agent")]
        carts = [p.name for p in self.lab.plan.pods if p.app == "cart"]
        return [("web-1", c, 8080) for c in carts], [(a, c, 8080) for a in agents for c in carts]

    def fault_netpol_agents(self, args):
        return self.create_policies("netpol-agents", args, *self.agents_checks())

    def heal_netpol_agents(self, args):
        allowed, denied = self.agents_checks()
        return self.delete_policies("netpol-agents", args, allowed + denied)

    def fault_cni_off(self, args):
        stopped = {P.node_name(n): self.lab.enforcer.stop(n) for n in self.lab.plan.node_range()}
        self.record("cni-off", args)
        return {"stopped": stopped}

    def heal_cni_off(self, args):
        self.forget("cni-off", args)
        for n in self.lab.plan.node_range():
            if not self.lab.enforcer.running(n):
                self.lab.enforcer.start(n)
        for n in self.lab.plan.node_range():
            self.lab.enforcer.wait(n)
        return {"started": [P.node_name(n) for n in self.lab.plan.node_range()]}
