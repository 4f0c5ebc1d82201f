"""LaunchGate: the launch-gate contract (blockers over PromQL, targets, owners, missing data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from launchgate.api.meta import (
    _CONDITIONS,
    NAME_PATTERN,
    Condition,
    GateDecision,
    MissingDataPolicy,
    OwnerRole,
    Owners,
    _duration,
    _Spec,
    _Status,
    exactly_one,
)

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
    """One launch-blocking row of the AI Agent Production Deployment Checklist, made executable."""

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
    control: int | None = Field(
        default=None, ge=1, le=20,
        description="The row of the AI Agent Production Deployment Checklist this blocker judges (1-20): "
        "`launchgate checklist` prints the gate as the checklist's table.")
    freshness: str | None = _duration(
        "How recent the newest sample of the canary's series in `query` must be for its value to count; "
        "older (the canary stopped reporting) is missing data. Defaults to the gate's.", default=None)


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
    freshness: str | None = _duration(
        "How recent the newest sample of a blocker's canary series (the selectors of its query that match "
        "$canary, or $version) must be: a canary that stopped reporting is missing data however long the "
        "query's range. Defaults to twice the operator's scrape interval (LAUNCHGATE_SCRAPE_INTERVAL, 30s).",
        default=None)
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


