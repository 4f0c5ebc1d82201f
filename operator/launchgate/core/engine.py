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
from dataclasses import dataclass
from datetime import datetime, timedelta

from launchgate.api import Blocker, LaunchGateSpec, RollbackTrigger
from launchgate.core.freshness import (
    DEFAULT_SCRAPE_INTERVAL,
    blocker_freshness,
    canary_selectors,
    default_freshness,
    freshness_query,
    stale_reason,
)
from launchgate.core.gates import (
    TEMPLATE_ERROR,
    GateResult,
    QueryResult,
    TriggerResult,
    evaluate_gate,
    interpret_trigger,
    is_ratio,
    sustained_trigger_query,
    trigger_needs_baseline,
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


def render_blocker(blocker: Blocker, variables: Mapping[str, str]) -> BlockerQueries:
    """Render one blocker's queries; TemplateError names the blocker and the variable."""
    try:
        baseline_query = (blocker.baseline_query or blocker.query) if is_ratio(blocker.target) else None
        canary, baseline = _render_sides(blocker.query, baseline_query, variables)
    except TemplateError as e:
        raise TemplateError(f"blocker {blocker.name}: {e}") from None
    return BlockerQueries(blocker.name, canary, baseline)


def render_gate(spec: LaunchGateSpec, variables: Mapping[str, str]) -> list[BlockerQueries]:
    """All of a gate's queries, or TemplateError: the CLI's up-front check for bad input."""
    v = gate_variables(spec, variables)
    return [render_blocker(b, v) for b in spec.blockers]


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

    canary: dict[str, QueryResult] = {}
    baseline: dict[str, QueryResult] = {}
    for b in spec.blockers:
        try:
            q = render_blocker(b, v)
        except TemplateError as e:
            canary[b.name] = QueryResult.unavailable(f"{TEMPLATE_ERROR}: {e}")
            continue
        canary[b.name] = ask(b.query, _bind(v, "canary"), q.canary)
        if q.baseline is not None:
            baseline[b.name] = ask(b.baseline_query or b.query, _bind(v, "stable"), q.baseline)
    result = evaluate_gate(spec, canary, baseline)
    default = freshness if freshness is not None else default_freshness(DEFAULT_SCRAPE_INTERVAL)
    stale: dict[str, QueryResult] = {}
    for b, r in zip(spec.blockers, result.blockers, strict=True):
        if r.passed:
            reason = _stale(b, blocker_freshness(spec, b, default), lambda t: ask(t, _bind(v, "canary")))
            if reason is not None:
                stale[b.name] = QueryResult.unavailable(reason)
    return evaluate_gate(spec, {**canary, **stale}, baseline) if stale else result


def _stale(blocker: Blocker, limit: float, ask: Callable[[str], QueryResult]) -> str | None:
    """Why `blocker`'s canary data is not fresh, or None when it is (see freshness.py). Asked only
    of blockers that pass: freshness can only take a pass away, and a value that fails its target
    failed while the canary reported, so it blocks whatever its age."""
    ages: list[QueryResult] = []
    for selector in canary_selectors(blocker.query):
        try:
            ages.append(ask(freshness_query(selector)))
        except TemplateError as e:
            ages.append(QueryResult.unavailable(f"{TEMPLATE_ERROR}: {e}"))
    return stale_reason(ages, limit)


def render_trigger(trigger: RollbackTrigger, variables: Mapping[str, str]) -> tuple[str, str | None]:
    """(canary query, baseline query or None) for a rollback trigger."""
    baseline_query = (trigger.baseline_query or trigger.query) if trigger_needs_baseline(trigger) else None
    try:
        return _render_sides(trigger.query, baseline_query, variables)
    except TemplateError as e:
        raise TemplateError(f"trigger {trigger.name}: {e}") from None


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
