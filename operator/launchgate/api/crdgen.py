"""Generate `crds/` from the pydantic models (`make crds`).

Pydantic emits JSON Schema with `$ref`, `anyOf` for optionals and titles; the API server wants a
structural schema: every node typed, no references, `nullable` instead of a null branch. This
module does that translation so the models stay the one source of truth.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from launchgate import GROUP, VERSION
from launchgate.api import (
    AgentRolloutSpec,
    AgentRolloutStatus,
    ApprovalSpec,
    DecisionRecordSpec,
    LaunchGateSpec,
    LaunchGateStatus,
    RolloutActionSpec,
)

_DROP = {"title", "default", "$defs"}


@dataclass(frozen=True)
class CRDInfo:
    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    status: type[BaseModel] | None
    columns: list[dict[str, Any]] = field(default_factory=list)
    spec_required: bool = True
    scale: dict[str, str] | None = None
    """The scale subresource's paths, for a kind an autoscaler may scale."""


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


CRDS: list[CRDInfo] = [
    CRDInfo(
        kind="LaunchGate",
        plural="launchgates",
        short_names=["lg", "gate"],
        spec=LaunchGateSpec,
        status=LaunchGateStatus,
        columns=[
            {"name": "Decision", "type": "string", "jsonPath": ".status.decision"},
            {"name": "Passing", "type": "string", "jsonPath": ".status.passing"},
            {"name": "Window", "type": "string", "jsonPath": ".spec.window"},
            {"name": "Evaluated", "type": "date", "jsonPath": ".status.evaluatedAt"},
            _age(),
        ],
    ),
    CRDInfo(
        kind="AgentRollout",
        plural="agentrollouts",
        short_names=["ar", "agro"],
        spec=AgentRolloutSpec,
        status=AgentRolloutStatus,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
            {"name": "Traffic", "type": "integer", "jsonPath": ".status.trafficWeight",
             "description": "The weight routed now; it follows Weight once the canary's pods are available."},
            {"name": "Decision", "type": "string", "jsonPath": ".status.decision"},
            {"name": "Revision", "type": "string", "jsonPath": ".status.canaryRevision"},
            {"name": "State", "type": "string", "jsonPath": ".status.state", "priority": 1},
            _age(),
        ],
        # spec.replicas is the user's (or an HPA's): the operator sizes the Deployments from it.
        scale={"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
               "labelSelectorPath": ".status.selector"},
    ),
    CRDInfo(
        kind="DecisionRecord",
        plural="decisionrecords",
        short_names=["ldr"],
        spec=DecisionRecordSpec,
        status=None,
        columns=[
            {"name": "Rollout", "type": "string", "jsonPath": ".spec.rollout"},
            {"name": "Kind", "type": "string", "jsonPath": ".spec.kind"},
            {"name": "Decision", "type": "string", "jsonPath": ".spec.decision"},
            {"name": "Phase", "type": "string", "jsonPath": ".spec.phase"},
            {"name": "Actor", "type": "string", "jsonPath": ".spec.actor"},
            {"name": "At", "type": "date", "jsonPath": ".spec.at"},
        ],
    ),
    CRDInfo(
        kind="Approval",
        plural="approvals",
        short_names=["lga"],
        spec=ApprovalSpec,
        status=None,
        columns=[
            {"name": "Rollout", "type": "string", "jsonPath": ".spec.rollout"},
            {"name": "Decision", "type": "string", "jsonPath": ".spec.decision"},
            {"name": "Approver", "type": "string", "jsonPath": ".spec.approver"},
            {"name": "Request", "type": "string", "jsonPath": ".spec.requestId"},
            _age(),
        ],
    ),
    CRDInfo(
        kind="RolloutAction",
        plural="rolloutactions",
        short_names=["lgact"],
        spec=RolloutActionSpec,
        status=None,
        columns=[
            {"name": "Rollout", "type": "string", "jsonPath": ".spec.rollout"},
            {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
            {"name": "Actor", "type": "string", "jsonPath": ".spec.actor"},
            _age(),
        ],
    ),
]


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _convert(raw, defs)


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = copy.deepcopy(node)
    if "$ref" in node:
        return _convert(_resolve_ref(node, defs), defs)
    if "anyOf" in node:
        node = _without_null(node, defs)
    _to_openapi(node)
    return _convert_children(node, defs)


def _resolve_ref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The referenced definition with the referring node's own keys on top."""
    target = defs[node.pop("$ref").split("/")[-1]]
    merged = {**copy.deepcopy(target), **node}
    # CEL rules of the referenced model and of the field are both kept.
    rules = target.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _without_null(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as X: a structural schema has no unions, and null is what an absent field reads as."""
    branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
    if len(branches) != 1:
        raise ValueError(f"cannot express a union of {len(branches)} types structurally: {branches}")
    branch = _convert(branches[0], defs)
    rules = branch.get("x-kubernetes-validations", []) + node.get("x-kubernetes-validations", [])
    node = {**branch, **{k: v for k, v in node.items() if k != "x-kubernetes-validations"}}
    if rules:
        node["x-kubernetes-validations"] = rules
    return node


def _to_openapi(node: dict[str, Any]) -> None:
    """JSON Schema keywords the API server's OpenAPI v3.0 spells differently, rewritten in place."""
    # JSON Schema 2020 spells exclusive bounds as numbers; OpenAPI v3.0 (the API server's) as flags.
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if node.get("format") == "date-time":
        node["type"] = "string"
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
        node.setdefault("type", "object")
    if node.get("additionalProperties") is False:
        # Structural schemas forbid it; the API server prunes unknown fields instead.
        node.pop("additionalProperties")
    if node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True


def _convert_children(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: _convert(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _convert(value, defs)
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
    return out


def crd(info: CRDInfo) -> dict[str, Any]:
    props: dict[str, Any] = {"spec": structural(info.spec)}
    if info.status is not None:
        props["status"] = structural(info.status)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            **props,
        },
        "required": ["spec"] if info.spec_required else [],
    }
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": info.columns,
    }
    if info.status is not None:
        version["subresources"] = {"status": {}}
        if info.scale is not None:
            version["subresources"]["scale"] = dict(info.scale)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short_names,
                "categories": ["launchgate-all"],
            },
            "versions": [version],
        },
    }


def render() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    header = "# Generated by `make crds` from the models in operator/launchgate/api/. Do not edit.\n"
    return {
        f"{GROUP}_{info.plural}.yaml": header + yaml.safe_dump(crd(info), sort_keys=False, width=120)
        for info in CRDS
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "crds")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
