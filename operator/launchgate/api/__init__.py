"""The API of launchgate: pydantic models that are the single source of truth for the CRDs.

`crdgen` turns these models into `crds/*.yaml`; the operator and the CLI parse objects with the
same models, so what the API server accepts and what the code understands cannot drift apart.
Cross-field rules that the API server must enforce live here too, as CEL in
`x-kubernetes-validations`, next to the fields they talk about. One module per kind; this
package re-exports them so callers import from `launchgate.api`.
"""

from launchgate.api.gate import (
    Blocker,
    BlockerStatus,
    Judge,
    JudgeDirection,
    LaunchGateSpec,
    LaunchGateStatus,
    Target,
)
from launchgate.api.meta import (
    DURATION_PATTERN,
    K8S_NAME_PATTERN,
    NAME_PATTERN,
    Condition,
    ConfigMapKeyReference,
    GateDecision,
    LocalObjectReference,
    MissingDataPolicy,
    OwnerRole,
    Owners,
    RolloutDecision,
    exactly_one,
    field_path,
    validation_message,
)
from launchgate.api.names import (
    service_names,
)
from launchgate.api.policy import (
    POLICY_DECISIONS,
    PolicyBundle,
    PolicyRule,
    PolicyRuleMatch,
    PolicySource,
)
from launchgate.api.records import (
    ApprovalSpec,
    DecisionRecordSpec,
    RolloutActionSpec,
)
from launchgate.api.rollout import (
    AgentRolloutSpec,
    AgentRolloutStatus,
    ApprovalRequirement,
    DecisionSummary,
    FailurePolicy,
    GatewayAPIRouting,
    LastAction,
    PendingApproval,
    Phase,
    ReplaySpec,
    RollbackTrigger,
    Threshold,
    TrafficRouting,
    WorkloadRef,
    default_phases,
)

__all__ = [
    "DURATION_PATTERN",
    "NAME_PATTERN",
    "K8S_NAME_PATTERN",
    "GateDecision",
    "RolloutDecision",
    "MissingDataPolicy",
    "OwnerRole",
    "field_path",
    "validation_message",
    "exactly_one",
    "Condition",
    "Owners",
    "LocalObjectReference",
    "ConfigMapKeyReference",
    "Target",
    "Judge",
    "JudgeDirection",
    "Blocker",
    "LaunchGateSpec",
    "BlockerStatus",
    "LaunchGateStatus",
    "PolicyRuleMatch",
    "POLICY_DECISIONS",
    "PolicyRule",
    "PolicyBundle",
    "PolicySource",
    "Threshold",
    "RollbackTrigger",
    "ReplaySpec",
    "ApprovalRequirement",
    "Phase",
    "GatewayAPIRouting",
    "TrafficRouting",
    "WorkloadRef",
    "FailurePolicy",
    "AgentRolloutSpec",
    "default_phases",
    "DecisionSummary",
    "PendingApproval",
    "LastAction",
    "AgentRolloutStatus",
    "DecisionRecordSpec",
    "ApprovalSpec",
    "RolloutActionSpec",
    "service_names",
]
