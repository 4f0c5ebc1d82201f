"""The rollout replay's walk through the operator's state machine, on a scripted metrics source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from launchgate.api import AgentRolloutSpec, LaunchGateSpec
from launchgate.core.drill import replay_rollout
from launchgate.core.gates import QueryResult, RawResponse

T0 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)


class Scripted:
    """Every query answers `value(at)`; freshness queries answer a fresh sample."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        if promql.startswith("time() - max(timestamp("):
            return QueryResult.of(1.0)
        return QueryResult.of(self.value) if self.value is not None else QueryResult.unavailable("empty vector")

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:  # pragma: no cover - no triggers
        raise AssertionError("no trigger in these rollouts")


SPEC = AgentRolloutSpec.model_validate({
    "template": {"spec": {"containers": [{"name": "a", "image": "a"}]}},
    "trafficRouting": {"replicaRatio": {}}, "interval": "30s",
    "phases": [{"name": "Canary1", "weight": 5, "gates": ["g"]},
               {"name": "General", "weights": [50, 100], "gates": ["g"],
                "approval": {"approvers": 2, "group": "reviewers"}}]})
GATE = LaunchGateSpec.model_validate({"window": "5m", "blockers": [
    {"name": "ok", "query": 'sum(x{version="$canary"})', "target": {"gte": 0.99}}]})
VARS = {"canary": "v2", "stable": "v1", "namespace": "agents"}


def test_passing_gates_promote_through_every_phase_with_assumed_approvals() -> None:
    replay = replay_rollout(SPEC, {"g": GATE}, Scripted(1.0), VARS, T0, T0 + timedelta(hours=1), timedelta(minutes=1))
    assert replay.outcome == "completed", [(w.phase, w.decision, w.reason) for w in replay.windows]
    assert [w.phase for w in replay.windows if w.decision == "promote"] == ["Canary1", "General", "General"]
    assert any(w.decision == "await_approval" for w in replay.windows)


def test_a_gate_without_data_never_promotes_and_the_range_ends_unfinished() -> None:
    replay = replay_rollout(SPEC, {"g": GATE}, Scripted(None), VARS, T0, T0 + timedelta(minutes=5),
                            timedelta(minutes=1))
    assert replay.outcome == "unfinished"
    assert all(w.decision != "promote" for w in replay.windows)
    assert len(replay.windows) == 6 and replay.rollback_at is None


def test_a_gate_missing_from_the_file_holds() -> None:
    replay = replay_rollout(SPEC, {}, Scripted(1.0), VARS, T0, T0 + timedelta(minutes=3), timedelta(minutes=1))
    assert replay.outcome == "unfinished"
    assert "LaunchGate g not found" in replay.windows[-1].gates["g"]
