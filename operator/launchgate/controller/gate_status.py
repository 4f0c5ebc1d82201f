"""A LaunchGate's status: built through its model, written only when a reader would see a change.

Both writers of a gate's status use this module: a rollout's pass for the gates it evaluates, and
a gate's own pass while no rollout uses it (evaluated with its own variables, or idle).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from launchgate.adapters.kube import Kube
from launchgate.adapters.notify import AsyncDispatcher
from launchgate.api import BlockerStatus, Condition, LaunchGateSpec, LaunchGateStatus
from launchgate.core.gates import GateResult
from launchgate.core.protocols import Notification

_WRITTEN = [f.alias or name for name, f in LaunchGateStatus.model_fields.items() if name != "kopf"]
"""The top-level fields every write carries. Kopf's bookkeeping is Kopf's to write."""


def publish_gate_status(kube: Kube, gobj: dict[str, Any], spec: LaunchGateSpec, res: GateResult, now: datetime,
                        rollout: str | None = None, revision: str | None = None,
                        notifier: AsyncDispatcher | None = None, heartbeat: float = 300.0) -> bool:
    """Write the gate's live contract to its status, only when something a reader sees changed.

    A gate turning to block is also an Event and a notification to the failing blockers' owners.
    """
    status = gate_status(spec, res, gobj["metadata"].get("generation"), now, rollout=rollout, revision=revision)
    old = kube.status_to_be("launchgates", gobj)
    if res.decision == "block" and old.get("decision") != "block":
        who = f"; escalate to {', '.join(res.escalate_to)}" if res.escalate_to else ""
        kube.event(gobj, "Warning", "GateBlocks", f"{res.message}{who}")
        if notifier is not None:
            meta = gobj["metadata"]
            notifier.submit(Notification(
                kind="block", rollout=rollout or "", namespace=meta["namespace"], phase="",
                decision_id=f"{meta['name']}-{meta.get('generation')}-{now.isoformat()}", reason=res.message,
                values=res.values(), owners=spec.owners.model_dump(exclude_none=True),
                escalate_to=res.escalate_to))
    last = old.get("evaluatedAt")
    stale = last is None or (now - datetime.fromisoformat(str(last).replace("Z", "+00:00"))).total_seconds() >= heartbeat
    if not stale and {k: v for k, v in old.items() if k not in ("evaluatedAt", "kopf", "conditions")} == {
        k: v for k, v in status.items() if k not in ("evaluatedAt", "conditions")
    } and [(c.get("type"), c.get("status")) for c in old.get("conditions", [])] == [
        (c["type"], c["status"]) for c in status["conditions"]
    ]:
        return False
    kube.patch_status_soon("launchgates", gobj["metadata"]["namespace"], gobj["metadata"]["name"], status)
    return True


def gate_status(spec: LaunchGateSpec, res: GateResult, generation: int | None, now: datetime,
                rollout: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """The status of an evaluated gate: its decision, each blocker's value against its target."""
    blockers = [
        BlockerStatus.model_construct(
            name=b.name, target=b.target, passed=b.passed, reason=b.reason[:1024], value=_shown(b.value),
            baseline_value=_shown(b.baseline_value), owner=b.owner or None, samples=_count(b.n),
            baseline_samples=_count(b.baseline_n), judge=b.judge,
            interval=[_round(x) for x in b.interval] if b.interval is not None
            and all(math.isfinite(x) for x in b.interval) else None)
        for b in res.blockers
    ]
    message = res.message + (f" (rollout {rollout}, revision {revision})" if rollout else "")
    return _dump(LaunchGateStatus.model_construct(
        decision=res.decision, passing=res.passing, window=spec.window, evaluated_at=now,
        observed_generation=generation, owners=spec.owners, blockers=blockers, message=message[:4096],
        conditions=[
            _condition("Ready", res.decision == "allow", res.decision.capitalize(), res.message[:4096], now),
            _condition("Reconciling", False, "Evaluated", "", now),
            # A gate holding for data is waiting, not broken: Stalled would make Flux report every
            # idle gate as failed. The hold shows in Ready=False with its reason.
            _condition("Stalled", False, "Evaluated", "", now),
        ]))


def idle_gate_status(spec: LaunchGateSpec, generation: int | None, now: datetime, variable: str) -> dict[str, Any]:
    """No decision (the DECISION column stays empty) and a message that says what it waits for."""
    message = (f"idle: not used by an active rollout; its queries need ${variable}, which a rollout provides "
               f"(set spec.variables.{variable} to evaluate it on its own)")
    return _dump(LaunchGateStatus.model_construct(
        decision=None, passing=None, blockers=[], evaluated_at=now, window=spec.window,
        observed_generation=generation, owners=spec.owners, message=message,
        conditions=[
            _condition("Ready", False, "Idle", message, now),
            _condition("Reconciling", False, "Idle", "", now),
            _condition("Stalled", False, "Idle", "", now),
        ]))


def _dump(status: LaunchGateStatus) -> dict[str, Any]:
    """The status as written: a JSON merge patch, so every top-level field is in it and a None
    clears what an earlier write left (an idle gate has no decision); below the top level a None
    is left out (a blocker without a value).

    Built with model_construct: every value comes from a validated spec or from the engine, and
    this runs for every gate of every pass, so validating again would only cost CPU."""
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {key: dumped.get(key) for key in _WRITTEN}


def _condition(type_: str, value: bool, reason: str, message: str, now: datetime) -> Condition:
    return Condition.model_construct(type=type_, status="True" if value else "False", reason=reason,
                                     message=message, last_transition_time=now)


def _shown(v: float | None) -> float | None:
    """A value as status shows it: rounded, and absent when there is no finite one (JSON has
    no NaN or infinity)."""
    return _round(v) if v is not None and math.isfinite(v) else None


def _round(v: float) -> float:
    """Four significant digits: enough to judge a gate, few enough that noise is not a status write."""
    return float(f"{v:.4g}")


def _count(v: float | None) -> float | None:
    """A count of requests or samples: to a tenth (increase() extrapolates, so counts are fractional)."""
    return round(v, 1) if v is not None and math.isfinite(v) else None
