"""Leader election's rules (core.leadership), the scheduler standing by, and the write fence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from launchgate.adapters.kube import Kube, NotLeading
from launchgate.controller.schedule import Scheduler
from launchgate.core.leadership import LeaseRecord, LeaseTerms, Observation, claim, still_leading

T = LeaseTerms(lease_duration=15, renew_deadline=10, retry_period=2)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)


def held_by(holder: str | None, duration: int | None = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, duration, EARLIER, EARLIER, transitions)


@pytest.mark.parametrize(("record", "unchanged_for", "takes", "transitions"), [
    (None, 0.0, True, 0),                               # no Lease yet: create it
    (held_by("me"), 0.0, True, 3),                      # one's own: renew, no transition
    (held_by("other"), 14.9, False, None),              # another's, renewed within the lease: wait
    (held_by("other"), 15.0, True, 4),                  # another's, silent a whole lease: take over
    (held_by("other", duration=60), 30.0, False, None),  # the holder promised longer than our terms
    (held_by("other", duration=60), 60.0, True, 4),
    (held_by("other", duration=5), 10.0, False, None),  # ... but never shorter than ours
    (held_by(None), 0.0, True, 4),                      # released: take it at once
    (held_by(""), 0.0, True, 4),
])
def test_who_may_hold_the_lease(record: LeaseRecord | None, unchanged_for: float, takes: bool,
                                transitions: int | None) -> None:
    wanted = claim(record, "me", unchanged_for, T, NOW)
    if not takes:
        assert wanted is None
        return
    assert wanted is not None
    assert (wanted.holder, wanted.renew_time, wanted.lease_duration_seconds, wanted.transitions) == \
        ("me", NOW, 15, transitions)
    # Renewing keeps when it was acquired; taking over starts a new term.
    assert wanted.acquire_time == (EARLIER if record is not None and record.holder == "me" else NOW)


def test_a_lease_duration_is_stored_in_whole_seconds_rounded_up() -> None:
    wanted = claim(None, "me", 0.0, LeaseTerms(4.5, 3, 0.5), NOW)
    assert wanted is not None and wanted.lease_duration_seconds == 5


def test_unchanged_time_is_counted_on_the_standbys_own_clock_from_the_first_sight_of_a_record() -> None:
    seen = Observation()
    a, b = held_by("other"), LeaseRecord("other", 15, EARLIER, NOW, 3)
    assert seen.saw(a, 100.0) == 0.0
    assert seen.saw(a, 110.0) == 10.0
    assert seen.saw(b, 112.0) == 0.0    # renewed: counting starts again, whatever the times written in it say
    assert seen.saw(b, 127.0) == 15.0
    assert seen.saw(None, 128.0) == 0.0


@pytest.mark.parametrize(("sent_at", "now", "leading"), [
    (None, 0.0, False), (100.0, 100.0, True), (100.0, 109.9, True), (100.0, 110.0, False), (100.0, 500.0, False),
])
def test_the_holder_decides_only_within_the_renew_deadline_of_its_last_renewal(sent_at: float | None, now: float,
                                                                                 leading: bool) -> None:
    assert still_leading(sent_at, now, T) is leading


def test_the_holder_stops_before_anyone_may_take_over() -> None:
    """Renewal sent at t=0 and seen by a standby right after: the holder stops deciding at
    renew_deadline, the standby may take over only at lease_duration."""
    stops = next(t / 10 for t in range(0, 1000) if not still_leading(0.0, t / 10, T))
    seen = Observation()
    seen.saw(held_by("other"), 0.0)
    takes = next(t / 10 for t in range(0, 1000) if claim(held_by("other"), "me", seen.saw(held_by("other"), t / 10),
                                                          T, NOW) is not None)
    assert stops < takes and (stops, takes) == (10.0, 15.0)


@pytest.mark.parametrize(("terms", "problems"), [
    (LeaseTerms(), 0), (LeaseTerms(15, 15, 2), 1), (LeaseTerms(15, 2, 2), 1), (LeaseTerms(1, 2, 0), 2), (LeaseTerms(2, 2, 2), 2),
])
def test_unsafe_terms_are_named(terms: LeaseTerms, problems: int) -> None:
    assert len(terms.problems()) == problems


def test_a_standby_scheduler_starts_no_pass_until_it_leads() -> None:
    async def scenario() -> list[str]:
        ran: list[str] = []
        leading = False

        async def work(key: object, entry: object) -> float:
            ran.append(str(key))
            return 60.0

        s = Scheduler(work, concurrency=4, leading=lambda: leading, standby_poll=0.01)
        task = asyncio.create_task(s.run())
        s.observe("a", {"metadata": {"generation": 1}})
        s.observe("b", {"metadata": {"generation": 1}})
        for _ in range(20):  # the loop turns while standing by, and runs nothing
            await asyncio.sleep(0.005)
        assert ran == []
        leading = True
        s.kick()
        for _ in range(200):
            if len(ran) == 2:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        return sorted(ran)

    assert asyncio.run(scenario()) == ["a", "b"]


def test_a_write_is_refused_before_it_is_sent_when_not_leading() -> None:
    kube = Kube(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")), resync=60, confirmed_resync=60)
    kube.fence = lambda: False
    with pytest.raises(NotLeading):
        kube.patch_status("agentrollouts", "ns", "r", {"phase": "Canary1"}, "42")
    with pytest.raises(NotLeading):
        kube.create_once("decisionrecords", "ns", {"metadata": {"name": "d"}, "spec": {}})
    assert kube.writes == 0  # nothing counted: nothing left the process


def test_a_replica_that_stops_leading_shows_no_rollout_series() -> None:
    from launchgate.adapters import metrics
    m = metrics.METRICS
    metrics.observe_status("ns", "r", "Canary1", 1, 5, "Progressing", "abc")
    metrics.observe_leading(True)
    assert m.registry.get_sample_value("launchgate_rollout_canary_weight", {"namespace": "ns", "rollout": "r"}) == 5
    assert m.registry.get_sample_value("launchgate_leader") == 1
    metrics.observe_leading(False)
    assert m.registry.get_sample_value("launchgate_rollout_canary_weight", {"namespace": "ns", "rollout": "r"}) is None
    assert m.registry.get_sample_value("launchgate_leader") == 0
    metrics.observe_leading(True)
