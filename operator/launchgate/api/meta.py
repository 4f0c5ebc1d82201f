"""The API of launchgate: pydantic models that are the single source of truth for the CRDs.

`crdgen` turns these models into `crds/*.yaml`; the operator and the CLI parse objects with the
same models, so what the API server accepts and what the code understands cannot drift apart.
Cross-field rules that the API server must enforce live here too, as CEL in
`x-kubernetes-validations`, next to the fields they talk about.
"""


from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

# A Go-style duration without days: what CEL's duration() accepts and what PromQL range selectors
# accept, so one string serves both the API server's checks and the queries.
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

GateDecision = Literal["allow", "block", "hold"]
RolloutDecision = Literal["promote", "hold", "await_approval", "rollback"]
MissingDataPolicy = Literal["hold", "fail"]
OwnerRole = Literal["reliability", "governance", "cost", "security", "operations", "compliance"]


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
    # The checklist's other areas, so each of its 20 rows escalates to its own area's owner.
    security: str | None = Field(default=None, max_length=253)
    operations: str | None = Field(default=None, max_length=253)
    compliance: str | None = Field(default=None, max_length=253)


class LocalObjectReference(_Spec):
    name: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)


class ConfigMapKeyReference(_Spec):
    name: str = Field(max_length=253, pattern=K8S_NAME_PATTERN)
    key: str = Field(default="policy.yaml", max_length=253)


