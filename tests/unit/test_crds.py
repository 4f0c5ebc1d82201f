"""crds/ is generated from the models; these tests keep the two from drifting apart."""

from pathlib import Path

import pytest
import yaml

from launchgate.api import AgentRolloutSpec, LaunchGateSpec, crdgen

ROOT = Path(__file__).resolve().parents[2]


def test_crds_directory_is_up_to_date() -> None:
    rendered = crdgen.render()
    on_disk = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert set(on_disk) == set(rendered), "crds/ has extra or missing files: run `make crds`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run `make crds`"


def _walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("info", crdgen.CRDS, ids=lambda i: i.kind)
def test_schema_is_structural(info: crdgen.CRDInfo) -> None:
    schema = crdgen.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        if "properties" in node:
            assert node.get("type") == "object", path
            for name, prop in node["properties"].items():
                assert "type" in prop or prop.get("x-kubernetes-preserve-unknown-fields"), f"{path}.{name}"


def test_examples_parse_with_the_models() -> None:
    for doc in yaml.safe_load_all((ROOT / "examples" / "launchgates.yaml").read_text()):
        LaunchGateSpec.model_validate(doc["spec"])
    rollout = yaml.safe_load((ROOT / "examples" / "agentrollout.yaml").read_text())
    spec = AgentRolloutSpec.model_validate(rollout["spec"])
    assert [p.name for p in spec.effective_phases()] == ["ReplayGate", "Canary1", "Canary2", "General"]


def test_kopf_bookkeeping_survives_pruning() -> None:
    for info in crdgen.CRDS:
        if info.status is None:
            continue
        status = crdgen.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["properties"]["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


def test_only_an_agentrollout_can_be_scaled_and_its_scale_paths_exist() -> None:
    """An HPA scales the AgentRollout's spec.replicas through /scale (the operator sizes the
    Deployments from it); every path the subresource names must be in the schema, or the API
    server refuses the CRD."""
    scaled = {i.kind: crdgen.crd(i)["spec"]["versions"][0] for i in crdgen.CRDS
              if "scale" in crdgen.crd(i)["spec"]["versions"][0].get("subresources", {})}
    assert set(scaled) == {"AgentRollout"}
    version = scaled["AgentRollout"]
    props = version["schema"]["openAPIV3Schema"]["properties"]
    scale = version["subresources"]["scale"]
    for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath"):
        top, field = scale[key].lstrip(".").split(".")
        assert field in props[top]["properties"], scale[key]
    assert props["spec"]["properties"]["replicas"]["type"] == "integer"
    assert props["status"]["properties"]["replicas"]["type"] == "integer"
    assert props["status"]["properties"]["selector"]["type"] == "string"
