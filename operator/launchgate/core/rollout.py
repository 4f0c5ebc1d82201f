"""The rollout state machine: pure, no I/O, table-tested.

Every piece of state the machine needs lives in the AgentRollout's status, so an operator killed at
any point resumes from what the API server holds: the reconciler first drives the world to what
status says (traffic, replicas), then asks `decide` for the next status. Nothing here reads a clock
or a network; the reconciler passes in `now` and what it observed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from launchgate.api import (
    AgentRolloutSpec,
    AgentRolloutStatus,
    Condition,
    DecisionSummary,
    PendingApproval,
    Phase,
)
from launchgate.core.durations import parse_duration
from launchgate.core.gates import GateResult, TriggerResult
from launchgate.core.hashing import short_hash

ReplayState = Literal["running", "succeeded", "failed"]
UserAction = Literal["retry", "abort", "promote"]
COMPLETED = "Completed"
FINALIZING = "Finalizing"


@dataclass(frozen=True)
class ApprovalVote:
    """An Approval object already matched to the pending request by request ID and both hashes."""

    approver: str
    decision: Literal["approve", "reject"]
    created: datetime


@dataclass(frozen=True)
class Pods:
    """A Deployment the rollout waits on, as its controller reports it."""

    name: str
    ready: bool
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    now: datetime
    revision: str
    gates_hash: str
    gates: dict[str, GateResult | str] = field(default_factory=dict)
    triggers: dict[str, TriggerResult] = field(default_factory=dict)
    replay: ReplayState | None = None
    votes: list[ApprovalVote] = field(default_factory=list)
    action: UserAction | None = None
    actor: str | None = None
    canary_pods: Pods | None = None
    """None: no canary Deployment to wait on."""
    stable_pods: Pods | None = None
    """Only looked at while finalizing; None: nothing to wait on."""
    stable_missing: bool = False
    """No stable Deployment exists (its creation was refused, or it was deleted); only looked at
    when a new revision arrives."""


@dataclass
class Outcome:
    status: AgentRolloutStatus
    decision: str | None = None
    reason: str = ""
    values: dict[str, float | None] = field(default_factory=dict)
    record: str | None = None
    """Kind of timeline record to write ('decision', 'action', 'approval-request'); None: nothing new."""
    record_id: str | None = None
    event_type: Literal["Normal", "Warning"] = "Normal"
    actor: str | None = None
    """Who caused it when a person did (a RolloutAction); None means the operator."""
    recheck: float | None = None
    """Seconds after which to look again, when that is sooner than the interval."""
    action_applied: bool = False
    action_note: str | None = None
    """Why a person's RolloutAction was not acted on, for its outcome in status.lastAction."""


def canary_replicas(total: int, weight: int, *, ratio_router: bool) -> int:
    """Canary pods for a weight: its share of the total, at least one while it carries traffic.

    With HTTP routing the canary also keeps one pod at 0% (replays aim at its Service); with replica
    ratio routing a pod would consume live queue work, so 0% means none.
    """
    if weight <= 0:
        return 0 if ratio_router else min(1, total)
    return min(total, max(1, math.ceil(total * weight / 100)))


def stable_replicas(total: int, weight: int, *, ratio_router: bool) -> int:
    if not ratio_router:
        return total
    return max(0, total - canary_replicas(total, weight, ratio_router=True))


def decide(spec: AgentRolloutSpec, status: AgentRolloutStatus, obs: Observation) -> Outcome:
    """Next status and the decision that led to it."""
    out = _decide(spec, status, obs)
    if obs.action is not None and not out.action_applied:
        out.action_note = _not_applied(status, obs)
    return out


def _not_applied(status: AgentRolloutStatus, obs: Observation) -> str:
    """The person who sent an action that does not fit the rollout's state hears why, not 'no change'."""
    if status.state in ("RollingBack", "Degraded"):
        return ("the rollout is already rolled back" if obs.action == "abort"
                else f"the rollout is rolled back; send retry to start {obs.revision} again")
    if obs.action == "retry":
        return f"only a rolled-back rollout can be retried; this one is {status.state or 'new'}"
    if status.phase == FINALIZING and status.canary_revision == obs.revision:
        if obs.action == "promote":
            return f"{obs.revision} already passed every phase"
        return (f"{obs.revision} already passed every phase and the stable Deployment is rolling it out; "
                "to go back, apply the previous template")
    if status.canary_revision != obs.revision:
        return f"no canary of revision {obs.revision} was in progress"
    return f"not applicable while {status.state or 'new'}"


def _applied(out: Outcome) -> Outcome:
    out.action_applied = True
    return out


@dataclass
class Case:
    """What one decision is about: the spec, the status as it is, the status being made (`new`,
    which rules may change and pass on) and the observation. The phase and the gates' verdict are
    worked out once, by the first rule that asks."""

    spec: AgentRolloutSpec
    status: AgentRolloutStatus
    new: AgentRolloutStatus
    obs: Observation

    @functools.cached_property
    def phases(self) -> list[Phase]:
        return self.spec.effective_phases()

    @functools.cached_property
    def phase(self) -> Phase:
        return self.phases[min(self.status.phase_index or 0, len(self.phases) - 1)]

    @functools.cached_property
    def gates(self) -> GateVerdict:
        return gate_verdict(self.phase, self.obs)


@dataclass(frozen=True)
class GateVerdict:
    """The current phase's gates, read together: each blocker's value, the gates that block and
    the gates without usable data, whichever way they report it: not evaluated, holding, or
    blocking with a blocker that has none (its onMissingData is fail, or another blocker fails);
    a gate that blocks is in both lists then."""

    values: dict[str, float | None]
    blocked: list[str]
    missing: list[str]
    waiting: list[str] = field(default_factory=list)
    """Gates that hold only for evidence: every blocker has data, some not enough to be sure yet.
    They hold, but are not missing data, so the failure policy does not count them."""


def gate_verdict(phase: Phase, obs: Observation) -> GateVerdict:
    values: dict[str, float | None] = {}
    blocked: list[str] = []
    missing: list[str] = []
    waiting: list[str] = []
    for gate_name in phase.gates:
        res = obs.gates.get(gate_name, "gate not evaluated")
        if isinstance(res, str):
            missing.append(f"{gate_name}: {res}")
            continue
        for b in res.blockers:
            values[f"{gate_name}.{b.name}"] = b.value
        if res.decision == "block":
            blocked.append(f"{gate_name} ({', '.join(res.failing)})")
            no_data = [f"{b.name}: {b.reason}" for b in res.blockers if b.missing]
            if no_data:
                missing.append(f"{gate_name}: {'; '.join(no_data)}")
        elif res.decision == "hold" and res.waiting and not res.missing:
            waiting.append(f"{gate_name}: {res.message}")
        elif res.decision == "hold":
            missing.append(f"{gate_name}: {res.message}")
    return GateVerdict(values, blocked, missing, waiting)


def first_revision(c: Case) -> Outcome | None:
    """First revision ever: nothing to compare against, it becomes the baseline. First because
    every later rule compares with a stable revision."""
    if c.status.stable_revision is not None:
        return None
    _reset_rollout(c.new)
    c.new.stable_revision = c.obs.revision
    c.new.state = "Healthy"
    return _finish(c.spec, c.status, c.new, c.obs, None, "initial revision becomes stable", record="action")


def finalize_promotion(c: Case) -> Outcome | None:
    """The last promotion made the canary's revision the stable one (see _finalize). Before the
    other stable-revision rules, which would take the canary equal to stable for a revert."""
    if (c.obs.revision == c.status.stable_revision and c.status.canary_revision == c.status.stable_revision
            and c.status.state == "Progressing"):
        return _finalize(c.spec, c.status, c.new, c.obs)
    return None


def reverted_to_stable(c: Case) -> Outcome | None:
    """The spec went back to the stable revision while a canary ran: the canary goes. Before any
    rule about the canary, which no longer matters; a rolled-back (Degraded) canary is already
    gone and only settles (next rule)."""
    if (c.obs.revision != c.status.stable_revision or c.status.canary_revision is None
            or c.status.state in ("Degraded",)):
        return None
    _reset_rollout(c.new)
    c.new.state = "Healthy"
    return _finish(c.spec, c.status, c.new, c.obs, "rollback", "revision reverted to stable; canary removed",
                   record="decision", warning=True)


def steady_on_stable(c: Case) -> Outcome | None:
    """The spec asks for the stable revision and no canary runs: nothing to decide. Last of the
    stable-revision rules, so only what they left gets here."""
    if c.obs.revision != c.status.stable_revision:
        return None
    if c.status.state == "Degraded":
        _reset_rollout(c.new)
    c.new.state = "Healthy"
    c.new.canary_weight = 0
    return _finish(c.spec, c.status, c.new, c.obs, None, c.status.message or "stable")


def stable_missing(c: Case) -> Outcome | None:
    """No pods run the stable revision (its Deployment was refused, e.g. an invalid template, or
    deleted): there is no baseline to compare with and no traffic to protect, so a new revision
    becomes stable at once. Before starting a canary, which would compare against nothing; not
    for a canary already under way, which its own rules finish."""
    if not c.obs.stable_missing or c.status.canary_revision == c.obs.revision:
        return None
    _reset_rollout(c.new)
    c.new.stable_revision = c.obs.revision
    c.new.state = "Healthy"
    return _finish(c.spec, c.status, c.new, c.obs, None, f"no stable Deployment runs {c.status.stable_revision}: "
                   f"revision {c.obs.revision} becomes stable", record="action")


def new_revision(c: Case) -> Outcome | None:
    """A revision other than the canary's: it starts over at the first phase, whatever the old
    canary's state. Before every rule below, which all judge the canary of this revision."""
    if c.status.canary_revision == c.obs.revision:
        return None
    _start(c.new, c.phases, c.obs)
    return _finish(c.spec, c.status, c.new, c.obs, None,
                   f"new revision {c.obs.revision}: starting at {c.phases[0].name}", record="action")


def rolling_back_settles(c: Case) -> Outcome | None:
    """A rollback decided last pass has been actuated (traffic on stable, canary scaled down):
    the rollout settles to Degraded. Before people's actions, which apply to a settled state."""
    if c.status.state != "RollingBack":
        return None
    c.new.state = "Degraded"
    return _finish(c.spec, c.status, c.new, c.obs, "rollback", c.status.message or "rolled back", warning=True)


def degraded_waits_for_retry(c: Case) -> Outcome | None:
    """A rolled-back canary stays rolled back until a person sends retry. Before every rule that
    judges a running canary: gates, triggers and pods no longer apply."""
    if c.status.state != "Degraded":
        return None
    if c.obs.action == "retry":
        _start(c.new, c.phases, c.obs)
        return _applied(_finish(c.spec, c.status, c.new, c.obs, None, f"retry requested by {c.obs.actor}",
                                record="action"))
    return _finish(c.spec, c.status, c.new, c.obs, c.status.decision, c.status.message or "rolled back")


def abort_requested(c: Case) -> Outcome | None:
    """A person's abort wins over everything the canary's metrics say: first of the running-canary rules."""
    if c.obs.action != "abort":
        return None
    return _applied(_rollback(c.spec, c.status, c.new, c.obs, f"aborted by {c.obs.actor}", {}))


def trigger_fired(c: Case) -> Outcome | None:
    """A fired rollback trigger rolls back at once. Before a forced promotion and before waiting
    for pods: a canary that hurts users goes, whatever else is pending."""
    fired = [(name, t) for name, t in c.obs.triggers.items() if t.fired]
    if not fired:
        return None
    name, t = fired[0]
    values = {name: t.value, f"{name}:baseline": t.baseline_value}
    return _rollback(c.spec, c.status, c.new, c.obs, f"rollback trigger {name} fired: {t.reason}", values)


def replay_failed(c: Case) -> Outcome | None:
    """A failed replay suite is final: rolls back, before a forced promotion could skip it."""
    if c.obs.replay != "failed":
        return None
    return _rollback(c.spec, c.status, c.new, c.obs, "replay suite failed", {})


def promote_requested(c: Case) -> Outcome | None:
    """A person's promote skips waiting (pods, pause, replay, gates, approval) but not the
    rollback rules above it: forcing onto a canary that fails its triggers is never allowed."""
    if c.obs.action != "promote":
        return None
    return _applied(_promote(c.spec, c.status, c.new, c.obs, c.phases, f"promotion forced by {c.obs.actor}", {},
                             forced=True))


def canary_pods(c: Case) -> Outcome | None:
    """Traffic moves only to available pods, and gates judge only traffic the canary has taken
    (see _canary_pods). Before the gates, whose values mean nothing until then. When it passes,
    the new status already says the router carries the canary's whole weight."""
    return _canary_pods(c.spec, c.status, c.new, c.obs)


def paused(c: Case) -> Outcome | None:
    """spec.paused holds the canary where it is. After the rollback rules and the pods (a paused
    rollout still rolls back and still gets its pods), before any promotion."""
    if not c.spec.paused:
        return None
    c.new.state = "Paused"
    return _finish(c.spec, c.status, c.new, c.obs, "hold", "paused by spec.paused")


def replay_running(c: Case) -> Outcome | None:
    """A phase with a replay suite is judged on the suite's results: its gates wait for it."""
    if c.phase.replay is None or c.obs.replay == "succeeded":
        return None
    return _hold(c.spec, c.status, c.new, c.obs, "replay suite running", {})


def gates_block(c: Case) -> Outcome | None:
    """A blocking gate holds the canary, or rolls it back after a replay suite, whose results
    waiting cannot change. Before missing data: a clear failure outranks a gap. A gate that
    blocks for missing data (onMissingData: fail) still lacks it, and counts toward the failure
    policy as if it held."""
    if not c.gates.blocked:
        return None
    reason = "gates blocking: " + "; ".join(c.gates.blocked)
    if c.phase.replay is not None:
        return _rollback(c.spec, c.status, c.new, c.obs, reason, c.gates.values)
    return _failure_policy(c) or _hold(c.spec, c.status, c.new, c.obs, reason, c.gates.values)


def gates_lack_data(c: Case) -> Outcome | None:
    """A gate without usable data never promotes: it holds, and after too many evaluations in a
    row the failure policy decides (roll back, or pause). When every gate has data, the count
    starts over and a rollout paused for lack of data goes on, for the rules below to judge."""
    decided = _failure_policy(c)
    if decided is not None or not c.gates.missing:
        return decided
    return _hold(c.spec, c.status, c.new, c.obs, "no usable data: " + "; ".join(c.gates.missing), c.gates.values)


def _failure_policy(c: Case) -> Outcome | None:
    """Counts the evaluations in a row with a gate short of usable data, whether the gate holds or
    blocks for it, and applies spec.failurePolicy when there are too many. A pass with data from
    every gate starts the count over and ends a pause for lack of data. None: the policy does not
    decide (yet)."""
    missing = c.gates.missing
    if not missing:
        c.new.consecutive_no_data = 0
        if c.status.state == "Paused":
            c.new.state = "Progressing"
        return None
    c.new.consecutive_no_data = (c.status.consecutive_no_data or 0) + 1
    if c.new.consecutive_no_data < c.spec.failure_policy.max_consecutive_no_data:
        return None
    reason = f"no usable data: {'; '.join(missing)} ({c.new.consecutive_no_data} evaluations in a row)"
    if c.spec.failure_policy.action == "rollback":
        return _rollback(c.spec, c.status, c.new, c.obs, reason, c.gates.values)
    c.new.state = "Paused"
    return _finish(c.spec, c.status, c.new, c.obs, "hold", reason, warning=True, values=c.gates.values)


def gates_wait_for_evidence(c: Case) -> Outcome | None:
    """A gate whose data is in but not yet conclusive (a count blocker's interval straddles its
    target, a judge with too few samples) holds without counting as missing data: a healthy canary
    at 1% of traffic is not rolled back or paused for being small, it waits for its requests."""
    if not c.gates.waiting:
        return None
    return _hold(c.spec, c.status, c.new, c.obs, "not enough evidence yet: " + "; ".join(c.gates.waiting),
                 c.gates.values)


def minimum_duration(c: Case) -> Outcome | None:
    """Passing gates still wait out the phase's minDuration. After the gates, so the hold's
    reason says they pass; before an approval is asked for."""
    if not c.phase.min_duration or c.status.phase_started_at is None:
        return None
    ready_at = c.status.phase_started_at + timedelta(seconds=parse_duration(c.phase.min_duration))
    if c.obs.now >= ready_at:
        return None
    return _hold(c.spec, c.status, c.new, c.obs, f"gates pass; minimum duration in {c.phase.name} until "
                 f"{ready_at.isoformat()}", c.gates.values)


def approval(c: Case) -> Outcome | None:
    """A phase that needs approval asks for it once its gates pass and its minimum duration is
    over, and promotes once enough people approved (a rejection rolls back). At the phase's
    first step only: people approve entering the phase, not each step in it."""
    if c.phase.approval is None or (c.status.step_index or 0) != 0:
        return None
    return _approval(c.spec, c.status, c.new, c.obs, c.phases, c.phase, c.gates.values)


def traffic_judged_long_enough(c: Case) -> Outcome | None:
    """Passes also come at once when something happens (pods up, an approval): a step still
    gets a whole interval of traffic before its gates alone can promote it. Last before the
    promotion it delays."""
    if c.status.traffic_since is None:
        return None
    judged_from = c.status.traffic_since + timedelta(seconds=parse_duration(c.spec.interval))
    if c.obs.now >= judged_from:
        return None
    out = _hold(c.spec, c.status, c.new, c.obs, f"gates pass; {routed_weight(c.status)}% of traffic on the canary "
                f"since {c.status.traffic_since.isoformat()}, promoted no sooner than "
                f"{judged_from.isoformat()}", c.gates.values)
    out.recheck = (judged_from - c.obs.now).total_seconds()
    return out


def all_gates_pass(c: Case) -> Outcome:
    """Nothing above held or rolled back: promote. Last, and always decides."""
    return _promote(c.spec, c.status, c.new, c.obs, c.phases, "all gates pass", c.gates.values)


Rule = Callable[[Case], Outcome | None]

RULES: list[Rule] = [
    # which revision: the baseline, a return to it, or a new canary
    first_revision,
    finalize_promotion,
    reverted_to_stable,
    steady_on_stable,
    stable_missing,
    new_revision,
    # a canary that was rolled back
    rolling_back_settles,
    degraded_waits_for_retry,
    # a running canary: what rolls it back, then what forces it on
    abort_requested,
    trigger_fired,
    replay_failed,
    promote_requested,
    # what it waits for before its gates are judged
    canary_pods,
    paused,
    replay_running,
    # its gates, then what promoting on them still waits for
    gates_block,
    gates_lack_data,
    gates_wait_for_evidence,
    minimum_duration,
    approval,
    traffic_judged_long_enough,
    all_gates_pass,
]
"""The rules of `decide`, in the order they are asked: the first that returns an Outcome decides."""


def _decide(spec: AgentRolloutSpec, status: AgentRolloutStatus, obs: Observation) -> Outcome:
    # A copy through pydantic-core (dump, validate) rather than copy.deepcopy: 5x faster, and a
    # pass makes one (the deep copy was ~5% of the operator's CPU in a 10,000-rollout profile).
    case = Case(spec, status, type(status).model_validate(status.model_dump()), obs)
    for rule in RULES:
        out = rule(case)
        if out is not None:
            return out
    raise AssertionError("the last rule always decides")


def routed_weight(status: AgentRolloutStatus) -> int:
    """The weight the router is told. A status from before trafficWeight existed had routed its
    canaryWeight already."""
    if status.traffic_weight is None:
        return status.canary_weight or 0
    return min(status.traffic_weight, status.canary_weight or 0)


def _canary_pods(spec: AgentRolloutSpec, status: AgentRolloutStatus, new: AgentRolloutStatus,
                 obs: Observation) -> Outcome | None:
    """Traffic moves to the canary only once its pods are available; gates are judged only while
    they are. None: nothing to wait for, go on to the gates."""
    routed, want, pods = routed_weight(status), status.canary_weight or 0, obs.canary_pods
    if pods is None or pods.ready:
        new.traffic_weight, new.pods_pending_since = want, None
        if routed < want:
            new.traffic_since = obs.now
            what = f"Deployment {pods.name}: {pods.detail}" if pods is not None else "no pods to wait for"
            return _hold(spec, status, new, obs, f"canary pods available ({what}); {want}% of traffic now goes "
                         "to the canary", {})
        return None
    since = status.pods_pending_since or obs.now
    new.pods_pending_since = since
    deadline = spec.availability_deadline
    if obs.now - since > timedelta(seconds=parse_duration(deadline)):
        return _rollback(spec, status, new, obs, f"canary Deployment {pods.name} not available within "
                         f"spec.availabilityDeadline {deadline} ({pods.detail})", {})
    verb = f"before routing {want}% to it" if routed < want else "before judging its gates"
    return _hold(spec, status, new, obs, f"waiting for the canary's pods {verb}: Deployment {pods.name}: "
                 f"{pods.detail}", {})


def _finalize(spec: AgentRolloutSpec, status: AgentRolloutStatus, new: AgentRolloutStatus,
              obs: Observation) -> Outcome:
    """After the last promotion the stable Deployment rolls out the new revision while the canary
    keeps its traffic; only then does traffic go back to stable and the canary go away."""
    pods = obs.stable_pods
    if pods is not None and not pods.ready:
        new.pods_pending_since = status.pods_pending_since or obs.now
        return _finish(spec, status, new, obs, "promote", f"promoted; waiting for Deployment {pods.name} to roll "
                       f"out {obs.revision} ({pods.detail}); the canary keeps {routed_weight(status)}% until then")
    _reset_rollout(new)
    new.phase = COMPLETED
    new.state = "Healthy"
    what = f"Deployment {pods.name} rolled out {obs.revision}" if pods is not None else f"{obs.revision} is stable"
    return _finish(spec, status, new, obs, "promote", f"{what}: traffic back to stable, canary removed "
                   "(rollout complete)", record="decision")


def request_id(rollout_uid: str, obs: Observation, phase: str) -> str:
    return "req-" + short_hash(rollout_uid, obs.revision, obs.gates_hash, phase)


def _approval(spec: AgentRolloutSpec, status: AgentRolloutStatus, new: AgentRolloutStatus, obs: Observation,
              phases: list[Phase], phase: Phase, values: dict[str, float | None]) -> Outcome:
    req = approval_request(status, obs, phase)
    assert phase.approval is not None
    rejections = [v for v in obs.votes if v.decision == "reject"]
    if req is status.pending_approval and rejections:
        return _rollback(spec, status, new, obs, f"promotion rejected by {rejections[0].approver}", values)
    approvers = sorted({v.approver for v in obs.votes if v.decision == "approve"})
    new.pending_approval = req.model_copy(update={"approved_by": approvers})
    if req is status.pending_approval and len(approvers) >= phase.approval.approvers:
        return _promote(spec, status, new, obs, phases, f"approved by {', '.join(approvers)}", values)
    new.state = "AwaitingApproval"
    need = phase.approval.approvers - len(approvers)
    reason = (f"gates pass; waiting for {need} more approval(s) from group {phase.approval.group}"
              f" on request {req.request_id}")
    kind = "approval-request" if req is not status.pending_approval else None
    return _finish(spec, status, new, obs, "await_approval", reason, record=kind, values=values)


def approval_request(status: AgentRolloutStatus, obs: Observation, phase: Phase) -> PendingApproval:
    """The pending request, or a new one when the revision or the gates/policy it was bound to changed.

    Returning the very object from status signals "still the same request": approvals only count
    while both hashes match, so a changed hash voids them by opening a new request.
    """
    cur = status.pending_approval
    if cur is not None and cur.revision == obs.revision and cur.gates_hash == obs.gates_hash and cur.phase == phase.name:
        return cur
    assert phase.approval is not None
    return PendingApproval(
        request_id="req-" + short_hash(obs.revision, obs.gates_hash, phase.name, obs.now.isoformat()),
        phase=phase.name,
        revision=obs.revision,
        gates_hash=obs.gates_hash,
        group=phase.approval.group,
        approvers_required=phase.approval.approvers,
        owner=phase.approval.owner,
        requested_at=obs.now,
    )


def _start(new: AgentRolloutStatus, phases: list[Phase], obs: Observation) -> None:
    _reset_rollout(new)
    new.canary_revision = obs.revision
    new.phase_index = 0
    new.step_index = 0
    new.phase = phases[0].name
    new.canary_weight = phases[0].steps()[0]
    new.traffic_weight = 0
    new.pods_pending_since = obs.now
    new.phase_started_at = obs.now
    new.state = "Progressing"


def _reset_rollout(new: AgentRolloutStatus) -> None:
    new.canary_revision = None
    new.phase = None
    new.phase_index = None
    new.step_index = None
    new.canary_weight = 0
    new.traffic_weight = 0
    new.traffic_since = None
    new.pods_pending_since = None
    new.phase_started_at = None
    new.pending_approval = None
    new.consecutive_no_data = 0


def _promote(spec: AgentRolloutSpec, status: AgentRolloutStatus, new: AgentRolloutStatus, obs: Observation,
             phases: list[Phase], reason: str, values: dict[str, float | None], forced: bool = False) -> Outcome:
    idx = min(status.phase_index or 0, len(phases) - 1)
    step = status.step_index or 0
    steps = phases[idx].steps()
    new.state = "Progressing"
    new.consecutive_no_data = 0
    new.traffic_weight = routed_weight(status)
    if step + 1 < len(steps):
        new.step_index = step + 1
        new.canary_weight = steps[step + 1]
        target = f"{phases[idx].name} at {new.canary_weight}%"
    elif idx + 1 < len(phases):
        nxt = phases[idx + 1]
        new.phase_index, new.step_index, new.phase = idx + 1, 0, nxt.name
        new.canary_weight = nxt.steps()[0]
        new.phase_started_at = obs.now
        new.pending_approval = None
        target = f"{nxt.name} at {new.canary_weight}%"
    else:
        # General at its last step passed: the canary becomes the stable revision. The canary
        # keeps its traffic while the stable Deployment rolls the revision out (see _finalize).
        new.stable_revision = obs.revision
        new.phase = FINALIZING
        new.pending_approval = None
        new.pods_pending_since = obs.now
        target = "stable; the stable Deployment rolls it out before traffic moves back"
    if new.canary_weight is not None and routed_weight(status) < new.canary_weight:
        new.pods_pending_since = obs.now
    return _finish(spec, status, new, obs, "promote", f"{reason}; promoted to {target}", record="decision",
                   values=values)


def _rollback(spec: AgentRolloutSpec, status: AgentRolloutStatus, new: AgentRolloutStatus, obs: Observation,
              reason: str, values: dict[str, float | None]) -> Outcome:
    # Intent is persisted first (RollingBack, weight 0); the reconciler then moves traffic to stable
    # before scaling the canary down, and a restart halfway simply does both again.
    new.state = "RollingBack"
    new.canary_weight = 0
    new.traffic_weight = 0
    new.traffic_since = None
    new.pods_pending_since = None
    new.pending_approval = None
    out = _finish(spec, status, new, obs, "rollback", reason, record="decision", values=values, warning=True)
    # RollingBack only says traffic is being moved, which this pass's actuation does: the next pass
    # settles it to Degraded, and waiting a whole interval for that kept Argo CD and Flux showing
    # a rollback in progress long after traffic was back on stable.
    out.recheck = 0.0
    return out


def _hold(spec: AgentRolloutSpec, status: AgentRolloutStatus, new: AgentRolloutStatus, obs: Observation,
          reason: str, values: dict[str, float | None]) -> Outcome:
    if new.state not in ("Paused",):
        new.state = "Progressing"
    return _finish(spec, status, new, obs, "hold", reason, values=values)


def _finish(spec: AgentRolloutSpec, old: AgentRolloutStatus, new: AgentRolloutStatus, obs: Observation,
            decision: str | None, reason: str, *, record: str | None = None, warning: bool = False,
            values: dict[str, float | None] | None = None) -> Outcome:
    values = values or {}
    new.decision = decision  # type: ignore[assignment]
    new.message = reason
    changed = decision is not None and (
        old.last_decision is None
        or old.last_decision.decision != decision
        or old.last_decision.phase != (new.phase or "")
        or (record is not None and record != "approval-request")
    )
    if record is None and decision is not None and decision_class(old.decision, old.state) != decision_class(
            decision, new.state):
        record = "decision"
    rid = None
    if record is not None:
        # From the status decided on, so a pass repeated after a crash makes the same record; the
        # last record's ID chains them, as the history's length stops growing at its limit.
        rid = "d-" + short_hash(old.canary_revision, new.canary_revision, old.phase_index, old.step_index, decision,
                                record, len(old.history), old.last_decision.id if old.last_decision else None, n=14)
    if decision is not None and (changed or record is not None):
        summary = DecisionSummary(id=rid or "d-" + short_hash(reason, obs.now.isoformat()), decision=decision,  # type: ignore[arg-type]
                                  phase=new.phase or old.phase or "", reason=reason[:4096], at=obs.now,
                                  values=_finite(values))
        new.last_decision = summary
        new.history = (list(old.history) + [summary])[-spec.history_limit:]
    new.conditions = conditions(spec, new, obs.now)
    return Outcome(status=new, decision=decision, reason=reason, values=values, record=record, record_id=rid,
                   event_type="Warning" if warning else "Normal")


def decision_class(decision: str | None, state: str | None) -> tuple[str | None, str | None]:
    """What the timeline tells apart: the decision and the state its reason leaves the rollout in
    (holding, paused, awaiting approval, rolled back). A pass of the same class as the one before
    repeats that decision, however its reason differs in detail (a count, a value, which pods
    are still starting): the timeline has it already, and status carries the details. Rules mark
    as records of their own only what happens once (a promotion, a rollback, a person's action,
    an approval request). A rollback is one class whether its traffic is still moving or has moved."""
    return decision, "Degraded" if state == "RollingBack" else state


def _finite(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (v if v is not None and math.isfinite(v) else None) for k, v in values.items()}


def conditions(spec: AgentRolloutSpec, st: AgentRolloutStatus, now: datetime) -> list[Condition]:
    """kstatus conditions derived from state, so Flux, Argo CD and `kubectl wait` all agree."""
    state = st.state or "Progressing"
    deadline_passed = (
        st.decision == "hold"
        and st.phase_started_at is not None
        and now - st.phase_started_at > timedelta(seconds=parse_duration(spec.progress_deadline))
    )
    pods_late = (
        st.pods_pending_since is not None
        and now - st.pods_pending_since > timedelta(seconds=parse_duration(spec.availability_deadline))
    )
    stalled = state == "Degraded" or deadline_passed or pods_late or (state == "Paused" and not spec.paused)
    reconciling = state in ("Progressing", "AwaitingApproval", "RollingBack") and not stalled
    ready = state == "Healthy"
    if pods_late and state != "Degraded":
        stalled_reason, stalled_msg = "PodsNotAvailable", st.message or ""
    elif deadline_passed:
        stalled_reason, stalled_msg = "ProgressDeadlineExceeded", f"{st.phase} held longer than {spec.progress_deadline}"
    elif state == "Degraded":
        stalled_reason, stalled_msg = "RolledBack", st.message or ""
    elif stalled:
        stalled_reason, stalled_msg = "NoData", st.message or ""
    else:
        stalled_reason, stalled_msg = "", ""
    return [
        _condition(st, now, "Ready", ready, "Healthy" if ready else state, st.message or ""),
        _condition(st, now, "Reconciling", reconciling, state if reconciling else "",
                   (st.message or "") if reconciling else ""),
        _condition(st, now, "Stalled", stalled, stalled_reason, stalled_msg),
    ]


def refused_conditions(st: AgentRolloutStatus, message: str, now: datetime) -> list[Condition]:
    """The world refused a change (an invalid template, a quota, a missing HTTPRoute): nothing
    moves until someone fixes it, so GitOps health must not read Ready meanwhile."""
    return [
        _condition(st, now, "Ready", False, "ChangeRefused", message),
        _condition(st, now, "Reconciling", False, "", ""),
        _condition(st, now, "Stalled", True, "ChangeRefused", message),
    ]


def _condition(st: AgentRolloutStatus, now: datetime, type_: str, value: bool, reason: str,
               message: str) -> Condition:
    status: Literal["True", "False"] = "True" if value else "False"
    old = next((c for c in st.conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(type=type_, status=status, reason=reason or ("AsExpected" if not value else type_),
                     message=message[:4096], last_transition_time=since)
