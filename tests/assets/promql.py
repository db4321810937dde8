"""Reading PromQL and the metrics contract, for the asset checks (tests/assets_check.rs).

- `selectors(expr)`: the metric selectors of an expression: name and label matchers.
- `Contract.load(docs)`: the metrics docs/METRICS.md promises, with their types, labels and
  the closed sets of label values it lists.
- `grafana_to_promql(expr)`: a dashboard query with Grafana's variables replaced by values
  that keep it valid PromQL.

The lexer knows just enough PromQL to find selectors in expressions that promtool has parsed
(or will parse): strings, numbers, durations, identifiers, brackets and operators.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}
# Keywords followed by a parenthesised list of label names, not expressions.
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@:])
    """,
    re.VERBOSE,
)


@dataclass
class Matcher:
    label: str
    op: str
    value: str


@dataclass
class Selector:
    name: str
    matchers: list = field(default_factory=list)


def tokens(expr: str):
    """(kind, text) pairs; raises ValueError on a character PromQL does not allow."""
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup not in ("space", "comment"):
            out.append((m.lastgroup, m.group()))
    return out


def unquote(s: str) -> str:
    if s[0] == "`":
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


def selectors(expr: str) -> list:
    """Every metric selector in `expr`, in order."""
    toks = tokens(expr)
    out, i = [], 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "op" and text == "[":
            # A range or subquery: durations only.
            while i < len(toks) and toks[i][1] != "]":
                i += 1
        elif kind == "ident" and text in LABEL_LISTS and nxt == "(":
            while i < len(toks) and toks[i][1] != ")":
                i += 1
        elif kind == "ident" and text in KEYWORDS:
            pass
        elif kind == "ident" and (nxt == "(" or text in AGGREGATIONS):
            pass  # a function, or an aggregation (its `by` list may come first)
        elif kind == "ident":
            sel = Selector(text)
            if nxt == "{":
                i, sel.matchers = matchers(toks, i + 2)
            out.append(sel)
        elif kind == "op" and text == "{":
            i, ms = matchers(toks, i + 1)
            names = [m.value for m in ms if m.label == "__name__" and m.op == "="]
            out.append(Selector(names[0] if names else "", [m for m in ms if m.label != "__name__"]))
        i += 1
    return out


def matchers(toks, i):
    """Reads `label op "value", ...}` from toks[i]; returns the index of `}` and the matchers."""
    out = []
    while i < len(toks) and toks[i][1] != "}":
        if toks[i][1] == ",":
            i += 1
            continue
        label, op, value = toks[i][1], toks[i + 1][1], toks[i + 2]
        if value[0] != "string":
            raise ValueError(f"matcher {label}{op} needs a string, found {value[1]!r}")
        out.append(Matcher(label, op, unquote(value[1])))
        i += 3
    return i, out


# Grafana's variables, replaced by values that keep the query valid PromQL. Label variables
# become `.*`, the value of "All" on every hopwatch dashboard.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "60000",
    "cluster": ".*",
    "namespace": ".*",
    "service": ".*",
    "node": ".*",
}


def grafana_to_promql(expr: str) -> str:
    """Replaces $var and ${var} (Grafana's syntax); an unknown variable raises ValueError."""

    def sub(m):
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARIABLES:
            raise ValueError(f"unknown Grafana variable ${name}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", sub, expr)


# The label_values(...) of a dashboard variable: its selector is PromQL.
LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.*),\s*)?(\w+)\)\s*$", re.S)


@dataclass
class Metric:
    name: str
    kind: str
    labels: set


@dataclass
class Contract:
    metrics: dict
    # label -> allowed values, for the closed sets the docs list.
    values: dict
    # (metric, label) -> allowed values, where the docs give a metric its own set.
    metric_values: dict

    def allowed(self, metric: str, label: str):
        """The values `label` of `metric` may take, or None when the set is open."""
        return self.metric_values.get((metric, label), self.values.get(label))

    @staticmethod
    def load(path: Path) -> "Contract":
        text = path.read_text(encoding="utf-8")
        metrics, values, metric_values, outcomes = {}, {}, {}, {}
        wants_failures = []
        for header, rows in tables(text):
            if header[:3] == ["Metric", "Type", "Labels"]:
                for row in rows:
                    name = ticked(row[0])[0]
                    metrics[name] = Metric(name, row[1].strip(), set(ticked(row[2])))
            elif header[:2] == ["Label", "Values"]:
                for row in rows:
                    # "`result` on `hopwatch_probes_total`": a set of that metric's own.
                    named = [t for t in ticked(row[0]) if t in metrics]
                    labels = [t for t in ticked(row[0]) if t not in metrics]
                    # Parentheses explain values; what they tick is not one.
                    allowed = set(ticked(re.sub(r"\([^)]*\)", "", row[1])))
                    if "failure reasons" in row[1]:
                        wants_failures.append(allowed)
                    for label in labels:
                        for metric in named:
                            metric_values[(metric, label)] = allowed
                        if not named and label in CLOSED_LABELS:
                            values[label] = allowed
            elif header[:2] == ["Value", "Meaning"]:
                names = [ticked(r[0])[0] for r in rows]
                # The failure reasons and the query outcomes (`rcode`) come from these tables;
                # others (the discarded replies' `reason`) also have a Label/Values row.
                if "NOERROR" in names:
                    outcomes["rcode"] = set(names)
                elif "timeout" in names:
                    outcomes["failures"] = set(names)
        values["rcode"] = outcomes.get("rcode", set())
        for allowed in wants_failures:
            allowed.update(outcomes.get("failures", set()))
        return Contract(metrics, values, metric_values)


# Labels whose every value docs/METRICS.md lists. `result` and `rcode` come from their own
# tables; `code`, `target`, `server`, `namespace`, `service` and `version` are open.
CLOSED_LABELS = {
    "hop", "condition", "broken_hop", "phase", "resource", "flavor", "mode", "qtype",
    "transport", "reason", "cause",
}


def tables(text: str):
    """(header cells, rows of cells) of every Markdown table."""
    block = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            if len(block) > 2:
                yield block[0], block[2:]
            block = []


def ticked(cell: str) -> list:
    return re.findall(r"`([^`]+)`", cell)
