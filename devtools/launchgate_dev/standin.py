"""A stand-in for the Deployment controller on the local control plane.

The local control plane (devenv) is kube-apiserver and etcd only: no controller-manager, no
scheduler, no kubelet, so no Deployment ever reports a pod. The operator waits for pods to be
available before it moves traffic, so without this the demo, the benchmark and the integration
tests would wait forever. This thread acts as the Deployment controller would on a healthy
cluster: for each Deployment the operator manages it reports every replica of the current spec
as updated, ready and available (through /status, as the real controller does).

A pod template annotated ``devenv.launchgate.dev/never-ready: "true"`` is left alone: tests use
it to play a canary whose pods never come up. ``delay`` plays pods that take a while to start.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("launchgate.standin")

MANAGED = "launchgate.dev/rollout"
NEVER_READY = "devenv.launchgate.dev/never-ready"


def rolled_out_status(dep: dict[str, Any]) -> dict[str, Any] | None:
    """The status a healthy controller would report for this Deployment; None when it already
    does, or when the Deployment is marked never-ready."""
    meta, spec, st = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    annotations = (((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {})
    if annotations.get(NEVER_READY) == "true":
        return None
    replicas = int(spec.get("replicas") or 0)
    want = {"observedGeneration": meta.get("generation"), "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas}
    if all((st.get(k) or 0) == (v or 0) for k, v in want.items()):
        return None
    return want


class DeploymentStandIn:
    """Watches the operator's Deployments in every namespace and marks them rolled out."""

    def __init__(self, kubeconfig: Path | str, delay: float = 0.0, workers: int = 4) -> None:
        self.kubeconfig = str(kubeconfig)
        self.delay = delay
        self.workers = workers
        self.patched = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: watch.Watch | None = None

    def start(self) -> DeploymentStandIn:
        api = config.new_client_from_config(config_file=self.kubeconfig)
        self._apps: Any = client.AppsV1Api(api)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="standin")
        self._thread = threading.Thread(target=self._run, name="deployment-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> DeploymentStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except Exception as e:  # noqa: BLE001 - a lost watch is started again, like any controller's
                if not self._stop.is_set():
                    log.warning("deployment stand-in: watch failed (%s); starting again", e)
                    self._stop.wait(1.0)

    def _list_and_watch(self) -> None:
        listed = self._apps.list_deployment_for_all_namespaces(label_selector=MANAGED, _preload_content=False)
        body = _json(listed)
        for item in body.get("items") or []:
            self._consider(item)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        while not self._stop.is_set():
            self._watch = watch.Watch()
            for event in self._watch.stream(self._apps.list_deployment_for_all_namespaces, label_selector=MANAGED,
                                            resource_version=rv, timeout_seconds=30, _request_timeout=40,
                                            deserialize=False):
                obj = event.get("raw_object") or event["object"]
                if event["type"] == "ERROR":
                    return  # e.g. 410 Gone: list again
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._consider(obj)
                if self._stop.is_set():
                    return

    def _consider(self, dep: dict[str, Any]) -> None:
        status = rolled_out_status(dep)
        if status is not None:
            meta = dep["metadata"]
            self._pool.submit(self._patch, meta["namespace"], meta["name"], status)

    def _patch(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        try:
            self._apps.patch_namespaced_deployment_status(name, namespace, {"status": status})
            self.patched += 1
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("deployment stand-in: %s/%s: %s", namespace, name, e.reason)


def _json(resp: Any) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(resp.data)
    return data


__all__ = ["DeploymentStandIn", "rolled_out_status", "NEVER_READY"]
