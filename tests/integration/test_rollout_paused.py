"""What a paused rollout tells GitOps tools, read from the status the operator really writes.

`spec.paused` is a state the user asked for: once the operator has acted on it the rollout is
where its spec says, so kstatus (Flux's health check, `kubectl wait`) reads Current and a sync
that pauses a rollout completes, while Argo CD shows Suspended. A rollout the operator paused for
missing data is the opposite case: nobody asked for it, so it is Stalled (kstatus Failed).
"""

from __future__ import annotations

import json
from typing import Any

from harness import World, kubectl
from kstatus import kstatus
from test_rollout_e2e import given_a_stable_rollout, when_a_new_revision_is_applied
from test_rollout_e2e import world as world  # noqa: F401 - the fixture


def _rollout(w: World, name: str) -> dict[str, Any]:
    out = kubectl(w.kubeconfig, "get", "agentrollout", name, "-n", w.ns, "-o", "json").stdout
    return dict(json.loads(out))


def test_a_rollout_paused_by_its_spec_is_current_for_kstatus(world: World) -> None:
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "still", phase_args={"min_duration": "300s"})
    rev2 = when_a_new_revision_is_applied(w, "still")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("still", "Canary1", lambda s: s.get("phase") == "Canary1")
    # Before the pause: a canary in progress is InProgress for kstatus.
    assert kstatus(_rollout(w, "still")) == "InProgress"

    kubectl(w.kubeconfig, "patch", "agentrollout", "still", "-n", w.ns, "--type=merge", "-p",
            json.dumps({"spec": {"paused": True}}))
    generation = _rollout(w, "still")["metadata"]["generation"]
    st = w.wait_status("still", "the pause acted on",
                       lambda s: s.get("state") == "Paused" and s.get("observedGeneration") == generation)
    obj = _rollout(w, "still")
    assert kstatus(obj) == "Current", st.get("conditions")
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "Paused"
    assert conditions["Reconciling"]["status"] == "False" and conditions["Stalled"]["status"] == "False"
    # Traffic stays where the pause found it.
    assert st["phase"] == "Canary1" and w.route_weights("still") == (95, 5)
    # `kubectl wait` agrees: the status answers for this generation.
    kubectl(w.kubeconfig, "wait", "agentrollout/still", "-n", w.ns, "--for=jsonpath={.status.state}=Paused",
            "--timeout=5s")

    # Unpausing makes it InProgress again until the canary moves on.
    kubectl(w.kubeconfig, "patch", "agentrollout", "still", "-n", w.ns, "--type=merge", "-p",
            json.dumps({"spec": {"paused": False}}))
    generation = _rollout(w, "still")["metadata"]["generation"]
    w.wait_status("still", "the unpause acted on",
                  lambda s: s.get("state") != "Paused" and s.get("observedGeneration") == generation)
    assert kstatus(_rollout(w, "still")) == "InProgress"
