"""What the dashboard shows, from the objects as the API server returns them: pure functions.

Everything a page says comes from an AgentRollout's status, its LaunchGates' status and its
DecisionRecords, so the dashboard can never tell a different story than `kubectl get` does; it only
lays the same facts out. Kept free of I/O so the layout rules are unit-tested without a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from launchgate.api import AgentRolloutSpec, LaunchGateSpec, Phase
from launchgate.core.gates import target_kind

FINALIZING, COMPLETED = "Finalizing", "Completed"
# The seed's launch-gate-contract.json names each target kind so.
CONTRACT_TARGET_KEYS = {
    "eq": "target_eq",
    "gte": "target_gte",
    "lte": "target_lte",
    "lteBaselineRatio": "target_lte_baseline_ratio",
    "gteBaselineRatio": "target_gte_baseline_ratio",
}


def parse_time(text: Any) -> datetime | None:
    """An RFC3339 time from an object, or None when absent or unreadable (shown as '-')."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def since(t: datetime | None, now: datetime) -> str:
    """'3m12s', '2h5m', '4d3h': how long ago, at the precision a person reads at a glance."""
    if t is None:
        return "-"
    s = max(0, int((now - t).total_seconds()))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def number(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int | float):
        return "NaN" if isinstance(v, float) and not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def rollout_spec(obj: Mapping[str, Any]) -> AgentRolloutSpec | None:
    """The spec through the operator's own model, or None when it does not validate (then the
    page shows the phases the status names, without the spec's)."""
    try:
        return AgentRolloutSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None


def phases_of(obj: Mapping[str, Any]) -> list[Phase]:
    spec = rollout_spec(obj)
    return spec.effective_phases() if spec is not None else []


@dataclass
class OverviewRow:
    namespace: str
    name: str
    phase: str
    phase_number: str
    state: str
    canary_weight: int
    traffic_weight: int
    stable_revision: str
    canary_revision: str
    decision: str
    reason: str
    phase_since: datetime | None
    pending: str
    """'1/2 from reliability-reviewers' while an approval request waits; '' otherwise."""
    pending_since: datetime | None


def overview_row(obj: Mapping[str, Any]) -> OverviewRow:
    meta, st = obj.get("metadata") or {}, obj.get("status") or {}
    phases = phases_of(obj)
    idx = st.get("phaseIndex")
    phase = st.get("phase") or ("Stable" if st.get("stableRevision") else "-")
    number_ = f"{idx + 1}/{len(phases)}" if isinstance(idx, int) and phases and st.get("canaryRevision") else ""
    weight = int(st.get("canaryWeight") or 0)
    routed = int(st.get("trafficWeight", weight) or 0)
    last = st.get("lastDecision") or {}
    pending = st.get("pendingApproval") or {}
    pend = ""
    if pending:
        pend = (f"{len(pending.get('approvedBy') or [])}/{pending.get('approversRequired', '?')} "
                f"from {pending.get('group', '?')}")
    return OverviewRow(
        namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")), phase=str(phase),
        phase_number=number_, state=str(st.get("state") or "-"), canary_weight=weight, traffic_weight=routed,
        stable_revision=str(st.get("stableRevision") or "-"), canary_revision=str(st.get("canaryRevision") or "-"),
        decision=str(st.get("decision") or last.get("decision") or "-"),
        reason=str(st.get("message") or last.get("reason") or ""),
        phase_since=parse_time(st.get("phaseStartedAt")) or parse_time(last.get("at")),
        pending=pend, pending_since=parse_time(pending.get("requestedAt")) if pending else None,
    )


def overview(objs: Iterable[Mapping[str, Any]]) -> list[OverviewRow]:
    return sorted((overview_row(o) for o in objs), key=lambda r: (r.namespace, r.name))


@dataclass
class PhaseStep:
    name: str
    weights: str
    gates: list[str]
    state: str
    """done, current, failed or pending: the progress line's colour."""
    approval: str = ""
    min_duration: str = ""


def progress(obj: Mapping[str, Any]) -> list[PhaseStep]:
    """The phases as a progress line: done up to the current one; after the last, Finalizing and
    Completed. A rollback marks the phase it happened in as failed."""
    st = obj.get("status") or {}
    phases = phases_of(obj)
    phase = st.get("phase")
    idx = st.get("phaseIndex") if st.get("canaryRevision") else None
    state = st.get("state")
    failed = state in ("Degraded", "RollingBack")
    if failed and idx is None:
        last = st.get("lastDecision") or {}
        idx = next((i for i, p in enumerate(phases) if p.name == last.get("phase")), None)
    out: list[PhaseStep] = []
    for i, p in enumerate(phases):
        if phase in (FINALIZING, COMPLETED):
            s = "done"
        elif idx is None:
            s = "pending"
        elif i < idx:
            s = "done"
        elif i == idx:
            s = "failed" if failed else "current"
        else:
            s = "pending"
        approval = f"{p.approval.approvers} from {p.approval.group}" if p.approval else ""
        out.append(PhaseStep(p.name, "/".join(f"{w}%" for w in p.steps()), list(p.gates), s, approval,
                             p.min_duration or ""))
    final = {FINALIZING: "current", COMPLETED: "done"}.get(str(phase), "pending")
    out.append(PhaseStep(FINALIZING, "", [], "done" if phase == COMPLETED else final))
    out.append(PhaseStep(COMPLETED, "", [], "done" if phase == COMPLETED else "pending"))
    return out


@dataclass
class ContractRow:
    blocker: str
    target: str
    value: str
    baseline: str
    passed: bool | None
    reason: str
    owner: str


@dataclass
class GateView:
    name: str
    found: bool
    error: str = ""
    decision: str = "-"
    passing: str = "-"
    window: str = ""
    evaluated_at: datetime | None = None
    message: str = ""
    rows: list[ContractRow] = field(default_factory=list)
    contract: dict[str, Any] = field(default_factory=dict)


def gate_view(name: str, obj: Mapping[str, Any] | None, error: str = "") -> GateView:
    """A gate's live contract as its status publishes it: each blocker's target, value, pass and
    reason, and the contract JSON in the seed's shape (launch-gate-contract.json)."""
    if obj is None:
        return GateView(name, found=False, error=error or "not found")
    st = obj.get("status") or {}
    spec: LaunchGateSpec | None
    try:
        spec = LaunchGateSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        spec = None
    targets = {b.name: b.target for b in spec.blockers} if spec else {}
    by_name = {b.get("name"): b for b in st.get("blockers") or []}
    names = [b.name for b in spec.blockers] if spec else list(by_name)
    rows: list[ContractRow] = []
    blockers: dict[str, Any] = {}
    for n in names:
        b = by_name.get(n) or {}
        passed = b.get("pass") if b else None
        rows.append(ContractRow(n, str(b.get("target") or ""), number(b.get("value")), number(b.get("baselineValue")),
                                passed, str(b.get("reason") or ("not evaluated yet" if not b else "")),
                                str(b.get("owner") or "")))
        entry: dict[str, Any] = {}
        target = targets.get(n)
        kind = target_kind(target) if target is not None else None
        if target is not None and kind is not None:
            entry[CONTRACT_TARGET_KEYS[kind]] = target.model_dump(by_alias=True)[kind]
        if b:
            entry["value"] = b.get("value")
            entry["pass"] = bool(passed)
        blockers[n] = entry
    contract = {
        "gate_id": name,
        "window": st.get("window") or (spec.window if spec else None),
        "blockers": blockers,
        "owners": st.get("owners") or (spec.owners.model_dump(exclude_none=True) if spec else {}),
        "decision": st.get("decision"),
        "passing": st.get("passing"),
        "evaluatedAt": st.get("evaluatedAt"),
    }
    return GateView(name, True, decision=str(st.get("decision") or "-"), passing=str(st.get("passing") or "-"),
                    window=str(contract["window"] or ""), evaluated_at=parse_time(st.get("evaluatedAt")),
                    message=str(st.get("message") or ""), rows=rows, contract=contract)


@dataclass
class TimelineEntry:
    id: str
    at: datetime | None
    kind: str
    what: str
    """The decision (promote, hold...), the approval's verdict or the action."""
    phase: str
    revision: str
    actor: str
    reason: str
    outcome: str
    request_id: str
    values: dict[str, Any]
    answers: list[str] = field(default_factory=list)
    """For an approval request: the IDs of the approvals and rejections that answer it."""


def timeline(records: Iterable[Mapping[str, Any]]) -> list[TimelineEntry]:
    """The DecisionRecords in time order, newest first, each request tied to the approvals that
    answer it by its request ID (and each approval to its request), so a reader follows the
    chain request -> approvals -> decision."""
    entries: list[TimelineEntry] = []
    for r in records:
        s = r.get("spec") or {}
        kind = str(s.get("kind") or "")
        what = {"approval": "approve", "rejection": "reject", "approval-request": "request"}.get(
            kind, str(s.get("decision") or s.get("action") or kind))
        entries.append(TimelineEntry(
            id=str(s.get("id") or (r.get("metadata") or {}).get("name", "")), at=parse_time(s.get("at")),
            kind=kind, what=what, phase=str(s.get("phase") or ""), revision=str(s.get("revision") or ""),
            actor=str(s.get("actor") or ""), reason=str(s.get("reason") or ""), outcome=str(s.get("outcome") or ""),
            request_id=str(s.get("requestId") or ""), values=dict(s.get("values") or {})))
    requests = {e.request_id: e for e in entries if e.kind == "approval-request" and e.request_id}
    for e in entries:
        if e.kind in ("approval", "rejection") and e.request_id in requests:
            requests[e.request_id].answers.append(e.id)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: (e.at or epoch, e.id), reverse=True)


@dataclass(frozen=True)
class Marker:
    """A phase change on the plot's time axis: a promotion or rollback decision."""

    at: float
    label: str


def phase_markers(entries: Sequence[TimelineEntry]) -> list[Marker]:
    return sorted((Marker(e.at.timestamp(), f"{e.what} {e.phase}") for e in entries
                   if e.at is not None and e.kind == "decision" and e.what in ("promote", "rollback")),
                  key=lambda m: m.at)


def plot_range(obj: Mapping[str, Any], entries: Sequence[TimelineEntry], now: datetime,
               floor: float = 60.0) -> tuple[datetime, datetime]:
    """The rollout's time for the plots: from the first record of the revision being rolled out
    (the last one rolled out when none is), a tenth earlier so the start shows, at least `floor`
    seconds, up to now."""
    st = obj.get("status") or {}
    rev = st.get("canaryRevision") or (st.get("lastDecision") or {}).get("revision") or st.get("stableRevision")
    times = [e.at for e in entries if e.at is not None and (not rev or e.revision == rev)]
    span = (now - min(times)).total_seconds() * 1.1 if times else 0.0
    return datetime.fromtimestamp(now.timestamp() - max(span, floor), UTC), now
