"""Faults around the data path rather than in it: public DNS, the node's resolver setup, and
the agents themselves (their CPU, their pod, their RBAC, their config). Each is what one of
the shipped alerts exists for; docs/RUNBOOK.md names them. Mixed into faults.Faults, so they
are injected and healed like every other fault:

    lb-dns      --host H [--ip IP]   public DNS answers IP (default 10.250.0.99, nothing
                                     there) for H: a stale record; the Ingress status is right
    search      --node N [--domains A,B]
                                     pods of node N get extra search domains (default
                                     corp.internal,compute.internal), as kubelet appends the
                                     host's own: every lookup walks them, all NXDOMAIN
    dns-loss    --node N [--percent P]
                                     P % (default 30) of the DNS queries from node N's pods
                                     are dropped, as the conntrack race of parallel A and AAAA
                                     queries drops them
    throttle    --node N [--seconds S] [--period T]
                                     node N's agent is stopped S s (default 1.5) of every T s
                                     (default 2.5), as CFS throttling at a CPU limit does
    agent-stop  --node N             node N's agent process is killed and stays down; its pod
                                     (and Prometheus target) remains
    agent-gone  --node N|all         node N's agent pod is gone: process killed, target removed
                                     from Prometheus's service discovery
    rbac        --resource R [--node N]
                                     deploy/'s ClusterRole loses R, so the API server answers
                                     403 to the agents for it; with --node, that node's agent restarts, as a pod
                                     rolled out after the edit would, and cannot list R
    config      --node N             node N's agent config gets a typo (an unknown field): the
                                     agent refuses the reload and keeps the previous config
"""

import os
import sys

from . import netns, prom
from . import plan as P
from .netns import LabError
from .state import stop_procs, write_atomic

LOSS_CHAIN = "HWL-DNSLOSS"
STALE_LB = "10.250.0.99"
NODE_DOMAINS = "corp.internal,compute.internal"
TYPO = "intervall_seconds: 2  # a typo: hopwatch knows no such field\n"


class OpsFaults:
    """Methods of faults.Faults: `self.lab`, `self.st`, `self.node()`, `self.record()` and
    `self.forget()` come from there."""

    # ------------------------------------------------------------ public DNS

    def fault_lb_dns(self, args):
        if not args.host:
            raise LabError("this fault needs --host")
        address = args.ip or STALE_LB
        self.st.data.setdefault("dns_overrides", {})[args.host] = address
        self.record("lb-dns", args)
        self.lab.apply()
        return {"host": args.host, "published": address}

    def heal_lb_dns(self, args):
        (self.st.data.get("dns_overrides") or {}).pop(args.host, None)
        self.forget("lb-dns", args)
        self.lab.apply()
        return {"host": args.host}

    # ------------------------------------------------------------ the node's resolver

    def fault_search(self, args):
        n = self.node(args)
        domains = [d.strip() for d in (args.domains or NODE_DOMAINS).split(",") if d.strip()]
        if not domains:
            raise LabError("--domains: give one or more domains, separated by commas")
        self.st.data.setdefault("node_search", {})[args.node] = domains
        self.record("search", args)
        self.lab.write_resolv_confs(n)
        return {"node": args.node, "search_added": domains}

    def heal_search(self, args):
        n = self.node(args)
        (self.st.data.get("node_search") or {}).pop(args.node, None)
        self.forget("search", args)
        self.lab.write_resolv_confs(n)
        return {"node": args.node}

    def fault_dns_loss(self, args):
        n = self.node(args)
        percent = float(args.percent or 30)
        if not 0 < percent <= 100:
            raise LabError(f"--percent {args.percent}: between 0 (exclusive) and 100")
        netns.install_forward_chain(self.lab.plan.node_netns(n), LOSS_CHAIN, [
            ["-s", P.node_cidr(n), "-p", "udp", "--dport", "53", "-m", "statistic", "--mode", "random",
             "--probability", f"{percent / 100:.4f}", "-j", "DROP"]])
        self.record("dns-loss", args)
        return {"node": args.node, "percent": percent}

    def heal_dns_loss(self, args):
        netns.remove_forward_chain(self.lab.plan.node_netns(self.node(args)), LOSS_CHAIN)
        self.forget("dns-loss", args)
        return {"node": args.node}

    # ------------------------------------------------------------ the agents

    def agent_rec(self, node_name):
        rec = self.st.proc(f"hopwatch-{node_name}")
        if rec is None:
            raise LabError(f"the agent of {node_name} is not running")
        return rec

    def kill_agent(self, node_name):
        rec = self.st.proc(f"hopwatch-{node_name}")
        if rec is not None:
            stop_procs([rec])
            self.st.drop_proc(rec)

    def restart_agent(self, n):
        agent = self.lab.plan.agent(n)
        self.kill_agent(agent.node_name)
        self.lab.start_agent(agent)
        self.lab.wait_agent(agent)
        return self.st.proc(f"hopwatch-{agent.node_name}")["pid"]

    def fault_throttle(self, args):
        self.node(args)
        stop_s, period = float(args.seconds or 1.5), float(args.period or 2.5)
        if not 0 < stop_s < period:
            raise LabError(f"--seconds {stop_s} --period {period}: the agent must run part of every period")
        rec = self.agent_rec(args.node)
        name = f"throttle-{args.node}"
        script = os.path.join(self.lab_home(), "bin", "throttle.py")
        self.lab.start(name, None, [sys.executable, script, str(rec["pid"]), str(rec["start"]), str(stop_s),
                                    str(period - stop_s)])
        self.lab.wait("throttle", lambda: "ready" in self.lab.log_tail(name), 10, name)
        self.record("throttle", args)
        return {"node": args.node, "stopped_seconds": stop_s, "period_seconds": period}

    def heal_throttle(self, args):
        self.node(args)
        recs = self.st.procs(f"throttle-{args.node}")
        stop_procs(recs)
        for r in recs:
            self.st.drop_proc(r)
        self.forget("throttle", args)
        return {"node": args.node}

    def fault_agent_stop(self, args):
        self.node(args)
        pid = self.agent_rec(args.node)["pid"]
        self.kill_agent(args.node)
        self.record("agent-stop", args)
        return {"node": args.node, "killed": pid}

    def heal_agent_stop(self, args):
        n = self.node(args)
        pid = self.restart_agent(n)
        self.forget("agent-stop", args)
        return {"node": args.node, "pid": pid}

    def gone_nodes(self, args):
        if args.node == "all":
            return list(self.lab.plan.node_range())
        return [self.node(args)]

    def fault_agent_gone(self, args):
        gone = self.st.data.setdefault("agents_gone", [])
        nodes = self.gone_nodes(args)
        for n in nodes:
            name = P.node_name(n)
            self.kill_agent(name)
            if name not in gone:
                gone.append(name)
        prom.write_targets(self.st, self.lab.plan)
        self.record("agent-gone", args)
        return {"gone": sorted(gone)}

    def heal_agent_gone(self, args):
        nodes = self.gone_nodes(args)
        gone = self.st.data.setdefault("agents_gone", [])
        for n in nodes:
            if P.node_name(n) in gone:
                gone.remove(P.node_name(n))
            self.restart_agent(n)
        prom.write_targets(self.st, self.lab.plan)
        self.forget("agent-gone", args)
        return {"gone": sorted(gone)}

    # ------------------------------------------------------------ RBAC and config

    def forbidden(self, resources):
        """deploy/'s ClusterRole without `resources`: the real authorizer then answers 403 to
        the agents' ServiceAccount for them, and for nothing else."""
        api = self.lab.api()
        path = "/apis/rbac.authorization.k8s.io/v1/clusterroles/hopwatch"
        role = api.get(path)
        original = self.st.data.setdefault("clusterrole_rules", role.get("rules") or [])
        rules = [dict(r, resources=[x for x in r.get("resources") or [] if x not in resources]) for r in original]
        role["rules"] = [r for r in rules if r["resources"]]
        api.request("PUT", path, role)
        self.st.data["forbidden"] = sorted(resources)
        self.st.save()
        return {"forbidden": sorted(resources), "rules": role["rules"]}

    def fault_rbac(self, args):
        if not args.resource:
            raise LabError("this fault needs --resource (e.g. ingresses)")
        out = self.forbidden(set(self.st.data.get("forbidden") or []) | {args.resource})
        self.record("rbac", args)
        if args.node:
            out["restarted"] = self.restart_agent(self.node(args))
        return out

    def heal_rbac(self, args):
        out = self.forbidden(set(self.st.data.get("forbidden") or []) - {args.resource})
        self.forget("rbac", args)
        return out

    def config_path(self, node_name):
        return self.st.file("agents", node_name, "config.yaml")

    def fault_config(self, args):
        self.node(args)
        path = self.config_path(args.node)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if TYPO not in text:
            write_atomic(path, text + TYPO)
        self.record("config", args)
        return {"node": args.node, "config": path}

    def heal_config(self, args):
        n = self.node(args)
        path = self.lab.agent_config(self.lab.plan.agent(n))
        self.forget("config", args)
        return {"node": args.node, "config": path}
