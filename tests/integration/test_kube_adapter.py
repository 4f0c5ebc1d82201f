"""The Kubernetes adapter's request economy, against a real API server: at 10,000 rollouts every
request a pass makes is 10,000 requests a window, so what the adapter promises not to repeat is
checked here by counting the requests that really leave the process."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from kubectl_util import kubectl, kubectl_json
from launchgate.adapters.kube import Kube, StatusWriter, WriteLimiter, load_config
from launchgate.adapters.metrics import METRICS
from launchgate.api import LaunchGateSpec
from launchgate.controller.gate_status import publish_gate_status
from launchgate.core.gates import BlockerResult, GateResult


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


def _svc(name: str, owner_uid: str) -> dict[str, Any]:
    """A rollout's Service, owned by a ConfigMap that stands for the rollout: a real object, so the
    real garbage collector does not delete the Service for a missing owner mid-test."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"launchgate.dev/rollout": name.rsplit("-", 1)[0]},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": name.rsplit("-", 1)[0], "uid": owner_uid}]},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def test_a_restarted_operator_lists_the_services_once_instead_of_reading_each(kubeconfig: Path,
                                                                               namespace: str) -> None:
    """Reading each Service with its own GET, a restart among 10,000 rollouts sends 20,000 of them
    (see BENCHMARKS.md)."""
    first = Kube(_counting(kubeconfig))
    uid = {owner: first.core.create_namespaced_config_map(namespace, {"metadata": {"name": owner}}).metadata.uid
           for owner in ("a", "b", "c", "d")}
    for name in ("a-stable", "a-canary", "b-stable", "b-canary", "c-stable"):
        first.core.create_namespaced_service(namespace, _svc(name, uid[name[0]]))

    api = _counting(kubeconfig)
    kube = Kube(api)
    kube.list_page = 2  # three pages for five Services
    base = f"/api/v1/namespaces/{namespace}/services"
    for name in ("a-stable", "a-canary", "b-stable", "b-canary"):
        kube.ensure_service(namespace, _svc(name, uid[name[0]]), label="launchgate.dev/rollout")
    def sent() -> list[tuple[str, str]]:
        return [(method, urlsplit(url).path) for method, url in api.sent]

    assert sent() == [("GET", base)] * 3  # one LIST, paged; no GET of any Service
    assert "labelSelector=launchgate.dev/rollout" in api.sent[0][1] and "continue=" in api.sent[2][1]
    assert kube.writes == 0

    # c was deleted and created again (a new uid): its Service is read, not taken from the list.
    kube.ensure_service(namespace, _svc("c-stable", "uid-c2"), label="launchgate.dev/rollout")
    assert sent()[3:] == [("GET", f"{base}/c-stable")]
    # A Service nobody has made yet is created, without another LIST.
    kube.ensure_service(namespace, _svc("d-stable", uid["d"]), label="launchgate.dev/rollout")
    assert sent()[4:] == [("POST", base)] and kube.writes == 1
    assert kubectl_json(kubeconfig, "-n", namespace, "get", "service", "d-stable")["metadata"]["name"] == "d-stable"
    # Later passes send nothing.
    for name, owner in (("a-stable", uid["a"]), ("c-stable", "uid-c2"), ("d-stable", uid["d"])):
        kube.ensure_service(namespace, _svc(name, owner), label="launchgate.dev/rollout")
    assert len(api.sent) == 5


class HeldApiClient(CountingApiClient):
    """Holds each status PATCH until the test lets it through, to see what waits meanwhile."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self.entered = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PATCH" and url.endswith("/status"):
            self.entered.release()
            assert self.release.acquire(timeout=30), "the test never released the PATCH"
        return super().call_api(method, url, *args, **kwargs)


def _launchgate(kubeconfig: Path, namespace: str, name: str) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"window": "10m", "blockers": [{"name": "b1", "query": "up", "target": {"gte": 0.99}}]}}))


def test_gate_statuses_are_written_off_the_pass_latest_first_and_never_twice_at_once(
        kubeconfig: Path, namespace: str) -> None:
    """A pass hands a gate's status to the writer and goes on; statuses that arrive while one is being
    written wait as one merged patch, so the API server sees two PATCHes for three statuses."""
    _launchgate(kubeconfig, namespace, "g1")
    api = HeldApiClient(load_config(str(kubeconfig)).configuration)
    kube = Kube(api)
    kube.status_writer = writer = StatusWriter(kube, threads=3)
    try:
        kube.patch_status_soon("launchgates", namespace, "g1", {"decision": "hold", "message": "first",
                                                                "owners": {"reliability": "a"}})
        assert api.entered.acquire(timeout=10)  # the first PATCH is on its way, held
        # Returns at once although a PATCH of the same object is stuck: the pass does not wait.
        kube.patch_status_soon("launchgates", namespace, "g1", {"decision": "allow", "message": "second",
                                                                "owners": {"cost": "b"}})
        kube.patch_status_soon("launchgates", namespace, "g1", {"message": "third"})
        assert writer.pending() == 1
        assert METRICS.registry.get_sample_value("launchgate_status_writes_pending") == 1
        # Two idle threads, but g1's next patch waits for its first: writes to one object stay in order.
        assert not api.entered.acquire(timeout=1)
        api.release.release()
        assert api.entered.acquire(timeout=10)
        api.release.release()
        assert writer.flush(timeout=10)
    finally:
        writer.close(timeout=5)
    patches = [url for method, url in api.sent if method == "PATCH"]
    assert len(patches) == 2 and kube.writes == 2
    status = kubectl_json(kubeconfig, "-n", namespace, "get", "launchgates.launchgate.dev", "g1")["status"]
    assert status["decision"] == "allow" and status["message"] == "third"
    assert status["owners"] == {"reliability": "a", "cost": "b"}


def test_a_failed_status_write_is_dropped_and_the_writer_goes_on(kubeconfig: Path, namespace: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A gate deleted before its status is written (404) is nothing to report; a refused status
    (422, a value the schema refuses) is logged; neither stops the writer."""
    _launchgate(kubeconfig, namespace, "g2")
    kube = Kube(load_config(str(kubeconfig)))
    kube.status_writer = writer = StatusWriter(kube, threads=1)
    failures = METRICS.registry.get_sample_value("launchgate_status_write_failures_total")
    try:
        with caplog.at_level(logging.WARNING, logger="launchgate.kube"):
            kube.patch_status_soon("launchgates", namespace, "gone", {"message": "x"})
            kube.patch_status_soon("launchgates", namespace, "g2", {"decision": "maybe"})
            assert writer.flush(timeout=10)
            kube.patch_status_soon("launchgates", namespace, "g2", {"message": "written"})
            assert writer.flush(timeout=10)
    finally:
        writer.close(timeout=5)
    warnings = [r.getMessage() for r in caplog.records if "status write failed" in r.getMessage()]
    assert len(warnings) == 1 and "launchgates/" + namespace + "/g2" in warnings[0] and "422" in warnings[0]
    assert METRICS.registry.get_sample_value("launchgate_status_write_failures_total") == failures + 1
    assert METRICS.registry.get_sample_value("launchgate_status_writes_pending") == 0
    assert kubectl_json(kubeconfig, "-n", namespace, "get", "launchgates.launchgate.dev", "g2")["status"]["message"] == "written"


def test_every_write_waits_for_the_write_limit(kubeconfig: Path, namespace: str) -> None:
    """Each request that writes (and none that only reads) takes its turn at the limiter; with a burst
    of one at 1 write a second the second and third writes wait about a second and two (the waits
    are recorded here, not slept, so the test does not take that long)."""
    api = _counting(kubeconfig)
    kube = Kube(api)
    slept: list[float] = []
    kube.write_limiter = WriteLimiter(qps=1, burst=1, sleep=slept.append)
    for i in range(3):
        kube.ensure_configmap(namespace, _policy(f"limited-{i}"))
    kube.read_configmap(namespace, "limited-0")
    assert kube.writes == 3 and [m for m, _ in api.sent].count("POST") == 3
    assert len(slept) == 2 and 0 < slept[0] <= 1.0 and slept[0] + 0.5 < slept[1] <= 2.0, slept


def test_a_block_still_being_written_is_not_announced_or_queued_again(kubeconfig: Path, namespace: str) -> None:
    """While a gate's "block" status waits to land, the next pass sees it as written: no second GateBlocks
    Event (and no second page to the owners), no second PATCH."""
    _launchgate(kubeconfig, namespace, "g3")
    api = HeldApiClient(load_config(str(kubeconfig)).configuration)
    kube = Kube(api)
    kube.status_writer = writer = StatusWriter(kube, threads=2)
    gobj = kube.get("launchgates", namespace, "g3")
    assert gobj is not None
    spec = LaunchGateSpec.model_validate(gobj["spec"])
    res = GateResult(decision="block", passing="0/1", message="b1 failed", blockers=[
        BlockerResult(name="b1", target=">= 0.99", value=0.5, baseline_value=None, passed=False, reason="0.5 < 0.99")])
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        assert publish_gate_status(kube, gobj, spec, res, now)
        assert api.entered.acquire(timeout=10)  # the block is on its way, held
        # The next pass, with the watch's copy still showing no decision:
        assert not publish_gate_status(kube, gobj, spec, res, now)
        api.release.release()
        assert writer.flush(timeout=10)
    finally:
        writer.close(timeout=5)
    assert [m for m, _ in api.sent].count("PATCH") == 1
    events = kubectl_json(kubeconfig, "get", "events", "-n", namespace, "--field-selector", "reason=GateBlocks")
    assert len(events["items"]) == 1, events
    status = kubectl_json(kubeconfig, "-n", namespace, "get", "launchgates.launchgate.dev", "g3")["status"]
    assert status["decision"] == "block"
