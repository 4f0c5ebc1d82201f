"""The retention path of the timeline: which records expire, and what the operator says when it
deletes them (the API server's side is tests/integration/test_timeline.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from launchgate.controller.retention import Retention
from launchgate.core.retention import expired, recorded_at, sweep_every

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DAY = 86400.0


def rec(name: str, at: Any, ns: str = "agents", rollout: str = "r", uid: str | None = "u-1") -> dict[str, Any]:
    labels = {"launchgate.dev/rollout": rollout} | ({"launchgate.dev/rollout-uid": uid} if uid else {})
    return {"metadata": {"name": name, "namespace": ns, "uid": f"rec-{name}", "labels": labels},
            "spec": {"id": name, "rollout": rollout, "kind": "decision", "at": at}}


@pytest.mark.parametrize(("at", "gone"), [
    ("2026-02-27T12:00:00Z", True),             # two days old
    ("2026-02-28T11:59:59.999999Z", True),      # a day and a microsecond
    ("2026-02-28T12:00:00Z", False),            # exactly a day: not older than it
    ("2026-03-01T11:00:00+00:00", False),
    ("2026-02-27T12:00:00", False),             # no timezone: cannot be dated, kept
    ("yesterday", False),
    (None, False),
    (1772280000, False),
])
def test_a_record_expires_once_older_than_the_retention_by_its_spec_at(at: Any, gone: bool) -> None:
    assert (expired([rec("a", at)], DAY, NOW) != []) is gone


def test_recorded_at_reads_what_the_operator_writes() -> None:
    assert recorded_at(rec("a", "2026-01-02T03:04:05.000600Z")) == datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)


@pytest.mark.parametrize(("retention", "every"), [(5.0, 1.0), (60.0, 6.0), (DAY, 3600.0), (90 * DAY, 3600.0)])
def test_it_looks_every_tenth_of_the_retention_within_a_second_and_an_hour(retention: float, every: float) -> None:
    assert sweep_every(retention) == every


class FakeKube:
    def __init__(self, pages: dict[str | None, list[list[dict[str, Any]]]], fail_on: str | None = None) -> None:
        self.pages, self.fail_on = pages, fail_on
        self.listed: list[str | None] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self.events: list[tuple[dict[str, Any], str, str, str]] = []

    def record_pages(self, namespace: str | None) -> Iterator[Sequence[dict[str, Any]]]:
        self.listed.append(namespace)
        yield from self.pages.get(namespace, [])

    def delete_record(self, namespace: str, name: str, uid: str | None) -> bool:
        if name == self.fail_on:
            raise RuntimeError("refused")
        self.deleted.append((namespace, name, uid))
        return name != "raced"  # gone already: nothing to say

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((involved, type_, reason, message))


def sweeper(kube: FakeKube, retention: float = DAY, namespaces: Sequence[str] = ()) -> Retention:
    return Retention(kube, retention, namespaces)  # type: ignore[arg-type]


def test_expired_records_go_with_a_log_line_each_and_an_event_per_rollout(caplog: pytest.LogCaptureFixture) -> None:
    old = "2026-02-01T00:00:00Z"
    kube = FakeKube({None: [[rec("r-1", old), rec("r-2", "2026-03-01T00:00:00Z"), rec("r-3", old)],
                            [rec("g-1", old, rollout="gone", uid="u-9"), rec("raced", old)]]})
    with caplog.at_level(logging.INFO, logger="launchgate.retention"):
        assert sweeper(kube).sweep(NOW) == 3
    assert kube.deleted == [("agents", "r-1", "rec-r-1"), ("agents", "r-3", "rec-r-3"),
                            ("agents", "g-1", "rec-g-1"), ("agents", "raced", "rec-raced")]
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    assert [(x["msg"], x["record"], x["rollout"], x["rolloutUid"], x["at"], x["retention"]) for x in lines] == [
        ("decision record deleted", "agents/r-1", "r", "u-1", old, "24h"),
        ("decision record deleted", "agents/r-3", "r", "u-1", old, "24h"),
        ("decision record deleted", "agents/g-1", "gone", "u-9", old, "24h")]
    assert [(e[0]["kind"], e[0]["metadata"], e[1], e[2]) for e in kube.events] == [
        ("AgentRollout", {"name": "r", "namespace": "agents", "uid": "u-1"}, "Normal", "RecordsExpired"),
        ("AgentRollout", {"name": "gone", "namespace": "agents", "uid": "u-9"}, "Normal", "RecordsExpired")]
    assert kube.events[0][3] == ("2 DecisionRecord(s) older than the retention of 24h (LAUNCHGATE_RECORD_RETENTION) "
                                 "deleted: r-1, r-3")


def test_the_events_go_out_for_what_was_deleted_before_a_delete_failed() -> None:
    old = "2026-02-01T00:00:00Z"
    kube = FakeKube({None: [[rec("r-1", old), rec("r-2", old), rec("r-3", old)]]}, fail_on="r-2")
    with pytest.raises(RuntimeError):
        sweeper(kube).sweep(NOW)
    assert [e[3].split(": ")[-1] for e in kube.events] == ["r-1"]


def test_an_event_lists_a_few_names_and_counts_the_rest() -> None:
    kube = FakeKube({None: [[rec(f"r-{i:02}", "2026-02-01T00:00:00Z") for i in range(25)]]})
    sweeper(kube).sweep(NOW)
    ((_, _, _, message),) = kube.events
    assert message.startswith("25 DecisionRecord(s)") and message.endswith("r-19 and 5 more")


def test_the_sweep_covers_the_watched_namespaces_only() -> None:
    old = "2026-02-01T00:00:00Z"
    plain = FakeKube({"a": [[rec("x", old, ns="a")]], "b": [[rec("y", old, ns="b")]]})
    sweeper(plain, namespaces=["a", "b"]).sweep(NOW)
    assert plain.listed == ["a", "b"] and [d[1] for d in plain.deleted] == ["x", "y"]
    # Kopf's patterns need one cluster-wide list, filtered: globs, negations, comma-separated.
    everywhere = FakeKube({None: [[rec("x", old, ns="agents-a"), rec("y", old, ns="agents-secret"),
                                   rec("z", old, ns="other")]]})
    sweeper(everywhere, namespaces=["agents-*,!agents-secret"]).sweep(NOW)
    assert everywhere.listed == [None] and [d[1] for d in everywhere.deleted] == ["x"]
    every = FakeKube({None: [[rec("x", old, ns="a")]]})
    sweeper(every).sweep(NOW)
    assert every.listed == [None] and [d[1] for d in every.deleted] == ["x"]
