"""The failure policy end to end: real kube-apiserver, real Prometheus, real agents, real operator.

A gate whose blocker has no data (a metric nobody exports) holds or blocks the canary, pass after
pass; after `failurePolicy.maxConsecutiveNoData` passes in a row the policy pauses the rollout or
rolls it back. Intervals are a second (the rollout's spec), so each test lasts seconds.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from harness import WebhookReceiver, World, wait_for
from kubectl_util import kubectl_json
from test_rollout_e2e import given_a_stable_rollout, when_a_new_revision_is_applied

_ids = itertools.count()

# A metric no agent exports: the query answers with an empty vector, whatever the canary does.
NEVER_EXPORTED = 'sum(rate(agent_never_exported_total{namespace="$namespace",version="$canary"}[$window]))'


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path):
    w = World(kubeconfig, prometheus, f"fp-{next(_ids)}-{random.randrange(10**6)}", tmp_path)
    yield w
    w.close()


def given_a_gate_without_data(w: World, name: str, on_missing_data: str) -> None:
    w.gate(name, [{"name": "never_exported", "query": NEVER_EXPORTED, "target": {"gte": 1},
                   "owner": "reliability", "onMissingData": on_missing_data}])


def phases_through(gate: str) -> list[dict[str, Any]]:
    """A first phase without gates (a promotion the timeline keeps), then phases judged by `gate`."""
    return [{"name": "ReplayGate", "weight": 0},
            {"name": "Canary1", "weight": 5, "gates": [gate]},
            {"name": "Canary2", "weight": 25, "gates": [gate]}]


def warning_events(w: World, words: str) -> list[dict[str, Any]]:
    return [e for e in kubectl_json(w.kubeconfig, "get", "events", "-n", w.ns)["items"]
            if e["type"] == "Warning" and words in e["message"]]


def test_a_rollout_paused_for_missing_data_is_recorded_and_notified_once(world: World) -> None:
    w = world
    hook = WebhookReceiver()
    w.start_operator(LAUNCHGATE_WEBHOOK_URL=hook.url)
    given_a_gate_without_data(w, "silent", "hold")
    given_a_stable_rollout(w, "quiet", phases=phases_through("silent"), historyLimit=4,
                           failurePolicy={"maxConsecutiveNoData": 2, "action": "pause"})
    when_a_new_revision_is_applied(w, "quiet")

    w.wait_status("quiet", "the failure policy's pause", lambda s: s.get("state") == "Paused", timeout=60)
    # Proof of six more passes after the pause: status keeps the count (and says so).
    st = w.wait_status("quiet", "six more evaluations without data",
                       lambda s: (s.get("consecutiveNoData") or 0) >= 8, timeout=30)
    assert st["state"] == "Paused" and st["phase"] == "Canary1" and st["canaryWeight"] == 5, st
    assert f"({st['consecutiveNoData']} evaluations in a row)" in st["message"], st

    # The pause is one decision: one DecisionRecord, one Warning Event, one history entry ...
    pauses = [r for r in w.records("quiet") if "evaluations in a row" in r["reason"]]
    assert len(pauses) == 1, [r["reason"] for r in pauses]
    assert pauses[0]["decision"] == "hold" and "never_exported" in pauses[0]["reason"]
    assert len(warning_events(w, "evaluations in a row")) == 1
    history = st["history"]
    assert [h["id"] for h in history if "evaluations in a row" in h["reason"]] == [pauses[0]["id"]]
    # ... so the decisions before it are still in a history of four.
    assert ("Canary1", "promote") in [(h["phase"], h["decision"]) for h in history], history
    # The owners heard of it once, with the gate's contact to escalate to.
    notes = wait_for("the pause notification", lambda: [n for n in hook.received if n.get("kind") == "pause"],
                     timeout=15)
    hook.close()
    assert len(notes) == 1, notes
    assert notes[0]["rollout"] == "quiet" and notes[0]["decision_id"] == pauses[0]["id"]
    assert notes[0]["escalate_to"] == ["sre-oncall"] and "never_exported" in notes[0]["reason"]


def test_missing_data_that_blocks_a_gate_still_counts_toward_the_failure_policy(world: World) -> None:
    w = world
    w.start_operator()
    given_a_gate_without_data(w, "strict", "fail")
    given_a_stable_rollout(w, "failing", phases=phases_through("strict"),
                           failurePolicy={"maxConsecutiveNoData": 3, "action": "rollback"})
    when_a_new_revision_is_applied(w, "failing")

    # onMissingData: fail makes the gate block ...
    wait_for("the gate blocking on missing data",
             lambda: (w.get("launchgates", "strict").get("status") or {}).get("decision") == "block", timeout=60)
    # ... and each such pass still lacks data: three in a row (a second apart) roll the canary back.
    st = w.wait_status("failing", "the failure policy's rollback", lambda s: s.get("state") == "Degraded",
                       timeout=20)
    assert st["decision"] == "rollback" and "(3 evaluations in a row)" in st["message"], st
    rollbacks = [r for r in w.records("failing") if r.get("decision") == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["phase"] == "Canary1", rollbacks
    assert rollbacks[0]["reason"].startswith("no usable data: strict: never_exported: no data: empty vector; "
                                             "blocks (onMissingData: fail)"), rollbacks[0]
    wait_for("traffic on stable, canary scaled down",
             lambda: w.route_weights("failing") == (100, 0) and w.replicas("failing-canary") == 0, timeout=15)
