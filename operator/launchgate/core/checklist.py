"""The AI Agent Production Deployment Checklist's 20 controls, and a checklist gate judged as its table.

A checklist is a LaunchGate whose blockers name the control they judge (`control: 1..20`): the
same engine evaluates it as any gate, and this module turns the gate's result into the seed's
table, one row per control, so a reader sees which control failed, its pass signal, the value and
whom to call. A control without a blocker is a row that cannot pass: a checklist row nobody made
executable is a to-do, not a gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from launchgate.api import LaunchGateSpec
from launchgate.core.gates import BlockerResult, GateResult


@dataclass(frozen=True)
class Control:
    number: int
    area: str
    control: str
    pass_signal: str
    block_signal: str

    @property
    def launch_blocking(self) -> bool:
        return self.number in LAUNCH_BLOCKING


# The seed's "20 controls with pass/fail gates" table, word for word.
CONTROLS: tuple[Control, ...] = (
    Control(1, "Governance", "Policy check on submit path", "Deny/approval decisions returned before job persistence",
            "Job is persisted or queued before policy evaluation"),
    Control(2, "Governance", "Policy check on dispatch path", "Scheduler re-evaluates policy before worker routing",
            "Queued jobs dispatch with stale policy assumptions"),
    Control(3, "Governance", "Approval routing for high-risk actions",
            "Prod writes, destructive ops, and financial actions require explicit approval",
            "Risky actions can execute without human checkpoint"),
    Control(4, "Governance", "Approval binding to policy snapshot", "Approval record stores policy hash + job hash",
            "Approval exists but cannot prove what policy version was approved"),
    Control(5, "Governance", "Immutable decision timeline",
            "Request, decision, approver, and outcome are linked by ID", "Partial logs cannot reconstruct incidents"),
    Control(6, "Security", "Per-agent identity isolation", "Each agent or worker has a unique principal",
            "Shared credential used by multiple agent paths"),
    Control(7, "Security", "Credential rotation process", "Rotation tested and documented with zero-downtime fallback",
            "Static keys and manual break-glass updates"),
    Control(8, "Security", "Outbound network allowlist", "Agent egress constrained to explicit host list",
            "Unbounded outbound calls to internet targets"),
    Control(9, "Security", "Input schema validation", "Invalid requests rejected at API boundary",
            "Free-form input reaches tool execution directly"),
    Control(10, "Security", "Output safety decisions", "ALLOW, REDACT, QUARANTINE outcomes are enforced and logged",
            "Sensitive output reaches downstream systems unfiltered"),
    Control(11, "Reliability", "Retry class definition", "Transient vs terminal errors are separated and tested",
            "All failures retried identically"),
    Control(12, "Reliability", "Timeout budget per job class",
            "Timeouts mapped to workload type and queue latency profile", "Single global timeout for all job types"),
    Control(13, "Reliability", "Dead-letter queue ownership", "Team, SLA, and replay process defined",
            "DLQ exists but nobody owns triage"),
    Control(14, "Reliability", "Worker heartbeat watchdog",
            "Stale worker detection triggers requeue or fail-safe transition",
            "Lost worker leaves job in undefined state"),
    Control(15, "Reliability", "Idempotency on side effects",
            "Duplicate dispatch does not duplicate external side effects",
            "Retries can create duplicate writes or payments"),
    Control(16, "Operations", "Canary rollout gates", "Promotion blocked automatically when thresholds fail",
            "Manual promotion despite failing indicators"),
    Control(17, "Operations", "Rollback trigger matrix",
            "Latency, error, and governance thresholds mapped to rollback actions",
            "Rollback criteria are subjective and ad hoc"),
    Control(18, "Operations", "Workflow cost budgets", "Per-workflow token/API budget and alerts configured",
            "No ceiling on autonomous spend"),
    Control(19, "Operations", "On-call runbook", "Runbook covers stop, isolate, replay, and comms steps",
            "First incident requires inventing process live"),
    Control(20, "Compliance", "Incident replay drill", "Team can replay one historical incident end-to-end in staging",
            "Replay is theoretical and not tested"),
)

# "At least the critical set: controls 1-5, 6, 10, 13, 16, and 17. If one of those fails, do not launch."
LAUNCH_BLOCKING = frozenset({1, 2, 3, 4, 5, 6, 10, 13, 16, 17})

# Which owner role answers for each area: a failing row escalates to its area's owner.
AREA_OWNER = {"Governance": "governance", "Security": "security", "Reliability": "reliability",
              "Operations": "operations", "Compliance": "compliance"}


@dataclass(frozen=True)
class Row:
    control: Control
    blocker: str | None
    target: str
    value: float | None
    passed: bool
    reason: str
    owner: str | None

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "BLOCK"

    def to_json(self) -> dict[str, Any]:
        c = self.control
        return {"control": c.number, "area": c.area, "name": c.control, "passSignal": c.pass_signal,
                "blockSignal": c.block_signal, "launchBlocking": c.launch_blocking, "blocker": self.blocker,
                "target": self.target, "value": self.value, "result": self.verdict, "reason": self.reason,
                "owner": self.owner}


def checklist_problems(spec: LaunchGateSpec) -> list[str]:
    """A checklist names each control at most once: two blockers for one row would make the row's
    verdict depend on which one is read."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for i, b in enumerate(spec.blockers):
        if b.control is None:
            continue
        if b.control in seen:
            problems.append(f"spec.blockers[{i}].control: control {b.control} is already judged by "
                            f"blocker {seen[b.control]!r}")
        seen[b.control] = b.name
    if not seen:
        problems.append("spec.blockers: no blocker names a checklist control (control: 1..20)")
    return problems


def rows(spec: LaunchGateSpec, result: GateResult) -> list[Row]:
    """The 20 rows, in the seed's order. Missing data never passes a row."""
    by_control = {b.control: b for b in spec.blockers if b.control is not None}
    results = {r.name: r for r in result.blockers}
    out: list[Row] = []
    for c in CONTROLS:
        b = by_control.get(c.number)
        if b is None:
            out.append(Row(c, None, "—", None, False, "no blocker judges this control", None))
            continue
        r: BlockerResult | None = results.get(b.name)
        if r is None:
            out.append(Row(c, b.name, "—", None, False, "not evaluated", None))
            continue
        out.append(Row(c, b.name, r.target, r.value, r.passed, r.reason, r.owner))
    return out


def launch_blocked(table: Sequence[Row]) -> list[int]:
    """The launch-blocking controls whose row does not pass: any one of them stops the launch."""
    return [r.control.number for r in table if r.control.launch_blocking and not r.passed]


__all__ = ["AREA_OWNER", "CONTROLS", "LAUNCH_BLOCKING", "Control", "Row", "checklist_problems", "launch_blocked",
           "rows"]
