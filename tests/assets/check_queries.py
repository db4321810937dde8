#!/usr/bin/env python3
"""Checks every PromQL expression of alerts/ and dashboards/ (run by tests/assets_check.rs).

Expressions come from the rules, the dashboards' panels and variables, and the ```promql
blocks of docs/RUNBOOK.md.

1. Syntax: each expression, Grafana variables replaced, becomes a recording rule of a
   throwaway rules file that `promtool check rules` parses with Prometheus's own parser.
2. Names: each metric an expression selects must be one the agent exports, as listed in
   docs/METRICS.md (histograms with their _bucket, _sum and _count series), a recording rule
   of alerts/, or one of Prometheus's own series (`up`, `ALERTS`, scrape_*).
3. Labels: each label matcher must name a label of its metric (or one Prometheus attaches at
   scrape: `node`, `job`, `instance`…), and a value from the closed sets the docs list
   (`hop`, `result`, `broken_hop`, `condition`…).

    check_queries.py [--rules FILE]... [--dashboards DIR] [--docs FILE] [--runbook FILE]

Defaults: alerts/hopwatch.rules.yaml, dashboards/, docs/METRICS.md, docs/RUNBOOK.md. Exits 1 listing every
problem, 2 on a usage error, 3 when promtool or a Python module is missing.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# No __pycache__ next to the sources: the checks must leave the tree as they found it.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql import LABEL_VALUES, Contract, grafana_to_promql, selectors  # noqa: E402

try:
    import yaml
except ImportError:
    print("python3 module `yaml` missing: pip install pyyaml", file=sys.stderr)
    sys.exit(3)

ROOT = Path(__file__).resolve().parents[2]

# Series Prometheus writes itself, for every target or every alert.
BUILTINS = {
    "up", "ALERTS", "ALERTS_FOR_STATE", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added", "scrape_duration_seconds",
}
# Labels Prometheus attaches at scrape time (deploy/servicemonitor.yaml: `node` from the pod's
# node; `namespace` and `service` of the agent's own Service are dropped there, as they
# would clash with hopwatch's labels) or that an aggregator adds (`cluster`).
TARGET_LABELS = {"job", "instance", "node", "pod", "container", "endpoint", "cluster"}

# Metrics the agent exports that docs/METRICS.md does not list yet. Each one must appear,
# quoted, in agent/metrics/; remove it from here once the docs have it (the check says so).
UNDOCUMENTED = set()

HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


class Problems(list):
    def add(self, where, message):
        self.append(f"{where}: {message}")


def rule_exprs(path: Path):
    """(where, expr, record name or None) of every rule in a rules file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            yield f"{path.name}: group {group['name']}: {name}", rule["expr"], rule.get("record")


def dashboard_exprs(directory: Path, problems: Problems):
    """(where, expr) of every panel target and query variable of the dashboards."""
    for path in sorted(directory.glob("*.json")):
        try:
            board = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            problems.add(path.name, f"not JSON: {e}")
            continue
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            query = var.get("query")
            query = query.get("query", "") if isinstance(query, dict) else query or ""
            m = LABEL_VALUES.match(query)
            where = f"{path.name}: variable {var.get('name')}"
            if not m:
                problems.add(where, f"not label_values(selector, label): {query!r}")
            elif m.group(1):
                yield where, m.group(1)
        for panel in walk_panels(board.get("panels", [])):
            for t in panel.get("targets", []):
                if "expr" in t:
                    yield f"{path.name}: panel {panel.get('title')!r} {t.get('refId')}", t["expr"]


def runbook_exprs(path: Path):
    """(where, expr) of every ```promql block of the runbook: one expression per line, lines
    that start with a space continuing the one before."""
    if not path.exists():
        return
    section, block, exprs = "", None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:]
        if block is None and line.strip() == "```promql":
            block = []
        elif block is not None and line.startswith("```"):
            exprs += [(f"{path.name}: {section}", e) for e in block]
            block = None
        elif block is not None and line.strip():
            if line[0].isspace() and block:
                block[-1] += "\n" + line
            else:
                block.append(line)
    yield from exprs


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def check_syntax(exprs, problems: Problems):
    """Parses every (where, expr) with promtool; on failure, each alone to name the culprit."""
    if not exprs:
        return
    if run_promtool(exprs) is None:
        return
    for where, expr in exprs:
        error = run_promtool([(where, expr)])
        if error:
            problems.add(where, f"promtool: {error}")


def run_promtool(exprs):
    """None when promtool parses every expression, else its output."""
    rules = [{"record": f"hopwatch_check:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    with tempfile.TemporaryDirectory(prefix="hopwatch-promql-") as tmp:
        path = Path(tmp) / "exprs.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
        proc = subprocess.run(["promtool", "check", "rules", str(path)],
                              capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    output = " ".join((proc.stdout + proc.stderr).split())
    parse_error = re.search(r"could not parse expression: (.*)", output)
    return parse_error.group(1) if parse_error else output


def base_metric(name: str, contract: Contract):
    """The documented metric a series name belongs to (histogram series to their base)."""
    if name in contract.metrics:
        return contract.metrics[name], ""
    for suffix in HISTOGRAM_SERIES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and contract.metrics.get(base, None):
            if contract.metrics[base].kind == "histogram":
                return contract.metrics[base], suffix
    return None, ""


def check_names(where, expr, contract: Contract, records: set, problems: Problems):
    try:
        found = selectors(expr)
    except (ValueError, IndexError) as e:
        problems.add(where, f"cannot read the expression: {e}")
        return
    for sel in found:
        metric, suffix = base_metric(sel.name, contract)
        if metric:
            allowed = metric.labels | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())
            name = metric.name
        elif sel.name in BUILTINS or sel.name in UNDOCUMENTED:
            allowed, name = TARGET_LABELS, sel.name
        elif sel.name in records:
            allowed, name = None, sel.name
        else:
            problems.add(where, f"metric `{sel.name}` is not exported by hopwatch "
                                "(not in docs/METRICS.md), nor a recording rule of alerts/, "
                                "nor a Prometheus series")
            continue
        for m in sel.matchers:
            if allowed is not None and m.label not in allowed:
                problems.add(where, f"`{sel.name}` has no label `{m.label}` "
                                    f"(it has: {', '.join(sorted(allowed))})")
                continue
            check_value(where, name, m, contract, problems)


def check_value(where, metric, m, contract: Contract, problems: Problems):
    values = contract.allowed(metric, m.label)
    if not values or m.op == "!~":
        return
    if m.op in ("=", "!="):
        if m.value not in values:
            problems.add(where, f"{m.label}=\"{m.value}\": not a value of `{m.label}` "
                                f"(docs/METRICS.md lists: {', '.join(sorted(values))})")
        return
    try:
        regex = re.compile(m.value)
    except re.error as e:
        problems.add(where, f"{m.label}=~\"{m.value}\": bad regex: {e}")
        return
    if re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", m.value):
        for v in m.value.split("|"):
            if v not in values:
                problems.add(where, f"{m.label}=~\"{m.value}\": `{v}` is not a value of "
                                    f"`{m.label}` (docs/METRICS.md lists: {', '.join(sorted(values))})")
    elif not any(regex.fullmatch(v) for v in values):
        problems.add(where, f"{m.label}=~\"{m.value}\" matches no documented value")


def check_undocumented(contract: Contract, problems: Problems):
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "agent").rglob("*.rs")
                      if "metrics" in p.parts)
    for name in sorted(UNDOCUMENTED):
        if name in contract.metrics:
            problems.add("check_queries.py", f"`{name}` is in docs/METRICS.md now: "
                                             "remove it from UNDOCUMENTED")
        elif f'"{name}"' not in sources:
            problems.add("check_queries.py", f"`{name}` is neither documented nor named in "
                                             "agent/metrics/")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=Path, action="append")
    ap.add_argument("--dashboards", type=Path, default=ROOT / "dashboards")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "METRICS.md")
    ap.add_argument("--runbook", type=Path, default=ROOT / "docs" / "RUNBOOK.md")
    args = ap.parse_args()
    rules_files = args.rules or [ROOT / "alerts" / "hopwatch.rules.yaml"]
    if not shutil.which("promtool"):
        print("promtool not found: apt-get install prometheus (Debian's package ships it)",
              file=sys.stderr)
        return 3

    problems = Problems()
    contract = Contract.load(args.docs)
    if len(contract.metrics) < 10:
        problems.add(str(args.docs), f"only {len(contract.metrics)} metrics found in its tables")
    rules = [r for path in rules_files for r in rule_exprs(path)]
    records = {record for _, _, record in rules if record}
    exprs = [(where, expr) for where, expr, _ in rules]
    for where, expr in dashboard_exprs(args.dashboards, problems):
        try:
            exprs.append((where, grafana_to_promql(expr)))
        except ValueError as e:
            problems.add(where, str(e))
    exprs += list(runbook_exprs(args.runbook))
    check_syntax(exprs, problems)
    for where, expr in exprs:
        check_names(where, expr, contract, records, problems)
    check_undocumented(contract, problems)

    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(exprs)} expressions from {len(rules_files)} rules file(s), "
          f"{args.dashboards} and {args.runbook.name}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
