"""The timetable of every object's passes (not a Kopf daemon per object): pure `Agenda` tables,
then `Scheduler` on a real event loop (ordering and exclusivity only; no timed assertions)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from launchgate.adapters.kube import LAST_APPLIED, slim
from launchgate.controller.schedule import Agenda, Entry, Scheduler


def body(gen: int = 1, rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": "a", "generation": gen, "resourceVersion": rv}, "spec": {"x": gen}}


def due(agenda: Agenda, now: float, limit: int = 100) -> list[Any]:
    return [k for k, _ in agenda.pop_due(now, limit)]


def test_a_new_object_is_due_at_once_and_then_after_its_delay() -> None:
    a = Agenda()
    assert a.observe("r", body(), now=10.0) is True
    assert a.next_due() == 10.0
    [(key, entry)] = a.pop_due(10.0, 10)
    assert due(a, 10.0) == []  # running: never twice at once
    assert a.done(key, entry, now=11.0, delay=30.0) is True
    assert due(a, 39.9) == []
    assert due(a, 40.0) == ["r"]  # counted from when the pass was due, not from its end


@pytest.mark.parametrize("popped, ended, delay, next_due", [
    (0.0, 0.1, 30.0, 30.0),     # on time
    (4.0, 6.0, 30.0, 30.0),     # waited 4 s for a worker, took 2 s: the schedule does not drift
    (0.0, 14.9, 30.0, 30.0),    # less than half a delay late: still on the schedule
    (10.0, 20.0, 30.0, 35.0),   # more than half a delay late: half a delay's rest, never a burst
    (0.0, 90.0, 30.0, 105.0),   # far behind (a restart, an outage): no catching up missed passes
    (0.0, 3.0, 1.0, 3.5),       # a failing pass's short backoff is not used up by its own duration
    (0.0, 0.0, 0.0, 0.0),
])
def test_the_next_pass_is_counted_from_when_this_one_was_due(popped: float, ended: float, delay: float,
                                                             next_due: float) -> None:
    a = Agenda()
    a.observe("r", body(), now=0.0)
    [(key, entry)] = a.pop_due(popped, 10)
    a.done(key, entry, now=ended, delay=delay)
    assert a.next_due() == next_due


@pytest.mark.parametrize("change, wakes", [
    ({"gen": 1, "rv": "2"}, False),   # the operator's own status write: same generation
    ({"gen": 2, "rv": "2"}, True),    # a spec edit
])
def test_only_a_spec_change_wakes_an_object(change: dict[str, Any], wakes: bool) -> None:
    a = Agenda()
    a.observe("r", body(), now=0.0)
    [(key, entry)] = a.pop_due(0.0, 10)
    a.done(key, entry, now=1.0, delay=30.0)
    assert a.observe("r", body(**change), now=5.0) is wakes
    assert due(a, 5.0) == (["r"] if wakes else [])
    assert a.entries["r"].body["metadata"]["resourceVersion"] == "2"  # the body is always the newest


def test_a_spec_change_during_a_pass_runs_again_right_after_it() -> None:
    a = Agenda()
    a.observe("r", body(), now=0.0)
    [(key, entry)] = a.pop_due(0.0, 10)
    assert a.observe("r", body(gen=2), now=1.0) is False  # running: not twice at once
    assert due(a, 1.0) == []
    a.done(key, entry, now=2.0, delay=30.0)
    assert due(a, 2.0) == ["r"]


def test_a_wake_makes_an_idle_object_due_now_and_a_running_one_due_after_its_pass() -> None:
    a = Agenda()
    a.observe("r", body(), now=0.0)
    [(key, entry)] = a.pop_due(0.0, 10)
    assert a.wake("r", now=0.5) is False           # running: not twice at once...
    a.done(key, entry, now=1.0, delay=30.0)
    [(key, entry)] = a.pop_due(1.0, 10)            # ...but again right after it
    a.done(key, entry, now=2.0, delay=30.0)
    assert due(a, 5.0) == []
    assert a.wake("r", now=5.0) is True            # idle: at once, not at 31.0
    [(key, entry)] = a.pop_due(5.0, 10)
    a.done(key, entry, now=6.0, delay=30.0)
    assert due(a, 34.9) == [] and due(a, 35.0) == ["r"]  # and then its interval from that pass


@pytest.mark.parametrize("setup", ["unknown", "removed while running"])
def test_a_wake_for_an_object_that_is_not_there_does_nothing(setup: str) -> None:
    a = Agenda()
    if setup == "removed while running":
        a.observe("r", body(), now=0.0)
        [(key, entry)] = a.pop_due(0.0, 10)
        a.remove("r")
    assert a.wake("r", now=1.0) is False
    if setup == "removed while running":
        assert a.done(key, entry, now=2.0, delay=30.0) is False
    assert a.entries == {} and due(a, 100.0) == []


def test_removal_while_idle_and_while_running() -> None:
    a = Agenda()
    a.observe("idle", body(), now=0.0)
    a.observe("busy", body(), now=0.0)
    [(k, busy)] = [(k, e) for k, e in a.pop_due(0.0, 10) if k == "busy"]
    a.done("idle", a.entries["idle"], now=0.0, delay=30.0)
    assert isinstance(a.remove("idle"), Entry)  # gone now: the caller cleans up
    assert a.remove("busy") is None              # cleaned up when its pass ends
    assert a.done(k, busy, now=1.0, delay=30.0) is False
    assert a.entries == {} and a.next_due() is None and due(a, 100.0) == []


def test_recreated_while_its_last_pass_runs() -> None:
    a = Agenda()
    a.observe("r", body(), now=0.0)
    [(key, entry)] = a.pop_due(0.0, 10)
    a.remove("r")
    assert a.observe("r", body(gen=1, rv="9"), now=1.0) is False
    assert a.done(key, entry, now=2.0, delay=30.0) is True  # kept, and due at once
    assert due(a, 2.0) == ["r"]


def test_the_body_a_pass_reads_is_the_last_observed_until_removal() -> None:
    """Rollout passes read their gates' bodies here (handlers._gate_body): a removed gate must read
    as absent even while its own last pass still runs, and a re-created one as its new body."""
    async def work(key: Any, entry: Entry) -> float:
        return 30.0

    s = Scheduler(work, concurrency=1, clock=lambda: 0.0)
    assert s.body("g") is None
    s.observe("g", body(gen=1, rv="1"))
    s.observe("g", body(gen=1, rv="2"))  # a status write: not due again, but the body is the latest
    assert s.body("g")["metadata"]["resourceVersion"] == "2"
    [(key, entry)] = s.agenda.pop_due(0.0, 1)
    s.remove("g")  # while its pass runs
    assert s.body("g") is None
    s.observe("g", body(gen=1, rv="9"))  # re-created before that pass ended
    assert s.body("g")["metadata"]["resourceVersion"] == "9"
    s.agenda.done(key, entry, 1.0, 30.0)
    s.remove("g")
    assert s.body("g") is None and s.agenda.entries == {}


def test_earliest_first_and_at_most_limit() -> None:
    a = Agenda()
    for i, t in enumerate([5.0, 1.0, 3.0]):
        a.observe(f"r{i}", body(), now=t)
    assert due(a, 10.0, limit=2) == ["r1", "r2"]
    assert due(a, 10.0, limit=2) == ["r0"]


def test_slim_drops_what_no_pass_reads_and_keeps_the_rest() -> None:
    raw = {"apiVersion": "v", "metadata": {"name": "a", "uid": "u", "managedFields": [{"m": 1}],
                                           "annotations": {LAST_APPLIED: "{...}", "keep": "me"}},
           "spec": {"s": 1}, "status": {"t": 2}}
    s = slim(raw)
    assert s["metadata"] == {"name": "a", "uid": "u", "annotations": {"keep": "me"}}
    assert s["spec"] is raw["spec"] and s["status"] is raw["status"]
    assert "managedFields" in raw["metadata"] and LAST_APPLIED in raw["metadata"]["annotations"]
    assert slim(raw, last_applied=True)["metadata"]["annotations"][LAST_APPLIED] == "{...}"


def test_scheduler_runs_each_object_alone_and_bounds_passes_in_flight() -> None:
    async def scenario() -> tuple[int, list[str]]:
        in_flight: set[str] = set()
        most, runs, gone = 0, {"a": 0, "b": 0, "c": 0}, []
        done = asyncio.Event()

        async def work(key: Any, entry: Entry) -> float:
            nonlocal most
            assert key not in in_flight
            in_flight.add(key)
            most = max(most, len(in_flight))
            await asyncio.sleep(0.01)
            in_flight.discard(key)
            runs[key] += 1
            if all(n >= 3 for n in runs.values()):
                done.set()
            return 0.0 if key != "c" else 0.02

        s = Scheduler(work, concurrency=2, gone=lambda key, entry: gone.append(key))
        task = asyncio.create_task(s.run())
        for k in runs:
            s.observe(k, body())
        await asyncio.wait_for(done.wait(), 10)
        s.remove("a")
        await s.drain()
        task.cancel()
        return most, gone

    most, gone = asyncio.run(scenario())
    assert most == 2
    assert gone == ["a"]


def test_scheduler_reports_how_late_each_pass_starts() -> None:
    """One worker, two objects due at once, passes that take 2 s (of a clock the test moves): the
    second waits for the first, and says so."""
    now = [100.0]
    started: list[tuple[Any, float]] = []

    async def scenario() -> None:
        done = asyncio.Event()

        async def work(key: Any, entry: Entry) -> float:
            now[0] += 2.0
            if len(started) >= 4:
                done.set()
            return 3.0

        s = Scheduler(work, concurrency=1, clock=lambda: now[0], started=lambda key, late: started.append((key, late)))
        task = asyncio.create_task(s.run())
        s.observe("a", body())
        s.observe("b", body())
        await asyncio.wait_for(done.wait(), 10)
        task.cancel()

    asyncio.run(scenario())
    # a: due 100, runs 100-102, next due 103.5 (half an interval's rest); b: due 100, starts 102,
    # runs to 104, next due 105.5. Then a starts at 104 (0.5 s late) and b after it at 106.
    assert started[:4] == [("a", 0.0), ("b", 2.0), ("a", 0.5), ("b", 0.5)]


def test_packed_bodies_wake_on_a_new_generation_and_unpack_to_fresh_dicts() -> None:
    from launchgate.adapters.kube import Packed

    a = Agenda()
    a.observe("r", Packed(body()), now=0.0)
    [(key, entry)] = a.pop_due(0.0, 10)
    first = entry.body.unpack()
    first["spec"]["x"] = "edited by a pass"
    assert entry.body.unpack() == body()  # a pass never edits what the next one reads
    a.done(key, entry, now=1.0, delay=30.0)
    assert a.observe("r", Packed(body(gen=1, rv="2")), now=2.0) is False
    assert a.observe("r", Packed(body(gen=2, rv="3")), now=3.0) is True
    assert due(a, 3.0) == ["r"]


def test_packed_bodies_round_trip_what_the_watch_delivers() -> None:
    """Unicode, escapes, big and float numbers, nulls and nested lists come back unchanged."""
    from launchgate.adapters.kube import Packed

    b = {"metadata": {"name": "r", "generation": 3, "annotations": {"note": 'é ✓ "quoted" \\ \n'}},
         "spec": {"replicas": 2, "weights": [50, 100], "ratio": 1.5, "big": 2**53 + 1, "none": None,
                  "template": {"spec": {"containers": [{"name": "agent", "args": ["--x=1", ""]}]}}}}
    packed = Packed(b)
    assert packed.unpack() == b
    assert packed.generation == 3


def test_packed_bodies_keep_integers_past_64_bits() -> None:
    """A user's free-form fields may hold any JSON number, and the watch delivers one printed
    without an exponent (1.8e19 as 18446744073709552000) as an integer past 64 bits: the body is
    still kept, value for value, so the rollout is still evaluated."""
    from launchgate.adapters.kube import Packed

    b = {"metadata": {"name": "r", "generation": 1},
         "spec": {"trafficRouting": {"replicaRatio": {"n": 18446744073709552000, "m": -(2**70)}}}}
    packed = Packed(b)
    assert packed.unpack() == b
    assert packed.unpack() is not packed.unpack()
