"""The local cluster's real controllers: kube-controller-manager, kube-scheduler and kwok playing
the kubelet of fake Nodes. What launchgate is tested against must behave as a cluster does:
Deployments get ReplicaSets and pods, pods get scheduled, become ready (or not, as the kwok stages
are told) and get EndpointSlices, Jobs finish, owners' deletion collects what they owned."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from kubectl_util import kubectl, kubectl_json
from launchgate_dev import devenv

T = TypeVar("T")


def poll(what: str, fn: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.25) -> T:
    """Return fn()'s first truthy result; fail after ``timeout`` seconds with the last one."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s; last: {last!r}")
        time.sleep(interval)


@pytest.fixture
def ns(kubeconfig: Path) -> Iterator[str]:
    name = f"cluster-{random.randrange(10**6)}"
    kubectl(kubeconfig, "create", "namespace", name)
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)


def apply(kubeconfig: Path, ns: str, *objs: dict[str, Any]) -> None:
    kubectl(kubeconfig, "apply", "-n", ns, "-f", "-", stdin="\n---\n".join(yaml.safe_dump(o) for o in objs))


def deployment(name: str, replicas: int, annotations: dict[str, str] | None = None,
               **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                              "spec": {"containers": [{"name": "app", "image": "agent:1",
                                                       "ports": [{"name": "http", "containerPort": 8080}]}],
                                       **pod_spec}}},
    }


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def pods(kubeconfig: Path, ns: str, app: str) -> list[dict[str, Any]]:
    return list(kubectl_json(kubeconfig, "get", "pods", "-n", ns, "-l", f"app={app}")["items"])


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def ready_addresses(kubeconfig: Path, ns: str, service_name: str) -> list[str]:
    slices = kubectl_json(kubeconfig, "get", "endpointslices", "-n", ns,
                          "-l", f"kubernetes.io/service-name={service_name}")["items"]
    return [a for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
            for a in e["addresses"]]


def test_kubectl_lists_ready_kwok_nodes(kubeconfig: Path) -> None:
    table = kubectl(kubeconfig, "get", "nodes").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "STATUS"]
    rows = [line.split() for line in table[1:]]
    assert len(rows) >= 3 and all(r[1] == "Ready" for r in rows), table
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    for n in nodes:
        assert n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert n["status"]["allocatable"]["pods"] == devenv.NODE_CAPACITY["pods"]
        assert not [t for t in n["spec"].get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]


def test_a_deployment_gets_ready_pods_and_an_endpointslice_within_30s(kubeconfig: Path, ns: str) -> None:
    t0 = time.monotonic()
    apply(kubeconfig, ns, deployment("web", 3), service("web"))
    addresses = poll("3 ready addresses in the Service's EndpointSlice",
                     lambda: (a := ready_addresses(kubeconfig, ns, "web")) and len(a) == 3 and a, timeout=30)
    took = time.monotonic() - t0
    running = pods(kubeconfig, ns, "web")
    assert len(running) == 3 and all(ready(p) for p in running)
    assert sorted(p["status"]["podIP"] for p in running) == sorted(addresses)
    # Scheduled by the scheduler onto kwok's Nodes, through a ReplicaSet the Deployment controller made.
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in running)
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in running} == {"ReplicaSet"}
    assert all("pod-template-hash" in p["metadata"]["labels"] for p in running)
    status = kubectl_json(kubeconfig, "get", "deployment", "web", "-n", ns)["status"]
    assert (status["readyReplicas"], status["availableReplicas"], status["updatedReplicas"]) == (3, 3, 3)
    assert took < 30
