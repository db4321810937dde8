#!/usr/bin/env python3
"""Writes deploy/prometheusrule.yaml: alerts/hopwatch.rules.yaml wrapped in a PrometheusRule.

The rules file is the source. Its groups are copied as text, indented under `spec:`, so the
comments and the layout of every expression survive. Run it after editing the rules:

    python3 alerts/prometheusrule.py           # rewrite deploy/prometheusrule.yaml
    python3 alerts/prometheusrule.py --check   # exit 1 when the file is not up to date

Needs only the Python standard library.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "hopwatch.rules.yaml"
OUTPUT = ROOT / "deploy" / "prometheusrule.yaml"

HEADER = """\
# Generated from alerts/hopwatch.rules.yaml by alerts/prometheusrule.py: edit the rules
# file, then run `python3 alerts/prometheusrule.py`. The tests fail when the two differ.
#
# The Prometheus Operator loads this object when it matches the Prometheus's ruleSelector
# (and ruleNamespaceSelector). kube-prometheus-stack, for one, selects
# `release: <its Helm release name>` by default: add that label here with a kustomize patch.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: hopwatch
  labels:
    app.kubernetes.io/name: hopwatch
    app.kubernetes.io/component: alerting
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule text for the rules file's text: its groups, indented under `spec`."""
    lines = rules_text.splitlines()
    try:
        start = lines.index("groups:")
    except ValueError:
        sys.exit(f"{RULES}: no top-level `groups:` line")
    body = ["  " + line if line else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main() -> int:
    wanted = render(RULES.read_text(encoding="utf-8"))
    if sys.argv[1:] == ["--check"]:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != wanted:
            print(
                f"{OUTPUT.relative_to(ROOT)} is not the PrometheusRule of "
                f"{RULES.relative_to(ROOT)}: run `python3 alerts/prometheusrule.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    if sys.argv[1:]:
        sys.exit("usage: prometheusrule.py [--check]")
    OUTPUT.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
