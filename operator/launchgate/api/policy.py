"""The policy bundle an agent runs under (the checklist's production-policy.yaml)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from launchgate.api.meta import (
    ConfigMapKeyReference,
    _Spec,
    exactly_one,
)


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
    """The AI Agent Production Deployment Checklist's production-policy.yaml: rules in order, first match decides."""

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

