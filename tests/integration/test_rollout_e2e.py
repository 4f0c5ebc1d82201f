"""AgentRollout end to end: real kube-apiserver, controllers and scheduler, real Prometheus, real
agent processes, real operator.

kwok plays the kubelet: pods are scheduled onto fake Nodes and become ready, but run no container,
so the agents stand in for the pods, exporting metrics under the revision label the operator
assigned. Pods that come up late or not at all, or turn unready, are made so by real mechanisms,
each test saying which: a kwok stage selected by a pod annotation (devenv.READY_AFTER,
devenv.UNREADY), or a nodeSelector no Node satisfies. Where a Job must finish, the test has the Job's pod exit
as a kwok stage plays it, and the real Job controller says Complete or Failed.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import CANARY1_BLOCKERS, ERROR_RATE, TcpProxy, WebhookReceiver, World, rollout_obj, wait_for
from kubectl_util import kubectl, kubectl_json
from launchgate_dev.devenv import EXIT_CODE, RUN_FOR, UNREADY, PrometheusServer

_ids = itertools.count()

def phases(trigger_for: str = "6s", min_duration: str | None = None) -> list[dict[str, Any]]:
    c1: dict[str, Any] = {"name": "Canary1", "weight": 5, "gates": ["canary1"],
                          "rollbackTriggers": [{"name": "error-rate-2x-baseline", "query": ERROR_RATE,
                                                "above": {"baselineRatio": 2}, "for": trigger_for, "step": "1s"}]}
    if min_duration:
        c1["minDuration"] = min_duration
    return [
        {"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
        c1,
        {"name": "Canary2", "weight": 25, "gates": ["canary1"]},
        {"name": "General", "weights": [50, 100], "gates": ["canary1"]},
    ]


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path):
    w = World(kubeconfig, prometheus, f"e2e-{next(_ids)}-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


def given_a_stable_rollout(w: World, name: str, **spec: Any) -> str:
    w.http_route(name)
    phase_list = spec.pop("phases", None) or phases(**spec.pop("phase_args", {}))
    w.apply(rollout_obj(name, "agent:1", phase_list, **spec))
    st = w.wait_status(name, "first revision to become stable", lambda s: s.get("state") == "Healthy")
    # The stable Deployment and the route follow status (written first) within a pass.
    wait_for("the stable Deployment and route",
             lambda: w.replicas(f"{name}-stable") is not None and w.route_weights(name) == (100, 0), timeout=15)
    rev1 = st["stableRevision"]
    w.agent(rev1, success_rate=0.99, p95_ms=1000)
    return str(rev1)


def when_a_new_revision_is_applied(w: World, name: str, image: str = "agent:2") -> str:
    kubectl(w.kubeconfig, "patch", "agentrollout", name, "-n", w.ns, "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]))
    st = w.wait_status(name, "the canary revision", lambda s: s.get("canaryRevision") not in (None,))
    return str(st["canaryRevision"])


def promotions(w: World, name: str) -> list[tuple[str, str]]:
    """Promotions and rollbacks in the timeline (holds are recorded too, but vary with timing)."""
    return [(r["phase"], r["decision"]) for r in w.records(name)
            if r["kind"] == "decision" and r.get("decision") in ("promote", "rollback")]


class WeightRecorder(threading.Thread):
    """Watches the HTTPRoute as the rollout proceeds, to check weights follow each phase."""

    def __init__(self, w: World, name: str, gate: str | None = None) -> None:
        super().__init__(daemon=True)
        self.w, self.name, self.seen, self.stop_flag = w, name, [], threading.Event()
        self.gate, self.gate_seen = gate, set()  # (decision, passing) the gate's status showed

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                weights = self.w.route_weights(self.name)
                if self.gate is not None:
                    st = self.w.get("launchgates", self.gate).get("status") or {}
                    self.gate_seen.add((st.get("decision"), st.get("passing")))
            except AssertionError:
                continue
            if not self.seen or self.seen[-1] != weights:
                self.seen.append(weights)
            self.stop_flag.wait(0.1)


def test_good_canary_walks_every_phase_to_100_percent(world: World) -> None:
    w = world
    w.start_operator()
    rev1 = given_a_stable_rollout(w, "good")
    assert w.replicas("good-stable") == 4 and w.route_weights("good") == (100, 0)
    generation_before = w.get("agentrollout", "good")["metadata"]["generation"]
    spec_before = w.get("agentrollout", "good")["spec"]

    recorder = WeightRecorder(w, "good", gate="canary1")
    recorder.start()
    rev2 = when_a_new_revision_is_applied(w, "good")
    assert rev2 != rev1
    w.agent(rev2, success_rate=0.995, p95_ms=1050)

    st = w.wait_status("good", "the rollout to complete",
                       lambda s: s.get("stableRevision") == rev2 and s.get("state") == "Healthy", timeout=120)
    # Status (intent) is written before the route: keep recording until traffic is back on stable.
    wait_for("traffic back on stable", lambda: recorder.seen and recorder.seen[-1] == (100, 0), timeout=15)
    recorder.stop_flag.set()
    recorder.join()

    assert st["phase"] == "Completed" and st["canaryWeight"] == 0
    # Then every phase was passed in order, each exactly once.
    assert promotions(w, "good") == [("Canary1", "promote"), ("Canary2", "promote"), ("General", "promote"),
                                     ("General", "promote"), ("Finalizing", "promote"), ("Completed", "promote")]
    # The HTTPRoute followed each phase: 0 → 5 → 25 → 50 → 100 → back to stable (now rev2).
    canary_weights = [c for _, c in recorder.seen if c is not None]
    assert [c for i, c in enumerate(canary_weights) if i == 0 or canary_weights[i - 1] != c] == [0, 5, 25, 50, 100, 0]
    assert all(s + c == 100 for s, c in recorder.seen if c is not None)
    # The old revision is gone: the stable Deployment runs rev2, the canary is scaled to zero.
    stable = w.get("deployment", "good-stable")
    assert stable["metadata"]["annotations"]["launchgate.dev/revision"] == rev2
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:2"
    wait_for("the canary scaled down", lambda: w.replicas("good-canary") == 0, timeout=15)
    assert w.replicas("good-stable") == 4
    # The user's spec was never written by the operator: GitOps sees no drift.
    after = w.get("agentrollout", "good")
    assert after["metadata"]["generation"] == generation_before + 1  # our own image patch only
    assert after["spec"] == {**spec_before, "template": after["spec"]["template"]}
    assert st["observedGeneration"] == after["metadata"]["generation"]
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    # The gate's status was the live contract while the rollout used it.
    assert ("allow", "2/2") in recorder.gate_seen, recorder.gate_seen
    # The operator's own /metrics tell the same story.
    assert w.operator is not None
    scraped = w.operator.scrape()
    assert f'launchgate_decisions_total{{decision="promote",namespace="{w.ns}",rollout="good"}} 6.0' in scraped
    assert f'launchgate_rollout_canary_weight{{namespace="{w.ns}",rollout="good"}} 0.0' in scraped
    assert "launchgate_evaluation_duration_seconds_count" in scraped


def test_traffic_moves_only_to_available_pods_and_back_only_to_a_rolled_out_stable(world: World) -> None:
    """Here the test says when pods are up: the template's devenv.UNREADY annotation keeps kwok
    from marking them ready until `pods_come_up` takes it off them; the real Deployment controller
    counts them available."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "slow", pod_annotations={UNREADY: "true"}, availabilityDeadline="1h")
    rev2 = when_a_new_revision_is_applied(w, "slow")
    w.agent(rev2, success_rate=0.995, p95_ms=1050)

    def waiting_at(weight: int, routed: int) -> None:
        st = w.wait_status("slow", f"the rollout to wait for pods before routing {weight}%",
                           lambda s: s.get("canaryWeight") == weight and "waiting for the canary's pods" in
                           (s.get("message") or ""), timeout=60)
        assert st["trafficWeight"] == routed and st["state"] == "Progressing", st
        assert w.route_weights("slow") == (100 - routed, routed)
        assert not st["conditions"][2]["status"] == "True", st  # Stalled only past the deadline

    # The canary's first pod is asked for; nothing is judged or routed until it is available.
    waiting_at(0, 0)
    assert w.replicas("slow-canary") == 1
    w.pods_come_up("slow-canary")
    # 5% and 25% need no more than that pod; 50% needs two, and waits for the second one at 25%.
    waiting_at(50, 25)
    assert w.replicas("slow-canary") == 2
    w.pods_come_up("slow-canary")
    waiting_at(100, 50)
    assert w.pods_come_up("slow-canary") == 4
    # Promoted: the stable Deployment rolls rev2 out while the canary keeps all the traffic.
    st = w.wait_status("slow", "the stable Deployment to be rolling out", lambda s: s.get("phase") == "Finalizing"
                       and "waiting for Deployment slow-stable" in (s.get("message") or ""))
    assert st["stableRevision"] == rev2 and st["trafficWeight"] == 100
    wait_for("all traffic on the canary", lambda: w.route_weights("slow") == (0, 100), timeout=15)
    stable = w.get("deployment", "slow-stable")
    assert stable["metadata"]["annotations"]["launchgate.dev/revision"] == rev2 and w.replicas("slow-canary") == 4
    w.pods_come_up("slow-stable")
    st = w.wait_status("slow", "the rollout to complete", lambda s: s.get("phase") == "Completed")
    assert st["state"] == "Healthy" and "slow-stable rolled out" in st["message"]
    wait_for("traffic back on stable", lambda: w.route_weights("slow") == (100, 0), timeout=15)
    wait_for("the canary scaled down", lambda: w.replicas("slow-canary") == 0, timeout=15)
    assert promotions(w, "slow")[-2:] == [("Finalizing", "promote"), ("Completed", "promote")]


def test_a_canary_whose_pods_never_come_up_is_rolled_back_at_its_deadline(world: World) -> None:
    """The new revision asks for a node pool no Node is in (a nodeSelector): the real scheduler
    leaves its pod Pending, so the Deployment controller never counts it available."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "stuck-pods", availabilityDeadline="8s")
    recorder = WeightRecorder(w, "stuck-pods")
    recorder.start()
    kubectl(w.kubeconfig, "patch", "agentrollout", "stuck-pods", "-n", w.ns, "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "agent:2"},
        {"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {"pool": "gpu-a100"}}]))

    def unschedulable() -> list[dict[str, Any]]:
        pods = kubectl_json(w.kubeconfig, "get", "pods", "-n", w.ns, "-l",
                            "launchgate.dev/rollout=stuck-pods,launchgate.dev/role=canary")["items"]
        return [p for p in pods if any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                                       for c in p["status"].get("conditions") or [])]

    assert wait_for("the canary's pod left Pending by the scheduler", unschedulable, timeout=8)[0]["status"][
        "phase"] == "Pending"
    st = w.wait_status("stuck-pods", "the rollback", lambda s: s.get("state") == "Degraded", timeout=60)
    recorder.stop_flag.set()
    recorder.join()
    assert "spec.availabilityDeadline 8s" in st["lastDecision"]["reason"], st
    assert "0/1 available" in st["lastDecision"]["reason"], st
    wait_for("the canary scaled down and its Pending pod deleted", lambda: w.replicas("stuck-pods-canary") == 0
             and not unschedulable(), timeout=15)
    # Not one request was sent to the pods that never came up.
    assert {c for _, c in recorder.seen} <= {0, None}, recorder.seen
    assert promotions(w, "stuck-pods") == [("ReplayGate", "rollback")]


def test_a_template_the_api_server_refuses_is_said_in_status_and_its_fix_deploys(world: World) -> None:
    w = world
    w.start_operator()
    w.http_route("badtpl")
    invalid = rollout_obj("badtpl", "agent:1", phases())
    del invalid["spec"]["template"]["spec"]["containers"][0]["name"]  # the CRD keeps pod templates as they are
    w.apply(invalid)
    st = w.wait_status("badtpl", "the refusal in status",
                       lambda s: "refused a workload change" in (s.get("message") or ""), timeout=30)
    # Said by the API client, which checks bodies before sending them, or else by the API server.
    assert "spec.template.spec.containers[0].name" in st["message"], st
    assert w.replicas("badtpl-stable") is None
    # GitOps health reads the conditions: not Ready, stalled until someone fixes the template.
    conds = {c["type"]: c for c in st["conditions"]}
    assert (conds["Ready"]["status"], conds["Stalled"]["status"], conds["Stalled"]["reason"]) == \
        ("False", "True", "ChangeRefused"), conds
    # Fixed: no pods ran the refused revision, so there is nothing to canary against or protect.
    w.apply(rollout_obj("badtpl", "agent:1", phases()))
    st = w.wait_status("badtpl", "the fixed revision to become stable",
                       lambda s: "becomes stable" in (s.get("message") or "") and s.get("state") == "Healthy")
    assert st.get("canaryRevision") is None and "no stable Deployment runs" in st["message"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {"Ready": "True", "Reconciling": "False",
                                                                  "Stalled": "False"}
    wait_for("the stable Deployment", lambda: w.replicas("badtpl-stable") == 4, timeout=15)
    assert w.route_weights("badtpl") == (100, 0)


def test_a_stable_deployment_deleted_during_a_canary_comes_back_at_the_stable_revision(world: World) -> None:
    w = world
    w.start_operator()
    rev1 = given_a_stable_rollout(w, "gone", phase_args={"min_duration": "1h"})
    rev2 = when_a_new_revision_is_applied(w, "gone")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("gone", "Canary1 at 5%", lambda s: s.get("phase") == "Canary1" and s.get("trafficWeight") == 5)
    wait_for("the route at 95/5", lambda: w.route_weights("gone") == (95, 5), timeout=15)
    replicas = w.replicas("gone-stable")
    # Someone deletes the Deployment that 95% of the traffic goes to; the spec only holds rev2 now.
    kubectl(w.kubeconfig, "delete", "deployment", "gone-stable", "-n", w.ns, "--wait=false")

    def recreated() -> dict[str, Any] | None:
        dep = kubectl(w.kubeconfig, "get", "deployment", "gone-stable", "-n", w.ns, "-o", "json", check=False)
        body = json.loads(dep.stdout) if dep.returncode == 0 else None
        return body if body and not body["metadata"].get("deletionTimestamp") else None

    dep = wait_for("the stable Deployment back", recreated, timeout=30)
    assert dep["metadata"]["annotations"]["launchgate.dev/revision"] == rev1
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:1"
    assert dep["spec"]["replicas"] == replicas
    st = w.status("gone")
    assert (st["phase"], st["stableRevision"], st["canaryRevision"]) == ("Canary1", rev1, rev2)
    assert w.route_weights("gone") == (95, 5)
    events = kubectl_json(w.kubeconfig, "get", "events", "-n", w.ns, "--field-selector", "reason=StableRestored")
    assert any(f"revision {rev1}" in e["message"] for e in events["items"]), events


def test_a_gate_edited_during_a_canary_is_judged_by_its_new_spec_at_the_next_pass(world: World) -> None:
    """The operator keeps each validated spec while the object's generation stays the same (a
    spec edit moves it); an edit to a gate in use must count at once, as must the rollout's own."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "edit", phase_args={"min_duration": "1h"})
    rev2 = when_a_new_revision_is_applied(w, "edit")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("edit", "Canary1 at 5%", lambda s: s.get("phase") == "Canary1" and s.get("trafficWeight") == 5)
    wait_for("the gate allows", lambda: (w.get("launchgates", "canary1").get("status") or {}).get("decision")
             == "allow", timeout=30)

    # When the success-rate target is raised past what the canary does (0.995),
    w.gate("canary1", [{**CANARY1_BLOCKERS[0], "target": {"gte": 0.999}}, CANARY1_BLOCKERS[1]])
    generation = w.get("launchgates", "canary1")["metadata"]["generation"]

    # then the rollout's next pass judges it by the new target,
    def judged_anew() -> dict[str, Any] | None:
        st = w.get("launchgates", "canary1").get("status") or {}
        return st if st.get("observedGeneration") == generation and st.get("decision") != "allow" else None

    st = wait_for("the gate judged by its new target", judged_anew, timeout=30)
    success = next(b for b in st["blockers"] if b["name"] == "workflow_success_rate")
    assert success["pass"] is False and "0.999" in json.dumps(success["target"]), st
    assert f"rollout edit, revision {rev2}" in st["message"]
    # and an edit of the rollout's own spec (a longer interval, no new revision) is read too.
    kubectl(w.kubeconfig, "patch", "agentrollout", "edit", "-n", w.ns, "--type=merge", "-p",
            json.dumps({"spec": {"interval": "3s"}}))
    ro = w.get("agentrollout", "edit")
    w.wait_status("edit", "the spec edit observed",
                  lambda s: s.get("observedGeneration") == ro["metadata"]["generation"])
    assert w.status("edit")["canaryRevision"] == rev2


def test_bad_canary_is_rolled_back_once_its_trigger_held_for_its_duration(world: World) -> None:
    w = world
    hook = WebhookReceiver()
    w.start_operator(LAUNCHGATE_WEBHOOK_URL=hook.url)
    # Canary1 lasts at least a minute, so the canary is still there when it turns bad.
    given_a_stable_rollout(w, "bad", phase_args={"min_duration": "60s"})
    w.agents[next(iter(w.agents))].set(success_rate=0.98)  # stable: 2% errors
    rev2 = when_a_new_revision_is_applied(w, "bad")
    # The canary passes its gates at first, so it reaches Canary1...
    canary = w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("bad", "Canary1", lambda s: s.get("phase") == "Canary1", timeout=60)
    # ...then turns bad: 6% errors, 3x the stable baseline.
    canary.set(success_rate=0.94)
    st = w.wait_status("bad", "the rollback", lambda s: s.get("state") == "Degraded", timeout=90)
    assert st["decision"] == "rollback" and "error-rate-2x-baseline" in st["message"]
    wait_for("traffic on stable, canary scaled down",
             lambda: w.route_weights("bad") == (100, 0) and w.replicas("bad-canary") == 0, timeout=15)
    assert w.replicas("bad-stable") == 4
    rollback = [r for r in w.records("bad") if r.get("decision") == "rollback"]
    assert len(rollback) == 1 and "error-rate-2x-baseline" in rollback[0]["reason"]
    assert rollback[0]["values"]["error-rate-2x-baseline"] == pytest.approx(0.06, rel=0.2)
    conds = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert conds["Stalled"] == ("True", "RolledBack")
    # The owners were told, with the evidence.
    note = wait_for("the rollback webhook", lambda: [n for n in hook.received if n.get("kind") == "rollback"])[0]
    hook.close()
    assert note["rollout"] == "bad" and note["namespace"] == w.ns and "error-rate-2x-baseline" in note["reason"]
    assert note["escalate_to"] == ["sre-oncall"]
    assert note["values"]["error-rate-2x-baseline"] == pytest.approx(0.06, rel=0.2)
    # It stays rolled back: no new attempt until the revision changes.
    w.wait_status("bad", "still degraded", lambda s: s.get("state") == "Degraded")
    assert st["stableRevision"] != rev2


def test_a_short_breach_does_not_roll_back(world: World) -> None:
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "blip", phase_args={"trigger_for": "30s", "min_duration": "20s"})
    w.agents[next(iter(w.agents))].set(success_rate=0.98)
    rev2 = when_a_new_revision_is_applied(w, "blip")
    canary = w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("blip", "Canary1", lambda s: s.get("phase") == "Canary1")
    canary.set(success_rate=0.94)
    wait_for("the breach to be visible", lambda: w.status("blip").get("decision") == "hold", timeout=20)
    canary.set(success_rate=0.995)
    st = w.wait_status("blip", "promotion past Canary1", lambda s: s.get("phaseIndex", 0) >= 2, timeout=60)
    assert st["state"] != "Degraded"
    assert not [r for r in w.records("blip") if r.get("decision") == "rollback"]


def test_someone_elses_change_to_weights_or_replicas_is_undone(world: World) -> None:
    """The operator does not re-read its Deployments and HTTPRoute every pass (it keeps what it
    wrote, updated by a watch); a GitOps tool resetting the route or a person scaling the canary
    must still be corrected."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "drift", phase_args={"min_duration": "600s"})
    rev2 = when_a_new_revision_is_applied(w, "drift")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("drift", "Canary1", lambda s: s.get("phase") == "Canary1")
    wait_for("Canary1's weights and replicas",
             lambda: w.route_weights("drift") == (95, 5) and w.replicas("drift-canary") == 1, timeout=15)
    # When the route is put back to what Git says (no canary weight) and the canary scaled away...
    route = w.get("httproute", "drift")
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = 100 if ref["name"] == "drift-stable" else 0
    kubectl(w.kubeconfig, "replace", "-f", "-", stdin=json.dumps(route))
    kubectl(w.kubeconfig, "scale", "deployment", "drift-canary", "-n", w.ns, "--replicas=0")
    # ...then both come back within a pass (the rollout's interval is 1 s), with no new decision.
    wait_for("the weights and replicas restored",
             lambda: w.route_weights("drift") == (95, 5) and w.replicas("drift-canary") == 1, timeout=15)
    assert w.status("drift")["phase"] == "Canary1"


def test_operator_killed_repeatedly_skips_and_repeats_nothing(world: World) -> None:
    w = world
    op = w.start_operator()
    rev1 = given_a_stable_rollout(w, "chaos", phase_args={"min_duration": "3s"})
    rev2 = when_a_new_revision_is_applied(w, "chaos")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    # SIGKILL the operator every 1.5–3 s through the whole promotion, restarting it each time.
    done = False
    kills = 0
    while not done and kills < 40:
        threading.Event().wait(random.uniform(1.5, 3.0))
        op.kill()
        kills += 1
        op.start()
        done = w.status("chaos").get("stableRevision") == rev2
    st = w.wait_status("chaos", "completion after the crashes",
                       lambda s: s.get("stableRevision") == rev2 and s.get("state") == "Healthy", timeout=90)
    assert kills >= 3
    assert promotions(w, "chaos") == [("Canary1", "promote"), ("Canary2", "promote"), ("General", "promote"),
                                      ("General", "promote"), ("Finalizing", "promote"), ("Completed", "promote")]
    # Status is written before the world is changed (intent first), so the world follows shortly.
    wait_for("traffic on stable, canary scaled down",
             lambda: w.route_weights("chaos") == (100, 0) and w.replicas("chaos-canary") == 0, timeout=15)
    assert st["stableRevision"] != rev1


def test_the_operator_outlives_an_api_server_outage(world: World, control_plane: Any) -> None:
    """Kopf gives up a request after 9 attempts by default, and a watch whose request gives up
    stops the operator (as when the API server rebuilds its watch cache at 10,000 rollouts; see
    BENCHMARKS.md).
    Here the operator reaches the API server through a TCP proxy that is cut for 30 of its
    longest retry delays; it keeps retrying, then acts on a change made during the outage."""
    w = world
    proxy = TcpProxy(control_plane.server.removeprefix("https://")).restore()
    try:
        op = w.start_operator(server=proxy.address, LAUNCHGATE_API_RETRY_MAX_DELAY="300ms")
        given_a_stable_rollout(w, "outage")
        proxy.cut()
        kubectl(w.kubeconfig, "patch", "agentrollout", "outage", "-n", w.ns, "--type=json", "-p",
                json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "agent:2"}]))
        wait_for("retries past Kopf's default 9 attempts",
                 lambda: re.search(r"Request attempt #1[2-9] failed; will retry", op.log.read_text()), timeout=30)
        threading.Event().wait(3)
        op.assert_alive()
        proxy.restore()
        st = w.wait_status("outage", "the change made during the outage", lambda s: s.get("canaryRevision"),
                           timeout=60)
        assert st["state"] == "Progressing"
        assert op.starts == 1
        op.assert_alive()
    finally:
        proxy.cut()


def _last_evaluated(op: Any, ns: str, name: str) -> float | None:
    for line in op.scrape().splitlines():
        if line.startswith("launchgate_rollout_last_evaluated_timestamp_seconds{") and \
                f'namespace="{ns}"' in line and f'rollout="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_recovered_api_server_sees_every_rollout_evaluated_within_an_interval(world: World,
                                                                                control_plane: Any) -> None:
    """While the API server is down a rollout's pass fails and is retried less and less often;
    once it is back, the watches reconnect but report no change, so only the retry delay brings the
    rollout back: it must never be longer than the rollout's interval (1 s here)."""
    w = world
    proxy = TcpProxy(control_plane.server.removeprefix("https://")).restore()
    try:
        # Deployments are re-read every pass, so every pass needs the API server.
        op = w.start_operator(server=proxy.address, LAUNCHGATE_API_RETRY_MAX_DELAY="300ms",
                              LAUNCHGATE_RESYNC_INTERVAL="1s", LAUNCHGATE_WATCHED_RESYNC_INTERVAL="1s")
        given_a_stable_rollout(w, "back")
        wait_for("a pass counted in the operator's metrics", lambda: _last_evaluated(op, w.ns, "back"), timeout=15)
        proxy.cut()
        # Five failed passes in a row: uncapped, the next retry would come 16 s later.
        failed = f'"msg": "reconcile failed", "rollout": "{w.ns}/back"'
        wait_for("five failed passes", lambda: op.log.read_text().count(failed) >= 5, timeout=60)
        proxy.restore()
        restored = time.time()
        wait_for("a pass after the API server is back",
                 lambda: (_last_evaluated(op, w.ns, "back") or 0) > restored, timeout=8, every=0.2)
        op.assert_alive()
    finally:
        proxy.cut()


def test_operator_killed_in_the_middle_of_a_rollback_finishes_it(world: World) -> None:
    w = world
    op = w.start_operator()
    given_a_stable_rollout(w, "crash", phase_args={"min_duration": "60s"})
    w.agents[next(iter(w.agents))].set(success_rate=0.98)
    rev2 = when_a_new_revision_is_applied(w, "crash")
    canary = w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("crash", "Canary1", lambda s: s.get("phase") == "Canary1")
    canary.set(success_rate=0.94)
    # Kill the moment the rollback intent is persisted, before the operator can finish acting on it.
    wait_for("rollback intent", lambda: w.status("crash").get("decision") == "rollback", timeout=60, every=0.05)
    op.kill()
    op.start()
    st = w.wait_status("crash", "the rollback to finish", lambda s: s.get("state") == "Degraded", timeout=60)
    wait_for("traffic on stable, canary scaled down",
             lambda: w.route_weights("crash") == (100, 0) and w.replicas("crash-canary") == 0, timeout=15)
    assert len([r for r in w.records("crash") if r.get("decision") == "rollback"]) == 1
    assert st["decision"] == "rollback"


def test_prometheus_down_during_canary1_never_promotes(world: World, tmp_path: Path) -> None:
    w = world
    # Its own Prometheus, so stopping it leaves the other tests' one alone.
    own = PrometheusServer(tmp_path / "prom", scrape_interval="1s", evaluation_interval="1s").start()
    shared = w.prometheus
    try:
        w.prometheus = own
        w.start_operator(prometheus_url=own.url)
        rev1 = given_a_stable_rollout(w, "dark", phase_args={"min_duration": "4s"})
        rev2 = when_a_new_revision_is_applied(w, "dark")
        w.agent(rev2, success_rate=0.995, p95_ms=1000)
        w.wait_status("dark", "Canary1", lambda s: s.get("phase") == "Canary1")
        own.stop()
        st = w.wait_status("dark", "a hold naming Prometheus",
                           lambda s: s.get("decision") == "hold" and "unreachable" in (s.get("message") or ""),
                           timeout=30)
        # Well past minDuration, with Prometheus down, the canary stays at 5%.
        threading.Event().wait(6)
        st = w.status("dark")
        assert st["phase"] == "Canary1" and st["canaryWeight"] == 5 and w.route_weights("dark") == (95, 5)
        assert (st.get("consecutiveNoData") or 0) >= 2
        own.start()  # same port, same data
        st = w.wait_status("dark", "recovery and promotion", lambda s: s.get("phaseIndex", 0) >= 2, timeout=60)
        assert st["stableRevision"] == rev1
    finally:
        own.stop()
        w.prometheus = shared


def test_abort_while_the_router_fails_keeps_retrying_and_then_finishes(world: World) -> None:
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "stuck", phase_args={"min_duration": "60s"})
    rev2 = when_a_new_revision_is_applied(w, "stuck")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("stuck", "Canary1", lambda s: s.get("phase") == "Canary1")
    wait_for("5% on the canary", lambda: w.route_weights("stuck") == (95, 5))
    route = w.get("httproute", "stuck")
    kubectl(w.kubeconfig, "delete", "httproute", "stuck", "-n", w.ns)
    kubectl(w.kubeconfig, "create", "-f", "-", stdin=json.dumps({
            "apiVersion": "launchgate.dev/v1alpha1", "kind": "RolloutAction",
            "metadata": {"generateName": "abort-", "namespace": w.ns},
            "spec": {"rollout": "stuck", "action": "abort", "actor": "admin"}}))
    st = w.wait_status("stuck", "the router failure in status",
                       lambda s: s.get("state") == "RollingBack" and "traffic router" in (s.get("message") or ""))
    assert "not found" in st["message"]
    # Traffic could not be moved, so the canary keeps serving what it was sent, and the rollout
    # is not called rolled back while it is not.
    for _ in range(3):
        threading.Event().wait(1)
        assert w.status("stuck")["state"] == "RollingBack"
    assert (w.replicas("stuck-canary") or 0) > 0
    route["metadata"] = {"name": "stuck", "namespace": w.ns}
    kubectl(w.kubeconfig, "create", "-f", "-", stdin=json.dumps(route))
    w.wait_status("stuck", "the abort to finish", lambda s: s.get("state") == "Degraded", timeout=60)
    wait_for("traffic on stable, canary scaled down",
             lambda: w.route_weights("stuck") == (100, 0) and w.replicas("stuck-canary") == 0, timeout=15)


def replay_phases(exit_code: int) -> list[dict[str, Any]]:
    """The replay suite's pod exits with `exit_code` 3 s after it is ready (kwok's job-pod stages,
    told by devenv.EXIT_CODE and RUN_FOR on its template)."""
    template = {"metadata": {"annotations": {EXIT_CODE: str(exit_code), RUN_FOR: "3s"}},
                "spec": {"containers": [{"name": "replay", "image": "agent-replay:1", "args": ["--scenarios=30"]}]}}
    return [
        {"name": "ReplayGate", "weight": 0, "gates": ["canary1"], "replay": {"template": template}},
        {"name": "Canary1", "weight": 5, "gates": ["canary1"], "minDuration": "1h"},
    ]


@pytest.mark.parametrize("outcome", ["Complete", "Failed"])
def test_replay_gate_runs_the_replay_job_against_the_canary(world: World, outcome: str) -> None:
    """The real Job controller runs the Job: its pod is scheduled, runs and exits with the code
    the template asks kwok for, and the Job is marked Complete or Failed (backoffLimit 0)."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "replay", phases=replay_phases(0 if outcome == "Complete" else 1))
    rev2 = when_a_new_revision_is_applied(w, "replay")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    job_name = f"replay-replay-{rev2}"
    job = wait_for("the replay Job", lambda: w.get("job", job_name) if kubectl(
        w.kubeconfig, "get", "job", job_name, "-n", w.ns, check=False).returncode == 0 else None)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LAUNCHGATE_TARGET"] == "http://replay-canary:80" and env["LAUNCHGATE_REVISION"] == rev2
    # 0% live traffic while the suite runs, however good the gates look.
    st = w.wait_status("replay", "holding for the replay", lambda s: "replay suite running" in (s.get("message") or ""))
    assert st["phase"] == "ReplayGate" and w.route_weights("replay") == (100, 0)
    job = wait_for(f"the Job {outcome}", lambda: (j := w.get("job", job_name)) and any(
        c["type"] == outcome and c["status"] == "True" for c in j["status"].get("conditions") or []) and j,
        timeout=60)
    assert job["status"].get("succeeded" if outcome == "Complete" else "failed") == 1, job["status"]
    if outcome == "Complete":
        st = w.wait_status("replay", "Canary1", lambda s: s.get("phase") == "Canary1")
        assert st["canaryWeight"] == 5
    else:
        st = w.wait_status("replay", "the rollback", lambda s: s.get("state") == "Degraded")
        assert "replay suite failed" in st["message"]
