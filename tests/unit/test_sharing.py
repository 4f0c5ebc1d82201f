"""SharedQueries: when rollouts share one batched query, and when each still asks its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from launchgate.adapters import sharing
from launchgate.adapters.sharing import SharedQueries
from launchgate.api import RollbackTrigger
from launchgate.core import engine
from launchgate.core.gates import QueryResult, RawResponse, from_prometheus

TEMPLATE = 'sum(rate(jobs_total{namespace="$namespace",version="$canary",outcome="ok"}[$window]))'


class FakeProm:
    """Answers a batched query with one series per (namespace, version); records every query."""

    def __init__(self, series: dict[tuple[str, str], str], fail_batched: bool = False, delay: float = 0.0) -> None:
        self.series, self.fail_batched, self.delay = series, fail_batched, delay
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        with self._lock:
            self.asked.append(promql)
        time.sleep(self.delay)
        if "by (" in promql:
            if self.fail_batched:
                return RawResponse(error="query error: query processing would load too many samples")
            return RawResponse(data={"resultType": "vector", "result": [
                {"metric": {"namespace": ns, "version": v}, "value": [1.0, val]}
                for (ns, v), val in self.series.items()]})
        for (ns, v), val in self.series.items():
            if f'version="{v}"' in promql and f'namespace="{ns}"' in promql:
                return RawResponse(data={"resultType": "vector", "result": [{"metric": {}, "value": [1.0, val]}]})
        return RawResponse(data={"resultType": "vector", "result": []})

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        raw = self.query_raw(promql, at)
        return QueryResult.unavailable(raw.error) if raw.error else from_prometheus(raw.data)


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def variables(version: str, ns: str = "a") -> dict[str, str]:
    return {"namespace": ns, "canary": version, "window": "30s"}


def test_rollouts_share_one_query_until_it_is_too_old() -> None:
    prom, clock = FakeProm({("a", "v1"): "1", ("a", "v2"): "2", ("b", "v1"): "3"}), Clock()
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    assert shared.query_template(TEMPLATE, variables("v1")).value == 1.0
    assert shared.query_template(TEMPLATE, variables("v2")).value == 2.0
    assert shared.query_template(TEMPLATE, variables("v1", ns="b")).value == 3.0
    missing = shared.query_template(TEMPLATE, variables("v9"))
    assert missing.value is None and missing.missing == "empty vector"  # same verdict as its own query
    assert len(prom.asked) == 1 and "by (namespace, version)" in prom.asked[0]
    clock.t += 4.9
    shared.query_template(TEMPLATE, variables("v1"), max_age=2.0)  # a short interval wants fresher data
    assert len(prom.asked) == 2
    clock.t += 5.1
    shared.query_template(TEMPLATE, variables("v1"))
    assert len(prom.asked) == 3


def test_explicit_times_unbatchable_templates_and_disabled_sharing_ask_per_rollout() -> None:
    prom = FakeProm({("a", "v1"): "1"})
    shared = SharedQueries(prom, max_age=5.0)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert shared.query_template(TEMPLATE, variables("v1"), at=at).value == 1.0  # a backtest
    unbatchable = 'sum(rate(jobs_total{namespace="$namespace",version="$canary"}[$window])) or vector(0)'
    shared.query_template(unbatchable, variables("v1"))
    SharedQueries(prom, max_age=0).query_template(TEMPLATE, variables("v1"))
    assert len(prom.asked) == 3 and not any("by (" in q for q in prom.asked)


def test_a_failed_batched_query_falls_back_to_one_query_per_rollout() -> None:
    prom, clock = FakeProm({("a", "v1"): "1", ("a", "v2"): "2"}, fail_batched=True), Clock()
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    assert shared.query_template(TEMPLATE, variables("v1")).value == 1.0
    assert shared.query_template(TEMPLATE, variables("v2")).value == 2.0
    # The failure is remembered for max_age: one batched attempt, then each rollout on its own.
    assert [("by (" in q) for q in prom.asked] == [True, False, False]


def test_concurrent_askers_of_an_expired_shape_wait_for_one_query() -> None:
    prom = FakeProm({("a", f"v{i}"): str(i) for i in range(20)}, delay=0.05)
    shared = SharedQueries(prom, max_age=5.0)
    results: dict[int, Any] = {}

    def ask(i: int) -> None:
        results[i] = shared.query_template(TEMPLATE, variables(f"v{i}")).value

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: float(i) for i in range(20)}
    assert len(prom.asked) == 1



def test_one_query_text_split_by_different_identity_labels_is_two_answers() -> None:
    """Plain selectors lose their identity matchers from the text: `x` serves both templates, but
    one rollout's series are found by namespace/version, the other's by ns/v."""

    class Prom(FakeProm):
        def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
            self.asked.append(promql)
            series = [{"metric": {"ns": "a", "v": "v1"}, "value": [1.0, "7"]}]
            if promql != "x":  # a rollout's own query
                series = series if 'ns="a"' in promql else []
            return RawResponse(data={"resultType": "vector", "result": series})

    prom = Prom({})
    shared = SharedQueries(prom, max_age=5.0)
    v = variables("v1")
    assert shared.query_template('x{namespace="$namespace",version="$canary"}', v).missing == "empty vector"
    assert shared.query_template('x{ns="$namespace",v="$canary"}', v).value == 7.0
    assert prom.asked == ["x", "x"]

# --------------------------------------------------------------------------- rollback triggers

ERRORS = 'sum(rate(jobs_total{namespace="$namespace",version="$version",outcome="error"}[$window]))'
RATIO = RollbackTrigger.model_validate({"name": "errors", "query": ERRORS, "above": {"baselineRatio": 2},
                                        "for": "6s", "step": "1s"})


def const(*values: float) -> Callable[[int], list[float]]:
    """An identity whose query returns these values (one series each) at every time."""
    return lambda _t_ms: list(values)


class TriggerProm:
    """Answers batched range and instant queries from per-(namespace, version) values over time;
    a per-rollout sustained query gets a recognisable error. Records every query."""

    def __init__(self, values: dict[tuple[str, str], Callable[[int], list[float]]], fail_range: bool = False,
                 histograms: bool = False) -> None:
        self.values, self.fail_range, self.histograms = values, fail_range, histograms
        self.asked: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _series(self, t_ms: int) -> list[tuple[dict[str, str], float]]:
        return [({"namespace": ns, "version": v, "i": str(i)}, x)
                for (ns, v), f in self.values.items() for i, x in enumerate(f(t_ms))]

    def query_range_raw(self, promql: str, start: datetime, end: datetime, step: float) -> RawResponse:
        with self._lock:
            self.asked.append(("range", promql, start.timestamp(), end.timestamp(), step))
        if self.fail_range:
            return RawResponse(error="query error: query processing would load too many samples")
        first, last, every = round(start.timestamp() * 1000), round(end.timestamp() * 1000), round(step * 1000)
        by_labels: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for t in range(first, last + 1, every):
            for metric, x in self._series(t):
                series = by_labels.setdefault(tuple(sorted(metric.items())), {"metric": metric, "values": []})
                series["values"].append([t / 1000, repr(x)])
        result = list(by_labels.values())
        if self.histograms and result:
            result[0] = {"metric": result[0]["metric"], "histograms": [[first / 1000, {"count": "1"}]]}
        return RawResponse(data={"resultType": "matrix", "result": result})

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        with self._lock:
            self.asked.append(("instant", promql, at.timestamp() if at else None))
        if "launchgate_part" in promql:
            return RawResponse(error="query error: asked alone")
        assert at is not None
        t = round(at.timestamp() * 1000)
        return RawResponse(data={"resultType": "vector", "result": [
            {"metric": metric, "value": [t / 1000, repr(x)]} for metric, x in self._series(t)]})

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        raw = self.query_raw(promql, at)
        return QueryResult.unavailable(raw.error) if raw.error else from_prometheus(raw.data)

    def kinds(self) -> list[str]:
        return [a[0] if "launchgate_part" not in a[1] else "alone" for a in self.asked]


class PlainProm(TriggerProm):
    """A source that cannot run range queries."""

    query_range_raw = None  # type: ignore[assignment]


def rollout(canary: str, stable: str = "v0", ns: str = "a") -> dict[str, str]:
    return {"namespace": ns, "rollout": "r", "canary": canary, "stable": stable, "window": "6s"}


def fleet() -> TriggerProm:
    # v-bad breaches 2x the baseline (0.1) throughout; v-late only from t = 998s on
    return TriggerProm({("a", "v0"): const(0.1), ("a", "v-bad"): const(0.3), ("a", "v-good"): const(0.15),
                        ("a", "v-two"): const(0.3, 0.3), ("a", "v-late"): lambda t: [0.3 if t >= 998_000 else 0.1]})


def test_rollouts_share_one_trigger_window() -> None:
    prom, clock = fleet(), Clock()
    shared = SharedQueries(prom, max_age=5.0, clock=clock, wall_clock=lambda: 1000.5)
    results = {v: engine.evaluate_trigger(RATIO, shared, rollout(v))
               for v in ("v-bad", "v-good", "v-late", "v-two", "v-none")}
    # One range query over the subquery's steps and one instant query at the evaluation time, for
    # every rollout and both sides (canary and baseline share the template).
    assert prom.kinds() == ["range", "instant"]
    assert prom.asked[0][2:] == (995.0, 1000.0, 1.0) and prom.asked[1][2] == 1000.5
    assert "by (namespace, version)" in prom.asked[0][1] and prom.asked[0][1] == prom.asked[1][1]
    assert shared.batched_queries == 2
    bad, good, late, two, none = results.values()
    assert bad.fired and (bad.held_steps, bad.data_steps, bad.steps) == (6, 6, 6)
    assert bad.value == 0.3 and bad.baseline_value == 0.1 and not bad.missing
    assert not good.fired and (good.held_steps, good.data_steps) == (0, 6)
    assert not late.fired and (late.held_steps, late.data_steps) == (3, 6)
    assert two.missing and two.data_steps == 0 and "several series (2)" in two.reason
    assert none.missing and none.data_steps == 0 and "now no data (empty vector)" in none.reason
    # A rollout whose stable version has no data has no baseline at any step.
    no_base = engine.evaluate_trigger(RATIO, shared, rollout("v-bad", stable="v-gone"))
    assert no_base.missing and no_base.data_steps == 0 and "baseline no data" in no_base.reason
    assert len(prom.asked) == 2


def test_a_shared_window_is_asked_again_when_too_old() -> None:
    prom, clock = fleet(), Clock()
    wall = [1000.5]
    shared = SharedQueries(prom, max_age=5.0, clock=clock, wall_clock=lambda: wall[0])
    shared.query_trigger(RATIO, ERRORS, ERRORS, rollout("v-bad") | {"version": "v-bad"},
                         rollout("v-bad") | {"version": "v0"})
    clock.t += 4.0
    wall[0] += 4.0
    engine.evaluate_trigger(RATIO, shared, rollout("v-good"), max_age=30.0)  # capped at the source's 5s
    assert len(prom.asked) == 2
    engine.evaluate_trigger(RATIO, shared, rollout("v-good"), max_age=2.0)  # a short interval: fresher
    assert len(prom.asked) == 4 and prom.asked[3][2] == 1004.5
    clock.t += 5.1
    engine.evaluate_trigger(RATIO, shared, rollout("v-good"))
    assert len(prom.asked) == 6


def test_the_evaluation_time_avoids_step_boundaries() -> None:
    """On a boundary Prometheus 2.x and 3.x disagree about the first step; a millisecond earlier
    they agree."""
    prom = fleet()
    shared = SharedQueries(prom, wall_clock=lambda: 1000.0)
    r = engine.evaluate_trigger(RATIO, shared, rollout("v-bad"))
    assert prom.asked[0][2:] == (994.0, 999.0, 1.0) and prom.asked[1][2] == pytest.approx(999.999)
    assert r.fired and r.steps == 6


def test_a_baseline_query_of_its_own_is_asked_at_the_same_time() -> None:
    prom = fleet()
    own = RATIO.model_copy(update={"baseline_query": ERRORS.replace("$window", "1m")})
    shared = SharedQueries(prom, wall_clock=lambda: 1000.5)
    assert engine.evaluate_trigger(own, shared, rollout("v-bad")).fired
    assert not engine.evaluate_trigger(own, shared, rollout("v-good")).fired
    assert prom.kinds() == ["range", "instant", "range", "instant"]
    assert {a[1] for a in prom.asked[:2]} != {a[1] for a in prom.asked[2:]}
    assert prom.asked[0][2:] == prom.asked[2][2:] and prom.asked[1][2] == prom.asked[3][2]


def test_a_value_trigger_shares_without_a_baseline() -> None:
    prom = fleet()
    value = RollbackTrigger.model_validate({"name": "abs", "query": ERRORS, "below": {"value": 0.2},
                                            "for": "6s", "step": "1s"})
    shared = SharedQueries(prom, wall_clock=lambda: 1000.5)
    assert engine.evaluate_trigger(value, shared, rollout("v-good")).fired
    assert not engine.evaluate_trigger(value, shared, rollout("v-bad", stable="")).fired  # no stable needed
    assert prom.kinds() == ["range", "instant"]


@pytest.mark.parametrize(
    ("case", "kinds"),
    [
        ("explicit time", ["alone"]),
        ("unbatchable template", ["alone"]),
        ("no range queries", ["alone"]),
        ("sharing disabled", ["alone"]),
        ("too many steps", ["alone"]),
        # a failed window is remembered for max_age: one attempt, then each rollout on its own
        ("range query fails", ["range", "alone", "alone"]),
        ("native histograms", ["range", "alone", "alone"]),
    ],
)
def test_trigger_fallbacks_ask_per_rollout(case: str, kinds: list[str]) -> None:
    prom: TriggerProm = PlainProm({}) if case == "no range queries" else \
        TriggerProm({("a", "v-bad"): const(0.3)}, fail_range=case == "range query fails",
                    histograms=case == "native histograms")
    shared = SharedQueries(prom, max_age=0 if case == "sharing disabled" else 5.0, wall_clock=lambda: 1000.5)
    trig = RATIO
    if case == "unbatchable template":
        trig = RATIO.model_copy(update={"query": ERRORS + " or vector(0)"})
    if case == "too many steps":
        trig = RATIO.model_copy(update={"for_": "4h"})
    at = datetime(2026, 1, 1, tzinfo=UTC) if case == "explicit time" else None
    for canary in ("v-bad", "v-other")[: 1 if len(kinds) == 1 else 2]:
        r = engine.evaluate_trigger(trig, shared, rollout(canary), at=at)
        assert r.missing and r.reason == "query error: asked alone", r
    assert prom.kinds() == kinds


def test_concurrent_askers_of_an_expired_window_wait_for_one_fetch() -> None:
    prom = TriggerProm({("a", f"v{i}"): const(0.1 * i) for i in range(20)})
    shared = SharedQueries(prom, max_age=5.0, wall_clock=lambda: 1000.5)
    results: dict[int, Any] = {}

    def ask(i: int) -> None:
        results[i] = engine.evaluate_trigger(RATIO, shared, rollout(f"v{i}", stable="v1"))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert prom.kinds() == ["range", "instant"]
    assert sorted(i for i, r in results.items() if r.fired) == list(range(3, 20))


def test_plain_sources_still_get_one_query_per_trigger() -> None:
    prom = fleet()
    r = engine.evaluate_trigger(RATIO, prom, rollout("v-bad"))
    assert r.reason == "query error: asked alone" and prom.kinds() == ["alone"]


class TimedProm(FakeProm):
    """Each query takes `took` seconds on the given clock, counted when it ends; `hold` keeps
    queries in flight until it is set."""

    def __init__(self, clock: Clock, took: float) -> None:
        super().__init__({("a", "v1"): "1"})
        self.clock, self.took = clock, took
        self.hold: threading.Event | None = None
        self.entered = threading.Event()

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(5)
        self.clock.t += self.took
        return super().query_raw(promql, at)


class TimedTriggerProm(TriggerProm):
    """Each range query takes `took` seconds on the given clock, counted when it ends; `hold`
    keeps range queries in flight until it is set."""

    def __init__(self, clock: Clock, took: float, *a: Any) -> None:
        super().__init__(*a)
        self.clock, self.took = clock, took
        self.hold: threading.Event | None = None

    def query_range_raw(self, *a: Any, **kw: Any) -> RawResponse:
        if self.hold is not None:
            self.hold.wait(5)
        self.clock.t += self.took
        return super().query_range_raw(*a, **kw)


def run_queued(targets: list[Callable[[], Any]], release: threading.Event) -> None:
    """Start every asker, let them all queue behind the first one's fetch, then let it land."""
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    time.sleep(0.2)
    release.set()
    for t in threads:
        t.join(5)


def test_askers_who_waited_take_the_answer_even_when_the_query_outlasted_max_age() -> None:
    clock = Clock()
    prom = TimedProm(clock, took=6.0)  # longer than max_age, as at 10,000 rollouts
    prom.hold = threading.Event()
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    run_queued([lambda i=i: shared.query_template(TEMPLATE, variables(f"v{i}")) for i in range(8)], prom.hold)
    assert len(prom.asked) == 1  # not one query per waiting thread, in turn


def test_a_trigger_window_fetched_while_waiting_is_taken_even_when_slower_than_max_age() -> None:
    clock = Clock()
    prom = TimedTriggerProm(clock, 6.0, {("a", f"v{i}"): const(0.1 * i) for i in range(8)})
    prom.hold = threading.Event()
    shared = SharedQueries(prom, max_age=5.0, clock=clock, wall_clock=lambda: 1000.5)
    run_queued([lambda i=i: engine.evaluate_trigger(RATIO, shared, rollout(f"v{i}", stable="v1"))
                for i in range(8)], prom.hold)
    assert prom.kinds() == ["range", "instant"]


def test_an_answer_near_its_age_is_fetched_again_by_one_asker_while_the_rest_use_it() -> None:
    clock = Clock()
    prom = TimedProm(clock, took=1.0)
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    assert shared.query_template(TEMPLATE, variables("v1")).value == 1.0  # fetched at 100, took 1 s
    clock.t = 103.9  # more than the fetch's duration left: no new query
    shared.query_template(TEMPLATE, variables("v1"))
    assert len(prom.asked) == 1

    clock.t = 104.1  # less: the next asker fetches ahead of expiry...
    prom.series[("a", "v1")] = "2"
    prom.hold, prom.entered = threading.Event(), threading.Event()
    ahead: dict[str, float | None] = {}
    t = threading.Thread(target=lambda: ahead.update(v=shared.query_template(TEMPLATE, variables("v1")).value))
    t.start()
    assert prom.entered.wait(5)
    # ...while the others go on with the answer they have (4.1 s old) without waiting for it.
    assert shared.query_template(TEMPLATE, variables("v1")).value == 1.0
    prom.hold.set()
    t.join(5)
    assert ahead == {"v": 2.0}
    assert shared.query_template(TEMPLATE, variables("v1")).value == 2.0 and len(prom.asked) == 2


@pytest.mark.parametrize(("took", "asked_at", "value"), [
    (1.0, 105.0, 1.0),   # max_age: 5 s
    (1.0, 105.5, 2.0),   # expired: the asker waits for a new answer
    (4.0, 112.0, 1.0),   # a query that takes 4 s: answers are used for 12 s (3 x 4 s)
    (4.0, 112.5, 2.0),
])
def test_when_an_answer_expires(took: float, asked_at: float, value: float) -> None:
    clock = Clock()
    prom = TimedProm(clock, took=took)
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    shared.query_template(TEMPLATE, variables("v1"))  # asked at 100
    prom.series[("a", "v1")] = "2"
    prom.hold = threading.Event()  # a fetch ahead of expiry stays in flight; a waiting asker would hang
    prom.entered.clear()
    clock.t = asked_at
    if value == 1.0:
        ahead = threading.Thread(target=shared.query_template, args=(TEMPLATE, variables("v1")))
        ahead.start()  # the fetch ahead of expiry...
        assert prom.entered.wait(5)
    got: dict[str, float | None] = {}
    asker = threading.Thread(target=lambda: got.update(v=shared.query_template(TEMPLATE, variables("v1")).value))
    asker.start()
    asker.join(0.5)
    if value == 1.0:
        assert got == {"v": 1.0}  # ...does not hold up the others
    else:
        assert got == {}  # waits for the new answer
    prom.hold.set()
    asker.join(5)
    assert got == {"v": value}


def test_a_trigger_window_near_its_age_is_fetched_ahead() -> None:
    clock = Clock()
    prom = TimedTriggerProm(clock, 1.0, {("a", "v1"): const(0.1)})
    shared = SharedQueries(prom, max_age=5.0, clock=clock, wall_clock=lambda: 1000.5)
    engine.evaluate_trigger(RATIO, shared, rollout("v1", stable="v1"))
    clock.t = 102.9  # a trigger window is fetched again two fetch durations ahead (TRIGGER_PACE)
    engine.evaluate_trigger(RATIO, shared, rollout("v1", stable="v1"))
    assert prom.kinds() == ["range", "instant"]
    clock.t = 103.1
    engine.evaluate_trigger(RATIO, shared, rollout("v1", stable="v1"))
    assert prom.kinds() == ["range", "instant"] * 2


@pytest.mark.parametrize(("fetch_from", "asked_at", "value"), [
    (104.1, 106.0, 1.0),  # fetched ahead of expiry but running long: the answer stays in use until it lands
    (120.0, 120.0, 2.0),  # after a quiet spell the fetch began on an expired answer: askers wait for it
])
def test_an_answer_past_its_freshness_while_a_fetch_is_in_flight(fetch_from: float, asked_at: float,
                                                                  value: float) -> None:
    clock = Clock()
    prom = TimedProm(clock, took=1.0)
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    shared.query_template(TEMPLATE, variables("v1"))  # asked at 100, took 1 s: fresh for 5 s
    prom.series[("a", "v1")] = "2"
    prom.hold = threading.Event()
    prom.entered.clear()
    clock.t = fetch_from
    fetching = threading.Thread(target=shared.query_template, args=(TEMPLATE, variables("v1")))
    fetching.start()
    assert prom.entered.wait(5)
    clock.t = asked_at
    got: dict[str, float | None] = {}
    asker = threading.Thread(target=lambda: got.update(v=shared.query_template(TEMPLATE, variables("v1")).value))
    asker.start()
    asker.join(0.5)
    assert got == ({"v": 1.0} if value == 1.0 else {})
    prom.hold.set()
    asker.join(5)
    fetching.join(5)
    assert got == {"v": value} and len(prom.asked) == 2


OVERLOADED = [
    ("prometheus unreachable: Read timed out. (read timeout=10.0)", False),
    ("prometheus unreachable: HTTP 503 from a proxy in front of Prometheus", False),
    ("query error: query timed out in query execution (HTTP 503, timeout)", False),
    ("query error: too many requests (HTTP 429, unavailable)", False),
    ("query error: query processing would load too many samples into memory (HTTP 422, execution)", True),
]


@pytest.mark.parametrize(("error", "per_rollout"), OVERLOADED)
def test_only_a_batched_query_refused_for_its_size_is_asked_per_rollout(error: str, per_rollout: bool) -> None:
    class Failing(FakeProm):
        def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
            if "by (" in promql:
                with self._lock:
                    self.asked.append(promql)
                return RawResponse(error=error)
            return super().query_raw(promql, at)

    prom = Failing({("a", "v1"): "1", ("a", "v2"): "2"})
    shared = SharedQueries(prom, max_age=5.0)
    got = [shared.query_template(TEMPLATE, variables(v)) for v in ("v1", "v2")]
    if per_rollout:
        assert [r.value for r in got] == [1.0, 2.0] and len(prom.asked) == 3
    else:
        # What each rollout's own query would have said, without sending thousands of them.
        assert all(r.value is None and r.missing == error for r in got) and len(prom.asked) == 1


@pytest.mark.parametrize(("error", "per_rollout"), OVERLOADED)
def test_a_trigger_window_that_failed_under_load_is_not_asked_per_rollout(error: str, per_rollout: bool) -> None:
    class Failing(TriggerProm):
        def query_range_raw(self, *a: Any, **kw: Any) -> RawResponse:
            super().query_range_raw(*a, **kw)
            return RawResponse(error=error)

    prom = Failing({("a", "v-bad"): const(0.3), ("a", "v-other"): const(0.3)})
    shared = SharedQueries(prom, max_age=5.0, wall_clock=lambda: 1000.5)
    got = [engine.evaluate_trigger(RATIO, shared, rollout(v)) for v in ("v-bad", "v-other")]
    if per_rollout:
        assert prom.kinds() == ["range", "alone", "alone"]
    else:
        assert prom.kinds() == ["range"]
        assert all(r.missing and not r.fired and r.reason == error for r in got)


def test_shared_queries_go_to_the_batched_source_and_a_rollouts_own_to_the_plain_one() -> None:
    """The operator gives shared queries a source with a longer timeout: each answers for every
    rollout, and one cut off at the timeout is Prometheus' work thrown away."""
    plain, batched = fleet(), fleet()
    shared = SharedQueries(plain, max_age=5.0, clock=Clock(), wall_clock=lambda: 1000.5, batched=batched)
    assert engine.evaluate_trigger(RATIO, shared, rollout("v-bad")).fired
    gate = FakeProm({("a", "v1"): "1"})
    gates = SharedQueries(FakeProm({}), max_age=5.0, batched=gate)
    assert gates.query_template(TEMPLATE, variables("v1")).value == 1.0
    assert batched.kinds() == ["range", "instant"] and plain.asked == []
    assert len(gate.asked) == 1 and "by (" in gate.asked[0]
    # A rollout's own query (here: an explicit time, as a backtest asks) stays on the plain source.
    at = datetime(2026, 1, 1, tzinfo=UTC)
    shared.query_raw("up", at)
    assert plain.asked == [("instant", "up", at.timestamp())]


def drifting() -> TriggerProm:
    """Values that differ at every step, so a step taken from the wrong fetch shows."""
    return TriggerProm({("a", "v0"): lambda t: [0.1 + (t % 7_000) / 1e5],
                        ("a", "v-bad"): lambda t: [0.3 if t >= 1_002_000 else 0.1 + (t % 5_000) / 1e4],
                        ("a", "v-gap"): lambda t: [0.3] if t % 3_000 else [],
                        ("a", "v-late"): lambda t: [0.3] if t >= 1_004_000 else []})


@pytest.mark.parametrize("settle, second_at, asked_from", [
    (2.0, 1003.5, 999.0),    # 995-1000 held; 998 was settled at 1000.5 (2 s), 999 and 1000 were not
    (2.0, 1001.5, 999.0),
    (2.0, 1008.5, 1003.0),   # no overlap with the held steps: the whole window
    (10.0, 1003.5, 998.0),   # settle longer than the window: nothing reused
    (0.5, 1003.5, 999.0),    # at least two steps are always asked again
])
def test_a_window_fetched_again_asks_only_for_steps_it_does_not_hold_settled(
        settle: float, second_at: float, asked_from: float) -> None:
    prom, clock, wall = drifting(), Clock(), [1000.5]
    shared = SharedQueries(prom, max_age=5.0, clock=clock, wall_clock=lambda: wall[0], settle=settle)
    names = ("v-bad", "v-gap", "v-late", "v0", "v-none")
    for v in names:
        engine.evaluate_trigger(RATIO, shared, rollout(v))
    clock.t += 10.0
    wall[0] = second_at
    incremental = {v: engine.evaluate_trigger(RATIO, shared, rollout(v)) for v in names}
    ranges = [a for a in prom.asked if a[0] == "range"]
    assert len(ranges) == 2 and ranges[1][2:] == (asked_from, second_at - 0.5, 1.0)
    # Every verdict is what a window fetched whole at the same time says.
    whole = SharedQueries(drifting(), max_age=5.0, clock=Clock(), wall_clock=lambda: second_at)
    for v in names:
        assert incremental[v] == engine.evaluate_trigger(RATIO, whole, rollout(v)), v
    assert incremental["v-bad"].held_steps > 0 and incremental["v-gap"].data_steps < incremental["v-gap"].steps


LONG = RollbackTrigger.model_validate({"name": "errors", "query": ERRORS, "above": {"baselineRatio": 2},
                                       "for": "30s", "step": "1s"})


def test_a_long_window_fetched_again_and_again_keeps_its_chunks_few_and_its_verdicts_whole() -> None:
    """A `for` of 30 steps fetched every 1.5 s: each fetch keeps the settled steps it holds (in the
    chunks of earlier fetches, narrowed) and asks for the rest; past MAX_CHUNKS they are merged.
    Every verdict, at every fetch, is what a window fetched whole at that time says."""
    prom, clock, wall = drifting(), Clock(), [1000.5]
    shared = SharedQueries(prom, max_age=1.0, clock=clock, wall_clock=lambda: wall[0], settle=2.0)
    names = ("v-bad", "v-gap", "v-late", "v0", "v-none")
    most, merged = 0, False
    for _ in range(24):
        got = {v: engine.evaluate_trigger(LONG, shared, rollout(v)) for v in names}
        whole = SharedQueries(drifting(), max_age=1.0, clock=Clock(), wall_clock=lambda: wall[0])
        for v in names:
            assert got[v] == engine.evaluate_trigger(LONG, whole, rollout(v)), (wall[0], v)
        (window,) = shared._windows.values()
        assert window.over is not None
        chunks = next(iter(window.over.values()))
        most = max(most, len(chunks))
        merged = merged or (len(chunks) == 1 and chunks[0].lo < window.at_ms - 10_000)  # type: ignore[operator]
        clock.t += 2.0
        wall[0] += 1.5
    ranges = [a for a in prom.asked if a[0] == "range"]
    assert len(ranges) == 24 and all(end - start <= 3.0 for _, _, start, end, _ in ranges[1:])
    assert most == sharing.MAX_CHUNKS and merged
    assert got["v-bad"].held_steps > 0 and got["v-gap"].data_steps < got["v-gap"].steps


def test_a_failed_window_is_not_reused_and_the_next_fetch_asks_for_all_steps() -> None:
    prom, clock, wall = drifting(), Clock(), [1000.5]
    shared = SharedQueries(prom, max_age=5.0, clock=clock, wall_clock=lambda: wall[0], settle=2.0)
    prom.fail_range = True
    assert engine.evaluate_trigger(RATIO, shared, rollout("v-bad")).missing
    prom.fail_range = False
    clock.t += 10.0
    wall[0] = 1003.5
    engine.evaluate_trigger(RATIO, shared, rollout("v-bad"))
    ranges = [a for a in prom.asked if a[0] == "range"]
    assert ranges[-1][2] == 998.0


def test_a_slow_prometheus_is_not_asked_back_to_back() -> None:
    """A shared query that takes 4 s of a 5 s max_age: one asker every half second for a minute.
    Fetches start every 8 s (half the time spent fetching), answers are at most 3 x 4 s old. Fetched
    two durations ahead of a 2 x freshness, each fetch would begin as the last one lands, and at
    10,000 rollouts the operator would spend most of its time on fleet-wide answers."""
    clock = Clock()
    prom = TimedProm(clock, took=4.0)
    shared = SharedQueries(prom, max_age=5.0, clock=clock)
    oldest = 0.0
    end = clock.t + 60
    while clock.t < end:
        shared.query_template(TEMPLATE, variables("v1"))
        answer = shared._answers[next(iter(shared._answers))]
        oldest = max(oldest, clock.t - answer.at)
        clock.t += 0.5
    assert len(prom.asked) <= 8  # 60 s / 8 s; back to back it would be 14
    assert oldest <= 12.0


def test_a_policy_hash_the_template_does_not_use_does_not_split_the_shared_query() -> None:
    """The operator binds each rollout's own $policy; a template without it is still one query."""
    prom = FakeProm({("a", "v1"): "1", ("a", "v2"): "2"})
    shared = SharedQueries(prom, max_age=5.0, clock=Clock())
    assert shared.query_template(TEMPLATE, {**variables("v1"), "policy": "aaaaaaaaaa"}).value == 1.0
    assert shared.query_template(TEMPLATE, {**variables("v2"), "policy": "bbbbbbbbbb"}).value == 2.0
    assert len(prom.asked) == 1
