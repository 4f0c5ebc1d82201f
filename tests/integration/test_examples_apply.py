"""Every file under examples/ applies as it is: `kubectl apply --server-side -R -f examples/`
against a real kube-apiserver with launchgate's CRDs and the Gateway API CRDs installed.

A user creates the namespaces first (the examples name `agents`; examples/demo/ names none, so its
objects land in the current context's namespace), then applies the folder. So does this test, with
a kubeconfig whose current namespace is the test's own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_util import kubectl, kubectl_json
from launchgate.api import ConfigMapKeyReference, PolicyBundle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CURRENT_NS = "examples-apply"  # where the examples without a namespace (examples/demo/) land


def _example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def _example_docs() -> list[tuple[Path, Any]]:
    return [(f, d) for f in _example_files() for d in yaml.safe_load_all(f.read_text()) if d is not None]


def _named_namespaces() -> set[str]:
    return {d["metadata"]["namespace"] for _, d in _example_docs()
            if isinstance(d, dict) and isinstance(d.get("metadata"), dict) and "namespace" in d["metadata"]}


@pytest.fixture
def user_kubeconfig(kubeconfig: Path, tmp_path: Path) -> Iterator[Path]:
    """The admin kubeconfig with CURRENT_NS as the current namespace; the namespaces the examples
    need exist. Afterwards everything the examples created is deleted again, so no later test
    (or operator started by one) meets a stray AgentRollout."""
    config = tmp_path / "kubeconfig"
    shutil.copy(kubeconfig, config)
    kubectl(config, "config", "set-context", "--current", f"--namespace={CURRENT_NS}")
    created = []
    for ns in sorted(_named_namespaces() | {CURRENT_NS}):
        if kubectl(config, "get", "namespace", ns, check=False).returncode != 0:
            kubectl(config, "create", "namespace", ns)
            created.append(ns)
    yield config
    kubectl(config, "delete", "-R", "-f", str(EXAMPLES), "--ignore-not-found", "--wait=false", check=False)
    for ns in created:
        kubectl(config, "delete", "namespace", ns, "--wait=false", check=False)


def test_examples_are_kubernetes_objects() -> None:
    """Said file by file, which is clearer than kubectl's message when one is not."""
    assert _example_files(), f"no examples in {EXAMPLES}"
    for f, doc in _example_docs():
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), (
            f"{f.relative_to(ROOT)} is not a Kubernetes object (no apiVersion/kind): "
            "`kubectl apply -f examples/` would fail on it")


def test_kubectl_apply_examples_folder(user_kubeconfig: Path) -> None:
    proc = kubectl(user_kubeconfig, "apply", "--server-side", "-R", "-f", str(EXAMPLES), check=False)
    assert proc.returncode == 0, f"kubectl apply --server-side -R -f examples/ failed:\n{proc.stderr}"
    assert proc.stderr.strip() == "", proc.stderr  # no warnings either (unknown fields, deprecations)
    applied = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(applied) == len(_example_docs()), proc.stdout

    # Every object is there, where the user would look for it.
    listed = kubectl(user_kubeconfig, "get", "-R", "-f", str(EXAMPLES), "-o", "name").stdout.split()
    assert len(listed) == len(_example_docs()), listed
    for name in ("agentrollout.launchgate.dev/support-agent", "agentrollout.launchgate.dev/triage-agent",
                 "httproute.gateway.networking.k8s.io/support-agent", "launchgate.launchgate.dev/canary1",
                 "configmap/production-policy",
                 "clusterrolebinding.rbac.authorization.k8s.io/launchgate-reliability-reviewers"):
        assert name in listed, listed

    # The policy ConfigMap is what an AgentRollout's spec.policy.configMapRef reads: the key the
    # reference defaults to holds a valid bundle (the check the reconciler makes).
    cm = kubectl_json(user_kubeconfig, "get", "configmap", "production-policy", "-n", "agents")
    key = ConfigMapKeyReference(name="production-policy").key
    assert key in cm["data"], sorted(cm["data"])
    bundle = PolicyBundle.model_validate(yaml.safe_load(cm["data"][key]))
    assert [r.id for r in bundle.rules] == [
        "deny-destructive-prod", "approval-prod-write", "constrain-external-egress", "allow-read-only"]

    # Applying again changes nothing and fails nothing (what GitOps tools do every sync).
    again = kubectl(user_kubeconfig, "apply", "--server-side", "-R", "-f", str(EXAMPLES), check=False)
    assert again.returncode == 0, again.stderr
