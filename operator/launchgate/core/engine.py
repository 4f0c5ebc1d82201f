"""The glue the operator and the CLI share: render queries, ask a MetricsSource, decide.

Rendering is where the rollout's identity enters the gate: `$version` is bound to the canary for
the canary's value and to the stable version for a ratio's baseline (unless the blocker has its own
baselineQuery). A blocker whose query cannot be rendered is missing data with the reason, never a
crash and never a pass. A blocker whose canary series are not fresh is missing data too (see
freshness.py). The same query is sent once per evaluation even if several blockers (or the canary
and baseline sides of a blocker that does not use $version) share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from launchgate.api import Blocker, LaunchGateSpec, RollbackTrigger
from launchgate.core.durations import parse_duration
from launchgate.core.evidence import MAX_JUDGE_SAMPLES
from launchgate.core.freshness import (
    DEFAULT_SCRAPE_INTERVAL,
    blocker_freshness,
    canary_selectors,
    default_freshness,
    freshness_query,
    stale_reason,
)
from launchgate.core.gates import (
    QUERY_ERROR,
    TEMPLATE_ERROR,
    Counts,
    GateResult,
    QueryResult,
    RawResponse,
    Samples,
    StepCounts,
    TriggerResult,
    evaluate_gate,
    evidence_trigger_verdict,
    interpret_trigger,
    is_ratio,
    judge_trigger_verdict,
    samples_from_matrix,
    sustained_trigger_query,
    trigger_needs_baseline,
    trigger_window,
)
from launchgate.core.promql import KNOWN_VARIABLES, TemplateError, UnboundVariable, render
from launchgate.core.protocols import MetricsSource

# The variables a caller binds (a rollout, spec.variables, the CLI's --var). The engine binds the
# other two itself: $version from canary or stable, $window from the gate's own window.
CALLER_VARIABLES = tuple(v for v in KNOWN_VARIABLES if v not in ("version", "window"))


@dataclass(frozen=True)
class BlockerQueries:
    """The rendered queries of one blocker: canary side, and baseline side for ratio targets."""

    name: str
    canary: str
    baseline: str | None


def _bind(variables: Mapping[str, str], version_of: str) -> dict[str, str]:
    """`variables` with $version bound to the value of `version_of` (canary or stable), if set."""
    out = dict(variables)
    if version_of in variables:
        out["version"] = variables[version_of]
    else:
        out.pop("version", None)
    return out


def gate_variables(spec: LaunchGateSpec, variables: Mapping[str, str]) -> dict[str, str]:
    """The gate's own window is part of its contract, so it wins over a caller's `window`."""
    return {**variables, "window": spec.window}


_TAKES = {"canary": "the canary's version", "stable": "the stable version for the baseline"}


def _render_sides(query: str, baseline_query: str | None, variables: Mapping[str, str]) -> tuple[str, str | None]:
    """The canary side's query, and the baseline side's when there is one. $version takes a
    different value on each side, so when it is unbound the error names exactly the variables
    (canary, stable or both) that are missing, not every one that could be."""
    unbound: list[str] = []

    def side(text: str, version_of: str) -> str:
        try:
            return render(text, _bind(variables, version_of))
        except UnboundVariable as e:
            if e.name != "version":
                raise
            unbound.append(version_of)
            return ""

    canary = side(query, "canary")
    baseline = side(baseline_query, "stable") if baseline_query is not None else None
    if unbound:
        raise UnboundVariable("version", "variable $version is used but not bound: it takes "
                              + " and ".join(_TAKES[s] for s in unbound) + ", so set "
                              + " and ".join(f"{s}=..." for s in unbound))
    return canary, baseline


def _compares_stable(blocker: Blocker) -> bool:
    """Does the blocker ask its queries for the stable version too (a baseline ratio, a judge)?"""
    return is_ratio(blocker.target) or blocker.target.judge is not None


def render_blocker(blocker: Blocker, variables: Mapping[str, str]) -> BlockerQueries:
    """Render one blocker's queries; TemplateError names the blocker and the variable. For counts,
    `canary` and `baseline` are the total's; the events query is rendered (and checked) too."""
    try:
        counts = blocker.count_queries()
        if counts is not None:
            for template in counts:
                canary, baseline = _render_sides(template, template if _compares_stable(blocker) else None,
                                                 variables)
        else:
            query = blocker.query or ""
            baseline_query = (blocker.baseline_query or query) if _compares_stable(blocker) else None
            canary, baseline = _render_sides(query, baseline_query, variables)
    except TemplateError as e:
        raise TemplateError(f"blocker {blocker.name}: {e}") from None
    return BlockerQueries(blocker.name, canary, baseline)


def render_gate(spec: LaunchGateSpec, variables: Mapping[str, str]) -> list[BlockerQueries]:
    """All of a gate's queries, or TemplateError: the CLI's up-front check for bad input."""
    v = gate_variables(spec, variables)
    return [render_blocker(b, v) for b in spec.blockers]


@dataclass
class _Asked:
    """The answers of a gate's blockers, by kind of blocker."""

    canary: dict[str, QueryResult] = field(default_factory=dict)
    baseline: dict[str, QueryResult] = field(default_factory=dict)
    counts: dict[str, Counts] = field(default_factory=dict)
    samples: dict[str, Samples] = field(default_factory=dict)

    def blocker(self, b: Blocker, v: Mapping[str, str], ask: Callable[..., QueryResult], source: MetricsSource,
                at: datetime | None, window: str) -> None:
        try:
            q = render_blocker(b, v)
        except TemplateError as e:
            broken = QueryResult.unavailable(f"{TEMPLATE_ERROR}: {e}")
            self.canary[b.name] = broken
            self.counts[b.name] = Counts(broken, broken, broken, broken)
            self.samples[b.name] = Samples(missing=broken.missing)
            return
        pair = b.count_queries()
        if b.target.judge is not None:
            self.samples[b.name] = _samples(b, source, v, at, b.target.judge.step, window)
        elif pair is not None:
            events, total = pair
            c = Counts(ask(events, _bind(v, "canary")), ask(total, _bind(v, "canary")))
            if q.baseline is not None:
                c = Counts(c.events, c.total, ask(events, _bind(v, "stable")), ask(total, _bind(v, "stable")))
            self.counts[b.name] = c
        else:
            self.canary[b.name] = ask(b.query or "", _bind(v, "canary"), q.canary)
            if q.baseline is not None:
                self.baseline[b.name] = ask(b.baseline_query or b.query or "", _bind(v, "stable"), q.baseline)


def evaluate(
    spec: LaunchGateSpec,
    source: MetricsSource,
    variables: Mapping[str, str],
    at: datetime | None = None,
    max_age: float | None = None,
    freshness: float | None = None,
) -> GateResult:
    """Evaluate a gate once, at `at` (None = Prometheus' now). Never raises for bad data.
    `max_age`: how old a shared answer may be (see sharing.py); ignored by other sources.
    `freshness`: seconds the canary's newest sample may be old where neither the blocker nor the
    gate says (default: twice DEFAULT_SCRAPE_INTERVAL)."""
    v = gate_variables(spec, variables)
    cache: dict[str, QueryResult] = {}
    # A source that shares batched queries between rollouts (sharing.SharedQueries) is asked by
    # template, so it can recognise the shape; any other source gets the rendered query.
    by_template = getattr(source, "query_template", None)

    def ask(template: str, bound: Mapping[str, str], promql: str | None = None) -> QueryResult:
        if promql is None:
            promql = render(template, bound)
        if promql not in cache:
            cache[promql] = by_template(template, bound, at, max_age) if by_template is not None \
                else source.query(promql, at)
        return cache[promql]

    asked = _Asked()
    for b in spec.blockers:
        asked.blocker(b, v, ask, source, at, spec.window)
    canary, baseline, counts, samples = asked.canary, asked.baseline, asked.counts, asked.samples
    result = evaluate_gate(spec, canary, baseline, counts, samples)
    default = freshness if freshness is not None else default_freshness(DEFAULT_SCRAPE_INTERVAL)
    stale = _stale_blockers(spec, result, default, lambda t: ask(t, _bind(v, "canary")))
    if not stale:
        return result
    stale_counts = {name: Counts(r, r) for name, r in stale.items()}
    stale_samples = {name: Samples(missing=r.missing) for name, r in stale.items()}
    return evaluate_gate(spec, {**canary, **stale}, baseline, {**counts, **stale_counts},
                         {**samples, **stale_samples})


def _range_times(at: datetime | None, window: str, step: str) -> tuple[datetime, datetime, float]:
    """(start, end, step seconds) of the range query that samples `window` every `step`, ending at
    `at` (None: now). The judge keeps at most MAX_JUDGE_SAMPLES samples, so the step widens on a
    long window."""
    end = at or datetime.now(UTC)
    length, every = parse_duration(window), parse_duration(step)
    every = max(every, length / MAX_JUDGE_SAMPLES)
    steps = max(1, int(length // every))
    return end - timedelta(seconds=every * (steps - 1)), end, every


def range_query(source: MetricsSource, promql: str, start: datetime, end: datetime, step: float) -> RawResponse:
    """A range query through `source`, or why it cannot ask one (missing data, never a crash)."""
    ranged = getattr(source, "query_range_raw", None)
    if ranged is None:
        return RawResponse(error=f"{QUERY_ERROR}: this metrics source cannot run range queries")
    raw: RawResponse = ranged(promql, start, end, step)
    return raw


def _samples(b: Blocker, source: MetricsSource, variables: Mapping[str, str], at: datetime | None,
             step: str, window: str) -> Samples:
    """A judge's samples: its query at every step of the window, for the canary and for the stable."""
    start, end, every = _range_times(at, window, step)
    query = b.query or ""
    sides: list[list[float]] = []
    for version_of, template in (("canary", query), ("stable", b.baseline_query or query)):
        values, missing = samples_from_matrix(range_query(source, render(template, _bind(variables, version_of)),
                                                          start, end, every))
        if missing is not None:
            side = "" if version_of == "canary" else "stable: "
            return Samples(missing=f"{side}{missing}")
        sides.append(values)
    return Samples(sides[0], sides[1])


def _stale_blockers(spec: LaunchGateSpec, result: GateResult, default: float,
                    ask: Callable[[str], QueryResult]) -> dict[str, QueryResult]:
    """The passing blockers whose canary data is not fresh, as missing data with the reason."""
    stale: dict[str, QueryResult] = {}
    for b, r in zip(spec.blockers, result.blockers, strict=True):
        if r.passed:
            reason = _stale(b, blocker_freshness(spec, b, default), ask)
            if reason is not None:
                stale[b.name] = QueryResult.unavailable(reason)
    return stale


def _stale(blocker: Blocker, limit: float, ask: Callable[[str], QueryResult]) -> str | None:
    """Why `blocker`'s canary data is not fresh, or None when it is (see freshness.py). Asked only
    of blockers that pass: freshness can only take a pass away, and a value that fails its target
    failed while the canary reported, so it blocks whatever its age."""
    ages: list[QueryResult] = []
    for template in blocker.templates():
        for selector in canary_selectors(template):
            try:
                ages.append(ask(freshness_query(selector)))
            except TemplateError as e:
                ages.append(QueryResult.unavailable(f"{TEMPLATE_ERROR}: {e}"))
    return stale_reason(ages, limit)


def render_trigger(trigger: RollbackTrigger, variables: Mapping[str, str]) -> tuple[str, str | None]:
    """(canary query, baseline query or None) for a rollback trigger (for counts: the total's,
    the events query rendered and checked too)."""
    stable = trigger.judge is not None or trigger_needs_baseline(trigger)
    try:
        pair = trigger.count_queries()
        if pair is not None:
            for template in pair:
                canary, baseline = _render_sides(template, template if stable else None, variables)
            return canary, baseline
        query = trigger.query or ""
        return _render_sides(query, (trigger.baseline_query or query) if stable else None, variables)
    except TemplateError as e:
        raise TemplateError(f"trigger {trigger.name}: {e}") from None


def _series_by_time(raw: RawResponse) -> tuple[dict[int, float], str | None]:
    """One side's values by step time (ms) from a range query; several series is missing data."""
    if raw.error is not None or raw.data is None:
        return {}, raw.error or "query error: empty response"
    result = raw.data.get("result") or []
    if len(result) > 1:
        return {}, f"several series ({len(result)}) where one was expected"
    try:
        return ({round(float(t) * 1000): float(v) for t, v in result[0]["values"]} if result else {}), None
    except (KeyError, IndexError, TypeError, ValueError) as e:
        return {}, f"query error: malformed result ({e})"


def _evidence_trigger(trigger: RollbackTrigger, source: MetricsSource, variables: Mapping[str, str],
                      at: datetime | None) -> TriggerResult:
    """A trigger judged in launchgate from range queries over its `for`: counts at every step, or
    the judge's samples. Asked on its own (not shared between rollouts)."""
    render_trigger(trigger, variables)  # template errors first, naming the trigger
    if trigger.judge is not None:
        step = trigger.step or trigger.judge.step
        start, end, every = _range_times(at, trigger.for_, step)
        query = trigger.query or ""
        judged: list[list[float]] = []
        for version_of, template in (("canary", query), ("stable", trigger.baseline_query or query)):
            values, missing = samples_from_matrix(range_query(
                source, render(template, _bind(variables, version_of)), start, end, every))
            if missing is not None:
                return judge_trigger_verdict(trigger, Samples(missing=missing))
            judged.append(values)
        return judge_trigger_verdict(trigger, Samples(judged[0], judged[1]))
    pair = trigger.count_queries()
    assert pair is not None
    for_, step = trigger_window(trigger)
    start, end, every = _range_times(at, for_, step)
    times = [round((start + timedelta(seconds=every * k)).timestamp() * 1000)
             for k in range(int(round((end - start).total_seconds() / every)) + 1)]
    sides_wanted = ["canary", "stable"] if trigger_needs_baseline(trigger) else ["canary"]
    by_side: list[dict[int, float]] = []
    for version_of in sides_wanted:
        for template in pair:
            by_time, missing = _series_by_time(range_query(
                source, render(template, _bind(variables, version_of)), start, end, every))
            if missing is not None:
                return TriggerResult(trigger.name, False, None, None, f"no data: {missing}", True)
            by_side.append(by_time)
    steps: list[StepCounts | None] = []
    for t in times:
        got = [side.get(t) for side in by_side]
        if any(g is None for g in got):
            steps.append(None)
            continue
        e, n = got[0], got[1]
        assert e is not None and n is not None
        steps.append((e, n, got[2], got[3]) if len(got) == 4 else (e, n, None, None))
    return evidence_trigger_verdict(trigger, steps, step)


def evaluate_trigger(
    trigger: RollbackTrigger,
    source: MetricsSource,
    variables: Mapping[str, str],
    at: datetime | None = None,
    max_age: float | None = None,
) -> TriggerResult:
    """Has `trigger` held for its whole `for`? One query; judged entirely from Prometheus' data,
    so a fresh engine (e.g. after an operator restart) gives the same answer.
    `max_age`: how old a shared answer may be (see sharing.py); ignored by other sources."""
    if trigger.evidence:
        try:
            return _evidence_trigger(trigger, source, variables, at)
        except (TemplateError, ValueError) as e:
            return TriggerResult(trigger.name, False, None, None, f"template error: {e}", True)
    try:
        canary, baseline = render_trigger(trigger, variables)
    except (TemplateError, ValueError) as e:
        return TriggerResult(trigger.name, False, None, None, f"template error: {e}", True)
    # A source that shares trigger data between rollouts (sharing.SharedQueries) is asked by
    # template, like `evaluate` does for gates; an explicit time is always asked on its own. It
    # builds the rollout's own query only when it falls back to it (with the same template errors).
    shared = getattr(source, "query_trigger", None)
    if shared is not None and at is None:
        baseline_template = (trigger.baseline_query or trigger.query) if baseline is not None else None
        result: TriggerResult = shared(trigger, trigger.query, baseline_template, _bind(variables, "canary"),
                                       _bind(variables, "stable"), max_age)
        return result
    try:
        promql = sustained_trigger_query(trigger, canary, baseline)
    except (TemplateError, ValueError) as e:
        return TriggerResult(trigger.name, False, None, None, f"template error: {e}", True)
    return interpret_trigger(trigger, source.query_raw(promql, at))


def backtest(
    spec: LaunchGateSpec,
    source: MetricsSource,
    variables: Mapping[str, str],
    start: datetime,
    end: datetime,
    step: timedelta,
    freshness: float | None = None,
) -> list[tuple[datetime, GateResult]]:
    """What the gate would have decided at start, start+step, start+2*step, ... up to `end`
    (included when it falls on a step): the evaluation times of a Prometheus range query.

    Each evaluation looks back over the gate's own window from its time, exactly as a live
    evaluation at that moment would have, so the first one judges the window that ends at `start`:
    `start` is where the replay begins to answer "what would the gate have said then?".
    Freshness is judged at each evaluation's time too (`freshness` as for `evaluate`).
    """
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError("end is before start")
    out: list[tuple[datetime, GateResult]] = []
    t = start
    while t <= end:
        out.append((t, evaluate(spec, source, variables, at=t, freshness=freshness)))
        t += step
    return out


__all__ = [
    "CALLER_VARIABLES",
    "BlockerQueries",
    "backtest",
    "evaluate",
    "evaluate_trigger",
    "gate_variables",
    "render_blocker",
    "render_gate",
    "render_trigger",
]
