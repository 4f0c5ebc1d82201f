"""Evidence-aware blockers and triggers, through the engine, on a fake metrics source; and the
models refusing nonsense the way the CRDs' CEL does (tests/integration/test_crds_on_apiserver.py
applies the same objects to the real API server)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from launchgate.api import AgentRolloutStatus, LaunchGateSpec, Phase, RollbackTrigger, validation_message
from launchgate.core import engine, rollout
from launchgate.core.gates import (
    Counts,
    QueryResult,
    RawResponse,
    contract_json,
    evaluate_gate,
    evidence_trigger_verdict,
)

ERRORS = 'sum(increase(jobs_total{version="$version",outcome="error"}[$window]))'
SUCCESSES = 'sum(increase(jobs_total{version="$version",outcome="success"}[$window]))'
TOTAL = 'sum(increase(jobs_total{version="$version"}[$window]))'
LATENCY = 'p95_ms{version="$version"}'
AT = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def rendered(template: str, version: str) -> str:
    return template.replace("$version", version).replace("$window", "10m")


class Source:
    """Instant answers by rendered query; range answers as a function of the query (values at
    each step of the range asked)."""

    def __init__(self, instant: dict[str, float], ranged: Callable[[str, int], list[float] | None] | None = None,
                 fresh: bool = True) -> None:
        self.instant, self.ranged, self.fresh = instant, ranged, fresh
        self.asked: list[str] = []

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        self.asked.append(promql)
        if promql.startswith("time() - max(timestamp("):
            return QueryResult.of(1.0) if self.fresh else QueryResult.of(600.0)
        if promql in self.instant:
            return QueryResult.of(self.instant[promql])
        return QueryResult.unavailable("empty vector")

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        raise AssertionError("not used")

    def query_range_raw(self, promql: str, start: datetime, end: datetime, step: float) -> RawResponse:
        n = int(round((end - start).total_seconds() / step)) + 1
        values = self.ranged(promql, n) if self.ranged else None
        if values is None:
            return RawResponse(data={"resultType": "matrix", "result": []})
        t0 = start.timestamp()
        return RawResponse(data={"resultType": "matrix", "result": [
            {"metric": {}, "values": [[t0 + i * step, str(v)] for i, v in enumerate(values)]}]})


def gate(*blockers: dict[str, Any], window: str = "10m") -> LaunchGateSpec:
    return LaunchGateSpec.model_validate({"window": window, "blockers": list(blockers)})


VARS = {"canary": "v2", "stable": "v1"}


def counts(version: str, errors: float, total: float) -> dict[str, float]:
    return {rendered(ERRORS, version): errors, rendered(TOTAL, version): total,
            rendered(SUCCESSES, version): total - errors}


ERROR_RATE = {"name": "error_rate", "errors": ERRORS, "total": TOTAL, "target": {"lte": 0.01}, "confidence": 0.95}


# --------------------------------------------------------------------------- count blockers


def test_a_low_traffic_healthy_canary_holds_with_the_evidence_then_allows() -> None:
    spec = gate(ERROR_RATE)
    res = engine.evaluate(spec, Source(counts("v2", 0, 40)), VARS, at=AT)
    b = res.blockers[0]
    assert res.decision == "hold" and b.waiting and not b.missing and not b.blocking
    assert res.waiting == ["error_rate"] and res.missing == []
    assert b.reason.startswith("not enough evidence: n = 40, 0, interval [0, 0.08762]")
    assert b.n == 40 and b.interval == pytest.approx((0.0, 0.0876216))
    status = b.to_status().model_dump(by_alias=True, exclude_none=True)
    assert status["samples"] == 40 and status["interval"] == pytest.approx([0.0, 0.0876216])
    contract = contract_json(spec, res, "g", AT)["blockers"]["error_rate"]
    assert contract["n"] == 40 and contract["waiting"] is True and contract["target_lte"] == 0.01

    res = engine.evaluate(spec, Source(counts("v2", 1, 2000)), VARS, at=AT)
    assert res.decision == "allow", res.message


def test_a_clearly_worse_canary_blocks_with_confidence() -> None:
    res = engine.evaluate(gate(ERROR_RATE), Source(counts("v2", 8, 100)), VARS, at=AT)
    assert res.decision == "block" and "is above 0.01 with confidence 0.95" in res.message


def test_successes_and_gte() -> None:
    b = {"name": "success", "successes": SUCCESSES, "total": TOTAL, "target": {"gte": 0.99}, "confidence": 0.95,
         "minSamples": 100}
    assert engine.evaluate(gate(b), Source(counts("v2", 0, 50)), VARS, at=AT).blockers[0].reason \
        .startswith("not enough evidence: n = 50 < minSamples 100")
    assert engine.evaluate(gate(b), Source(counts("v2", 0, 500)), VARS, at=AT).decision == "allow"
    assert engine.evaluate(gate(b), Source(counts("v2", 30, 500)), VARS, at=AT).decision == "block"


def test_counts_without_confidence_compare_the_plain_proportion() -> None:
    b = {"name": "error_rate", "errors": ERRORS, "total": TOTAL, "target": {"lte": 0.01}}
    res = engine.evaluate(gate(b), Source(counts("v2", 0, 40)), VARS, at=AT)
    assert res.decision == "allow" and res.blockers[0].reason == "0 <= 0.01 (n = 40)"


def test_baseline_ratio_on_error_rates_compares_two_proportions() -> None:
    b = {"name": "errors_vs_stable", "errors": ERRORS, "total": TOTAL, "target": {"lteBaselineRatio": 2},
         "confidence": 0.95}
    stable = counts("v1", 76, 7600)
    held = engine.evaluate(gate(b), Source({**counts("v2", 1, 40), **stable}), VARS, at=AT)
    assert held.decision == "hold" and held.blockers[0].baseline_n == 7600
    assert held.blockers[0].reason.startswith("not enough evidence: n = 40 vs 7600")
    assert engine.evaluate(gate(b), Source({**counts("v2", 20, 400), **stable}), VARS, at=AT).decision == "block"
    assert engine.evaluate(gate(b), Source({**counts("v2", 20, 2000), **stable}), VARS, at=AT).decision == "allow"
    # No stable data is missing data, never a pass.
    res = engine.evaluate(gate(b), Source(counts("v2", 0, 5000)), VARS, at=AT)
    assert res.decision == "hold" and res.missing == ["errors_vs_stable"]


def test_no_requests_is_missing_data_not_evidence() -> None:
    res = engine.evaluate(gate(ERROR_RATE), Source(counts("v2", 0, 0)), VARS, at=AT)
    assert res.decision == "hold" and res.missing == ["error_rate"] and "total is 0" in res.message
    fail = gate({**ERROR_RATE, "onMissingData": "fail"})
    assert engine.evaluate(fail, Source(counts("v2", 0, 0)), VARS, at=AT).decision == "block"


def test_a_stale_canary_does_not_pass_on_counts() -> None:
    res = engine.evaluate(gate(ERROR_RATE), Source(counts("v2", 0, 5000), fresh=False), VARS, at=AT)
    assert res.decision == "hold" and "not fresh" in res.message


odd = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]))


@settings(max_examples=300, deadline=None)
@given(events=odd, total=odd, base_events=odd, base_total=odd,
       target=st.sampled_from([{"lte": 0.01}, {"gte": 0.99}, {"lteBaselineRatio": 2}, {"gteBaselineRatio": 0.5}]),
       confidence=st.sampled_from([None, 0.95]))
@example(events=9.853468686608175e-11, total=7.171700150131516e-118, base_events=0.0, base_total=0.0,
         target={"gte": 0.99}, confidence=None)  # events above a near-zero total
def test_nan_inf_and_nonsense_counts_never_allow(events: float, total: float, base_events: float, base_total: float,
                                                 target: dict[str, float], confidence: float | None) -> None:
    ratio = "lteBaselineRatio" in target or "gteBaselineRatio" in target
    sides = [(events, total), (base_events, base_total)] if ratio else [(events, total)]
    if all(math.isfinite(e) and math.isfinite(n) and n > 0 and 0 <= e <= n * (1 + 1e-9) for e, n in sides):
        return  # sane counts: judged on their merits
    spec = gate({"name": "b", "errors": ERRORS, "total": TOTAL, "target": target,
                 **({"confidence": confidence} if confidence else {})})
    c = Counts(QueryResult(value=events), QueryResult(value=total), QueryResult(value=base_events),
               QueryResult(value=base_total))
    res = evaluate_gate(spec, {}, {}, {"b": c})
    assert res.decision != "allow"


# --------------------------------------------------------------------------- the judge


def latency(canary: float, stable: float, noise: float = 0.0) -> Callable[[str, int], list[float] | None]:
    def values(promql: str, n: int) -> list[float]:
        base = canary if 'version="v2"' in promql else stable
        return [base + noise * ((i * 37) % 11 - 5) for i in range(n)]
    return values


JUDGE = {"name": "latency", "query": LATENCY,
         "target": {"judge": {"direction": "higherIsBad", "confidence": 0.95, "tolerance": 20, "step": "30s"}}}


def test_judge_blocker_pass_high_and_nodata() -> None:
    spec = gate(JUDGE)
    ok = engine.evaluate(spec, Source({}, latency(1000, 1000, 10)), VARS, at=AT)
    assert ok.decision == "allow" and ok.blockers[0].judge == "pass" and ok.blockers[0].n == 20
    high = engine.evaluate(spec, Source({}, latency(1200, 1000, 10)), VARS, at=AT)
    b = high.blockers[0]
    assert high.decision == "block" and b.judge == "high" and b.value == pytest.approx(200)
    assert b.interval is not None and b.interval[0] > 100 and "n = 20 vs 20 samples" in b.reason
    assert b.to_status().model_dump(by_alias=True)["judge"] == "high"
    # Lower is fine when higher is bad.
    assert engine.evaluate(spec, Source({}, latency(800, 1000, 10)), VARS, at=AT).decision == "allow"
    nodata = engine.evaluate(spec, Source({}, None), VARS, at=AT)
    assert nodata.decision == "hold" and nodata.missing == ["latency"] and "no canary and stable samples" in nodata.message


def test_judge_never_allows_on_nan() -> None:
    def values(promql: str, n: int) -> list[float]:
        return [1000.0] * (n - 1) + [math.nan]
    res = engine.evaluate(gate(JUDGE), Source({}, values), VARS, at=AT)
    assert res.decision == "hold" and "NaN or infinite" in res.message


def test_judge_on_a_source_without_range_queries_holds() -> None:
    class Instant:
        def query(self, promql: str, at: datetime | None = None) -> QueryResult:
            return QueryResult.of(1.0)

        def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
            raise AssertionError

    res = engine.evaluate(gate(JUDGE), Instant(), VARS, at=AT)  # type: ignore[arg-type]
    assert res.decision == "hold" and "cannot run range queries" in res.message


# --------------------------------------------------------------------------- triggers


def trigger(**kw: Any) -> RollbackTrigger:
    return RollbackTrigger.model_validate({"name": "t", "for": "10s", "step": "1s", **kw})


def test_count_trigger_fires_only_when_every_step_is_significant() -> None:
    t = trigger(errors=ERRORS, total=TOTAL, confidence=0.95, above={"baselineRatio": 1})
    sure = (30.0, 300.0, 40.0, 4000.0)      # 10% vs 1%
    unsure = (1.0, 20.0, 40.0, 4000.0)      # 1 error in 20: not significant
    fired = evidence_trigger_verdict(t, [sure] * 10, "1s")
    assert fired.fired and fired.held_steps == 10 and "with confidence 0.95 for the whole 10s" in fired.reason
    held = evidence_trigger_verdict(t, [unsure] + [sure] * 9, "1s")
    assert not held.fired and held.held_steps == 9 and held.reason.startswith("not sustained")
    gap = evidence_trigger_verdict(t, [None] + [sure] * 9, "1s")
    assert not gap.fired and "data at 9/10" in gap.reason
    assert not evidence_trigger_verdict(t, [(math.nan, 10.0, 1.0, 100.0)] * 10, "1s").fired
    assert not evidence_trigger_verdict(t, [], "1s").fired


def test_count_trigger_through_the_engine() -> None:
    t = trigger(errors=ERRORS, total=TOTAL, confidence=0.95, above={"value": 0.01})

    def values(promql: str, n: int) -> list[float]:
        return [30.0] * n if 'outcome="error"' in promql else [300.0] * n

    r = engine.evaluate_trigger(t, Source({}, values), {**VARS, "window": "10s"}, at=AT)
    assert r.fired and r.steps == 10 and r.value == pytest.approx(0.1)
    r = engine.evaluate_trigger(t, Source({}, None), {**VARS, "window": "10s"}, at=AT)
    assert not r.fired and r.missing


def test_judge_trigger() -> None:
    t = trigger(query=LATENCY, judge={"direction": "higherIsBad", "step": "1s", "minSamples": 5})
    v = {**VARS, "window": "10s"}
    assert engine.evaluate_trigger(t, Source({}, latency(1200, 1000, 10)), v, at=AT).fired
    assert not engine.evaluate_trigger(t, Source({}, latency(1000, 1000, 10)), v, at=AT).fired
    nodata = engine.evaluate_trigger(t, Source({}, None), v, at=AT)
    assert not nodata.fired and nodata.missing


# --------------------------------------------------------------------------- the rollout holds without counting


def test_a_gate_waiting_for_evidence_holds_the_rollout_without_counting_as_no_data() -> None:
    res = engine.evaluate(gate(ERROR_RATE), Source(counts("v2", 0, 40)), VARS, at=AT)
    phase = Phase(name="Canary1", weight=5, gates=["g"])
    obs = rollout.Observation(now=AT, revision="v2", gates_hash="h", gates={"g": res})
    verdict = rollout.gate_verdict(phase, obs)
    assert verdict.missing == [] and verdict.blocked == [] and len(verdict.waiting) == 1
    assert AgentRolloutStatus is not None


# --------------------------------------------------------------------------- the models refuse nonsense


@pytest.mark.parametrize(("blocker", "field", "words"), [
    ({"errors": ERRORS, "target": {"lte": 0.01}}, "total", "needs total"),
    ({"total": TOTAL, "target": {"lte": 0.01}}, "successes", "needs successes or errors"),
    ({"errors": ERRORS, "successes": SUCCESSES, "total": TOTAL, "target": {"lte": 0.01}}, "errors", "exactly one"),
    ({"query": "up", "total": TOTAL, "target": {"lte": 0.01}}, "query", "exclusive"),
    ({"target": {"lte": 0.01}}, "query", "needs query"),
    ({"errors": ERRORS, "total": TOTAL, "target": {"lte": 0.01}, "confidence": 1.0}, "confidence", "less than 1"),
    ({"errors": ERRORS, "total": TOTAL, "target": {"lte": 0.01}, "confidence": 0}, "confidence", "greater than 0"),
    ({"errors": ERRORS, "total": TOTAL, "target": {"lte": 0.01}, "minSamples": 0}, "minSamples", "greater than or equal to 1"),
    ({"query": "up", "target": {"lte": 0.01}, "confidence": 0.95}, "confidence", "needs counts"),
    ({"errors": ERRORS, "total": TOTAL, "target": {"eq": 0.01}, "confidence": 0.95}, "target", "gte, lte"),
    ({"errors": ERRORS, "total": TOTAL, "target": {"judge": {}}}, "query", "judge compares"),
    ({"query": "up", "target": {"judge": {"confidence": 1.5}}}, "confidence", "less than 1"),
])
def test_models_refuse_nonsense_naming_the_field(blocker: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as e:
        gate({"name": "b", **blocker})
    msg = validation_message(e.value, "spec")
    assert field in msg and words in msg, msg


def test_existing_gates_read_as_before() -> None:
    spec = gate({"name": "b", "query": "up", "target": {"gte": 1}})
    assert spec.blockers[0].count_queries() is None and spec.blockers[0].templates() == ["up"]


# --------------------------------------------------------------------------- evidence in sight


def test_check_backtest_and_status_show_the_evidence() -> None:
    from datetime import timedelta

    from launchgate.cli import main as cli
    from launchgate.cli import plugin

    spec = gate(ERROR_RATE)
    res = engine.evaluate(spec, Source(counts("v2", 0, 40)), VARS, at=AT)
    b = res.blockers[0]
    assert cli._evidence_cell(b) == " n = 40 [0, 0.08762]"
    doc = cli.GateDoc("g", None, spec)
    out = cli.backtest_json(doc, [(AT, res)], AT, AT, timedelta(minutes=10))
    assert out["windows"][0]["evidence"]["error_rate"]["n"] == 40
    assert out["windows"][0]["evidence"]["error_rate"]["waiting"] is True
    status = b.to_status().model_dump(by_alias=True, exclude_none=True)
    assert plugin._samples(status) == "40" and plugin._interval(status) == "[0, 0.0876216]"
    assert plugin._verdict(status) == "[yellow]not yet[/]"
    judged = {"samples": 20, "baselineSamples": 20, "interval": [150.5, 240.0], "judge": "high", "pass": False}
    assert plugin._samples(judged) == "20 vs 20" and plugin._interval(judged) == "high [150.5, 240]"
