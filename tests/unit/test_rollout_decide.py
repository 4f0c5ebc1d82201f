"""Table tests of the pure rollout state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from launchgate.api import AgentRolloutSpec, AgentRolloutStatus, LaunchGateSpec
from launchgate.core.gates import BlockerResult, GateResult, QueryResult, TriggerResult, evaluate_gate
from launchgate.core.rollout import (
    ApprovalVote,
    Observation,
    Pods,
    canary_replicas,
    decide,
    refused_conditions,
    stable_replicas,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
GATES = {"ReplayGate": "replay", "Canary1": "canary1", "Canary2": "canary2", "General": "general"}


def spec(**kw) -> AgentRolloutSpec:
    base = {
        "replicas": 10,
        "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}},
        "trafficRouting": {"replicaRatio": {}},
        "phases": [
            {"name": "ReplayGate", "weight": 0, "gates": ["replay"]},
            {"name": "Canary1", "weight": 5, "gates": ["canary1"],
             "rollbackTriggers": [{"name": "errors", "query": "q", "above": {"baselineRatio": 2}, "for": "10m"}]},
            {"name": "Canary2", "weight": 25, "gates": ["canary2"]},
            {"name": "General", "weights": [50, 100], "gates": ["general"],
             "approval": {"approvers": 2, "group": "reliability-reviewers"}},
        ],
    }
    base.update(kw)
    return AgentRolloutSpec.model_validate(base)


def gate(decision: str = "allow", failing: tuple[str, ...] = (), value: float = 1.0) -> GateResult:
    blockers = [BlockerResult(name="b", target="gte 0.99", value=value, baseline_value=None,
                              passed=decision == "allow", reason="r", owner=None, missing=decision == "hold")]
    return GateResult(decision=decision, blockers=blockers, passing="1/1" if decision == "allow" else "0/1",
                      failing=list(failing), escalate_to=[], message=f"gate {decision}")


def gate_without_data(on_missing_data: str, *, also_failing: bool = False) -> GateResult:
    """A gate whose blocker `b` has no data, as core.gates judges it under `on_missing_data`;
    with `also_failing`, a second blocker `c` has data and fails."""
    spec = LaunchGateSpec.model_validate({"blockers": [
        {"name": "b", "query": "q", "target": {"gte": 0.99}, "onMissingData": on_missing_data},
        {"name": "c", "query": "q", "target": {"gte": 0.99}}]})
    return evaluate_gate(spec, {"b": QueryResult.unavailable("empty vector"),
                                "c": QueryResult.of(0.5 if also_failing else 1.0)}, {})


def all_gates(decision: str = "allow") -> dict:
    return {g: gate(decision, ("b",) if decision == "block" else ()) for g in GATES.values()}


def obs(**kw) -> Observation:
    base = dict(now=T0, revision="rev2", gates_hash="gh", gates=all_gates())
    base.update(kw)
    return Observation(**base)


def at_phase(index: int, step: int = 0, **kw) -> AgentRolloutStatus:
    names = list(GATES)
    weights = [[0], [5], [25], [50, 100]]
    base = dict(stable_revision="rev1", canary_revision="rev2", phase=names[index], phase_index=index,
                step_index=step, canary_weight=weights[index][step], state="Progressing",
                phase_started_at=T0 - timedelta(hours=1))
    base.update(kw)
    return AgentRolloutStatus(**base)


def test_first_revision_becomes_stable_without_canary() -> None:
    out = decide(spec(), AgentRolloutStatus(), obs(revision="rev1"))
    assert out.status.stable_revision == "rev1" and out.status.canary_revision is None
    assert out.status.state == "Healthy" and out.status.canary_weight == 0


def test_new_revision_starts_at_replay_gate() -> None:
    st = AgentRolloutStatus(stable_revision="rev1", state="Healthy")
    out = decide(spec(), st, obs())
    assert (out.status.phase, out.status.canary_weight, out.status.canary_revision) == ("ReplayGate", 0, "rev2")
    assert out.record == "action"


@pytest.mark.parametrize(
    "index,step,expected_phase,expected_weight",
    [(0, 0, "Canary1", 5), (1, 0, "Canary2", 25), (2, 0, "General", 50), (3, 1, "Finalizing", 100)],
)
def test_passing_gates_promote_one_step(index, step, expected_phase, expected_weight) -> None:
    st = at_phase(index, step, pending_approval=None)
    out = decide(spec(), st, obs(replay="succeeded"))
    assert out.decision == "promote"
    assert (out.status.phase, out.status.canary_weight) == (expected_phase, expected_weight)
    # Traffic stays where it was until the canary's pods for the new weight are available.
    assert out.status.traffic_weight == st.canary_weight
    if expected_phase == "Finalizing":
        assert out.status.stable_revision == "rev2" and out.status.canary_revision == "rev2"
        assert out.status.state == "Progressing"


def test_a_blocked_gate_holds_with_its_failing_blockers() -> None:
    out = decide(spec(), at_phase(1), obs(gates={"canary1": gate("block", ("p95_latency_ms",))}))
    assert out.decision == "hold" and "p95_latency_ms" in out.reason
    assert out.status.canary_weight == 5


@pytest.mark.parametrize("gates", [{}, {"canary1": gate("hold")}, {"canary1": "LaunchGate canary1 not found"}])
def test_missing_data_never_promotes(gates) -> None:
    out = decide(spec(), at_phase(1), obs(gates=gates))
    assert out.decision == "hold" and out.status.canary_weight == 5
    assert out.status.consecutive_no_data == 1


@pytest.mark.parametrize("action,state", [("pause", "Paused"), ("rollback", "RollingBack")])
def test_consecutive_missing_data_applies_the_failure_policy(action, state) -> None:
    s = spec(failurePolicy={"maxConsecutiveNoData": 3, "action": action})
    out = decide(s, at_phase(1, consecutive_no_data=2), obs(gates={"canary1": gate("hold")}))
    assert out.status.state == state and out.status.canary_weight in (0, 5)
    assert out.decision == ("rollback" if action == "rollback" else "hold")
    assert next(c for c in out.status.conditions if c.type == "Stalled").status == (
        "True" if action == "pause" else "False")


@pytest.mark.parametrize("on_missing_data,also_failing", [("hold", False), ("fail", False), ("hold", True)])
@pytest.mark.parametrize("action,state", [("pause", "Paused"), ("rollback", "RollingBack")])
def test_missing_data_counts_toward_the_failure_policy_whether_the_gate_holds_or_blocks(
        on_missing_data, also_failing, action, state) -> None:
    s = spec(failurePolicy={"maxConsecutiveNoData": 3, "action": action})
    silent = obs(gates={"canary1": gate_without_data(on_missing_data, also_failing=also_failing)})
    outs = passes(s, at_phase(1), 3, gates=silent.gates)
    assert [o.status.consecutive_no_data for o in outs] == [1, 2, 3]
    assert [o.decision for o in outs[:2]] == ["hold", "hold"]
    assert outs[2].status.state == state and "(3 evaluations in a row)" in outs[2].reason
    assert outs[2].reason.startswith("no usable data: canary1: ") and "b: no data: empty vector" in outs[2].reason
    assert outs[2].values == {"canary1.b": None, "canary1.c": 0.5 if also_failing else 1.0}


def test_a_blocking_gate_with_data_starts_the_count_over_and_ends_a_pause_for_missing_data() -> None:
    st = at_phase(1, state="Paused", decision="hold", consecutive_no_data=12)
    out = decide(spec(), st, obs(gates={"canary1": gate("block", ("b",))}))
    assert (out.decision, out.status.state, out.status.consecutive_no_data) == ("hold", "Progressing", 0)
    assert out.record == "decision" and out.reason == "gates blocking: canary1 (b)"


def test_fired_trigger_rolls_back_with_its_values() -> None:
    trig = TriggerResult(name="errors", fired=True, value=0.06, baseline_value=0.02, reason="3x baseline for 10m", missing=None)
    out = decide(spec(), at_phase(1), obs(triggers={"errors": trig}))
    assert out.decision == "rollback" and out.status.state == "RollingBack" and out.status.canary_weight == 0
    assert out.recheck == 0.0  # settled to Degraded at the next pass, not an interval later
    assert out.values == {"errors": 0.06, "errors:baseline": 0.02}
    assert "errors" in out.reason and out.record == "decision"


def test_unfired_trigger_does_not_roll_back() -> None:
    trig = TriggerResult(name="errors", fired=False, value=0.06, baseline_value=0.02, reason="held 4m of 10m", missing=None)
    assert decide(spec(), at_phase(1), obs(triggers={"errors": trig})).decision == "promote"


def test_rolling_back_settles_to_degraded_and_stays() -> None:
    st = at_phase(1, state="RollingBack", canary_weight=0, decision="rollback")
    out = decide(spec(), st, obs())
    assert out.status.state == "Degraded"
    again = decide(spec(), out.status, obs())
    assert again.status.state == "Degraded" and again.status.canary_weight == 0
    assert next(c for c in again.status.conditions if c.type == "Stalled").status == "True"


def test_retry_restarts_a_degraded_rollout_from_replay() -> None:
    st = at_phase(1, state="Degraded", canary_weight=0)
    out = decide(spec(), st, obs(action="retry", actor="alice"))
    assert out.status.phase == "ReplayGate" and out.status.state == "Progressing"


def test_revision_changed_mid_rollout_restarts_from_replay_gate() -> None:
    out = decide(spec(), at_phase(2), obs(revision="rev3"))
    assert (out.status.phase, out.status.canary_revision, out.status.canary_weight) == ("ReplayGate", "rev3", 0)


def test_replay_phase_waits_for_job_and_fails_on_job_failure() -> None:
    s = spec(phases=[{"name": "ReplayGate", "weight": 0, "gates": ["replay"],
                      "replay": {"template": {"spec": {}}}}, {"name": "Canary1", "weight": 5}])
    assert decide(s, at_phase(0), obs(replay="running")).decision == "hold"
    assert decide(s, at_phase(0), obs(replay="failed")).status.state == "RollingBack"
    blocked = decide(s, at_phase(0), obs(replay="succeeded", gates={"replay": gate("block", ("critical",))}))
    assert blocked.status.state == "RollingBack"
    assert decide(s, at_phase(0), obs(replay="succeeded")).decision == "promote"


def test_min_duration_holds_until_elapsed() -> None:
    s = spec(phases=[{"name": "Canary1", "weight": 5, "minDuration": "10m"}, {"name": "Canary2", "weight": 25}])
    st = AgentRolloutStatus(stable_revision="rev1", canary_revision="rev2", phase="Canary1", phase_index=0,
                            step_index=0, canary_weight=5, state="Progressing", phase_started_at=T0)
    assert decide(s, st, obs(now=T0 + timedelta(minutes=5))).decision == "hold"
    assert decide(s, st, obs(now=T0 + timedelta(minutes=11))).decision == "promote"


class TestApprovals:
    def test_reaching_general_opens_a_request_bound_to_both_hashes(self) -> None:
        out = decide(spec(), at_phase(3), obs())
        assert out.decision == "await_approval" and out.status.state == "AwaitingApproval"
        req = out.status.pending_approval
        assert req is not None and (req.revision, req.gates_hash, req.approvers_required) == ("rev2", "gh", 2)
        assert out.record == "approval-request"

    def _pending(self):
        first = decide(spec(), at_phase(3), obs())
        return first.status

    def test_two_distinct_approvers_promote(self) -> None:
        st = self._pending()
        vote = lambda who: ApprovalVote(approver=who, decision="approve", created=T0)  # noqa: E731
        one = decide(spec(), st, obs(votes=[vote("alice"), vote("alice")]))
        assert one.decision == "await_approval" and one.status.pending_approval.approved_by == ["alice"]
        two = decide(spec(), st, obs(votes=[vote("alice"), vote("bob")]))
        assert two.decision == "promote" and two.status.canary_weight == 100

    def test_changed_gates_void_the_request(self) -> None:
        st = self._pending()
        votes = [ApprovalVote(approver=w, decision="approve", created=T0) for w in ("alice", "bob")]
        out = decide(spec(), st, obs(gates_hash="changed", votes=votes))
        assert out.decision == "await_approval"
        assert out.status.pending_approval.request_id != st.pending_approval.request_id

    def test_a_rejection_rolls_back(self) -> None:
        st = self._pending()
        out = decide(spec(), st, obs(votes=[ApprovalVote(approver="carol", decision="reject", created=T0)]))
        assert out.decision == "rollback" and "carol" in out.reason

    def test_later_steps_of_an_approved_phase_need_no_new_approval(self) -> None:
        out = decide(spec(), at_phase(3, step=1), obs())
        assert out.decision == "promote" and out.status.phase == "Finalizing"


def test_no_new_record_while_holding_for_the_same_reason() -> None:
    first = decide(spec(), at_phase(1), obs(gates={"canary1": gate("block", ("x",))}))
    second = decide(spec(), first.status, obs(gates={"canary1": gate("block", ("x",))}))
    assert second.record is None and len(second.status.history) == len(first.status.history)


def passes(s: AgentRolloutSpec, st: AgentRolloutStatus, n: int, **observed) -> list:
    """`n` passes a second apart, each deciding on the status the one before decided."""
    outs = []
    for i in range(n):
        outs.append(decide(s, st, obs(now=T0 + timedelta(seconds=i), **observed)))
        st = outs[-1].status
    return outs


def test_a_pause_for_missing_data_is_recorded_once_while_its_count_goes_on() -> None:
    s = spec(failurePolicy={"maxConsecutiveNoData": 3, "action": "pause"})
    outs = passes(s, at_phase(1, history=[{"id": "d-p", "decision": "promote", "phase": "Canary1", "at": T0,
                                           "reason": "promoted"}]), 12, gates={"canary1": gate("hold")})
    # The first hold and the pause are decisions; every later pass repeats the pause.
    assert [o.record for o in outs] == ["decision", None, "decision"] + [None] * 9
    assert [o.status.state for o in outs] == ["Progressing"] * 2 + ["Paused"] * 10
    assert outs[2].event_type == "Warning" and "(3 evaluations in a row)" in outs[2].reason
    last = outs[-1].status
    assert [h.decision for h in last.history] == ["promote", "hold", "hold"]
    assert last.last_decision is not None and last.last_decision.id == outs[2].record_id
    # Status still says how long data has been missing: it is written when it changes.
    assert last.consecutive_no_data == 12 and last.message is not None and "(12 evaluations in a row)" in last.message


def test_records_in_one_step_have_their_own_ids_once_the_history_is_full() -> None:
    full = [{"id": f"d-{i}", "decision": "promote", "phase": "Canary1", "at": T0, "reason": "r"} for i in range(2)]
    s = spec(historyLimit=2, failurePolicy={"maxConsecutiveNoData": 2, "action": "pause"})
    hold, pause = passes(s, at_phase(1, history=full), 2, gates={"canary1": gate("hold")})
    assert (hold.record, pause.record) == ("decision", "decision") and pause.status.state == "Paused"
    assert hold.record_id != pause.record_id
    assert [h.id for h in pause.status.history] == [hold.record_id, pause.record_id]
    # The same pass decided again (after a crash) makes the same record.
    assert decide(s, hold.status, obs(now=T0 + timedelta(seconds=9), gates={"canary1": gate("hold")})).record_id \
        == pause.record_id


STEADY = [
    # (what repeats, status, observation, spec)
    ("gates blocking", at_phase(1), {"gates": {"canary1": gate("block", ("b",))}}, {}),
    ("waiting for pods", at_phase(2, traffic_weight=5), {"canary_pods": Pods("r-canary", False, "0/3")},
     {"availabilityDeadline": "1h"}),
    ("minimum duration", at_phase(1, phase_started_at=T0), {}, {"phases": [
        p.model_dump(by_alias=True, exclude_none=True) | ({"minDuration": "1h"} if p.name == "Canary1" else {})
        for p in spec().effective_phases()]}),
    ("awaiting approval", at_phase(3), {}, {}),
    ("paused by spec", at_phase(1), {}, {"paused": True}),
    ("missing data", at_phase(1), {"gates": {}}, {"failurePolicy": {"maxConsecutiveNoData": 1000}}),
    ("replay running", at_phase(0), {"replay": "running"}, {"phases": [
        {"name": "ReplayGate", "weight": 0, "replay": {"template": {"spec": {}}}}, {"name": "Canary1", "weight": 5}]}),
    ("rolled back", at_phase(1, state="RollingBack", canary_weight=0, decision="rollback"), {}, {}),
    ("finalizing", decide(spec(), at_phase(3, step=1), obs()).status,
     {"stable_pods": Pods("r-stable", False, "4/10 available")}, {}),
]


@pytest.mark.parametrize("what,status,observed,spec_fields", STEADY, ids=[s[0] for s in STEADY])
def test_a_decision_repeated_pass_after_pass_is_recorded_at_most_once(what, status, observed, spec_fields) -> None:
    outs = passes(spec(**spec_fields), status, 8, **observed)
    assert sum(o.record is not None for o in outs) <= 1, [(o.record, o.reason) for o in outs]
    assert all(o.record is None for o in outs[1:]), [(o.record, o.reason) for o in outs]
    assert len(outs[-1].status.history) == len(outs[0].status.history)


def test_history_is_bounded() -> None:
    s = spec(historyLimit=3)
    st = at_phase(0)
    for _ in range(6):
        st = decide(s, st, obs(replay="succeeded")).status
        if st.state == "Healthy":
            st = decide(s, st, obs(revision=f"rev{len(st.history)}")).status
    assert len(st.history) <= 3


@pytest.mark.parametrize(
    "total,weight,ratio,canary,stable",
    [(10, 0, True, 0, 10), (10, 5, True, 1, 9), (10, 25, True, 3, 7), (10, 100, True, 10, 0),
     (10, 0, False, 1, 10), (10, 50, False, 5, 10), (1, 1, True, 1, 0), (0, 50, True, 0, 0)],
)
def test_replica_split(total, weight, ratio, canary, stable) -> None:
    assert canary_replicas(total, weight, ratio_router=ratio) == canary
    assert stable_replicas(total, weight, ratio_router=ratio) == stable


def test_conditions_follow_kstatus() -> None:
    healthy = decide(spec(), AgentRolloutStatus(), obs(revision="rev1")).status
    conds = {c.type: c.status for c in healthy.conditions}
    assert conds == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    progressing = decide(spec(), at_phase(1), obs(gates={"canary1": gate("block", ("x",))})).status
    assert {c.type: c.status for c in progressing.conditions}["Reconciling"] == "True"
    late = at_phase(1, phase_started_at=T0 - timedelta(hours=3))
    stalled = decide(spec(progressDeadline="1h"), late, obs(gates={"canary1": gate("block", ("x",))})).status
    assert {c.type: (c.status, c.reason) for c in stalled.conditions}["Stalled"] == ("True", "ProgressDeadlineExceeded")


# --------------------------------------------------------------------------- pods before traffic

def canary(ready: bool, detail: str = "1/2 available, 1 updated") -> Pods:
    return Pods("r-canary", ready, detail)


@pytest.mark.parametrize(
    "routed,pods,since_min,decision,traffic,words",
    [
        # A promotion to 25% waits at 5% until the pods for 25% are available ...
        (5, canary(False), 1, "hold", 5, "waiting for the canary's pods before routing 25%"),
        # ... and rolls back when they are not within spec.availabilityDeadline (10m).
        (5, canary(False), 11, "rollback", 0, "not available within spec.availabilityDeadline 10m"),
        # Once they are, traffic follows, and the gates are judged from the next pass on.
        (5, canary(True, "3/3 available, 3 updated"), 1, "hold", 25, "25% of traffic now goes to the canary"),
        (25, canary(True), None, "promote", 25, "all gates pass"),
        # Pods lost in the middle of a phase: the gates are not judged on a canary that is down.
        (25, canary(False), 2, "hold", 25, "before judging its gates"),
        # No canary Deployment to wait on (replica-ratio routing at 0%): nothing holds the traffic.
        (5, None, None, "hold", 25, "no pods to wait for"),
    ],
)
def test_traffic_moves_only_to_available_canary_pods(routed, pods, since_min, decision, traffic, words) -> None:
    since = T0 - timedelta(minutes=since_min) if since_min is not None else None
    st = at_phase(2, traffic_weight=routed, pods_pending_since=since)
    out = decide(spec(), st, obs(canary_pods=pods))
    assert (out.decision, out.status.traffic_weight) == (decision, traffic)
    assert words in out.reason
    if decision == "rollback":
        assert out.status.canary_weight == 0 and out.status.state == "RollingBack"


def test_a_status_from_before_traffic_weight_counts_its_weight_as_routed() -> None:
    out = decide(spec(), at_phase(2), obs(canary_pods=canary(True)))
    assert out.decision == "promote" and out.status.traffic_weight == 25


def test_a_fired_trigger_rolls_back_even_while_waiting_for_pods() -> None:
    trig = TriggerResult(name="errors", fired=True, value=0.06, baseline_value=0.02, reason="r", missing=None)
    out = decide(spec(), at_phase(1, traffic_weight=0), obs(canary_pods=canary(False), triggers={"errors": trig}))
    assert out.decision == "rollback" and out.status.traffic_weight == 0


def test_a_new_revision_routes_nothing_until_its_pods_are_up() -> None:
    out = decide(spec(), AgentRolloutStatus(stable_revision="rev1", state="Healthy"), obs())
    assert out.status.traffic_weight == 0 and out.status.pods_pending_since == T0


@pytest.mark.parametrize(
    "stable,done",
    [(None, True), (Pods("r-stable", True, "10/10 available, 10 updated"), True),
     (Pods("r-stable", False, "4/10 available, 6 updated"), False)],
)
def test_finalizing_keeps_canary_traffic_until_the_stable_deployment_rolled_out(stable, done) -> None:
    promoted = decide(spec(), at_phase(3, step=1), obs()).status
    assert promoted.phase == "Finalizing" and promoted.traffic_weight == 100
    out = decide(spec(), promoted, obs(stable_pods=stable, now=T0 + timedelta(seconds=30)))
    assert out.decision == "promote"
    if done:
        assert (out.status.phase, out.status.state, out.status.canary_revision) == ("Completed", "Healthy", None)
        assert out.status.traffic_weight == 0 and out.record == "decision" and "rollout complete" in out.reason
        assert [h.phase for h in out.status.history][-2:] == ["Finalizing", "Completed"]
    else:
        assert (out.status.phase, out.status.traffic_weight, out.status.canary_revision) == ("Finalizing", 100, "rev2")
        assert out.record is None and "4/10 available" in out.reason
        assert len(out.status.history) == len(promoted.history)


def test_a_stable_deployment_that_never_rolls_out_marks_the_rollout_stalled() -> None:
    promoted = decide(spec(), at_phase(3, step=1), obs()).status
    late = obs(stable_pods=Pods("r-stable", False, "0/10 available"), now=T0 + timedelta(minutes=11))
    st = decide(spec(), promoted, late).status
    assert {c.type: (c.status, c.reason) for c in st.conditions}["Stalled"] == ("True", "PodsNotAvailable")
    assert st.phase == "Finalizing" and st.traffic_weight == 100


@pytest.mark.parametrize("moved_ago,decision,recheck", [(10, "hold", 20.0), (30, "promote", None),
                                                         (None, "promote", None)])
def test_a_step_gets_a_whole_interval_of_traffic_before_it_is_judged(moved_ago, decision, recheck) -> None:
    """Passes also run at once on events (pods up, approvals); the 30s interval still holds per step."""
    since = T0 - timedelta(seconds=moved_ago) if moved_ago is not None else None
    out = decide(spec(), at_phase(2, traffic_weight=25, traffic_since=since), obs(canary_pods=canary(True)))
    assert (out.decision, out.recheck) == (decision, recheck)
    if decision == "hold":
        assert "promoted no sooner than" in out.reason and out.status.canary_weight == 25


def test_traffic_moving_starts_the_steps_interval() -> None:
    out = decide(spec(), at_phase(2, traffic_weight=5), obs(canary_pods=canary(True)))
    assert out.status.traffic_since == T0 and out.status.traffic_weight == 25


def test_blocking_gates_are_reported_even_in_a_steps_first_interval() -> None:
    st = at_phase(2, traffic_weight=25, traffic_since=T0 - timedelta(seconds=1))
    out = decide(spec(), st, obs(canary_pods=canary(True), gates={"canary2": gate("block", ("b",))}))
    assert out.decision == "hold" and "gates blocking" in out.reason


def test_approvals_promote_without_waiting_for_the_steps_interval() -> None:
    votes = [ApprovalVote(approver=a, decision="approve", created=T0) for a in ("alice", "bob")]
    pending = decide(spec(), at_phase(3), obs()).status
    st = pending.model_copy(update={"traffic_since": T0 - timedelta(seconds=1)})
    out = decide(spec(), st, obs(votes=votes))
    assert out.decision == "promote" and out.status.canary_weight == 100


@pytest.mark.parametrize("canary,missing,becomes_stable", [
    (None, True, True),        # the stable Deployment was refused: the fixed template goes straight in
    ("rev1b", True, True),     # also over a canary of an older revision
    (None, False, False),      # otherwise a new revision starts a canary
    ("rev2", True, False),     # a canary of this revision goes on (only a new revision asks)
])
def test_a_new_revision_with_no_stable_deployment_becomes_stable(canary, missing, becomes_stable) -> None:
    st = AgentRolloutStatus(stable_revision="rev1", canary_revision=canary, state="Healthy" if canary is None
                            else "Progressing", phase_index=0 if canary else None, canary_weight=0)
    out = decide(spec(), st, obs(stable_missing=missing))
    if becomes_stable:
        assert (out.status.stable_revision, out.status.canary_revision, out.status.state) == ("rev2", None, "Healthy")
        assert out.record == "action" and "no stable Deployment runs rev1" in out.reason
    else:
        assert out.status.stable_revision == "rev1" and out.status.canary_revision == "rev2"


FINALIZING = decide(spec(), at_phase(3, step=1), obs()).status
HEALTHY = AgentRolloutStatus(stable_revision="rev2", state="Healthy", phase="Completed")


@pytest.mark.parametrize("status,action,applied,words", [
    (at_phase(1), "abort", True, None),
    (at_phase(1), "promote", True, None),
    (at_phase(1, state="Degraded", canary_weight=0), "retry", True, None),
    (at_phase(1, state="AwaitingApproval"), "abort", True, None),
    (FINALIZING, "abort", False, "already passed every phase and the stable Deployment is rolling it out; "
                                 "to go back, apply the previous template"),
    (FINALIZING, "promote", False, "rev2 already passed every phase"),
    (at_phase(1, state="Degraded", canary_weight=0), "abort", False, "already rolled back"),
    (at_phase(1, state="Degraded", canary_weight=0), "promote", False, "send retry to start rev2 again"),
    (at_phase(1), "retry", False, "only a rolled-back rollout can be retried; this one is Progressing"),
    (HEALTHY, "abort", False, "no canary of revision rev2 was in progress"),
])
def test_an_action_that_does_not_fit_the_state_says_why(status, action, applied, words) -> None:
    out = decide(spec(), status, obs(action=action, actor="carol"))
    assert out.action_applied is applied
    if applied:
        assert out.action_note is None
    else:
        assert words in (out.action_note or "")


def test_a_refused_change_is_not_ready_and_stalled_since_it_was_first_refused() -> None:
    healthy = decide(spec(), AgentRolloutStatus(), obs(revision="rev1")).status
    assert {c.type: c.status for c in healthy.conditions}["Ready"] == "True"
    first = refused_conditions(healthy, "the API server refused a workload change: quota", T0 + timedelta(minutes=1))
    assert [(c.type, c.status, c.reason) for c in first] == [
        ("Ready", "False", "ChangeRefused"), ("Reconciling", "False", "AsExpected"),
        ("Stalled", "True", "ChangeRefused")]
    again = refused_conditions(healthy.model_copy(update={"conditions": first}), "still refused",
                               T0 + timedelta(minutes=5))
    assert [c.last_transition_time for c in again] == [c.last_transition_time for c in first]
    assert again[0].message == "still refused"


@pytest.mark.parametrize("status, observation", [
    (AgentRolloutStatus(), obs(revision="rev1")),
    (at_phase(1, history=[{"id": "d-1", "decision": "hold", "phase": "Canary1", "at": T0, "reason": "r"}],
              kopf={"progress": {"h": {"retries": 1}}}), obs()),
    (at_phase(3, step=1), obs(gates={**all_gates(), "canary1": gate("block", ("b",))})),
    (at_phase(1), obs(triggers={"errors": TriggerResult(name="errors", fired=True, value=3.0,
                                                        baseline_value=1.0, reason="3 > 2", missing=False)})),
])
def test_decide_leaves_the_status_and_spec_it_was_given_alone(status: AgentRolloutStatus,
                                                             observation: Observation) -> None:
    """The reconciler compares the status it read with the one decided to know what to write, and
    keeps the validated spec for later passes (reconcile.ByVersion)."""
    before = status.model_dump()
    the_spec = spec()
    spec_before = the_spec.model_dump()
    out = decide(the_spec, status, observation)
    assert status.model_dump() == before
    assert the_spec.model_dump() == spec_before
    assert out.status is not status and out.status.history is not status.history
    assert out.status.conditions is not status.conditions
