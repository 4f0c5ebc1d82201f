"""Each rule of the rollout state machine on its own: when it decides, and when it passes.

test_rollout_decide checks `decide` as a whole; here each rule of `RULES` is asked alone, so a
rule's condition and its outcome read side by side."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from test_rollout_decide import T0, at_phase, gate, gate_without_data, obs, spec

from launchgate.api import AgentRolloutSpec, AgentRolloutStatus
from launchgate.core import rollout
from launchgate.core.gates import TriggerResult
from launchgate.core.rollout import Case, Observation, Pods

HEALTHY = AgentRolloutStatus(stable_revision="rev1", state="Healthy")
REPLAY = {"template": {"spec": {"containers": [{"name": "replay", "image": "replay:1"}]}}}


def case(status: AgentRolloutStatus, observation: Observation | None = None,
         rollout_spec: AgentRolloutSpec | None = None) -> Case:
    return Case(rollout_spec or spec(), status, status.model_copy(deep=True), observation or obs())


def spec_with(phase: int, **extra: Any) -> AgentRolloutSpec:
    """The test spec with `extra` fields on one of its phases."""
    phases = [p.model_dump(by_alias=True, exclude_none=True) for p in spec().effective_phases()]
    phases[phase].update(extra)
    return spec(phases=phases)


def test_the_rules_in_their_order() -> None:
    assert [r.__name__ for r in rollout.RULES] == [
        "first_revision", "finalize_promotion", "reverted_to_stable", "steady_on_stable", "stable_missing",
        "new_revision", "rolling_back_settles", "degraded_waits_for_retry", "abort_requested", "trigger_fired",
        "replay_failed", "promote_requested", "canary_pods", "paused", "replay_running", "gates_block",
        "gates_lack_data", "gates_wait_for_evidence", "minimum_duration", "approval", "traffic_judged_long_enough", "all_gates_pass"]


def test_first_revision() -> None:
    out = rollout.first_revision(case(AgentRolloutStatus(), obs(revision="rev1")))
    assert out is not None and (out.status.stable_revision, out.status.state, out.record) == ("rev1", "Healthy", "action")
    assert rollout.first_revision(case(HEALTHY)) is None


def test_finalize_promotion() -> None:
    st = at_phase(3, 1, stable_revision="rev2", phase="Finalizing")
    out = rollout.finalize_promotion(case(st, obs(stable_pods=Pods("r-stable", True, "ok"))))
    assert out is not None and out.decision == "promote" and out.status.phase == "Completed"
    assert rollout.finalize_promotion(case(st.model_copy(update={"state": "Healthy"}))) is None
    assert rollout.finalize_promotion(case(at_phase(1))) is None


def test_reverted_to_stable() -> None:
    out = rollout.reverted_to_stable(case(at_phase(1), obs(revision="rev1")))
    assert out is not None and out.decision == "rollback" and out.status.canary_revision is None
    assert out.event_type == "Warning"
    assert rollout.reverted_to_stable(case(at_phase(1, state="Degraded"), obs(revision="rev1"))) is None
    assert rollout.reverted_to_stable(case(at_phase(1))) is None


def test_steady_on_stable() -> None:
    out = rollout.steady_on_stable(case(at_phase(1, state="Degraded", message="rolled back"), obs(revision="rev1")))
    assert out is not None and out.decision is None and out.status.state == "Healthy"
    assert out.status.canary_revision is None and out.reason == "rolled back"
    assert rollout.steady_on_stable(case(HEALTHY)) is None


def test_stable_missing() -> None:
    out = rollout.stable_missing(case(HEALTHY, obs(stable_missing=True)))
    assert out is not None and out.status.stable_revision == "rev2" and out.status.canary_revision is None
    assert rollout.stable_missing(case(at_phase(1), obs(stable_missing=True))) is None
    assert rollout.stable_missing(case(HEALTHY)) is None


def test_new_revision() -> None:
    out = rollout.new_revision(case(at_phase(2, canary_revision="rev0")))
    assert out is not None and (out.status.canary_revision, out.status.phase) == ("rev2", "ReplayGate")
    assert rollout.new_revision(case(at_phase(1))) is None


def test_rolling_back_settles() -> None:
    out = rollout.rolling_back_settles(case(at_phase(1, state="RollingBack", message="trigger fired")))
    assert out is not None and (out.decision, out.status.state, out.reason) == ("rollback", "Degraded", "trigger fired")
    assert rollout.rolling_back_settles(case(at_phase(1))) is None


def test_degraded_waits_for_retry() -> None:
    st = at_phase(1, state="Degraded", decision="rollback", message="rolled back")
    out = rollout.degraded_waits_for_retry(case(st, obs(action="retry", actor="carol")))
    assert out is not None and out.action_applied and out.status.phase == "ReplayGate"
    stays = rollout.degraded_waits_for_retry(case(st))
    assert stays is not None and not stays.action_applied and stays.status.state == "Degraded"
    assert rollout.degraded_waits_for_retry(case(at_phase(1))) is None


def test_abort_requested() -> None:
    out = rollout.abort_requested(case(at_phase(1), obs(action="abort", actor="carol")))
    assert out is not None and out.decision == "rollback" and out.reason == "aborted by carol" and out.action_applied
    assert rollout.abort_requested(case(at_phase(1))) is None


def test_trigger_fired() -> None:
    fired = TriggerResult(name="errors", fired=True, value=0.06, baseline_value=0.02, reason="3x", missing=False)
    out = rollout.trigger_fired(case(at_phase(1), obs(triggers={"errors": fired})))
    assert out is not None and out.decision == "rollback"
    assert out.values == {"errors": 0.06, "errors:baseline": 0.02}
    held = TriggerResult(name="errors", fired=False, value=0.06, baseline_value=0.02, reason="4m", missing=False)
    assert rollout.trigger_fired(case(at_phase(1), obs(triggers={"errors": held}))) is None


def test_replay_failed() -> None:
    out = rollout.replay_failed(case(at_phase(0), obs(replay="failed")))
    assert out is not None and (out.decision, out.reason) == ("rollback", "replay suite failed")
    assert rollout.replay_failed(case(at_phase(0), obs(replay="running"))) is None


def test_promote_requested() -> None:
    out = rollout.promote_requested(case(at_phase(1), obs(action="promote", actor="carol")))
    assert out is not None and out.decision == "promote" and out.action_applied and out.status.phase == "Canary2"
    assert rollout.promote_requested(case(at_phase(1))) is None


def test_canary_pods() -> None:
    waiting = rollout.canary_pods(case(at_phase(1), obs(canary_pods=Pods("r-canary", False, "0/1 available"))))
    assert waiting is not None and waiting.decision == "hold" and "0/1 available" in waiting.reason
    moved = rollout.canary_pods(case(at_phase(1, traffic_weight=0)))
    assert moved is not None and moved.status.traffic_weight == 5 and moved.status.traffic_since == T0
    c = case(at_phase(1, traffic_weight=5))
    assert rollout.canary_pods(c) is None and c.new.traffic_weight == 5


def test_paused() -> None:
    out = rollout.paused(case(at_phase(1), rollout_spec=spec(paused=True)))
    assert out is not None and (out.decision, out.status.state) == ("hold", "Paused")
    assert rollout.paused(case(at_phase(1))) is None


def test_replay_running() -> None:
    with_replay = spec_with(0, replay=REPLAY)
    out = rollout.replay_running(case(at_phase(0), obs(replay="running"), with_replay))
    assert out is not None and (out.decision, out.reason) == ("hold", "replay suite running")
    assert rollout.replay_running(case(at_phase(0), obs(replay="succeeded"), with_replay)) is None
    assert rollout.replay_running(case(at_phase(0))) is None


def test_gates_block() -> None:
    blocked = obs(gates={"canary1": gate("block", ("p95",))})
    out = rollout.gates_block(case(at_phase(1, consecutive_no_data=3), blocked))
    assert out is not None and out.decision == "hold" and out.reason == "gates blocking: canary1 (p95)"
    assert out.status.consecutive_no_data == 0
    after_replay = rollout.gates_block(case(at_phase(1), blocked, spec_with(1, replay=REPLAY)))
    assert after_replay is not None and after_replay.decision == "rollback"
    assert rollout.gates_block(case(at_phase(1))) is None
    # A gate that blocks for missing data (onMissingData: fail) counts toward the failure policy.
    failing = obs(gates={"canary1": gate_without_data("fail")})
    held = rollout.gates_block(case(at_phase(1, consecutive_no_data=3), failing))
    assert held is not None and held.decision == "hold" and held.reason == "gates blocking: canary1 (b)"
    assert held.status.consecutive_no_data == 4
    paused = rollout.gates_block(case(at_phase(1, consecutive_no_data=9), failing))
    assert paused is not None and paused.status.state == "Paused" and paused.record == "decision"
    assert paused.reason.startswith("no usable data: canary1: b: no data: empty vector; blocks (onMissingData: fail)")
    assert paused.reason.endswith("(10 evaluations in a row)")


def test_gate_verdict_names_the_gates_without_data_whichever_way_they_report_it() -> None:
    phase = spec().effective_phases()[1]
    for result, blocked in ((gate_without_data("hold"), []), (gate_without_data("fail"), ["canary1 (b)"]),
                            (gate_without_data("hold", also_failing=True), ["canary1 (c)"])):
        verdict = rollout.gate_verdict(phase, obs(gates={"canary1": result}))
        assert verdict.blocked == blocked
        assert len(verdict.missing) == 1 and verdict.missing[0].startswith("canary1: ") and "b: no data" in \
            verdict.missing[0]
    assert rollout.gate_verdict(phase, obs(gates={"canary1": gate("block", ("b",))})).missing == []
    assert rollout.gate_verdict(phase, obs(gates={})).missing == ["canary1: gate not evaluated"]


def test_gates_lack_data() -> None:
    no_data = obs(gates={})
    out = rollout.gates_lack_data(case(at_phase(1, consecutive_no_data=1), no_data))
    assert out is not None and out.decision == "hold" and out.status.consecutive_no_data == 2
    paused = rollout.gates_lack_data(case(at_phase(1, consecutive_no_data=9), no_data))
    assert paused is not None and paused.status.state == "Paused" and paused.record == "decision"
    assert "(10 evaluations in a row)" in paused.reason
    still = rollout.gates_lack_data(case(paused.status, no_data))
    assert still is not None and still.status.state == "Paused" and still.status.consecutive_no_data == 11
    assert still.record is None and "(11 evaluations in a row)" in still.reason
    rollback = spec(failurePolicy={"maxConsecutiveNoData": 2, "action": "rollback"})
    rolled = rollout.gates_lack_data(case(at_phase(1, consecutive_no_data=1), no_data, rollback))
    assert rolled is not None and rolled.decision == "rollback"
    c = case(at_phase(1, state="Paused", consecutive_no_data=4))
    assert rollout.gates_lack_data(c) is None
    assert (c.new.consecutive_no_data, c.new.state) == (0, "Progressing")


def test_minimum_duration() -> None:
    slow = spec_with(1, minDuration="2h")
    out = rollout.minimum_duration(case(at_phase(1), rollout_spec=slow))
    assert out is not None and out.decision == "hold" and "minimum duration in Canary1" in out.reason
    done = at_phase(1, phase_started_at=T0 - timedelta(hours=2))
    assert rollout.minimum_duration(case(done, rollout_spec=slow)) is None
    assert rollout.minimum_duration(case(at_phase(1))) is None


def test_approval() -> None:
    out = rollout.approval(case(at_phase(3)))
    assert out is not None and out.decision == "await_approval" and out.record == "approval-request"
    assert rollout.approval(case(at_phase(3, 1))) is None
    assert rollout.approval(case(at_phase(1))) is None


def test_traffic_judged_long_enough() -> None:
    out = rollout.traffic_judged_long_enough(case(at_phase(1, traffic_since=T0 - timedelta(seconds=5))))
    assert out is not None and out.decision == "hold" and out.recheck == 25.0
    assert rollout.traffic_judged_long_enough(case(at_phase(1, traffic_since=T0 - timedelta(seconds=30)))) is None
    assert rollout.traffic_judged_long_enough(case(at_phase(1))) is None


def test_all_gates_pass() -> None:
    out = rollout.all_gates_pass(case(at_phase(1)))
    assert out.decision == "promote" and out.reason.startswith("all gates pass") and out.status.phase == "Canary2"
