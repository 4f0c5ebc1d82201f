"""The incident replay drill: an AgentRollout replayed over a past time range, window by window.

Each window asks Prometheus what the rollout's current phase's gates and rollback triggers said at
that time (the same engine as the operator, at an explicit time) and gives it to the operator's own
state machine (`rollout.decide`), so the replay moves through phases, holds, promotes and rolls
back exactly as the operator would have. What Prometheus cannot tell is assumed and said so: the
canary's pods are available, a replay suite succeeds, and an approval asked for is granted by
as many people as the phase requires. The replay stops at the first rollback (naming the window,
the trigger and the traffic it takes off the canary) or once every phase has passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from launchgate.api import AgentRolloutSpec, AgentRolloutStatus, LaunchGateSpec
from launchgate.core.engine import evaluate, evaluate_trigger
from launchgate.core.gates import GateResult, TriggerResult, unanswered
from launchgate.core.protocols import MetricsSource
from launchgate.core.rollout import FINALIZING, ApprovalVote, Observation, Pods, decide, routed_weight

ASSUMED = ("the canary's pods are available", "a replay suite succeeds",
           "an approval asked for is granted by as many approvers as the phase requires")


@dataclass
class Window:
    end: datetime
    phase: str
    weight: int
    decision: str
    reason: str
    gates: dict[str, str] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    values: dict[str, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """Why a gate or trigger got no answer at all (Prometheus unusable, a query it refuses)."""


@dataclass
class Replay:
    windows: list[Window]
    outcome: str
    """rollback, completed (every phase passed) or unfinished (the range ended first)."""
    rollback_at: datetime | None = None
    phase: str | None = None
    trigger: str | None = None
    traffic_removed: int | None = None
    reason: str = ""

    @property
    def errors(self) -> list[str]:
        return [e for w in self.windows for e in w.errors]


def _errors(obs: Observation) -> list[str]:
    out = [f"gate {g}, blocker {b.name}: {b.error}" for g, r in obs.gates.items() if not isinstance(r, str)
           for b in r.blockers if b.error is not None]
    out += [f"trigger {t.name}: {t.reason}" for t in obs.triggers.values() if t.missing and unanswered(t.reason)]
    return out


def _verdict(result: GateResult | str) -> str:
    return result if isinstance(result, str) else f"{result.decision} ({result.passing})"


def _observe(spec: AgentRolloutSpec, status: AgentRolloutStatus, gates: Mapping[str, LaunchGateSpec],
             source: MetricsSource, variables: Mapping[str, str], canary: str, at: datetime,
             freshness: float | None) -> Observation:
    phases = spec.effective_phases()
    phase = phases[min(status.phase_index or 0, len(phases) - 1)]
    results: dict[str, GateResult | str] = {}
    for name in phase.gates:
        gate = gates.get(name)
        results[name] = evaluate(gate, source, variables, at=at, freshness=freshness) if gate is not None \
            else f"LaunchGate {name} not found in the file"
    triggers: dict[str, TriggerResult] = {t.name: evaluate_trigger(t, source, variables, at=at)
                                          for t in phase.rollback_triggers}
    votes: list[ApprovalVote] = []
    if status.pending_approval is not None:
        votes = [ApprovalVote(f"assumed-approver-{i + 1}", "approve", at)
                 for i in range(status.pending_approval.approvers_required)]
    ready = Pods("canary", True)
    return Observation(now=at, revision=canary, gates_hash="replay", gates=results, triggers=triggers,
                       replay="succeeded" if phase.replay is not None else None, votes=votes,
                       canary_pods=ready, stable_pods=Pods("stable", True))


def replay_rollout(spec: AgentRolloutSpec, gates: Mapping[str, LaunchGateSpec], source: MetricsSource,
                   variables: Mapping[str, Any], start: datetime, end: datetime, step: timedelta,
                   freshness: float | None = None) -> Replay:
    """Replay the rollout of `variables["canary"]` over `variables["stable"]` from `start` (the
    moment the new revision arrived) to `end`, one decision every `step` (at least the rollout's
    interval, as the operator decides no more often)."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError("end is before start")
    canary, stable = str(variables["canary"]), str(variables["stable"])
    bound = {k: str(v) for k, v in variables.items()}
    status = AgentRolloutStatus(stable_revision=stable, state="Healthy")
    status = decide(spec, status, Observation(now=start, revision=canary, gates_hash="replay")).status
    windows: list[Window] = []
    t = start
    while t <= end:
        before = status
        phase, weight = before.phase or "", routed_weight(before)
        obs = _observe(spec, before, gates, source, bound, canary, t, freshness)
        out = decide(spec, before, obs)
        status = out.status
        fired = [n for n, r in obs.triggers.items() if r.fired]
        windows.append(Window(t, phase, weight, out.decision or "none", out.reason,
                              {n: _verdict(r) for n, r in obs.gates.items()}, fired, dict(out.values),
                              _errors(obs)))
        if windows[-1].errors:
            return Replay(windows, "unfinished", reason=windows[-1].errors[0])
        if out.decision == "rollback":
            return Replay(windows, "rollback", t, phase, fired[0] if fired else None, weight, out.reason)
        if status.phase == FINALIZING:
            return Replay(windows, "completed", reason=out.reason)
        t += step
    return Replay(windows, "unfinished", reason=f"still in {status.phase} when the range ended")


__all__ = ["ASSUMED", "Replay", "Window", "replay_rollout"]
