#!/usr/bin/env python3
"""Writes the Grafana dashboards in this directory (schemaVersion 39) from the definitions below.

The JSON files are generated: edit this script, then run it. The tests fail when a JSON file
differs from what the script writes.

    python3 dashboards/generate.py           # rewrite dashboards/*.json
    python3 dashboards/generate.py --check   # exit 1 when a file is not up to date

Every dashboard has the variables `datasource` (a Prometheus data source), `cluster`,
`namespace`, `service` and `node`. `node` is the label deploy/servicemonitor.yaml attaches
to every agent's series; `cluster` is optional (it matches everything when the series have
none). Needs only the Python standard library.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}

# Request order; the Service's endpoints sit between the Ingress and the Service hop in the
# verdict, but have no probe of their own.
HOPS = [
    ("dns", "DNS"),
    ("loadbalancer", "Load balancer"),
    ("ingress", "Ingress"),
    ("service", "Service"),
    ("pod", "Pod"),
]

# Label matchers shared by every query.
AGENT = 'cluster=~"$cluster", node=~"$node"'
SERVICE = f'{AGENT}, namespace=~"$namespace", service=~"$service"'


def hop_filter(hop: str) -> str:
    """Matchers for a hop's probes. The target of Service and Pod hops is
    `namespace/service:port`, of the edge hops `namespace/ingress/host[/path]`; DNS names
    belong to no namespace."""
    if hop in ("service", "pod"):
        return f'{AGENT}, hop="{hop}", target=~"$namespace/$service:.*"'
    if hop in ("loadbalancer", "ingress"):
        return f'{AGENT}, hop="{hop}", target=~"$namespace/.*"'
    return f'{AGENT}, hop="{hop}"'


def part_ratio(metric: str, matchers: str, part: str, by: str = "") -> str:
    """The share of `metric`'s counts that also match `part` (`result="success"`), per `by`.
    A group with counts but none matching `part` is 0, not absent: a name whose lookups
    through a server never succeeded has no `result="success"` lookup series, and must show
    0 %, not "No data"."""
    grouping = f" by ({by})" if by else ""
    total = f"sum{grouping} (rate({metric}{{{matchers}}}[$__rate_interval]))"
    return (
        f"(\n  sum{grouping} (rate({metric}{{{matchers}, {part}}}[$__rate_interval]))\n"
        f"  or 0 * {total}\n)\n/ {total}"
    )


# A connect the NetworkPolicies deny to the agent, and a load-balancer hop with nothing to
# judge by (`unknown`), are neither a success nor a failure of the hop (docs/METRICS.md): the
# probe ratios leave them out, as the SLO recording rules do.
NOT_DENIED = 'result!~"policy_denied|unknown"'


def success_ratio(matchers: str, by: str = "", metric: str = "hopwatch_probes_total") -> str:
    if metric == "hopwatch_probes_total":
        matchers = f"{matchers}, {NOT_DENIED}"
    return part_ratio(metric, matchers, 'result="success"', by)


def error_ratio(matchers: str, by: str = "") -> str:
    return part_ratio("hopwatch_probes_total", f"{matchers}, {NOT_DENIED}", 'result!="success"', by)


def quantile(q: float, metric: str, matchers: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({labels}) "
        f"(rate({metric}_bucket{{{matchers}}}[$__rate_interval])))"
    )


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t.update({"instant": True, "range": False})
    if table:
        t["format"] = "table"
    return t


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def add(self, panel: dict, w: int, h: int):
        if self.x + w > 24:
            self.newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def newline(self):
        self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def row(self, title: str):
        self.newline()
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.newline()


def panel(kind: str, title: str, description: str, targets: list, unit: str = "", **extra):
    defaults = {"unit": unit} if unit else {}
    defaults.update(extra.pop("defaults", {}))
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
    }
    p.update(extra)
    return p


def timeseries(title, description, targets, unit="", **extra):
    extra.setdefault("options", {"legend": {"displayMode": "table", "placement": "right",
                                            "calcs": ["mean", "max"]},
                                 "tooltip": {"mode": "multi", "sort": "desc"}})
    return panel("timeseries", title, description, targets, unit, **extra)


def ratio_thresholds(good: float, warn: float):
    return {"mode": "absolute", "steps": [
        {"color": "red", "value": None},
        {"color": "orange", "value": warn},
        {"color": "green", "value": good},
    ]}


def red_from_one():
    """Green at 0, red from 1: for counts of things that should not exist."""
    return {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}


def error_thresholds():
    return {"mode": "absolute", "steps": [
        {"color": "green", "value": None},
        {"color": "orange", "value": 0.001},
        {"color": "red", "value": 0.05},
    ]}


def bars(title: str, description: str, expr: str, legend: str, unfilled: bool = True):
    """A horizontal bar gauge of the instant values of `expr`, one bar per `legend`."""
    options = {"displayMode": "basic", "orientation": "horizontal",
               "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    if unfilled:
        options["showUnfilled"] = True
    return panel("bargauge", title, description, [target(expr, legend, instant=True)],
                 options=options)


def stat(title, description, expr, unit="", thresholds=None, decimals=None):
    defaults = {}
    if thresholds:
        defaults["thresholds"] = thresholds
        defaults["color"] = {"mode": "thresholds"}
    if decimals is not None:
        defaults["decimals"] = decimals
    return panel("stat", title, description, [target(expr, instant=True)], unit,
                 defaults=defaults,
                 options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "background", "graphMode": "none", "textMode": "value"})


def table(title, description, targets, transformations=None, overrides=None, defaults=None):
    return panel("table", title, description, targets,
                 defaults=defaults or {},
                 overrides=overrides or [],
                 options={"showHeader": True, "cellHeight": "sm",
                          "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
                 transformations=transformations or [])


# Labels a scrape adds to every series, left out of the tables of label sets.
SCRAPE_LABELS = ("__name__", "job", "instance", "pod", "container", "endpoint")


def labels_table(title, description, expr, columns=None, rename=None):
    """A table of the label sets an instant query returns, without time or value: which
    Services, policies or nodes are in a state, not how much. With `columns`, in that order,
    without the scrape's own labels, and with the labels in `rename` renamed."""
    options = {"excludeByName": {"Time": True, "Value": True}}
    if columns:
        options["excludeByName"].update({label: True for label in SCRAPE_LABELS})
        options["indexByName"] = {label: i for i, label in enumerate(columns)}
    if rename:
        options["renameByName"] = rename
    return table(title, description, [target(expr, instant=True, table=True)],
                 transformations=[{"id": "organize", "options": options}])


def variables():
    def query(name, label, expr, multi=True):
        return {
            "name": name, "label": label, "type": "query", "datasource": DS,
            "definition": expr, "query": {"query": expr, "refId": f"{name}-variable", "qryType": 1},
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "hide": 0, "regex": "", "skipUrlSync": False,
        }

    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [],
         "refresh": 1, "regex": "", "skipUrlSync": False},
        query("cluster", "Cluster", "label_values(hopwatch_build_info, cluster)"),
        query("namespace", "Namespace",
              'label_values(hopwatch_service_endpoints{cluster=~"$cluster"}, namespace)'),
        query("service", "Service",
              'label_values(hopwatch_service_endpoints{cluster=~"$cluster", namespace=~"$namespace"}, service)'),
        query("node", "Node", 'label_values(hopwatch_build_info{cluster=~"$cluster"}, node)'),
    ]}


def dashboard(uid, title, description, layout: Layout, refresh="30s"):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["hopwatch"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "refresh": refresh,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "hopwatch", "type": "dashboards", "tags": ["hopwatch"],
                   "asDropdown": True, "includeVars": True, "keepTime": True,
                   "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "templating": variables(),
        "panels": layout.panels,
    }


# 1. The request path ---------------------------------------------------------------------


def request_path():
    lay = Layout()
    lay.row("Success ratio, in request order")
    widths = [5, 5, 5, 5, 4]
    for (hop, name), w in zip(HOPS, widths):
        good, warn = (0.995, 0.99) if hop in ("loadbalancer", "ingress") else (0.999, 0.99)
        lay.add(stat(f"{name}", f"Share of {name} hop probes that succeeded, over the time "
                     "range's rate interval, all selected nodes and targets.",
                     success_ratio(hop_filter(hop)), "percentunit",
                     ratio_thresholds(good, warn), decimals=2), w, 4)
    lay.row("Latency, in request order: p50 and p99 of each attempt")
    for (hop, name), w in zip(HOPS, widths):
        untimed = (" Timed on the `service_probe_nodes` nodes of each port; empty when the "
                   "agents run with `kubernetes.connect.service_histogram: false`."
                   if hop == "service" else "")
        # A DNS probe's duration is its search lookup's, exported once, by the DNS family.
        metric, matchers = (("hopwatch_dns_lookup_duration_seconds", f'{AGENT}, mode="search"')
                            if hop == "dns" else
                            ("hopwatch_probe_duration_seconds", hop_filter(hop)))
        lay.add(timeseries(f"{name} latency", f"Duration of {name} hop probe attempts as the "
                           "user of the hop feels it (DNS: the lookup as written; Service and "
                           "Pod: the TCP handshake; edge: the whole request)." + untimed,
                           [target(quantile(0.5, metric, matchers), "p50"),
                            target(quantile(0.99, metric, matchers), "p99", "B")],
                           "s", options={"legend": {"displayMode": "list", "placement": "bottom"},
                                         "tooltip": {"mode": "multi", "sort": "desc"}}), w, 7)
    lay.row("Verdicts: the first broken hop of each Service, from each node")
    lay.add(stat("Services with a broken hop", "Services whose verdict is not `none` from at "
                 "least one selected node.",
                 f'count(count by (namespace, service) (hopwatch_path_status{{{SERVICE}, broken_hop!="none"}} == 1)) or vector(0)',
                 thresholds=red_from_one()), 4, 8)
    lay.add(bars("Verdicts by broken hop", "How many (node, Service) pairs have each verdict.",
                 f'count by (broken_hop) (hopwatch_path_status{{{SERVICE}}} == 1)',
                 "{{broken_hop}}"), 6, 8)
    lay.add(labels_table("Broken paths", "Every (node, Service) whose verdict is not `none`: the "
                         "first hop on the request path that fails from that node. See "
                         "docs/RUNBOOK.md.",
                         f'hopwatch_path_status{{{SERVICE}, broken_hop!="none"}} == 1',
                         ["cluster", "namespace", "service", "broken_hop", "node"],
                         {"broken_hop": "first broken hop"}), 14, 8)
    canary(lay)
    lay.row("Over time")
    lay.add(timeseries("Success ratio by hop", "Per hop, all selected targets and nodes.",
                       [target(success_ratio(f'{AGENT}', "hop"), "{{hop}}")], "percentunit",
                       defaults={"max": 1}), 12, 8)
    lay.add(timeseries("Failures by hop and reason", "Failed probes per second, by the closed "
                       "set of failure reasons (docs/METRICS.md); connects the NetworkPolicies "
                       "deny to the agent (policy_denied) and load-balancer hops with no "
                       "load balancer to judge (unknown) are not failures.",
                       [target(f'sum by (hop, result) (rate(hopwatch_probes_total{{{AGENT}, result!~"success|policy_denied|unknown"}}[$__rate_interval]))',
                               "{{hop}}: {{result}}")], "ops"), 12, 8)
    lay.row("Edge: load balancer and Ingress")
    edge = f'{AGENT}, target=~"$namespace/.*"'
    lay.add(timeseries("Edge phases, p99", "Duration of each phase of the edge probes on a fresh "
                       "connection: dns, connect, tls, ttfb (request written to response head).",
                       [target(quantile(0.99, "hopwatch_http_phase_duration_seconds", edge, "hop, phase"),
                               "{{hop}} {{phase}}")], "s"), 8, 8)
    lay.add(timeseries("Ingress responses by code", "Responses per second by HTTP status code, "
                       "expected or not.",
                       [target(f'sum by (code) (rate(hopwatch_http_responses_total{{{edge}}}[$__rate_interval]))',
                               "{{code}}")], "reqps"), 8, 8)
    lay.add(table("Certificates", "Earliest notAfter in the chain each target presented, and "
                  "whether it verified.",
                  [target(f'min by (target) (hopwatch_tls_cert_not_after_timestamp_seconds{{{edge}}}) - time()',
                          ref="A", instant=True, table=True),
                   target(f'min by (target) (hopwatch_tls_cert_verified{{{edge}}})',
                          ref="B", instant=True, table=True)],
                  transformations=[{"id": "merge", "options": {}},
                                   {"id": "organize", "options": {
                                       "excludeByName": {"Time": True},
                                       "renameByName": {"Value #A": "expires in",
                                                        "Value #B": "verified"}}}],
                  overrides=[
                      {"matcher": {"id": "byName", "options": "expires in"},
                       "properties": [{"id": "unit", "value": "s"},
                                      {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                                      {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                          {"color": "red", "value": None},
                                          {"color": "orange", "value": 259200},
                                          {"color": "green", "value": 1209600}]}}]},
                      {"matcher": {"id": "byName", "options": "verified"},
                       "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                           "0": {"text": "no", "color": "red"}, "1": {"text": "yes", "color": "green"}}}]},
                                      {"id": "custom.cellOptions", "value": {"type": "color-text"}}]}]),
            8, 8)
    return dashboard("hopwatch-request-path", "hopwatch / Request path",
                     "Each hop of the request path (DNS, load balancer, Ingress, Service, Pod) "
                     "as probed from every node, and each Service's verdict: its first broken hop.",
                     lay)


def canary(lay: Layout):
    """The canary row: its path per node, and the broken Services by cause."""
    lay.row("Canary: infrastructure or application")
    broken = f'{AGENT}, broken_hop!~"none|unknown"'
    lay.add(stat("Nodes with a broken canary", "Nodes from which the canary Service's path "
                 "(deploy/canary/: a Service in front of the agents themselves, no application "
                 "behind it) is broken: the infrastructure fails there.",
                 f'count(max by (node) (hopwatch_canary_path_status{{{broken}}} == 1)) or vector(0)',
                 thresholds=red_from_one()), 4, 8)
    lay.add(labels_table("Canary path per node", "The canary Service's first broken hop from each node "
                  "(none when it works; unknown while the agent does not probe it).",
                         f'hopwatch_canary_path_status{{{AGENT}}} == 1',
                         ["cluster", "node", "broken_hop"],
                         {"broken_hop": "canary's first broken hop"}), 8, 8)
    lay.add(timeseries("Canary broken, by hop", "Nodes whose canary path is broken, by its first "
                       "broken hop.",
                       [target(f'count by (broken_hop) (hopwatch_canary_path_status{{{broken}}} == 1)',
                               "{{broken_hop}}")], "short"), 12, 8)
    lay.add(bars("Broken paths by cause", "(node, Service) pairs whose verdict is not `none`, "
                 "by cause: infrastructure when the canary's path on that node breaks at the "
                 "same or an earlier hop, application when not, unknown without a probed canary.",
                 f'count by (cause) (hopwatch_path_cause{{{SERVICE}}} == 1)', "{{cause}}"), 6, 8)
    lay.add(timeseries("Broken paths by cause", "(node, Service) pairs whose verdict is not "
                       "`none`, by cause, over time.",
                       [target(f'count by (cause) (hopwatch_path_cause{{{SERVICE}}} == 1)',
                               "{{cause}}")], "short"), 8, 8)
    lay.add(labels_table("Broken Services and their cause", "Every (node, Service) whose "
                         "verdict is not `none`, with its first broken hop and cause. See "
                         "docs/METRICS.md.",
                         f'(hopwatch_path_cause{{{SERVICE}}} == 1)\n'
                         f'* on (cluster, node, namespace, service) group_left (broken_hop)\n'
                         f'(hopwatch_path_status{{{SERVICE}, broken_hop!="none"}} == 1)',
                         ["cluster", "namespace", "service", "cause", "broken_hop", "node"],
                         {"broken_hop": "first broken hop"}), 10, 8)


# 2. DNS ----------------------------------------------------------------------------------


def dns():
    lay = Layout()
    d = AGENT
    lay.row("Lookups")
    lay.add(timeseries("Lookups by result", "Lookups of the names as written, per second.",
                       [target(f'sum by (result) (rate(hopwatch_dns_lookups_total{{{d}}}[$__rate_interval]))',
                               "{{result}}")], "ops"), 8, 8)
    lay.add(timeseries("Lookup success ratio by target", "Per target and server.",
                       [target(success_ratio(d, "target, server", "hopwatch_dns_lookups_total"),
                               "{{target}} via {{server}}")], "percentunit",
                       defaults={"max": 1}), 16, 8)
    lay.row("Cost of the search list")
    lay.add(timeseries("Queries per lookup", "Wire queries the last lookup sent, as written "
                       "(search) and as an FQDN (fqdn): the search list walk in numbers.",
                       [target(f'max by (target, server, mode) (hopwatch_dns_queries_per_lookup{{{d}}})',
                               "{{target}} via {{server}} ({{mode}})")], "short"), 12, 8)
    lay.add(timeseries("NXDOMAIN ratio by target", "Share of the wire queries of lookups as "
                       "written that were answered NXDOMAIN. Above 0.78 the "
                       "HopwatchDNSNXDomainRatioHigh alert fires.",
                       [target(part_ratio("hopwatch_dns_queries_total", f'{d}, mode="search"',
                                          'rcode="NXDOMAIN"', "target, server"),
                               "{{target}} via {{server}}")], "percentunit",
                       defaults={"max": 1}), 12, 8)
    lay.add(timeseries("Amplification by target and flavor", "Wire queries of the lookup as "
                       "written divided by those of the FQDN: 1 means the search list costs "
                       "nothing. The flavor is the emulated stub resolver (glibc, musl, go).",
                       [target(f'max by (target, server) (hopwatch_dns_amplification_ratio{{{d}}})\n'
                               f'* on (target, server) group_left (flavor)\n'
                               f'group by (target, server, flavor) (hopwatch_dns_lookups_total{{{d}}})',
                               "{{target}} ({{flavor}}) via {{server}}")], "short"), 12, 8)
    lay.add(timeseries("NXDOMAIN replies per lookup", "NXDOMAIN replies the last lookup "
                       "received: load the search list puts on the cluster DNS for nothing.",
                       [target(f'max by (target, server) (hopwatch_dns_nxdomain_per_lookup{{{d}, mode="search"}})',
                               "{{target}} via {{server}}")], "short"), 12, 8)
    lay.row("Servers")
    lay.add(timeseries("Lookup latency by server, p50 and p99", "Lookups as written, per "
                       "server: the resolv.conf nameservers, the cluster DNS Service, each "
                       "replica, node-local-dns.",
                       [target(quantile(0.5, "hopwatch_dns_lookup_duration_seconds", f'{d}, mode="search"', "server"),
                               "p50 {{server}}"),
                        target(quantile(0.99, "hopwatch_dns_lookup_duration_seconds", f'{d}, mode="search"', "server"),
                               "p99 {{server}}", "B")], "s"), 12, 8)
    lay.add(timeseries("Lookups that waited out a resolver timeout", "Share of lookups over "
                       "4.096 s: a 5 s resolver timeout sat out. Above 5 % the "
                       "HopwatchDNSResolverTimeouts alert fires.",
                       [target(f'(sum by (server) (rate(hopwatch_dns_lookup_duration_seconds_count{{{d}}}[$__rate_interval]))\n'
                               f'- sum by (server) (rate(hopwatch_dns_lookup_duration_seconds_bucket{{{d}, le="4.096"}}[$__rate_interval])))\n'
                               f'/ sum by (server) (rate(hopwatch_dns_lookup_duration_seconds_count{{{d}}}[$__rate_interval]))',
                               "{{server}}")], "percentunit"), 12, 8)
    lay.add(timeseries("Wire queries by rcode", "The query mix a pod's resolver puts on the "
                       "cluster DNS: NOERROR, NXDOMAIN, SERVFAIL, TIMEOUT…",
                       [target(f'sum by (rcode) (rate(hopwatch_dns_queries_total{{{d}}}[$__rate_interval]))',
                               "{{rcode}}")], "ops"), 12, 8)
    lay.add(timeseries("Wire queries by server and transport", "UDP, and TCP after a "
                       "truncated reply or with use-vc.",
                       [target(f'sum by (server, transport) (rate(hopwatch_dns_queries_total{{{d}}}[$__rate_interval]))',
                               "{{server}} {{transport}}")], "ops"), 12, 8)
    return dashboard("hopwatch-dns", "hopwatch / DNS",
                     "Lookups as a pod's stub resolver makes them: results, the cost of the "
                     "search list (queries per lookup, NXDOMAIN, amplification) and each "
                     "server's latency.", lay)


# 3. Endpoints ----------------------------------------------------------------------------


def endpoints():
    lay = Layout()
    s = SERVICE
    lay.row("Services")
    lay.add(stat("Services without a ready endpoint", "Services whose every connection fails.",
                 f'count(max by (cluster, namespace, service) (hopwatch_service_empty_endpoints{{{s}}}) == 1) or vector(0)',
                 thresholds=red_from_one()), 4, 8)
    lay.add(labels_table("Services without a ready endpoint", "no_endpoints: the selector matches no "
                         "pod; none_ready: pods exist but none is Ready.",
                         f'max by (cluster, namespace, service, reason) (hopwatch_service_empty_endpoints{{{s}}}) == 1'), 8, 8)
    lay.add(table("Endpoints by condition", "Endpoints of each Service by condition, each "
                  "address counted once across its slices.",
                  [target(f'max by (cluster, namespace, service) (hopwatch_service_endpoints{{{s}, condition="{c}"}})',
                          ref=r, instant=True, table=True)
                   for r, c in zip("ABCD", ["ready", "serving", "terminating", "not_ready"])],
                  transformations=[{"id": "merge", "options": {}},
                                   {"id": "organize", "options": {
                                       "excludeByName": {"Time": True},
                                       "renameByName": {"Value #A": "ready", "Value #B": "serving",
                                                        "Value #C": "terminating",
                                                        "Value #D": "not ready"}}}],
                  overrides=[{"matcher": {"id": "byName", "options": "ready"},
                              "properties": [{"id": "custom.cellOptions",
                                              "value": {"type": "color-background"}},
                                             {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                                 {"color": "red", "value": None},
                                                 {"color": "green", "value": 1}]}}]}]), 12, 8)
    lay.row("Over time")
    lay.add(timeseries("Ready endpoints", "Per Service.",
                       [target(f'max by (cluster, namespace, service) (hopwatch_service_endpoints{{{s}, condition="ready"}})',
                               "{{namespace}}/{{service}}")], "short"), 12, 8)
    lay.add(timeseries("Terminating and not-ready endpoints", "Rollouts and failing readiness "
                       "probes show here first.",
                       [target(f'max by (cluster, namespace, service, condition) (hopwatch_service_endpoints{{{s}, condition=~"terminating|not_ready"}})',
                               "{{namespace}}/{{service}} {{condition}}")], "short"), 12, 8)
    lay.row("Readiness flapping and unreachable endpoints")
    lay.add(timeseries("Readiness flips per hour", "Endpoints whose Ready condition flipped "
                       "between two versions of their slice. Steady flipping means a "
                       "readiness probe on the edge of its threshold.",
                       [target(f'max by (cluster, namespace, service) (increase(hopwatch_endpoint_ready_transitions_total{{{s}}}[1h]))',
                               "{{namespace}}/{{service}}")], "short"), 12, 8)
    lay.add(timeseries("Ready but unreachable endpoints, by node", "Ready endpoints that "
                       "refused or dropped this node's direct connects in the last round: "
                       "Kubernetes still sends them traffic.",
                       [target(f'max by (cluster, namespace, service, node) (hopwatch_service_unreachable_endpoints{{{s}}}) > 0',
                               "{{namespace}}/{{service}} from {{node}}")], "short"), 12, 8)
    lay.row("NetworkPolicies")
    policies = f'{AGENT}, namespace=~"$namespace"'
    lay.add(stat("NetworkPolicies not enforced", "Policies that deny the agents a target the "
                 "agents still connected to, from some node: the CNI does not enforce them.",
                 f'count(max by (namespace, policy) (hopwatch_networkpolicy_unenforced{{{policies}}}) == 1) or vector(0)',
                 thresholds=red_from_one()), 4, 8)
    lay.add(labels_table("NetworkPolicies not enforced, by node", "The nodes whose last connect to a "
                         "denied target went through.",
                         f'max by (namespace, policy, node) (hopwatch_networkpolicy_unenforced{{{policies}}}) == 1'), 8, 8)
    lay.add(timeseries("Targets the policies deny to the agents", "Service-hop and Pod-hop "
                       "targets per Service whose connects NetworkPolicies deny to the agents: "
                       "recorded as policy_denied, left out of the verdict and the SLO ratios.",
                       [target(f'max by (cluster, namespace, service) (hopwatch_networkpolicy_denied_targets{{{s}}})',
                               "{{namespace}}/{{service}}")], "short"), 12, 8)
    return dashboard("hopwatch-endpoints", "hopwatch / Endpoints",
                     "EndpointSlice readiness per Service as every agent sees it: ready, "
                     "serving and terminating endpoints, empty Services, readiness flapping, "
                     "Ready endpoints that do not answer, and NetworkPolicies that deny the "
                     "agents or are not enforced.", lay)


# 4. Node x hop matrix --------------------------------------------------------------------


def nodes():
    lay = Layout()
    lay.row("Error ratio: nodes in rows, hops in columns")
    order = {name: i + 1 for i, (_, name) in enumerate(HOPS)}
    rename = {hop: name for hop, name in HOPS}
    node_hop_errors = error_ratio(AGENT, "node, hop")
    lay.add(table("Node × hop error ratio", "Share of each node's probes of each hop that "
                  "failed. One broken node stands out as a red row; a red column is a hop "
                  "broken everywhere.",
                  [target(node_hop_errors, instant=True, table=True)],
                  transformations=[
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "hop", "rowField": "node", "valueField": "Value",
                          "emptyValue": "null"}},
                      {"id": "organize", "options": {"indexByName": {"node\\hop": 0, **order},
                                                     "renameByName": {"node\\hop": "node", **rename}}}],
                  defaults={"unit": "percentunit", "decimals": 2, "thresholds": error_thresholds(),
                            "color": {"mode": "thresholds"},
                            "custom": {"cellOptions": {"type": "color-background"}, "align": "center"}},
                  overrides=[{"matcher": {"id": "byName", "options": "node"},
                              "properties": [{"id": "custom.cellOptions", "value": {"type": "auto"}}]}]),
            14, 12)
    lay.add(table("Node × verdict", "How many Services have each verdict from each node. A "
                  "node with many `service` verdicts that other nodes do not share has a "
                  "broken kube-proxy.",
                  [target(f'count by (node, broken_hop) (hopwatch_path_status{{{SERVICE}}} == 1)',
                          instant=True, table=True)],
                  transformations=[
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "broken_hop", "rowField": "node", "valueField": "Value",
                          "emptyValue": "zero"}},
                      {"id": "organize", "options": {
                          "indexByName": {"node\\broken_hop": 0, "none": 1, "dns": 2,
                                          "loadbalancer": 3, "ingress": 4, "endpoints": 5,
                                          "service": 6, "pod": 7},
                          "renameByName": {"node\\broken_hop": "node"}}}],
                  defaults={"custom": {"align": "center"}}), 10, 12)
    lay.row("Over time")
    for hop, name in [("service", "Service"), ("pod", "Pod"), ("dns", "DNS")]:
        lay.add(panel("status-history", f"{name} hop error ratio by node", f"Each row is a "
                      f"node; color is the share of its {name} hop probes that failed.",
                      [target(error_ratio(f'{AGENT}, hop="{hop}"', "node"), "{{node}}")], "percentunit",
                      defaults={"thresholds": error_thresholds(), "color": {"mode": "thresholds"}},
                      options={"showValue": "never", "rowHeight": 0.9,
                               "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                               "tooltip": {"mode": "single", "sort": "none"}}), 24, 8)
    return dashboard("hopwatch-nodes", "hopwatch / Nodes × hops",
                     "Every node's error ratio per hop, side by side, so that one broken node "
                     "(its kube-proxy, its DNS path, its network) stands out.", lay)


# 5. Agent health -------------------------------------------------------------------------


def agent():
    lay = Layout()
    # No job is named: the agents are the targets that export hopwatch_build_info (the
    # ServiceMonitor's jobLabel sets the job), and a target that fails its scrapes belongs to
    # a job that exported it within the day (a recording rule of alerts/).
    agents = 'and on (instance, job) hopwatch_build_info'
    jobs = ('and on (cluster, job) group by (cluster, job) '
            '(max_over_time(cluster_job:hopwatch_build_info:present[1d]))')
    lay.row("Agents")
    lay.add(stat("Agents up", "Agents Prometheus scrapes successfully.",
                 f'count(up{{{AGENT}}} == 1 {agents}) or vector(0)'), 4, 5)
    lay.add(stat("Agents down", "Targets of the agents' job that failed their last scrape.",
                 f'count(up{{{AGENT}}} == 0 {jobs}) or vector(0)',
                 thresholds=red_from_one()), 4, 5)
    lay.add(table("Versions", "Agents per running version.",
                  [target(f'count by (version) (hopwatch_build_info{{{AGENT}}})', instant=True, table=True)],
                  transformations=[{"id": "organize", "options": {
                      "excludeByName": {"Time": True}, "renameByName": {"Value": "agents"}}}]), 6, 5)
    lay.add(bars("Targets per hop", "Targets being probed, per hop (the most any agent has).",
                 f'max by (hop) (hopwatch_targets{{{AGENT}}})', "{{hop}}", unfilled=False), 10, 5)
    lay.row("Probe scheduling")
    lay.add(timeseries("Schedule lag p99 by node", "How late probes start once a concurrency "
                       "slot is free. Above 1 s the HopwatchScheduleLagHigh alert fires: "
                       "the agent is starved or max_concurrency is too low.",
                       [target(quantile(0.99, "hopwatch_schedule_lag_seconds", AGENT, "node"), "{{node}}")],
                       "s"), 12, 8)
    lay.add(timeseries("Schedule lag p50 by node", "The typical delay.",
                       [target(quantile(0.5, "hopwatch_schedule_lag_seconds", AGENT, "node"), "{{node}}")],
                       "s"), 12, 8)
    lay.row("Kubernetes API and configuration")
    lay.add(timeseries("Watch restarts", "Watches re-established after a failure, by resource.",
                       [target(f'sum by (resource) (increase(hopwatch_kube_watch_restarts_total{{{AGENT}}}[$__rate_interval]))',
                               "{{resource}}")], "short"), 8, 8)
    lay.add(table("Agents not synced", "Agents that have not yet listed a resource completely.",
                  [target(f'hopwatch_kube_synced{{{AGENT}}} == 0', instant=True, table=True)],
                  transformations=[{"id": "organize", "options": {
                      "excludeByName": {"Time": True, "Value": True, "__name__": True}}}]), 8, 8)
    lay.add(timeseries("Config reloads", "Reloads by result; a failed one keeps the previous "
                       "configuration.",
                       [target(f'sum by (result) (increase(hopwatch_config_reloads_total{{{AGENT}}}[$__rate_interval]))',
                               "{{result}}")], "short"), 8, 8)
    lay.add(stat("Agents on a rejected config", "Agents whose last configuration reload was "
                 "rejected: they keep probing with the previous one. Their logs name the field "
                 "and line; HopwatchConfigReloadFailing pages after a minute.",
                 f'count(hopwatch_config_last_reload_successful{{{AGENT}}} == 0) or vector(0)',
                 thresholds=red_from_one()), 4, 8)
    lay.add(timeseries("Time since the config was applied", "Per agent.",
                       [target(f'time() - max by (node) (hopwatch_config_last_reload_success_timestamp_seconds{{{AGENT}}})',
                               "{{node}}")], "s"), 8, 8)
    lay.add(timeseries("Series per agent", "Samples each scrape returns: the agent's "
                       "cardinality, which grows with targets and Services.",
                       [target(f'scrape_samples_scraped{{{AGENT}}} {agents}', "{{node}}")], "short"), 12, 8)
    lay.row("Footprint")
    lay.add(timeseries("CPU", "CPU time per second of wall time, per agent. Compare with the "
                       "container's limit: throttling shows as schedule lag.",
                       [target(f'rate(process_cpu_seconds_total{{{AGENT}}}[$__rate_interval]) {agents}', "{{node}}")],
                       "percentunit"), 8, 8)
    lay.add(timeseries("Resident memory", "Per agent. Compare with the container's limit.",
                       [target(f'process_resident_memory_bytes{{{AGENT}}} {agents}', "{{node}}")], "bytes"), 8, 8)
    lay.add(timeseries("Open file descriptors", "Sockets of probes in flight, watches and "
                       "scrapes.",
                       [target(f'process_open_fds{{{AGENT}}} {agents}', "{{node}}")], "short"), 8, 8)
    return dashboard("hopwatch-agent", "hopwatch / Agents",
                     "The agents themselves: who is up, probe scheduling lag, API watches, "
                     "configuration reloads and footprint.", lay)


DASHBOARDS = {
    "hopwatch-request-path.json": request_path,
    "hopwatch-dns.json": dns,
    "hopwatch-endpoints.json": endpoints,
    "hopwatch-nodes.json": nodes,
    "hopwatch-agent.json": agent,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        sys.exit("usage: generate.py [--check]")
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"dashboards not up to date with dashboards/generate.py: {', '.join(stale)}; "
              "run `python3 dashboards/generate.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
