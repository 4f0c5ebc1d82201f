"""The decision timeline is kept: records outlive their rollout, their labels hold, and only the
retention path deletes them, all judged by the real API server with the shipped policies."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from harness import CANARY1_BLOCKERS, World, rollout_obj, wait_for
from kubectl_util import kubectl, kubectl_json

PHASES = [{"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
          {"name": "General", "weight": 100, "gates": ["canary1"]}]


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path):
    w = World(kubeconfig, prometheus, f"timeline-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


def records(w: World, selector: str | None = None) -> list[dict[str, Any]]:
    """Every DecisionRecord in the namespace, whole (metadata too), optionally by label selector."""
    args = ["get", "decisionrecords", "-n", w.ns] + (["-l", selector] if selector else [])
    return list(kubectl_json(w.kubeconfig, *args)["items"])


def a_stable_rollout(w: World, name: str) -> dict[str, Any]:
    w.http_route(name)
    w.apply(rollout_obj(name, "agent:1", PHASES))
    w.wait_status(name, "the first revision to become stable", lambda s: s.get("state") == "Healthy")
    return w.get("agentrollout", name)


def evaluated(w: World, name: str) -> bool:
    """The operator still shows the rollout's series: it has not yet handled its deletion."""
    assert w.operator is not None
    return any(line.startswith("launchgate_rollout_last_evaluated_timestamp_seconds")
               and f'namespace="{w.ns}"' in line and f'rollout="{name}"' in line
               for line in w.operator.scrape().splitlines())


def test_records_have_no_owner_and_outlive_their_rollout_and_its_re_creation(world: World) -> None:
    """Without a controller-manager here nothing garbage-collects, so what is checked is what
    would make it: no record names its rollout as owner, and the operator's own handling of a
    deleted rollout deletes nothing."""
    w = world
    w.start_operator()
    first = a_stable_rollout(w, "keep")
    uid = first["metadata"]["uid"]
    kept = wait_for("the first record", lambda: records(w, "launchgate.dev/rollout=keep"), timeout=15)
    for r in kept:
        assert "ownerReferences" not in r["metadata"], r["metadata"]
        assert r["metadata"]["labels"]["launchgate.dev/rollout-uid"] == uid
        assert r["spec"]["rollout"] == "keep" and r["spec"]["rolloutUid"] == uid

    kubectl(w.kubeconfig, "delete", "agentrollout", "keep", "-n", w.ns)
    wait_for("the operator to handle the deletion", lambda: not evaluated(w, "keep"), timeout=30)
    time.sleep(3)  # three of the rollout's intervals: anything the operator did would be done
    names = {r["metadata"]["name"] for r in kept}
    assert names <= {r["metadata"]["name"] for r in records(w, "launchgate.dev/rollout=keep")}

    # A rollout of the same name is another rollout: its timeline is its own, next to the old one.
    second = a_stable_rollout(w, "keep")
    new_uid = second["metadata"]["uid"]
    assert new_uid != uid
    own = wait_for("the re-created rollout's own first record",
                   lambda: records(w, f"launchgate.dev/rollout-uid={new_uid}"), timeout=15)
    assert [r["spec"]["reason"] for r in own] == ["initial revision becomes stable"]
    assert names <= {r["metadata"]["name"] for r in records(w, f"launchgate.dev/rollout-uid={uid}")}
