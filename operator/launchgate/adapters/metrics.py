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

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from launchgate.core.gates import GateResult

EvaluationKind = Literal["rollout", "gate"]
NotificationResult = Literal["sent", "failed", "dropped"]

# Approvals are human: seconds to a day. 900 s is the AI Agent Production Deployment Checklist's
# "approval queue median <= 15 min".
APPROVAL_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
# One evaluation is a handful of PromQL queries plus API reads: milliseconds to a query timeout.
EVALUATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SHARED_QUERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# How late a pass starts: on time is milliseconds; a few seconds is a busy operator; an interval is
# one that has fallen behind.
START_DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


# The per-rollout families: (sample name, type, help). Their samples are kept as ready-made text.
_ROLLOUT_FAMILIES = (
    ("launchgate_decisions_total", "counter", "Rollout decisions made: promote, hold, await_approval, rollback."),
    ("launchgate_rollout_phase_index", "gauge", "Index of the rollout's current phase (0 = first)."),
    ("launchgate_rollout_canary_weight", "gauge", "Share of live traffic on the canary, percent."),
    ("launchgate_rollout_info", "gauge", "Always 1; labels carry the rollout's phase, state and canary revision."),
    ("launchgate_rollout_last_evaluated_timestamp_seconds", "gauge",
     "When the rollout's last evaluation pass ended (unix time): alert when it is older than a "
     "few intervals, the operator has fallen behind."),
    ("launchgate_rollout_consecutive_no_data", "gauge",
     "Evaluations in a row in which a gate of the rollout had no usable data (its failurePolicy counts "
     "them): with state Paused, the rollout is paused for missing data."),
    ("launchgate_approval_requested_timestamp_seconds", "gauge",
     "When the approval request the rollout waits on was made (unix time), labelled by phase; present "
     "only while one waits: alert when it waits longer than the phase's approval SLA."),
    ("launchgate_blocker_value", "gauge",
     "Each blocker's value at the rollout's last pass, for the gates of its current phase (absent without "
     "a finite value): what the gate judged, beside launchgate_blocker_target."),
    ("launchgate_blocker_target", "gauge",
     "The number each blocker's value is compared with (`comparison`: eq, gte, lte); for a baseline ratio "
     "the baseline's value times the ratio."),
    ("launchgate_blocker_pass", "gauge", "1 when the blocker passed at the rollout's last pass, else 0."),
)
_INFO_LABELS = ("phase", "state", "canary_revision")
_BLOCKER_LABELS = ("gate", "blocker")
_TARGET = re.compile(r"^(eq|gte|lte) ([-+0-9.eEinfINFa]+)(x baseline)?$")


@dataclass(frozen=True)
class BlockerPoint:
    """One blocker of a rollout's last pass, as the blocker families show it."""

    gate: str
    blocker: str
    comparison: str
    value: float | None
    target: float | None
    passed: bool


def blocker_points(gates: Mapping[str, GateResult | str]) -> list[BlockerPoint]:
    """The blockers of a pass's gate results (a gate that could not be read is a string: none).
    The target comes from the result's own description ('gte 0.99', 'lte 1.2x baseline')."""
    out: list[BlockerPoint] = []
    for gate, res in gates.items():
        if isinstance(res, str):
            continue
        for b in res.blockers:
            m = _TARGET.match(b.target)
            comparison, target = (m.group(1), float(m.group(2))) if m else ("", None)
            if m and m.group(3):
                target = None if b.baseline_value is None else target * b.baseline_value  # type: ignore[operator]
            out.append(BlockerPoint(gate, b.name, comparison, _finite(b.value), _finite(target), b.passed))
    return out


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class _Row:
    """One rollout's series: its values, and their exposition text until one of them changes."""

    ns: str
    rollout: str
    """namespace="..." and rollout="..." (escaped), in every sample of the row."""
    decisions: dict[str, float] = field(default_factory=dict)
    approval_phases: set[str] = field(default_factory=set)
    info: tuple[str, str, str] | None = None
    phase_index: float = 0.0
    weight: float = 0.0
    evaluated: float | None = None
    """None until the first observe_status: then the gauges appear."""
    no_data: float = 0.0
    approval: tuple[str, float] | None = None
    """(phase, requested at) of the approval request the rollout waits on."""
    blockers: tuple[BlockerPoint, ...] = ()
    text: tuple[str, ...] | None = None

    def parts(self) -> tuple[str, ...]:
        """Each family's lines of this row (see _ROLLOUT_FAMILIES), built once per change."""
        if self.text is None:
            # Labels in name order, as prometheus_client writes them (dashboards may match the text).
            ns, ro = self.ns, self.rollout
            lb = f"{ns},{ro}"
            decisions = "".join(f'launchgate_decisions_total{{decision="{_escape(d)}",{lb}}} {floatToGoString(n)}\n'
                                for d, n in self.decisions.items())
            if self.evaluated is None:
                self.text = (decisions, "", "", "", "", "", "", "", "", "")
            else:
                assert self.info is not None
                phase, state, rev = (_escape(v) for v in self.info)
                self.text = (
                    decisions,
                    f"launchgate_rollout_phase_index{{{lb}}} {floatToGoString(self.phase_index)}\n",
                    f"launchgate_rollout_canary_weight{{{lb}}} {floatToGoString(self.weight)}\n",
                    f'launchgate_rollout_info{{canary_revision="{rev}",{ns},phase="{phase}",{ro},'
                    f'state="{state}"}} 1.0\n',
                    f"launchgate_rollout_last_evaluated_timestamp_seconds{{{lb}}} {floatToGoString(self.evaluated)}\n",
                    f"launchgate_rollout_consecutive_no_data{{{lb}}} {floatToGoString(self.no_data)}\n",
                    "" if self.approval is None else
                    f'launchgate_approval_requested_timestamp_seconds{{{ns},phase="{_escape(self.approval[0])}",{ro}}} '
                    f"{floatToGoString(self.approval[1])}\n",
                    *self._blocker_parts(),
                )
        return self.text


    def _blocker_parts(self) -> tuple[str, str, str]:
        values, targets, passes = [], [], []
        for b in self.blockers:
            lb = f'{self.ns},blocker="{_escape(b.blocker)}",gate="{_escape(b.gate)}",{self.rollout}'
            if b.value is not None:
                values.append(f"launchgate_blocker_value{{{lb}}} {floatToGoString(b.value)}\n")
            if b.target is not None:
                targets.append(f'launchgate_blocker_target{{comparison="{_escape(b.comparison)}",{lb}}} '
                               f"{floatToGoString(b.target)}\n")
            passes.append(f"launchgate_blocker_pass{{{lb}}} {1.0 if b.passed else 0.0}\n")
        return "".join(values), "".join(targets), "".join(passes)


class _RolloutBoard:
    """The per-rollout series, outside prometheus_client's registry.

    Through the registry, every scrape builds a label dict and a Sample per series, formats them
    again and gzips them: seconds per scrape at 10,000 rollouts (60,000 series). Here each
    rollout's lines are formatted when its values change and a scrape joins them. `collect` still
    offers them as metric families, so the registry's readers (get_sample_value) see them too."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.rows: dict[tuple[str, str], _Row] = {}

    def row(self, ns: str, rollout: str) -> _Row:
        """Under the lock."""
        row = self.rows.get((ns, rollout))
        if row is None:
            row = self.rows[(ns, rollout)] = _Row(f'namespace="{_escape(ns)}"', f'rollout="{_escape(rollout)}"')
        return row

    def text(self) -> str:
        with self._lock:
            parts = [row.parts() for row in self.rows.values()]
        out: list[str] = []
        for i, (name, kind, help_) in enumerate(_ROLLOUT_FAMILIES):
            out.append(f"# HELP {name} {help_}\n# TYPE {name} {kind}\n")
            out.extend(p[i] for p in parts)
        return "".join(out)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            rows = [(ns, rollout, dict(r.decisions), r.info, r.phase_index, r.weight, r.evaluated, r.no_data, r.approval,
                     r.blockers) for (ns, rollout), r in self.rows.items()]
        helps = {name: help_ for name, _, help_ in _ROLLOUT_FAMILIES}
        per_rollout = ["namespace", "rollout"]
        per_blocker = [*per_rollout, *_BLOCKER_LABELS]
        decisions = CounterMetricFamily("launchgate_decisions", helps["launchgate_decisions_total"],
                                        labels=[*per_rollout, "decision"])
        f = {name: GaugeMetricFamily(name, helps[name], labels=labels) for name, labels in (
            ("launchgate_rollout_phase_index", per_rollout), ("launchgate_rollout_canary_weight", per_rollout),
            ("launchgate_rollout_last_evaluated_timestamp_seconds", per_rollout),
            ("launchgate_rollout_info", [*per_rollout, *_INFO_LABELS]),
            ("launchgate_rollout_consecutive_no_data", per_rollout),
            ("launchgate_approval_requested_timestamp_seconds", [*per_rollout, "phase"]),
            ("launchgate_blocker_value", per_blocker), ("launchgate_blocker_target", [*per_blocker, "comparison"]),
            ("launchgate_blocker_pass", per_blocker))}
        for ns, rollout, counts, labels, phase_index, weight, evaluated, no_data, approval, blockers in rows:
            for d, n in counts.items():
                decisions.add_metric([ns, rollout, d], n)
            if evaluated is None or labels is None:
                continue
            f["launchgate_rollout_phase_index"].add_metric([ns, rollout], phase_index)
            f["launchgate_rollout_canary_weight"].add_metric([ns, rollout], weight)
            f["launchgate_rollout_last_evaluated_timestamp_seconds"].add_metric([ns, rollout], evaluated)
            f["launchgate_rollout_info"].add_metric([ns, rollout, *labels], 1)
            f["launchgate_rollout_consecutive_no_data"].add_metric([ns, rollout], no_data)
            if approval is not None:
                f["launchgate_approval_requested_timestamp_seconds"].add_metric([ns, rollout, approval[0]], approval[1])
            for b in blockers:
                if b.value is not None:
                    f["launchgate_blocker_value"].add_metric([ns, rollout, b.gate, b.blocker], b.value)
                if b.target is not None:
                    f["launchgate_blocker_target"].add_metric([ns, rollout, b.gate, b.blocker, b.comparison], b.target)
                f["launchgate_blocker_pass"].add_metric([ns, rollout, b.gate, b.blocker], 1.0 if b.passed else 0.0)
        return [decisions, *f.values()]


class OperatorMetrics:
    """The operator's metric families and the small API the reconciler calls. Thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self._served = CollectorRegistry(auto_describe=True)
        self.approval_wait = Histogram(
            "launchgate_approval_wait_seconds", "Time from an approval request to its approval.",
            ["namespace", "rollout", "phase"], buckets=APPROVAL_BUCKETS, registry=r)
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
        self.api_write_wait = Counter(
            "launchgate_api_write_wait_seconds",
            "Seconds writes waited for the client-side write limit (LAUNCHGATE_API_WRITE_QPS). Growing "
            "about as fast as time itself: writes queue behind the limit; raise it if the API server can take more.",
            registry=r)
        self.status_writes_pending = Gauge(
            "launchgate_status_writes_pending",
            "LaunchGates whose latest status waits to be written (queued or being written). Written off "
            "the pass by LAUNCHGATE_STATUS_WRITERS threads; a number that keeps growing means the API "
            "server takes status writes more slowly than gates change.", registry=r)
        self.status_write_failures = Counter(
            "launchgate_status_write_failures_total",
            "LaunchGate status writes that failed (other than the object being gone); the gate's next "
            "pass writes again.", registry=r)
        self.leader = Gauge(
            "launchgate_leader",
            "1 while this replica holds the leader Lease and decides, 0 while it stands by "
            "(LAUNCHGATE_LEADER_ELECTION); without leader election always 1. Across replicas the sum "
            "is 1, or 0 during a takeover.", registry=r)
        self.leader.set(1)
        self.fenced_writes = Counter(
            "launchgate_fenced_writes_total",
            "Writes refused inside the operator because this replica was not leading when it was about "
            "to send them (a pass that outlived its leadership).", registry=r)
        self.notifications = Counter(
            "launchgate_notifications_total", "Owner notifications by result: sent, failed, dropped.",
            ["result"], registry=r)
        for result in ("sent", "failed", "dropped"):
            self.notifications.labels(result=result)  # export zeros: "no failures" is a visible fact
        for kind in ("rollout", "gate"):
            self.evaluation_duration.labels(kind=kind)
            self.start_delay.labels(kind=kind)
        self._lock = threading.Lock()
        self.board = _RolloutBoard(self._lock)
        # `registry` shows every series (get_sample_value, tests); /metrics formats `r` with
        # prometheus_client and appends the board's own text.
        self.registry.register(r)
        self.registry.register(self.board)

    # ------------------------------------------------------------------ reconciler API
    def observe_decision(self, ns: str, rollout: str, decision: str) -> None:
        """Count one decision; call it once per new timeline record, not per unchanged pass."""
        with self._lock:
            row = self.board.row(ns, rollout)
            row.decisions[decision] = row.decisions.get(decision, 0.0) + 1
            row.text = None

    def observe_status(self, ns: str, rollout: str, phase: str | None, phase_index: int | None,
                       weight: int | None, state: str | None, canary_revision: str | None,
                       consecutive_no_data: int | None = None,
                       approval_requested: tuple[str, float] | None = None,
                       blockers: Sequence[BlockerPoint] = ()) -> None:
        """Publish where a rollout stands after a pass; the previous info series is removed when
        labels change, and the approval series when no request waits any more."""
        labels = (phase or "", state or "", canary_revision or "")
        with self._lock:
            row = self.board.row(ns, rollout)
            row.info = labels
            row.phase_index = float(phase_index or 0)
            row.weight = float(weight or 0)
            row.evaluated = time.time()
            row.no_data = float(consecutive_no_data or 0)
            row.approval = approval_requested
            row.blockers = tuple(blockers)
            row.text = None

    def observe_approval_wait(self, ns: str, rollout: str, phase: str, seconds: float) -> None:
        """Record how long a granted approval waited; the checklist's Canary2 gate is about this queue."""
        with self._lock:
            self.board.row(ns, rollout).approval_phases.add(phase)
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
            row = self.board.rows.pop((ns, rollout), None)
            if row is None:
                return
            for p in row.approval_phases:
                _remove(self.approval_wait, ns, rollout, p)

    def forget_rollouts(self) -> None:
        """Drop every rollout's series (this replica stopped deciding)."""
        with self._lock:
            rows = list(self.board.rows.items())
            self.board.rows.clear()
            for (ns, rollout), row in rows:
                for p in row.approval_phases:
                    _remove(self.approval_wait, ns, rollout, p)

    def exposition(self) -> bytes:
        """The text format (0.0.4) of every series: the board's, joined, and the rest's."""
        return generate_latest(self._served) + self.board.text().encode()

    def serve(self, port: int, addr: str = "0.0.0.0") -> ThreadingHTTPServer:
        """Serve `/metrics` on a daemon thread; returns the HTTP server.

        Port 0 picks a free port (`server.server_address[1]`); call `server.shutdown()` to stop.
        Always the plain text format, never gzipped: compressing megabytes on every scrape costs
        the operator more CPU than the bytes cost the network."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = metrics.exposition()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer((addr, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="launchgate-metrics", daemon=True).start()
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
                   state: str | None, canary_revision: str | None, consecutive_no_data: int | None = None,
                   approval_requested: tuple[str, float] | None = None,
                   blockers: Sequence[BlockerPoint] = ()) -> None:
    METRICS.observe_status(ns, rollout, phase, phase_index, weight, state, canary_revision, consecutive_no_data,
                           approval_requested, blockers)


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


def observe_leading(leading: bool) -> None:
    """A standby's per-rollout series would be its last leading days' and go stale (and an alert on
    the last evaluation's age would fire on them): only the leader shows rollouts."""
    METRICS.leader.set(1 if leading else 0)
    if not leading:
        METRICS.forget_rollouts()


def observe_fenced_write() -> None:
    METRICS.fenced_writes.inc()


def observe_notification(result: NotificationResult) -> None:
    METRICS.observe_notification(result)


def track_status_writes(pending: Callable[[], int]) -> None:
    """launchgate_status_writes_pending reads `pending()` at each scrape (kube.StatusWriter.pending)."""
    METRICS.status_writes_pending.set_function(pending)


def observe_api_write_wait(seconds: float) -> None:
    if seconds > 0:
        METRICS.api_write_wait.inc(seconds)


def observe_status_write_failure() -> None:
    METRICS.status_write_failures.inc()


def forget(ns: str, rollout: str) -> None:
    METRICS.forget(ns, rollout)


def serve(port: int, addr: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start the `/metrics` endpoint (LAUNCHGATE_METRICS_PORT in the operator; 0 picks a free port)."""
    return METRICS.serve(port, addr)
