"""AgentRollouts against what the real controllers do with pods: the Deployment and ReplicaSet
controllers, the scheduler, kwok playing the kubelet, the EndpointSlice and Job controllers and the
garbage collector (see launchgate_dev.devenv). Each test says how its pods misbehave: a kwok stage
selected by a pod annotation (devenv.READY_AFTER, UNREADY), or something the cluster itself
refuses (a ResourceQuota)."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness import CANARY1_BLOCKERS, World, wait_for
from kubectl_util import kubectl, kubectl_json
from launchgate_dev.devenv import READY_AFTER, RUN_FOR, UNREADY
from test_rollout_e2e import given_a_stable_rollout, promotions, when_a_new_revision_is_applied

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


def annotate(w: World, pod: dict[str, Any], *change: str) -> None:
    kubectl(w.kubeconfig, "annotate", "pod", pod["metadata"]["name"], "-n", w.ns, "--overwrite", *change)


def endpoint_ready(w: World, service: str, ip: str) -> bool | None:
    """Whether the EndpointSlice controller lists `ip` as ready behind `service` (None: not listed)."""
    slices = kubectl_json(w.kubeconfig, "get", "endpointslices", "-n", w.ns, "-l",
                          f"kubernetes.io/service-name={service}")["items"]
    for s in slices:
        for e in s.get("endpoints") or []:
            if ip in e["addresses"]:
                return bool((e.get("conditions") or {}).get("ready"))
    return None


def test_canary_pods_ready_late_hold_its_traffic_until_they_are_ready(world: World) -> None:
    """Every pod of the rollout passes its readiness probe 6 s after it starts (devenv.READY_AFTER:
    kwok's pod-ready stage waits that long). Nothing in the test makes them ready."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "late", pod_annotations={READY_AFTER: "6s"}, phases=[
        {"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
        {"name": "Canary1", "weight": 50, "gates": ["canary1"], "minDuration": "1h"}])
    rev2 = when_a_new_revision_is_applied(w, "late")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    # Its first pod is judged only once ready; 50% then needs a second pod, and traffic waits for it.
    st = w.wait_status("late", "waiting before routing 50%", lambda s: s.get("canaryWeight") == 50 and
                       "waiting for the canary's pods before routing 50%" in (s.get("message") or ""), timeout=60)
    assert st["trafficWeight"] == 0 and w.route_weights("late") == (100, 0), st
    assert "1/2 available" in st["message"], st
    st = w.wait_status("late", "50% routed", lambda s: s.get("trafficWeight") == 50, timeout=30)
    wait_for("the route at 50/50", lambda: w.route_weights("late") == (50, 50), timeout=15)
    routed_at = time.time()
    # The route moved after, not before, the second pod became ready, 6 s after it started.
    pods = pods_of(w, "late", "canary")
    assert len(pods) == 2 and all(_ready_since(p) is not None for p in pods), pods
    latest = max(pods, key=lambda p: _ready_since(p) or 0.0)
    assert (_ready_since(latest) or 0.0) - _started(latest) >= 5.5
    assert routed_at >= (_ready_since(latest) or 0.0) - 1.0  # the API's timestamps are in whole seconds
    assert st["phase"] == "Canary1"


def _ready_since(pod: dict[str, Any]) -> float | None:
    for c in pod["status"].get("conditions") or []:
        if c["type"] == "Ready" and c["status"] == "True":
            return _epoch(c["lastTransitionTime"])
    return None


def _started(pod: dict[str, Any]) -> float:
    return _epoch(pod["status"]["startTime"])


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_canary_pod_that_turns_unready_holds_its_traffic_then_is_rolled_back_and_removed(world: World) -> None:
    """Readiness flipped by a kwok stage: the test annotates the running canary pod devenv.UNREADY
    and kwok's pod-unready stage marks it not ready, as a failing readiness probe would; taking the
    annotation off makes it ready again. As the README says, traffic moves only to available pods
    and pods not available within availabilityDeadline roll the canary back: the canary keeps the
    weight it has, its gates are not judged, and the deadline rolls it back."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "flap", availabilityDeadline="8s", phase_args={"min_duration": "1h"})
    rev2 = when_a_new_revision_is_applied(w, "flap")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("flap", "Canary1 at 5%", lambda s: s.get("phase") == "Canary1" and s.get("trafficWeight") == 5)
    wait_for("the route at 95/5", lambda: w.route_weights("flap") == (95, 5), timeout=15)
    (pod,) = pods_of(w, "flap", "canary")
    ip = pod["status"]["podIP"]
    assert endpoint_ready(w, "flap-canary", ip) is True

    annotate(w, pod, f"{UNREADY}=true")
    st = w.wait_status("flap", "the hold", lambda s: "waiting for the canary's pods before judging its gates"
                       in (s.get("message") or ""), timeout=20)
    assert (st["phase"], st["trafficWeight"], st["decision"]) == ("Canary1", 5, "hold"), st
    assert "0/1 available" in st["message"] and w.route_weights("flap") == (95, 5)
    wait_for("the EndpointSlice to list the pod not ready", lambda: endpoint_ready(w, "flap-canary", ip) is False,
             timeout=15)
    # Ready again before the deadline: the canary carries on where it was.
    annotate(w, pod, f"{UNREADY}-")
    st = w.wait_status("flap", "the canary judged again", lambda s: "waiting for the canary's pods"
                       not in (s.get("message") or "") and s.get("podsPendingSince") is None, timeout=20)
    assert (st["phase"], st["trafficWeight"], st["state"]) == ("Canary1", 5, "Progressing"), st

    # Unready again, and for longer than availabilityDeadline.
    annotate(w, pod, f"{UNREADY}=true")
    st = w.wait_status("flap", "the rollback", lambda s: s.get("state") == "Degraded", timeout=60)
    assert "spec.availabilityDeadline 8s" in st["lastDecision"]["reason"], st
    assert "0/1 available" in st["lastDecision"]["reason"], st
    assert promotions(w, "flap") == [("Canary1", "promote"), ("Canary1", "rollback")]
    wait_for("traffic on stable", lambda: w.route_weights("flap") == (100, 0), timeout=15)
    # The rollback scales the canary to zero, and its pod really goes.
    wait_for("the canary's pods gone", lambda: not pods_of(w, "flap", "canary") and not kubectl_json(
        w.kubeconfig, "get", "pods", "-n", w.ns, "-l", "launchgate.dev/role=canary")["items"], timeout=30)
    wait_for("no canary endpoint", lambda: endpoint_ready(w, "flap-canary", ip) is None, timeout=15)
    assert len(pods_of(w, "flap", "stable")) == 4


def test_deleting_a_rollout_garbage_collects_everything_it_owned(world: World) -> None:
    """The operator puts no finalizer on a rollout; its owner references are what clean up: the
    real garbage collector deletes the Deployments, Services, replay Job and ConfigMaps the rollout
    owned, and through them the ReplicaSets, pods and EndpointSlices. The timeline is not owned:
    its DecisionRecords outlive the rollout (an audit trail a GitOps prune must not take)."""
    w = world
    w.start_operator()
    replay = {"template": {"metadata": {"annotations": {RUN_FOR: "1h"}},  # the suite is still running
                           "spec": {"containers": [{"name": "replay", "image": "agent-replay:1"}]}}}
    given_a_stable_rollout(w, "owned", phases=[
        {"name": "ReplayGate", "weight": 0, "gates": ["canary1"], "replay": replay},
        {"name": "Canary1", "weight": 5, "gates": ["canary1"]}])
    when_a_new_revision_is_applied(w, "owned")
    selector = "launchgate.dev/rollout=owned"
    kinds = "deployments,replicasets,pods,services,jobs,configmaps,decisionrecords"

    def inventory() -> dict[str, int]:
        items = kubectl_json(w.kubeconfig, "get", kinds, "-n", w.ns, "-l", selector)["items"]
        slices = kubectl_json(w.kubeconfig, "get", "endpointslices", "-n", w.ns)["items"]
        counts: dict[str, int] = {}
        for i in items:
            counts[i["kind"]] = counts.get(i["kind"], 0) + 1
        owned_slices = [s for s in slices if s["metadata"]["labels"].get(
            "kubernetes.io/service-name", "").startswith("owned-")]
        if owned_slices:
            counts["EndpointSlice"] = len(owned_slices)
        return counts

    def all_there() -> dict[str, int] | None:
        counts = inventory()
        job_pods = [p for p in kubectl_json(w.kubeconfig, "get", "pods", "-n", w.ns, "-l", selector)["items"]
                    if p["metadata"]["ownerReferences"][0]["kind"] == "Job" and p["status"].get("phase") == "Running"]
        want = {"Deployment": 2, "ReplicaSet": 2, "Service": 2, "Job": 1, "DecisionRecord": 1, "EndpointSlice": 2}
        return counts if job_pods and all(counts.get(k, 0) >= n for k, n in want.items()) else None

    before = wait_for("the rollout's objects, the replay Job's pod running", all_there, timeout=60)
    assert before["Pod"] == 4 + 1 + 1 and before["ConfigMap"] >= 1, before  # stable, canary, replay
    kubectl(w.kubeconfig, "delete", "agentrollout", "owned", "-n", w.ns, "--wait=false")
    left: dict[str, int] = {}

    def gone() -> bool:
        left.clear()
        left.update({kind: n for kind, n in inventory().items() if kind != "DecisionRecord"})
        return not left

    try:
        wait_for("everything the rollout owned gone", gone, timeout=90)
    except AssertionError as e:
        raise AssertionError(f"{e}; still there: {left}") from None
    assert inventory().get("DecisionRecord", 0) >= before["DecisionRecord"]


def hpa(name: str, min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout", "name": name},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]}}


def test_an_hpa_scales_the_rollout_and_the_operator_sizes_stable_and_canary_from_it(world: World) -> None:
    """Who owns replicas: the AgentRollout's spec.replicas, which an HPA scales through the
    rollout's scale subresource; the operator sizes both Deployments from it and keeps them there
    (an HPA aimed at a Deployment would be set back). The real HPA controller runs here but no
    metrics API does (kwok's pods use no CPU), so the HPA is driven by its bounds, which it
    enforces without metrics: minReplicas above the current count, then maxReplicas below it.
    A metric-driven change reaches spec.replicas the same way, through /scale."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "scaled", phases=[
        {"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
        {"name": "Canary1", "weight": 25, "gates": ["canary1"], "minDuration": "1h"}])
    scale = kubectl_json(w.kubeconfig, "get", "agentrollout", "scaled", "-n", w.ns, "--subresource=scale")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (4, 4), scale
    assert scale["status"]["selector"] == "launchgate.dev/rollout=scaled"
    rev2 = when_a_new_revision_is_applied(w, "scaled")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("scaled", "Canary1 at 25%", lambda s: s.get("phase") == "Canary1" and s.get("trafficWeight") == 25,
                  timeout=60)
    assert (w.replicas("scaled-stable"), w.replicas("scaled-canary")) == (4, 1)
    generation = w.get("agentrollout", "scaled")["metadata"]["generation"]

    w.apply(hpa("scaled", 8, 12))
    wait_for("the HPA to scale the rollout to its minimum", lambda: w.get("agentrollout", "scaled")["spec"][
        "replicas"] == 8, timeout=60)
    # The operator sizes both from it: 8 stable, and 25% of 8 for the canary, each with ready pods.
    wait_for("8 stable and 2 canary pods ready", lambda: (w.replicas("scaled-stable"), w.replicas("scaled-canary"))
             == (8, 2) and len(pods_of(w, "scaled", "stable")) == 8 and len(pods_of(w, "scaled", "canary")) == 2,
             timeout=60)
    st = w.wait_status("scaled", "the canary's second pod available", lambda s: s.get("replicas") == 8 and
                       "waiting for the canary's pods" not in (s.get("message") or ""), timeout=30)
    assert (st["phase"], st["trafficWeight"], st["canaryRevision"]) == ("Canary1", 25, rev2), st
    events = kubectl_json(w.kubeconfig, "get", "events", "-n", w.ns, "--field-selector",
                          "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale")["items"]
    assert any("below Spec.MinReplicas" in e["message"] for e in events), events
    # No fight: through more than one HPA sync (15 s), neither moves the other's numbers.
    stable_gen = w.get("deployment", "scaled-stable")["metadata"]["generation"]
    time.sleep(20)
    assert w.get("agentrollout", "scaled")["metadata"]["generation"] == generation + 1  # the HPA's one write
    assert w.get("deployment", "scaled-stable")["metadata"]["generation"] == stable_gen
    assert (w.replicas("scaled-stable"), w.replicas("scaled-canary")) == (8, 2)

    # Bounds lowered below the current count: the HPA scales the rollout down, and the pods go.
    kubectl(w.kubeconfig, "patch", "hpa", "scaled", "-n", w.ns, "--type=merge", "-p",
            '{"spec": {"minReplicas": 2, "maxReplicas": 6}}')
    wait_for("6 stable pods, 2 canary", lambda: (w.replicas("scaled-stable"), w.replicas("scaled-canary")) == (6, 2)
             and len(pods_of(w, "scaled", "stable")) == 6, timeout=60)
    assert w.status("scaled")["phase"] == "Canary1"
