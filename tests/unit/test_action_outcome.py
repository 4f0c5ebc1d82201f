"""What a handled RolloutAction leaves in status.lastAction (core.actions, no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime

from launchgate.api import AgentRolloutStatus, LastAction
from launchgate.core.actions import action_outcome, handled
from launchgate.core.rollout import Outcome

T0 = datetime(2026, 11, 24, 18, 48, 59, tzinfo=UTC)


def test_the_outcome_says_why_not_or_what_was_decided() -> None:
    st = AgentRolloutStatus()
    assert action_outcome(Outcome(st, "promote", "forced", action_note="no canary")) == "not applied: no canary"
    assert action_outcome(Outcome(st, "promote", "promotion forced by carol")) == \
        "promote: promotion forced by carol"
    assert action_outcome(Outcome(st, None, "retry requested by carol")) == "retry requested by carol"


def action(name: str, created: str = "2026-11-24T18:48:59Z") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"rollout": "r", "action": "abort", "actor": "carol"}}


def test_names_handled_in_the_same_second_are_kept() -> None:
    prev = LastAction(name="r-retry", action="retry", actor="carol", created=T0, handled_same_second=["r-first"])
    last = handled(prev, action("r-abort"), "x" * 2000)
    assert (last.name, last.action, last.actor, last.created) == ("r-abort", "abort", "carol", T0)
    assert last.outcome == "x" * 1024
    assert last.handled_same_second == ["r-first", "r-retry"]


def test_a_later_second_starts_afresh_and_64_names_are_kept_at_most() -> None:
    prev = LastAction(name="r-retry", action="retry", actor="carol", created=T0,
                      handled_same_second=[f"n{i}" for i in range(64)])
    assert handled(prev, action("r-abort", "2026-11-24T18:49:00Z"), "ok").handled_same_second == []
    same = handled(prev, action("r-abort"), "ok").handled_same_second
    assert len(same) == 64 and same[-1] == "r-retry" and same[0] == "n1"
    assert handled(None, action("r-abort"), "ok").handled_same_second == []
