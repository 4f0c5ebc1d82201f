"""promql_batch against a real Prometheus: one batched query answers every rollout as its own query does.

Three synthetic agents (versions with different traffic, success rates, latencies and costs) are
scraped every second. For each template, the batched query runs once and is split per identity;
each identity's own rendered query runs too, at the same evaluation time, and both must give the
same one-number verdict (same value, or the same missing-data reason). Identities without any
series (an unknown version, another namespace) must come out empty on both paths.

(Not named test_promql_batch.py: pytest imports test modules by basename here, and the unit tests
already use that name.)
"""

from __future__ import annotations

import importlib.util
import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness import wait_for
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.core.gates import QueryResult, RawResponse, from_prometheus
from launchgate.core.promql import render
from launchgate.core.promql_batch import batch_shape, split_vector
from launchgate_dev import devenv
from launchgate_dev.synthetic import SyntheticAgent

ROOT = Path(__file__).resolve().parents[2]
WINDOW = "5s"
EMPTY = {"resultType": "vector", "result": []}

# version -> agent settings; each differs from the others in every number the templates read.
AGENTS: dict[str, dict[str, Any]] = {
    "v1": {"rps": 20, "success_rate": 0.994, "p95_ms": 1014, "approval_median_s": 520, "cost_per_job": 0.01},
    "v2": {"rps": 10, "success_rate": 0.9, "p95_ms": 1300, "approval_median_s": 1000, "cost_per_job": 0.02,
           "unapproved_rate": 0.5, "backlog_over_sla": 2},
    "v3": {"rps": 4, "success_rate": 1.0, "p95_ms": 200, "approval_median_s": 30, "cost_per_job": 0.005,
           "policy_bypass_rate": 0.25, "values": {"x": 3.5}},
}

S = 'namespace="$namespace",version="$canary"'
V = 'namespace="$namespace",version="$version"'
TEMPLATES = [
    f'sum(rate(agent_jobs_total{{{S},outcome="success"}}[$window])) / sum(rate(agent_jobs_total{{{S}}}[$window]))',
    f"1000 * histogram_quantile(0.95, sum by (le) (rate(agent_job_seconds_bucket{{{V}}}[$window])))",
    f"histogram_quantile(0.5, sum by (le) (rate(agent_approval_wait_seconds_bucket{{{S}}}[$window])))",
    f"sum(rate(agent_cost_usd_total{{{V}}}[$window])) / sum(rate(agent_jobs_total{{{V}}}[$window]))",
    f'sum(increase(agent_high_risk_actions_total{{{S},approved="false"}}[$window]))',
    f"sum(increase(agent_policy_bypass_total{{{S}}}[$window]))",
    f"sum(agent_approval_backlog_over_sla{{{S}}})",
    f'sum(rate(agent_jobs_total{{{V},outcome!="success"}}[2s])) / sum(rate(agent_jobs_total{{{V}}}[2s]))',
    # no aggregation: one series per version, then several (success and error)
    f'rate(agent_jobs_total{{{S},outcome="success"}}[$window])',
    f"rate(agent_jobs_total{{{S}}}[$window])",
    f"histogram_quantile(0.95, rate(agent_job_seconds_bucket{{{S}}}[$window]))",
    # grouping that keeps several series, and the other aggregations
    f"round(avg by (outcome) (rate(agent_jobs_total{{{S}}}[$window])), 0.01)",
    f"sum without (instance, job, outcome) (rate(agent_jobs_total{{{S}}}[$window]))",
    f"count(agent_jobs_total{{{S}}})",
    f"stddev(rate(agent_jobs_total{{{S}}}[$window]))",
    f"max(sum by (outcome) (rate(agent_jobs_total{{{S}}}[$window])))",
    # comparisons: a filter that empties some identities, and bool
    f"sum(rate(agent_jobs_total{{{S}}}[$window])) > 12",
    f"sum(rate(agent_jobs_total{{{S}}}[$window])) > bool 12",
    f'1 - sum(rate(agent_jobs_total{{{S},outcome="success"}}[$window])) / sum(rate(agent_jobs_total{{{S}}}[$window]))',
    # a metric only one version has, clamped
    f'clamp_max(sum(agent_test_value{{{S},name="x"}}), 3)',
    # offset and subquery
    f"sum(rate(agent_jobs_total{{{S}}}[3s] offset 1s))",
    f"max_over_time(sum(rate(agent_jobs_total{{{S}}}[2s]))[4s:1s])",
    # the canary-freshness query (core/freshness.py): each identity's newest sample's age
    f'time() - max(timestamp(agent_jobs_total{{{S},outcome="success"}}))',
]


def _unit_table() -> Any:
    """The unit tests' table of batchable templates (loaded by path: both directories are not packages)."""
    spec = importlib.util.spec_from_file_location("unit_test_promql_batch", ROOT / "tests/unit/test_promql_batch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Fleet:
    source: PrometheusSource
    namespace: str

    def identities(self) -> list[dict[str, str]]:
        """Variables per caller: every agent, an unknown version and a namespace with no agents."""
        out = [self.variables(self.namespace, v) for v in AGENTS]
        return out + [self.variables(self.namespace, "v-none"), self.variables(f"{self.namespace}-other", "v1")]

    @staticmethod
    def variables(namespace: str, version: str) -> dict[str, str]:
        return {"namespace": namespace, "rollout": "r", "canary": version, "stable": "v0", "version": version,
                "window": WINDOW}


@pytest.fixture(scope="module")
def fleet(prometheus: devenv.PrometheusServer) -> Iterator[Fleet]:
    namespace = f"batch-{uuid.uuid4().hex[:8]}"
    started: list[tuple[str, SyntheticAgent]] = []
    try:
        for version, rates in AGENTS.items():
            agent = SyntheticAgent(version, namespace=namespace, **rates).start()
            target = f"{namespace}-{version}"
            started.append((target, agent))
            prometheus.add_target(target, agent.address)

        def enough_history() -> bool:
            # 7 samples in the last 8s for every version: every window below (at most 5s, two
            # seconds back) is covered
            rows = prometheus.query(
                f'count_over_time(agent_jobs_total{{namespace="{namespace}",outcome="success"}}[8s])')
            return len(rows) == len(AGENTS) and all(float(r["value"][1]) >= 7 for r in rows)

        wait_for("three agents with eight seconds of history", enough_history)
        source = PrometheusSource(prometheus.url)
        yield Fleet(source, namespace)
        source.close()
    finally:
        for target, agent in started:
            prometheus.remove_target(target)
            agent.stop()


def _verdict(raw: RawResponse | Mapping[str, Any]) -> QueryResult:
    return from_prometheus(raw.data if isinstance(raw, RawResponse) else raw)


def _values(data: Mapping[str, Any] | None) -> list[float]:
    return sorted(float(s["value"][1]) for s in (data or {}).get("result", []))


def _same(a: QueryResult, b: QueryResult) -> bool:
    if a.missing is not None or b.missing is not None:
        return a.missing == b.missing
    assert a.value is not None and b.value is not None
    return math.isclose(a.value, b.value, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("template", TEMPLATES)
def test_split_batched_result_equals_each_rollouts_own_query(fleet: Fleet, template: str) -> None:
    at = datetime.now(UTC) - timedelta(seconds=2)  # one evaluation time, already fully scraped
    callers = fleet.identities()
    shape = batch_shape(template, callers[0])
    assert shape is not None
    batched = fleet.source.query_raw(shape.query, at)
    assert batched.error is None, (shape.query, batched.error)
    assert batched.data is not None
    split = split_vector(batched.data, shape.labels)
    assert split is not None

    non_empty = 0
    for variables in callers:
        assert batch_shape(template, variables) == shape  # the same query serves every caller
        own = fleet.source.query_raw(render(template, variables), at)
        assert own.error is None, own.error
        mine = split.get(shape.key(variables), EMPTY)
        expected, got = _verdict(own), _verdict(mine)
        assert _same(expected, got), (variables["canary"], expected, got, shape.query)
        assert _values(mine) == pytest.approx(_values(own.data), rel=1e-9), variables["canary"]
        non_empty += bool(_values(own.data))
    assert non_empty >= 1, "every identity came out empty: the template tests nothing"


def test_values_differ_per_identity(fleet: Fleet) -> None:
    """Guard against a split that hands every caller the same series."""
    template = TEMPLATES[0]
    at = datetime.now(UTC) - timedelta(seconds=2)
    shape = batch_shape(template, fleet.variables(fleet.namespace, "v1"))
    assert shape is not None
    raw = fleet.source.query_raw(shape.query, at)
    split = split_vector(raw.data or {}, shape.labels)
    assert split is not None
    rates = {v: _verdict(split[(fleet.namespace, v)]).value for v in AGENTS}
    assert rates == {"v1": pytest.approx(0.994), "v2": pytest.approx(0.9), "v3": pytest.approx(1.0)}


def test_a_refused_template_would_have_answered_differently(fleet: Fleet) -> None:
    """Why vector/vector operators must agree on identity labels: the naive rewrite is wrong here."""
    template = f"sum by (namespace, version) (agent_jobs_total{{{S}}}) / sum(agent_jobs_total{{{S}}})"
    variables = fleet.variables(fleet.namespace, "v1")
    assert batch_shape(template, variables) is None
    at = datetime.now(UTC) - timedelta(seconds=2)
    own = fleet.source.query_raw(render(template, variables), at)
    assert _verdict(own).missing == "empty vector"  # {namespace, version} never matches {}
    naive = "sum by (namespace, version) (agent_jobs_total) / sum by (namespace, version) (agent_jobs_total)"
    split = split_vector(fleet.source.query_raw(naive, at).data or {}, ("namespace", "version"))
    assert split is not None and _verdict(split[(fleet.namespace, "v1")]).value == 1.0


def test_every_batched_query_in_the_unit_table_runs(fleet: Fleet) -> None:
    """Prometheus itself accepts every batched query the unit tests expect (and the originals)."""
    table = _unit_table()
    at = datetime.now(UTC) - timedelta(seconds=1)
    for param in table.BATCHABLE:
        template, query = param.values[0], param.values[1]
        own = fleet.source.query_raw(render(template, table.V), at)
        batched = fleet.source.query_raw(query, at)
        assert own.error is None, (template, own.error)
        assert batched.error is None, (query, batched.error)
        assert batched.data is not None and batched.data.get("resultType") == "vector", query
