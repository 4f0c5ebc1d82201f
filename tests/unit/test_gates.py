"""The pure decision core, table by table. No Prometheus here: these are the rules themselves."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from launchgate.api import LaunchGateSpec, RollbackTrigger, Target
from launchgate.core.gates import (
    QueryResult,
    RawResponse,
    TriggerResult,
    contract_json,
    describe_target,
    evaluate_gate,
    from_prometheus,
    interpret_trigger,
    sustained_trigger_query,
    trigger_eval_time,
    trigger_from_series,
    trigger_recheck_after,
    trigger_steps,
    trigger_window,
)

# --------------------------------------------------------------------------- from_prometheus


def vec(*values: str, labels: list[dict[str, str]] | None = None) -> dict[str, Any]:
    labels = labels or [{} for _ in values]
    return {"resultType": "vector", "result": [{"metric": m, "value": [1.0, v]} for m, v in zip(labels, values, strict=True)]}


@pytest.mark.parametrize(
    ("data", "value", "missing"),
    [
        (vec("0.994"), 0.994, None),
        (vec("0"), 0.0, None),
        (vec("-3.5"), -3.5, None),
        (vec("1e3"), 1000.0, None),
        ({"resultType": "scalar", "result": [1.0, "42"]}, 42.0, None),
        ({"resultType": "scalar", "result": [1.0, "NaN"]}, None, "NaN"),
        (vec(), None, "empty vector"),
        (vec("NaN"), None, "NaN"),
        (vec("+Inf"), None, "+Inf"),
        (vec("-Inf"), None, "-Inf"),
        (vec("1", "2", "3"), None, "several series (3) where one was expected"),
        ({"resultType": "matrix", "result": []}, None, "query error: result type 'matrix', expected vector or scalar"),
        ({"resultType": "string", "result": [1.0, "hello"]}, None, "query error: result type 'string', expected vector or scalar"),
        ({"resultType": "scalar", "result": [1.0, "abc"]}, None, "query error: malformed result"),
        ({"resultType": "vector", "result": [{"metric": {}}]}, None, "query error: malformed result"),
        (None, None, "query error: empty response"),
        ({}, None, "query error: empty response"),
    ],
)
def test_from_prometheus(data: Any, value: float | None, missing: str | None) -> None:
    r = from_prometheus(data)
    assert r.value == value
    if missing is None:
        assert r.missing is None and r.ok
    else:
        assert r.missing is not None and r.missing.startswith(missing) and not r.ok


def test_query_result_of_rejects_non_finite() -> None:
    assert QueryResult.of(1.5) == QueryResult(value=1.5)
    assert QueryResult.of(math.nan).missing == "NaN"
    assert QueryResult.of(math.inf).missing == "+Inf"


# --------------------------------------------------------------------------- the checklist's gate

SEED = LaunchGateSpec.model_validate(
    {
        "window": "10m",
        "owners": {"reliability": "sre-oncall", "governance": "ai-governance", "cost": "finops"},
        "blockers": [
            {"name": "unapproved_high_risk_actions", "owner": "governance", "query": "q1", "target": {"eq": 0},
             "onMissingData": "fail"},
            {"name": "workflow_success_rate", "owner": "reliability", "query": "q2", "target": {"gte": 0.99}},
            {"name": "p95_latency_ms", "owner": "reliability", "query": "q3", "target": {"lte": 1200}},
            {"name": "approval_queue_median_sec", "owner": "governance", "query": "q4", "target": {"lte": 900}},
            {"name": "rollback_drill_passed", "owner": "reliability", "query": "q5", "target": {"eq": 1}},
        ],
    }
)
GOOD = {
    "unapproved_high_risk_actions": 0.0,
    "workflow_success_rate": 0.994,
    "p95_latency_ms": 1014.0,
    "approval_queue_median_sec": 520.0,
    "rollback_drill_passed": 1.0,
}
BAD = {
    "unapproved_high_risk_actions": 1.0,
    "workflow_success_rate": 0.98,
    "p95_latency_ms": 1300.0,
    "approval_queue_median_sec": 1000.0,
    "rollback_drill_passed": 0.0,
}
OWNER = {
    "unapproved_high_risk_actions": "ai-governance",
    "workflow_success_rate": "sre-oncall",
    "p95_latency_ms": "sre-oncall",
    "approval_queue_median_sec": "ai-governance",
    "rollback_drill_passed": "sre-oncall",
}


def results(values: dict[str, float | str]) -> dict[str, QueryResult]:
    return {k: QueryResult.unavailable(v) if isinstance(v, str) else QueryResult.of(v) for k, v in values.items()}


def test_seed_gate_allows() -> None:
    r = evaluate_gate(SEED, results(GOOD), {})
    assert r.decision == "allow"
    assert r.passing == "5/5"
    assert r.failing == [] and r.missing == [] and r.escalate_to == []
    assert r.message == "allow: 5/5 blockers pass"
    assert all(b.passed and b.reason for b in r.blockers)


@pytest.mark.parametrize("name", list(GOOD))
def test_seed_gate_blocks_naming_each_flipped_blocker(name: str) -> None:
    r = evaluate_gate(SEED, results({**GOOD, name: BAD[name]}), {})
    assert r.decision == "block"
    assert r.passing == "4/5"
    assert r.failing == [name]
    assert r.escalate_to == [OWNER[name]]
    assert name in r.message and r.message.startswith("block:")
    (failed,) = [b for b in r.blockers if not b.passed]
    assert failed.name == name and failed.value == BAD[name] and not failed.missing


def test_seed_gate_all_bad_escalates_each_owner_once() -> None:
    r = evaluate_gate(SEED, results(BAD), {})
    assert r.decision == "block" and r.passing == "0/5"
    assert r.failing == list(GOOD)
    assert r.escalate_to == ["ai-governance", "sre-oncall"]


# --------------------------------------------------------------------------- comparisons


def gate(target: dict[str, float], **blocker: Any) -> LaunchGateSpec:
    return LaunchGateSpec.model_validate({"blockers": [{"name": "b", "query": "q", "target": target, **blocker}]})


@pytest.mark.parametrize(
    ("target", "value", "baseline", "passed", "reason"),
    [
        ({"eq": 0}, 0.0, None, True, "0 == 0"),
        ({"eq": 0}, 1e-12, None, True, "== 0"),
        ({"eq": 0}, 1e-6, None, False, "!= 0"),
        ({"eq": 1}, 1.0 + 1e-12, None, True, "== 1"),
        ({"gte": 0.99}, 0.994, None, True, "0.994 >= 0.99"),
        ({"gte": 0.99}, 0.99, None, True, ">= 0.99"),
        ({"gte": 0.99}, 0.99 - 1e-12, None, True, ">= 0.99"),  # float noise from rate arithmetic
        ({"gte": 0.99}, 0.9899, None, False, "0.9899 is below 0.99"),
        ({"lte": 1200}, 1014.0, None, True, "1014 <= 1200"),
        ({"lte": 1200}, 1200.0, None, True, "1200 <= 1200"),
        ({"lte": 1200}, 1200.5, None, False, "1200.5 is above 1200"),
        ({"lteBaselineRatio": 1.2}, 1100.0, 1000.0, True, "1100 <= 1.2 x baseline 1000 = 1200; ratio 1.1"),
        ({"lteBaselineRatio": 1.2}, 1300.0, 1000.0, False, "1300 is above 1.2 x baseline 1000 = 1200; ratio 1.3"),
        ({"lteBaselineRatio": 1.2}, 1200.0, 1000.0, True, "<= 1.2 x baseline"),
        ({"lteBaselineRatio": 1.2}, 0.0, 0.0, True, "0 <= 1.2 x baseline 0"),
        ({"lteBaselineRatio": 1.2}, 0.5, 0.0, False, "baseline is 0, so any canary value above 0 is above 1.2x baseline"),
        ({"gteBaselineRatio": 0.9}, 95.0, 100.0, True, "95 >= 0.9 x baseline 100 = 90"),
        ({"gteBaselineRatio": 0.9}, 80.0, 100.0, False, "80 is below 0.9 x baseline 100 = 90"),
        ({"gteBaselineRatio": 0.9}, 0.0, 0.0, True, ">= 0.9 x baseline 0"),
        ({"gteBaselineRatio": 0.9}, 3.0, 0.0, True, ">= 0.9 x baseline 0"),
        ({"gteBaselineRatio": 0.9}, -1.0, 0.0, False, "baseline is 0"),
    ],
)
def test_targets(target: dict[str, float], value: float, baseline: float | None, passed: bool, reason: str) -> None:
    base = {"b": QueryResult.of(baseline)} if baseline is not None else {}
    r = evaluate_gate(gate(target), {"b": QueryResult.of(value)}, base)
    (b,) = r.blockers
    assert b.passed is passed
    assert reason in b.reason
    assert b.value == value and b.baseline_value == baseline
    assert r.decision == ("allow" if passed else "block")


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ({"eq": 0}, "eq 0"),
        ({"gte": 0.99}, "gte 0.99"),
        ({"lte": 1200}, "lte 1200"),
        ({"lteBaselineRatio": 1.2}, "lte 1.2x baseline"),
        ({"gteBaselineRatio": 0.9}, "gte 0.9x baseline"),
        ({}, "invalid"),
        ({"eq": 0, "lte": 1}, "invalid"),
    ],
)
def test_describe_target(target: dict[str, float], text: str) -> None:
    # model_construct: an object that skipped validation (as from a stale client) must not crash.
    obj = Target.model_validate(target) if text != "invalid" else Target.model_construct(**{
        {"lteBaselineRatio": "lte_baseline_ratio", "gteBaselineRatio": "gte_baseline_ratio"}.get(k, k): v
        for k, v in target.items()})
    assert describe_target(obj) == text


def test_parsing_refuses_several_targets() -> None:
    with pytest.raises(ValueError, match="exactly one of eq, gte, lte"):
        Target.model_validate({"eq": 0, "lte": 1})


def test_invalid_target_blocks_rather_than_crashing() -> None:
    spec = gate({"eq": 0})
    spec.blockers[0].target = Target.model_construct(eq=0, lte=1)
    r = evaluate_gate(spec, {"b": QueryResult.of(0)}, {})
    assert r.decision == "block"
    assert "exactly one of" in r.blockers[0].reason


# --------------------------------------------------------------------------- missing data


@pytest.mark.parametrize(
    ("gate_policy", "blocker_policy", "decision"),
    [
        (None, None, "hold"),  # default is hold
        ("hold", None, "hold"),
        ("fail", None, "block"),
        ("hold", "fail", "block"),
        ("fail", "hold", "hold"),
    ],
)
@pytest.mark.parametrize("why", ["empty vector", "NaN", "+Inf", "several series (3) where one was expected",
                                 "query error: bad_data", "prometheus unreachable: connection refused"])
def test_missing_data_never_passes(gate_policy: str | None, blocker_policy: str | None, decision: str, why: str) -> None:
    spec: dict[str, Any] = {"blockers": [{"name": "b", "query": "q", "target": {"gte": 0}}]}
    if gate_policy:
        spec["onMissingData"] = gate_policy
    if blocker_policy:
        spec["blockers"][0]["onMissingData"] = blocker_policy
    r = evaluate_gate(LaunchGateSpec.model_validate(spec), {"b": QueryResult.unavailable(why)}, {})
    assert r.decision == decision
    (b,) = r.blockers
    assert not b.passed and b.missing and b.value is None
    assert why in b.reason and why in r.message
    assert r.missing == ["b"]
    assert r.failing == (["b"] if decision == "block" else [])


def test_absent_result_counts_as_missing() -> None:
    r = evaluate_gate(gate({"gte": 0}), {}, {})
    assert r.decision == "hold" and "not evaluated" in r.blockers[0].reason


@pytest.mark.parametrize("policy", ["hold", "fail"])
def test_missing_baseline_for_ratio_is_missing(policy: str) -> None:
    r = evaluate_gate(
        gate({"lteBaselineRatio": 1.2}, onMissingData=policy),
        {"b": QueryResult.of(10)},
        {"b": QueryResult.unavailable("empty vector")},
    )
    (b,) = r.blockers
    assert b.missing and not b.passed
    assert b.value == 10 and b.baseline_value is None
    assert "no baseline data: empty vector" in b.reason
    assert r.decision == ("hold" if policy == "hold" else "block")


def test_ratio_without_any_baseline_entry_is_missing() -> None:
    r = evaluate_gate(gate({"lteBaselineRatio": 1.2}), {"b": QueryResult.of(1)}, {})
    assert r.decision == "hold"


def test_precedence_block_beats_hold_beats_allow() -> None:
    spec = LaunchGateSpec.model_validate(
        {
            "owners": {"reliability": "sre", "cost": "finops"},
            "blockers": [
                {"name": "ok", "query": "q", "target": {"gte": 0}},
                {"name": "nodata", "query": "q", "target": {"gte": 0}, "owner": "cost"},
                {"name": "bad", "query": "q", "target": {"gte": 0}, "owner": "reliability"},
            ],
        }
    )
    ok, nodata, bad = QueryResult.of(1), QueryResult.unavailable("empty vector"), QueryResult.of(-1)
    r = evaluate_gate(spec, {"ok": ok, "nodata": nodata, "bad": bad}, {})
    assert (r.decision, r.passing, r.failing, r.missing) == ("block", "1/3", ["bad"], ["nodata"])
    assert r.escalate_to == ["finops", "sre"]
    assert "bad" in r.message and "nodata" not in r.message
    r = evaluate_gate(spec, {"ok": ok, "nodata": nodata, "bad": ok}, {})
    assert (r.decision, r.passing, r.failing) == ("hold", "2/3", [])
    assert "nodata" in r.message and r.escalate_to == ["finops"]
    r = evaluate_gate(spec, {"ok": ok, "nodata": ok, "bad": ok}, {})
    assert (r.decision, r.passing) == ("allow", "3/3")


def test_blocker_without_owner_has_no_contact() -> None:
    r = evaluate_gate(gate({"gte": 1}), {"b": QueryResult.of(0)}, {})
    assert r.blockers[0].owner is None and r.escalate_to == []


def test_owner_role_without_contact() -> None:
    r = evaluate_gate(gate({"gte": 1}, owner="cost"), {"b": QueryResult.of(0)}, {})
    assert r.blockers[0].owner is None


def test_status_conversion() -> None:
    r = evaluate_gate(SEED, results(GOOD), {})
    s = r.blockers[1].to_status().model_dump(by_alias=True)
    assert s["name"] == "workflow_success_rate" and s["pass"] is True and s["value"] == 0.994
    assert s["target"] == "gte 0.99" and s["owner"] == "sre-oncall"


# --------------------------------------------------------------------------- contract JSON


def test_contract_json_is_the_seed_contract_made_live() -> None:
    at = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    doc = contract_json(SEED, evaluate_gate(SEED, results(GOOD), {}), "production-launch-2026-04-01", at)
    assert doc["gate_id"] == "production-launch-2026-04-01"
    assert doc["window"] == "10m"
    assert doc["decision"] == "allow"
    assert doc["evaluatedAt"] == "2026-04-01T12:00:00Z"
    assert doc["owners"] == {"reliability": "sre-oncall", "governance": "ai-governance", "cost": "finops"}
    assert doc["blockers"]["unapproved_high_risk_actions"] == {
        "target_eq": 0.0, "value": 0.0, "pass": True, "reason": "0 == 0", "owner": "ai-governance"}
    assert doc["blockers"]["workflow_success_rate"]["target_gte"] == 0.99
    assert doc["blockers"]["p95_latency_ms"]["target_lte"] == 1200
    assert doc["passing"] == "5/5"


def test_contract_json_ratio_and_missing() -> None:
    spec = gate({"lteBaselineRatio": 1.2})
    doc = contract_json(spec, evaluate_gate(spec, {"b": QueryResult.unavailable("NaN")}, {}), "g", datetime(2026, 1, 1))
    b = doc["blockers"]["b"]
    assert b["target_lte_baseline_ratio"] == 1.2
    assert b["value"] is None and b["baseline_value"] is None and b["pass"] is False and b["missing"] is True
    assert doc["decision"] == "hold"
    assert doc["evaluatedAt"] == "2026-01-01T00:00:00Z"


# --------------------------------------------------------------------------- rollback triggers


def trigger(**kw: Any) -> RollbackTrigger:
    return RollbackTrigger.model_validate({"name": "t", "query": "Q", **kw})


def test_trigger_query_ratio_shape() -> None:
    t = trigger(above={"baselineRatio": 2}, **{"for": "6s", "step": "1s"})
    q = sustained_trigger_query(t, "sum(c)", "sum(s)")
    assert "(vector(scalar(sum(c))) > bool (2.0 * scalar(sum(s))))" in q
    assert "0 * vector(scalar(sum(c)))" in q and "0 * scalar(sum(s))" in q
    assert "sum_over_time(" in q and "[6s:1s]" in q
    assert "count_over_time(vector(1)[6s:1s])" in q
    for part in ("held_steps", "data_steps", "steps", "value", "series", "baseline", "baseline_series"):
        assert f'"launchgate_part", "{part}"' in q


def test_trigger_query_value_below() -> None:
    t = trigger(below={"value": 0.5}, **{"for": "10m"})
    q = sustained_trigger_query(t, "sum(c)")
    assert "(vector(scalar(sum(c))) < bool (0.5))" in q
    assert "[10m:15s]" in q  # default step
    assert "baseline" not in q


def test_trigger_step_is_clamped_to_for() -> None:
    assert trigger_window(trigger(above={"value": 1}, **{"for": "10s", "step": "1m"})) == ("10s", "10s")


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"above": {"value": 1}, "below": {"value": 1}},
        {"above": {}},
        {"above": {"value": 1, "baselineRatio": 2}},
        {"above": {"value": math.inf}},
    ],
)
def test_trigger_needs_exactly_one_threshold(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one|finite"):
        sustained_trigger_query(trigger(**kw), "Q", "B")


def test_ratio_trigger_needs_a_baseline_query() -> None:
    with pytest.raises(ValueError, match="baseline"):
        sustained_trigger_query(trigger(above={"baselineRatio": 2}), "Q")


def parts(**values: str) -> RawResponse:
    return RawResponse(
        data={
            "resultType": "vector",
            "result": [{"metric": {"launchgate_part": k}, "value": [1.0, v]} for k, v in values.items()],
        }
    )


RATIO = trigger(above={"baselineRatio": 2}, **{"for": "6s", "step": "1s"})


@pytest.mark.parametrize(
    ("response", "fired", "missing", "reason"),
    [
        (parts(held_steps="7", data_steps="7", steps="7", value="0.3", series="1", baseline="0.1", baseline_series="1"),
         True, False, "above 2x baseline (0.2) for the whole 6s (7/7 steps of 1s); now 0.3, baseline 0.1"),
        (parts(held_steps="4", data_steps="7", steps="7", value="0.3", series="1", baseline="0.1", baseline_series="1"),
         False, False, "not sustained: above 2x baseline (0.2) at 4/7 steps of 1s in 6s; now 0.3"),
        (parts(held_steps="4", data_steps="5", steps="7", value="0.3", series="1", baseline="0.1", baseline_series="1"),
         False, False, "data at 5/7"),
        (parts(steps="7", value="NaN", baseline="NaN"), False, True, "now no data (empty vector), baseline no data"),
        (parts(steps="7", value="NaN", series="3", baseline="0.1", baseline_series="1"), False, True,
         "several series (3)"),
        (parts(held_steps="7", data_steps="7", steps="7", value="NaN", series="1", baseline="0.1", baseline_series="1"),
         True, True, "now no data (NaN)"),
        (parts(value="1"), False, True, "no evaluation steps"),
        (RawResponse(error="prometheus unreachable: connection refused"), False, True, "prometheus unreachable"),
        (RawResponse(data={"resultType": "scalar", "result": [1, "1"]}), False, True, "malformed"),
    ],
)
def test_interpret_trigger(response: RawResponse, fired: bool, missing: bool, reason: str) -> None:
    r = interpret_trigger(RATIO, response)
    assert r.fired is fired
    assert r.missing is missing
    assert reason in r.reason


def test_interpret_value_trigger() -> None:
    t = trigger(above={"value": 0}, **{"for": "30m"})
    r = interpret_trigger(t, parts(held_steps="121", data_steps="121", steps="121", value="2", series="1"))
    assert r.fired and r.value == 2 and r.baseline_value is None and not r.missing
    assert r.reason.startswith("above 0 for the whole 30m (121/121 steps of 15s)")


@pytest.mark.parametrize(
    ("held", "steps", "fired", "step", "expected"),
    [
        (0, 30, False, "1s", None),     # no breach: the interval decides
        (29, 30, False, "1s", 1.0),     # one step to go
        (10, 30, False, "1s", 20.0),    # at least the 20 unheld steps must slide out
        (10, 30, False, "2s", 40.0),    # (the caller caps this at the rollout's interval)
        (30, 30, True, "1s", None),     # fired: the rollback is this pass's business
        (3, 0, False, "1s", None),      # no steps: no data, nothing to hurry for
        (30, 30, False, "1s", 1.0),     # every step held but not fired (stale numbers): look again soon
    ],
)
def test_trigger_recheck_after(held: int, steps: int, fired: bool, step: str, expected: float | None) -> None:
    t = trigger(above={"value": 1}, **{"for": "60s"}, step=step)
    r = TriggerResult("t", fired, 2.0, None, "", False, held, held, steps)
    assert trigger_recheck_after(t, r) == expected


# --------------------------------------------------------------------------- triggers from raw series

T6 = [float(t) for t in range(1, 7)]  # the steps of a 6s:1s window evaluated at 6.5s


def at_steps(*values: float | None, times: list[float] = T6) -> list[tuple[float, float]]:
    """One series with a sample per step (None: no sample at that step)."""
    return [(t, v) for t, v in zip(times, values, strict=True) if v is not None]


NAN, INF = math.nan, math.inf
ABOVE_VALUE = trigger(above={"value": 0.5}, **{"for": "6s", "step": "1s"})
BELOW_VALUE = trigger(below={"value": 0.5}, **{"for": "6s", "step": "1s"})
BELOW_RATIO = trigger(below={"baselineRatio": 0.5}, **{"for": "6s", "step": "1s"})
BASE = [at_steps(0.1, 0.1, 0.1, 0.1, 0.1, 0.1)]


@pytest.mark.parametrize(
    ("trig", "canary", "canary_now", "baseline", "baseline_now", "counts", "fired", "missing", "reason"),
    [
        pytest.param(RATIO, [at_steps(0.3, 0.3, 0.3, 0.3, 0.3, 0.3)], [0.3], BASE, [0.1], (6, 6, 6), True, False,
                     "above 2x baseline (0.2) for the whole 6s (6/6 steps of 1s); now 0.3, baseline 0.1",
                     id="held-throughout"),
        pytest.param(RATIO, [at_steps(0.1, 0.1, 0.3, 0.3, 0.3, 0.3)], [0.3], BASE, [0.1], (4, 6, 6), False, False,
                     "not sustained: above 2x baseline (0.2) at 4/6 steps of 1s in 6s; now 0.3, baseline 0.1",
                     id="held-part-way"),
        pytest.param(RATIO, [at_steps(None, None, 0.3, 0.3, 0.3, 0.3)], [0.3], BASE, [0.1], (4, 4, 6), False, False,
                     "at 4/6 steps of 1s in 6s, data at 4/6; now 0.3", id="gap-never-holds"),
        pytest.param(RATIO, [at_steps(0.3, 0.3, 0.3, 0.3, 0.3, 0.3), at_steps(None, 0.3, None, None, None, None)],
                     [0.3], BASE, [0.1], (5, 5, 6), False, False, "data at 5/6", id="two-series-at-a-step-is-nan"),
        pytest.param(RATIO, [at_steps(0.3, 0.3, 0.3, 0.3, 0.3, 0.3), at_steps(None, None, None, None, None, 0.3)],
                     [0.3, 0.3], BASE, [0.1], (5, 5, 6), False, True,
                     "now no data (several series (2) where one was expected), baseline 0.1", id="two-series-now"),
        pytest.param(RATIO, [at_steps(NAN, INF, -INF, 0.3, 0.3, 0.3)], [NAN], BASE, [0.1], (3, 3, 6), False, True,
                     "data at 3/6; now no data (NaN)", id="non-finite-canary"),
        pytest.param(RATIO, [at_steps(0.3, 0.3, 0.3, 0.3, 0.3, 0.3)], [INF], [at_steps(INF, NAN, 0.1, 0.1, 0.1, 0.1)],
                     [0.1], (4, 4, 6), False, True, "now no data (+Inf)", id="non-finite-baseline"),
        pytest.param(RATIO, [at_steps(0.3, 0.3, 0.3, 0.3, 0.3, 0.3)], [0.3], [], [], (0, 0, 6), False, True,
                     "above 2x baseline at 0/6 steps of 1s in 6s, data at 0/6; now 0.3, baseline no data (empty vector)",
                     id="no-baseline"),
        pytest.param(RATIO, [], [], BASE, [0.1], (0, 0, 6), False, True,
                     "data at 0/6; now no data (empty vector), baseline 0.1", id="no-canary"),
        pytest.param(RATIO, [at_steps(0.2, 0.2, 0.2, 0.2, 0.2, 0.2)], [0.2], BASE, [0.1], (0, 6, 6), False, False,
                     "at 0/6 steps", id="at-the-limit-is-not-above"),
        pytest.param(trigger(above={"baselineRatio": 3}, **{"for": "6s", "step": "1s"}),
                     [at_steps(0.3, 0.3, 0.3, 0.3, 0.3, 0.3)], [0.3], BASE, [0.1], (0, 6, 6), False, False,
                     "at 0/6 steps", id="float-product-as-prometheus-computes-it"),  # 3 * 0.1 > 0.3
        pytest.param(RATIO, [at_steps(0.1, 0, 0, 0, 0, 0)], [0.1], [at_steps(0, 0, 0, 0, 0, 0)], [0], (1, 6, 6),
                     False, False, "above 2x baseline (0) at 1/6", id="zero-baseline"),
        pytest.param(BELOW_RATIO, [at_steps(0.01, 0.01, 0.01, 0.01, 0.01, 0.01)], [0.01], BASE, [0.1], (6, 6, 6), True,
                     False, "below 0.5x baseline (0.05) for the whole 6s", id="below-ratio"),
        pytest.param(ABOVE_VALUE, [at_steps(1, 1, 1, 1, 1, 1)], [1.0], None, None, (6, 6, 6), True, False,
                     "above 0.5 for the whole 6s (6/6 steps of 1s); now 1", id="above-value"),
        pytest.param(BELOW_VALUE, [at_steps(1, 0.4, 0.4, 0.5, 0.4, 0.4)], [0.4], None, None, (4, 6, 6), False, False,
                     "not sustained: below 0.5 at 4/6 steps of 1s in 6s; now 0.4", id="below-value"),
        pytest.param(ABOVE_VALUE, [at_steps(1, 1, 1, 1, 1, 1) + [(6.5, 1.0), (0.0, 1.0)]], [1.0], None, None,
                     (6, 6, 6), True, False, "6/6 steps", id="samples-off-the-steps-are-ignored"),
    ],
)
def test_trigger_from_series(trig: RollbackTrigger, canary: Any, canary_now: list[float], baseline: Any,
                             baseline_now: list[float] | None, counts: tuple[int, int, int], fired: bool,
                             missing: bool, reason: str) -> None:
    r = trigger_from_series(trig, T6, canary, canary_now, baseline, baseline_now)
    assert (r.held_steps, r.data_steps, r.steps) == counts
    assert r.fired is fired and r.missing is missing
    assert reason in r.reason, r.reason
    # ...and it is exactly what interpret_trigger reads from the answer Prometheus gives to
    # sustained_trigger_query in that situation (no held_steps/data_steps/series series when
    # there is nothing to count: sum_over_time and count of nothing are empty).
    answer = {"steps": str(r.steps)}
    if r.data_steps:
        answer |= {"held_steps": str(r.held_steps), "data_steps": str(r.data_steps)}
    answer["value"] = repr(canary_now[0]) if len(canary_now) == 1 else "NaN"
    if canary_now:
        answer["series"] = str(len(canary_now))
    if baseline_now is not None:
        answer["baseline"] = repr(baseline_now[0]) if len(baseline_now) == 1 else "NaN"
        if baseline_now:
            answer["baseline_series"] = str(len(baseline_now))
    assert interpret_trigger(trig, parts(**answer)) == r


def test_trigger_from_series_without_steps_is_missing() -> None:
    r = trigger_from_series(ABOVE_VALUE, [], [], [1.0])
    assert not r.fired and r.missing and r.reason == "no evaluation steps in the window"


def test_trigger_from_series_ratio_needs_the_baseline() -> None:
    with pytest.raises(ValueError, match="baseline"):
        trigger_from_series(RATIO, T6, [], [])


@pytest.mark.parametrize(
    ("for_", "step", "at_ms", "steps"),
    [
        ("6s", "1s", 10_437, [5000, 6000, 7000, 8000, 9000, 10000]),
        ("6s", "1s", 10_001, [5000, 6000, 7000, 8000, 9000, 10000]),
        ("6s", "1s", 10_999, [5000, 6000, 7000, 8000, 9000, 10000]),
        ("6s", "1s", 10_000, None),  # on a boundary: 2.x counts 4000 too, 3.x does not
        ("10s", "3s", 20_001, [12000, 15000, 18000]),
        ("10s", "3s", 22_000, None),  # at - for = 12000 is on a boundary
        ("1m", "15s", 1_000_007_500, [999_960_000, 999_975_000, 999_990_000, 1_000_005_000]),
        ("500ms", "1m", 100_250, [100_000]),  # the step is clamped to `for`: one step
    ],
)
def test_trigger_steps(for_: str, step: str, at_ms: int, steps: list[int] | None) -> None:
    assert trigger_steps(trigger(above={"value": 1}, **{"for": for_, "step": step}), at_ms) == steps


@pytest.mark.parametrize(
    ("for_", "step", "now_ms", "at_ms"),
    [
        ("6s", "1s", 10_437, 10_437),
        ("6s", "1s", 10_000, 9_999),
        ("6500ms", "1s", 12_500, 12_499),  # at - for on a boundary
        ("6500ms", "1s", 13_000, 12_999),
        ("2501ms", "3ms", 3_000, 2_998),  # 3000 is a boundary, and so is 2999 - 2501
        ("6s", "2ms", 10_001, None),  # every millisecond could be a boundary
    ],
)
def test_trigger_eval_time(for_: str, step: str, now_ms: int, at_ms: int | None) -> None:
    t = trigger(above={"value": 1}, **{"for": for_, "step": step})
    got = trigger_eval_time(t, now_ms)
    assert got == at_ms
    if got is not None:
        assert trigger_steps(t, got) is not None
