"""Rollouts that ask the same gate query share one Prometheus query.

Without this every rollout would send each of its gate's queries every pass, so Prometheus load and
the operator's client CPU would grow with the number of rollouts. `promql_batch` turns a query
template into one batched query per *shape* whose result holds every rollout's answer;
`SharedQueries` sends it about once per `max_age` seconds (when Prometheus is slower than that
allows: once per twice its answer time for gates, back to back for rollback triggers) and hands
each rollout its own series. So queries grow with distinct gates x blockers, not with rollouts.

The price is freshness: a rollout may be judged on an answer up to `max_age` old (a few seconds,
against gate windows of minutes), which is the same as having been evaluated that much earlier;
when Prometheus takes longer than a third of `max_age` to answer, up to three times its answer
time old (rollback triggers: twice, see TRIGGER_PACE).
A shape that cannot be proven batchable, an explicit evaluation time (backtests), or a batched
query refused for its size (e.g. Prometheus' sample limit) falls back to one query per rollout.
One that failed because Prometheus is down or overloaded does not: every rollout gets that
failure (missing data: gates hold, triggers do not fire), as its own query would have.

Rollback triggers are shared the same way, one level down: instead of each rollout's
`sustained_trigger_query` (which compares its canary with its baseline inside Prometheus), the
trigger query's batched shape is asked for every identity at once, as a range query over the
subquery's steps plus an instant query at the evaluation time, and `gates.trigger_from_series`
computes each rollout's verdict from its canary's and baseline's series. The evaluation time is
chosen off the step boundaries, where Prometheus versions disagree about the window's first step.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from launchgate.adapters import metrics
from launchgate.api import RollbackTrigger
from launchgate.core.gates import (
    UNREACHABLE,
    QueryResult,
    RawResponse,
    Series,
    TriggerResult,
    from_prometheus,
    interpret_trigger,
    sustained_trigger_query,
    trigger_eval_time,
    trigger_from_series,
    trigger_needs_baseline,
    trigger_steps,
    trigger_window_ms,
)
from launchgate.core.promql import TemplateError, render
from launchgate.core.promql_batch import IDENTITY_VARIABLES, Shape, batch_shape, group_series
from launchgate.core.protocols import MetricsSource


@dataclass(frozen=True)
class _Pace:
    """A shared answer stays usable for `stretch` times its fetch's duration when that exceeds
    max_age, and is fetched again `ahead` fetch durations before that."""

    stretch: float
    ahead: float


# Gate answers: at most every other stretch of time is spent fetching. At 2x and 2 ahead a slow
# Prometheus would be asked back to back, and at 10,000 rollouts the operator would spend much of its
# CPU decoding and splitting fleet-wide answers fetched one after another, on a Prometheus slowed by
# them. A gate must pass for a phase's minimum duration, so an answer a few seconds older costs little.
GATE_PACE = _Pace(stretch=3.0, ahead=1.0)
# Rollback triggers keep the freshest answers a slow Prometheus allows (fetched back to back once it
# takes half of max_age): how old a trigger's data is, is how late traffic leaves a bad canary.
TRIGGER_PACE = _Pace(stretch=2.0, ahead=2.0)
# Prometheus refuses range queries of more points per series than this.
MAX_RANGE_POINTS = 11_000


@dataclass
class _Answer:
    at: float
    series: dict[tuple[str, ...], list[Any]] | None
    """Each identity's series of the vector. None: the batched query failed; callers ask per rollout until the next attempt, unless
    Prometheus was overloaded (see `overloaded`)."""
    took: float = 0.0
    """Seconds the fetch took, to know how early the next one must start."""
    error: str | None = None


@dataclass(frozen=True)
class _Chunk:
    """One range query's answer, split by identity, of which the steps `lo`..`hi` (ms) count.

    A window fetched again keeps its settled steps by keeping (and narrowing) the chunks that hold
    them: no per-identity copy of the samples. Copying every identity's kept samples into new lists
    on each fetch would be a large share of the operator's CPU at thousands of rollouts."""

    lo: int
    hi: int
    by_identity: dict[tuple[str, ...], list[Series]]
    first: int
    last: int
    """The steps the range query was asked for: when lo..hi covers them, no sample needs cutting."""

    def pieces(self, key: tuple[str, ...]) -> list[Series]:
        series = self.by_identity.get(key)
        if not series:
            return []
        if self.lo <= self.first and self.hi >= self.last:
            return series
        lo, hi = (self.lo - 0.5) / 1000, (self.hi + 0.5) / 1000
        # Samples are in time order: a slice shares their tuples instead of building new ones.
        cut = [s[bisect_left(s, lo, key=_time):bisect_right(s, hi, key=_time)] for s in series]
        return [s for s in cut if s]


# A window holds at most this many chunks; past it they are merged into one. Every fetch adds a
# chunk, and a `for` of minutes fetched every few seconds would otherwise keep dozens, each a dict
# over every identity, and every asker would look in each.
MAX_CHUNKS = 8


@dataclass
class _Window:
    """Every identity's data for one trigger window, all evaluated at one time."""

    at: float
    steps: list[float]
    over: dict[tuple[str, tuple[str, ...]], list[_Chunk]] | None
    """Per batched query: its series at the steps, by identity, in chunks. None: a query failed."""
    now: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], list[float]]]
    """Per batched query and identity: its values at the evaluation time."""
    took: float = 0.0
    error: str | None = None
    at_ms: int | None = None
    """The evaluation time (wall clock, ms): steps this much older than `settle` are final."""


@dataclass(frozen=True)
class _TriggerPlan:
    canary: Shape
    baseline: Shape | None
    key: tuple[Any, ...]


class _Malformed(Exception):
    pass


def overloaded(error: str) -> bool:
    """A batched query that failed because Prometheus is down, overloaded or too slow: asked per
    rollout instead, it fails the same way thousands of times, each query adding to the load of a
    Prometheus already too slow for one, and the operator falls behind (see BENCHMARKS.md). Only a
    query refused for its size (e.g. too many samples) is worth asking per rollout."""
    return error.startswith(UNREACHABLE) or any(mark in error for mark in ("(HTTP 503", "(HTTP 429", ", timeout)"))


_A = TypeVar("_A", _Answer, _Window)


def _fresh_for(answer: _Answer | _Window, age: float, pace: _Pace) -> float:
    """How long after its fetch began an answer may be used (see SharedQueries._fresh)."""
    return max(age, pace.stretch * answer.took)


class SharedQueries:
    """A MetricsSource that also answers templates, sharing batched queries between callers.

    Thread-safe: the operator's worker threads evaluate many rollouts at once. One lock per shape
    makes concurrent askers of an expired shape wait for a single query instead of all sending it,
    and an answer close to expiry is fetched again by one asker while the rest keep using it.
    """

    def __init__(self, source: MetricsSource, max_age: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 batched: MetricsSource | None = None, settle: float = 10.0) -> None:
        self.source = source
        self.settle = settle
        """Seconds after which a step's value is final: a trigger window fetched again asks only
        for the steps newer than that (see `_fetch_window`)."""
        # The shared queries may have a longer timeout than a rollout's own (see handlers): one of
        # them answers for every rollout, and one cut off at the timeout is Prometheus' work thrown
        # away, asked again at once.
        self.batched = source if batched is None else batched
        self.max_age = max_age
        self._clock = clock
        self._wall_clock = wall_clock
        self._windows: dict[tuple[Any, ...], _Window] = {}
        self._window_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._shapes: dict[tuple[Any, ...], Shape | None] = {}
        # By query and identity labels: one query text can be split by different labels (a plain
        # selector keeps none of its identity matchers in the text).
        self._answers: dict[tuple[str, tuple[str, ...]], _Answer] = {}
        self._locks: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._guard = threading.Lock()
        self._fetching: dict[Any, float] = {}
        """When the fetch in flight for a key began."""
        self.batched_queries = 0

    # MetricsSource, passed through: triggers and the CLI use rendered queries.
    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        return self.source.query(promql, at)

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        return self.source.query_raw(promql, at)

    def query_range_raw(self, promql: str, start: datetime, end: datetime, step: float) -> RawResponse:
        """Range queries (a judge's samples, a count trigger's steps) are asked per rollout."""
        ranged = getattr(self.source, "query_range_raw", None)
        if ranged is None:
            return RawResponse(error="query error: this metrics source cannot run range queries")
        raw: RawResponse = ranged(promql, start, end, step)
        return raw

    def query_template(self, template: str, variables: Mapping[str, str], at: datetime | None = None,
                       max_age: float | None = None) -> QueryResult:
        """The answer to `template` rendered with `variables`; `max_age` (capped at the source's)
        lets a caller with a short interval ask for fresher data. TemplateError as `render`."""
        age = self.max_age if max_age is None else min(self.max_age, max_age)
        shape = self._shape(template, variables) if at is None and age > 0 else None
        if shape is None:
            return self.source.query(render(template, variables), at)
        answer = self._answer(shape, age)
        if answer.series is None:
            if answer.error is not None and overloaded(answer.error):
                return QueryResult.unavailable(answer.error)
            return self.source.query(render(template, variables), at)
        return from_prometheus({"resultType": "vector", "result": answer.series.get(shape.key(variables), [])})

    def _shape(self, template: str, variables: Mapping[str, str]) -> Shape | None:
        # Identity values never change the shape, only whether they are bound at all; other values
        # ($window, $policy) only when the template uses them, so rollouts with their own policy
        # still share the queries that do not ask for it.
        key = (template, tuple(sorted((k, bool(v)) if k in IDENTITY_VARIABLES else (k, v)
                                      for k, v in variables.items()
                                      if k in IDENTITY_VARIABLES or f"${k}" in template or f"${{{k}}}" in template)))
        if key not in self._shapes:
            self._shapes[key] = batch_shape(template, variables)
        return self._shapes[key]

    def _answer(self, shape: Shape, age: float) -> _Answer:
        def fetch() -> _Answer:
            at = self._clock()
            raw = self.batched.query_raw(shape.query)
            self.batched_queries += 1
            series = _grouped(raw, "vector", shape.labels)
            return _Answer(at, series, error=raw.error)

        return self._fresh(self._answers, self._locks, (shape.query, shape.labels), age, fetch, GATE_PACE)

    def _fresh(self, store: dict[Any, _A], locks: dict[Any, threading.Lock], key: Any, age: float,
               fetch: Callable[[], _A], pace: _Pace) -> _A:
        """`store[key]` while fresh, else a new fetch; one fetch at a time per key.

        Fresh means at most `age` old, or `pace.stretch` times as long as the last fetch took when that is more:
        when Prometheus needs longer than `age` to answer, waiting for a new answer buys no
        fresher data than the one in hand, and every pass would queue behind each expired answer in
        turn (at 10,000 rollouts, nearly every worker waiting on these locks). How long
        fetches take is exported (launchgate_shared_query_duration_seconds).

        Near the end of its freshness (less than `pace.ahead` times the last fetch's duration left) an answer is
        fetched again ahead of time by one asker while the others go on with it, also past its
        freshness if that fetch runs long; so an answer is at most its freshness plus one fetch
        (bounded by the Prometheus timeout) old. An asker that waited for a fetch takes its answer
        whatever its age: judged by age alone, every waiter would ask again in turn, one query per pass.
        """
        current = store.get(key)
        with self._guard:
            lock = locks.setdefault(key, threading.Lock())
        if current is not None:
            elapsed = self._clock() - current.at
            fresh_for = _fresh_for(current, age, pace)
            if elapsed <= fresh_for:
                if elapsed < fresh_for - pace.ahead * current.took or not lock.acquire(blocking=False):
                    return current
                try:
                    newer = store[key]
                    return newer if newer is not current else self._refetch(store, key, fetch)
                finally:
                    lock.release()
            started = self._fetching.get(key)
            if started is not None and started - current.at <= fresh_for:
                # A fetch begun while this answer was fresh is under way (it ran longer than the
                # last one): keep using the answer until it lands, as if it had been on time.
                return current
        with lock:
            latest = store.get(key)
            if latest is not None and latest is not current:
                return latest
            if latest is not None and self._clock() - latest.at <= _fresh_for(latest, age, pace):
                return latest
            return self._refetch(store, key, fetch)

    def _refetch(self, store: dict[Any, _A], key: Any, fetch: Callable[[], _A]) -> _A:
        self._fetching[key] = self._clock()
        try:
            fresh = fetch()
        finally:
            del self._fetching[key]
        fresh.took = self._clock() - fresh.at
        metrics.observe_shared_query(fresh.took)
        store[key] = fresh
        return fresh

    # ------------------------------------------------------------------ rollback triggers

    def query_trigger(self, trigger: RollbackTrigger, canary_template: str, baseline_template: str | None,
                      variables_canary: Mapping[str, str], variables_stable: Mapping[str, str],
                      max_age: float | None = None) -> TriggerResult:
        """`interpret_trigger(sustained_trigger_query(...))` for one rollout, from data shared with
        every rollout whose trigger has the same shape, at most `max_age` (capped at the source's)
        seconds old. The variables are bound per side as for rendering ($version = canary / stable).

        The answer is the rollout's own query's at the shared data's evaluation time, this process'
        wall clock when it was fetched (moved back by at most 2 ms off a step boundary), where the
        own query would use Prometheus' clock.

        Falls back to the rollout's own query when the templates are not batchable, the source
        cannot run range queries, the window has too many steps, or a shared query failed.
        """
        age = self.max_age if max_age is None else min(self.max_age, max_age)
        plan = self._trigger_plan(trigger, canary_template, baseline_template, variables_canary,
                                  variables_stable) if age > 0 else None
        if plan is None:
            return self._trigger_alone(trigger, canary_template, baseline_template, variables_canary,
                                       variables_stable)
        window = self._window(trigger, plan, age)
        if window.over is None:
            if window.error is not None and overloaded(window.error):
                return interpret_trigger(trigger, RawResponse(error=window.error))
            return self._trigger_alone(trigger, canary_template, baseline_template, variables_canary,
                                       variables_stable)
        c = (plan.canary.query, plan.canary.labels)
        c_key = plan.canary.key(variables_canary)
        if plan.baseline is None:
            return trigger_from_series(trigger, window.steps, _pieces(window.over[c], c_key),
                                       window.now[c].get(c_key, []))
        b = (plan.baseline.query, plan.baseline.labels)
        b_key = plan.baseline.key(variables_stable)
        return trigger_from_series(trigger, window.steps, _pieces(window.over[c], c_key),
                                   window.now[c].get(c_key, []), _pieces(window.over[b], b_key),
                                   window.now[b].get(b_key, []))

    def _trigger_alone(self, trigger: RollbackTrigger, canary_template: str, baseline_template: str | None,
                       variables_canary: Mapping[str, str], variables_stable: Mapping[str, str]) -> TriggerResult:
        """One query per rollout and trigger: the fallback when the trigger cannot be shared."""
        try:
            canary = render(canary_template, variables_canary)
            baseline = render(baseline_template, variables_stable) if baseline_template is not None else None
            promql = sustained_trigger_query(trigger, canary, baseline)
        except (TemplateError, ValueError) as e:
            return TriggerResult(trigger.name, False, None, None, f"template error: {e}", True)
        return interpret_trigger(trigger, self.source.query_raw(promql))

    def _trigger_plan(self, trigger: RollbackTrigger, canary_template: str, baseline_template: str | None,
                      variables_canary: Mapping[str, str],
                      variables_stable: Mapping[str, str]) -> _TriggerPlan | None:
        if getattr(self.batched, "query_range_raw", None) is None:
            return None
        try:
            ratio = trigger_needs_baseline(trigger)
            for_ms, step_ms = trigger_window_ms(trigger)
        except ValueError:
            return None
        # trigger_eval_time needs a step of 3ms or more to find a time off the boundaries.
        if step_ms < 3 or for_ms // step_ms + 1 > MAX_RANGE_POINTS:
            return None
        if ratio and baseline_template is None:
            return None
        canary = self._shape(canary_template, variables_canary)
        baseline = self._shape(baseline_template, variables_stable) if ratio and baseline_template else None
        if canary is None or (ratio and baseline is None):
            return None
        # The canary and baseline sides of one template are the same query, asked once.
        queries = tuple(dict.fromkeys((s.query, s.labels) for s in (canary, baseline) if s is not None))
        return _TriggerPlan(canary, baseline, (queries, for_ms, step_ms))

    def _window(self, trigger: RollbackTrigger, plan: _TriggerPlan, age: float) -> _Window:
        return self._fresh(self._windows, self._window_locks, plan.key, age,
                           lambda: self._fetch_window(trigger, plan, self._windows.get(plan.key)), TRIGGER_PACE)

    def _fetch_window(self, trigger: RollbackTrigger, plan: _TriggerPlan, previous: _Window | None = None) -> _Window:
        """Both queries of every shape in the plan, at one evaluation time off the step boundaries.

        The steps the previous window already holds and that were at least `settle` (and two
        steps) old when it was fetched are taken from it; the range query asks only for the newer
        ones. Steps sit on absolute multiples of the step, so old and new line up. A window of
        `for: 5m` at 30 s steps is asked for ~2 steps instead of 10; asked whole, at 10,000 rollouts
        the range query is the costliest thing Prometheus does for the operator, and its answer the
        costliest thing the operator parses. A step's value is the same as a full query's as long as
        nothing lands in Prometheus for a time more than `settle` in the past: a scrape lands within
        its scrape timeout (10 s by default); raise `settle` for slower ingestion (remote write).
        """
        fetched = self._clock()
        queries, _, step_ms = plan.key
        at_ms = trigger_eval_time(trigger, round(self._wall_clock() * 1000))
        steps = trigger_steps(trigger, at_ms) if at_ms is not None else None
        if at_ms is None or not steps:
            return _Window(fetched, [], None, {})
        keep = _settled(previous, steps, max(round(self.settle * 1000), 2 * step_ms))
        asked = steps[len(keep):]
        over: dict[tuple[str, tuple[str, ...]], list[_Chunk]] = {}
        now: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], list[float]]] = {}
        range_raw = self.batched.query_range_raw  # type: ignore[attr-defined]
        try:
            for query, labels in queries:
                chunks: list[_Chunk] = []
                if keep:
                    assert previous is not None and previous.over is not None
                    chunks = _narrowed(previous.over[(query, labels)], keep[0], keep[-1])
                if asked:
                    ranged: RawResponse = range_raw(query, _utc(asked[0]), _utc(asked[-1]), step_ms / 1000)
                    self.batched_queries += 1
                    chunks.append(_Chunk(asked[0], asked[-1], _matrix_by_identity(ranged, labels, asked),
                                         asked[0], asked[-1]))
                over[(query, labels)] = chunks if len(chunks) <= MAX_CHUNKS else [_merged(chunks)]
                instant = self.batched.query_raw(query, _utc(at_ms))
                self.batched_queries += 1
                now[(query, labels)] = _vector_by_identity(instant, labels, at_ms)
        except _Malformed as e:
            return _Window(fetched, [], None, {}, error=str(e.args[0]) if e.args and e.args[0] else None)
        return _Window(fetched, [t / 1000 for t in steps], over, now, at_ms=at_ms)


def _settled(previous: _Window | None, steps: list[int], settle_ms: int) -> list[int]:
    """The leading `steps` (ms) that `previous` holds and that were `settle_ms` old when it was
    fetched; its steps and the new ones are both contiguous on one grid, so this is a prefix."""
    if previous is None or previous.over is None or previous.at_ms is None:
        return []
    held = {round(t * 1000) for t in previous.steps}
    last = previous.at_ms - settle_ms
    keep: list[int] = []
    for t in steps:
        if t not in held or t > last:
            break
        keep.append(t)
    return keep


def _narrowed(chunks: list[_Chunk], lo_ms: int, hi_ms: int) -> list[_Chunk]:
    """The chunks that hold steps within [lo_ms, hi_ms], each narrowed to them."""
    return [_Chunk(max(c.lo, lo_ms), min(c.hi, hi_ms), c.by_identity, c.first, c.last)
            for c in chunks if c.hi >= lo_ms and c.lo <= hi_ms]


def _merged(chunks: list[_Chunk]) -> _Chunk:
    """One chunk with every identity's samples of `chunks`, each cut to its chunk's steps. New
    lists throughout: the chunks may still be read by other askers."""
    out: dict[tuple[str, ...], list[Series]] = {}
    for chunk in chunks:
        for key in chunk.by_identity:
            part = chunk.pieces(key)
            if part:
                held = out.get(key)
                out[key] = part if held is None else held + part
    lo, hi = chunks[0].lo, chunks[-1].hi
    return _Chunk(lo, hi, out, lo, hi)


def _pieces(chunks: list[_Chunk], key: tuple[str, ...]) -> list[Series]:
    """One identity's series across a window's chunks (each chunk's steps after the last's)."""
    if len(chunks) == 1:
        return chunks[0].pieces(key)
    out: list[Series] = []
    for chunk in chunks:
        out.extend(chunk.pieces(key))
    return out


T = TypeVar("T")


def _time(sample: Sequence[Any]) -> float:
    return sample[0]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _grouped(raw: RawResponse, kind: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], list[Any]] | None:
    """A batched answer's series by identity; None for an error or anything but a `kind` result."""
    return group_series(raw.data, labels, kind) if raw.error is None else None


def _by_identity(raw: RawResponse, labels: tuple[str, ...], kind: str,
                 convert: Callable[[Any], T]) -> dict[tuple[str, ...], list[T]]:
    """Each identity's series, converted; _Malformed for anything the per-rollout query would not
    have been judged on the same way (errors, and whatever `convert` refuses)."""
    parts = _grouped(raw, kind, labels)
    if parts is None:
        raise _Malformed(raw.error)
    try:
        return {key: [convert(series) for series in part] for key, part in parts.items()}
    except (KeyError, TypeError, ValueError) as e:
        raise _Malformed(str(e)) from None


def _matrix_by_identity(raw: RawResponse, labels: tuple[str, ...],
                        steps: list[int]) -> dict[tuple[str, ...], list[Series]]:
    """[t, value] lists as Prometheus sent them; native histograms and samples off the steps are _Malformed."""
    # Times as Prometheus writes them (seconds, to the millisecond) parse to the same floats as
    # ms / 1000, and a set checks a whole series at once instead of rounding each sample.
    on_steps = {t / 1000 for t in steps}

    def samples(series: Any) -> Series:
        if "histograms" in series:
            raise _Malformed("native histogram samples")
        # Kept as decoded, [time, "value"]: the value is converted by the one rollout that reads
        # it (gates._steps_of), not for every identity at every fetch: converting every sample of a
        # fleet-wide window costs CPU in proportion to the fleet, and a window is fetched several
        # times for each time one rollout reads it.
        out: Series = series["values"]
        if not on_steps.issuperset([t for t, _ in out]):
            raise _Malformed("a sample off the subquery's steps")
        return out

    return _by_identity(raw, labels, "matrix", samples)


def _vector_by_identity(raw: RawResponse, labels: tuple[str, ...], at_ms: int) -> dict[tuple[str, ...], list[float]]:
    def value(series: Any) -> float:
        t, v = series["value"]
        if round(float(t) * 1000) != at_ms:
            raise _Malformed("a sample at another time")
        return float(v)

    return _by_identity(raw, labels, "vector", value)


__all__ = ["SharedQueries"]
