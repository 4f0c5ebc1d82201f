"""The shipped alert rules and Grafana dashboard: valid PromQL over metrics the operator exports.

* `promtool check rules` and `promtool test rules` (tests/promtool/) on manifests/monitoring/
  launchgate.rules.yaml; promtool comes from Debian's prometheus package (`make testenv`).
* Every PromQL expression of grafana-dashboard.json parses (promtool checks it as a recording
  rule, with Grafana's variables given values) and names only metrics the operator exports,
  read from a real scrape of adapters/metrics.py's registry.
* The copies stay the same: the chart's files/, and the PrometheusRule's groups.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from launchgate.adapters.metrics import BlockerPoint, OperatorMetrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
RULES = MONITORING / "launchgate.rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
CHART_FILES = REPO / "charts" / "launchgate" / "files"
RULE_TESTS = REPO / "tests" / "promtool" / "launchgate.rules.test.yaml"
# What Grafana substitutes before sending a query: its interval macros, and the dashboard's
# variables (all used with =~, so a regex).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h", "$namespace": ".*",
                     "$rollout": ".*"}


@pytest.fixture(scope="module")
def promtool() -> str:
    """A missing promtool fails these tests (never skips them), so no machine reports a green run
    without having checked the rules."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: run `make testenv` (it installs Debian's prometheus package)",
                    pytrace=False)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_the_alert_rules_pass_promtool_check(promtool: str) -> None:
    proc = run(promtool, "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    proc = run(promtool, "test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert alerts == tested, f"alerts without a promtool test: {alerts - tested}"


def exported_names() -> set[str]:
    """Every sample name the operator's /metrics can show: every family, with a sample of each."""
    m = OperatorMetrics()
    m.observe_decision("ns", "r", "promote")
    m.observe_status("ns", "r", "Canary1", 1, 5, "AwaitingApproval", "r2", 3, ("Canary1", 1.0),
                     [BlockerPoint("g", "b", "gte", 1.0, 0.99, True)])
    m.observe_approval_wait("ns", "r", "Canary1", 10)
    m.observe_shared_query(0.1)
    text = m.exposition().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def dashboard_queries(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) of every PromQL expression: panel targets, annotations and the variables'
    label_values() selectors."""
    out = [(f"panel {p['title']!r} {t['refId']}", t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    out += [(f"annotation {a['name']!r}", a["expr"]) for a in d["annotations"]["list"] if "expr" in a]
    for v in d["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.*), *\w+\)", v.get("definition", ""))
        if m:
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def grafana_substituted(expr: str) -> str:
    for k in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARIABLES[k])
    return expr


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 20
    leftover = [(w, e) for w, e in queries if "$" in grafana_substituted(e)]
    assert not leftover, f"Grafana variables this test does not know: {leftover}"
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": grafana_substituted(e)} for i, (_, e) in enumerate(queries)]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    proc = run(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\n".join(f"{i}: {w}" for i, (w, _) in enumerate(queries))


# A selector with matchers: a metric name right before `{`.
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def test_the_dashboard_and_the_rules_use_only_metrics_the_operator_exports() -> None:
    exported = exported_names()
    assert "launchgate_blocker_value" in exported and "launchgate_pass_start_delay_seconds_bucket" in exported
    exprs = [e for _, e in dashboard_queries(json.loads(DASHBOARD.read_text()))]
    exprs += [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    for expr in exprs:
        names = set(re.findall(r"\blaunchgate_[a-zA-Z0-9_]+", expr))
        assert names, f"no launchgate_ metric in {expr!r}"
        assert names <= exported, f"{expr!r} uses {names - exported}, which the operator does not export"
        others = {n for n in _SELECTOR.findall(expr) if not n.startswith("launchgate_")}
        assert not others, f"{expr!r} selects {others}: not the operator's"


def test_the_copies_are_the_same() -> None:
    for f in (RULES, DASHBOARD):
        assert (CHART_FILES / f.name).read_bytes() == f.read_bytes(), \
            f"run: cp {f.relative_to(REPO)} charts/launchgate/files/"
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule" and rule["spec"] == yaml.safe_load(RULES.read_text())
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    (generated,) = kustomization["configMapGenerator"]
    assert generated["files"] == ["launchgate.json=grafana-dashboard.json"]
    assert generated["options"]["labels"]["grafana_dashboard"] == "1"
