"""The Kubernetes adapter: the only module that talks to the API server.

It wraps the blocking official client; the operator calls it from worker threads
(`asyncio.to_thread`), never from the event loop. Writes are idempotent (create-or-patch, 409 on
create means "already done") because a restarted operator repeats the step it was killed in.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from launchgate import GROUP, VERSION
from launchgate.adapters import metrics
from launchgate.adapters.kube_objects import record_rollout_uid, renamed_for_rollout

log = logging.getLogger("launchgate.kube")
GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"


def load_config(kubeconfig: str | None = None, pool_size: int = 96) -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or the given path).

    The connection pool matches the worker threads: with the client's default of 10, every
    request beyond ten at once opens a connection and drops it afterwards.
    """
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook = throttled(cfg.refresh_api_key_hook, every=10.0)
    return client.ApiClient(cfg)


def throttled(hook: Callable[[Any], None], every: float,
              clock: Callable[[], float] = time.monotonic) -> Callable[[Any], None]:
    """The client's credential refresh hook, run at most once per `every` seconds.

    The client calls it before every request. The kubeconfig loader's hook re-applies the whole
    cluster config each time (setting `host` scans the environment for proxies), a noticeable
    share of the operator's CPU when it sends many requests. What it is for, a token that expires or
    is rotated, is checked minutes ahead, so seconds of delay cost nothing."""
    lock = threading.Lock()
    last = [-float("inf")]

    def run(configuration: Any) -> None:
        with lock:
            now = clock()
            if now - last[0] < every:
                return
            last[0] = now
        hook(configuration)

    return run


class WriteLimiter:
    """At most `qps` writes a second on average and `burst` at once, as client-go's QPS and Burst
    (and Argo Rollouts' and Flagger's flags of those names) bound a controller's requests.

    Passes do not wait for gate status writes, so a canary start of thousands of rollouts can write
    faster than kube-apiserver's watch cache of AgentRollouts follows; the cache then falls a
    compaction period behind etcd and is rebuilt for minutes, during which every watch and LIST of
    rollouts fails (see BENCHMARKS.md). A write waits here, in its worker thread, until it may
    go; `acquire` says how long it waited. Each write reserves its slot under the lock and sleeps
    outside it, so writers are served in the order they came."""

    def __init__(self, qps: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if qps <= 0:
            raise ValueError("qps must be positive")
        self.qps = qps
        self.burst = max(1, burst if burst is not None else round(2 * qps))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()

    def acquire(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps) - 1
            self._last = now
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def write_limiter_for(qps: float, burst: int | None = None) -> WriteLimiter | None:
    """The operator's write limit (LAUNCHGATE_API_WRITE_QPS and _BURST, checked by the Config):
    None when `qps` is 0, no limit; a burst of None is twice the QPS."""
    return WriteLimiter(qps, burst) if qps > 0 else None


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(body: Any, last_applied: bool = False) -> dict[str, Any]:
    """The object without what no pass reads and what makes up most of its size: managedFields and
    (unless asked to keep it, for a body that is written back) kubectl's last-applied copy of the
    spec. A new dict: the watch's own is never edited."""
    out = {k: body[k] for k in body}
    meta = out.get("metadata")
    if meta:
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        annotations = meta.get("annotations")
        if not last_applied and annotations and LAST_APPLIED in annotations:
            meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        out["metadata"] = meta
    return out


class Packed:
    """A slimmed body kept as compact JSON until a pass needs it (`unpack`).

    The scheduler keeps a body for every rollout and gate; as dicts they would be a large part of
    the operator's memory at 10,000 rollouts, as compact JSON bytes they take several times less.
    Each `unpack` is a new dict, so a pass can never edit what the next one reads. orjson, not
    json: every watch event encodes a body and every pass decodes one, and orjson does both
    several times faster than the stdlib.
    """

    __slots__ = ("_raw", "generation")

    def __init__(self, body: dict[str, Any]) -> None:
        try:
            self._raw: bytes | str = orjson.dumps(body)
        except TypeError:
            # An integer past 64 bits in a free-form field (a pod template, replicaRatio) is kept by
            # the API server, and orjson refuses to encode it: the stdlib keeps it, exactly, as text.
            self._raw = json.dumps(body, separators=(",", ":"))
        self.generation: Any = (body.get("metadata") or {}).get("generation")

    def unpack(self) -> dict[str, Any]:
        out: dict[str, Any] = orjson.loads(self._raw) if isinstance(self._raw, bytes) else json.loads(self._raw)
        return out


ABSENT: Any = object()
"""What `Known.get` returns for an object known not to exist (None means "not known")."""


@dataclass
class _Entry:
    rv: str | None
    value: Any
    at: float
    confirmed: bool = False


class Known:
    """The last known state of the objects the operator drives (its Deployments and HTTPRoutes),
    kept from its own reads and writes and updated by the watch.

    Without it every pass would read two Deployments and an HTTPRoute to find nothing to do, a large
    share of the operator's CPU at steady state. The watch replaces an entry whenever someone else
    changes the object (a GitOps tool resetting weights, a person scaling a Deployment), so drift is
    still corrected on the next pass.

    An entry is re-read when it gets old, like an informer's resync, so that a watch that is down
    or not allowed cannot leave the operator blind. How old depends on whether the watch has shown
    this very version (the operator's own write coming back, or a listing after a reconnect): then
    the watch is known to work for the object and `confirmed_resync` (long) applies; otherwise
    `resync` (short). A 5-minute re-read of every entry would be 100 GETs/s at 10,000 rollouts
    with healthy watches. An object a read found missing (a rollout's canary Deployment between
    rollouts) has no version to confirm: it gets the long resync once the watch of its kind has
    delivered anything, since a watch that works reports a creation. Expiries are spread over
    `spread` of the interval by a hash of the key, so objects created together are not all read
    again in the same second.
    """

    def __init__(self, resync: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 confirmed_resync: float | None = None, spread: float = 0.0) -> None:
        self.resync = resync
        self.confirmed_resync = resync if confirmed_resync is None else max(resync, confirmed_resync)
        self.spread = spread
        self._clock = clock
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._watching: set[str] = set()
        self._lock = threading.Lock()

    def now(self) -> float:
        """The clock entries are stamped with: pass it back to `put` as `read_since`."""
        return self._clock()

    def _limit(self, key: tuple[str, str, str], e: _Entry) -> float:
        trusted = e.confirmed or (e.value is ABSENT and key[0] in self._watching)
        base = self.confirmed_resync if trusted else self.resync
        if not self.spread:
            return base
        return base * (1.0 - self.spread * (zlib.crc32("/".join(key).encode()) / 2**32))

    def get(self, kind: str, namespace: str, name: str) -> Any:
        """The known value, ABSENT, or None when unknown or due for a re-read."""
        key = (kind, namespace, name)
        e = self._entries.get(key)
        if e is None or self._clock() - e.at >= self._limit(key, e):
            return None
        return e.value

    def put(self, kind: str, namespace: str, name: str, rv: str | None, value: Any,
            read_since: float | None = None) -> Any:
        """What the operator itself just read or wrote (value ABSENT for a 404); returns the value
        now held. The watch may have shown this version already (its event can beat the
        response): then it stays confirmed. For a read or write begun at `read_since`, a watch
        event of another version that arrived meanwhile wins: the answer may predate that change
        (a controller updating status right after the write), and keeping it would trust an old
        state until the next resync."""
        key = (kind, namespace, name)
        with self._lock:
            e = self._entries.get(key)
            if read_since is not None and e is not None and e.confirmed and e.at >= read_since and e.rv != rv:
                return e.value
            confirmed = e is not None and e.confirmed and rv is not None and e.rv == rv
            self._entries[key] = _Entry(rv, value, self._clock(), confirmed)
            return value

    def watched(self, kind: str, namespace: str, name: str, rv: str | None, value: Any, deleted: bool) -> None:
        """A watch event. One for the version the operator already holds (its own write coming
        back) keeps the value and confirms it; any other replaces the entry, a deletion makes it
        ABSENT."""
        key = (kind, namespace, name)
        with self._lock:
            self._watching.add(kind)
            e = self._entries.get(key)
            if deleted:
                self._entries[key] = _Entry(None, ABSENT, self._clock(), True)
            elif e is None or e.rv != rv:
                self._entries[key] = _Entry(rv, value, self._clock(), True)
            else:  # the same version again: the watch works for this object
                e.confirmed, e.at = True, self._clock()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._entries.pop((kind, namespace, name), None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class DeploymentState:
    """The two fields of a Deployment the operator drives, and what its controller reports back.

    Equality is on the driven fields only: the operator patches when what it wants differs, never
    because pods came up.
    """

    replicas: int | None
    revision: str | None
    generation: int | None = field(default=None, compare=False)
    observed_generation: int | None = field(default=None, compare=False)
    updated: int = field(default=0, compare=False)
    available: int = field(default=0, compare=False)
    total: int = field(default=0, compare=False)
    """Pods of any revision (status.replicas: the controller stops counting a pod once its
    deletion starts)."""
    problem: str | None = field(default=None, compare=False)
    """Why the controller cannot bring the pods up, when it says so in a condition: a pod it may
    not create (ReplicaFailure: a quota, an admission policy) or its progress deadline passed."""

    @staticmethod
    def of(body: dict[str, Any]) -> DeploymentState:
        meta, spec, st = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
        return DeploymentState(spec.get("replicas"), (meta.get("annotations") or {}).get(REVISION_ANNOTATION),
                               meta.get("generation"), st.get("observedGeneration"), st.get("updatedReplicas") or 0,
                               st.get("availableReplicas") or 0, st.get("replicas") or 0,
                               _deployment_problem(st.get("conditions") or []))

    @property
    def rolled_out(self) -> bool:
        """What `kubectl rollout status` waits for, and no more pods than asked for: the
        controller saw this spec, every pod runs it and is available, and no pod of an older
        revision, or of a larger scale, is left. The last part is more than kubectl asks: after a
        scale-down the controller reports the spec observed, and the surplus pods as updated and
        available, until the ReplicaSet has started deleting them."""
        want = self.replicas or 0
        return (self.generation is not None and self.observed_generation is not None
                and self.observed_generation >= self.generation
                and self.updated >= want and self.available >= want and self.total <= want)

    def describe(self) -> str:
        detail = f"{self.available}/{self.replicas or 0} available, {self.updated} updated"
        if self.problem and not self.rolled_out:
            detail += f"; {self.problem}"
        return detail


def _deployment_problem(conditions: list[dict[str, Any]]) -> str | None:
    """The Deployment controller's own account of why it is stuck, from its conditions."""
    for cond in conditions:
        failing = (cond.get("type") == "ReplicaFailure" and cond.get("status") == "True") or (
            cond.get("type") == "Progressing" and cond.get("status") == "False"
            and cond.get("reason") == "ProgressDeadlineExceeded")
        if failing:
            return f"{cond.get('reason') or cond.get('type')}: {cond.get('message') or ''}"[:500].rstrip(": ")
    return None


REVISION_ANNOTATION = "launchgate.dev/revision"


class NotLeading(RuntimeError):
    """A write refused because this replica is not the leader (see Kube.fence)."""


class Kube:
    """Thin, typed verbs over the API, named for what the operator needs rather than for REST."""

    def __init__(self, api: client.ApiClient, resync: float = 300.0, confirmed_resync: float = 3600.0) -> None:
        self.api = api
        # Typed as Any: the client's generated stubs want model objects; we pass plain dicts.
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.batch: Any = client.BatchV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.writes = 0
        self._services_seen: set[tuple[str, str, str]] = set()
        self._services_listed: dict[str, dict[str, str]] = {}
        """Per namespace, from one LIST at the first need: Service name -> its owner's uid, each
        entry dropped once used (see ensure_service)."""
        self._services_listing = threading.Lock()
        self.list_page = 500
        """Objects per page of a LIST."""
        self._configmaps_kept: set[tuple[str, str, str]] = set()
        self.known = Known(resync, confirmed_resync=confirmed_resync, spread=0.25)
        self._unseen: dict[tuple[str, str, str], str | None] = {}
        self.write_limiter: WriteLimiter | None = None
        """Set by the operator (LAUNCHGATE_API_WRITE_QPS); every write waits for it."""
        self.status_writer: StatusWriter | None = None
        """Set by the operator (see patch_status_soon); without one (CLI, tests) writes are inline."""
        self.fence: Callable[[], bool] | None = None
        """Set by the operator under leader election: asked right before every write, which is
        refused (NotLeading) unless it answers True. Without one every write goes."""

    def _wrote(self) -> None:
        """Called right before each write: refuses it when this replica is not leading, counts it,
        and waits for the write limit if there is one (then asks the fence again: the wait may have
        outlasted the leadership)."""
        self._fenced()
        self.writes += 1
        metrics.observe_api_writes()
        if self.write_limiter is not None:
            metrics.observe_api_write_wait(self.write_limiter.acquire())
            self._fenced()

    def _fenced(self) -> None:
        if self.fence is not None and not self.fence():
            metrics.observe_fenced_write()
            raise NotLeading("this replica does not hold the leader Lease: the write is not sent")

    # ------------------------------------------------------------------ launchgate objects
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            return obj
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def current(self, plural: str, namespace: str, name: str, watched: dict[str, Any] | None) -> dict[str, Any] | None:
        """The watch's copy of a launchgate object, unless the operator wrote the object since that
        copy was taken: then a GET, because acting on a status older than one's own last write would
        repeat or undo a step. Without a copy (CLI, tests), always a GET."""
        if watched is None:
            return self.get(plural, namespace, name)
        key = (plural, namespace, name)
        if key not in self._unseen:
            return watched
        seen_rv = (watched.get("metadata") or {}).get("resourceVersion")
        if seen_rv == self._unseen.get(key):
            self._unseen.pop(key, None)
            return watched
        obj = self.get(plural, namespace, name)
        fresh_rv = obj["metadata"].get("resourceVersion") if obj is not None else None
        if obj is None or fresh_rv == seen_rv:
            self._unseen.pop(key, None)
        else:
            self._unseen[key] = fresh_rv
        return obj

    def forget_object(self, plural: str, namespace: str, name: str) -> None:
        """The object is gone: nothing to wait for the watch to catch up with."""
        self._unseen.pop((plural, namespace, name), None)

    def list(self, plural: str, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        kw = {"label_selector": label_selector} if label_selector else {}
        res = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kw)
        return list(res.get("items", []))

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any],
                     resource_version: str | None = None) -> None:
        """Status only, via the subresource: the user's spec (and GitOps' view of it) is never touched.

        With `resource_version`, only onto that version of the object (a 409 otherwise): a decision
        is written only onto the object it was made from, so a replica that lost its leadership
        while deciding cannot overwrite what the new leader wrote meanwhile."""
        self._wrote()
        key = (plural, namespace, name)
        self._unseen[key] = None  # until the response says which version it made
        # A dict body is sent as a JSON merge patch by the client; a resourceVersion in it is a precondition.
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        obj = self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, body)
        self._unseen[key] = ((obj or {}).get("metadata") or {}).get("resourceVersion")

    def patch_status_soon(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """`patch_status` by the status writer's threads when there is one (see StatusWriter), else
        now. All status writes to one kind must take the same way, or an older queued one could
        land after a newer inline one."""
        if self.status_writer is None:
            self.patch_status(plural, namespace, name, status)
        else:
            self.status_writer.submit(plural, namespace, name, status)

    def status_to_be(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """`obj`'s status as it will be once the status writes queued for it land: what a pass
        compares its new status with, so that a write still queued is neither queued again nor
        announced again (a second GateBlocks Event, a second page to the gate's owners)."""
        status: dict[str, Any] = obj.get("status") or {}
        if self.status_writer is None:
            return status
        meta = obj.get("metadata") or {}
        queued = self.status_writer.latest(plural, meta.get("namespace", ""), meta.get("name", ""))
        return status if queued is None else merged_patch(status, queued)

    def create_once(self, plural: str, namespace: str, body: dict[str, Any]) -> bool:
        """Create; False when it already exists (the step was done before a restart)."""
        return self._create(self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, plural,
                            body) is not None

    def create_record(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create a DecisionRecord once, like `create_once`. Records outlive their rollout, so the
        name may be held by a record of an earlier rollout of the same name: that one is not this
        record, which then goes under a name of its own rollout's (one GET, only on a conflict)."""
        if self.create_once("decisionrecords", namespace, body):
            return True
        uid = body["spec"].get("rolloutUid")
        held = self.get("decisionrecords", namespace, body["metadata"]["name"]) if uid else None
        if held is None or record_rollout_uid(held) in (None, uid):
            return False  # this rollout's own record (or one deleted since): written before
        return self.create_once("decisionrecords", namespace, renamed_for_rollout(body))

    def record_pages(self, namespace: str | None) -> Iterator[Sequence[dict[str, Any]]]:
        """Every DecisionRecord of a namespace (None: of all), a page at a time, so a timeline of
        any length is never held whole."""
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"limit": self.list_page, "_continue": token}
            if namespace is None:
                page = self.custom.list_cluster_custom_object(GROUP, VERSION, "decisionrecords", **kw)
            else:
                page = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "decisionrecords", **kw)
            yield list(page.get("items", []))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def delete_record(self, namespace: str, name: str, uid: str | None) -> bool:
        """Delete the DecisionRecord listed with this uid (not one made since under its name);
        False when it is gone already."""
        self._wrote()
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)) if uid else None
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "decisionrecords", name, body=body)
        except ApiException as e:
            if e.status in (404, 409):  # 409: the uid precondition failed, another record has the name now
                return False
            raise
        return True

    def _create(self, create: Callable[..., Any], *args: Any) -> Any:
        """`create(*args)`, counted as a write; None when the object already exists (409): another
        writer, or this one before a restart, got there first."""
        self._wrote()
        try:
            return create(*args)
        except ApiException as e:
            if e.status != 409:
                raise
            return None

    # ------------------------------------------------------------------ workloads
    def deployment_state(self, namespace: str, name: str) -> DeploymentState | None:
        """From what is known (watch, own writes), else one GET; None if it does not exist."""
        known = self.known.get("deployments", namespace, name)
        if known is ABSENT:
            return None
        if known is not None:
            return known
        since = self.known.now()
        try:
            dep = self.api.sanitize_for_serialization(self.apps.read_namespaced_deployment(name, namespace))
        except ApiException as e:
            if e.status == 404:
                held = self.known.put("deployments", namespace, name, None, ABSENT, read_since=since)
                return None if held is ABSENT else held
            raise
        return self._keep_deployment(namespace, dep, read_since=since)

    def _keep_deployment(self, namespace: str, dep: Any, read_since: float | None = None) -> DeploymentState | None:
        """Remember a Deployment read or written; what is held now (a watch event during a read wins)."""
        body = dep if isinstance(dep, dict) else self.api.sanitize_for_serialization(dep)
        held = self.known.put("deployments", namespace, body["metadata"]["name"],
                              body["metadata"].get("resourceVersion"), DeploymentState.of(body), read_since=read_since)
        return None if held is ABSENT else held

    def watched_deployment(self, body: dict[str, Any], deleted: bool = False) -> bool:
        """True when the event changes whether the Deployment is rolled out: its rollout may then
        move on now rather than at its next interval."""
        meta = body.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        before = self.known.get("deployments", ns, name)
        state = DeploymentState.of(body)
        self.known.watched("deployments", ns, name, meta.get("resourceVersion"), state, deleted)
        was = isinstance(before, DeploymentState) and before.rolled_out
        return deleted or was != state.rolled_out

    def ensure_deployment(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        current = self.deployment_state(namespace, name)
        # As for reads: what the watch reports while the write is in flight is newer than its
        # answer (a controller reacting within milliseconds, before the response is handled).
        since = self.known.now()
        try:
            if current is None:
                created = self._create(self.apps.create_namespaced_deployment, namespace, body)
                if created is None:
                    self.known.forget("deployments", namespace, name)  # it exists after all: read it next pass
                    return
                self._keep_deployment(namespace, created, read_since=since)
                return
            want = DeploymentState.of(body)
            if current == want:
                return
            self._wrote()
            self._keep_deployment(namespace, self.apps.patch_namespaced_deployment(name, namespace, body),
                                  read_since=since)
        except ApiException:
            self.known.forget("deployments", namespace, name)
            raise

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        current = self.deployment_state(namespace, name)
        if current is None or current.replicas == replicas:
            return
        self._wrote()
        since = self.known.now()
        try:
            scale = self.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})
        except ApiException:
            self.known.forget("deployments", namespace, name)
            raise
        # The scale subresource answers with the Deployment's own resourceVersion.
        self.known.put("deployments", namespace, name, scale.metadata.resource_version,
                       DeploymentState(replicas, current.revision), read_since=since)

    def ensure_service(self, namespace: str, body: dict[str, Any], label: str | None = None) -> None:
        """Create if missing. Once seen, a Service is not read again every pass: nothing about
        it changes, and reading it every pass would be a large share of the operator's API traffic
        at steady state.

        With `label` (a key every such Service carries), the first Service a process needs in a
        namespace LISTs them all: otherwise a restart among 10,000 rollouts reads their 20,000
        Services one GET each, most of its API requests until every rollout is evaluated again (see
        BENCHMARKS.md). A Service not listed is created at once; a listed one counts as there only
        when owned by the same object, any other (a rollout deleted and created again since) is read
        on its own."""
        name = body["metadata"]["name"]
        uid = body["metadata"]["ownerReferences"][0]["uid"]
        key = (namespace, name, uid)
        if key in self._services_seen:
            return
        listed = self._listed_services(namespace, label) if label else None
        if listed is not None and name not in listed:
            self._create(self.core.create_namespaced_service, namespace, body)  # 409: made since the LIST
        elif listed is None or listed.pop(name, None) != uid:
            self._ensure_service(namespace, body)
        self._services_seen.add(key)

    def _listed_services(self, namespace: str, label: str) -> dict[str, str] | None:
        """The namespace's `label`ed Services as first listed by this process (None if the LIST
        failed: each is then read on its own). One LIST at a time: the passes of a restart wait
        for it rather than all sending it."""
        listed = self._services_listed.get(namespace)
        if listed is not None:
            return listed
        with self._services_listing:
            listed = self._services_listed.get(namespace)
            if listed is not None:
                return listed
            owners: dict[str, str] = {}
            token: str | None = None
            try:
                while True:
                    page = self.core.list_namespaced_service(namespace, label_selector=label, limit=self.list_page,
                                                             _continue=token)
                    for svc in page.items:
                        refs = svc.metadata.owner_references or []
                        if refs:
                            owners[svc.metadata.name] = refs[0].uid
                    token = page.metadata._continue
                    if not token:
                        break
            except ApiException as e:
                log.warning(json.dumps({"msg": "listing Services failed; reading them one by one",
                                        "namespace": namespace, "error": f"{e.status} {e.reason}"}))
                return None
            self._services_listed[namespace] = owners
            return owners

    def _ensure_service(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            self.core.read_namespaced_service(body["metadata"]["name"], namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            self._create(self.core.create_namespaced_service, namespace, body)

    def ensure_configmap(self, namespace: str, body: dict[str, Any]) -> None:
        """Create once: policy ConfigMaps are immutable and named by their content's hash, so once
        this process has seen one it is not read again (rather than a GET every pass)."""
        key = (namespace, body["metadata"]["name"], "")
        if key in self._configmaps_kept:
            return
        if self.read_configmap(namespace, body["metadata"]["name"]) is None:
            self._create(self.core.create_namespaced_config_map, namespace, body)
        self._configmaps_kept.add(key)

    def keep_configmap(self, namespace: str, body: dict[str, Any], version: str) -> None:
        """Create or update a ConfigMap the operator owns. Read once per `version` per process:
        it only changes when the caller's version does."""
        key = (namespace, body["metadata"]["name"], version)
        if key in self._configmaps_kept:
            return
        name = body["metadata"]["name"]
        current = self.read_configmap(namespace, name)
        if current is None:
            if self._create(self.core.create_namespaced_config_map, namespace, body) is None:
                return  # created meanwhile: compare next pass
        elif current != body["data"]:
            self._wrote()
            self.core.patch_namespaced_config_map(name, namespace, body)
        self._configmaps_kept.add(key)

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
        self._create(self.batch.create_namespaced_job, namespace, body)

    # ------------------------------------------------------------------ Gateway API
    def get_httproute(self, namespace: str, name: str) -> dict[str, Any] | None:
        """From what is known (watch, own writes), else one GET. Callers must not mutate it."""
        known = self.known.get("httproutes", namespace, name)
        if known is ABSENT:
            return None
        if known is not None:
            return known
        since = self.known.now()
        try:
            route: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GATEWAY_GROUP, GATEWAY_VERSION, namespace, "httproutes", name)
        except ApiException as e:
            if e.status == 404:
                held = self.known.put("httproutes", namespace, name, None, ABSENT, read_since=since)
                return None if held is ABSENT else held
            raise
        held = self.known.put("httproutes", namespace, name, route["metadata"].get("resourceVersion"),
                              slim(route, last_applied=True), read_since=since)
        return None if held is ABSENT else held

    def watched_httproute(self, body: dict[str, Any], deleted: bool = False) -> None:
        meta = body.get("metadata") or {}
        self.known.watched("httproutes", meta.get("namespace", ""), meta.get("name", ""),
                           meta.get("resourceVersion"), slim(body, last_applied=True), deleted)

    def replace_httproute(self, namespace: str, body: dict[str, Any]) -> None:
        """Replace with the resourceVersion read: a concurrent edit makes this fail and be retried."""
        self._wrote()
        name = body["metadata"]["name"]
        since = self.known.now()
        try:
            route = self.custom.replace_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, namespace,
                                                                 "httproutes", name, body)
        except ApiException:
            self.known.forget("httproutes", namespace, name)  # e.g. a 409: read it again next time
            raise
        self.known.put("httproutes", namespace, name, route["metadata"].get("resourceVersion"),
                       slim(route, last_applied=True), read_since=since)

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


def merged_patch(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """One JSON merge patch with the effect of `first` and then `then`, for the statuses we write.

    Objects are merged key by key and anything else (lists, scalars, null) is replaced, as the API
    server applies them. Exact unless `first` nulls a key that `then` sets to an object (a merge
    patch cannot say "replace this object"): no status we write does that."""
    out = dict(first)
    for k, v in then.items():
        held = out.get(k)
        out[k] = merged_patch(held, v) if isinstance(v, dict) and isinstance(held, dict) else v
    return out


class StatusWriter:
    """Status patches written by a few threads of their own, so that a pass does not wait for them.

    For what people read, not what a decision reads: a LaunchGate's status (`kubectl get
    launchgates`). Written inside a pass, each status write would hold one of the workers for a
    PATCH to a possibly loaded API server, and at 10,000 gates the 5-minute heartbeat alone is 33
    writes a second (see BENCHMARKS.md).

    Only the latest patch per object waits: a newer one is merged into one not sent yet, so a slow
    API server gets fewer writes, never a backlog of stale ones, and one object's writes never
    overtake each other (an object being written is not picked by a second thread). A failed write
    is logged and dropped: the object's next pass sees its old status and writes again.
    """

    def __init__(self, kube: Kube, threads: int = 4) -> None:
        self._kube = kube
        self._pending: dict[tuple[str, str, str], dict[str, Any]] = {}
        """In the order first submitted: oldest first, a replaced patch keeps its place."""
        self._busy: dict[tuple[str, str, str], dict[str, Any]] = {}
        """Being written, by key: the patch on its way."""
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"launchgate-status-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for t in self._threads:
            t.start()
        metrics.track_status_writes(self.pending)

    def submit(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        key = (plural, namespace, name)
        with self._cond:
            if self._closed:
                raise RuntimeError("status writer is closed")
            held = self._pending.get(key)
            self._pending[key] = status if held is None else merged_patch(held, status)
            self._cond.notify()

    def latest(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The patch still to land for this object (being written, then queued, merged), or None."""
        key = (plural, namespace, name)
        with self._cond:
            writing, queued = self._busy.get(key), self._pending.get(key)
        if writing is None or queued is None:
            return writing if queued is None else queued
        return merged_patch(writing, queued)

    def pending(self) -> int:
        """Objects whose latest status is not written yet (queued or being written)."""
        with self._cond:
            return len(self._pending.keys() | self._busy)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted status is written (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is pending (up to `timeout` seconds), then stop; False if some was not written."""
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(0.1)
        return done

    def _next(self) -> tuple[tuple[str, str, str], dict[str, Any]] | None:
        with self._cond:
            while True:
                key = next((k for k in self._pending if k not in self._busy), None)
                if key is not None:
                    status = self._busy[key] = self._pending.pop(key)
                    return key, status
                if self._closed:
                    return None
                self._cond.wait()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            (plural, namespace, name), status = item
            try:
                self._kube.patch_status(plural, namespace, name, status)
            except NotLeading:
                pass  # the leader writes its own statuses; counted in launchgate_fenced_writes_total
            except ApiException as e:
                if e.status != 404:  # deleted meanwhile: nothing to show the status on
                    metrics.observe_status_write_failure()
                    log.warning(json.dumps({"msg": "status write failed; the next pass writes again",
                                            "object": f"{plural}/{namespace}/{name}", "status": e.status,
                                            "reason": e.reason}))
            except Exception as e:  # noqa: BLE001 - a writer thread must outlive any one failure
                metrics.observe_status_write_failure()
                log.warning(json.dumps({"msg": "status write failed; the next pass writes again",
                                        "object": f"{plural}/{namespace}/{name}", "error": repr(e)}))
            finally:
                with self._cond:
                    self._busy.pop((plural, namespace, name), None)
                    self._cond.notify_all()
