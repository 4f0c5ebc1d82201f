"""Shared rollback triggers against a real Prometheus: each rollout's verdict from the shared data
equals its own `sustained_trigger_query` at the same evaluation time.

Synthetic agents are scraped every second: a stable version with 2% errors, a canary bad for the
whole window (10% errors), one that turns bad part-way through the window, one that stays good,
one without traffic (0/0 = NaN), one that starts part-way (gaps), and versions with no agent. Rollouts pair them; for every rollout and trigger the shared
path (`SharedQueries.query_trigger`, via `engine.evaluate_trigger`) and the plain path (one
`sustained_trigger_query` through a PrometheusSource) are evaluated at the same time, in the past
so that every scrape has landed.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from harness import wait_for
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.adapters.sharing import SharedQueries
from launchgate.api import RollbackTrigger
from launchgate.core import engine
from launchgate.core.gates import TriggerResult, trigger_eval_time, trigger_steps
from launchgate_dev import devenv
from launchgate_dev.synthetic import SyntheticAgent

FOR, STEP = "6s", "1s"
AGENTS: dict[str, dict[str, float]] = {"stable": {"success_rate": 0.98}, "bad": {"success_rate": 0.90},
                                        "partial": {"success_rate": 0.995}, "good": {"success_rate": 0.995},
                                        "idle": {"rps": 0}}
V = 'namespace="$namespace",version="$version"'
ERRORS = (f'sum(rate(agent_jobs_total{{{V},outcome!="success"}}[2s])) / sum(rate(agent_jobs_total{{{V}}}[2s]))')


def trig(name: str, query: str = ERRORS, **kw: Any) -> RollbackTrigger:
    return RollbackTrigger.model_validate({"name": name, "query": query, "for": FOR, "step": STEP, **kw})


TRIGGERS = [
    trig("ratio", above={"baselineRatio": 2}),
    # a baseline query of another shape: two shared windows' worth of queries, still one set for all
    trig("ratio-own-baseline", above={"baselineRatio": 2},
         baselineQuery=ERRORS.replace("[2s]", "[3s]")),
    trig("value", above={"value": 0.05}),
    trig("below", query=f'sum(rate(agent_jobs_total{{{V},outcome="success"}}[2s])) / '
                        f"sum(rate(agent_jobs_total{{{V}}}[2s]))", below={"value": 0.95}),
    # no aggregation: two series (success, error) per version, so NaN at every step
    trig("several", query=f"rate(agent_jobs_total{{{V}}}[2s])", above={"value": 0}),
]

# (canary, stable): what each rollout pairs
ROLLOUTS = [("bad", "stable"), ("partial", "stable"), ("good", "stable"), ("idle", "stable"), ("late", "stable"),
            ("none", "stable"), ("bad", "none")]


@dataclass
class Fleet:
    prometheus: devenv.PrometheusServer
    namespace: str
    agents: dict[str, SyntheticAgent]
    turned_bad_at: float

    def variables(self, canary: str, stable: str) -> dict[str, str]:
        return {"namespace": self.namespace, "rollout": f"r-{canary}", "canary": canary, "stable": stable,
                "window": FOR}


@pytest.fixture(scope="module")
def fleet(prometheus: devenv.PrometheusServer) -> Iterator[Fleet]:
    namespace = f"trig-{uuid.uuid4().hex[:8]}"
    agents: dict[str, SyntheticAgent] = {}
    try:
        def start(version: str, **rates: float) -> None:
            agents[version] = SyntheticAgent(version, namespace=namespace, **rates).start()
            prometheus.add_target(f"{namespace}-{version}", agents[version].address)

        for version, rates in AGENTS.items():
            start(version, **rates)

        def history(seconds: int) -> bool:
            rows = prometheus.query(f'count_over_time(agent_jobs_total{{namespace="{namespace}",'
                                    f'outcome="success"}}[{seconds}s])')
            return len(rows) == len(AGENTS) and all(float(r["value"][1]) >= seconds - 1 for r in rows)

        wait_for("the agents with twelve seconds of history", lambda: history(12))
        # "late" has been scraped once when "partial" turns bad: a few seconds later, its window
        # has data at some steps only.
        start("late", success_rate=0.90)
        wait_for("the late agent's first scrape", lambda: prometheus.query(
            f'agent_jobs_total{{namespace="{namespace}",version="late"}}'))
        agents["partial"].set(success_rate=0.90)
        turned = time.time()
        yield Fleet(prometheus, namespace, agents, turned)
    finally:
        for version, agent in agents.items():
            prometheus.remove_target(f"{namespace}-{version}")
            agent.stop()


def _wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(min(0.2, max(0.0, t - time.time())))


def _normalised(reason: str) -> str:
    """The reason with its numbers blurred: values may differ in the last bits (Prometheus sums a
    group's series in whichever order it holds them), the wording must not."""
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", reason)


def _same(shared: TriggerResult, plain: TriggerResult) -> None:
    assert (shared.name, shared.fired, shared.missing, shared.held_steps, shared.data_steps, shared.steps) == \
        (plain.name, plain.fired, plain.missing, plain.held_steps, plain.data_steps, plain.steps), (shared, plain)
    for a, b in ((shared.value, plain.value), (shared.baseline_value, plain.baseline_value)):
        assert (a is None) == (b is None), (shared, plain)
        if a is not None and b is not None:
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (shared, plain)
    assert _normalised(shared.reason) == _normalised(plain.reason), (shared.reason, plain.reason)


def test_subquery_steps_are_what_trigger_steps_says(prometheus: devenv.PrometheusServer) -> None:
    """Prometheus puts subquery steps on multiples of the step; off the boundaries, exactly those."""
    source = PrometheusSource(prometheus.url)
    try:
        whole = int(time.time()) - 5
        t = trig("probe", above={"value": 1})
        for at_ms in (whole * 1000 + 437, whole * 1000 + 999, whole * 1000 + 1):
            raw = source.query_raw(f"vector(time())[{FOR}:{STEP}]", datetime.fromtimestamp(at_ms / 1000, UTC))
            assert raw.data is not None and raw.data["resultType"] == "matrix", raw
            got = [round(float(ts) * 1000) for ts, _ in raw.data["result"][0]["values"]]
            assert got == trigger_steps(t, at_ms), at_ms
        # On a boundary the count depends on the version (2.x includes at-for, 3.x does not), which is
        # why the shared path never evaluates there.
        raw = source.query_raw(f"count_over_time(vector(1)[{FOR}:{STEP}])", datetime.fromtimestamp(whole, UTC))
        assert raw.data is not None and raw.data["result"][0]["value"][1] in ("6", "7")
        assert trigger_steps(t, whole * 1000) is None
    finally:
        source.close()


@pytest.mark.parametrize("delay", [3.5, 9.5], ids=["part-way", "later"])
def test_shared_verdicts_equal_each_rollouts_own_query(fleet: Fleet, delay: float) -> None:
    """Part-way: the partial canary breached for about half the window; later: for all of it."""
    # An evaluation time off the step boundaries, with its scrapes (and the 2s rates) complete.
    when = math.floor(fleet.turned_bad_at + delay) + 0.437
    _wait_until(when + 2.5)
    at_ms = trigger_eval_time(TRIGGERS[0], round(when * 1000))
    assert at_ms == round(when * 1000)
    at = datetime.fromtimestamp(at_ms / 1000, UTC)

    plain = PrometheusSource(fleet.prometheus.url)
    backend = PrometheusSource(fleet.prometheus.url)
    shared = SharedQueries(backend, max_age=60.0, wall_clock=lambda: when)
    try:
        seen: dict[tuple[str, str], TriggerResult] = {}
        for trigger in TRIGGERS:
            for canary, stable in ROLLOUTS:
                variables = fleet.variables(canary, stable)
                mine = engine.evaluate_trigger(trigger, shared, variables, max_age=30.0)
                own = engine.evaluate_trigger(trigger, plain, variables, at=at)
                _same(mine, own)
                seen[(trigger.name, canary + "/" + stable)] = mine
        # Each shared window was asked once for all rollouts, a range and an instant query per
        # shape in it: "value" reuses "ratio"'s window (same query, for and step), and the
        # trigger with a baseline query of its own needs two shapes at one time: 2 + 4 + 2 + 2.
        assert shared.batched_queries == 10
        assert backend.queries_issued == shared.batched_queries
        assert plain.queries_issued == len(TRIGGERS) * len(ROLLOUTS)
    finally:
        plain.close()
        backend.close()

    # The cases the comparison is meant to cover really occurred.
    steps = len(trigger_steps(TRIGGERS[0], at_ms) or [])
    bad = seen[("ratio", "bad/stable")]
    assert bad.fired and bad.held_steps == bad.data_steps == bad.steps == steps
    partial = seen[("ratio", "partial/stable")]
    if delay < 5:
        assert not partial.fired and 0 < partial.held_steps < partial.steps, partial
    else:
        assert partial.fired, partial
    late = seen[("ratio", "late/stable")]
    if delay < 5:
        assert 0 < late.data_steps < late.steps, late
    else:
        assert late.fired, late
    idle = seen[("ratio", "idle/stable")]
    assert idle.data_steps == 0 and "now no data (NaN)" in idle.reason, idle
    good = seen[("ratio", "good/stable")]
    assert not good.fired and good.held_steps == 0 and good.data_steps == steps
    for name in ("none/stable", "bad/none"):
        r = seen[("ratio", name)]
        assert not r.fired and r.missing and r.data_steps == 0 and r.steps == steps, r
    several = seen[("several", "bad/stable")]
    assert several.missing and several.data_steps == 0 and "several series (2)" in several.reason
    assert seen[("below", "bad/stable")].fired and not seen[("below", "good/stable")].fired


def test_a_window_fetched_again_reuses_settled_steps_and_still_equals_each_rollouts_own_query(fleet: Fleet) -> None:
    """The second fetch asks Prometheus only for the steps newer than `settle`; every verdict is
    still what the rollout's own query says at the second evaluation time."""
    # The second window's first step must come before "partial" turned bad, with a margin for the
    # scrape in flight: were it within half a second of the turn (as floor(turned + 2.5) - 2 could
    # be), its 2s rate may already see the bad jobs and every step is held.
    first_step = math.floor(fleet.turned_bad_at - 0.3)
    second = first_step + 5 + 0.437
    first = second - 3.0
    _wait_until(second + 2.5)  # both times' scrapes have landed
    wall = [first]
    plain = PrometheusSource(fleet.prometheus.url)
    backend = PrometheusSource(fleet.prometheus.url)
    shared = SharedQueries(backend, max_age=1.0, wall_clock=lambda: wall[0], settle=1.0)
    asked: list[tuple[float, float]] = []
    range_raw = backend.query_range_raw

    def recording(query: str, start: datetime, end: datetime, step: float) -> Any:
        asked.append((start.timestamp(), end.timestamp()))
        return range_raw(query, start, end, step)

    backend.query_range_raw = recording  # type: ignore[method-assign]
    try:
        trigger = TRIGGERS[0]
        for canary, stable in ROLLOUTS:
            engine.evaluate_trigger(trigger, shared, fleet.variables(canary, stable), max_age=30.0)
        time.sleep(1.1)  # past max_age: the next ask fetches again
        wall[0] = second
        at = datetime.fromtimestamp(second, UTC)
        verdicts = {}
        for canary, stable in ROLLOUTS:
            variables = fleet.variables(canary, stable)
            mine = engine.evaluate_trigger(trigger, shared, variables, max_age=30.0)
            _same(mine, engine.evaluate_trigger(trigger, plain, variables, at=at))
            verdicts[canary + "/" + stable] = mine
        steps = trigger_steps(trigger, round(second * 1000)) or []
        assert len(asked) == 2 and len(steps) == 6 and steps[0] == first_step * 1000
        # Held from the first fetch: its steps at least 2 s (two steps, more than `settle`) older
        # than it; of the second window's six, that is the first one.
        assert [round(t * 1000) for t in asked[1]] == [steps[1], steps[-1]], (asked, steps)
        partial = verdicts["partial/stable"]
        assert 0 < partial.held_steps < partial.steps  # a verdict that mixes held and new steps
    finally:
        plain.close()
        backend.close()


class _Silent:
    """A TCP server that accepts connections and never answers: a Prometheus too busy to reply
    within the operator's timeout, as seen through the real HTTP client."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[Any] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_prometheus_too_slow_to_answer_costs_one_query_per_shape_not_one_per_rollout() -> None:
    """The overload path: every rollout's gate query and trigger see missing data (no promotion,
    no rollback on a guess), and no rollout falls back to a query of its own."""
    silent = _Silent()
    source = PrometheusSource(silent.url, timeout=0.5)
    shared = SharedQueries(source, max_age=60.0)
    try:
        rollouts = [{"namespace": "ns", "rollout": f"r{i}", "canary": f"c{i}", "stable": f"s{i}", "window": FOR}
                    for i in range(20)]
        for variables in rollouts:
            result = shared.query_template(ERRORS, {**variables, "version": variables["canary"]})
            assert not result.ok and "timeout" in (result.missing or "").lower(), result
            verdict = engine.evaluate_trigger(TRIGGERS[0], shared, variables, max_age=30.0)
            assert not verdict.fired and verdict.missing, verdict
        # One gate answer and one trigger window (a range query; the instant one is not reached).
        assert shared.batched_queries == source.queries_issued == 2
    finally:
        source.close()
        silent.close()
