"""The Kubernetes adapter's request economy, against a real API server: at 10,000 rollouts every
request a pass makes is 10,000 requests a window, so what the adapter promises not to repeat is
checked here by counting the requests that really leave the process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubectl_util import kubectl, kubectl_json
from launchgate.kube import Kube, load_config


class CountingApiClient(client.ApiClient):
    """The real client, counting (method, path) of each request it sends."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self.sent: list[tuple[str, str]] = []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((method, url))
        return super().call_api(method, url, *args, **kwargs)


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[str]:
    name = f"adapter-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false")


def _counting(kubeconfig: Path) -> CountingApiClient:
    return CountingApiClient(load_config(str(kubeconfig)).configuration)


def _policy(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"policy.yaml": "allow: [search]\n"}}


def test_a_policy_configmap_is_created_once_and_not_read_again(kubeconfig: Path, namespace: str) -> None:
    api = _counting(kubeconfig)
    kube = Kube(api)
    kube.ensure_configmap(namespace, _policy("agent-policy-abc123"))
    assert kubectl_json(kubeconfig, "-n", namespace, "get", "configmap", "agent-policy-abc123")["data"] == {
        "policy.yaml": "allow: [search]\n"}
    assert [m for m, _ in api.sent] == ["GET", "POST"]
    assert kube.writes == 1

    for _ in range(5):  # later passes
        kube.ensure_configmap(namespace, _policy("agent-policy-abc123"))
    assert len(api.sent) == 2

    # A restarted operator reads it once and does not write.
    api2 = _counting(kubeconfig)
    kube2 = Kube(api2)
    kube2.ensure_configmap(namespace, _policy("agent-policy-abc123"))
    kube2.ensure_configmap(namespace, _policy("agent-policy-abc123"))
    assert [m for m, _ in api2.sent] == ["GET"]
    assert kube2.writes == 0


def test_an_owned_configmap_is_read_once_per_version(kubeconfig: Path, namespace: str) -> None:
    api = _counting(kubeconfig)
    kube = Kube(api)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-stable-template"},
            "data": {"revision": "r1"}}
    kube.keep_configmap(namespace, body, version="r1")
    kube.keep_configmap(namespace, body, version="r1")
    assert [m for m, _ in api.sent] == ["GET", "POST"]

    changed = {**body, "data": {"revision": "r2"}}
    kube.keep_configmap(namespace, changed, version="r2")
    kube.keep_configmap(namespace, changed, version="r2")
    assert [m for m, _ in api.sent] == ["GET", "POST", "GET", "PATCH"]
    assert kubectl_json(kubeconfig, "-n", namespace, "get", "configmap", "web-stable-template")["data"] == {
        "revision": "r2"}
