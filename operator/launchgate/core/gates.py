"""The pure core of launchgate: turn query results into pass/fail decisions. No I/O here.

Everything that decides whether a release moves forward lives in this module as plain functions
of plain data, so it can be table-tested exhaustively and so the operator, the CLI and the
backtester cannot disagree. The rules that matter most:

* Missing data never passes. An empty vector, NaN, ±Inf, several series where one was expected,
  a query error and an unreachable Prometheus all make a blocker "missing"; missing holds the
  gate (or blocks it, with onMissingData: fail), it never allows it.
* Comparisons are explicit about float noise (a 1e-9 relative tolerance at the boundary) and
  about a zero baseline (a ratio to 0 is decided by the comparison itself, with a clear reason).
* Rollback triggers are judged from Prometheus' own history with one subquery, so an operator
  restart can neither reset a sustained breach nor fake one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from launchgate.api import (
    BlockerStatus,
    GateDecision,
    LaunchGateSpec,
    MissingDataPolicy,
    RollbackTrigger,
    Target,
)
from launchgate.core.durations import parse_duration
from launchgate.core.evidence import (
    JudgeResult,
    Proportion,
    count_problem,
    judge,
    judge_proportion,
    judge_two_proportions,
)

TOLERANCE = 1e-9
# Reason prefixes for missing data caused by the metrics backend rather than by the metrics.
UNREACHABLE = "prometheus unreachable"
QUERY_ERROR = "query error"
TEMPLATE_ERROR = "template error"
DEFAULT_TRIGGER_STEP = "15s"
PART_LABEL = "launchgate_part"

# --------------------------------------------------------------------------- query results


@dataclass(frozen=True)
class QueryResult:
    """One number from Prometheus, or the reason there is none. Exactly one field is set."""

    value: float | None = None
    missing: str | None = None

    @property
    def ok(self) -> bool:
        return self.missing is None and self.value is not None

    @classmethod
    def of(cls, value: float) -> QueryResult:
        """A usable value; non-finite numbers are turned into missing data here too."""
        return _finite(float(value))

    @classmethod
    def unavailable(cls, reason: str) -> QueryResult:
        return cls(value=None, missing=reason)


def unanswered(missing: str) -> bool:
    """Is this missing-data reason one where no answer came at all: Prometheus unreachable, too
    slow, not Prometheus, refusing the query (parse or execution error), or a query that cannot be
    rendered? The alternative is an answer without a usable number (empty vector, NaN, several
    series): the data is missing, not the means to get it. Both hold a gate; only a caller that
    reports on the backend (the CLI's exit status) tells them apart."""
    return missing.startswith((UNREACHABLE, QUERY_ERROR, TEMPLATE_ERROR))


@dataclass(frozen=True)
class RawResponse:
    """An instant query's `data` object, or the error that prevented getting one.

    Trigger queries return several labelled series at once, so they are interpreted from the raw
    response rather than squeezed through QueryResult's one-number rule.
    """

    data: Mapping[str, Any] | None = None
    error: str | None = None


def _finite(value: float) -> QueryResult:
    if math.isnan(value):
        return QueryResult.unavailable("NaN")
    if math.isinf(value):
        return QueryResult.unavailable("+Inf" if value > 0 else "-Inf")
    return QueryResult(value=value)


def _sample_value(sample: Any) -> float:
    """Prometheus encodes sample values as JSON strings ("0.5", "NaN", "+Inf")."""
    return float(sample[1])


def from_prometheus(data: Mapping[str, Any] | None) -> QueryResult:
    """Apply the one-number rule to an instant query's `data` (resultType vector or scalar).

    Exactly one finite sample gives a value; everything else is missing data with a reason a
    person can act on. A query meant for a gate must aggregate down to one series: silently
    picking the first of several would make the gate depend on Prometheus' output order.
    """
    if not data:
        return QueryResult.unavailable("query error: empty response")
    kind = data.get("resultType")
    result = data.get("result")
    try:
        if kind == "scalar":
            return _finite(_sample_value(result))
        if kind == "vector":
            if not isinstance(result, list):
                return QueryResult.unavailable("query error: malformed vector")
            if len(result) == 0:
                return QueryResult.unavailable("empty vector")
            if len(result) > 1:
                return QueryResult.unavailable(f"several series ({len(result)}) where one was expected")
            return _finite(_sample_value(result[0]["value"]))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        return QueryResult.unavailable(f"query error: malformed result ({e})")
    return QueryResult.unavailable(f"query error: result type {kind!r}, expected vector or scalar")


# --------------------------------------------------------------------------- gate evaluation


@dataclass
class BlockerResult:
    name: str
    target: str
    value: float | None
    baseline_value: float | None
    passed: bool
    reason: str
    owner: str | None = None
    missing: bool = False
    on_missing_data: MissingDataPolicy = "hold"
    error: str | None = None
    """Why no answer came at all (see `unanswered`), when that is why this blocker is missing."""
    waiting: bool = False
    """Data came, but not enough evidence either way yet (a count blocker's interval straddles its
    target, fewer than minSamples): holds, and is not missing data."""
    n: float | None = None
    """The evidence: the canary's requests (counts) or samples (judge)."""
    baseline_n: float | None = None
    interval: tuple[float, float] | None = None
    """What the verdict was read from: the proportion's interval, canary - R x stable's for a
    baseline ratio, the shift's for a judge."""
    judge: str | None = None
    """A judge's outcome: pass, high, low or nodata."""

    @property
    def blocking(self) -> bool:
        """Does this blocker make the gate BLOCK (rather than at most hold)?"""
        if self.passed or self.waiting:
            return False
        return not self.missing or self.on_missing_data == "fail"

    def to_status(self) -> BlockerStatus:
        return BlockerStatus.model_validate(
            {
                "name": self.name,
                "target": self.target[:128],
                "value": self.value,
                "baselineValue": self.baseline_value,
                "pass": self.passed,
                "reason": self.reason[:1024],
                "owner": self.owner,
                "samples": self.n,
                "baselineSamples": self.baseline_n,
                "interval": list(self.interval) if self.interval is not None else None,
                "judge": self.judge,
            }
        )

    def evidence(self) -> dict[str, Any]:
        """n, baseline n, interval and judge outcome, where the blocker has them (for JSON output)."""
        out: dict[str, Any] = {}
        if self.n is not None:
            out["n"] = self.n
        if self.baseline_n is not None:
            out["baseline_n"] = self.baseline_n
        if self.interval is not None:
            out["interval"] = list(self.interval)
        if self.judge is not None:
            out["judge"] = self.judge
        if self.waiting:
            out["waiting"] = True
        return out


@dataclass
class GateResult:
    decision: GateDecision
    blockers: list[BlockerResult]
    passing: str
    failing: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    escalate_to: list[str] = field(default_factory=list)
    message: str = ""
    waiting: list[str] = field(default_factory=list)
    """Blockers holding for evidence, not for missing data."""

    def values(self) -> dict[str, float | None]:
        """Blocker values by name: what a decision record keeps as evidence."""
        return {b.name: b.value for b in self.blockers}


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def spec_problems(spec: LaunchGateSpec) -> list[str]:
    """Rules the API server enforces with CEL but pydantic does not; the CLI checks them itself."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, b in enumerate(spec.blockers):
        if b.name in seen:
            problems.append(f"spec.blockers[{i}].name: duplicate blocker name {b.name!r}")
        seen.add(b.name)
        if target_kind(b.target) is None:
            problems.append(
                f"spec.blockers[{i}].target: exactly one of eq, gte, lte, lteBaselineRatio, gteBaselineRatio, judge "
                "must be set"
            )
        for key in ("eq", "gte", "lte", "lte_baseline_ratio", "gte_baseline_ratio"):
            x = getattr(b.target, key)
            if x is not None and not math.isfinite(x):
                problems.append(f"spec.blockers[{i}].target: must be a finite number")
    return problems


def target_kind(target: Target) -> str | None:
    """The one comparison a Target sets, or None if it sets none or several (CEL forbids that)."""
    fields = target.set_fields()
    return fields[0] if len(fields) == 1 else None


def describe_target(target: Target) -> str:
    """'gte 0.99', 'lte 1.2x baseline': what status and the CLI show next to a value."""
    kind = target_kind(target)
    if kind == "eq":
        return f"eq {_fmt(target.eq or 0.0)}"
    if kind == "gte":
        return f"gte {_fmt(target.gte or 0.0)}"
    if kind == "lte":
        return f"lte {_fmt(target.lte or 0.0)}"
    if kind == "lteBaselineRatio":
        return f"lte {_fmt(target.lte_baseline_ratio or 0.0)}x baseline"
    if kind == "gteBaselineRatio":
        return f"gte {_fmt(target.gte_baseline_ratio or 0.0)}x baseline"
    if kind == "judge" and target.judge is not None:
        j = target.judge
        tol = f", tolerance {_fmt(j.tolerance)}" if j.tolerance else ""
        return f"judge {j.direction} at {j.confidence:g}{tol}"
    return "invalid"


def is_ratio(target: Target) -> bool:
    return target_kind(target) in ("lteBaselineRatio", "gteBaselineRatio")


def _compare(target: Target, v: float, base: float | None) -> tuple[bool, str]:
    """Pass or not, and why, for a finite canary value (and finite baseline for ratios)."""
    kind = target_kind(target)
    if kind == "eq":
        t = float(target.eq)  # type: ignore[arg-type]
        ok = _close(v, t)
        return ok, f"{_fmt(v)} {'==' if ok else '!='} {_fmt(t)}"
    if kind == "gte":
        t = float(target.gte)  # type: ignore[arg-type]
        ok = v >= t or _close(v, t)
        return ok, f"{_fmt(v)} >= {_fmt(t)}" if ok else f"{_fmt(v)} is below {_fmt(t)}"
    if kind == "lte":
        t = float(target.lte)  # type: ignore[arg-type]
        ok = v <= t or _close(v, t)
        return ok, f"{_fmt(v)} <= {_fmt(t)}" if ok else f"{_fmt(v)} is above {_fmt(t)}"
    if kind in ("lteBaselineRatio", "gteBaselineRatio"):
        assert base is not None
        upper = kind == "lteBaselineRatio"
        r = float(target.lte_baseline_ratio if upper else target.gte_baseline_ratio)  # type: ignore[arg-type]
        limit = r * base
        ok = (v <= limit if upper else v >= limit) or _close(v, limit)
        op = "<=" if upper else ">="
        if base == 0:
            if ok:
                return True, f"{_fmt(v)} {op} {_fmt(r)} x baseline 0"
            side = "above" if upper else "below"
            return False, (
                f"baseline is 0, so any canary value {side} 0 is {side} {_fmt(r)}x baseline (canary {_fmt(v)})"
            )
        ratio = f"; ratio {_fmt(v / base)}"
        if ok:
            return True, f"{_fmt(v)} {op} {_fmt(r)} x baseline {_fmt(base)} = {_fmt(limit)}{ratio}"
        side = "above" if upper else "below"
        return False, f"{_fmt(v)} is {side} {_fmt(r)} x baseline {_fmt(base)} = {_fmt(limit)}{ratio}"
    return False, "invalid target: exactly one of eq, gte, lte, lteBaselineRatio, gteBaselineRatio, judge must be set"


_NOT_EVALUATED = QueryResult.unavailable("not evaluated")


@dataclass(frozen=True)
class Counts:
    """A count blocker's answers: events (successes or errors) and total, for the canary and, for
    a baseline ratio, the stable version."""

    events: QueryResult
    total: QueryResult
    base_events: QueryResult | None = None
    base_total: QueryResult | None = None


@dataclass(frozen=True)
class Samples:
    """A judge's samples: the canary's and the stable's values at each step of the window, or why
    there are none (a query error, several series)."""

    canary: Sequence[float] = ()
    stable: Sequence[float] = ()
    missing: str | None = None


def samples_from_matrix(raw: RawResponse) -> tuple[list[float], str | None]:
    """One side's samples from a range query: the values of its one series (none: no samples);
    several series, an error or a malformed answer is missing data with the reason."""
    if raw.error is not None or raw.data is None:
        return [], raw.error or "query error: empty response"
    result = raw.data.get("result")
    if raw.data.get("resultType") != "matrix" or not isinstance(result, list):
        return [], f"query error: result type {raw.data.get('resultType')!r}, expected matrix"
    if len(result) > 1:
        return [], f"several series ({len(result)}) where one was expected"
    try:
        return ([float(v) for _, v in result[0]["values"]] if result else []), None
    except (KeyError, IndexError, TypeError, ValueError) as e:
        return [], f"query error: malformed result ({e})"


def _missing(common: dict[str, Any], policy: MissingDataPolicy, reason: str, cause: str | None) -> BlockerResult:
    effect = "blocks (onMissingData: fail)" if policy == "fail" else "holds (onMissingData: hold)"
    error = cause if cause is not None and unanswered(cause) else None
    return BlockerResult(passed=False, missing=True, reason=f"{reason}; {effect}", error=error, **common)


def _count_blocker(b: Any, counts: Counts | None, common: dict[str, Any], policy: MissingDataPolicy) -> BlockerResult:
    """A proportion from counts: compared as a value, or with confidence on its interval."""
    if counts is None:
        return _missing(common, policy, "no data: not evaluated", None)
    ratio = is_ratio(b.target)
    sides = [("", counts.events, counts.total)]
    if ratio:
        sides.append(("baseline ", counts.base_events or _NOT_EVALUATED, counts.base_total or _NOT_EVALUATED))
    numbers: list[tuple[float, float]] = []
    for label, ev, tot in sides:
        for q in (ev, tot):
            if not q.ok:
                return _missing(common, policy, f"no {label}data: {q.missing}", q.missing)
        assert ev.value is not None and tot.value is not None
        problem = count_problem(ev.value, tot.value, "baseline" if label else "canary")
        if problem is not None:
            return _missing(common, policy, f"no {label}data: {problem}", None)
        numbers.append((min(ev.value, tot.value), tot.value))
    (e, n), base = numbers[0], (numbers[1] if ratio else None)
    common = {**common, "value": e / n, "n": n, "baseline_value": base[0] / base[1] if base else None,
              "baseline_n": base[1] if base else None}
    kind = target_kind(b.target)
    if b.confidence is None:
        if b.min_samples is not None and n < b.min_samples:
            return BlockerResult(passed=False, waiting=True, reason=(
                f"not enough evidence: n = {n:.0f} < minSamples {b.min_samples}"), **common)
        passed, reason = _compare(b.target, e / n, common["baseline_value"])
        return BlockerResult(passed=passed, reason=f"{reason} (n = {n:.0f})", **common)
    prop: Proportion
    if base is not None:
        r = float(b.target.lte_baseline_ratio or b.target.gte_baseline_ratio)
        prop = judge_two_proportions(str(kind), r, e, n, base[0], base[1], b.confidence, b.min_samples)
    else:
        t = float(b.target.gte if kind == "gte" else b.target.lte)
        prop = judge_proportion(str(kind), t, e, n, b.confidence, b.min_samples)
    return BlockerResult(passed=prop.verdict == "pass", waiting=prop.verdict == "hold", reason=prop.reason,
                         interval=(prop.lower, prop.upper), **common)


def _judge_blocker(b: Any, samples: Samples | None, common: dict[str, Any], policy: MissingDataPolicy) -> BlockerResult:
    """The judge's outcome as a blocker: the bad direction fails, nodata is missing data (or not
    enough evidence yet), anything else passes."""
    if samples is None:
        return _missing(common, policy, "no data: not evaluated", None)
    if samples.missing is not None:
        return _missing(common, policy, f"no data: {samples.missing}", samples.missing)
    j = b.target.judge
    res: JudgeResult = judge(samples.canary, samples.stable, j.confidence, j.tolerance, j.direction, j.min_samples)
    common = {**common, "value": res.estimate, "baseline_value": res.stable_median, "n": float(res.n),
              "baseline_n": float(res.baseline_n), "judge": res.outcome,
              "interval": (res.lower, res.upper) if res.lower is not None and res.upper is not None else None}
    if res.outcome == "nodata":
        if not res.enough:
            return BlockerResult(passed=False, waiting=True, reason=res.reason, **common)
        return _missing(common, policy, f"no data: {res.reason}", None)
    return BlockerResult(passed=not res.bad, reason=res.reason, **common)


def evaluate_gate(
    spec: LaunchGateSpec,
    canary: Mapping[str, QueryResult],
    baseline: Mapping[str, QueryResult],
    counts: Mapping[str, Counts] | None = None,
    samples: Mapping[str, Samples] | None = None,
) -> GateResult:
    """Decide allow / block / hold from per-blocker results (keyed by blocker name): `canary` and
    `baseline` for query blockers, `counts` for count blockers, `samples` for judges.

    Precedence: anything failing (a real failure, or missing data under onMissingData: fail)
    blocks; otherwise missing data under hold, or not enough evidence, holds; only a full set of
    passes allows.
    """
    results: list[BlockerResult] = []
    for b in spec.blockers:
        policy: MissingDataPolicy = b.on_missing_data or spec.on_missing_data or "hold"
        owner = getattr(spec.owners, b.owner) if b.owner else None
        target = describe_target(b.target)
        c = canary.get(b.name, _NOT_EVALUATED)
        ratio = is_ratio(b.target)
        base = baseline.get(b.name, _NOT_EVALUATED) if ratio else None
        base_value = base.value if base is not None and base.ok else None
        common: dict[str, Any] = {
            "name": b.name,
            "target": target,
            "owner": owner,
            "on_missing_data": policy,
            "value": c.value if c.ok else None,
            "baseline_value": base_value,
        }
        if target == "invalid":
            passed, reason = _compare(b.target, 0.0, None)
            results.append(BlockerResult(passed=False, reason=reason, **common))
            continue
        if b.target.judge is not None:
            results.append(_judge_blocker(b, (samples or {}).get(b.name), common, policy))
            continue
        if b.count_queries() is not None:
            results.append(_count_blocker(b, (counts or {}).get(b.name), common, policy))
            continue
        missing_reason, cause = None, None
        if not c.ok:
            missing_reason, cause = f"no data: {c.missing}", c.missing
        elif base is not None and not base.ok:
            missing_reason, cause = f"no baseline data: {base.missing}", base.missing
        if missing_reason is not None:
            effect = "blocks (onMissingData: fail)" if policy == "fail" else "holds (onMissingData: hold)"
            error = cause if cause is not None and unanswered(cause) else None
            results.append(BlockerResult(passed=False, missing=True, reason=f"{missing_reason}; {effect}",
                                         error=error, **common))
            continue
        assert c.value is not None
        passed, reason = _compare(b.target, c.value, base_value)
        results.append(BlockerResult(passed=passed, reason=reason, **common))
    return summarize(results)


def summarize(results: Sequence[BlockerResult]) -> GateResult:
    """Fold blocker results into the gate's decision, escalation list and one-line message."""
    results = list(results)
    failing = [r for r in results if r.blocking]
    held = [r for r in results if not r.passed and not r.blocking]
    n_pass = sum(r.passed for r in results)
    decision: GateDecision = "block" if failing else ("hold" if held else "allow")
    escalate: list[str] = []
    for r in results:
        if not r.passed and r.owner and r.owner not in escalate:
            escalate.append(r.owner)
    passing = f"{n_pass}/{len(results)}"
    if decision == "allow":
        message = f"allow: {passing} blockers pass"
    else:
        shown = failing if decision == "block" else held
        details = "; ".join(f"{r.name}: {r.reason}" for r in shown)
        message = f"{decision}: {details} ({passing} pass)"
        if len(message) > 1000:
            message = message[:997] + "..."
    return GateResult(
        decision=decision,
        blockers=results,
        passing=passing,
        failing=[r.name for r in failing],
        missing=[r.name for r in results if r.missing],
        escalate_to=escalate,
        message=message,
        waiting=[r.name for r in results if r.waiting and not r.passed],
    )


_CONTRACT_KEYS = {
    "eq": "target_eq",
    "gte": "target_gte",
    "lte": "target_lte",
    "lteBaselineRatio": "target_lte_baseline_ratio",
    "gteBaselineRatio": "target_gte_baseline_ratio",
    "judge": "target_judge",
}


def _rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def contract_json(spec: LaunchGateSpec, result: GateResult, gate_name: str, evaluated_at: datetime) -> dict[str, Any]:
    """The AI Agent Production Deployment Checklist's launch-gate-contract.json, made live: targets,
    values, pass, owners, decision."""
    by_name = {r.name: r for r in result.blockers}
    blockers: dict[str, Any] = {}
    for b in spec.blockers:
        r = by_name.get(b.name)
        entry: dict[str, Any] = {}
        kind = target_kind(b.target)
        if kind is not None:
            entry[_CONTRACT_KEYS[kind]] = b.target.model_dump(by_alias=True)[kind]
        if r is not None:
            entry["value"] = r.value
            if is_ratio(b.target):
                entry["baseline_value"] = r.baseline_value
            entry["pass"] = r.passed
            entry["reason"] = r.reason
            entry.update(r.evidence())
            if r.missing:
                entry["missing"] = True
            if r.owner:
                entry["owner"] = r.owner
        blockers[b.name] = entry
    return {
        "gate_id": gate_name,
        "window": spec.window,
        "blockers": blockers,
        "owners": spec.owners.model_dump(exclude_none=True),
        "decision": result.decision,
        "passing": result.passing,
        "failing": result.failing,
        "missing": result.missing,
        "escalate_to": result.escalate_to,
        "message": result.message,
        "evaluatedAt": _rfc3339(evaluated_at),
    }


# --------------------------------------------------------------------------- rollback triggers

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")


@dataclass(frozen=True)
class TriggerResult:
    name: str
    fired: bool
    value: float | None
    baseline_value: float | None
    reason: str
    missing: bool
    held_steps: int = 0
    data_steps: int = 0
    steps: int = 0


def trigger_threshold(trigger: RollbackTrigger) -> tuple[str, float | None, float | None]:
    """('above' | 'below', value, baselineRatio); ValueError unless exactly one of each is set."""
    if (trigger.above is None) == (trigger.below is None):
        raise ValueError(f"trigger {trigger.name}: exactly one of above, below must be set")
    direction = "above" if trigger.above is not None else "below"
    th = trigger.above or trigger.below
    assert th is not None
    if (th.value is None) == (th.baseline_ratio is None):
        raise ValueError(f"trigger {trigger.name}: exactly one of value, baselineRatio must be set")
    for x in (th.value, th.baseline_ratio):
        if x is not None and not math.isfinite(x):
            raise ValueError(f"trigger {trigger.name}: threshold must be finite")
    return direction, th.value, th.baseline_ratio


def trigger_needs_baseline(trigger: RollbackTrigger) -> bool:
    return trigger_threshold(trigger)[2] is not None


def trigger_window(trigger: RollbackTrigger) -> tuple[str, str]:
    """(for, step) as PromQL durations; a step longer than `for` is clamped to `for`."""
    for_ = trigger.for_
    step = trigger.step or DEFAULT_TRIGGER_STEP
    for d in (for_, step):
        if not _DURATION.fullmatch(d):
            raise ValueError(f"trigger {trigger.name}: invalid duration {d!r}")
    if parse_duration(step) > parse_duration(for_):
        step = for_
    return for_, step


def trigger_recheck_after(trigger: RollbackTrigger, result: TriggerResult) -> float | None:
    """Seconds until `trigger` could first fire, when a breach is under way; None when none is.

    Triggers are otherwise looked at once per rollout interval, so traffic would return to stable
    up to a whole interval after the breach had held for its `for`. With `held` of `steps` steps
    breaching, the window must slide past at least the `steps - held` others before every step
    can have held, so the earliest moment is that many steps away (never less than one step).
    Looking then, and again if it has not held, costs extra passes only while a breach lasts.
    """
    if result.fired or result.held_steps <= 0 or result.steps <= 0:
        return None
    try:
        _, step = trigger_window(trigger)
    except ValueError:
        return None
    return max(1, result.steps - result.held_steps) * parse_duration(step)


def _part(expr: str, name: str) -> str:
    return f'label_replace({expr}, "{PART_LABEL}", "{name}", "", "")'


def sustained_trigger_query(trigger: RollbackTrigger, canary_query: str, baseline_query: str | None = None) -> str:
    """One PromQL query that says whether `trigger` held for its whole `for`, from Prometheus' data.

    `canary_query` / `baseline_query` are already rendered and must each yield one series.
    Each is collapsed with scalar(), which sidesteps vector matching between canary and baseline
    series that carry different labels (version="a" vs version="b"), and turns "no series" and
    "several series" into NaN. At every `step` of the last `for`, the inner expression is

        (vector(scalar(Q)) > bool (R * scalar(B))) + 0 * vector(scalar(Q)) + 0 * scalar(B)

    which is 1 (held), 0 (not held) or NaN (no usable data: empty, NaN, ±Inf, 0*Inf = NaN).
    Filtering it with `>= 0` drops the NaN steps, so over the subquery
    sum_over_time = steps that held, count_over_time = steps with data, and a separate
    count_over_time(vector(1)[for:step]) = steps in the window. The trigger fires only when every
    step held: a gap, a restart of the canary or a late start can never count as "held".
    The current values and series counts ride along as extra series, so one query per trigger and
    evaluation gives the decision and its evidence, atomically at the same evaluation time.
    """
    direction, value, ratio = trigger_threshold(trigger)
    for_, step = trigger_window(trigger)
    op = ">" if direction == "above" else "<"
    q = f"vector(scalar({canary_query}))"
    inner_parts = []
    if ratio is not None:
        if baseline_query is None:
            raise ValueError(f"trigger {trigger.name}: a baselineRatio needs a baseline query")
        b = f"scalar({baseline_query})"
        inner_parts = [f"({q} {op} bool ({ratio!r} * {b}))", f"0 * {q}", f"0 * {b}"]
    else:
        inner_parts = [f"({q} {op} bool ({float(value)!r}))", f"0 * {q}"]  # type: ignore[arg-type]
    inner = "((" + " + ".join(inner_parts) + ") >= 0)"
    parts = [
        _part(f"sum_over_time({inner}[{for_}:{step}])", "held_steps"),
        _part(f"count_over_time({inner}[{for_}:{step}])", "data_steps"),
        _part(f"count_over_time(vector(1)[{for_}:{step}])", "steps"),
        _part(q, "value"),
        _part(f"count({canary_query})", "series"),
    ]
    if ratio is not None:
        parts += [
            _part(f"vector(scalar({baseline_query}))", "baseline"),
            _part(f"count({baseline_query})", "baseline_series"),
        ]
    return "\n or ".join(parts)


def _current(value: float | None, series: float | None) -> QueryResult:
    """The one-number rule for a value that came back through scalar()."""
    if series is None or series == 0:
        return QueryResult.unavailable("empty vector")
    if series > 1:
        return QueryResult.unavailable(f"several series ({int(series)}) where one was expected")
    if value is None:
        return QueryResult.unavailable("empty vector")
    return _finite(value)


def interpret_trigger(trigger: RollbackTrigger, response: RawResponse) -> TriggerResult:
    """Read the answer to `sustained_trigger_query`: fired only if every step held."""
    ratio = trigger_threshold(trigger)[2]
    trigger_window(trigger)  # an invalid trigger raises here, as the query builder does
    if response.error is not None or response.data is None:
        reason = response.error or "query error: empty response"
        return TriggerResult(trigger.name, False, None, None, reason, True)
    parts: dict[str, float] = {}
    try:
        if response.data.get("resultType") != "vector":
            raise ValueError(f"result type {response.data.get('resultType')!r}")
        for s in response.data.get("result") or []:
            parts[s["metric"].get(PART_LABEL, "")] = _sample_value(s["value"])
    except (KeyError, IndexError, TypeError, ValueError) as e:
        return TriggerResult(trigger.name, False, None, None, f"query error: malformed result ({e})", True)

    def count(name: str) -> int:
        x = parts.get(name, 0.0)
        return int(x) if math.isfinite(x) else 0

    cur = _current(parts.get("value"), parts.get("series"))
    base = _current(parts.get("baseline"), parts.get("baseline_series")) if ratio is not None else None
    return _trigger_verdict(trigger, count("held_steps"), count("data_steps"), count("steps"), cur, base)


def _trigger_verdict(trigger: RollbackTrigger, held: int, data: int, steps: int, cur: QueryResult,
                     base: QueryResult | None) -> TriggerResult:
    """The decision and its reason from the counts and the current values, however they were obtained."""
    direction, value, ratio = trigger_threshold(trigger)
    for_, step = trigger_window(trigger)
    v = cur.value if cur.ok else None
    bv = base.value if base is not None and base.ok else None
    fired = steps > 0 and held == steps

    if ratio is not None:
        limit_text = f"{ratio:g}x baseline" + (f" ({_fmt(ratio * bv)})" if bv is not None else "")
    else:
        limit_text = _fmt(float(value))  # type: ignore[arg-type]
    now = f"now {_fmt(v)}" if v is not None else f"now no data ({cur.missing})"
    if base is not None:
        now += f", baseline {_fmt(bv)}" if bv is not None else f", baseline no data ({base.missing})"
    missing = not cur.ok or (base is not None and not base.ok)
    if steps == 0:
        reason = "no evaluation steps in the window"
        missing = True
    elif fired:
        reason = f"{direction} {limit_text} for the whole {for_} ({held}/{steps} steps of {step}); {now}"
    else:
        gaps = f", data at {data}/{steps}" if data < steps else ""
        reason = f"not sustained: {direction} {limit_text} at {held}/{steps} steps of {step} in {for_}{gaps}; {now}"
    return TriggerResult(trigger.name, fired, v, bv, reason, missing, held, data, steps)


# --------------------------------------------------------------------------- triggers from raw series
#
# Sharing a trigger between rollouts means asking Prometheus for the trigger query's own series
# (every identity at once) instead of for the verdict, and computing the verdict here. These
# functions are that computation; they must agree with `sustained_trigger_query` to the step.

Series = Sequence[Sequence[Any]]
"""One series' samples as (timestamp in seconds, value); the value may still be Prometheus' text
("0.25", "NaN", "+Inf"), which `float` reads."""


def trigger_window_ms(trigger: RollbackTrigger) -> tuple[int, int]:
    """(for, step) of `trigger_window` in whole milliseconds, Prometheus' time resolution."""
    for_, step = trigger_window(trigger)
    return round(parse_duration(for_) * 1000), round(parse_duration(step) * 1000)


def trigger_steps(trigger: RollbackTrigger, at_ms: int) -> list[int] | None:
    """The timestamps (ms) of the subquery's steps when `sustained_trigger_query` runs at `at_ms`.

    Prometheus puts a subquery's steps on absolute multiples of its step. Whether a step exactly
    `for` before the evaluation time counts differs between versions (2.x: [at-for, at], checked
    against 2.42; 3.x: (at-for, at]), so when `at_ms` or `at_ms - for` is a multiple of the step the
    answer depends on the server and this returns None: ask `trigger_eval_time` for a time that
    does not. Otherwise the steps are the multiples strictly inside (at-for, at), on every version.
    """
    for_ms, step_ms = trigger_window_ms(trigger)
    if for_ms <= 0 or step_ms <= 0 or at_ms % step_ms == 0 or (at_ms - for_ms) % step_ms == 0:
        return None
    first = (at_ms - for_ms) // step_ms * step_ms + step_ms
    return list(range(first, at_ms, step_ms))


def trigger_eval_time(trigger: RollbackTrigger, now_ms: int) -> int | None:
    """The latest time at most 2 ms before `now_ms` for which `trigger_steps` is not ambiguous.

    None for a step under 3 ms (every millisecond could be on a boundary), or an invalid trigger.
    """
    try:
        for_ms, step_ms = trigger_window_ms(trigger)
    except ValueError:
        return None
    if step_ms < 3 or for_ms <= 0:
        return None
    return next(t for t in (now_ms, now_ms - 1, now_ms - 2) if t % step_ms and (t - for_ms) % step_ms)


def _scalar_at(samples: Sequence[float]) -> float:
    """scalar() of the values a query returned at one time: its only value, else NaN."""
    return samples[0] if len(samples) == 1 else math.nan


def _steps_of(series: Sequence[Series]) -> dict[int, list[float]]:
    by_step: dict[int, list[float]] = {}
    for s in series:
        for t, v in s:
            by_step.setdefault(round(t * 1000), []).append(float(v))
    return by_step


def trigger_from_series(
    trigger: RollbackTrigger,
    step_times: Sequence[float],
    canary: Sequence[Series],
    canary_now: Sequence[float],
    baseline: Sequence[Series] | None = None,
    baseline_now: Sequence[float] | None = None,
) -> TriggerResult:
    """What `interpret_trigger` says about `sustained_trigger_query` run at time T, computed from
    the canary and baseline queries' own results, so one query can serve every rollout.

    `step_times` are the subquery's steps at T (`trigger_steps`), in seconds. `canary` is every
    series the canary query returned over them (a range query at those steps), `canary_now` the
    value of every series it returned at T (an instant query); `baseline` and `baseline_now` the
    same for a baselineRatio trigger. Timestamps are matched to the millisecond.

    At each step, like scalar() in the query: no series or several series is NaN. A step has data
    when the canary (and baseline) value is finite, and held when it also breaches the threshold,
    computed with the same float operations as Prometheus (threshold, or ratio * baseline).
    """
    direction, value, ratio = trigger_threshold(trigger)
    trigger_window(trigger)
    if ratio is not None and (baseline is None or baseline_now is None):
        raise ValueError(f"trigger {trigger.name}: a baselineRatio needs the baseline's series")
    above = direction == "above"
    canary_at = _steps_of(canary)
    baseline_at = _steps_of(baseline) if ratio is not None and baseline is not None else {}
    held = data = 0
    for t in step_times:
        key = round(t * 1000)
        q = _scalar_at(canary_at.get(key, ()))
        if ratio is not None:
            b = _scalar_at(baseline_at.get(key, ()))
            limit = ratio * b
        else:
            b, limit = 0.0, float(value)  # type: ignore[arg-type]
        if not (math.isfinite(q) and math.isfinite(b)):
            continue  # (q > bool limit) + 0 * q + 0 * b is NaN: dropped by `>= 0`
        data += 1
        held += (q > limit) if above else (q < limit)
    cur = _current(_scalar_at(canary_now), float(len(canary_now)))
    base = None
    if ratio is not None:
        assert baseline_now is not None
        base = _current(_scalar_at(baseline_now), float(len(baseline_now)))
    return _trigger_verdict(trigger, held, data, len(step_times), cur, base)


# --------------------------------------------------------------------------- triggers with evidence
#
# A trigger with counts or a judge is judged here from range queries (`engine.evaluate_trigger`
# asks them), not inside Prometheus: a Wilson interval or a Mann-Whitney test is not PromQL.

StepCounts = tuple[float, float, float | None, float | None]
"""(events, total, baseline events, baseline total) at one step; the baseline's None without a baselineRatio."""


def _step_held(trigger: RollbackTrigger, above: bool, value: float | None, ratio: float | None,
               c: StepCounts) -> tuple[bool, Proportion | None]:
    """Did the proportion breach the threshold at this step (with the trigger's confidence)?"""
    e, n, be, bn = c
    e = min(e, n)
    if trigger.min_samples is not None and n < trigger.min_samples:
        return False, None
    if ratio is not None:
        assert be is not None and bn is not None
        be = min(be, bn)
        if trigger.confidence is None:
            p, limit = e / n, ratio * be / bn
            return (p > limit if above else p < limit), None
        kind = "lteBaselineRatio" if above else "gteBaselineRatio"
        prop = judge_two_proportions(kind, ratio, e, n, be, bn, trigger.confidence)
    else:
        assert value is not None
        if trigger.confidence is None:
            return (e / n > value if above else e / n < value), None
        prop = judge_proportion("lte" if above else "gte", value, e, n, trigger.confidence)
    return prop.verdict == "fail", prop


def evidence_trigger_verdict(trigger: RollbackTrigger, steps: Sequence[StepCounts | None], step: str) -> TriggerResult:
    """A count trigger over its `for`: fired only when the proportion breached its threshold at
    every step, each step judged with the trigger's confidence. A step without usable counts (None,
    no requests, NaN) never holds, so a gap can never count as a breach."""
    direction, value, ratio = trigger_threshold(trigger)
    above = direction == "above"
    held = data = 0
    last: tuple[StepCounts, Proportion | None] | None = None
    for c in steps:
        if c is None or count_problem(c[0], c[1]) is not None or \
                (ratio is not None and (c[2] is None or c[3] is None or count_problem(c[2], c[3]) is not None)):
            continue
        data += 1
        hit, prop = _step_held(trigger, above, value, ratio, c)
        held += hit
        last = (c, prop)
    limit = f"{ratio:g}x baseline" if ratio is not None else _fmt(float(value))  # type: ignore[arg-type]
    sure = f" with confidence {trigger.confidence:g}" if trigger.confidence is not None else ""
    v = bv = None
    now = "now no data"
    if last is not None:
        (e, n, be, bn), prop = last
        v = min(e, n) / n
        bv = min(be, bn) / bn if be is not None and bn is not None else None
        now = prop.reason if prop is not None else (
            f"now {_fmt(v)} (n = {n:.0f})" + (f", baseline {_fmt(bv)} (n = {bn:.0f})" if bv is not None else ""))
    fired = len(steps) > 0 and held == len(steps)
    if not steps:
        return TriggerResult(trigger.name, False, None, None, "no evaluation steps in the window", True)
    if fired:
        reason = f"{direction} {limit}{sure} for the whole {trigger.for_} ({held}/{len(steps)} steps of {step}); {now}"
    else:
        gaps = f", data at {data}/{len(steps)}" if data < len(steps) else ""
        reason = (f"not sustained: {direction} {limit}{sure} at {held}/{len(steps)} steps of {step} in "
                  f"{trigger.for_}{gaps}; {now}")
    return TriggerResult(trigger.name, fired, v, bv, reason, last is None, held, data, len(steps))


def judge_trigger_verdict(trigger: RollbackTrigger, samples: Samples) -> TriggerResult:
    """A judge trigger: fired when the judge finds the bad direction over `for`; nodata never fires."""
    j = trigger.judge
    assert j is not None
    if samples.missing is not None:
        return TriggerResult(trigger.name, False, None, None, f"no data: {samples.missing}", True)
    res = judge(samples.canary, samples.stable, j.confidence, j.tolerance, j.direction, j.min_samples)
    fired = res.bad
    reason = res.reason if not fired else f"{j.direction}: {res.reason}"
    return TriggerResult(trigger.name, fired, res.estimate, res.stable_median, reason, res.outcome == "nodata",
                         0, res.n, res.n)
