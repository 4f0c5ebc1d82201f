"""`make bench`: how launchgate's one operator replica scales with the number of rollouts.

    python -m launchgate_dev.bench [--sizes 10,100,1000] [--window 30s] [--out BENCHMARKS.md --json benchmarks/results/n10-n100-n1000-make-bench.json]

Why a benchmark and not timed tests: the product's scale target (10,000 rollouts on one replica,
under 1 GiB, every rollout evaluated within 5 s of its 30 s window) is a property to measure and
track, not a pass/fail assertion that flakes on a busy CI machine.

For each size N it starts a fresh cluster (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok playing the kubelet of enough fake Nodes for the pods: see
launchgate_dev.devenv) and Prometheus, ONE operator process under its shipped RBAC, and N
AgentRollouts, each with its own LaunchGate (two blockers, one of them a ratio to the stable
baseline) and HTTPRoute, and one rollback trigger in its canary phase. Each rollout's pods (2
stable, 1 canary) are made, scheduled and reported ready by those real components, and the
operator waits for them as it would on a cluster. Then:

1. idle: every rollout stable, nothing to evaluate; API traffic, CPU, RSS per window;
2. active: every rollout a canary held at Canary1 by a long minDuration, so every pass evaluates
   its gate and trigger against Prometheus and decides `hold` (the worst steady state: in real
   fleets most rollouts are idle). Evaluation lag, API requests, Prometheus queries, CPU, RSS;
3. rollback: a sample of canaries turns bad (3x the stable error rate); the time from the trigger's
   `for` being met in Prometheus to the HTTPRoute being back at 100/0.

How things are measured, and why that way:

- Evaluation lag comes from the operator's `launchgate_rollout_last_evaluated_timestamp_seconds`
  gauge (the end of each rollout's last pass), scraped from its /metrics three times per window
  (a value lasts a whole interval, so no pass is missed; at 10,000 rollouts, scraping more often
  takes a noticeable share of the operator's CPU): each distinct value is one evaluation.
  (Prometheus' query log cannot tell evaluations apart: gate and trigger queries are shared
  between rollouts and name no revision.) Lag is the gap between
  consecutive evaluations of one rollout minus the window (the rollout's interval); the target is
  a gap of at most window + 5 s.
- API requests come from kube-apiserver's own /metrics (apiserver_request_total by verb and
  resource), read as admin before and after a phase. The benchmark issues no API requests during a
  measured phase, and the resources only the cluster's components ask for (COMPONENT_RESOURCES:
  Leases, Nodes, pods, ReplicaSets, EndpointSlices, Deployment and Job status, ServiceAccount
  tokens) are left out, so the delta is the operator's, its watches and events aside: those
  resources are shared, and in a measured phase no pod changes, so the controllers have none to
  make but their watches' periodic renewals.
- Prometheus queries come from Prometheus' /metrics (prometheus_http_requests_total for
  /api/v1/query and /api/v1/query_range), cross-checked with the query log.
- RSS and CPU come from /proc of the operator process (VmRSS sampled every second, utime+stime),
  and the same way from kube-controller-manager's and kwok's, which the report shows beside it:
  what the cluster's side of the same rollouts costs.
- The moment a trigger's duration is met is found afterwards by asking Prometheus the trigger's
  own sustained query (`engine.evaluate_trigger`, the operator's code) at earlier times: the
  earliest time it would have fired. "Weights back" is when a read of the sampled HTTPRoutes
  (every half second) first shows the canary backendRef at weight 0.

Synthetic metrics: synthetic.py's `Simulator` serves one version per process, and thousands of
agent processes would not fit on a test machine, so a few "fleet" processes (`_fleet`
subcommand) each hold many `Simulator`s, one per (namespace, version), and export their
`agent_jobs_total` series (the only family the bench's gates read) under the same names and labels
as the synthetic agent. Counters are still the Simulator's exact integrals of the configured rates.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from launchgate import GROUP, VERSION
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.api import RollbackTrigger
from launchgate.core import engine
from launchgate.core.durations import format_duration, parse_duration
from launchgate_dev.demo import (
    OperatorProcess,
    _die_with_parent,
    cleanup_on_signals,
    no_interrupts,
    operator_kubeconfig,
)
from launchgate_dev.devenv import (
    NODE_CAPACITY,
    REPO_CRDS,
    REPO_ROOT,
    ControlPlane,
    DevEnvError,
    PrometheusServer,
    _free_port,
    binaries,
)
from launchgate_dev.synthetic import JOBS, JOBS_HELP, Simulator

NAMESPACE = "bench"
PER_FLEET = 250  # rollouts (two versions each) per fleet process
BUMP_THREADS = 16  # threads patching new revisions in, unless --bump-rate paces them
GENERATED_END = "<!-- end of generated results: text below this line is kept when the benchmark reruns -->"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
#: Resources (or resource/subresource) only the cluster's own components ask the API server for:
#: the API server's and kwok's Lease heartbeats, kwok's Node and pod status, the scheduler's
#: bindings, the controllers' ReplicaSets, pods, EndpointSlices and status writes, their
#: ServiceAccount tokens; "" is non-resource URLs such as /metrics. The operator asks for none of
#: them, so leaving them out of the request counts leaves the operator's.
COMPONENT_RESOURCES = ("", "leases", "nodes", "pods", "replicasets", "endpointslices", "endpoints", "serviceaccounts",
                       "controllerrevisions", "deployments/status", "jobs/status")
#: Cluster components whose CPU and memory the report shows next to the operator's.
COMPONENTS = ("kube-controller-manager", "kwok")
#: Pods each benchmark rollout runs (2 stable replicas, 1 canary at Canary1): the fake Nodes are
#: sized for them.
PODS_PER_ROLLOUT = 3
READ_VERBS = frozenset({"GET", "LIST"})
TARGET_N, TARGET_WINDOW_S, TARGET_SLACK_S, TARGET_RSS_MIB = 10_000, 30.0, 5.0, 1024.0
STABLE_SUCCESS, CANARY_SUCCESS, BAD_SUCCESS = 0.99, 0.994, 0.97  # bad: 3% errors = 3x stable's 1%

SUCCESS_QUERY = ('sum(rate(agent_jobs_total{namespace="$namespace",version="$canary",outcome="success"}[$window]))'
                 ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$canary"}[$window]))')
ERROR_QUERY = ('sum(rate(agent_jobs_total{{namespace="$namespace",version="$version",outcome="error"}}[{w}]))'
               ' / sum(rate(agent_jobs_total{{namespace="$namespace",version="$version"}}[{w}]))')


# ============================================================================ pure helpers
# (no I/O: tests/unit/test_bench_report.py covers them)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None for no data."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


_VERSION_RE = re.compile(r'version="([^"]+)"')


LAST_EVALUATED = "launchgate_rollout_last_evaluated_timestamp_seconds"
PASS_DURATION = "launchgate_evaluation_duration_seconds"
SHARED_QUERY_DURATION = "launchgate_shared_query_duration_seconds"
START_DELAY = "launchgate_pass_start_delay_seconds"


_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPED_RE = re.compile(r'\\[\\"n]')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def last_evaluated(text: str, namespace: str) -> dict[str, float]:
    """Per rollout, the operator's `launchgate_rollout_last_evaluated_timestamp_seconds` (the end
    of its last pass, unix seconds) from one scrape of its /metrics.

    Only that family's lines are parsed: prometheus_client's parser, run over the whole exposition
    of 10,000 rollouts every 10 s, would take a large share of the harness's CPU, from the same two
    cores as the operator it measures."""
    out: dict[str, float] = {}
    prefix = LAST_EVALUATED + "{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, _, rest = line[len(prefix):].rpartition("}")
        labels = {k: _ESCAPED_RE.sub(lambda m: _UNESCAPE[m.group(0)], v) if "\\" in v else v
                  for k, v in _LABEL_RE.findall(labels_text)}
        if labels.get("namespace") == namespace and "rollout" in labels:
            out[labels["rollout"]] = float(rest.split()[0])
    return out


class EvaluationPoller(threading.Thread):
    """Scrapes the operator's /metrics every `every` seconds and keeps each rollout's distinct
    last-evaluated timestamps: the record of its evaluations. The gauge holds its value for a
    whole interval, so polling a few times per interval sees every pass; the scrape is cheap
    next to a pass, and its cost is counted in the operator's CPU like any scrape would be."""

    def __init__(self, url: str, namespace: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.namespace, self.every = url, namespace, every
        self.stop_flag = threading.Event()
        self.seen: dict[str, set[float]] = {}
        self._lock = threading.Lock()
        self._polled = threading.Condition(self._lock)
        self.last_poll_began = 0.0
        """When the last successful poll began (unix time): it saw every evaluation until then."""

    def run(self) -> None:
        while not self.stop_flag.is_set():
            began = time.time()
            with contextlib.suppress(requests.RequestException):
                values = last_evaluated(requests.get(self.url, timeout=10).text, self.namespace)
                with self._lock:
                    for rollout, ts in values.items():
                        self.seen.setdefault(rollout, set()).add(ts)
                    self.last_poll_began = began
                    self._polled.notify_all()
            self.stop_flag.wait(self.every)

    def seen_until(self, t: float, timeout: float) -> bool:
        """Wait for a poll begun after `t`. Without it the evaluations after the last poll before
        the end of a measurement go uncounted: at 10,000 rollouts, where a poll takes seconds, a
        large share of them."""
        with self._polled:
            return self._polled.wait_for(lambda: self.last_poll_began >= t, timeout)

    def between(self, start: float, end: float) -> dict[str, list[float]]:
        with self._lock:
            return {r: sorted(t for t in ts if start <= t <= end) for r, ts in self.seen.items()}

    def firsts(self) -> dict[str, float]:
        """Each rollout's earliest evaluation seen."""
        with self._lock:
            return {r: min(ts) for r, ts in self.seen.items() if ts}


class StatusWatch(threading.Thread):
    """Every rollout's status, kept by one watch, for the set-up's waits. A LIST of every rollout
    every 10 s instead would be, at 10,000, tens of MB the API server encodes and this process
    decodes, on the cores the operator is measured on, and under load a 504."""

    def __init__(self, custom: Any, namespace: str, group: str = GROUP, version: str = VERSION,
                 plural: str = "agentrollouts",
                 keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        """`keep` reduces a watched object to what the waits read (default: its status); the
        side-by-side benchmark watches Argo Rollouts' Rollouts and AnalysisRuns with the same class."""
        super().__init__(daemon=True)
        self.custom, self.namespace = custom, namespace
        self.group, self.version, self.plural = group, version, plural
        self.keep = keep or (lambda o: {"status": o.get("status") or {}})
        self.stop_flag = threading.Event()
        self._objs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.error: str | None = None
        """The last failure to list or watch (retried every second), for the harness to report."""

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """{name: keep(object)}: by default {"status": ...}, a listed object reduced to what the waits read."""
        with self._lock:
            return dict(self._objs)

    def run(self) -> None:
        rv: str | None = None
        while not self.stop_flag.is_set():
            try:
                if rv is None:
                    res = self.custom.list_namespaced_custom_object(self.group, self.version, self.namespace,
                                                                    self.plural, resource_version="0")
                    with self._lock:
                        self._objs = {o["metadata"]["name"]: self.keep(o) for o in res["items"]}
                    rv = res["metadata"]["resourceVersion"]
                rv = self._follow(rv)
                self.error = None
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                self.error = f"{type(e).__name__}: {str(e)[:200]}"
                if isinstance(e, ApiException) and e.status == 410:
                    rv = None  # too old to resume from: list again
                self.stop_flag.wait(1.0)

    def _follow(self, rv: str) -> str:
        """Apply watch events from `rv` until the server ends the watch; the last version seen."""
        stream = watch.Watch().stream(self.custom.list_namespaced_custom_object, self.group, self.version,
                                      self.namespace, self.plural, resource_version=rv, allow_watch_bookmarks=True,
                                      timeout_seconds=60)
        for event in stream:
            obj = event["object"]
            rv = obj["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            with self._lock:
                if event["type"] == "DELETED":
                    self._objs.pop(name, None)
                else:
                    self._objs[name] = self.keep(obj)
            if self.stop_flag.is_set():
                break
        return rv


@dataclasses.dataclass(frozen=True)
class LagStats:
    """Gaps between consecutive evaluations of each rollout, and how late they were."""

    evaluations: int
    rollouts_evaluated: int
    rollouts_expected: int
    gaps: int
    gap_p50: float | None
    gap_p99: float | None
    gap_max: float | None
    lag_p50: float | None
    lag_p99: float | None
    lag_max: float | None
    within_target_pct: float | None
    never_evaluated: int
    evaluations_per_rollout_window: float | None


def lag_stats(times: Mapping[str, Sequence[float]], expected: Iterable[str], start: float, end: float,
              window: float, slack: float = TARGET_SLACK_S) -> LagStats:
    """Evaluation lag over [start, end]: lag = gap between evaluations − window (≥ 0 means late).

    A rollout never evaluated in the period counts as one gap of the whole period (the worst
    case we can state), and the time from its last evaluation to `end` counts as a gap when it
    is already longer than any gap seen, so a rollout that stops being evaluated is not missed.
    """
    expected = list(expected)
    gaps: list[float] = []
    never = 0
    count = 0
    for r in expected:
        ts = [t for t in times.get(r, ()) if start <= t <= end]
        count += len(ts)
        if not ts:
            never += 1
            gaps.append(end - start)
            continue
        own = [b - a for a, b in zip(ts, ts[1:], strict=False)]
        tail = end - ts[-1]
        if tail > window + slack and (not own or tail > max(own)):
            own.append(tail)
        gaps += own
    lags = [g - window for g in gaps]
    within = 100.0 * sum(1 for g in gaps if g <= window + slack) / len(gaps) if gaps else None
    periods = (end - start) / window if window > 0 else 0
    return LagStats(
        evaluations=count,
        rollouts_evaluated=len(expected) - never,
        rollouts_expected=len(expected),
        gaps=len(gaps),
        gap_p50=percentile(gaps, 50), gap_p99=percentile(gaps, 99), gap_max=max(gaps) if gaps else None,
        lag_p50=percentile(lags, 50), lag_p99=percentile(lags, 99), lag_max=max(lags) if lags else None,
        within_target_pct=within,
        never_evaluated=never,
        evaluations_per_rollout_window=(count / len(expected) / periods) if expected and periods else None,
    )


def earliest(holds: Callable[[float], bool], lo: float, hi: float, resolution: float = 0.1) -> float | None:
    """The earliest time in [lo, hi] (to `resolution`) from which `holds` is true, by bisection;
    None when it does not hold at `hi`. For conditions that keep holding once they do, such as a
    sustained breach of a canary that stays bad."""
    if not holds(hi):
        return None
    while hi - lo > resolution:
        mid = (lo + hi) / 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    return hi


def parse_counters(text: str, names: Iterable[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of the named metrics from Prometheus text exposition: {(name, sorted labels): value}."""
    wanted = set(names)
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in wanted:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def request_delta(before: Mapping[tuple[str, tuple[tuple[str, str], ...]], float],
                  after: Mapping[tuple[str, tuple[tuple[str, str], ...]], float],
                  exclude_resources: Iterable[str] = COMPONENT_RESOURCES) -> dict[tuple[str, str], float]:
    """apiserver_request_total increase by (verb, resource[/subresource]), without the excluded
    resources, named alone (all its subresources) or as resource/subresource."""
    skip = set(exclude_resources)
    out: dict[tuple[str, str], float] = {}
    for key, value in after.items():
        name, labels = key
        if name != "apiserver_request_total":
            continue
        lab = dict(labels)
        resource = lab.get("resource", "")
        if resource in skip:
            continue
        inc = value - before.get(key, 0.0)
        res = resource + (f"/{lab['subresource']}" if lab.get("subresource") else "")
        if inc <= 0 or res in skip:
            continue
        k = (lab.get("verb", "?"), res)
        out[k] = out.get(k, 0.0) + inc
    return out


def split_requests(delta: Mapping[tuple[str, str], float]) -> tuple[float, float, float]:
    """(writes, reads, watches) from a request_delta."""
    writes = sum(v for (verb, _), v in delta.items() if verb in WRITE_VERBS)
    reads = sum(v for (verb, _), v in delta.items() if verb in READ_VERBS)
    watches = sum(v for (verb, _), v in delta.items() if verb == "WATCH")
    return writes, reads, watches


def bucket_quantile(before: Mapping[tuple[str, tuple[tuple[str, str], ...]], float],
                    after: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, q: float,
                    **match: str) -> float | None:
    """Prometheus' histogram_quantile (q in 0..1) over the increase of histogram `name` between
    two scrapes, for the series whose labels include `match`; None when nothing was observed."""
    increase: dict[float, float] = {}
    for key, value in after.items():
        n, labels = key
        lab = dict(labels)
        if n != f"{name}_bucket" or "le" not in lab or any(lab.get(k) != v for k, v in match.items()):
            continue
        le = float(lab["le"])
        increase[le] = increase.get(le, 0.0) + value - before.get(key, 0.0)
    if not increase or increase.get(math.inf, 0.0) <= 0:
        return None
    rank = q * increase[math.inf]
    lower, below = 0.0, 0.0
    for le in sorted(increase):
        if increase[le] >= rank:
            if le == math.inf:
                return lower
            return lower + (le - lower) * (rank - below) / (increase[le] - below) if increase[le] > below else le
        lower, below = le, increase[le]
    return lower


def counter_sum(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
                **match: str) -> float:
    """Sum of a counter's samples whose labels include `match`."""
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == want for k, want in match.items()))


def fit_linear(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares intercept and slope; None with fewer than two distinct x."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def projection(results: Sequence[Mapping[str, Any]], target_n: int = TARGET_N,
               target_window: float = TARGET_WINDOW_S) -> dict[str, Any]:
    """What the measured sizes say about `target_n` rollouts at `target_window`.

    RSS: a straight line through (N, max RSS) of the active phase. CPU: measured CPU per
    evaluation times the evaluations per second the target needs (a Python process runs its
    Python code on one core at a time, so more than one core's worth cannot keep up). API and
    Prometheus load scale with evaluations per second.
    """
    ok = [r for r in results if r.get("active") and r["active"].get("rss_mib_max") is not None]
    out: dict[str, Any] = {"target_n": target_n, "target_window_s": target_window}
    fit = fit_linear([r["n"] for r in ok], [r["active"]["rss_mib_max"] for r in ok])
    if fit is not None:
        a, b = fit
        out["rss_mib_base"], out["rss_kib_per_rollout"] = a, b * 1024
        out["rss_mib_projected"] = a + b * target_n
    largest = max(ok, key=lambda r: r["n"], default=None)
    if largest is not None:
        act = largest["active"]
        evals_per_s = target_n / target_window
        out["from_n"] = largest["n"]
        if act.get("cpu_ms_per_evaluation") is not None:
            out["cpu_cores_needed"] = act["cpu_ms_per_evaluation"] * evals_per_s / 1000.0
        if act.get("api_reads_per_evaluation") is not None:
            out["api_requests_per_s"] = (act["api_reads_per_evaluation"]
                                         + (act.get("api_writes_per_evaluation") or 0.0)) * evals_per_s
        if act.get("prom_queries_per_evaluation") is not None:
            out["prom_queries_per_s"] = act["prom_queries_per_evaluation"] * evals_per_s
    return out


def _fmt(v: Any, unit: str = "", digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        text = f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:,.0f}"
        return f"{text}{unit}"
    return f"{v}{unit}"


def _bump_rate(rate: float | None) -> str:
    return f"at {rate:g} a second" if rate else f"as fast as {BUMP_THREADS} threads get them through"


def _write_qps(qps: float | None) -> str:
    return f" and `LAUNCHGATE_API_WRITE_QPS={qps:g}`" if qps else ""


def render_markdown(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
                    proj: Mapping[str, Any]) -> str:
    """BENCHMARKS.md's generated part: how it was run, on what, and one table per size."""
    w = meta["window_s"]
    lines = [
        "# launchgate benchmarks",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} (commit {meta.get('commit', '?')}).",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPUs (`nproc`) | {meta['nproc']} ({meta.get('cpu_model', '?')}) |",
        f"| memory | {meta['mem_gib']:.1f} GiB |",
        f"| load average at start / end | {meta.get('load_start', '?')} / {meta.get('load_end', '?')} |",
        f"| Python | {meta['python']} |",
        f"| OS | {meta['os']} |",
        f"| Kubernetes / etcd / kwok / Prometheus | {meta.get('versions', '?')} |",
        "",
        f"Settings: window (rollout `interval` and gate `window`) **{format_duration(w)}**, "
        f"Prometheus scrape every {format_duration(meta['scrape_s'])}, trigger `for: {format_duration(meta['for_s'])}`, "
        f"router {meta['router']}, {meta['windows']} measured windows per phase, "
        f"operator `LAUNCHGATE_WORKERS={meta['workers']}`{_write_qps(meta.get('write_qps'))}, new revisions patched "
        f"{_bump_rate(meta.get('bump_rate'))}. Everything (etcd, kube-apiserver, kube-controller-manager, "
        "kube-scheduler, kwok, Prometheus, the synthetic-metrics fleet, the operator) shares the machine above.",
        "",
        "## Summary",
        "",
        "| N | evaluated | lag p50 | lag p99 | lag max | gaps ≤ window+5 s | rollback p50 / max | "
        "RSS max | CPU | CPU/eval | API writes /rollout/window | API reads /rollout/window | "
        "Prom queries /window |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        a = r.get("active") or {}
        rb = r.get("rollback") or {}
        lines.append(
            f"| {r['n']} | {_fmt(a.get('rollouts_evaluated'))}/{r['n']} | {_fmt(a.get('lag_p50_s'), ' s')} | "
            f"{_fmt(a.get('lag_p99_s'), ' s')} | {_fmt(a.get('lag_max_s'), ' s')} | "
            f"{_fmt(a.get('within_target_pct'), '%')} | "
            f"{_fmt(rb.get('met_to_weights_p50_s'), ' s')} / {_fmt(rb.get('met_to_weights_max_s'), ' s')} | "
            f"{_fmt(a.get('rss_mib_max'), ' MiB')} | {_fmt(a.get('cpu_pct'), '%')} | "
            f"{_fmt(a.get('cpu_ms_per_evaluation'), ' ms')} | {_fmt(a.get('api_writes_per_rollout_window'))} | "
            f"{_fmt(a.get('api_reads_per_rollout_window'))} | {_fmt(a.get('prom_queries_per_window'))} |")
    lines += ["", "Lag = time between two evaluations of one rollout minus the window (0 = exactly on "
              "time). CPU in % of one core. Rollback = from the trigger's `for` being met in Prometheus "
              "to the HTTPRoute at 100/0.", ""]
    if proj:
        lines += [f"## Projection to {proj['target_n']:,} rollouts at a {format_duration(proj['target_window_s'])} "
                  "window", ""]
        if "rss_mib_projected" in proj:
            lines.append(f"- RSS: {proj['rss_mib_base']:.0f} MiB + {proj['rss_kib_per_rollout']:.0f} KiB per "
                         f"rollout (least squares over the sizes run) → **{proj['rss_mib_projected']:,.0f} MiB** "
                         f"(target < {TARGET_RSS_MIB:.0f} MiB).")
        if "cpu_cores_needed" in proj:
            lines.append(f"- CPU: at the measured CPU per evaluation (N = {proj['from_n']}), "
                         f"{proj['target_n']:,} evaluations per {format_duration(proj['target_window_s'])} need "
                         f"**{proj['cpu_cores_needed']:.1f} cores** of Python; one process gets at most about "
                         "one (the GIL).")
        if "api_requests_per_s" in proj:
            lines.append(f"- API server: **{proj['api_requests_per_s']:,.0f} requests/s** from the operator.")
        if "prom_queries_per_s" in proj:
            lines.append(f"- Prometheus: **{proj['prom_queries_per_s']:,.0f} queries/s**.")
        lines.append("")
    for r in results:
        lines += _size_section(r, w)
    lines += [GENERATED_END, ""]
    return "\n".join(lines)


def _size_section(r: Mapping[str, Any], w: float) -> list[str]:
    lines = [f"## N = {r['n']}", ""]
    if r.get("error"):
        lines += [f"**Incomplete:** {r['error']}", ""]
    s = r.get("setup") or {}
    lines += ["| setup | seconds |", "|---|---:|"]
    for key, label in (("controlplane_s", "control plane + Prometheus up"),
                       ("create_s", f"create {r['n']} LaunchGates, HTTPRoutes, AgentRollouts"),
                       ("all_stable_s", "… until every rollout is stable (first pass of each)"),
                       ("all_canary_s", "new revision patched → every rollout in Canary1"),
                       ("all_warm_s", "… until every rollout's gates pass (data, evaluated)")):
        if key in s:
            lines.append(f"| {label} | {_fmt(s[key])} |")
    lines.append("")
    if "nodes" in s:
        lines += [f"The pods ({PODS_PER_ROLLOUT} per rollout) run on {s['nodes']} fake Nodes (kwok) of "
                  f"{NODE_CAPACITY['pods']} pods each.", ""]
    for phase, title in (("idle", "idle (all stable, nothing to evaluate)"),
                         ("active", "active (all canaries at Canary1, gates + trigger every window)")):
        p = r.get(phase)
        if not p:
            continue
        lines += [f"### {title}", "", "| metric | value |", "|---|---:|"]
        rows = [
            ("measured", f"{_fmt(p.get('seconds'))} s = {_fmt(p.get('windows'))} windows"),
            ("rollouts evaluated (operator's last-evaluated gauge)",
             f"{_fmt(p.get('rollouts_evaluated'))}/{r['n']}" if "rollouts_evaluated" in p else None),
            ("evaluations per rollout per window", _fmt(p.get("evaluations_per_rollout_window"))),
            ("evaluation lag p50 / p99 / max",
             f"{_fmt(p.get('lag_p50_s'), ' s')} / {_fmt(p.get('lag_p99_s'), ' s')} / {_fmt(p.get('lag_max_s'), ' s')}"
             if "lag_p50_s" in p else None),
            (f"gaps ≤ window + {TARGET_SLACK_S:.0f} s", _fmt(p.get("within_target_pct"), "%")
             if "within_target_pct" in p else None),
            ("reconcile passes per rollout per window", _fmt(p.get("passes_per_rollout_window"))),
            ("pass start delay p50 / p99 (late against its schedule)",
             f"{_fmt(p.get('start_delay_p50_s'), ' s')} / {_fmt(p.get('start_delay_p99_s'), ' s')}"
             if "start_delay_p50_s" in p else None),
            ("pass duration p50 / p99", f"{_fmt(p.get('pass_p50_s'), ' s')} / {_fmt(p.get('pass_p99_s'), ' s')}"
             if "pass_p50_s" in p else None),
            ("shared query duration p50 / p99",
             f"{_fmt(p.get('shared_query_p50_s'), ' s')} / {_fmt(p.get('shared_query_p99_s'), ' s')}"
             if "shared_query_p50_s" in p else None),
            ("API writes per rollout per window", _fmt(p.get("api_writes_per_rollout_window"))),
            ("API reads (GET/LIST) per rollout per window", _fmt(p.get("api_reads_per_rollout_window"))),
            ("API requests per second (operator)", _fmt(p.get("api_requests_per_s"))),
            ("Prometheus queries per window (all rollouts)", _fmt(p.get("prom_queries_per_window"))),
            ("Prometheus queries per evaluation", _fmt(p.get("prom_queries_per_evaluation"))),
            ("operator CPU (% of one core)", _fmt(p.get("cpu_pct"), "%")),
            ("operator CPU per evaluation", _fmt(p.get("cpu_ms_per_evaluation"), " ms")),
            ("operator RSS at start / end / max of the phase",
             f"{_fmt(p.get('rss_mib_start'), ' MiB')} / {_fmt(p.get('rss_mib_end'), ' MiB')} / "
             f"{_fmt(p.get('rss_mib_max'), ' MiB')}"),
            ("operator threads", _fmt(p.get("threads"))),
            *_component_rows(p.get("components") or {}),
        ]
        lines += [f"| {k} | {v} |" for k, v in rows if v is not None and v != "—"]
        top = p.get("requests_by") or []
        if top:
            lines += ["", "API requests per rollout per window, by verb and resource: "
                      + ", ".join(f"{verb} {res} {_fmt(v)}" for verb, res, v in top[:10]) + "."]
        lines.append("")
    rb = r.get("rollback")
    if rb:
        lines += ["### rollback of a bad canary", "",
                  f"{rb.get('rolled_back')}/{rb.get('sample')} sampled canaries turned bad (3× the stable error "
                  f"rate) were rolled back.", "",
                  "| from → to | p50 | max |", "|---|---:|---:|",
                  f"| canary turns bad → trigger `for` met in Prometheus | {_fmt(rb.get('bad_to_met_p50_s'), ' s')} | "
                  f"{_fmt(rb.get('bad_to_met_max_s'), ' s')} |",
                  f"| `for` met → HTTPRoute at 100/0 | {_fmt(rb.get('met_to_weights_p50_s'), ' s')} | "
                  f"{_fmt(rb.get('met_to_weights_max_s'), ' s')} |",
                  f"| canary turns bad → HTTPRoute at 100/0 | {_fmt(rb.get('bad_to_weights_p50_s'), ' s')} | "
                  f"{_fmt(rb.get('bad_to_weights_max_s'), ' s')} |", ""]
    rs = r.get("restart")
    if rs:
        lines += ["### operator restart (every rollout active)", "",
                  f"The operator stopped and a new one started; {rs.get('evaluated')}/{r['n']} rollouts evaluated "
                  "by the new one.", "",
                  "| from the new operator's start to | seconds |", "|---|---:|",
                  f"| its first evaluation | {_fmt(rs.get('first_s'))} |",
                  f"| half the rollouts evaluated (p50) | {_fmt(rs.get('p50_s'))} |",
                  f"| 99% of the rollouts evaluated | {_fmt(rs.get('p99_s'))} |",
                  f"| every rollout evaluated | {_fmt(rs.get('all_s'))} |",
                  f"| (operator CPU seconds by then; RSS max) | {_fmt(rs.get('cpu_s'))}; "
                  f"{_fmt(rs.get('rss_mib_max'), ' MiB')} |",
                  f"| (API reads / writes by then, all clients) | {_fmt(rs.get('api_reads'))} / "
                  f"{_fmt(rs.get('api_writes'))} |", ""]
        if rs.get("requests_by"):
            lines += ["API requests by verb and resource until then: "
                      + ", ".join(f"{verb} {res} {_fmt(v)}" for verb, res, v in rs["requests_by"][:10]) + ".", ""]
    errs = r.get("operator_log") or {}
    if errs:
        lines += [f"Operator log: {errs.get('lines', 0)} lines, {errs.get('errors', 0)} errors/tracebacks"
                  + (f"; first: `{errs['first_error'][:200]}`" if errs.get("first_error") else "") + ".", ""]
    return lines


def _component_rows(components: Mapping[str, Mapping[str, float]]) -> list[tuple[str, str | None]]:
    """Beside the operator's: what the cluster's components spent on the same rollouts."""
    return [(f"{name} CPU (% of one core) / RSS max",
             f"{_fmt(c.get('cpu_pct'), '%')} / {_fmt(c.get('rss_mib_max'), ' MiB')}")
            for name, c in components.items()]


def merge_report(generated: str, existing: str | None) -> str:
    """The new generated part, followed by whatever a person wrote below the marker last time."""
    if existing and GENERATED_END in existing:
        kept = existing.split(GENERATED_END, 1)[1]
        return generated.rstrip("\n").removesuffix(GENERATED_END).rstrip("\n") + "\n" + GENERATED_END + kept
    return generated


# ============================================================================ synthetic metrics fleet


class FleetCollector:
    """Many Simulators behind one /metrics: their `agent_jobs_total` series, merged into one family."""

    def __init__(self) -> None:
        self.sims: dict[tuple[str, str], Simulator] = {}
        self.lock = threading.Lock()

    def upsert(self, namespace: str, version: str, rates: Mapping[str, Any]) -> None:
        with self.lock:
            sim = self.sims.get((namespace, version))
        if sim is None:
            sim = Simulator(namespace, version)
            with self.lock:
                self.sims[(namespace, version)] = sim
        sim.set(dict(rates))

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            sims = list(self.sims.items())
        jobs = CounterMetricFamily(JOBS, JOBS_HELP, labels=["namespace", "version", "outcome"])
        for (namespace, version), sim in sims:
            for outcome, value in sim.jobs_total().items():
                jobs.add_metric([namespace, version, outcome], value)
        yield jobs


def fleet_main(argv: Sequence[str]) -> int:
    """`python -m launchgate_dev.bench _fleet`: serve a FleetCollector; POST /versions to add or change."""
    ap = argparse.ArgumentParser(prog="launchgate_dev.bench _fleet")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)
    fleet = FleetCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(fleet)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/metrics"):
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            try:
                items = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"[]")
                for it in items:
                    fleet.upsert(it["namespace"], it["version"], it.get("rates") or {})
            except (ValueError, KeyError, TypeError) as e:
                self._reply(400, json.dumps({"error": str(e)}).encode())
                return
            self._reply(200, json.dumps({"versions": len(fleet.sims)}).encode())

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


class FleetProcess:
    """One fleet subprocess (dies with us), its address for Prometheus, and its control endpoint."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> FleetProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "launchgate_dev.bench", "_fleet"], stdout=subprocess.PIPE,
                                     stderr=open(self.log, "ab"), text=True, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while not line.startswith("listening on ") and time.monotonic() < deadline and self.proc.poll() is None:
            line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise DevEnvError(f"fleet process did not start; see {self.log}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def upsert(self, items: list[dict[str, Any]]) -> None:
        if items:
            requests.post(f"http://{self.address}/versions", json=items, timeout=30).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


# ============================================================================ measuring the operator


class ProcSampler(threading.Thread):
    """Samples the operator's RSS and thread count from /proc every second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_flag = threading.Event()
        self.samples: list[tuple[float, float, int]] = []  # (time, rss MiB, threads)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            st = proc_status(self.pid)
            if st is not None:
                self.samples.append((time.time(), st["rss_mib"], int(st["threads"])))
            self.stop_flag.wait(1.0)

    def between(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [s for s in self.samples if start <= s[0] <= end]


def proc_status(pid: int) -> dict[str, float] | None:
    """VmRSS, VmHWM (MiB) and thread count from /proc/PID/status."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    vals: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0]) / 1024.0
        elif key == "Threads":
            vals["threads"] = int(rest.strip())
    return {"rss_mib": vals.get("VmRSS", 0.0), "hwm_mib": vals.get("VmHWM", 0.0),
            "threads": vals.get("threads", 0)}


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of the process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record_when_true(check: Callable[[str], bool], sample: set[str], seen: dict[str, float],
                     stop: threading.Event, every: float = 0.5) -> None:
    """Until `stop`: ask `check(name)` of each name in `sample` not yet in `seen` every `every`
    seconds, and record in `seen` when its answer was first true (the time the answer arrived: an
    upper bound). A failed read is asked again next round.

    Reads of each sampled object, not a watch of every one: a watch started again on each timeout
    without a resourceVersion begins with 10,000 ADDED events at N = 10,000 and misses the changes
    made meanwhile, so rollbacks that happen go unseen."""
    while not stop.is_set():
        for name in sorted(sample - set(seen)):
            try:
                if check(name):
                    seen[name] = time.time()
            except (ApiException, requests.RequestException, urllib3.exceptions.HTTPError, ValueError):
                continue
        stop.wait(every)


def start_operator(kubeconfig: Path, prometheus_url: str, namespace: str, log: Path, window: float, scrape: float,
                   **env: str) -> tuple[OperatorProcess, EvaluationPoller]:
    """The operator as both benchmarks run it (its interval the window, its metrics on a new
    loopback port) and the poller of its evaluations, both started."""
    port = _free_port()
    proc = OperatorProcess(kubeconfig, prometheus_url, [namespace], log,
                           LAUNCHGATE_GATE_INTERVAL=format_duration(window), LAUNCHGATE_PROMETHEUS_TIMEOUT="10",
                           LAUNCHGATE_SCRAPE_INTERVAL=format_duration(scrape), LAUNCHGATE_METRICS_PORT=str(port),
                           LAUNCHGATE_METRICS_ADDR="127.0.0.1", **env).start()
    poller = EvaluationPoller(f"http://127.0.0.1:{port}/metrics", namespace, every=max(1.0, window / 3))
    poller.start()
    return proc, poller


@dataclasses.dataclass
class Snapshot:
    at: float
    api: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    prom: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    cpu_s: float | None
    query_log_offset: int
    operator: dict[tuple[str, tuple[tuple[str, str], ...]], float] = dataclasses.field(default_factory=dict)
    """The operator's pass and shared-query duration histograms."""
    components_cpu: dict[str, float | None] = dataclasses.field(default_factory=dict)
    """CPU seconds of each of COMPONENTS."""


@dataclasses.dataclass
class Options:
    sizes: list[int]
    window: float
    windows: int
    idle_windows: int
    scrape: float
    trigger_for: float
    bad_sample: int
    router: str
    workers: int
    size_timeout: float
    workdir: Path | None
    keep: bool
    bump_rate: float = 0.0
    """New revisions patched per second (0: as fast as BUMP_THREADS threads get them through)."""
    write_qps: float = 0.0
    """The operator's LAUNCHGATE_API_WRITE_QPS (0: no limit)."""
    restart: bool = True
    """End each size by restarting the operator and timing until every rollout is evaluated again."""


class SizeRun:
    """One size: a fresh world, the three phases, a dict of results. Never leaves processes behind."""

    def __init__(self, n: int, opts: Options, workdir: Path, say: Callable[[str], None]) -> None:
        self.n, self.o, self.workdir, self.say = n, opts, workdir, say
        self.names = [f"a{i:05d}" for i in range(n)]
        self.cp: ControlPlane | None = None
        self.prom: PrometheusServer | None = None
        self.operator: OperatorProcess | None = None
        self.fleets: list[FleetProcess] = []
        self.sampler: ProcSampler | None = None
        self.component_samplers: dict[str, ProcSampler] = {}
        self.poller: EvaluationPoller | None = None
        self.statuses: StatusWatch | None = None
        self.custom: Any = None
        self.apps: Any = None
        self.kubeconfig: Path | None = None
        self.earlier_samples: list[tuple[float, float, int]] = []
        """RSS samples of operators stopped by the restart phase."""
        self.query_log = workdir / "query.log"
        self.stable: dict[str, str] = {}
        self.canary: dict[str, str] = {}
        self.registered: set[str] = set()
        self.result: dict[str, Any] = {"n": n, "setup": {}}
        self.deadline = time.monotonic() + opts.size_timeout

    # ---------------------------------------------------------------- world
    def start_world(self) -> None:
        t0 = time.monotonic()
        bins = binaries()
        # devenv's /24 Service range holds ~127 rollouts (two Services each): widen it. Nodes for
        # every rollout's pods, with one to spare.
        nodes = max(3, math.ceil(PODS_PER_ROLLOUT * self.n / int(NODE_CAPACITY["pods"])) + 1)
        self.cp = cp = ControlPlane(self.workdir / "cp", bins=bins, nodes=nodes,
                                    extra_apiserver_args=["--service-cluster-ip-range=10.0.0.0/16"]).start()
        self.result["setup"]["nodes"] = nodes
        pids = cp.pids()
        for name in COMPONENTS:
            self.component_samplers[name] = ProcSampler(pids[name])
            self.component_samplers[name].start()
        self.prom = PrometheusServer(self.workdir / "prom", scrape_interval=format_duration(self.o.scrape),
                                     evaluation_interval="30s", bins=bins).start()
        self._enable_query_log()
        cp.apply_crds([REPO_CRDS])
        cp.install_gateway_api()
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        api = client.ApiClient(cfg)
        self.custom, self.apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
        self.statuses = StatusWatch(self.custom, NAMESPACE)
        self.admin_token = cp.tokens["admin"]
        kubeconfig = operator_kubeconfig(cp, self.workdir)
        cp.kubectl("create", "namespace", NAMESPACE)
        self.statuses.start()
        for k in range(math.ceil(self.n / PER_FLEET)):
            f = FleetProcess(self.workdir / f"fleet-{k}.log").start()
            self.fleets.append(f)
            self.prom.add_target(f"fleet-{k}", f.address)
        self.kubeconfig = kubeconfig
        self._start_operator()
        self.result["setup"]["controlplane_s"] = time.monotonic() - t0

    def _start_operator(self) -> None:
        """The operator, the sampler of its RSS and the poller of its evaluations (each on a new port)."""
        assert self.prom is not None and self.kubeconfig is not None
        self.operator, self.poller = start_operator(
            self.kubeconfig, self.prom.url, NAMESPACE, self.workdir / "operator.log", self.o.window, self.o.scrape,
            LAUNCHGATE_WORKERS=str(self.o.workers), LAUNCHGATE_API_WRITE_QPS=f"{self.o.write_qps:g}")
        self.sampler = ProcSampler(self.operator.pid)
        self.sampler.start()

    def _enable_query_log(self) -> None:
        """Turn on Prometheus' query log (one JSON line per query) through a config reload."""
        assert self.prom is not None
        cfg = yaml.safe_load(self.prom.config_file.read_text())
        cfg.setdefault("global", {})["query_log_file"] = str(self.query_log)
        self.prom.config_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
        requests.post(f"{self.prom.url}/-/reload", timeout=30).raise_for_status()

    def stop_world(self) -> None:
        with no_interrupts():
            if self.sampler is not None:
                self.sampler.stop_flag.set()
            for sampler in self.component_samplers.values():
                sampler.stop_flag.set()
            if self.poller is not None:
                self.poller.stop_flag.set()
            if self.statuses is not None:
                self.statuses.stop_flag.set()
            if self.operator is not None:
                self.operator.stop()
            for f in self.fleets:
                with contextlib.suppress(Exception):
                    f.stop()
            if self.prom is not None:
                self.prom.stop()
            if self.cp is not None:
                self.cp.stop()

    # ---------------------------------------------------------------- objects
    def _gate(self, name: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "LaunchGate",
            "metadata": {"name": f"{name}-gate", "namespace": NAMESPACE},
            "spec": {
                "window": format_duration(self.o.window),
                "owners": {"reliability": "sre-oncall"},
                "blockers": [
                    {"name": "success_rate", "query": SUCCESS_QUERY, "target": {"gte": 0.99}},
                    {"name": "error_ratio", "query": ERROR_QUERY.format(w="$window"),
                     "target": {"lteBaselineRatio": 1.5}},
                ],
            },
        }

    def _trigger(self) -> dict[str, Any]:
        rate_window = format_duration(max(4 * self.o.scrape, 4.0))
        return {"name": "error-rate-2x-baseline", "query": ERROR_QUERY.format(w=rate_window),
                "above": {"baselineRatio": 2}, "for": format_duration(self.o.trigger_for),
                "step": format_duration(self.o.scrape)}

    def _rollout(self, name: str) -> dict[str, Any]:
        router = ({"gatewayAPI": {"httpRoute": name}} if self.o.router == "gatewayAPI" else {"replicaRatio": {}})
        return {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentRollout",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "replicas": 2,
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": "agent", "image": "bench/agent:1",
                                                      "ports": [{"name": "http", "containerPort": 8080}]}]}},
                "trafficRouting": router,
                "interval": format_duration(self.o.window),
                "progressDeadline": "24h",
                # At 10,000 on a loaded API server the controllers, the scheduler and kwok can take
                # more than the default 10m to bring every canary's pod up, and a canary whose pod
                # is merely late would be rolled back: the benchmark measures evaluation, not that.
                "availabilityDeadline": "24h",
                "phases": [
                    {"name": "Canary1", "weight": 5, "gates": [f"{name}-gate"], "minDuration": "24h",
                     "rollbackTriggers": [self._trigger()]},
                    {"name": "General", "weights": [50, 100], "gates": [f"{name}-gate"]},
                ],
            },
        }

    def _route(self, name: str) -> dict[str, Any]:
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"rules": [{"backendRefs": [{"name": f"{name}-stable", "port": 80}]}]}}

    def create_objects(self) -> None:
        t0 = time.monotonic()

        def create(name: str) -> None:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "launchgates", self._gate(name))
            if self.o.router == "gatewayAPI":
                self.custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", NAMESPACE,
                                                            "httproutes", self._route(name))
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "agentrollouts",
                                                        self._rollout(name))

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, self.names))
        self.result["setup"]["create_s"] = time.monotonic() - t0

    def rollouts(self) -> dict[str, dict[str, Any]]:
        """Every rollout's status, as the harness's watch last saw it (see StatusWatch)."""
        assert self.statuses is not None
        return self.statuses.snapshot()

    def wait_all(self, what: str, pred: Callable[[dict[str, Any]], bool],
                 on_poll: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> float:
        """Poll until pred(status) holds for every rollout; seconds taken. TimeoutError names how many lag."""
        t0 = time.monotonic()
        last_report = t0
        pause = 2.0
        while True:
            objs = self.rollouts()
            if on_poll is not None:
                on_poll(objs)
            done = sum(1 for n in self.names if pred((objs.get(n) or {}).get("status") or {}))
            if done == self.n:
                return time.monotonic() - t0
            now = time.monotonic()
            if self.operator is not None and not self.operator.alive():
                raise RuntimeError(f"operator exited while waiting for {what}:\n{self.operator.tail()}")
            if now > self.deadline:
                errs = self._operator_log_summary()
                raise TimeoutError(f"{what}: only {done}/{self.n} after {now - t0:.0f}s (size timeout); operator log: "
                                   f"{errs.get('errors', 0)} errors, first: {errs.get('first_error')}")
            if now - last_report > 30:
                errs = self._operator_log_summary()
                watch_error = self.statuses.error if self.statuses is not None else None
                self.say(f"  … {what}: {done}/{self.n} after {now - t0:.0f}s"
                         + (f" ({errs['errors']} errors in the operator log)" if errs.get("errors") else "")
                         + (f" (watching rollouts: {watch_error})" if watch_error else ""))
                last_report = now
            time.sleep(pause)

    def register_versions(self, objs: Mapping[str, dict[str, Any]]) -> None:
        """Give every newly seen stable/canary revision its synthetic metrics in its fleet process."""
        batches: dict[int, list[dict[str, Any]]] = {}
        for i, name in enumerate(self.names):
            st = (objs.get(name) or {}).get("status") or {}
            for role, rev in (("stable", st.get("stableRevision")), ("canary", st.get("canaryRevision"))):
                if not rev or rev in self.registered:
                    continue
                (self.stable if role == "stable" else self.canary)[name] = rev
                self.registered.add(rev)
                rate = STABLE_SUCCESS if role == "stable" else CANARY_SUCCESS
                batches.setdefault(i // PER_FLEET, []).append(
                    {"namespace": NAMESPACE, "version": rev, "rates": {"success_rate": rate}})
        for k, items in batches.items():
            self.fleets[k].upsert(items)

    # ---------------------------------------------------------------- snapshots
    def snapshot(self) -> Snapshot:
        assert self.cp is not None and self.prom is not None and self.operator is not None
        r = requests.get(f"{self.cp.server}/metrics", headers={"Authorization": f"Bearer {self.admin_token}"},
                         verify=str(self.cp.ca_file), timeout=60)
        r.raise_for_status()
        api = parse_counters(r.text, ["apiserver_request_total"])
        p = requests.get(f"{self.prom.url}/metrics", timeout=30)
        p.raise_for_status()
        prom = parse_counters(p.text, ["prometheus_http_requests_total",
                                       "prometheus_engine_query_duration_seconds_count"])
        size = self.query_log.stat().st_size if self.query_log.exists() else 0
        op: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        if self.poller is not None:
            with contextlib.suppress(requests.RequestException):
                op = parse_counters(requests.get(self.poller.url, timeout=30).text, [
                    f"{h}_bucket" for h in (PASS_DURATION, SHARED_QUERY_DURATION, START_DELAY)])
        components = {name: proc_cpu_seconds(sampler.pid) for name, sampler in self.component_samplers.items()}
        return Snapshot(time.time(), api, prom, proc_cpu_seconds(self.operator.pid), size, op, components)

    def measure(self, label: str, windows: int, evaluations: bool) -> dict[str, Any]:
        """Sleep `windows` windows between two snapshots; turn the differences into per-window numbers."""
        w = self.o.window
        a = self.snapshot()
        time.sleep(windows * w)
        b = self.snapshot()
        seconds = b.at - a.at
        nwin = seconds / w
        delta = request_delta(a.api, b.api)
        writes, reads, watches = split_requests(delta)
        queries = sum(counter_sum(b.prom, "prometheus_http_requests_total", handler=h)
                      - counter_sum(a.prom, "prometheus_http_requests_total", handler=h)
                      for h in ("/api/v1/query", "/api/v1/query_range"))
        assert self.poller is not None
        if evaluations and not self.poller.seen_until(b.at, timeout=3 * w):
            self.say("  (the evaluation poller has not caught up: the last evaluations are not counted)")
        times = self.poller.between(a.at, b.at)
        passes = sum(len(t) for t in times.values())
        out: dict[str, Any] = {
            "seconds": seconds, "windows": nwin,
            "api_writes_per_rollout_window": writes / self.n / nwin,
            "api_reads_per_rollout_window": reads / self.n / nwin,
            "api_watch_requests": watches,
            "api_requests_per_s": (writes + reads) / seconds,
            "passes_per_rollout_window": passes / self.n / nwin,
            "prom_queries_per_window": queries / nwin,
            "prom_queries_per_rollout_window": queries / self.n / nwin,
            "requests_by": sorted(((verb, res, v / self.n / nwin) for (verb, res), v in delta.items()),
                                  key=lambda t: -t[2]),
        }
        # Slow passes and queueing both show as lag; these tell which.
        for key, hist, match in (("pass", PASS_DURATION, {"kind": "rollout"}), ("shared_query", SHARED_QUERY_DURATION, {}),
                                 ("start_delay", START_DELAY, {"kind": "rollout"})):
            for q in (50, 99):
                value = bucket_quantile(a.operator, b.operator, hist, q / 100, **match)
                if value is not None:
                    out[f"{key}_p{q}_s"] = value
        if a.cpu_s is not None and b.cpu_s is not None:
            out["cpu_pct"] = 100.0 * (b.cpu_s - a.cpu_s) / seconds
            cpu = b.cpu_s - a.cpu_s
        else:
            cpu = None
        assert self.sampler is not None
        samples = self.sampler.between(a.at, b.at)
        if samples:
            out["rss_mib_max"] = max(s[1] for s in samples)
            out["rss_mib_start"] = samples[0][1]
            out["rss_mib_end"] = samples[-1][1]
            out["threads"] = max(s[2] for s in samples)
        out["components"] = self._components(a, b)
        if evaluations:
            with open(self.query_log, "rb") as f:
                f.seek(a.query_log_offset)
                chunk = f.read(max(0, self._query_log_size() - a.query_log_offset)).decode(errors="replace")
            st = lag_stats(times, self.names, a.at, b.at, w)
            out.update({
                "rollouts_evaluated": st.rollouts_evaluated, "never_evaluated": st.never_evaluated,
                "evaluations": st.evaluations, "evaluations_per_rollout_window": st.evaluations_per_rollout_window,
                "gap_p50_s": st.gap_p50, "gap_p99_s": st.gap_p99, "gap_max_s": st.gap_max,
                "lag_p50_s": st.lag_p50, "lag_p99_s": st.lag_p99, "lag_max_s": st.lag_max,
                "within_target_pct": st.within_target_pct,
                "query_log_queries": sum(1 for line in chunk.splitlines() if line.startswith("{")),
            })
            if st.evaluations:
                out["prom_queries_per_evaluation"] = queries / st.evaluations
                out["api_reads_per_evaluation"] = reads / st.evaluations
                out["api_writes_per_evaluation"] = writes / st.evaluations
                if cpu is not None:
                    out["cpu_ms_per_evaluation"] = 1000.0 * cpu / st.evaluations
        self.say(f"  {label}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in out.items()
                                           if k in ("lag_p50_s", "lag_p99_s", "rollouts_evaluated", "cpu_pct",
                                                    "rss_mib_max", "api_writes_per_rollout_window",
                                                    "api_reads_per_rollout_window", "prom_queries_per_window")))
        return out

    def _components(self, a: Snapshot, b: Snapshot) -> dict[str, dict[str, float]]:
        """CPU (% of one core) and RSS max of each of COMPONENTS between two snapshots."""
        out: dict[str, dict[str, float]] = {}
        for name, sampler in self.component_samplers.items():
            entry: dict[str, float] = {}
            before, after = a.components_cpu.get(name), b.components_cpu.get(name)
            if before is not None and after is not None:
                entry["cpu_pct"] = 100.0 * (after - before) / (b.at - a.at)
            samples = sampler.between(a.at, b.at)
            if samples:
                entry["rss_mib_max"] = max(s[1] for s in samples)
            out[name] = entry
        return out

    def _query_log_size(self) -> int:
        return self.query_log.stat().st_size if self.query_log.exists() else 0

    # ---------------------------------------------------------------- rollback
    def rollback_phase(self) -> dict[str, Any]:
        """Turn a sample of canaries bad; time trigger-met → weights 100/0 for each."""
        k = max(1, min(self.o.bad_sample, self.n))
        step = self.n / k
        sample = [self.names[int(i * step)] for i in range(k)]
        weights_at: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch_weights, args=(set(sample), weights_at, stop), daemon=True)
        watcher.start()
        time.sleep(1.0)  # the first reads are in
        t_bad = time.time()
        batches: dict[int, list[dict[str, Any]]] = {}
        for name in sample:
            i = self.names.index(name)
            batches.setdefault(i // PER_FLEET, []).append(
                {"namespace": NAMESPACE, "version": self.canary[name], "rates": {"success_rate": BAD_SUCCESS}})
        for fk, items in batches.items():
            self.fleets[fk].upsert(items)
        limit = time.monotonic() + self.o.trigger_for + 4 * self.o.window + 60
        while len(weights_at) < k and time.monotonic() < min(limit, self.deadline):
            time.sleep(0.5)
        stop.set()
        objs = self.rollouts()
        assert self.prom is not None
        source = PrometheusSource(self.prom.url, timeout=30)
        trig = RollbackTrigger.model_validate(self._trigger())
        details: list[dict[str, Any]] = []
        for name in sample:
            st = (objs.get(name) or {}).get("status") or {}
            t_w = weights_at.get(name)
            t_met = self._met_at(source, trig, name, t_bad, (t_w or time.time()) + 1)
            details.append({"rollout": name, "state": st.get("state"), "t_bad": t_bad, "t_met": t_met,
                            "t_weights": t_w, "decision_at": ((st.get("lastDecision") or {}).get("at"))})
        source.close()
        met_to_w = [d["t_weights"] - d["t_met"] for d in details if d["t_weights"] and d["t_met"]]
        bad_to_met = [d["t_met"] - t_bad for d in details if d["t_met"]]
        bad_to_w = [d["t_weights"] - t_bad for d in details if d["t_weights"]]
        out = {
            "sample": k,
            "rolled_back": sum(1 for d in details if d["state"] in ("RollingBack", "Degraded") and d["t_weights"]),
            "met_to_weights_p50_s": percentile(met_to_w, 50), "met_to_weights_max_s": max(met_to_w, default=None),
            "bad_to_met_p50_s": percentile(bad_to_met, 50), "bad_to_met_max_s": max(bad_to_met, default=None),
            "bad_to_weights_p50_s": percentile(bad_to_w, 50), "bad_to_weights_max_s": max(bad_to_w, default=None),
            "details": details,
        }
        self.say(f"  rollback: {out['rolled_back']}/{k} rolled back; met→100/0 p50 "
                 f"{_fmt(out['met_to_weights_p50_s'], ' s')} max {_fmt(out['met_to_weights_max_s'], ' s')}")
        return out

    def _met_at(self, source: PrometheusSource, trig: RollbackTrigger, name: str, lo: float,
                hi: float) -> float | None:
        """Earliest time (±0.1 s) at which the trigger's own query says it fired: bisection,
        since once a sustained breach has held, it keeps holding while the canary stays bad."""
        variables = {"namespace": NAMESPACE, "rollout": name, "stable": self.stable[name],
                     "canary": self.canary[name], "window": trig.for_}

        def fired(t: float) -> bool:
            res = engine.evaluate_trigger(trig, source, variables, at=datetime.fromtimestamp(t, UTC))
            return res.fired

        return earliest(fired, lo, hi)

    def _watch_weights(self, sample: set[str], seen: dict[str, float], stop: threading.Event) -> None:
        """Record when each sampled rollout's traffic is back on stable: the HTTPRoute's canary
        weight 0 (gatewayAPI) or its canary Deployment at 0 replicas (replicaRatio); see
        record_when_true for how (each object read every half second, not a watch)."""

        def back(name: str) -> bool:
            if self.o.router == "gatewayAPI":
                obj = self.custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", NAMESPACE,
                                                               "httproutes", name, _request_timeout=10)
                refs = {r["name"]: r.get("weight") for rule in obj["spec"].get("rules", [])
                        for r in rule.get("backendRefs", [])}
                return refs.get(f"{name}-canary") == 0 and refs.get(f"{name}-stable") == 100
            dep = self.apps.read_namespaced_deployment(f"{name}-canary", NAMESPACE, _request_timeout=10)
            return (dep.spec.replicas or 0) == 0

        record_when_true(back, sample, seen, stop)

    # ---------------------------------------------------------------- restart
    def restart_phase(self) -> dict[str, Any]:
        """Stop the operator and start a new one while every rollout is active; time until each
        rollout has been evaluated by the new one.

        An upgrade, a node drain or an OOM kill does exactly this, and until the new operator has
        listed what it watches (and indexed every Approval and RolloutAction) it evaluates
        nothing: a rollback trigger that fires then waits for it."""
        assert self.operator is not None and self.sampler is not None and self.poller is not None
        before = self.snapshot()
        self.poller.stop_flag.set()
        self.sampler.stop_flag.set()
        self.earlier_samples += self.sampler.samples
        self.operator.stop()
        t0 = time.time()
        self._start_operator()
        assert self.operator is not None and self.poller is not None and self.sampler is not None
        limit = time.monotonic() + max(300.0, 20 * self.o.window)
        while time.monotonic() < min(limit, self.deadline) and len(self.poller.firsts()) < self.n:
            if not self.operator.alive():
                raise RuntimeError(f"operator exited after its restart:\n{self.operator.tail()}")
            time.sleep(1.0)
        self.poller.seen_until(time.time(), timeout=3 * self.o.window)
        firsts = sorted(t - t0 for t in self.poller.firsts().values())
        after = self.snapshot()
        delta = request_delta(before.api, after.api)
        writes, reads, _ = split_requests(delta)
        out: dict[str, Any] = {
            "evaluated": len(firsts),
            "first_s": firsts[0] if firsts else None,
            "p50_s": percentile(firsts, 50), "p99_s": percentile(firsts, 99),
            "all_s": firsts[-1] if len(firsts) >= self.n else None,
            "cpu_s": after.cpu_s,
            "rss_mib_max": max((s[1] for s in self.sampler.samples), default=None),
            # Everyone's requests (the harness's watch too; the cluster's components' own left out as
            # everywhere) from the old operator's stop until the new one has evaluated every rollout.
            "api_reads": reads, "api_writes": writes,
            "requests_by": sorted(((verb, res, v) for (verb, res), v in delta.items()), key=lambda t: -t[2]),
        }
        self.say(f"  restart: {out['evaluated']}/{self.n} evaluated again; first {_fmt(out['first_s'], ' s')}, "
                 f"p50 {_fmt(out['p50_s'], ' s')}, all {_fmt(out['all_s'], ' s')}")
        return out

    # ---------------------------------------------------------------- the whole size
    def run(self) -> dict[str, Any]:
        o = self.o
        try:
            self.say(f"N={self.n}: starting control plane, Prometheus, {len(range(math.ceil(self.n / PER_FLEET)))} "
                     "fleet process(es), operator")
            self.start_world()
            self.create_objects()
            self.say(f"  created {self.n} rollouts in {self.result['setup']['create_s']:.1f}s")
            self.result["setup"]["all_stable_s"] = self.wait_all(
                "all stable", lambda st: st.get("state") == "Healthy" and bool(st.get("stableRevision")),
                self.register_versions)
            self.register_versions(self.rollouts())
            self.say(f"  all {self.n} stable after {self.result['setup']['all_stable_s']:.1f}s")
            if o.idle_windows > 0:
                time.sleep(o.window)  # settle into the rhythm
                self.result["idle"] = self.measure("idle", o.idle_windows, evaluations=False)
            t0 = time.monotonic()
            patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "bench/agent:2"}]

            def bump(name: str) -> None:
                self.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "agentrollouts", name, patch,
                                                           _content_type="application/json-patch+json")

            with ThreadPoolExecutor(BUMP_THREADS) as pool:
                done = []
                for i, name in enumerate(self.names):
                    if o.bump_rate > 0 and (ahead := t0 + i / o.bump_rate - time.monotonic()) > 0:
                        time.sleep(ahead)
                    done.append(pool.submit(bump, name))
                for f in done:
                    f.result()
            self.result["setup"]["all_canary_s"] = self.wait_all(
                "all in Canary1", lambda st: st.get("phase") == "Canary1" and bool(st.get("canaryRevision")),
                self.register_versions)
            self.register_versions(self.rollouts())
            self.result["setup"]["all_warm_s"] = time.monotonic() - t0 + self.wait_all(
                "all gates passing", lambda st: (st.get("message") or "").startswith("gates pass; minimum duration"),
                self.register_versions)
            self.say(f"  all {self.n} canaries evaluated and holding after {self.result['setup']['all_warm_s']:.1f}s")
            time.sleep(o.window)
            self.result["active"] = self.measure("active", o.windows, evaluations=True)
            self.result["rollback"] = self.rollback_phase()
            if o.restart:
                self.result["restart"] = self.restart_phase()
        except (TimeoutError, RuntimeError, DevEnvError, ApiException, requests.RequestException, OSError,
                urllib3.exceptions.HTTPError) as e:
            self.result["error"] = f"{type(e).__name__}: {e}"[:2000]
            self.say(f"  N={self.n} incomplete: {self.result['error'][:300]}")
        finally:
            self.result["operator_log"] = self._operator_log_summary()
            samples = self.earlier_samples + (self.sampler.samples if self.sampler is not None else [])
            if samples:
                # Every 5th sample: enough to see growth (a leak) without bloating the JSON.
                t0 = samples[0][0]
                self.result["rss_timeline"] = [(round(t - t0, 1), round(rss, 1)) for t, rss, _ in samples[::5]]
            self.stop_world()
        return self.result

    def _operator_log_summary(self) -> dict[str, Any]:
        path = self.workdir / "operator.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        errs = [line for line in lines if " ERROR " in line or "Traceback" in line or '"reconcile failed"' in line]
        return {"lines": len(lines), "errors": len(errs), "first_error": errs[0] if errs else None}


# ============================================================================ main


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: they mean little without it."""
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        commit = (rev or "?") + (" + uncommitted changes" if dirty else "")
    versions = "?"
    with contextlib.suppress(DevEnvError, KeyError):
        v = binaries().versions
        versions = (f"{v['KUBERNETES_VERSION']} / {v['ETCD_VERSION']} / {v.get('KWOK_VERSION', '?')} / "
                    f"{v.get('PROMETHEUS_DEB_VERSION', '?')}")
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gib": mem_kib / 1024 / 1024,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "versions": versions,
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _sizes(text: str) -> list[int]:
    sizes = [int(x) for x in text.split(",") if x.strip()]
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive integers, e.g. 10,100,1000")
    return sizes


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv: Sequence[str] | None) -> tuple[Options, Path, Path, str]:
    p = argparse.ArgumentParser(prog="python -m launchgate_dev.bench", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=_sizes, default=[10, 100, 1000], help="numbers of rollouts (default 10,100,1000)")
    p.add_argument("--window", type=_seconds, default=30.0, help="rollout interval and gate window (default 30s)")
    p.add_argument("--windows", type=int, default=3, help="windows measured in the active phase (default 3)")
    p.add_argument("--idle-windows", type=int, default=1, help="windows measured with every rollout idle (default 1)")
    p.add_argument("--scrape", type=_seconds, default=2.0, help="Prometheus scrape interval (default 2s)")
    p.add_argument("--for", dest="trigger_for", type=_seconds, default=None,
                   help="the rollback trigger's `for` (default: the window)")
    p.add_argument("--bad-sample", type=int, default=10, help="canaries turned bad per size (default 10)")
    p.add_argument("--router", choices=["gatewayAPI", "replicaRatio"], default="gatewayAPI")
    p.add_argument("--workers", type=int, default=96, help="LAUNCHGATE_WORKERS for the operator (default 96)")
    p.add_argument("--bump-rate", type=float, default=0.0,
                   help=f"new revisions patched per second (default 0: as fast as {BUMP_THREADS} threads get them through)")
    p.add_argument("--write-qps", type=float, default=0.0,
                   help="the operator's LAUNCHGATE_API_WRITE_QPS, burst twice that (default 0: no write limit)")
    p.add_argument("--no-restart", dest="restart", action="store_false",
                   help="skip the last phase: the operator restarted, timed until every rollout is evaluated again")
    p.add_argument("--size-timeout", type=_seconds, default=900.0, help="give up on one size after this (default 15m)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "n10-n100-n1000-make-bench.json")
    p.add_argument("--workdir", type=Path, default=None, help="keep per-size logs here (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with logs")
    a = p.parse_args(argv)
    opts = Options(sizes=a.sizes, window=a.window, windows=a.windows, idle_windows=a.idle_windows, scrape=a.scrape,
                   trigger_for=a.trigger_for or a.window, bad_sample=a.bad_sample, router=a.router,
                   workers=a.workers, size_timeout=a.size_timeout, workdir=a.workdir, keep=a.keep,
                   bump_rate=a.bump_rate, write_qps=a.write_qps, restart=a.restart)
    shown = ["python -m launchgate_dev.bench", "--sizes", ",".join(map(str, a.sizes)), "--window",
             format_duration(a.window)]
    for flag, value, default in (("--windows", a.windows, 3), ("--idle-windows", a.idle_windows, 1),
                                 ("--scrape", format_duration(a.scrape), "2s"),
                                 ("--router", a.router, "gatewayAPI"), ("--bad-sample", a.bad_sample, 10),
                                 ("--bump-rate", a.bump_rate, 0.0), ("--write-qps", a.write_qps, 0.0)):
        if value != default:
            shown += [flag, str(value)]
    if a.trigger_for:
        shown += ["--for", format_duration(a.trigger_for)]
    if not a.restart:
        shown.append("--no-restart")
    return opts, a.out, a.json, " ".join(shown)


def run_bench(opts: Options, out: Path, json_out: Path, command: str,
              say: Callable[[str], None] = lambda m: print(m, flush=True)) -> int:
    """Run every size, write BENCHMARKS.md and the JSON; 0 if every size completed, 1 otherwise."""
    meta = {**machine_info(), "command": command, "window_s": opts.window, "windows": opts.windows,
            "scrape_s": opts.scrape, "for_s": opts.trigger_for, "router": opts.router, "workers": opts.workers,
            "bump_rate": opts.bump_rate, "write_qps": opts.write_qps}
    root = opts.workdir or Path(tempfile.mkdtemp(prefix="launchgate-bench-"))
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        with cleanup_on_signals():
            for n in opts.sizes:
                workdir = root / f"n{n}"
                workdir.mkdir(parents=True, exist_ok=True)
                t = time.monotonic()
                res = SizeRun(n, opts, workdir, say).run()
                res["wall_s"] = time.monotonic() - t
                results.append(res)
                _write(meta, results, out, json_out)  # after each size: a long run never loses results
                say(f"N={n} done in {res['wall_s']:.0f}s")
    except KeyboardInterrupt:
        say("interrupted; results so far are written")
    finally:
        meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["total_wall_s"] = time.monotonic() - t0
        if results:
            _write(meta, results, out, json_out)
        if opts.workdir is None and not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"logs in {root}")
    say(f"wrote {out} and {json_out}")
    return 0 if results and all("error" not in r for r in results) and len(results) == len(opts.sizes) else 1


def _write(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]], out: Path, json_out: Path) -> None:
    proj = projection(results)
    for path in (out, json_out):  # an hour's run is not lost to a missing directory
        path.parent.mkdir(parents=True, exist_ok=True)
    existing = out.read_text() if out.exists() else None
    out.write_text(merge_report(render_markdown(meta, results, proj), existing))
    json_out.write_text(json.dumps({"meta": meta, "results": results, "projection": proj}, indent=1,
                                   default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_fleet"]:
        return fleet_main(args[1:])
    opts, out, json_out, command = parse_args(args)
    return run_bench(opts, out, json_out, command)


if __name__ == "__main__":
    sys.exit(main())
