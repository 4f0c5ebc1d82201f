"""AgentRollout: the staged release of one agent workload (phases, gates, triggers, routing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from launchgate.api.gate import Judge, _blocker_rules, count_problems
from launchgate.api.meta import (
    _CONDITIONS,
    K8S_NAME_PATTERN,
    NAME_PATTERN,
    Condition,
    OwnerRole,
    RolloutDecision,
    _duration,
    _Spec,
    _Status,
    exactly_one,
)
from launchgate.api.policy import PolicySource

# --------------------------------------------------------------------------- AgentRollout


class Threshold(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.value), has(self.baselineRatio)].filter(x, x).size() == 1",
                    "message": "exactly one of value, baselineRatio must be set",
                }
            ]
        }
    )

    value: float | None = None
    baseline_ratio: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        exactly_one(self, "value", "baseline_ratio")
        return self


def _trigger_rules() -> list[dict[str, str]]:
    rules = [r for r in _blocker_rules() if "target" not in r["rule"]]
    return [
        {"rule": "[has(self.above), has(self.below), has(self.judge)].filter(x, x).size() == 1",
         "message": "exactly one of above, below, judge must be set"},
        *[{**r, "message": r["message"].replace("blocker", "trigger")} for r in rules],
        {"rule": "!has(self.judge) || has(self.query)",
         "message": "a judge compares the samples of query: set query", "fieldPath": ".query"},
    ]


class RollbackTrigger(_Spec):
    """A condition that must hold for the whole `for` duration, judged from Prometheus data.

    `above`/`below` a threshold at every `step` of `for`, from `query`, or from counts (`errors` or
    `successes`, and `total`): with `confidence`, a step holds only when the proportion is above
    (below) the threshold with that confidence. Or `judge`: the canary's samples over `for`
    compared with the stable's; fires when the judge finds the bad direction (never on nodata)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _trigger_rules()})  # type: ignore[dict-item]

    name: str = Field(max_length=63, pattern=NAME_PATTERN)
    query: str | None = Field(default=None, min_length=1, max_length=8192)
    baseline_query: str | None = Field(default=None, min_length=1, max_length=8192)
    successes: str | None = Field(default=None, min_length=1, max_length=8192,
                                  description="Successful requests over each step's range, for a proportion.")
    errors: str | None = Field(default=None, min_length=1, max_length=8192,
                               description="Failed requests over each step's range, for a proportion.")
    total: str | None = Field(default=None, min_length=1, max_length=8192,
                              description="All requests over each step's range, for a proportion.")
    confidence: float | None = Field(
        default=None, gt=0, lt=1,
        description="For counts: a step holds only when the proportion is beyond the threshold with this "
        "confidence (Wilson interval; MOVER for a baselineRatio).")
    min_samples: int | None = Field(default=None, ge=1,
                                    description="For counts: a step with a smaller total never holds.")
    above: Threshold | None = None
    below: Threshold | None = None
    judge: Judge | None = None
    for_: str = _duration("How long the condition must hold before the trigger fires (for a judge: the "
                          "samples compared).", default="1m", alias="for")
    step: str | None = _duration("Resolution at which `for` is judged; defaults to the scrape-friendly 15s "
                                 "(for a judge: its own step).", default=None)

    @model_validator(mode="after")
    def _one(self) -> RollbackTrigger:
        exactly_one(self, "above", "below", "judge")
        problem = count_problems(self)
        if problem is None and self.judge is not None and self.query is None:
            problem = "query: a judge compares the samples of query: set query"
        if problem is None and self.baseline_query is not None and self.query is None:
            problem = "baselineQuery: baselineQuery goes with query"
        if problem is not None:
            raise ValueError(problem.replace("blocker", "trigger"))
        return self

    def count_queries(self) -> tuple[str, str] | None:
        events = self.successes if self.successes is not None else self.errors
        return (events, self.total) if events is not None and self.total is not None else None

    @property
    def evidence(self) -> bool:
        """Judged from range queries in launchgate (counts or a judge), not inside Prometheus."""
        return self.judge is not None or self.count_queries() is not None


class ReplaySpec(_Spec):
    template: dict[str, Any] = Field(
        description="Pod template of the replay Job, aimed at the canary Service.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
    )
    backoff_limit: int = Field(default=0, ge=0, le=10)
    active_deadline: str = _duration("Give the replay suite at most this long.", default="30m")


class ApprovalRequirement(_Spec):
    approvers: int = Field(default=1, ge=1, le=10, description="Distinct approvers required.")
    group: str = Field(max_length=253, description="Kubernetes group whose members may approve.")
    owner: OwnerRole | None = None
    expires_after: str = _duration("An approval older than this no longer counts.", default="24h")


class Phase(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.weight), has(self.weights)].filter(x, x).size() == 1",
                    "message": "exactly one of weight, weights must be set",
                },
                {
                    "rule": "!has(self.weights) || self.weights.isSorted()",
                    "message": "weights within a phase must not decrease",
                    "fieldPath": ".weights",
                },
            ]
        }
    )

    name: str = Field(max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    weight: int | None = Field(default=None, ge=0, le=100, description="Share of live traffic for the canary, %.")
    weights: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="Steps within the phase, e.g. [50, 100].",
        json_schema_extra={"items": {"type": "integer", "minimum": 0, "maximum": 100}},
    )
    gates: list[str] = Field(default_factory=list, max_length=16, description="LaunchGate names in this namespace.")
    min_duration: str | None = _duration("Stay at least this long before promoting.", default=None)
    replay: ReplaySpec | None = None
    approval: ApprovalRequirement | None = None
    rollback_triggers: list[RollbackTrigger] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _one(self) -> Phase:
        exactly_one(self, "weight", "weights")
        if self.weights is not None and self.weights != sorted(self.weights):
            raise ValueError("weights within a phase must not decrease")
        return self

    def steps(self) -> list[int]:
        return list(self.weights) if self.weights is not None else [self.weight or 0]


class GatewayAPIRouting(_Spec):
    http_route: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)
    port: int = Field(default=80, ge=1, le=65535)


class TrafficRouting(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.gatewayAPI), has(self.replicaRatio)].filter(x, x).size() == 1",
                    "message": "exactly one of gatewayAPI, replicaRatio must be set",
                }
            ]
        }
    )

    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    replica_ratio: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )

    @model_validator(mode="after")
    def _one(self) -> TrafficRouting:
        exactly_one(self, "gateway_api", "replica_ratio")
        return self




class WorkloadRef(_Spec):
    stable: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)
    canary: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)


class FailurePolicy(_Spec):
    """What a run of evaluations without usable data leads to: never promotion."""

    max_consecutive_no_data: int = Field(default=10, ge=1, le=1000)
    action: Literal["rollback", "pause"] = "pause"


def _phase_order_rules() -> Any:
    """Weights must not decrease across phases, in CEL the API server can afford (no indexing).

    With each phase's steps sorted, the flattened weights are non-decreasing iff phase starts and
    ends are each sorted, a later-starting phase starts no lower than any earlier one ends, and of
    phases that start at the same weight at most one has more than one step.
    """
    start = "(has({p}.weights) ? {p}.weights.min() : {p}.weight)"
    end = "(has({p}.weights) ? {p}.weights.max() : {p}.weight)"
    msg = "weights must not decrease from one phase to the next"
    return [
        {"rule": f"self.map(p, {start.format(p='p')}).isSorted() && self.map(p, {end.format(p='p')}).isSorted()",
         "message": msg},
        {"rule": f"self.all(p, self.all(q, {start.format(p='q')} <= {start.format(p='p')} || "
                 f"{end.format(p='p')} <= {start.format(p='q')}))", "message": msg},
        {"rule": f"self.all(p, self.all(q, p.name == q.name || {start.format(p='p')} != {start.format(p='q')} || "
                 f"{end.format(p='p')} == {start.format(p='p')} || {end.format(p='q')} == {start.format(p='q')}))",
         "message": msg},
    ]


class AgentRolloutSpec(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.template), has(self.workloadRef)].filter(x, x).size() == 1",
                    "message": "exactly one of template, workloadRef must be set",
                }
            ]
        }
    )

    replicas: int = Field(
        default=1, ge=0, le=10000,
        description="Pods of the agent, stable and canary together; the operator sizes both Deployments from it. "
                    "An autoscaler scales the AgentRollout (its scale subresource), never its Deployments.")
    template: dict[str, Any] | None = Field(
        default=None,
        description="Pod template of the agent (image, model, prompt version).",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    workload_ref: WorkloadRef | None = None
    policy: PolicySource | None = None
    traffic_routing: TrafficRouting
    interval: str = _duration("How often the rollout is evaluated.", default="30s")
    progress_deadline: str = _duration("A phase holding longer than this marks the rollout Stalled.", default="1h")
    availability_deadline: str = _duration(
        "How long the canary's pods may take to become available once asked for; past it the "
        "rollout is rolled back. Traffic never moves to pods that are not available.", default="10m")
    failure_policy: FailurePolicy = Field(default_factory=FailurePolicy)
    paused: bool = False
    history_limit: int = Field(default=20, ge=1, le=200)
    phases: list[Phase] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="Defaults to the phases of the AI Agent Production Deployment Checklist: ReplayGate, "
        "Canary1, Canary2, General.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": _phase_order_rules(),
        },
    )

    @model_validator(mode="after")
    def _checks(self) -> AgentRolloutSpec:
        exactly_one(self, "template", "workload_ref")
        flat = [w for p in self.effective_phases() for w in p.steps()]
        if flat != sorted(flat):
            raise ValueError("phases: weights must not decrease from one phase to the next")
        return self

    def effective_phases(self) -> list[Phase]:
        return list(self.phases) if self.phases else default_phases()


def default_phases() -> list[Phase]:
    """The checklist's canary table. Gates are referenced by name: a missing gate holds, never passes."""
    return [
        Phase(name="ReplayGate", weight=0, gates=["replay"]),
        Phase(name="Canary1", weight=5, gates=["canary1"]),
        Phase(name="Canary2", weight=25, gates=["canary2"]),
        Phase(
            name="General",
            weights=[50, 100],
            gates=["general"],
            approval=ApprovalRequirement(approvers=2, group="reliability-reviewers", owner="reliability"),
        ),
    ]


class DecisionSummary(_Status):
    id: str = Field(max_length=64)
    decision: RolloutDecision
    phase: str = Field(max_length=63)
    reason: str = Field(default="", max_length=4096)
    at: datetime
    values: dict[str, float | None] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": {"type": "number", "nullable": True}}
    )


class PendingApproval(_Status):
    request_id: str = Field(max_length=64)
    phase: str = Field(max_length=63)
    revision: str = Field(max_length=64)
    gates_hash: str = Field(max_length=64)
    group: str = Field(max_length=253)
    approvers_required: int
    approved_by: list[str] = Field(default_factory=list, max_length=10)
    owner: str | None = Field(default=None, max_length=253)
    requested_at: datetime


class LastAction(_Status):
    """The last RolloutAction handled, so each is acted on once, also across restarts."""

    name: str = Field(max_length=253)
    action: str = Field(max_length=16)
    actor: str = Field(max_length=253)
    created: datetime
    outcome: str = Field(default="", max_length=1024)
    handled_same_second: list[str] = Field(
        default_factory=list, max_length=64,
        description="Other actions created in the same second as this one and already handled: creation "
                    "times have one-second precision, so the time alone cannot tell which are done.")


class AgentRolloutStatus(_Status):
    phase: str | None = Field(default=None, max_length=63)
    phase_index: int | None = None
    step_index: int | None = None
    state: Literal["Progressing", "Paused", "AwaitingApproval", "Healthy", "Degraded", "RollingBack"] | None = None
    canary_weight: int | None = Field(default=None, ge=0, le=100)
    traffic_weight: int | None = Field(
        default=None, ge=0, le=100,
        description="The weight actually routed to the canary: it follows canaryWeight once the canary's pods "
                    "are available.")
    traffic_since: datetime | None = Field(
        default=None, description="When traffic last moved to the canary's pods: a step is judged no sooner than "
                                  "one interval later.")
    pods_pending_since: datetime | None = Field(
        default=None, description="Since when the rollout waits for pods (canary, or stable while finalizing).")
    stable_revision: str | None = Field(default=None, max_length=64)
    canary_revision: str | None = Field(default=None, max_length=64)
    decision: RolloutDecision | None = None
    phase_started_at: datetime | None = None
    consecutive_no_data: int | None = None
    pending_approval: PendingApproval | None = None
    last_action: LastAction | None = None
    last_decision: DecisionSummary | None = None
    history: list[DecisionSummary] = Field(default_factory=list, max_length=200)
    message: str | None = Field(default=None, max_length=4096)
    observed_generation: int | None = None
    replicas: int | None = Field(
        default=None, description="The spec.replicas the operator sizes the Deployments for (the scale subresource's "
                                  "status.replicas).")
    selector: str | None = Field(
        default=None, max_length=320,
        description="Label selector of the rollout's pods, stable and canary (the scale subresource's selector: an "
                    "HPA averages its metrics over these pods).")
    conditions: list[Condition] = _CONDITIONS
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


