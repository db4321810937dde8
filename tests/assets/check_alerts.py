#!/usr/bin/env python3
"""Checks the alerts beyond what promtool does (run by tests/assets_check.rs).

- Every alert has a `severity` label (critical, warning or info) and the annotations
  `summary`, `description` (naming the hop or the agent, and the likely cause) and
  `runbook_url`, whose fragment is a section of docs/RUNBOOK.md that names the alert.
- Every RUNBOOK section titled after an alert belongs to an alert that exists.
- Every alert has, in alerts/tests/*.yaml, a case where it fires (for each severity it has)
  and a case where it does not.
- deploy/prometheusrule.yaml holds exactly the groups of alerts/hopwatch.rules.yaml.
- HopwatchServiceNoReadyEndpoints pages (its critical rule: a Service annotated critical, or
  failing from the Ingress) within 2 minutes of the last endpoint leaving: the ServiceMonitor's
  scrape interval, the group's evaluation interval and the `for` add up to at most 120 s.

    check_alerts.py [--rules FILE] [--tests DIR] [--runbook FILE]

Exits 1 listing every problem, 3 when a Python module is missing.
"""

import argparse
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:
    print("python3 module `yaml` missing: pip install pyyaml", file=sys.stderr)
    sys.exit(3)

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_URL = "https://github.com/hopwatch/hopwatch/blob/main/docs/RUNBOOK.md#"
SEVERITIES = {"critical", "warning", "info"}
# What a description must name: a hop of the request path, or the agent itself.
SUBJECTS = re.compile(r"\b(DNS|load.balancer|Ingress|Service|Pod|endpoints?|agents?|"
                      r"hopwatch|certificate|TLS)\b", re.I)
EMPTY_ENDPOINTS_ALERT = "HopwatchServiceNoReadyEndpoints"
EMPTY_ENDPOINTS_BUDGET_SECONDS = 120


def seconds(duration: str) -> float:
    """A Prometheus duration ("1m", "30s", "1h30m") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def runbook_sections(path: Path) -> dict:
    """anchor -> text of each `##`/`###` section of the runbook."""
    sections, current, lines = {}, None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{2,3} (.+)$", line)
        if m:
            if current:
                sections[current] = "\n".join(lines)
            current, lines = slug(m.group(1)), []
        else:
            lines.append(line)
    if current:
        sections[current] = "\n".join(lines)
    return sections


def alerts(rules: dict):
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                yield group, rule


def check_annotations(rules, sections, problems):
    for group, rule in alerts(rules):
        name = rule["alert"]
        where = f"{name} ({rule.get('labels', {}).get('severity')})"
        severity = rule.get("labels", {}).get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{where}: severity label must be one of {sorted(SEVERITIES)}")
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not str(ann.get(key, "")).strip():
                problems.append(f"{where}: no `{key}` annotation")
        description = ann.get("description", "")
        if "Likely cause" not in description:
            problems.append(f"{where}: the description does not give the likely cause "
                            "(\"Likely cause: …\")")
        if not SUBJECTS.search(description):
            problems.append(f"{where}: the description names no hop nor the agent")
        url = ann.get("runbook_url", "")
        if not url.startswith(RUNBOOK_URL):
            problems.append(f"{where}: runbook_url must start with {RUNBOOK_URL}")
            continue
        anchor = url[len(RUNBOOK_URL):]
        if anchor not in sections:
            problems.append(f"{where}: runbook_url fragment #{anchor} is no section of "
                            "docs/RUNBOOK.md")
        elif name not in sections[anchor] and slug(name) != anchor:
            problems.append(f"{where}: docs/RUNBOOK.md#{anchor} does not mention {name}")


def check_runbook_has_no_orphans(rules, sections, problems):
    names = {slug(rule["alert"]) for _, rule in alerts(rules)}
    for anchor in sections:
        if anchor.startswith("hopwatch") and anchor not in names:
            problems.append(f"docs/RUNBOOK.md#{anchor}: a section for an alert that does not exist")


def check_tests(rules, tests_dir: Path, problems):
    firing, quiet = set(), set()
    files = sorted(tests_dir.glob("*.yaml"))
    if not files:
        problems.append(f"{tests_dir}: no rule test files")
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                if not expected:
                    quiet.add(case["alertname"])
                for alert in expected:
                    severity = alert.get("exp_labels", {}).get("severity")
                    firing.add((case["alertname"], severity))
    for _, rule in alerts(rules):
        name, severity = rule["alert"], rule.get("labels", {}).get("severity")
        if (name, severity) not in firing:
            problems.append(f"{name} ({severity}): no test case in {tests_dir.name}/ where it fires")
        if name not in quiet:
            problems.append(f"{name}: no test case in {tests_dir.name}/ where it does not fire")


def check_prometheusrule(rules, path: Path, problems):
    obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    if (obj.get("apiVersion"), obj.get("kind")) != ("monitoring.coreos.com/v1", "PrometheusRule"):
        problems.append(f"{path.name}: not a monitoring.coreos.com/v1 PrometheusRule")
    elif obj.get("spec", {}).get("groups") != rules["groups"]:
        problems.append(f"{path.name}: its groups differ from alerts/hopwatch.rules.yaml; "
                        "run `python3 alerts/prometheusrule.py`")


def check_empty_endpoints_delay(rules, servicemonitor: Path, problems):
    sm = yaml.safe_load(servicemonitor.read_text(encoding="utf-8"))
    scrape = seconds(sm["spec"]["endpoints"][0].get("interval", "1m"))
    for group, rule in alerts(rules):
        if rule["alert"] != EMPTY_ENDPOINTS_ALERT or rule.get("labels", {}).get("severity") != "critical":
            continue
        evaluation = seconds(group.get("interval", "1m"))
        wait = seconds(rule.get("for", "0s"))
        total = scrape + evaluation + wait
        if total > EMPTY_ENDPOINTS_BUDGET_SECONDS:
            problems.append(f"{EMPTY_ENDPOINTS_ALERT}: scrape {scrape:g} s + evaluation "
                            f"{evaluation:g} s + for {wait:g} s = {total:g} s, over "
                            f"{EMPTY_ENDPOINTS_BUDGET_SECONDS} s")
        return
    problems.append(f"{EMPTY_ENDPOINTS_ALERT}: no such alert with severity critical")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=Path, default=ROOT / "alerts" / "hopwatch.rules.yaml")
    ap.add_argument("--tests", type=Path, default=ROOT / "alerts" / "tests")
    ap.add_argument("--runbook", type=Path, default=ROOT / "docs" / "RUNBOOK.md")
    args = ap.parse_args()
    rules = yaml.safe_load(args.rules.read_text(encoding="utf-8"))
    sections = runbook_sections(args.runbook)
    problems = []
    check_annotations(rules, sections, problems)
    check_runbook_has_no_orphans(rules, sections, problems)
    check_tests(rules, args.tests, problems)
    check_prometheusrule(rules, ROOT / "deploy" / "prometheusrule.yaml", problems)
    check_empty_endpoints_delay(rules, ROOT / "deploy" / "servicemonitor.yaml", problems)
    for p in problems:
        print(p, file=sys.stderr)
    count = sum(1 for _ in alerts(rules))
    print(f"{count} alerting rules: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
