"""The local control plane's stand-in Deployment controller: what status it reports."""

from __future__ import annotations

import pytest

from launchgate.adapters.kube import DeploymentState
from launchgate_dev.standin import NEVER_READY, rolled_out_status


def dep(replicas: int, generation: int = 2, status: dict | None = None, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "d", "namespace": "n", "generation": generation},
            "spec": {"replicas": replicas, "template": {"metadata": {"annotations": annotations or {}}}},
            "status": status or {}}


@pytest.mark.parametrize("body,patch", [
    (dep(3), {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
              "availableReplicas": 3}),
    # Already reported: nothing to do (its own patch comes back through the watch).
    (dep(3, status={"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                    "availableReplicas": 3}), None),
    # Scaled: the new count, for the new generation.
    (dep(5, generation=3, status={"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                                  "readyReplicas": 3, "availableReplicas": 3}),
     {"observedGeneration": 3, "replicas": 5, "updatedReplicas": 5, "readyReplicas": 5, "availableReplicas": 5}),
    # Scaled to zero: the real controller drops the counts (to absent); zero is the same.
    (dep(0, status={"observedGeneration": 2}), None),
    (dep(3, annotations={NEVER_READY: "true"}), None),
], ids=["new", "reported", "scaled", "zero", "never-ready"])
def test_reports_what_a_healthy_controller_would(body: dict, patch: dict | None) -> None:
    assert rolled_out_status(body) == patch
    if patch is not None:
        # ... which is exactly what the operator counts as rolled out.
        assert DeploymentState.of({**body, "status": patch}).rolled_out
