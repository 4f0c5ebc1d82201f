"""kube.Known: what the operator may skip reading. Getting this wrong means acting on a world that
someone else has changed (a GitOps tool resetting weights), so each rule has a row."""

from __future__ import annotations

import pytest

from launchgate.adapters.kube import ABSENT, DeploymentState, Known


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def steps(known: Known, clock: Clock, script: list[tuple]) -> object:
    since = None
    for step in script:
        op, *args = step
        if op == "put":
            known.put("deployments", "ns", "d", *args)
        elif op == "read begins":
            since = known.now()
        elif op == "read answered":
            known.put("deployments", "ns", "d", *args, read_since=since)
        elif op == "watch another":
            known.watched("deployments", "ns", "other", "1", A, False)
        elif op == "watch":
            rv, value, deleted = args
            known.watched("deployments", "ns", "d", rv, value, deleted)
        elif op == "forget":
            known.forget("deployments", "ns", "d")
        elif op == "wait":
            clock.t += args[0]
    return known.get("deployments", "ns", "d")


A, B = DeploymentState(2, "r1"), DeploymentState(0, "r1")


@pytest.mark.parametrize("script,expected", [
    ([], None),                                                      # never seen: read it
    ([("put", "5", A)], A),                                          # own read or write
    ([("put", None, ABSENT)], ABSENT),                               # a 404 is knowledge too
    ([("put", "5", A), ("watch", "5", B, False)], A),                # own write coming back: no change
    ([("put", "5", A), ("watch", "6", B, False)], B),                # someone else's change wins
    ([("watch", "6", B, False)], B),                                 # first seen through the watch
    ([("put", "5", A), ("watch", "5", A, True)], ABSENT),            # deleted
    ([("put", None, ABSENT), ("watch", "7", A, False)], A),          # created by someone else
    ([("put", "5", A), ("forget",)], None),                          # after a failed write: read again
    ([("put", "5", A), ("wait", 299.0)], A),
    ([("put", "5", A), ("wait", 300.0)], None),                      # resync: a missed event cannot last
    ([("put", "5", A), ("wait", 200.0), ("watch", "6", B, False), ("wait", 200.0)], B),  # the watch refreshes
    # Once the watch has shown the held version, it works for this object: the long resync applies.
    ([("put", "5", A), ("watch", "5", A, False), ("wait", 3599.0)], A),
    ([("put", "5", A), ("watch", "5", A, False), ("wait", 3600.0)], None),  # still re-read, seldom
    ([("put", "5", A), ("wait", 200.0), ("watch", "5", A, False), ("wait", 3599.0)], A),  # an echo refreshes
    ([("watch", "6", B, False), ("wait", 3599.0)], B),
    ([("put", "5", A), ("watch", "5", A, True), ("wait", 3599.0)], ABSENT),
    # The event beat the write's response: the same version stays confirmed...
    ([("watch", "5", A, False), ("put", "5", A), ("wait", 3599.0)], A),
    # ...but an own write of a newer version waits for its own echo.
    ([("watch", "5", A, False), ("put", "6", B), ("wait", 300.0)], None),
    ([("watch", "5", A, False), ("put", "6", B), ("watch", "6", B, False), ("wait", 3599.0)], B),
    ([("watch", "5", A, False), ("forget",)], None),
    ([("put", None, ABSENT), ("wait", 300.0)], None),           # a 404 read with no watch seen: short...
    # ...but once the kind's watch has delivered anything, a creation would be reported: trust it long.
    ([("watch", "5", A, False), ("put", None, ABSENT), ("wait", 3599.0)], ABSENT),
    ([("watch another",), ("put", None, ABSENT), ("wait", 3599.0)], ABSENT),
    ([("watch another",), ("put", None, ABSENT), ("wait", 3600.0)], None),
    ([("watch another",), ("put", "5", A), ("wait", 300.0)], None),   # a present object needs its own echo
    # A change the watch reported while a read was in flight wins over the read's answer.
    ([("read begins",), ("watch", "6", B, False), ("read answered", "5", A)], B),
    ([("read begins",), ("watch", "6", B, False), ("read answered", None, ABSENT)], B),
    ([("read begins",), ("watch", "6", B, True), ("read answered", "5", A)], ABSENT),
    ([("watch", "6", B, False), ("wait", 1.0), ("read begins",), ("read answered", "7", A)], A),  # older event
    ([("read begins",), ("watch", "6", B, False), ("read answered", "6", B), ("wait", 3599.0)], B),  # same: confirmed
    # A write ("read begins/answered" here) whose echo and a controller's status update both came
    # through the watch before its response was handled: the newer event wins, not the response.
    ([("read begins",), ("watch", "5", A, False), ("watch", "6", B, False), ("read answered", "5", A)], B),
])
def test_known(script: list[tuple], expected: object) -> None:
    clock = Clock()
    assert steps(Known(resync=300.0, confirmed_resync=3600.0, clock=clock), clock, script) == expected


def test_spread_keeps_expiries_of_objects_made_together_apart() -> None:
    """Rollouts created in one burst must not all be re-read in the same second an hour later."""
    clock = Clock()
    known = Known(resync=300.0, confirmed_resync=3600.0, spread=0.25, clock=clock)
    names = [f"d{i}" for i in range(1000)]
    for n in names:
        known.watched("deployments", "ns", n, "1", A, False)
    expired_at = {}
    for t in range(2700, 3601, 10):
        clock.t = 1000.0 + t
        for n in names:
            if n not in expired_at and known.get("deployments", "ns", n) is None:
                expired_at[n] = t
    assert len(expired_at) == len(names)                        # all are re-read within the interval
    assert min(expired_at.values()) >= 2700                     # none before 75% of it
    per_minute = [sum(1 for t in expired_at.values() if m * 60 <= t < (m + 1) * 60) for m in range(45, 61)]
    assert max(per_minute) < len(names) / 10                     # no minute takes a tenth of them


def test_confirmed_resync_is_never_shorter() -> None:
    assert Known(resync=300.0, confirmed_resync=60.0).confirmed_resync == 300.0


@pytest.mark.parametrize("body,state", [
    ({"metadata": {"annotations": {"launchgate.dev/revision": "abc"}}, "spec": {"replicas": 3}},
     DeploymentState(3, "abc")),
    ({"metadata": {}, "spec": {}}, DeploymentState(None, None)),
    ({}, DeploymentState(None, None)),
])
def test_deployment_state(body: dict, state: DeploymentState) -> None:
    assert DeploymentState.of(body) == state


def _dep(gen: int | None, observed: int | None, replicas: int, updated: int, available: int,
         total: int | None = None) -> dict:
    return {"metadata": {"generation": gen, "annotations": {"launchgate.dev/revision": "abc"}},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available,
                       "replicas": updated if total is None else total}}


@pytest.mark.parametrize("body,rolled_out", [
    (_dep(2, 2, 3, 3, 3), True),
    (_dep(2, 1, 3, 3, 3), False),          # the controller has not seen the latest spec yet
    (_dep(2, 2, 3, 3, 2), False),          # one pod not available
    (_dep(2, 2, 3, 2, 3), False),          # one pod still of the old template
    (_dep(2, 2, 3, 3, 3, total=4), False),  # an old pod is still there
    (_dep(3, 3, 0, 0, 0), True),            # scaled to zero is done when no pod is left
    (_dep(3, 3, 0, 2, 2), False),           # the spec is observed, its two pods not yet deleted
    (_dep(3, 3, 2, 4, 4), False),           # the same, scaled from 4 to 2
    ({"metadata": {"generation": 1, "annotations": {"launchgate.dev/revision": "abc"}}, "spec": {"replicas": 1}},
     False),  # no status at all yet
], ids=["done", "unobserved", "unavailable", "not-updated", "old-pod-left", "zero", "zero-pods-left",
        "scaled-down-pods-left", "no-status"])
def test_a_deployment_is_rolled_out_when_kubectl_rollout_status_would_say_so(body: dict, rolled_out: bool) -> None:
    state = DeploymentState.of(body)
    assert state.rolled_out is rolled_out
    # Status is what the controller reports; the operator patches only for the fields it drives.
    assert state == DeploymentState(body["spec"]["replicas"], "abc")


# Statuses as kube-controller-manager v1.32 wrote them on the local cluster (timestamps left out):
# a ResourceQuota refusing the pod, and a pod never ready past progressDeadlineSeconds.
QUOTA_REFUSED = {
    "metadata": {"generation": 1, "annotations": {"launchgate.dev/revision": "abc"}},
    "spec": {"replicas": 1},
    "status": {"observedGeneration": 1, "unavailableReplicas": 1, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
         "message": 'Created new replica set "refused-7846bd767d"'},
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
         "message": "Deployment does not have minimum availability."},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": 'pods "refused-7846bd767d-bztlr" is forbidden: exceeded quota: q, requested: pods=1, '
                    "used: pods=1, limited: pods=1"}]},
}
DEADLINE_PASSED = {
    "metadata": {"generation": 1, "annotations": {"launchgate.dev/revision": "abc"}},
    "spec": {"replicas": 1},
    "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
               "conditions": [
                   {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability."},
                   {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "late-7dd56c4ccf" has timed out progressing.'}]},
}


def test_why_the_controller_cannot_bring_pods_up_is_in_the_description() -> None:
    refused = DeploymentState.of(QUOTA_REFUSED)
    assert not refused.rolled_out
    assert refused.describe() == ('0/1 available, 0 updated; FailedCreate: pods "refused-7846bd767d-bztlr" is '
                                  "forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1")
    late = DeploymentState.of(DEADLINE_PASSED)
    assert late.describe() == ('0/1 available, 1 updated; ProgressDeadlineExceeded: ReplicaSet "late-7dd56c4ccf" '
                               "has timed out progressing.")
    # A healthy Deployment's conditions add nothing, and neither does a stale failure once rolled out.
    assert DeploymentState.of(_dep(2, 2, 3, 3, 3)).describe() == "3/3 available, 3 updated"
    recovered = {**QUOTA_REFUSED, "status": {**QUOTA_REFUSED["status"], "replicas": 1, "updatedReplicas": 1,
                                             "availableReplicas": 1}}
    assert DeploymentState.of(recovered).describe() == "1/1 available, 1 updated"
    # The problem is reported, never compared: pods coming or going are no reason to patch.
    assert refused == DeploymentState(1, "abc")
