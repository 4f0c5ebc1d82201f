"""The API of launchgate: pydantic models that are the single source of truth for the CRDs.

`crdgen` turns these models into `crds/*.yaml`; the operator and the CLI parse objects with the
same models, so what the API server accepts and what the code understands cannot drift apart.
Cross-field rules that the API server must enforce live here too, as CEL in
`x-kubernetes-validations`, next to the fields they talk about.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

# A Go-style duration without days: what CEL's duration() accepts and what PromQL range selectors
# accept, so one string serves both the API server's checks and the queries.
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

GateDecision = Literal["allow", "block", "hold"]
RolloutDecision = Literal["promote", "hold", "await_approval", "rollback"]
MissingDataPolicy = Literal["hold", "fail"]
OwnerRole = Literal["reliability", "governance", "cost"]


def _duration(description: str, **kw: Any) -> Any:
    """A duration field checked twice at the API boundary: by pattern and by CEL's own parser."""
    return Field(
        pattern=DURATION_PATTERN,
        max_length=32,
        description=description,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "duration(self) > duration('0s')", "message": "must be a positive duration such as 30s or 10m"}
            ]
        },
        **kw,
    )


class _Spec(BaseModel):
    """Spec models refuse unknown fields, so a typo in a gate file fed to the CLI is an error."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def field_path(loc: Sequence[str | int]) -> str:
    """A pydantic location as a user reads it in YAML: spec.blockers[0].target."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_message(e: ValidationError, prefix: str = "") -> str:
    """The first error, naming the field the way the API server would; the count of the rest."""
    first = e.errors()[0]
    where = field_path([*([prefix] if prefix else []), *first["loc"]])
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {msg}{more}"


def exactly_one(model: BaseModel, *fields: str) -> None:
    """The CEL "exactly one of" rules, enforced again in Python so gate files read by the CLI
    (which never pass the API server) get the same error."""
    present = [f for f in fields if getattr(model, f) is not None]
    if len(present) != 1:
        names = ", ".join(type(model).model_fields[f].alias or f for f in fields)
        raise ValueError(f"exactly one of {names} must be set")


class _Status(BaseModel):
    """Status models tolerate unknown fields: an older operator must read a newer status."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --------------------------------------------------------------------------- shared pieces


class Condition(_Status):
    """A kstatus condition: Ready, Reconciling or Stalled (Flux and `kubectl wait` read these)."""

    type: str = Field(max_length=64)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=128)
    message: str = Field(default="", max_length=4096)
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


_CONDITIONS: Any = Field(
    default_factory=list,
    max_length=16,
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
)


class Owners(_Spec):
    """Escalation contacts by role; a failing blocker names the role whose contact is paged."""

    reliability: str | None = Field(default=None, max_length=253)
    governance: str | None = Field(default=None, max_length=253)
    cost: str | None = Field(default=None, max_length=253)


class LocalObjectReference(_Spec):
    name: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)


class ConfigMapKeyReference(_Spec):
    name: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)
    key: str = Field(default="policy.yaml", max_length=253)


# --------------------------------------------------------------------------- LaunchGate


class Target(_Spec):
    """Exactly one comparison. Ratios compare the canary's value to the stable baseline's."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.eq), has(self.gte), has(self.lte), has(self.lteBaselineRatio),"
                    " has(self.gteBaselineRatio)].filter(x, x).size() == 1",
                    "message": "exactly one of eq, gte, lte, lteBaselineRatio, gteBaselineRatio must be set",
                }
            ]
        }
    )

    eq: float | None = None
    gte: float | None = None
    lte: float | None = None
    lte_baseline_ratio: float | None = Field(default=None, gt=0)
    gte_baseline_ratio: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        exactly_one(self, "eq", "gte", "lte", "lte_baseline_ratio", "gte_baseline_ratio")
        return self

    def set_fields(self) -> list[str]:
        return [k for k, v in self.model_dump(by_alias=True).items() if v is not None]


class Blocker(_Spec):
    """One launch-blocking row of the seed's checklist, made executable."""

    name: str = Field(max_length=63, pattern=NAME_PATTERN)
    query: str = Field(
        min_length=1,
        max_length=8192,
        description="PromQL. $namespace, $rollout, $stable, $canary, $version and $window are substituted; "
        "label values are escaped as PromQL string literals.",
    )
    baseline_query: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        description="For a baseline ratio: the stable query. Defaults to `query` with $version bound to stable.",
    )
    target: Target
    on_missing_data: MissingDataPolicy | None = Field(
        default=None, description="hold (never promote, keep waiting) or fail (block). Defaults to the gate's."
    )
    owner: OwnerRole | None = Field(default=None, description="Which owner to escalate to when this fails.")
    description: str | None = Field(default=None, max_length=1024)


class LaunchGateSpec(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.blockers.all(b, self.blockers.exists_one(c, c.name == b.name))",
                    "message": "blocker names must be unique",
                    "fieldPath": ".blockers",
                }
            ]
        }
    )

    window: str = _duration("Evaluation window, substituted for $window in queries.", default="10m")
    interval: str | None = _duration(
        "How often the gate is evaluated; defaults to the operator's setting.", default=None
    )
    owners: Owners = Field(default_factory=Owners)
    on_missing_data: MissingDataPolicy = Field(default="hold")
    blockers: list[Blocker] = Field(min_length=1, max_length=32)
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Values for $stable, $canary, $version when the gate is evaluated on its own; "
        "a rollout using the gate supplies its own.",
        json_schema_extra={"maxProperties": 16},
    )


class BlockerStatus(_Status):
    name: str = Field(max_length=63)
    target: str = Field(max_length=128, description="Human-readable target, e.g. 'gte 0.99'.")
    value: float | None = Field(default=None, json_schema_extra={"nullable": True})
    baseline_value: float | None = Field(default=None, json_schema_extra={"nullable": True})
    passed: bool = Field(alias="pass")
    reason: str = Field(default="", max_length=1024)
    owner: str | None = Field(default=None, max_length=253)


class LaunchGateStatus(_Status):
    decision: GateDecision | None = None
    passing: str | None = Field(default=None, max_length=16, description="Passing blockers, e.g. 4/5.")
    window: str | None = Field(default=None, max_length=32)
    evaluated_at: datetime | None = None
    observed_generation: int | None = None
    owners: Owners | None = None
    blockers: list[BlockerStatus] = Field(default_factory=list, max_length=32)
    message: str | None = Field(default=None, max_length=4096)
    conditions: list[Condition] = _CONDITIONS
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


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


class RollbackTrigger(_Spec):
    """A condition that must hold for the whole `for` duration, judged from Prometheus data."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.above), has(self.below)].filter(x, x).size() == 1",
                    "message": "exactly one of above, below must be set",
                }
            ]
        }
    )

    name: str = Field(max_length=63, pattern=NAME_PATTERN)
    query: str = Field(min_length=1, max_length=8192)
    baseline_query: str | None = Field(default=None, min_length=1, max_length=8192)
    above: Threshold | None = None
    below: Threshold | None = None
    for_: str = _duration("How long the condition must hold before the trigger fires.", default="1m", alias="for")
    step: str | None = _duration("Resolution at which `for` is judged; defaults to the scrape-friendly 15s.", default=None)

    @model_validator(mode="after")
    def _one(self) -> RollbackTrigger:
        exactly_one(self, "above", "below")
        return self


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


class PolicyRuleMatch(_Spec):
    topic: str | None = Field(default=None, max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)
    risk_tags: list[str] = Field(default_factory=list, max_length=32)


POLICY_DECISIONS = ("DENY", "REQUIRE_APPROVAL", "ALLOW_WITH_CONSTRAINTS", "ALLOW")


def _check_policy_decision(v: str) -> str:
    if v not in POLICY_DECISIONS:
        raise ValueError(f"must be one of {', '.join(POLICY_DECISIONS)}")
    return v


class PolicyRule(_Spec):
    # The decision is checked by CEL rather than an enum so the API server's message can name the
    # rule's id: in a bundle of fifty rules, "rules[31]" alone sends people counting.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.decision in ['DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'ALLOW']",
                    "messageExpression": "'rule ' + self.id + ': decision must be one of DENY, REQUIRE_APPROVAL, "
                    "ALLOW_WITH_CONSTRAINTS, ALLOW'",
                    "fieldPath": ".decision",
                },
                {
                    "rule": "self.decision != 'ALLOW_WITH_CONSTRAINTS' || has(self.constraints)",
                    "messageExpression": "'rule ' + self.id + ': ALLOW_WITH_CONSTRAINTS needs constraints'",
                    "fieldPath": ".constraints",
                },
            ]
        }
    )

    id: str = Field(max_length=128, pattern=r"^[a-z0-9][a-z0-9-]*$")
    match: PolicyRuleMatch
    decision: Annotated[str, AfterValidator(_check_policy_decision)] = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=1024)
    constraints: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )


class PolicyBundle(_Spec):
    """The seed's production-policy.yaml: rules evaluated in order, first match decides."""

    version: str = Field(default="v1", max_length=32)
    rules: list[PolicyRule] = Field(
        min_length=1,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )


class PolicySource(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.bundle), has(self.configMapRef)].filter(x, x).size() == 1",
                    "message": "exactly one of bundle, configMapRef must be set",
                }
            ]
        }
    )

    bundle: PolicyBundle | None = None
    config_map_ref: ConfigMapKeyReference | None = None

    @model_validator(mode="after")
    def _one(self) -> PolicySource:
        exactly_one(self, "bundle", "config_map_ref")
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

    replicas: int = Field(default=1, ge=0, le=10000)
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
        description="Defaults to the seed's ReplayGate, Canary1, Canary2, General.",
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
    """The seed's canary table. Gates are referenced by name: a missing gate holds, never passes."""
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
    conditions: list[Condition] = _CONDITIONS
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


# --------------------------------------------------------------------------- timeline and approvals


_IMMUTABLE: Any = {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable once created"}]}


class DecisionRecordSpec(_Spec):
    """One link of the decision timeline; the API server refuses any edit (CEL self == oldSelf)."""

    model_config = ConfigDict(json_schema_extra=_IMMUTABLE)

    id: str = Field(max_length=64)
    rollout: str = Field(max_length=253)
    kind: Literal["decision", "approval-request", "approval", "rejection", "action"]
    decision: RolloutDecision | None = None
    action: str | None = Field(default=None, max_length=64)
    phase: str = Field(max_length=63)
    revision: str = Field(max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=253, description="The operator's or the acting user's identity.")
    reason: str = Field(default="", max_length=4096)
    outcome: str = Field(default="", max_length=1024)
    values: dict[str, float | None] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": {"type": "number", "nullable": True}}
    )
    at: datetime


class ApprovalSpec(_Spec):
    """An accountable human decision; the approver must be who the API server says made it."""

    model_config = ConfigDict(json_schema_extra=_IMMUTABLE)

    rollout: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)
    request_id: str = Field(max_length=64)
    revision: str = Field(max_length=64)
    gates_hash: str = Field(max_length=64)
    decision: Literal["approve", "reject"]
    approver: str = Field(max_length=253, description="Must be the creating user (enforced by admission policy).")
    group: str = Field(max_length=253, description="Group the approver acts for; admission checks membership.")
    comment: str | None = Field(default=None, max_length=4096)


class RolloutActionSpec(_Spec):
    """A person's request to promote, abort or retry, kept as evidence of who asked for it."""

    model_config = ConfigDict(json_schema_extra=_IMMUTABLE)

    rollout: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)
    action: Literal["promote", "abort", "retry"]
    actor: str = Field(max_length=253, description="Must be the creating user (enforced by admission policy).")
    reason: str | None = Field(default=None, max_length=4096)
