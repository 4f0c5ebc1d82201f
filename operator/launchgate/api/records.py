"""The decision timeline and the people's inputs: DecisionRecord, Approval, RolloutAction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from launchgate.api.meta import (
    K8S_NAME_PATTERN,
    RolloutDecision,
    _Spec,
)

# --------------------------------------------------------------------------- timeline and approvals


_IMMUTABLE: Any = {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable once created"}]}


class DecisionRecordSpec(_Spec):
    """One link of the decision timeline; the API server refuses any edit (CEL self == oldSelf)."""

    model_config = ConfigDict(json_schema_extra=_IMMUTABLE)

    id: str = Field(max_length=64)
    rollout: str = Field(max_length=253)
    rollout_uid: str | None = Field(
        default=None, max_length=64,
        description="The uid of the AgentRollout it is about: a record outlives its rollout (it has no "
                    "owner), and a rollout deleted and created again under the same name is another one.")
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
