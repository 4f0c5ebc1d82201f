"""Approvals and human actions: identity from the API server, hash-bound, through the kubectl plugin."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import CANARY1_BLOCKERS, ROOT, World, rollout_obj, wait_for
from kubectl_util import kubectl
from launchgate_dev.devenv import UNREADY
from test_rollout_e2e import given_a_stable_rollout, when_a_new_revision_is_applied

APPROVAL_PHASES = [
    {"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
    {"name": "Canary1", "weight": 5, "gates": ["canary1"]},
    {"name": "General", "weights": [50, 100], "gates": ["canary1"],
     "approval": {"approvers": 2, "group": "reliability-reviewers", "owner": "reliability"}},
]


@pytest.fixture(scope="module")
def admission(kubeconfig: Path) -> None:
    """The shipped admission policies and roles; mallory may create approvals by RBAC but is no reviewer."""
    for name in ("admission.yaml", "user-roles.yaml"):
        kubectl(kubeconfig, "apply", "-f", str(ROOT / "manifests" / "base" / name))
    for user_or_group, kind, role in (("reliability-reviewers", "Group", "launchgate-approver"),
                                      ("ai-governance", "Group", "launchgate-approver"),
                                      ("mallory", "User", "launchgate-approver"),
                                      ("carol", "User", "launchgate-release-manager")):
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": f"test-{user_or_group}-{role}"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": [{"kind": kind, "name": user_or_group, "apiGroup": "rbac.authorization.k8s.io"}]}
        kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(binding))


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path, admission: None):
    w = World(kubeconfig, prometheus, f"appr-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


def plugin(w: World, user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl launchgate ...` as that user: kubectl finds the installed plugin on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "KUBECONFIG": str(w.kubeconfig), "COLUMNS": "200"}
    # `-n` after the verb, as kubectl users type it (the demo passes it before the verb).
    proc = subprocess.run(["kubectl", "launchgate", "--context", user, *args, "-n", w.ns], env=env,
                          capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl launchgate {' '.join(args)} as {user}: {proc.stdout}{proc.stderr}")
    return proc


def awaiting(w: World, name: str) -> dict[str, Any]:
    return w.wait_status(name, "the approval request", lambda s: s.get("state") == "AwaitingApproval", timeout=90)


def test_general_waits_for_two_distinct_reviewers_then_promotes(world: World) -> None:
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "appr", phases=APPROVAL_PHASES)
    rev2 = when_a_new_revision_is_applied(w, "appr")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    st = awaiting(w, "appr")
    req = st["pendingApproval"]
    assert (req["phase"], req["approversRequired"], req["group"], req["revision"]) == (
        "General", 2, "reliability-reviewers", rev2)
    assert st["canaryWeight"] == 50

    shown = plugin(w, "admin", "status", "appr").stdout
    for fragment in ("General", "stable 50%", "canary 50%", "workflow_success_rate", "p95_latency_ms",
                     req["requestId"], "0/2"):
        assert fragment in shown, shown

    plugin(w, "alice", "approve", "appr", "-m", "dashboards look good")
    plugin(w, "alice", "approve", "appr")  # the same person twice is still one approver
    w.wait_status("appr", "alice's approval counted",
                  lambda s: (s.get("pendingApproval") or {}).get("approvedBy") == ["alice"])
    threading_wait(3)
    assert w.status("appr")["state"] == "AwaitingApproval"
    plugin(w, "bob", "approve", "appr")
    st = w.wait_status("appr", "completion", lambda s: s.get("phase") == "Completed", timeout=60)
    assert st["state"] == "Healthy" and st["stableRevision"] == rev2
    actors = {(r["kind"], r["actor"]) for r in w.records("appr")}
    assert {("approval", "alice"), ("approval", "bob"), ("approval-request", "launchgate-operator")} <= actors


def test_an_approval_older_than_expires_after_no_longer_counts(world: World) -> None:
    w = world
    w.start_operator()
    phases = [*APPROVAL_PHASES[:2], {**APPROVAL_PHASES[2], "approval": {
        **APPROVAL_PHASES[2]["approval"], "expiresAfter": "6s"}}]
    given_a_stable_rollout(w, "expiry", phases=phases)
    rev2 = when_a_new_revision_is_applied(w, "expiry")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    awaiting(w, "expiry")
    plugin(w, "alice", "approve", "expiry")
    w.wait_status("expiry", "alice's approval counted",
                  lambda s: (s.get("pendingApproval") or {}).get("approvedBy") == ["alice"])
    # Nobody else approves within 6 s: alice's approval lapses and the request is back at 0/2.
    st = w.wait_status("expiry", "alice's approval expired",
                       lambda s: (s.get("pendingApproval") or {}).get("approvedBy", []) == [], timeout=60)
    assert st["state"] == "AwaitingApproval" and st["canaryWeight"] == 50
    plugin(w, "bob", "approve", "expiry")
    st = w.wait_status("expiry", "bob counted",
                       lambda s: (s.get("pendingApproval") or {}).get("approvedBy") == ["bob"])
    assert st["state"] == "AwaitingApproval"  # one fresh approval of two
    plugin(w, "alice", "approve", "expiry")  # approving again renews hers
    st = w.wait_status("expiry", "completion", lambda s: s.get("phase") == "Completed", timeout=60)
    assert st["stableRevision"] == rev2


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


def test_an_approval_given_before_the_template_changed_does_not_count(world: World) -> None:
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "stale", phases=APPROVAL_PHASES)
    rev2 = when_a_new_revision_is_applied(w, "stale")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    old = awaiting(w, "stale")["pendingApproval"]
    plugin(w, "alice", "approve", "stale")
    # The canary template changes before the second approval: a new revision, a new request.
    kubectl(w.kubeconfig, "patch", "agentrollout", "stale", "-n", w.ns, "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "agent:3"}]))
    st = w.wait_status("stale", "the new revision", lambda s: s.get("canaryRevision") not in (None, rev2))
    rev3 = st["canaryRevision"]
    w.agent(rev3, success_rate=0.995, p95_ms=1000)
    new = awaiting(w, "stale")["pendingApproval"]
    assert new["requestId"] != old["requestId"] and new["revision"] == rev3
    assert new.get("approvedBy", []) == []
    # A vote that names the old request is ignored even from a reviewer.
    plugin(w, "bob", "approve", "stale")
    st = w.wait_status("stale", "bob counted", lambda s: (s.get("pendingApproval") or {}).get("approvedBy") == ["bob"])
    assert st["state"] == "AwaitingApproval"


@pytest.mark.parametrize("act", ["approve", "abort"])
def test_an_approval_or_action_is_acted_on_at_once_not_at_the_next_interval(world: World, act: str) -> None:
    """Once the rollout waits for people, its interval is made an hour: only the operator's watch
    on Approvals and RolloutActions can make the next pass come within the test's time."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "slow", phases=APPROVAL_PHASES)
    rev2 = when_a_new_revision_is_applied(w, "slow")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    awaiting(w, "slow")
    kubectl(w.kubeconfig, "patch", "agentrollout", "slow", "-n", w.ns, "--type=merge", "-p",
            '{"spec": {"interval": "1h"}}')
    generation = w.get("agentrollout", "slow")["metadata"]["generation"]
    w.wait_status("slow", "the pass after the edit (the last before an hour)",
                  lambda s: s.get("observedGeneration") == generation)
    if act == "approve":
        plugin(w, "alice", "approve", "slow")
        w.wait_status("slow", "alice's approval counted at once",
                      lambda s: (s.get("pendingApproval") or {}).get("approvedBy") == ["alice"], timeout=20)
        plugin(w, "bob", "approve", "slow")
        st = w.wait_status("slow", "the approved promotion at once",
                           lambda s: s.get("state") != "AwaitingApproval", timeout=20)
        assert st["state"] in ("Progressing", "Healthy"), st
    else:
        plugin(w, "carol", "abort", "slow")
        st = w.wait_status("slow", "the abort at once",
                           lambda s: (s.get("lastAction") or {}).get("action") == "abort", timeout=20)
        assert st["state"] in ("RollingBack", "Degraded") and "carol" in st["message"], st


def _approval(w: World, approver: str, group: str = "reliability-reviewers") -> str:
    return yaml.safe_dump({
        "apiVersion": "launchgate.dev/v1alpha1", "kind": "Approval",
        "metadata": {"generateName": "forge-", "namespace": w.ns},
        "spec": {"rollout": "x", "requestId": "req-1", "revision": "r", "gatesHash": "g", "decision": "approve",
                 "approver": approver, "group": group},
    })


def test_forged_outsider_and_edited_approvals_are_refused_by_the_api_server(world: World) -> None:
    w = world

    def forged_refused() -> bool:
        p = kubectl(w.kubeconfig, "create", "-f", "-", stdin=_approval(w, "bob"), user="alice", check=False)
        return p.returncode != 0 and "spec.approver must be the requesting user (alice)" in p.stderr

    wait_for("the admission policy to be active", forged_refused, timeout=30, every=0.5)
    outsider = kubectl(w.kubeconfig, "create", "-f", "-", stdin=_approval(w, "mallory"), user="mallory", check=False)
    assert outsider.returncode != 0 and "not a member of group reliability-reviewers" in outsider.stderr
    ok = kubectl(w.kubeconfig, "create", "-f", "-", "-o", "name", stdin=_approval(w, "alice"), user="alice")
    name = ok.stdout.strip().split("/")[-1]
    edit = kubectl(w.kubeconfig, "patch", "approvals.launchgate.dev", name, "-n", w.ns, "--type=merge",
                   "-p", '{"spec": {"decision": "reject"}}', check=False)
    assert edit.returncode != 0 and ("immutable" in edit.stderr), edit.stderr
    act = yaml.safe_dump({"apiVersion": "launchgate.dev/v1alpha1", "kind": "RolloutAction",
                          "metadata": {"generateName": "forge-", "namespace": w.ns},
                          "spec": {"rollout": "x", "action": "abort", "actor": "alice"}})
    forged_action = kubectl(w.kubeconfig, "create", "-f", "-", stdin=act, user="carol", check=False)
    assert forged_action.returncode != 0 and "spec.actor must be the requesting user (carol)" in forged_action.stderr


def test_abort_and_retry_through_the_plugin_are_recorded_with_the_user(world: World) -> None:
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "act", phases=[{**p, "minDuration": "1h"} if p["name"] == "Canary1" else p
                                            for p in APPROVAL_PHASES])
    rev2 = when_a_new_revision_is_applied(w, "act")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("act", "Canary1", lambda s: s.get("phase") == "Canary1")
    plugin(w, "carol", "abort", "act", "-m", "bad vibes are not a gate, but carol is accountable")
    st = w.wait_status("act", "the abort", lambda s: s.get("state") == "Degraded")
    assert "carol" in st["message"]
    wait_for("traffic back on stable", lambda: w.route_weights("act") == (100, 0), timeout=15)
    assert st["lastAction"]["actor"] == "carol" and st["lastAction"]["action"] == "abort"
    plugin(w, "carol", "retry", "act")
    # The retry starts again from ReplayGate; Canary1's minimum duration of 1h then holds it.
    st = w.wait_status("act", "the retry to reach Canary1",
                       lambda s: s.get("state") == "Progressing" and s.get("phase") == "Canary1"
                       and (s.get("lastAction") or {}).get("action") == "retry")
    assert st["lastAction"]["outcome"] == "retry requested by carol"
    # Sent right away, the promote is often created in the retry's second: it must not be lost.
    plugin(w, "carol", "promote", "act")
    w.wait_status("act", "the forced promotion", lambda s: s.get("phase") == "General")
    by_carol = [(r["kind"], r.get("decision")) for r in w.records("act") if r["actor"] == "carol"]
    assert by_carol == [("decision", "rollback"), ("action", None), ("decision", "promote")]


def test_policy_bundle_is_validated_and_delivered_as_a_versioned_configmap(world: World) -> None:
    w = world
    bad = rollout_obj("pol", "agent:1", APPROVAL_PHASES)
    bad["spec"]["policy"] = {"bundle": {"rules": [
        {"id": "allow-read-only", "match": {"topic": "job.repo.read"}, "decision": "ALLOW"},
        {"id": "constrain-external-egress", "match": {"topic": "job.integrations.call"},
         "decision": "ALLOW_WITH_CONSTRAINTS"},
    ]}}
    bad["metadata"]["namespace"] = w.ns
    proc = kubectl(w.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert proc.returncode != 0
    assert "spec.policy.bundle.rules[1].constraints" in proc.stderr and "constrain-external-egress" in proc.stderr
    typo = json.loads(json.dumps(bad))
    typo["spec"]["policy"]["bundle"]["rules"][1]["decision"] = "ALLOW_MAYBE"
    proc = kubectl(w.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(typo), check=False)
    assert proc.returncode != 0
    assert "spec.policy.bundle.rules[1].decision" in proc.stderr and "constrain-external-egress" in proc.stderr

    good = json.loads(json.dumps(bad))
    good["spec"]["policy"]["bundle"]["rules"][1]["constraints"] = {"allowed_hosts": ["api.github.com"]}
    w.start_operator()
    w.http_route("pol")
    w.apply(good)
    st = w.wait_status("pol", "stable", lambda s: s.get("state") == "Healthy")
    wait_for("the stable Deployment", lambda: w.replicas("pol-stable") is not None, timeout=15)
    cms = [c for c in json.loads(kubectl(w.kubeconfig, "get", "configmaps", "-n", w.ns, "-o", "json").stdout)["items"]
           if c["metadata"]["name"].startswith("pol-policy-")]
    assert len(cms) == 1 and "constrain-external-egress" in cms[0]["data"]["policy.yaml"]
    dep = w.get("deployment", "pol-stable")
    vols = dep["spec"]["template"]["spec"]["volumes"]
    assert vols[0]["configMap"]["name"] == cms[0]["metadata"]["name"]
    # Changing only the policy is a new revision: it goes through the phases like a new image.
    good["spec"]["policy"]["bundle"]["rules"][0]["decision"] = "REQUIRE_APPROVAL"
    w.apply(good)
    st2 = w.wait_status("pol", "a rollout for the policy change", lambda s: s.get("canaryRevision") is not None)
    assert st2["canaryRevision"] != st["stableRevision"] and st2["phase"] == "ReplayGate"


def test_the_operator_identity_can_write_status_but_never_a_spec(world: World) -> None:
    w = world

    def refused() -> bool:
        p = kubectl(w.kubeconfig, "patch", "launchgates", "canary1", "-n", w.ns, "--type=merge",
                    "-p", '{"spec": {"window": "1m"}}', user="launchgate-operator", check=False)
        return p.returncode != 0 and "writes status only, never spec" in p.stderr

    from harness import operator_kubeconfig

    operator_kubeconfig(w.kubeconfig, w.workdir)  # binds the shipped RBAC to the operator's user
    wait_for("the status-only policy", refused, timeout=30, every=0.5)
    ok = kubectl(w.kubeconfig, "patch", "launchgates", "canary1", "-n", w.ns, "--subresource=status",
                 "--type=merge", "-p", '{"status": {"decision": "hold"}}', user="launchgate-operator", check=False)
    assert ok.returncode == 0, ok.stderr
    label = kubectl(w.kubeconfig, "patch", "launchgates", "canary1", "-n", w.ns, "--type=merge",
                    "-p", '{"metadata": {"finalizers": ["launchgate.dev/finalizer"]}}', user="launchgate-operator",
                    check=False)
    assert label.returncode == 0, label.stderr
    kubectl(w.kubeconfig, "patch", "launchgates", "canary1", "-n", w.ns, "--type=merge",
            "-p", '{"metadata": {"finalizers": null}}')


def test_an_abort_while_finalizing_is_refused_in_status_and_the_rollout_completes(world: World) -> None:
    """The test says when pods are ready (devenv.UNREADY on the template keeps kwok from marking
    them ready until `pods_come_up`), to hold the rollout in Finalizing."""
    w = world
    w.start_operator()
    given_a_stable_rollout(w, "late", pod_annotations={UNREADY: "true"}, availabilityDeadline="1h",
                           phases=[{"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
                                   {"name": "General", "weight": 100, "gates": ["canary1"]}])
    rev2 = when_a_new_revision_is_applied(w, "late")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.pods_come_up("late-canary")
    w.wait_status("late", "General to wait for its pods", lambda s: s.get("canaryWeight") == 100)
    wait_for("the canary scaled up", lambda: w.replicas("late-canary") == 4, timeout=15)
    w.pods_come_up("late-canary")
    w.wait_status("late", "the stable Deployment to be rolling out", lambda s: s.get("phase") == "Finalizing"
                  and "waiting for Deployment late-stable" in (s.get("message") or ""))
    plugin(w, "carol", "abort", "late", "-m", "too late")
    st = w.wait_status("late", "the abort's outcome", lambda s: (s.get("lastAction") or {}).get("action") == "abort")
    assert st["lastAction"]["outcome"].startswith(f"not applied: {rev2} already passed every phase"), st
    assert st["phase"] == "Finalizing" and st["state"] == "Progressing" and w.route_weights("late") == (0, 100)
    refusal = [r for r in w.records("late") if r["kind"] == "action" and r.get("actor") == "carol"]
    assert len(refusal) == 1 and "abort not applied" in refusal[0]["reason"], refusal
    w.pods_come_up("late-stable")
    st = w.wait_status("late", "the rollout to complete", lambda s: s.get("phase") == "Completed")
    assert st["stableRevision"] == rev2
    wait_for("traffic back on stable", lambda: w.route_weights("late") == (100, 0), timeout=15)
