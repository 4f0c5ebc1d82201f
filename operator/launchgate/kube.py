"""The Kubernetes adapter: the only module that talks to the API server.

It wraps the blocking official client; the operator calls it from worker threads
(`asyncio.to_thread`), never from the event loop. Writes are idempotent (create-or-patch, 409 on
create means "already done") because a restarted operator repeats the step it was killed in.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import GROUP, VERSION, metrics

log = logging.getLogger("launchgate.kube")
GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"


def load_config(kubeconfig: str | None = None, pool_size: int = 32) -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or the given path).

    The connection pool matches the worker threads: the client's default of 10 made the
    benchmark's 32 workers open and drop connections thousands of times a run.
    """
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


class Kube:
    """Thin, typed verbs over the API, named for what the operator needs rather than for REST."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        # Typed as Any: the client's generated stubs want model objects; we pass plain dicts.
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.batch: Any = client.BatchV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.writes = 0
        self._services_seen: set[tuple[str, str, str]] = set()

    def _wrote(self) -> None:
        self.writes += 1
        metrics.observe_api_writes()

    # ------------------------------------------------------------------ launchgate objects
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            return obj
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list(self, plural: str, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        kw = {"label_selector": label_selector} if label_selector else {}
        res = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kw)
        return list(res.get("items", []))

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Status only, via the subresource: the user's spec (and GitOps' view of it) is never touched."""
        self._wrote()
        # A dict body is sent as a JSON merge patch by the client.
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, {"status": status})

    def create_once(self, plural: str, namespace: str, body: dict[str, Any]) -> bool:
        """Create; False when it already exists (the step was done before a restart)."""
        try:
            self._wrote()
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise

    # ------------------------------------------------------------------ workloads
    def get_deployment(self, namespace: str, name: str) -> Any | None:
        try:
            return self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def ensure_deployment(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        current = self.get_deployment(namespace, name)
        if current is None:
            self._wrote()
            self.apps.create_namespaced_deployment(namespace, body)
            return
        cur = self.api.sanitize_for_serialization(current)
        want_rev = body["metadata"].get("annotations", {}).get("launchgate.dev/revision")
        have_rev = (cur["metadata"].get("annotations") or {}).get("launchgate.dev/revision")
        if cur["spec"].get("replicas") == body["spec"]["replicas"] and want_rev == have_rev:
            return
        self._wrote()
        self.apps.patch_namespaced_deployment(name, namespace, body)

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        current = self.get_deployment(namespace, name)
        if current is None or current.spec.replicas == replicas:
            return
        self._wrote()
        self.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})

    def ensure_service(self, namespace: str, body: dict[str, Any]) -> None:
        """Create if missing. Once seen, a Service is not read again every pass: nothing about
        it changes, and the reads were a quarter of the operator's API traffic at steady state."""
        key = (namespace, body["metadata"]["name"], body["metadata"]["ownerReferences"][0]["uid"])
        if key in self._services_seen:
            return
        self._ensure_service(namespace, body)
        self._services_seen.add(key)

    def _ensure_service(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            self.core.read_namespaced_service(body["metadata"]["name"], namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            self._wrote()
            try:
                self.core.create_namespaced_service(namespace, body)
            except ApiException as e2:
                if e2.status != 409:
                    raise

    def ensure_configmap(self, namespace: str, body: dict[str, Any]) -> None:
        """Create once: policy ConfigMaps are immutable and named by their content's hash."""
        if self.read_configmap(namespace, body["metadata"]["name"]) is not None:
            return
        try:
            self._wrote()
            self.core.create_namespaced_config_map(namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise

    def read_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            return dict(self.core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = self.batch.read_namespaced_job(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(self.api.sanitize_for_serialization(job))

    def create_job(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            self._wrote()
            self.batch.create_namespaced_job(namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise

    # ------------------------------------------------------------------ Gateway API
    def get_httproute(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            route: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name)
            return route
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def replace_httproute(self, namespace: str, body: dict[str, Any]) -> None:
        """Replace with the resourceVersion read: a concurrent edit makes this fail and be retried."""
        self._wrote()
        self.custom.replace_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes",
                                                     body["metadata"]["name"], body)

    # ------------------------------------------------------------------ events
    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = involved["metadata"]
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "launchgate"},
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "reportingComponent": "launchgate",
        }
        try:
            self._wrote()
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as e:  # an event is best-effort; the timeline record is the durable trace
            log.warning(json.dumps({"msg": "event failed", "status": e.status, "reason": reason}))


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
