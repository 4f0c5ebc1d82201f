"""The operator keeps a LaunchGate's status live on its own (no rollout using it): the contract,
Events naming the failing blockers and whom to escalate to, and a hold — never an allow — while
Prometheus is down, recovering without an operator restart."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import P95, SUCCESS, World, wait_for
from kubectl_util import kubectl, kubectl_json
from launchgate_dev.devenv import PrometheusServer


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path):
    own = PrometheusServer(tmp_path / "prom", scrape_interval="1s", evaluation_interval="1s").start()
    w = World(kubeconfig, own, f"gate-{random.randrange(10**6)}", tmp_path)
    yield w
    w.close()
    own.stop()


def gate_status(w: World) -> dict[str, Any]:
    return dict(w.get("launchgates", "contract").get("status") or {})


def test_gate_status_is_the_live_contract(world: World) -> None:
    w = world
    w.agent("v8", success_rate=0.995, p95_ms=1000)
    canary = w.agent("v9", success_rate=0.995, p95_ms=1050)
    w.apply({"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate", "metadata": {"name": "contract"},
             "spec": {"window": "5s", "owners": {"reliability": "sre-oncall", "governance": "ai-governance"},
                      "variables": {"stable": "v8", "canary": "v9"},
                      "blockers": [
                          {"name": "workflow_success_rate", "query": SUCCESS, "target": {"gte": 0.99},
                           "owner": "reliability"},
                          {"name": "p95_latency_ms", "query": P95, "target": {"lteBaselineRatio": 1.2},
                           "owner": "reliability"}]}})
    w.start_operator()
    st = wait_for("allow", lambda: (s := gate_status(w)).get("decision") == "allow" and s, timeout=60)
    assert st["passing"] == "2/2" and st["window"] == "5s" and st["observedGeneration"] == 1
    blockers = {b["name"]: b for b in st["blockers"]}
    assert blockers["workflow_success_rate"]["value"] == pytest.approx(0.995, abs=1e-3)
    assert blockers["p95_latency_ms"]["value"] == pytest.approx(1050, rel=0.02)
    assert blockers["p95_latency_ms"]["baselineValue"] == pytest.approx(1000, rel=0.02)
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    printed = kubectl(w.kubeconfig, "get", "launchgates", "-n", w.ns).stdout
    assert "allow" in printed and "2/2" in printed

    # Nothing changed: no status write (the resourceVersion stays put over several windows).
    rv = w.get("launchgates", "contract")["metadata"]["resourceVersion"]
    threading.Event().wait(4)
    assert w.get("launchgates", "contract")["metadata"]["resourceVersion"] == rv

    canary.set(success_rate=0.9)
    st = wait_for("block", lambda: (s := gate_status(w)).get("decision") == "block" and s, timeout=30)
    assert st["passing"] == "1/2"
    failing = next(b for b in st["blockers"] if not b["pass"])
    assert failing["name"] == "workflow_success_rate" and failing["owner"] == "sre-oncall"
    events = wait_for("a GateBlocks event", lambda: [
        e for e in kubectl_json(w.kubeconfig, "get", "events", "-n", w.ns)["items"] if e["reason"] == "GateBlocks"])
    assert "workflow_success_rate" in events[0]["message"] and "sre-oncall" in events[0]["message"]

    w.prometheus.stop()
    st = wait_for("hold while Prometheus is down", lambda: (s := gate_status(w)).get("decision") == "hold" and s,
                  timeout=30)
    assert "unreachable" in " ".join(b["reason"] for b in st["blockers"])
    for _ in range(4):  # never allow while it is down
        threading.Event().wait(1)
        assert gate_status(w)["decision"] == "hold"
    canary.set(success_rate=0.995)
    w.prometheus.start()  # same port, same data; the operator is not restarted
    wait_for("recovery", lambda: gate_status(w).get("decision") == "allow", timeout=60)
    assert w.operator is not None and w.operator.starts == 1


def test_a_gate_waiting_for_a_rollout_says_idle_and_pages_nobody(world: World) -> None:
    """Its queries need $canary, which only a rollout provides: no decision, no Event, no notification
    (otherwise a blocker with onMissingData: fail would block and page its owner while nothing is
    deployed)."""
    w = world
    w.apply({"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate", "metadata": {"name": "contract"},
             "spec": {"window": "5s", "owners": {"reliability": "sre-oncall"},
                      "blockers": [{"name": "workflow_success_rate", "query": SUCCESS, "target": {"gte": 0.99},
                                    "onMissingData": "fail"}]}})
    w.start_operator()
    st = wait_for("idle", lambda: (s := gate_status(w)).get("message", "").startswith("idle:") and s, timeout=60)
    assert "decision" not in st and "$canary" in st["message"] and st["observedGeneration"] == 1
    assert {c["type"]: c["reason"] for c in st["conditions"]}["Ready"] == "Idle"
    rv = w.get("launchgates", "contract")["metadata"]["resourceVersion"]
    threading.Event().wait(3)  # several gate intervals: nothing new to say, nothing written
    assert w.get("launchgates", "contract")["metadata"]["resourceVersion"] == rv
    events = kubectl_json(w.kubeconfig, "get", "events", "-n", w.ns,
                          "--field-selector", "involvedObject.name=contract")["items"]
    assert not [e for e in events if e["reason"] in ("GateBlocks", "GateHolds")]
    # Given its own versions, the same gate is evaluated on its own again.
    w.agent("v9", success_rate=0.995, p95_ms=1000)
    kubectl(w.kubeconfig, "patch", "launchgates", "contract", "-n", w.ns, "--type=merge", "-p",
            '{"spec": {"variables": {"canary": "v9"}}}')
    wait_for("allow", lambda: gate_status(w).get("decision") == "allow", timeout=60)


def test_a_spec_edit_is_acted_on_at_once_and_no_finalizer_is_left(world: World) -> None:
    """A launchgate.dev/finalizer on a gate is taken off (nothing else would remove it), so nothing
    holds its deletion. An edit is evaluated when it is seen, not an interval later."""
    w = world
    w.agent("v8", success_rate=0.995, p95_ms=1000)
    w.agent("v9", success_rate=0.995, p95_ms=1000)
    w.apply({"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate",
             "metadata": {"name": "contract", "finalizers": ["launchgate.dev/finalizer"]},
             "spec": {"window": "5s", "interval": "2s", "variables": {"stable": "v8", "canary": "v9"},
                      "blockers": [{"name": "workflow_success_rate", "query": SUCCESS, "target": {"gte": 0.99}}]}})
    w.start_operator()
    wait_for("allow", lambda: gate_status(w).get("decision") == "allow", timeout=60)
    wait_for("the old finalizer removed", lambda: not w.get("launchgates", "contract")["metadata"].get("finalizers"),
             timeout=30)

    kubectl(w.kubeconfig, "patch", "launchgates", "contract", "-n", w.ns, "--type=merge",
            "-p", '{"spec": {"interval": "10m"}}')
    wait_for("generation 2 seen", lambda: gate_status(w).get("observedGeneration") == 2, timeout=30)
    kubectl(w.kubeconfig, "patch", "launchgates", "contract", "-n", w.ns, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/blockers/0/target/gte", "value": 0.999}]')
    st = wait_for("block well within the 10m interval",
                  lambda: (s := gate_status(w)).get("decision") == "block" and s, timeout=30)
    assert st["observedGeneration"] == 3

    kubectl(w.kubeconfig, "delete", "launchgates", "contract", "-n", w.ns, "--wait=false")
    wait_for("deleted", lambda: kubectl(w.kubeconfig, "get", "launchgates", "contract", "-n", w.ns,
                                        check=False).returncode != 0, timeout=15)
    w.operator.assert_alive()
