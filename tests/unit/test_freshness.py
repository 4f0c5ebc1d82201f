"""Canary freshness: which selectors of a blocker's query are checked, what their ages decide, and
how the engine asks (once per selector, shared between rollouts) and reports it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from launchgate.adapters.sharing import SharedQueries
from launchgate.api import LaunchGateSpec
from launchgate.core import engine
from launchgate.core.freshness import (
    blocker_freshness,
    canary_selectors,
    default_freshness,
    freshness_query,
    stale_reason,
)
from launchgate.core.gates import QueryResult, RawResponse, contract_json, from_prometheus
from launchgate.core.promql import render
from launchgate.core.promql_batch import batch_shape

C = 'namespace="$namespace",version="$canary"'

# (blocker query, the selectors checked for freshness, as template text)
SELECTORS = [
    pytest.param(f'sum(rate(jobs_total{{{C},outcome="ok"}}[$window])) / sum(rate(jobs_total{{{C}}}[$window]))',
                 (f'jobs_total{{{C},outcome="ok"}}', f"jobs_total{{{C}}}"), id="ratio-of-two-selectors"),
    pytest.param(f"max(drill_passed{{{C}}})", (f"drill_passed{{{C}}}",), id="instant"),
    pytest.param(f"sum(rate(x{{{C}}}[$window])) / sum(rate(x{{{C}}}[$window] offset 1h))", (f"x{{{C}}}",),
                 id="offset-dropped-and-repeats-once"),
    pytest.param('1000 * histogram_quantile(0.95, sum by (le) (rate(h_bucket{namespace="$namespace",'
                 'version="$version"}[$window])))', ('h_bucket{namespace="$namespace",version="$version"}',),
                 id="version-names-the-canary"),
    pytest.param('job:errors:rate5m{version=~"${canary}"}', ('job:errors:rate5m{version=~"${canary}"}',),
                 id="regex-and-recording-rule-name"),
    pytest.param('{__name__="x", version="$canary"}', ('{__name__="x", version="$canary"}',), id="name-as-matcher"),
    pytest.param("sum(x{version='$canary', t=`a`} # note {y=\"$canary\"}\n)", ("x{version='$canary', t=`a`}",),
                 id="quotes-and-comments"),
    pytest.param('max_over_time(sum(x{version="$canary"})[5m:1m])', ('x{version="$canary"}',), id="subquery"),
    pytest.param('label_replace(x{version="$canary"}, "v", "$1", "pod", "(.*)")', ('x{version="$canary"}',),
                 id="label_replace-arguments-are-no-selectors"),
    pytest.param('x{pod=~"$rollout-canary-.*", version="$canary-2"}', ('x{pod=~"$rollout-canary-.*", '
                 'version="$canary-2"}',), id="canary-inside-a-longer-value"),
    pytest.param('sum(rate(x{version="$canary"}[$window])) / sum(rate(x{version!="$canary"}[$window]))',
                 ('x{version="$canary"}',), id="negative-matcher-is-everyone-else"),
    pytest.param('sum(rate(x{version="$stable"}[$window]))', (), id="stable-only"),
    pytest.param('sum(rate(x{deployment="$rollout-canary"}[$window]))', (), id="canary-named-otherwise"),
    pytest.param("vector(1)", (), id="no-selector"),
    pytest.param('x{version="$nope"}', (), id="unrenderable"),
]


@pytest.mark.parametrize(("query", "selectors"), SELECTORS)
def test_canary_selectors(query: str, selectors: tuple[str, ...]) -> None:
    # Variables come back spelt ${name}, which renders the same as $name.
    assert canary_selectors(query) == tuple(re.sub(r"\$(?!\{)(\w+)", r"${\1}", s) for s in selectors)


def test_a_selector_renders_as_it_does_in_its_query() -> None:
    """The values are escaped for where they stand in the selector, as in the blocker's query."""
    hostile = {"namespace": "n", "canary": 'v"} or vector(1) #', "window": "5m"}
    query = 'sum(rate(x{namespace="$namespace",version=~"$canary"}[$window]))'
    (selector,) = canary_selectors(query)
    rendered = render(freshness_query(selector), hostile)
    assert rendered.startswith('time() - max(timestamp(x{namespace="n",version=~"v\\"')
    assert rendered.removeprefix("time() - max(timestamp(").removesuffix("))") in render(query, hostile)


def test_the_freshness_query_is_batched_like_a_gate_query() -> None:
    shape = batch_shape(freshness_query(f'jobs_total{{{C},outcome="ok"}}'), {"namespace": "n", "canary": "v"})
    assert shape is not None
    assert shape.query == 'time() - max by (namespace, version) (timestamp(jobs_total{outcome="ok"}))'


def age(seconds: float) -> QueryResult:
    return QueryResult.of(seconds)


EMPTY = QueryResult.unavailable("empty vector")
DOWN = QueryResult.unavailable("prometheus unreachable: connection refused")

# (ages of the blocker's selectors, limit, reason or None when fresh)
VERDICTS = [
    pytest.param([], 60.0, None, id="nothing-to-check"),
    pytest.param([age(3.2)], 60.0, None, id="fresh"),
    pytest.param([age(60.0)], 60.0, None, id="at-the-limit"),
    pytest.param([age(61.0)], 60.0, "canary series not fresh (last sample 61s ago; freshness 1m)", id="too-old"),
    pytest.param([age(2.5)], 2.0, "canary series not fresh (last sample 2.5s ago; freshness 2s)", id="short"),
    pytest.param([EMPTY], 60.0,
                 "canary series not fresh (no current sample: stopped, or no longer scraped; freshness 1m)",
                 id="marked-stale-or-gone"),
    pytest.param([EMPTY, age(5.0)], 60.0, None, id="one-selector-fresh-is-enough"),
    pytest.param([age(90.0), age(75.0), EMPTY], 60.0, "canary series not fresh (last sample 75s ago; freshness 1m)",
                 id="the-newest-sample-is-named"),
    pytest.param([DOWN, age(75.0)], 60.0, "prometheus unreachable: connection refused (canary freshness check)",
                 id="no-answer-is-said-as-such"),
    pytest.param([DOWN, age(5.0)], 60.0, None, id="fresh-whatever-else"),
]


@pytest.mark.parametrize(("ages", "limit", "reason"), VERDICTS)
def test_stale_reason(ages: list[QueryResult], limit: float, reason: str | None) -> None:
    assert stale_reason(ages, limit) == reason


def gate(**spec: Any) -> LaunchGateSpec:
    blockers = spec.pop("blockers", None) or [
        {"name": "success", "query": f"sum(rate(jobs_total{{{C}}}[$window]))", "target": {"gte": 1}},
        {"name": "drill", "query": f"max(drill{{{C}}})", "target": {"eq": 1}},
    ]
    return LaunchGateSpec.model_validate({"window": "10m", "blockers": blockers, **spec})


def test_limits_come_from_the_blocker_then_the_gate_then_the_operator() -> None:
    spec = gate(freshness="2m", blockers=[
        {"name": "a", "query": "x", "target": {"eq": 1}, "freshness": "15s"},
        {"name": "b", "query": "x", "target": {"eq": 1}}])
    assert [blocker_freshness(spec, b, 60.0) for b in spec.blockers] == [15.0, 120.0]
    assert blocker_freshness(gate(), gate().blockers[0], 60.0) == 60.0
    assert default_freshness(30.0) == 60.0


class Source:
    """Answers by query text: `values` for value queries, `ages` (seconds) for freshness queries."""

    def __init__(self, ages: dict[str, float | None], values: dict[str, float] | None = None) -> None:
        self.ages, self.values = ages, values or {}
        self.asked: list[str] = []

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        self.asked.append(promql)
        if promql.startswith("time() - max(timestamp("):
            seconds = next((a for metric, a in self.ages.items() if f"({metric}{{" in promql), None)
            return EMPTY if seconds is None else age(seconds)
        return QueryResult.of(next((v for metric, v in self.values.items() if metric in promql), 1.0))

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        raise AssertionError("not used by gates")


V = {"namespace": "n", "canary": "v2"}


def test_a_canary_that_stopped_reporting_holds_the_gate_that_its_window_would_allow() -> None:
    src = Source({"jobs_total": 75.0, "drill": 3.0})
    res = engine.evaluate(gate(), src, V)
    assert res.decision == "hold" and res.missing == ["success"]
    success = res.blockers[0]
    assert success.value is None and not success.passed and not success.blocking
    assert success.reason == ("no data: canary series not fresh (last sample 75s ago; freshness 1m); "
                              "holds (onMissingData: hold)")
    assert success.error is None  # stale data, not a broken backend: the CLI exits 1, not 2
    contract = contract_json(gate(), res, "g", datetime(2026, 1, 1))
    assert contract["blockers"]["success"]["missing"] is True
    assert "canary series not fresh" in contract["message"]


@pytest.mark.parametrize(("limits", "decision"), [
    pytest.param({}, "hold", id="operator-default-1m"),
    pytest.param({"operator": 90.0}, "allow", id="operator-setting"),
    pytest.param({"gate": "2m"}, "allow", id="gate"),
    pytest.param({"operator": 90.0, "gate": "2m", "blocker": "1m"}, "hold", id="blocker-wins"),
])
def test_the_limit_in_force_decides(limits: dict[str, Any], decision: str) -> None:
    blockers = [{"name": "success", "query": f"sum(rate(jobs_total{{{C}}}[$window]))", "target": {"gte": 1}}]
    if "blocker" in limits:
        blockers[0]["freshness"] = limits["blocker"]
    spec = gate(blockers=blockers, **({"freshness": limits["gate"]} if "gate" in limits else {}))
    res = engine.evaluate(spec, Source({"jobs_total": 75.0}), V, freshness=limits.get("operator"))
    assert res.decision == decision, res.message


def test_fail_policy_blocks_a_stale_canary() -> None:
    spec = gate(onMissingData="fail")
    res = engine.evaluate(spec, Source({"jobs_total": None, "drill": 1.0}), V)
    assert res.decision == "block" and res.failing == ["success"]
    assert "no current sample" in res.blockers[0].reason


def test_each_selector_is_asked_once_and_only_for_blockers_that_pass() -> None:
    spec = gate(blockers=[
        {"name": "a", "query": f"sum(rate(jobs_total{{{C}}}[$window]))", "target": {"gte": 1}},
        {"name": "b", "query": f"max(jobs_total{{{C}}})", "target": {"gte": 1}},
        {"name": "c", "query": f"sum(nothing{{{C}}})", "target": {"gte": 1}},
        {"name": "d", "query": f"sum(low{{{C}}})", "target": {"gte": 1}},
    ])
    src = Source({"jobs_total": 1.0})
    src.values = {"nothing": float("nan"), "low": 0.5}
    res = engine.evaluate(spec, src, V)
    freshness = [q for q in src.asked if q.startswith("time()")]
    assert freshness == ['time() - max(timestamp(jobs_total{namespace="n",version="v2"}))']
    assert res.missing == ["c"] and "NaN" in res.blockers[2].reason
    assert res.failing == ["d"] and res.decision == "block"


def test_a_value_that_fails_blocks_whatever_its_age() -> None:
    src = Source({"jobs_total": 300.0, "drill": 300.0}, values={"drill": 0.0})
    res = engine.evaluate(gate(), src, V)
    assert res.decision == "block" and res.failing == ["drill"] and res.missing == ["success"]
    assert res.blockers[1].reason == "0 != 1" and res.blockers[1].value == 0.0
    assert not any("drill{" in q for q in src.asked if q.startswith("time()"))


def test_a_blocker_without_canary_selectors_is_not_checked() -> None:
    spec = gate(blockers=[{"name": "fleet", "query": "sum(up)", "target": {"gte": 1}}])
    src = Source({})
    assert engine.evaluate(spec, src, V).decision == "allow"
    assert src.asked == ["sum(up)"]


def test_backtests_check_freshness_at_each_evaluation_time() -> None:
    class AtSource(Source):
        def query(self, promql: str, at: datetime | None = None) -> QueryResult:
            self.asked.append(f"{at:%H:%M} {promql}")
            if promql.startswith("time()"):
                return age(10.0) if at is not None and at.minute < 30 else EMPTY
            return QueryResult.of(1.0)

    src = AtSource({})
    start = datetime(2026, 1, 1, 0, 20, tzinfo=UTC)
    rows = engine.backtest(gate(), src, V, start, start + timedelta(minutes=20), timedelta(minutes=10))
    assert [r.decision for _, r in rows] == ["allow", "hold", "hold"]


class BatchedProm:
    """Answers batched queries (`by (`) for every (namespace, version) at once; counts queries."""

    def __init__(self, ages: dict[str, str]) -> None:
        self.ages = ages
        self.asked: list[str] = []

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        self.asked.append(promql)
        if "timestamp(" in promql:
            return RawResponse(data={"resultType": "vector", "result": [
                {"metric": {"namespace": "n", "version": v}, "value": [1.0, a]} for v, a in self.ages.items()]})
        return RawResponse(data={"resultType": "vector", "result": [
            {"metric": {"namespace": "n", "version": v}, "value": [1.0, "1"]} for v in self.ages]})

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        raw = self.query_raw(promql, at)
        return from_prometheus(raw.data)


def test_rollouts_share_the_freshness_query() -> None:
    prom = BatchedProm({"v1": "2", "v2": "300"})
    shared = SharedQueries(prom, max_age=5.0)
    live = engine.evaluate(gate(), shared, {"namespace": "n", "canary": "v1"})
    gone = engine.evaluate(gate(), shared, {"namespace": "n", "canary": "v2"})
    assert live.decision == "allow"
    assert gone.decision == "hold" and "last sample 300s ago" in gone.message
    # Two value queries and two freshness queries, each batched once for both rollouts.
    assert len(prom.asked) == 4 and all("by (namespace, version)" in q for q in prom.asked)
