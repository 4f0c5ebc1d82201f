"""The operator's own metrics, served on `/metrics` for the Prometheus that watches the watcher.

SREs need to see the operator the way they see the agents: where each rollout stands, how often
it promotes or rolls back, how long humans take to approve, how long an evaluation takes, and the
load it puts on Prometheus and the API server (the quantities the benchmarks track per window).

Everything lives in a private CollectorRegistry rather than prometheus_client's global one, so
library metrics cannot collide with ours and tests can build a fresh set at will. Series are
labelled by namespace and rollout; `forget` removes a deleted rollout's series and
`observe_status` replaces (not adds to) its info series, so label sets stay bounded by the live
rollouts, not by everything the operator ever saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

EvaluationKind = Literal["rollout", "gate"]
NotificationResult = Literal["sent", "failed", "dropped"]

# Approvals are human: seconds to a day. 900 s is the seed's "approval queue median <= 15 min".
APPROVAL_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
# One evaluation is a handful of PromQL queries plus API reads: milliseconds to a query timeout.
EVALUATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SHARED_QUERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# How late a pass starts: on time is milliseconds; a few seconds is a busy operator; an interval is
# one that has fallen behind.
START_DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class _Seen:
    """Label values created for one rollout, so `forget` can remove exactly those series."""

    decisions: set[str] = field(default_factory=set)
    approval_phases: set[str] = field(default_factory=set)
    info: tuple[str, str, str] | None = None
    gauges: bool = False


class OperatorMetrics:
    """The operator's metric families and the small API the reconciler calls. Thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.approval_wait = Histogram(
            "launchgate_approval_wait_seconds", "Time from an approval request to its approval.",
            ["namespace", "rollout", "phase"], buckets=APPROVAL_BUCKETS, registry=r)
        self.decisions = Counter(
            "launchgate_decisions_total", "Rollout decisions made: promote, hold, await_approval, rollback.",
            ["namespace", "rollout", "decision"], registry=r)
        self.phase_index = Gauge(
            "launchgate_rollout_phase_index", "Index of the rollout's current phase (0 = first).",
            ["namespace", "rollout"], registry=r)
        self.canary_weight = Gauge(
            "launchgate_rollout_canary_weight", "Share of live traffic on the canary, percent.",
            ["namespace", "rollout"], registry=r)
        self.info = Gauge(
            "launchgate_rollout_info", "Always 1; labels carry the rollout's phase, state and canary revision.",
            ["namespace", "rollout", "phase", "state", "canary_revision"], registry=r)
        self.last_evaluated = Gauge(
            "launchgate_rollout_last_evaluated_timestamp_seconds",
            "When the rollout's last evaluation pass ended (unix time): alert when it is older than a "
            "few intervals, the operator has fallen behind.",
            ["namespace", "rollout"], registry=r)
        self.evaluation_duration = Histogram(
            "launchgate_evaluation_duration_seconds", "Wall time of one evaluation pass.",
            ["kind"], buckets=EVALUATION_BUCKETS, registry=r)
        self.start_delay = Histogram(
            "launchgate_pass_start_delay_seconds",
            "How long after it was due a pass started (waiting for a free worker). Passes are due an "
            "interval after the last one was due, so this is how late evaluations are against their "
            "schedule: alert when its p99 nears the interval.",
            ["kind"], buckets=START_DELAY_BUCKETS, registry=r)
        self.prometheus_queries = Counter(
            "launchgate_prometheus_queries_total", "PromQL queries sent to Prometheus.", registry=r)
        self.shared_query_duration = Histogram(
            "launchgate_shared_query_duration_seconds",
            "Wall time of one query shared by all rollouts of a gate shape (a trigger window is one). "
            "Answers are used for LAUNCHGATE_QUERY_SHARING, or three times this when longer (twice for a "
            "rollback trigger's window).",
            buckets=SHARED_QUERY_BUCKETS, registry=r)
        self.api_writes = Counter(
            "launchgate_api_writes_total", "Writes (create, patch, delete) sent to the Kubernetes API server.", registry=r)
        self.notifications = Counter(
            "launchgate_notifications_total", "Owner notifications by result: sent, failed, dropped.",
            ["result"], registry=r)
        for result in ("sent", "failed", "dropped"):
            self.notifications.labels(result=result)  # export zeros: "no failures" is a visible fact
        for kind in ("rollout", "gate"):
            self.evaluation_duration.labels(kind=kind)
            self.start_delay.labels(kind=kind)
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], _Seen] = {}

    def _entry(self, ns: str, rollout: str) -> _Seen:
        return self._seen.setdefault((ns, rollout), _Seen())

    # ------------------------------------------------------------------ reconciler API
    def observe_decision(self, ns: str, rollout: str, decision: str) -> None:
        """Count one decision; call it once per new timeline record, not per unchanged pass."""
        with self._lock:
            self._entry(ns, rollout).decisions.add(decision)
            self.decisions.labels(namespace=ns, rollout=rollout, decision=decision).inc()

    def observe_status(self, ns: str, rollout: str, phase: str | None, phase_index: int | None,
                       weight: int | None, state: str | None, canary_revision: str | None) -> None:
        """Publish where a rollout stands after a pass; the previous info series is removed when labels change."""
        labels = (phase or "", state or "", canary_revision or "")
        with self._lock:
            seen = self._entry(ns, rollout)
            if seen.info is not None and seen.info != labels:
                _remove(self.info, ns, rollout, *seen.info)
            seen.info = labels
            seen.gauges = True
            self.info.labels(ns, rollout, *labels).set(1)
            self.phase_index.labels(namespace=ns, rollout=rollout).set(phase_index or 0)
            self.canary_weight.labels(namespace=ns, rollout=rollout).set(weight or 0)
            self.last_evaluated.labels(namespace=ns, rollout=rollout).set(time.time())

    def observe_approval_wait(self, ns: str, rollout: str, phase: str, seconds: float) -> None:
        """Record how long a granted approval waited; the seed's Canary2 gate is about this queue."""
        with self._lock:
            self._entry(ns, rollout).approval_phases.add(phase)
            self.approval_wait.labels(namespace=ns, rollout=rollout, phase=phase).observe(max(0.0, seconds))

    @contextmanager
    def time_evaluation(self, kind: EvaluationKind) -> Iterator[None]:
        """Time one evaluation pass (`with metrics.time_evaluation("rollout"): ...`), failures included."""
        if kind not in ("rollout", "gate"):
            raise ValueError(f"evaluation kind must be rollout or gate, got {kind!r}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.evaluation_duration.labels(kind=kind).observe(time.perf_counter() - start)

    def observe_start_delay(self, kind: EvaluationKind, seconds: float) -> None:
        self.start_delay.labels(kind=kind).observe(max(0.0, seconds))

    def observe_prometheus_queries(self, n: int = 1) -> None:
        self.prometheus_queries.inc(n)

    def observe_api_writes(self, n: int = 1) -> None:
        self.api_writes.inc(n)

    def observe_shared_query(self, seconds: float) -> None:
        self.shared_query_duration.observe(max(0.0, seconds))

    def observe_notification(self, result: NotificationResult) -> None:
        """The `on_result` hook of notify.AsyncDispatcher."""
        self.notifications.labels(result=result).inc()

    def forget(self, ns: str, rollout: str) -> None:
        """Drop every series of a deleted rollout so label sets do not grow with churn."""
        with self._lock:
            seen = self._seen.pop((ns, rollout), None)
            if seen is None:
                return
            for d in seen.decisions:
                _remove(self.decisions, ns, rollout, d)
            for p in seen.approval_phases:
                _remove(self.approval_wait, ns, rollout, p)
            if seen.info is not None:
                _remove(self.info, ns, rollout, *seen.info)
            if seen.gauges:
                _remove(self.phase_index, ns, rollout)
                _remove(self.canary_weight, ns, rollout)
                _remove(self.last_evaluated, ns, rollout)

    def serve(self, port: int, addr: str = "0.0.0.0") -> WSGIServer:
        """Serve `/metrics` from this registry on a daemon thread; returns the HTTP server.

        Port 0 picks a free port (`server.server_address[1]`); call `server.shutdown()` to stop.
        """
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


def _remove(metric: Any, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


# --------------------------------------------------------------------------- module-level API

METRICS = OperatorMetrics()
"""The operator's one set of metrics; the functions below act on it."""


def observe_decision(ns: str, rollout: str, decision: str) -> None:
    METRICS.observe_decision(ns, rollout, decision)


def observe_status(ns: str, rollout: str, phase: str | None, phase_index: int | None, weight: int | None,
                   state: str | None, canary_revision: str | None) -> None:
    METRICS.observe_status(ns, rollout, phase, phase_index, weight, state, canary_revision)


def observe_approval_wait(ns: str, rollout: str, phase: str, seconds: float) -> None:
    METRICS.observe_approval_wait(ns, rollout, phase, seconds)


def time_evaluation(kind: EvaluationKind) -> AbstractContextManager[None]:
    return METRICS.time_evaluation(kind)


def observe_start_delay(kind: EvaluationKind, seconds: float) -> None:
    METRICS.observe_start_delay(kind, seconds)


def observe_prometheus_queries(n: int = 1) -> None:
    METRICS.observe_prometheus_queries(n)


def observe_shared_query(seconds: float) -> None:
    METRICS.observe_shared_query(seconds)


def observe_api_writes(n: int = 1) -> None:
    METRICS.observe_api_writes(n)


def observe_notification(result: NotificationResult) -> None:
    METRICS.observe_notification(result)


def forget(ns: str, rollout: str) -> None:
    METRICS.forget(ns, rollout)


def serve(port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Start the `/metrics` endpoint (LAUNCHGATE_METRICS_PORT in the operator; 0 picks a free port)."""
    return METRICS.serve(port, addr)
