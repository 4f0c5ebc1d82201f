"""Kopf handlers: a few lines each; the work happens in `reconcile` and `engine`.

Kopf watches AgentRollouts and LaunchGates and hands every event to one `schedule.Scheduler`,
which runs each rollout's pass at the rollout's interval and each unused gate's evaluation at the
gate's. Passes call blocking code only through `asyncio.to_thread`, so one slow Prometheus query
never stalls the other rollouts. (A Kopf daemon per object would do the same at ~15 KiB and a
finalizer patch per object; see schedule.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from launchgate import GROUP, VERSION
from launchgate.adapters import metrics, notify
from launchgate.adapters.kube import (
    Kube,
    NotLeading,
    Packed,
    StatusWriter,
    load_config,
    slim,
    write_limiter_for,
)
from launchgate.adapters.kube_objects import ROLLOUT
from launchgate.adapters.leader import LeaseElector
from launchgate.adapters.prometheus import source_from_config
from launchgate.adapters.sharing import SharedQueries
from launchgate.api import AgentRolloutSpec, LaunchGateSpec, validation_message
from launchgate.config import Config, ConfigError
from launchgate.controller import retention
from launchgate.controller.gate_status import idle_gate_status, publish_gate_status
from launchgate.controller.reconcile import Reconciler, Settings, Watched
from launchgate.controller.schedule import Entry, Scheduler
from launchgate.core import engine
from launchgate.core.durations import parse_duration
from launchgate.core.freshness import default_freshness
from launchgate.core.promql import TemplateError

log = logging.getLogger("launchgate")


class NoDiffBase(kopf.DiffBaseStorage):
    """Kopf's "last handled configuration", never built, fetched or stored.

    Kopf builds it on every watch event of every watched kind (a deep copy of the whole body,
    managedFields included) to diff against for on.create/on.update handlers. This operator has
    only event and index handlers, so the diff is never read, and building it would be a large share
    of the operator's CPU while thousands of rollouts are set up. A unit test fails if a changing or spawning
    handler is ever registered: then the real storage is needed again."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


class RetryForever:
    """Kopf's delays between retries of a failed API request, with no last attempt.

    Kopf's default gives up after 9 attempts (about a minute), and a watch whose LIST gives up
    stops the whole operator. At 10,000 rollouts the API server can rebuild its watch cache for
    minutes (429 "storage is (re)initializing", then 504 on the LIST; see BENCHMARKS.md), longer
    than Kopf's default retries last. Like client-go's reflectors, we keep retrying, each failure
    logged, the delay growing to `max_delay`. Re-iterable, not Sized: Kopf starts one iteration per request
    and counts no attempts for an iterable without a length."""

    def __init__(self, max_delay: float) -> None:
        if not max_delay > 0:
            raise ValueError(f"LAUNCHGATE_API_RETRY_MAX_DELAY must be more than 0s, got {max_delay}s")
        self.max_delay = max_delay

    def __iter__(self) -> Any:
        start = (min(d, self.max_delay) for d in (1, 1, 2, 3, 5, 8, 13, 21))
        return itertools.chain(start, itertools.repeat(self.max_delay))


def settings_from_config(config: Config) -> tuple[dict[str, Any], Settings]:
    """The operator's Prometheus source (as `source_from_config` takes it) and pass settings."""
    prom: dict[str, Any] = {
        "url": config.prometheus_url,
        "ca_file": config.prometheus_ca_file,
        "timeout": config.prometheus_timeout,
        "pool_size": config.workers,
    }
    if config.prometheus_token_file:
        prom["token_file"] = config.prometheus_token_file
    settings = Settings(
        identity=config.identity,
        default_gate_interval=config.gate_interval,
        min_interval=config.min_interval,
        status_heartbeat=config.status_heartbeat,
        freshness=default_freshness(config.scrape_interval),
    )
    return prom, settings


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = getattr(memo, "config", None)
    if config is None:
        # Handlers run by `kopf run` rather than `launchgate run`, which reads the settings before
        # Kopf starts. A bad setting is permanent: Kopf then stops instead of retrying every minute.
        try:
            config = memo.config = Config.load()
        except ConfigError as e:
            raise kopf.PermanentError(str(e)) from None
    # Kopf's own bookkeeping lives in status (allowed by the schema), never in the user's metadata.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = "launchgate.dev/finalizer"
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.networking.error_backoffs = RetryForever(config.api_retry_max_delay)
    settings.posting.level = logging.WARNING
    # Kopf starts a worker task per object per event burst and keeps it `idle_timeout` after its
    # last event: on a first listing of thousands of objects, thousands of tasks at once. Shorter
    # lowers that high-water mark. (Not `worker_limit`: an indexed object's worker indexes it and then
    # waits for every object of its kind to be indexed, so with more Approvals or RolloutActions
    # than workers the operator would deadlock.)
    settings.queueing.idle_timeout = 0.5
    prom, lg_settings = settings_from_config(config)
    workers = config.workers
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=workers))
    api = await asyncio.to_thread(load_config, os.environ.get("KUBECONFIG"), workers)
    memo.kube = Kube(api, resync=config.resync_interval, confirmed_resync=config.watched_resync_interval)
    memo.kube.write_limiter = write_limiter_for(config.api_write_qps, config.api_write_burst)
    memo.kube.status_writer = StatusWriter(memo.kube, threads=config.status_writers)
    memo.metrics = SharedQueries(source_from_config(prom),
                                 max_age=config.query_sharing,
                                 batched=source_from_config({**prom, "timeout": config.prometheus_shared_timeout}),
                                 settle=config.trigger_settle)
    memo.settings = lg_settings
    memo.notifier = notify.dispatcher_from_config(config.webhook, on_result=metrics.observe_notification)
    memo.reconciler = Reconciler(memo.kube, memo.metrics, lg_settings, notifier=memo.notifier)
    memo.gate_users = {}
    # Kopf's indexes, handed over by the first watch event (see _observe). Filled in place: each
    # object's handlers get a shallow copy of this memo.
    memo.views = {}
    memo.elector = _elector(config, api, asyncio.get_running_loop(), lambda: memo.scheduler)
    leading = memo.elector.leading if memo.elector is not None else None
    memo.kube.fence = leading
    memo.scheduler = Scheduler(lambda key, entry: _pass(memo, key, entry), concurrency=workers,
                               gone=lambda key, entry: _gone(memo, key, entry), started=_started,
                               leading=leading, standby_poll=config.leader_election_retry_period)
    memo.scheduler_task = asyncio.create_task(memo.scheduler.run(), name="launchgate-scheduler")
    memo.scheduler_task.add_done_callback(_scheduler_ended)
    if memo.elector is not None:
        memo.elector.start()
    port = config.metrics_port
    memo.metrics_server = metrics.METRICS.serve(port, config.metrics_addr) if port else None
    if config.record_retention is not None:
        # The namespaces `launchgate run -n` watches; run by `kopf run`, the memo has none: all.
        sweeper = retention.Retention(memo.kube, config.record_retention, getattr(memo, "namespaces", None) or ())
        memo.retention_task = asyncio.create_task(retention.run(sweeper, leading), name="launchgate-record-retention")


def _elector(config: Config, api: Any, loop: asyncio.AbstractEventLoop,
             scheduler: Callable[[], Scheduler]) -> LeaseElector | None:
    """The Lease elector when LAUNCHGATE_LEADER_ELECTION is on. Its identity is the host name (the
    pod's name in a cluster) and a random suffix, as client-go's, so a restarted pod is a new
    candidate and never mistakes the Lease of its previous life for its own."""
    if not config.leader_election:
        return None
    namespace = config.leader_election_namespace or _own_namespace()
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"

    def changed(leading: bool) -> None:
        if leading:  # from the elector's thread: every object that came due while standing by runs now
            loop.call_soon_threadsafe(scheduler().kick)

    return LeaseElector(api, namespace, config.leader_election_lease, identity, config.lease_terms, on_change=changed)


def _own_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "retention_task", None) is not None:
        memo.retention_task.cancel()
    if getattr(memo, "elector", None) is not None:
        # Given up before the passes in flight end: their remaining writes are refused, and a
        # standby takes over at its next attempt rather than a lease duration later.
        await asyncio.to_thread(memo.elector.stop)
    if getattr(memo, "scheduler_task", None) is not None:
        memo.scheduler_task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await memo.scheduler.drain()
    if getattr(memo, "kube", None) is not None and memo.kube.status_writer is not None:
        await asyncio.to_thread(memo.kube.status_writer.close, 5)
    if getattr(memo, "notifier", None) is not None:
        await asyncio.to_thread(memo.notifier.close, 5)
    if getattr(memo, "metrics_server", None) is not None:
        memo.metrics_server.shutdown()


def _person(body: kopf.Body) -> dict[str, Any]:
    meta = body["metadata"]
    return {"metadata": {"name": meta["name"], "uid": meta.get("uid"),
                         "creationTimestamp": meta.get("creationTimestamp")}, "spec": dict(body.get("spec") or {})}


# Approvals and actions are watched once and indexed by rollout, instead of each rollout listing
# its namespace's every pass (which would grow with the square of the rollouts in a namespace). Kopf runs
# no handler of any kind until every object of an indexed kind has been indexed: an abort or an
# approval is never missed by a pass right after a start. That costs two wake-ups of every waiting
# object's worker per indexed object, so only kinds with few objects are indexed (see `_gate_body`).
@kopf.index(GROUP, VERSION, "approvals")
def approvals_by_rollout(namespace: str | None, spec: kopf.Spec, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, spec.get("rollout")): _person(body)}


@kopf.index(GROUP, VERSION, "rolloutactions")
def actions_by_rollout(namespace: str | None, spec: kopf.Spec, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, spec.get("rollout")): _person(body)}


# A new approval or action is acted on at once rather than at the rollout's next interval: an
# approver waiting out a 5-minute interval after `kubectl launchgate approve` sees nothing happen.
# Kopf indexes an object before it calls its event handlers, so the woken pass sees it. Listing
# events (type None) wake nothing: every rollout is due at once when first seen anyway.
@kopf.on.event(GROUP, VERSION, "approvals")
async def approval_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _wake_rollout(memo, event)


@kopf.on.event(GROUP, VERSION, "rolloutactions")
async def action_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _wake_rollout(memo, event)


def _wake_rollout(memo: kopf.Memo, event: kopf.RawEvent) -> None:
    obj = event["object"]
    rollout = (obj.get("spec") or {}).get("rollout")
    if event["type"] is not None and isinstance(rollout, str) and getattr(memo, "scheduler", None) is not None:
        memo.scheduler.wake(("agentrollouts", (obj.get("metadata") or {}).get("namespace"), rollout))


# The operator's own Deployments and the HTTPRoutes it steers: watched so a pass finds "nothing to
# do" without reading them, and still sees anyone else's change (see kube.Known).
@kopf.on.event("apps", "v1", "deployments", labels={ROLLOUT: kopf.PRESENT})
async def deployment_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    obj = event["object"]
    if memo.kube.watched_deployment(obj, deleted=event["type"] == "DELETED") and event["type"] is not None:
        # Pods came up (or went): the rollout waiting on them moves now, not at its next interval.
        rollout = ((obj.get("metadata") or {}).get("labels") or {}).get(ROLLOUT)
        if isinstance(rollout, str) and getattr(memo, "scheduler", None) is not None:
            memo.scheduler.wake(("agentrollouts", (obj.get("metadata") or {}).get("namespace"), rollout))


@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes")
async def httproute_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.kube.watched_httproute(event["object"], deleted=event["type"] == "DELETED")


def _use_gates(memo: kopf.Memo, namespace: str, rollout: str, gates: set[str], before: set[str]) -> None:
    """A gate is "in use" while an active rollout's phase names it: then only that rollout
    evaluates it (with its versions), and the gate's own daemon stays quiet."""
    for g in before - gates:
        users = memo.gate_users.get((namespace, g))
        if users is not None:
            users.discard(rollout)
            if not users:
                memo.gate_users.pop((namespace, g), None)
    for g in gates - before:
        memo.gate_users.setdefault((namespace, g), set()).add(rollout)


INDEXES = ("approvals_by_rollout", "actions_by_rollout")


def _started(key: Any, late: float) -> None:
    metrics.observe_start_delay("rollout" if key[0] == "agentrollouts" else "gate", late)


def _scheduler_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the scheduler stopped: no rollout is evaluated any more", exc_info=task.exception())


def _observe(memo: kopf.Memo, plural: str, event: kopf.RawEvent, views: dict[str, Any]) -> None:
    if not memo.views:
        memo.views.update({k: views[k] for k in INDEXES})  # live: the same objects serve every later pass
    obj = event["object"]
    meta = obj.get("metadata") or {}
    key = (plural, meta.get("namespace"), meta.get("name"))
    if event["type"] == "DELETED" or meta.get("deletionTimestamp"):
        memo.scheduler.remove(key)  # stop at the deletion mark, as a Kopf daemon does
    else:
        memo.scheduler.observe(key, Packed(slim(obj)))


@kopf.on.event(GROUP, VERSION, "agentrollouts")
async def rollout_event(event: kopf.RawEvent, memo: kopf.Memo, **kwargs: Any) -> None:
    _observe(memo, "agentrollouts", event, kwargs)


@kopf.on.event(GROUP, VERSION, "launchgates")
async def gate_event(event: kopf.RawEvent, memo: kopf.Memo, **kwargs: Any) -> None:
    _observe(memo, "launchgates", event, kwargs)


async def _pass(memo: kopf.Memo, key: Any, entry: Entry) -> float:
    plural, namespace, name = key
    try:
        if plural == "agentrollouts":
            return await _rollout_pass(memo, namespace, name, entry)
        return await _gate_pass(memo, namespace, name, entry)
    except NotLeading:
        # Leadership ended during the pass: its remaining writes were not sent. The new leader
        # decides this object; should this replica lead again, the object is due at once.
        log.info(json.dumps({"msg": "pass stopped: not leading", "object": f"{plural}/{namespace}/{name}"}))
        return 1.0


def _gate_body(memo: kopf.Memo, namespace: str, name: str) -> dict[str, Any] | None:
    """A LaunchGate as its watch last showed it: the body the scheduler keeps for the gate's own
    passes. Not a Kopf index: with one per gate, a start with 10,000 gates (and 40,000 other
    objects whose workers wait for the indexes) spends its first ~100 s at 100% CPU waking waiters
    (see BENCHMARKS.md). A gate not seen yet (just after a start) is None, and the
    pass reads it from the API server, as it does a gate that does not exist."""
    packed = memo.scheduler.body(("launchgates", namespace, name))
    return packed.unpack() if packed is not None else None


async def _rollout_pass(memo: kopf.Memo, namespace: str, name: str, entry: Entry) -> float:
    views = memo.views

    def gate(gname: str) -> dict[str, Any] | None:
        return _gate_body(memo, namespace, gname)

    state = entry.state
    backoff = state.get("backoff", 1.0)
    try:
        watched = Watched(approvals=tuple(views["approvals_by_rollout"].get((namespace, name), ())),
                          actions=tuple(views["actions_by_rollout"].get((namespace, name), ())),
                          body=entry.body.unpack(), gates=gate)
        res = await asyncio.to_thread(memo.reconciler.reconcile, namespace, name, watched)
        now_in_use = set(res.gate_results)
        _use_gates(memo, namespace, name, now_in_use, state.get("in_use", set()))
        state["in_use"] = now_in_use
        if res.error is None:
            state.pop("backoff", None)
            return res.interval
        # A failing step is retried soon, then less and less often, never later than the interval.
        state["backoff"] = min(backoff * 2, 60.0)
        return min(res.interval, backoff)
    except NotLeading:
        raise
    except Exception as e:  # noqa: BLE001 - one rollout's failure must never stop the operator
        log.error(json.dumps({"msg": "reconcile failed", "rollout": f"{namespace}/{name}", "error": repr(e),
                              "detail": str(getattr(e, "body", "") or "")[:2000]}))
        state["backoff"] = min(backoff * 2, 60.0)
        # Capped at the rollout's interval like a failing step: after an API server outage the
        # watches reconnect but report no change, so only this delay brings the rollout back.
        return min(_interval_of(memo, entry), backoff)


def _interval_of(memo: kopf.Memo, entry: Entry) -> float:
    """The rollout's own interval (the spec's default when unset), read from its watched body; the
    operator's default when unreadable, so an invalid spec is retried no later than a valid one."""
    settings = memo.settings
    try:
        raw = entry.body.unpack().get("spec", {}).get("interval") or AgentRolloutSpec.model_fields["interval"].default
        interval = parse_duration(raw)
    except (ValueError, TypeError, AttributeError):
        interval = settings.default_gate_interval
    return max(settings.min_interval, float(interval))


async def _gate_pass(memo: kopf.Memo, namespace: str, name: str, entry: Entry) -> float:
    """A gate not used by any rollout is still evaluated, with its own `variables`, so its status stays live."""
    if memo.gate_users.get((namespace, name)):
        return float(memo.settings.default_gate_interval)
    try:
        return await asyncio.to_thread(evaluate_standalone, memo, namespace, name, entry.body.unpack())
    except NotLeading:
        raise
    except Exception as e:  # noqa: BLE001
        log.error(json.dumps({"msg": "gate evaluation failed", "gate": f"{namespace}/{name}", "error": repr(e)}))
        return float(memo.settings.default_gate_interval)


def _gone(memo: kopf.Memo, key: Any, entry: Entry) -> None:
    plural, namespace, name = key
    memo.kube.forget_object(plural, namespace, name)
    memo.reconciler.forget(plural, namespace, name)
    if plural == "agentrollouts":
        _use_gates(memo, namespace, name, set(), entry.state.get("in_use", set()))
        metrics.forget(namespace, name)


# A standalone gate whose queries name the rollout's versions has nothing to measure until a
# rollout uses it; "hold" with a template error would read as a broken gate.
_ROLLOUT_VARIABLE = re.compile(r"variable \$(canary|stable|version|rollout) is used but not bound")


def evaluate_standalone(memo: Any, namespace: str, name: str, watched: dict[str, Any] | None = None) -> float:
    kube: Kube = memo.kube
    gobj = kube.current("launchgates", namespace, name, watched)
    if gobj is None:
        return float(memo.settings.default_gate_interval)
    old = kube.status_to_be("launchgates", gobj)
    generation = gobj["metadata"].get("generation")
    try:
        spec = LaunchGateSpec.model_validate(gobj.get("spec") or {})
    except ValidationError as e:
        message = f"invalid spec: {validation_message(e)}"
        if old.get("message") != message:
            kube.patch_status_soon("launchgates", namespace, name, {"message": message})
        return float(memo.settings.default_gate_interval)
    interval = parse_duration(spec.interval) if spec.interval else memo.settings.default_gate_interval
    variables = {"namespace": namespace, "window": spec.window, **spec.variables}
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        engine.render_gate(spec, variables)
    except TemplateError as e:
        m = _ROLLOUT_VARIABLE.search(str(e))
        if m is not None:
            status = idle_gate_status(spec, generation, now, m.group(1))
            if old.get("message") != status["message"] or old.get("decision") is not None \
                    or old.get("observedGeneration") != generation:
                kube.patch_status_soon("launchgates", namespace, name, status)
            return max(float(memo.settings.min_interval), interval)
    previous = old.get("decision")
    with metrics.time_evaluation("gate"):
        res = engine.evaluate(spec, memo.metrics, variables, max_age=interval / 4,
                              freshness=memo.settings.freshness)
    if publish_gate_status(kube, gobj, spec, res, now, notifier=memo.notifier,
                           heartbeat=memo.settings.status_heartbeat) and previous != res.decision \
            and res.decision != "block":  # a block's Event is emitted by publish_gate_status
        kube.event(gobj, "Normal" if res.decision == "allow" else "Warning",
                   {"allow": "GateAllows", "hold": "GateHolds"}[res.decision], res.message)
    return max(float(memo.settings.min_interval), interval)
