"""SharedQueries: when rollouts share one batched query, and when each still asks its own."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from launchgate.gates import QueryResult, RawResponse, from_prometheus
from launchgate.sharing import SharedQueries

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
