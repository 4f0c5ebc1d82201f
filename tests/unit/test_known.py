"""kube.Known: what the operator may skip reading. Getting this wrong means acting on a world that
someone else has changed (a GitOps tool resetting weights), so each rule has a row."""

from __future__ import annotations

import pytest

from launchgate.kube import ABSENT, DeploymentState, Known


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def steps(known: Known, clock: Clock, script: list[tuple]) -> object:
    for step in script:
        op, *args = step
        if op == "put":
            known.put("deployments", "ns", "d", *args)
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
    ([("put", "5", A), ("wait", 200.0), ("watch", "5", A, False), ("wait", 200.0)], None),  # an echo does not
])
def test_known(script: list[tuple], expected: object) -> None:
    clock = Clock()
    assert steps(Known(resync=300.0, clock=clock), clock, script) == expected


@pytest.mark.parametrize("body,state", [
    ({"metadata": {"annotations": {"launchgate.dev/revision": "abc"}}, "spec": {"replicas": 3}},
     DeploymentState(3, "abc")),
    ({"metadata": {}, "spec": {}}, DeploymentState(None, None)),
    ({}, DeploymentState(None, None)),
])
def test_deployment_state(body: dict, state: DeploymentState) -> None:
    assert DeploymentState.of(body) == state
