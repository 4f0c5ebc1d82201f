"""The packaged CRDs stay the generated ones, and packaging versions stay the package's version.

crds/ is generated from the models (`make crds`). The Helm chart ships copies in
charts/launchgate/crds/ (Helm installs a chart's crds/ directory before its templates), and
manifests/kustomization.yaml takes the CRDs from that same directory. After `make crds`, refresh
the copies with:  cp crds/*.yaml charts/launchgate/crds/
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from launchgate import __version__

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
CHART = REPO / "charts" / "launchgate"
CHART_CRDS = CHART / "crds"
REFRESH = "run: cp crds/*.yaml charts/launchgate/crds/ (and list new files in charts/launchgate/crds/kustomization.yaml)"


def _crd_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.yaml")) if p.name != "kustomization.yaml"}


def test_chart_crds_are_byte_identical_to_generated_crds() -> None:
    generated, packaged = _crd_files(CRDS), _crd_files(CHART_CRDS)
    assert generated, "crds/ is empty: run make crds"
    assert sorted(packaged) == sorted(generated), REFRESH
    stale = [name for name in generated if packaged[name] != generated[name]]
    assert not stale, f"charts/launchgate/crds/ differs from crds/ in {stale}: {REFRESH}"


def test_crd_kustomization_lists_exactly_the_crds() -> None:
    k = yaml.safe_load((CHART_CRDS / "kustomization.yaml").read_text())
    assert k["kind"] == "Kustomization"
    assert sorted(k["resources"]) == sorted(_crd_files(CRDS)), REFRESH
    top = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert "../charts/launchgate/crds" in top["resources"]


def test_helm_never_sees_the_kustomization() -> None:
    """Helm applies every file in a chart's crds/; the kustomization there must be ignored."""
    patterns = [line.strip() for line in (CHART / ".helmignore").read_text().splitlines()]
    assert "crds/kustomization.yaml" in patterns


def test_packaging_versions_follow_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    docs = list(yaml.safe_load_all((REPO / "manifests" / "base" / "operator.yaml").read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"].rsplit(":", 1)[1] == __version__


def test_the_kustomize_manifest_sets_what_the_chart_sets() -> None:
    """Both install paths show every setting, so neither silently falls behind the other."""
    chart = set(re.findall(r"name: (LAUNCHGATE_[A-Z_]+)", (CHART / "templates" / "deployment.yaml").read_text()))
    docs = list(yaml.safe_load_all((REPO / "manifests" / "base" / "operator.yaml").read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    kustomize = {e["name"] for e in container["env"]}
    # The record retention is an option of both: the chart's recordRetention, kustomize's component.
    patch = yaml.safe_load((REPO / "manifests" / "retention" / "operator-retention.yaml").read_text())
    (retention,) = patch["spec"]["template"]["spec"]["containers"]
    kustomize |= {e["name"] for e in retention["env"]}
    # Token and CA files exist only where the chart mounts a Secret for them.
    assert chart - {"LAUNCHGATE_PROMETHEUS_TOKEN_FILE", "LAUNCHGATE_PROMETHEUS_CA_FILE"} <= kustomize
