"""AgentRollouts against what the real controllers do with pods: the Deployment and ReplicaSet
controllers, the scheduler, kwok playing the kubelet, the EndpointSlice and Job controllers and the
garbage collector (see launchgate_dev.devenv). Each test says how its pods misbehave: a kwok stage
selected by a pod annotation (devenv.READY_AFTER, UNREADY), or something the cluster itself
refuses (a ResourceQuota)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import CANARY1_BLOCKERS, World, wait_for
from kubectl_util import kubectl, kubectl_json
from test_rollout_e2e import given_a_stable_rollout, when_a_new_revision_is_applied

_ids = itertools.count()


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path) -> Iterator[World]:
    w = World(kubeconfig, prometheus, f"pods-{next(_ids)}-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


def pods_of(w: World, rollout: str, role: str) -> list[dict[str, Any]]:
    """The rollout's pods of one role that are not being deleted."""
    items = kubectl_json(w.kubeconfig, "get", "pods", "-n", w.ns, "-l",
                         f"launchgate.dev/rollout={rollout},launchgate.dev/role={role}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_a_canary_the_namespace_quota_refuses_says_why_and_is_rolled_back(world: World) -> None:
    """A ResourceQuota with room for the stable pods only: the ReplicaSet controller may not create
    the canary's pod and the Deployment controller says so in a ReplicaFailure condition, which the
    rollout's status and its rollback repeat, rather than only "0/1 available"."""
    w = world
    kubectl(w.kubeconfig, "create", "quota", "pods", "-n", w.ns, "--hard=pods=4")
    w.start_operator()
    given_a_stable_rollout(w, "quota", availabilityDeadline="10s")
    wait_for("the 4 stable pods, which fill the quota", lambda: len(pods_of(w, "quota", "stable")) == 4, timeout=30)
    when_a_new_revision_is_applied(w, "quota")
    st = w.wait_status("quota", "the refusal in status", lambda s: "exceeded quota" in (s.get("message") or ""),
                       timeout=30)
    assert "waiting for the canary's pods" in st["message"], st
    assert "FailedCreate: pods" in st["message"] and "limited: pods=4" in st["message"], st
    assert w.route_weights("quota") == (100, 0)
    st = w.wait_status("quota", "the rollback", lambda s: s.get("state") == "Degraded", timeout=60)
    assert "spec.availabilityDeadline 10s" in st["lastDecision"]["reason"], st
    assert "exceeded quota" in st["lastDecision"]["reason"], st
    assert pods_of(w, "quota", "canary") == []
