#!/usr/bin/env python3
"""Writes the Grafana dashboards in this directory from the definitions below, with Grafana's
foundation SDK (`grafana-foundation-sdk` on PyPI): every panel, query, variable and link is
one of the SDK's schema types. A misspelt option or enum value fails when the script runs;
an option given the wrong kind of value fails `mypy --strict dashboards/generate.py`, which
tests/assets_check.rs runs. Not in Grafana, either way.

The JSON files are generated: edit this script, then run it. The tests fail when a JSON file
differs from what the script writes, or when a dashboard has a variable none of its panel
queries uses.

    python3 dashboards/generate.py                # rewrite dashboards/*.json
    python3 dashboards/generate.py --check        # exit 1 when a file is not up to date
    python3 dashboards/generate.py --lint FILE... # exit 1 when a variable of FILE is unused

Every dashboard has the variables `datasource` (a Prometheus data source), `cluster` and
`node`, and `namespace` and `service` where its panels can filter by them. `node` is the
label deploy/servicemonitor.yaml attaches to every agent's series; `cluster` is optional (it
matches everything when the series have none). Needs Python 3.11 and the SDK: `pip install
'grafana-foundation-sdk==1769699998!10.1.0'` (tests/run installs it).
"""

import json
import re
import sys
import typing
from pathlib import Path

try:
    from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, statushistory
    from grafana_foundation_sdk.builders import common
    from grafana_foundation_sdk.builders import table as table_panel
    from grafana_foundation_sdk.builders import timeseries as timeseries_panel
    from grafana_foundation_sdk.cog import builder as cogbuilder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.common import (
        BarGaugeDisplayMode, BigValueColorMode, BigValueGraphMode, BigValueTextMode,
        FieldTextAlignment, GraphTresholdsStyleMode, LegendDisplayMode, LegendPlacement, SortOrder, TableAutoCellOptions,
        TableCellHeight, TableColoredBackgroundCellOptions, TableColorTextCellOptions,
        TableFieldOptions, TooltipDisplayMode, VisibilityMode, VizOrientation,
    )
    from grafana_foundation_sdk.models.dashboard import (
        AnnotationContainer, Dashboard as DashboardModel, DashboardCursorSync,
        DashboardFieldConfigSourceOverrides, DashboardLinkType, DataSourceRef,
        DataTransformerConfig, DynamicConfigValue, FieldColorModeId, GridPos, MatcherConfig,
        Threshold, ThresholdsMode, ValueMap, ValueMappingResult, VariableHide, VariableOption,
        VariableModel, VariableRefresh, VariableSort,
    )
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat
except ImportError as e:
    print(f"dashboards/generate.py needs Grafana's foundation SDK ({e}): "
          "pip install 'grafana-foundation-sdk==1769699998!10.1.0'", file=sys.stderr)
    sys.exit(3)

HERE = Path(__file__).resolve().parent
# A panel of any kind, and a row.
Panel = typing.Union[bargauge.Panel, stat.Panel, statushistory.Panel, table_panel.Panel,
                     timeseries_panel.Panel, dashboard.Row]
P = typing.TypeVar("P", bargauge.Panel, stat.Panel, statushistory.Panel, table_panel.Panel,
                   timeseries_panel.Panel)
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The schema the panels are written for (Grafana 10.4 and later read it as is).
SCHEMA_VERSION = 39

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
    `namespace/service:port`, of the edge hops `namespace/ingress/host[/path]` (and
    `namespace/httproute:route/host[/path]` for HTTPRoutes); DNS names belong to no
    namespace."""
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


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           table: bool = False) -> prometheus.Dataquery:
    q = (prometheus.Dataquery().datasource(DS).ref_id(ref).expr(expr)
         .legend_format(legend or "__auto"))
    if instant:
        q.instant()
    if table:
        q.format(PromQueryFormat.TABLE)
    return q


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows, and
    numbers them. Rows are flat (not collapsed): the panels after a row belong to it."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self.x + w > 24:
            self.newline()
        panel.id(len(self.panels) + 1).grid_pos(GridPos(x=self.x, y=self.y, w=w, h=h))
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def newline(self) -> None:
        self.y += self.row_h
        self.x = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self.newline()
        self.add(dashboard.Row(title).collapsed(False), 24, 1)
        self.newline()


def describe(builder: P, title: str, description: str, targets: list[prometheus.Dataquery],
             unit: str = "") -> P:
    """What every panel has: title, description, the chosen data source, its queries, unit.
    (Every panel builder has these methods, but the SDK gives them no common type.)"""
    b: typing.Any = builder
    b.title(title).description(description).datasource(DS).targets(targets)
    if unit:
        b.unit(unit)
    return builder


def legend(display: LegendDisplayMode, placement: LegendPlacement,
           calcs: typing.Optional[list[str]] = None, show: bool = True) -> common.VizLegendOptions:
    options = common.VizLegendOptions().display_mode(display).placement(placement).show_legend(show)
    if calcs:
        options.calcs(calcs)
    return options


def tooltip(mode: TooltipDisplayMode, sort: SortOrder) -> common.VizTooltipOptions:
    return common.VizTooltipOptions().mode(mode).sort(sort)


def timeseries(title: str, description: str, targets: list[prometheus.Dataquery], unit: str = "",
               max_value: typing.Optional[float] = None,
               bottom_legend: bool = False) -> timeseries_panel.Panel:
    """A time series panel; its legend a table on the right with mean and max, or a list at
    the bottom for the narrow panels."""
    p = describe(timeseries_panel.Panel(), title, description, targets, unit)
    if bottom_legend:
        p.legend(legend(LegendDisplayMode.LIST, LegendPlacement.BOTTOM))
    else:
        p.legend(legend(LegendDisplayMode.TABLE, LegendPlacement.RIGHT, ["mean", "max"]))
    p.tooltip(tooltip(TooltipDisplayMode.MULTI, SortOrder.DESCENDING))
    if max_value is not None:
        p.max(max_value)
    return p


def steps(*pairs: tuple[str, typing.Optional[float]]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds from (color, value) pairs; the first value is None (the base)."""
    return (dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(color=color, value=value) for color, value in pairs]))


def ratio_thresholds(good: float, warn: float) -> dashboard.ThresholdsConfig:
    return steps(("red", None), ("orange", warn), ("green", good))


def red_from_one() -> dashboard.ThresholdsConfig:
    """Green at 0, red from 1: for counts of things that should not exist."""
    return steps(("green", None), ("red", 1))


def error_thresholds() -> dashboard.ThresholdsConfig:
    return steps(("green", None), ("orange", 0.001), ("red", 0.05))


def by_thresholds() -> dashboard.FieldColor:
    return dashboard.FieldColor().mode(FieldColorModeId.THRESHOLDS)


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def bars(title: str, description: str, expr: str, legend_format: str) -> bargauge.Panel:
    """A horizontal bar gauge of the instant values of `expr`, one bar per `legend_format`."""
    return (describe(bargauge.Panel(), title, description,
                     [target(expr, legend_format, instant=True)])
            .display_mode(BarGaugeDisplayMode.BASIC).orientation(VizOrientation.HORIZONTAL)
            .reduce_options(last_value()).show_unfilled(True))


def stat_panel(title: str, description: str, expr: str, unit: str = "",
               thresholds: typing.Optional[dashboard.ThresholdsConfig] = None,
               decimals: typing.Optional[float] = None) -> stat.Panel:
    p = (describe(stat.Panel(), title, description, [target(expr, instant=True)], unit)
         .reduce_options(last_value()).color_mode(BigValueColorMode.BACKGROUND)
         .graph_mode(BigValueGraphMode.NONE).text_mode(BigValueTextMode.VALUE))
    if thresholds:
        p.thresholds(thresholds).color_scheme(by_thresholds())
    if decimals is not None:
        p.decimals(decimals)
    return p


def table(title: str, description: str, targets: list[prometheus.Dataquery],
          transformations: typing.Sequence[DataTransformerConfig] = (),
          overrides: typing.Sequence[DashboardFieldConfigSourceOverrides] = (),
          cells: typing.Optional[TableFieldOptions] = None) -> table_panel.Panel:
    """A table; `cells` sets how every cell shows (Grafana's table field options)."""
    p = (describe(table_panel.Panel(), title, description, targets)
         .show_header(True).cell_height(TableCellHeight.SM)
         .footer(common.TableFooterOptions().show(False).reducer(["sum"]))
         .transformations(list(transformations)))
    for o in overrides:
        p.with_override(o.matcher, o.properties)
    if cells is not None:
        p.build().field_config.defaults.custom = cells
    return p


def transform(kind: str, options: dict[str, object]) -> DataTransformerConfig:
    return DataTransformerConfig(id_val=kind, options=options)


def merge() -> DataTransformerConfig:
    """Grafana's "merge" transformation: the rows of several table queries joined on their
    labels."""
    return transform("merge", {})


def matrix(columns: str, rows: str, empty: str) -> DataTransformerConfig:
    """Grafana's "grouping to matrix": one row per value of `rows`, one column per value of
    `columns`, the query's value in the cells (`empty` where there is none)."""
    return transform("groupingToMatrix", {"columnField": columns, "rowField": rows,
                                          "valueField": "Value", "emptyValue": empty})


def organize(exclude: typing.Sequence[str] = (), index: typing.Optional[dict[str, int]] = None,
             rename: typing.Optional[dict[str, str]] = None) -> DataTransformerConfig:
    """Grafana's "organize fields" transformation: hide, reorder and rename columns."""
    options: dict[str, object] = {}
    if exclude:
        options["excludeByName"] = {name: True for name in exclude}
    if index:
        options["indexByName"] = index
    if rename:
        options["renameByName"] = rename
    return transform("organize", options)


def override(name: str, *properties: tuple[str, object]) -> DashboardFieldConfigSourceOverrides:
    """The properties of one column, by its name: (id, value) pairs."""
    return dashboard.DashboardFieldConfigSourceOverrides().matcher(
        MatcherConfig(id_val="byName", options=name)).properties(
        [DynamicConfigValue(id_val=i, value=v) for i, v in properties]).build()


# Labels a scrape adds to every series, left out of the tables of label sets.
SCRAPE_LABELS = ("__name__", "job", "instance", "pod", "container", "endpoint")


def labels_table(title: str, description: str, expr: str,
                 columns: typing.Optional[list[str]] = None,
                 rename: typing.Optional[dict[str, str]] = None) -> table_panel.Panel:
    """A table of the label sets an instant query returns, without time or value: which
    Services, policies or nodes are in a state, not how much. With `columns`, in that order,
    without the scrape's own labels, and with the labels in `rename` renamed."""
    exclude = ["Time", "Value"] + (list(SCRAPE_LABELS) if columns else [])
    index = {label: i for i, label in enumerate(columns)} if columns else None
    return table(title, description, [target(expr, instant=True, table=True)],
                 [organize(exclude, index, rename)])


# Every variable a dashboard may have, in the order they are shown. `datasource` picks the
# Prometheus; the others are label values, multi-valued with "All" matching everything.
LABEL_VARIABLES = {
    "cluster": ("Cluster", "label_values(hopwatch_build_info, cluster)"),
    "namespace": ("Namespace",
                  'label_values(hopwatch_service_endpoints{cluster=~"$cluster"}, namespace)'),
    "service": ("Service",
                'label_values(hopwatch_service_endpoints{cluster=~"$cluster", namespace=~"$namespace"}, service)'),
    "node": ("Node", 'label_values(hopwatch_build_info{cluster=~"$cluster"}, node)'),
}


def variables(names: list[str]) -> list[cogbuilder.Builder[VariableModel]]:
    """The `datasource` variable, then the label variables in `names`."""
    def query(name: str) -> dashboard.QueryVariable:
        label, expr = LABEL_VARIABLES[name]
        return (dashboard.QueryVariable(name).label(label).datasource(DS)
                .query({"query": expr, "refId": f"{name}-variable", "qryType": 1})
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
                .multi(True).include_all(True).all_value(".*")
                .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
                .options([]).hide(VariableHide.DONT_HIDE).regex(""))

    source = (dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
              .hide(VariableHide.DONT_HIDE).multi(False)
              .include_all(False).regex(""))
    return [source] + [query(name) for name in LABEL_VARIABLES if name in names]


def make_dashboard(uid: str, title: str, description: str, layout: Layout,
                   variable_names: list[str], refresh: str = "30s") -> DashboardModel:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags(["hopwatch"])
             .editable().tooltip(DashboardCursorSync.CROSSHAIR).version(1)
             .time("now-6h", "now").timezone("")
             .refresh(refresh).fiscal_year_start_month(0).live_now(False).week_start("")
             .link(dashboard.DashboardLink("hopwatch").type(DashboardLinkType.DASHBOARDS)
                   .tags(["hopwatch"]).as_dropdown(True).include_vars(True).keep_time(True)
                   .icon("external link").target_blank(False).tooltip("").url(""))
             .variables(variables(variable_names)))
    for p in layout.panels:
        if isinstance(p, dashboard.Row):
            board.with_row(p)
        else:
            board.with_panel(p)
    built = board.build()
    # The SDK writes its own schema version (36); the panels are written as 39 reads them.
    built.schema_version = SCHEMA_VERSION
    # No annotation of our own: Grafana adds its built-in "Annotations & Alerts" to a
    # dashboard that has none (the SDK's AnnotationQuery cannot mark one as built in).
    built.annotations = AnnotationContainer(list_val=[])
    return built


# 1. The request path ---------------------------------------------------------------------


def request_path() -> DashboardModel:
    lay = Layout()
    lay.row("Success ratio, in request order")
    widths = [5, 5, 5, 5, 4]
    for (hop, name), w in zip(HOPS, widths):
        good, warn = (0.995, 0.99) if hop in ("loadbalancer", "ingress") else (0.999, 0.99)
        lay.add(stat_panel(f"{name}", f"Share of {name} hop probes that succeeded, over the time "
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
                           "s", bottom_legend=True), w, 7)
    lay.row("Verdicts: the first broken hop of each Service, from each node")
    lay.add(stat_panel("Services with a broken hop", "Services whose verdict is not `none` from at "
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
                         {"broken_hop": "first broken hop"})
            .data_links([to_endpoints("Endpoints of ${__data.fields.namespace}/"
                                      "${__data.fields.service}")]), 14, 8)
    canary(lay)
    lay.row("Over time")
    lay.add(timeseries("Success ratio by hop", "Per hop, all selected targets and nodes.",
                       [target(success_ratio(f'{AGENT}', "hop"), "{{hop}}")], "percentunit",
                       max_value=1), 12, 8)
    lay.add(timeseries("Failures by hop and reason", "Failed probes per second, by the closed "
                       "set of failure reasons (docs/METRICS.md); connects the NetworkPolicies "
                       "deny to the agent (policy_denied) and load-balancer hops with no "
                       "load balancer to judge (unknown) are not failures.",
                       [target(f'sum by (hop, result) (rate(hopwatch_probes_total{{{AGENT}, result!~"success|policy_denied|unknown"}}[$__rate_interval]))',
                               "{{hop}}: {{result}}")], "ops"), 12, 8)
    slo(lay)
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
                  [merge(), organize(["Time"], rename={"Value #A": "expires in",
                                                      "Value #B": "verified"})],
                  [override("expires in", ("unit", "s"),
                            ("custom.cellOptions", TableColoredBackgroundCellOptions()),
                            ("thresholds", steps(("red", None), ("orange", 259200),
                                                 ("green", 1209600)).build())),
                   override("verified",
                            ("mappings", [ValueMap(options={
                                "0": ValueMappingResult(text="no", color="red"),
                                "1": ValueMappingResult(text="yes", color="green")})]),
                            ("custom.cellOptions", TableColorTextCellOptions()))]),
            8, 8)
    return make_dashboard("hopwatch-request-path", "hopwatch / Request path",
                          "Each hop of the request path (DNS, load balancer, Ingress, Service, "
                          "Pod) as probed from every node, each Service's verdict (its first "
                          "broken hop), and each hop's SLO and error budget.",
                          lay, ["cluster", "namespace", "service", "node"])


def to_endpoints(title: str) -> dashboard.DashboardLink:
    """A data link from a table row to the Endpoints dashboard, for the row's Service: the
    data source, the clusters and the time range carried over, `namespace` and `service`
    taken from the row. `node` stays "All": one agent exports a Service's endpoint series,
    from whichever node it runs on, not the node whose path broke."""
    url = ("/d/hopwatch-endpoints/hopwatch-endpoints?${datasource:queryparam}"
           "&${cluster:queryparam}&var-namespace=${__data.fields.namespace}"
           "&var-service=${__data.fields.service}&${__url_time_range}")
    return dashboard.DashboardLink(title).url(url).target_blank(False)


# The SLO recording rules of alerts/hopwatch.rules.yaml: per cluster and hop, the objective
# and the probes' error ratio over windows up to 3 days; 30 days from their 5-minute rates.
OBJECTIVE = "max by (hop) (hopwatch:slo_objective:ratio)"
BUDGET = f"(1 - {OBJECTIVE})"


def error_ratio_30d(matchers: str) -> str:
    return (f"sum by (hop) (sum_over_time(cluster_hop:hopwatch_probe_failures:rate5m{{{matchers}}}[30d]))\n"
            f"/ sum by (hop) (sum_over_time(cluster_hop:hopwatch_probes:rate5m{{{matchers}}}[30d]))")


def slo(lay: Layout) -> None:
    """The SLO row: each hop's objective, its success and error budget over 30 days, and how
    fast the budget burns, from the recording rules the burn-rate alerts use."""
    lay.row("SLO and error budget, per hop (the recording rules of alerts/)")
    c = 'cluster=~"$cluster"'
    errors = error_ratio_30d(c)
    lay.add(table("Error budget, last 30 days", "Per hop, over every target and node of the "
                  "selected clusters (pooled): the objective (the share of probes that must "
                  "succeed over 30 days), the share that did, and the error budget left: 1 - "
                  "failures / (1 - objective). Below 0 the budget is spent. Connects the "
                  "NetworkPolicies deny and Services without a ready endpoint burn none "
                  "(docs/METRICS.md).",
                  [target(OBJECTIVE, ref="A", instant=True, table=True),
                   target(f"1 - (\n{errors}\n)", ref="B", instant=True, table=True),
                   target(f"1 - (\n{errors}\n) / on (hop) {BUDGET}", ref="C", instant=True,
                          table=True)],
                  [merge(), organize(["Time"], {"hop": 0, "Value #A": 1, "Value #B": 2,
                                                "Value #C": 3},
                                     {"Value #A": "objective", "Value #B": "success, 30 d",
                                      "Value #C": "error budget left"})],
                  [override("error budget left",
                            ("custom.cellOptions", TableColoredBackgroundCellOptions()),
                            ("thresholds", steps(("red", None), ("orange", 0),
                                                 ("green", 0.25)).build()))])
            .unit("percentunit").decimals(3), 8, 8)
    lay.add(timeseries("Success ratio by hop against its objective", "Each hop's share of "
                       "successful probes over the last hour (the recording rule's 1 h "
                       "window), and its objective as a dashed line of the same name.",
                       [target(f"1 - max by (cluster, hop) (cluster_hop:hopwatch_probes:error_ratio_rate1h{{{c}}})",
                               "{{hop}}"),
                        target(OBJECTIVE, "{{hop}} objective", "B")], "percentunit",
                       max_value=1)
            .override_by_regexp(".* objective", [DynamicConfigValue(
                id_val="custom.lineStyle", value=common.LineStyle().fill("dash")
                .dash([10, 10]).build())]), 8, 8)
    lay.add(timeseries("Error budget burn rate", "How many times faster than the 30-day "
                       "pace each hop spends its budget: its error ratio divided by 1 - "
                       "objective, over the 1 h and 6 h windows of the burn-rate alerts. At 1 "
                       "the budget lasts 30 days; the page fires at 14.4 (1 h, with 5 m) or 6 "
                       "(6 h, with 30 m), the ticket at 3 (1 d) or 1 (3 d).",
                       [target(f"max by (cluster, hop) (cluster_hop:hopwatch_probes:error_ratio_rate1h{{{c}}})\n"
                               f"/ on (hop) group_left () {BUDGET}", "{{hop}} 1 h"),
                        target(f"max by (cluster, hop) (cluster_hop:hopwatch_probes:error_ratio_rate6h{{{c}}})\n"
                               f"/ on (hop) group_left () {BUDGET}", "{{hop}} 6 h", "B")],
                       "short")
            .thresholds(steps(("green", None), ("orange", 6), ("red", 14.4)))
            .thresholds_style(common.GraphThresholdsStyleConfig()
                              .mode(GraphTresholdsStyleMode.DASHED)), 8, 8)


def canary(lay: Layout) -> None:
    """The canary row: its path per node, and the broken Services by cause."""
    lay.row("Canary: infrastructure or application")
    broken = f'{AGENT}, broken_hop!~"none|unknown"'
    lay.add(stat_panel("Nodes with a broken canary", "Nodes from which the canary Service's path "
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


def dns() -> DashboardModel:
    lay = Layout()
    # The namespace of the Service a lookup's name was discovered from; "All" keeps the
    # configured names, which have none.
    d = f'{AGENT}, namespace=~"$namespace"'
    lay.row("Lookups")
    lay.add(timeseries("Lookups by result", "Lookups of the names as written, per second.",
                       [target(f'sum by (result) (rate(hopwatch_dns_lookups_total{{{d}}}[$__rate_interval]))',
                               "{{result}}")], "ops"), 8, 8)
    lay.add(timeseries("Lookup success ratio by target", "Per target and server.",
                       [target(success_ratio(d, "target, server", "hopwatch_dns_lookups_total"),
                               "{{target}} via {{server}}")], "percentunit",
                       max_value=1), 16, 8)
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
                       max_value=1), 12, 8)
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
    return make_dashboard("hopwatch-dns", "hopwatch / DNS",
                          "Lookups as a pod's stub resolver makes them: results, the cost of "
                          "the search list (queries per lookup, NXDOMAIN, amplification) and "
                          "each server's latency.", lay, ["cluster", "namespace", "node"])


# 3. Endpoints ----------------------------------------------------------------------------


def endpoints() -> DashboardModel:
    lay = Layout()
    s = SERVICE
    lay.row("Services")
    lay.add(stat_panel("Services without a ready endpoint", "Services whose every connection fails.",
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
                  [merge(), organize(["Time"], rename={"Value #A": "ready", "Value #B": "serving",
                                                       "Value #C": "terminating",
                                                       "Value #D": "not ready"})],
                  [override("ready", ("custom.cellOptions", TableColoredBackgroundCellOptions()),
                            ("thresholds", steps(("red", None), ("green", 1)).build()))]), 12, 8)
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
    lay.add(stat_panel("NetworkPolicies not enforced", "Policies that deny the agents a target the "
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
    return make_dashboard("hopwatch-endpoints", "hopwatch / Endpoints",
                          "EndpointSlice readiness per Service as every agent sees it: ready, "
                          "serving and terminating endpoints, empty Services, readiness "
                          "flapping, Ready endpoints that do not answer, and NetworkPolicies "
                          "that deny the agents or are not enforced.",
                          lay, ["cluster", "namespace", "service", "node"])


# 4. Node x hop matrix --------------------------------------------------------------------


def nodes() -> DashboardModel:
    lay = Layout()
    lay.row("Error ratio: nodes in rows, hops in columns")
    order = {name: i + 1 for i, (_, name) in enumerate(HOPS)}
    rename = {hop: name for hop, name in HOPS}
    node_hop_errors = error_ratio(AGENT, "node, hop")
    lay.add(table("Node × hop error ratio", "Share of each node's probes of each hop that "
                  "failed. One broken node stands out as a red row; a red column is a hop "
                  "broken everywhere.",
                  [target(node_hop_errors, instant=True, table=True)],
                  [matrix("hop", "node", "null"),
                   organize(index={"node\\hop": 0, **order},
                            rename={"node\\hop": "node", **rename})],
                  [override("node", ("custom.cellOptions", TableAutoCellOptions()))],
                  cells=TableFieldOptions(cell_options=TableColoredBackgroundCellOptions(),
                                          align=FieldTextAlignment.CENTER))
            .unit("percentunit").decimals(2).thresholds(error_thresholds())
            .color_scheme(by_thresholds()), 14, 12)
    lay.add(table("Node × verdict", "How many Services have each verdict from each node. A "
                  "node with many `service` verdicts that other nodes do not share has a "
                  "broken kube-proxy.",
                  [target(f'count by (node, broken_hop) (hopwatch_path_status{{{SERVICE}}} == 1)',
                          instant=True, table=True)],
                  [matrix("broken_hop", "node", "zero"),
                   organize(index={"node\\broken_hop": 0, "none": 1, "dns": 2,
                                   "loadbalancer": 3, "ingress": 4, "endpoints": 5,
                                   "service": 6, "pod": 7},
                            rename={"node\\broken_hop": "node"})],
                  cells=TableFieldOptions(align=FieldTextAlignment.CENTER)), 10, 12)
    lay.row("Over time")
    for hop, name in [("service", "Service"), ("pod", "Pod"), ("dns", "DNS")]:
        lay.add(describe(statushistory.Panel(), f"{name} hop error ratio by node",
                         f"Each row is a node; color is the share of its {name} hop probes "
                         "that failed.",
                         [target(error_ratio(f'{AGENT}, hop="{hop}"', "node"), "{{node}}")],
                         "percentunit")
                .thresholds(error_thresholds()).color_scheme(by_thresholds())
                .show_value(VisibilityMode.NEVER).row_height(0.9)
                .legend(legend(LegendDisplayMode.LIST, LegendPlacement.BOTTOM, show=False))
                .tooltip(tooltip(TooltipDisplayMode.SINGLE, SortOrder.NONE)), 24, 8)
    return make_dashboard("hopwatch-nodes", "hopwatch / Nodes × hops",
                          "Every node's error ratio per hop, side by side, so that one broken "
                          "node (its kube-proxy, its DNS path, its network) stands out.",
                          lay, ["cluster", "namespace", "service", "node"])


# 5. Agent health -------------------------------------------------------------------------


def agent() -> DashboardModel:
    lay = Layout()
    # No job is named: the agents are the targets that export hopwatch_build_info (the
    # ServiceMonitor's jobLabel sets the job), and a target that fails its scrapes belongs to
    # a job that exported it within the day (a recording rule of alerts/).
    agents = 'and on (instance, job) hopwatch_build_info'
    jobs = ('and on (cluster, job) group by (cluster, job) '
            '(max_over_time(cluster_job:hopwatch_build_info:present[1d]))')
    lay.row("Agents")
    lay.add(stat_panel("Agents up", "Agents Prometheus scrapes successfully.",
                 f'count(up{{{AGENT}}} == 1 {agents}) or vector(0)'), 4, 5)
    lay.add(stat_panel("Agents down", "Targets of the agents' job that failed their last scrape.",
                 f'count(up{{{AGENT}}} == 0 {jobs}) or vector(0)',
                 thresholds=red_from_one()), 4, 5)
    lay.add(table("Versions", "Agents per running version.",
                  [target(f'count by (version) (hopwatch_build_info{{{AGENT}}})', instant=True, table=True)],
                  [organize(["Time"], rename={"Value": "agents"})]), 6, 5)
    lay.add(bars("Targets per hop", "Targets being probed, per hop (the most any agent has).",
                 f'max by (hop) (hopwatch_targets{{{AGENT}}})', "{{hop}}"), 10, 5)
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
                  [organize(["Time", "Value", "__name__"])]), 8, 8)
    lay.add(timeseries("Config reloads", "Reloads by result; a failed one keeps the previous "
                       "configuration.",
                       [target(f'sum by (result) (increase(hopwatch_config_reloads_total{{{AGENT}}}[$__rate_interval]))',
                               "{{result}}")], "short"), 8, 8)
    lay.add(stat_panel("Agents on a rejected config", "Agents whose last configuration reload was "
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
    return make_dashboard("hopwatch-agent", "hopwatch / Agents",
                          "The agents themselves: who is up, probe scheduling lag, API "
                          "watches, configuration reloads and footprint.",
                          lay, ["cluster", "node"])


DASHBOARDS = {
    "hopwatch-request-path.json": request_path,
    "hopwatch-dns.json": dns,
    "hopwatch-endpoints.json": endpoints,
    "hopwatch-nodes.json": nodes,
    "hopwatch-agent.json": agent,
}


def walk_panels(panels: list[typing.Any]) -> typing.Iterator[typing.Any]:
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels") or [])


def unused_variables(board: dict[str, typing.Any]) -> list[str]:
    """The variables of a dashboard (in its JSON form) that none of its panel queries names,
    as `$name`, `${name}` or `${name:format}`; `datasource` counts as used by a panel whose
    data source is `${datasource}`. A variable used only by other variables' queries, or
    by links, is unused: it filters nothing."""
    panels = list(walk_panels(board.get("panels") or []))
    used: set[str] = set()
    for p in panels:
        texts = [t.get("expr", "") for t in p.get("targets") or []]
        texts.append(json.dumps(p.get("datasource") or {}))
        texts += [json.dumps(t.get("datasource") or {}) for t in p.get("targets") or []]
        for text in texts:
            used.update(m.group(1) or m.group(2)
                        for m in re.finditer(r"\$\{(\w+)(?::[\w:]+)?\}|\$(\w+)", text))
    names = [v.get("name") for v in (board.get("templating") or {}).get("list") or []]
    return [name for name in names if name not in used]


def render(build: typing.Callable[[], DashboardModel]) -> str:
    return json.dumps(build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def lint(paths: list[str]) -> list[str]:
    """Problems of the dashboards' JSON files: variables no panel query uses."""
    problems = []
    for path in paths:
        try:
            board = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{path}: cannot read it as JSON: {e}")
            continue
        for name in unused_variables(board):
            problems.append(f"{Path(path).name}: variable `{name}` is used by no panel query "
                            "(remove it, or filter the panels by it)")
    return problems


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--lint"] and len(args) > 1:
        problems = lint(args[1:])
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    check = args == ["--check"]
    if args and not check:
        print("usage: generate.py [--check | --lint FILE...]", file=sys.stderr)
        return 2
    texts = {name: render(build) for name, build in DASHBOARDS.items()}
    problems = [f"{name}: variable `{v}` is used by no panel query (remove it, or filter the "
                "panels by it)" for name, text in texts.items()
                for v in unused_variables(json.loads(text))]
    stale = [name for name, text in texts.items()
             if not (HERE / name).exists() or (HERE / name).read_text(encoding="utf-8") != text]
    if not check and not problems:
        for name in stale:
            (HERE / name).write_text(texts[name], encoding="utf-8")
        stale = []
    for p in problems:
        print(p, file=sys.stderr)
    if stale:
        print(f"dashboards not up to date with dashboards/generate.py: {', '.join(stale)}; "
              "run `python3 dashboards/generate.py`", file=sys.stderr)
    return 1 if stale or problems else 0


if __name__ == "__main__":
    sys.exit(main())
