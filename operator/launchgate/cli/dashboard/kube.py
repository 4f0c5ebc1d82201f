"""The dashboard's reads of the API server, as the person who runs it.

Every request carries the user's own kubeconfig credentials, so the API server's RBAC decides what
each person sees: a namespace whose rollouts they may not list is left out of the overview and its
pages answer "forbidden", exactly as `kubectl get` would. Nothing here writes. The kubernetes client
is blocking: the web app calls these methods from worker threads, never from its event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from launchgate import GROUP, VERSION

RECORD_LABEL = "launchgate.dev/rollout"


class Forbidden(Exception):
    """The API server refused the read (401/403): the user may not see it."""


class NotFound(Exception):
    pass


def reason(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "").get("message", e.reason))
    except (ValueError, TypeError, AttributeError):
        return f"{e.status} {e.reason}"


def _raise(e: ApiException) -> None:
    if e.status in (401, 403):
        raise Forbidden(reason(e)) from None
    if e.status == 404:
        raise NotFound(reason(e)) from None
    raise e


@dataclass
class Listing:
    items: list[dict[str, Any]]
    namespaces: list[str]
    """The namespaces listed (empty for a cluster-wide list)."""
    cluster_wide: bool


class Reader:
    """The user's view of the cluster: their kubeconfig, their context, their RBAC."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        self.api = client.ApiClient(cfg)
        self.custom: Any = client.CustomObjectsApi(self.api)
        self.core: Any = client.CoreV1Api(self.api)
        self.authz: Any = client.AuthorizationV1Api(self.api)
        if namespace is None:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                active = next((c for c in contexts if c["name"] == context), active)
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
        self.default_namespace = namespace
        self.server = cfg.host

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------ who may see what
    def whoami(self) -> str:
        """The user as the API server authenticates it, shown on every page."""
        try:
            auth: Any = client.AuthenticationV1Api(self.api)
            review = auth.create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "SelfSubjectReview"})
        except ApiException as e:
            return f"(unknown: {reason(e)})"
        return str(review.status.user_info.username)

    def may_list(self, namespace: str, plural: str = "agentrollouts") -> bool:
        """A SelfSubjectAccessReview: may the user list `plural` in `namespace` ('' = all)?"""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"group": GROUP, "resource": plural, "verb": "list",
                                                "namespace": namespace}}}
        try:
            review = self.authz.create_self_subject_access_review(body)
        except ApiException:
            return False
        return bool(review.status.allowed)

    def all_namespaces(self) -> list[str] | None:
        """Every namespace, or None when the user may not list them."""
        try:
            return sorted(n.metadata.name for n in self.core.list_namespace().items)
        except ApiException as e:
            if e.status in (401, 403):
                return None
            raise

    def namespaces(self) -> tuple[list[str], bool]:
        """The namespaces whose rollouts the user may list, and whether they may list them all at
        once. Without the right to list namespaces, the kubeconfig's own namespace is the one known."""
        cluster_wide = self.may_list("")
        names = self.all_namespaces()
        if names is None:
            names = sorted({self.default_namespace} | (self._rollout_namespaces() if cluster_wide else set()))
            return (names if cluster_wide else [n for n in names if self.may_list(n)]), cluster_wide
        if cluster_wide:
            return names, True
        with ThreadPoolExecutor(max_workers=8) as pool:
            allowed = list(pool.map(self.may_list, names))
        return [n for n, ok in zip(names, allowed, strict=True) if ok], False

    def _rollout_namespaces(self) -> set[str]:
        items = self.custom.list_cluster_custom_object(GROUP, VERSION, "agentrollouts")["items"]
        return {i["metadata"]["namespace"] for i in items}

    # ------------------------------------------------------------------ reads
    def rollouts(self, namespace: str | None) -> Listing:
        """One namespace's rollouts; or, for None, every namespace's the user may list: at once
        when RBAC allows a cluster-wide list, else namespace by namespace."""
        try:
            if namespace is not None:
                out = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "agentrollouts")
                return Listing(out["items"], [namespace], False)
            out = self.custom.list_cluster_custom_object(GROUP, VERSION, "agentrollouts")
            return Listing(out["items"], [], True)
        except ApiException as e:
            if namespace is not None or e.status not in (401, 403):
                _raise(e)
        names, _ = self.namespaces()
        items: list[dict[str, Any]] = []
        for ns in names:
            try:
                items.extend(self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "agentrollouts")["items"])
            except ApiException as e:
                if e.status not in (401, 403):
                    raise
        return Listing(items, names, False)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as e:
            _raise(e)
        return obj

    def records(self, namespace: str, rollout: str, uid: str | None = None) -> list[dict[str, Any]]:
        """The rollout's DecisionRecords: by its uid when known (a rollout re-created under the same
        name is another rollout), else by its name."""
        selector = f"{RECORD_LABEL}-uid={uid}" if uid else f"{RECORD_LABEL}={rollout}"
        try:
            out = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "decisionrecords",
                                                            label_selector=selector)
        except ApiException as e:
            _raise(e)
        return list(out["items"])

    # ------------------------------------------------------------------ watches
    def watch(self, plural: str, namespace: str | None, on_change: Callable[[], None], stop: threading.Event,
              label_selector: str | None = None, field_selector: str | None = None) -> threading.Thread:
        """A thread that calls `on_change` whenever the API server's watch reports a change to
        `plural`, until `stop` is set (see _Watch)."""
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        custom = self.custom
        if namespace is None:
            def lister(**kw: Any) -> Any:
                return custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)
        else:
            def lister(**kw: Any) -> Any:
                return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kw)
        t = threading.Thread(target=_Watch(lister, kwargs, on_change, stop).run, name=f"dashboard-watch-{plural}",
                             daemon=True)
        t.start()
        return t

    def watch_rollouts(self, listing: Listing, on_change: Callable[[], None],
                       stop: threading.Event) -> list[threading.Thread]:
        """Watches that cover what `listing` listed: one cluster-wide, or one per namespace."""
        spaces: Iterable[str | None] = [None] if listing.cluster_wide else listing.namespaces
        return [self.watch("agentrollouts", ns, on_change, stop) for ns in spaces]


class _Watch:
    """List, then watch from the list's resourceVersion, calling `on_change` for every change; list
    again after an expired version or a dropped connection. A forbidden watch ends quietly: the
    page already says forbidden."""

    def __init__(self, lister: Callable[..., Any], kwargs: dict[str, Any], on_change: Callable[[], None],
                 stop: threading.Event) -> None:
        self.lister, self.kwargs, self.on_change, self.stop = lister, kwargs, on_change, stop
        self.rv: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.rv is None:
                    self.rv = self.lister(**self.kwargs)["metadata"]["resourceVersion"]
                    self.on_change()
                self._follow()
            except ApiException as e:
                if e.status in (401, 403):
                    return
                self.rv = None
                self.stop.wait(1.0)
            except Exception:  # noqa: BLE001 - a dropped connection: list and watch again
                self.rv = None
                self.stop.wait(1.0)

    def _follow(self) -> None:
        w = watch.Watch()
        # A short server-side timeout: a closed page's thread ends within it.
        for ev in w.stream(self.lister, resource_version=self.rv, timeout_seconds=15, allow_watch_bookmarks=True,
                           **self.kwargs):
            if self.stop.is_set():
                w.stop()
                return
            if ev.get("type") == "ERROR":
                self.rv = None  # 410 Gone and the like: list again
                return
            obj = ev.get("raw_object") or {}
            self.rv = (obj.get("metadata") or {}).get("resourceVersion") or self.rv
            if ev.get("type") != "BOOKMARK":
                self.on_change()
