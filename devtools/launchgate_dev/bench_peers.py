"""`make bench-peers`: launchgate and Argo Rollouts, the same workload on the same control plane, one run.

    python -m launchgate_dev.bench_peers [--sizes 100] [--window 30s] [--controllers argo-rollouts,launchgate]

Why side by side: "faster than Argo Rollouts" means nothing from two reports measured on different
machines, days and workloads. Here one control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok's fake Nodes), one Prometheus and one synthetic-metrics fleet serve both
controllers in turn, never both at once, and the report gives ratios (launchgate / Argo Rollouts).

The workload, identical for both: N rollouts of REPLICAS pods each, a stable and a canary version
of the synthetic agent, canary steps 5% → 25% → 50% → 100% by replica ratio (launchgate's
`replicaRatio` router; Argo Rollouts' basic canary without a traffic router: both give the canary
ceil(replicas × weight / 100) pods), the canary's success rate checked against Prometheus every
window (a LaunchGate blocker and rollback trigger; an AnalysisTemplate with the Prometheus
provider, `interval` = the window). Each controller names the canary its own way in its query:
launchgate's `$canary` (its revision), Argo's `podTemplateHashValue: Latest` (the pod template
hash); the fleet exports the success counter under whichever version label the controller's
status shows. A breach means the same to both: a whole window below target aborts (launchgate: a
trigger with `for` = the window; Argo: `failureLimit: 0` on a measurement over the last window).

Phases, per controller: idle (all stable); active (every canary held at 5%, analysed every
window); rollback (10% of canaries turn bad: time until traffic is back on stable); restart (the
controller process replaced while every remaining rollout is active: time until each is analysed
again); promotion (the held good canaries released: each must reach 100% through its checks and be
promoted).

How things are measured, the same way for both:

- RSS and CPU of the controller process from /proc (bench.ProcSampler, bench.proc_cpu_seconds).
- API requests by verb and resource from kube-apiserver's audit log, filtered by the controller's
  user: each controller has its own token user (launchgate-operator, argo-rollouts) bound to its
  own shipped ClusterRole. Why the audit log: apiserver_request_total has no user label, and the
  per-FlowSchema metrics of API Priority and Fairness count requests by flow but not by verb and
  resource; an audit policy that logs only those two users at Metadata level gives both, exactly,
  and the harness's own requests (as admin) and the cluster components' drop out by construction.
- Prometheus queries from Prometheus' own prometheus_http_requests_total (only the controller
  queries during a measured phase).
- Evaluation lag: launchgate's `launchgate_rollout_last_evaluated_timestamp_seconds` (as in `make
  bench`); Argo Rollouts' AnalysisRun measurements (`finishedAt`, whole seconds). Lag = gap between
  consecutive analyses of one rollout minus the window.
- Traffic back on stable: the canary's pods scaled to 0 (launchgate's canary Deployment, Argo's
  canary ReplicaSet), read every half second. The sustained breach is found afterwards from
  Prometheus: the earliest moment the canary's success rate over the last window was below target.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client, config

from launchgate import GROUP, VERSION
from launchgate.core.durations import format_duration
from launchgate_dev.bench import (
    GENERATED_END,
    PER_FLEET,
    EvaluationPoller,
    FleetProcess,
    ProcSampler,
    StatusWatch,
    _fmt,
    _seconds,
    counter_sum,
    earliest,
    lag_stats,
    machine_info,
    parse_counters,
    percentile,
    proc_cpu_seconds,
    record_when_true,
    split_requests,
    start_operator,
)
from launchgate_dev.demo import OperatorProcess, cleanup_on_signals, no_interrupts, operator_kubeconfig
from launchgate_dev.devenv import (
    DEFAULT_USERS,
    NODE_CAPACITY,
    REPO_CRDS,
    REPO_ROOT,
    ControlPlane,
    DevEnvError,
    PrometheusServer,
    _free_port,
    binaries,
    cache_dir,
    read_versions,
)

LAUNCHGATE, ARGO = "launchgate", "argo-rollouts"
CONTROLLERS = (ARGO, LAUNCHGATE)
"""The order they run in: launchgate second, on the control plane the first one has already used."""
LAUNCHGATE_USER, ARGO_USER = "launchgate-operator", "argo-rollouts"
ARGO_GROUP, ARGO_VERSION = "argoproj.io", "v1alpha1"
STABLE_SUCCESS, CANARY_SUCCESS, BAD_SUCCESS = 0.99, 0.994, 0.97
TARGET = 0.98
"""Success rate a canary must keep: good canaries (99.4%) pass, bad ones (97%) breach."""
AUDIT_VERBS = {"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE",
               "deletecollection": "DELETECOLLECTION", "get": "GET", "list": "LIST", "watch": "WATCH"}
"""Audit verbs under the names apiserver_request_total uses, so bench.split_requests applies."""
SIDE_BEGIN = "<!-- side by side: generated by make bench-peers, replaced when it reruns -->"
SIDE_END = "<!-- end of side by side -->"

SUCCESS = ('sum(rate(agent_jobs_total{{namespace="{ns}",version="{v}",outcome="success"}}[{w}]))'
           ' / sum(rate(agent_jobs_total{{namespace="{ns}",version="{v}"}}[{w}]))')


# ============================================================================ pure helpers
# (no I/O: tests/unit/test_bench_peers_report.py covers them)


def audit_counts(lines: Iterable[str], user: str) -> dict[tuple[str, str], float]:
    """Requests `user` made, by (verb, resource[/subresource]), from kube-apiserver audit log lines
    (JSON, one event per line). Only ResponseComplete events count, so a request counts once;
    verbs take apiserver_request_total's names (GET, LIST, WATCH, POST, PATCH...)."""
    out: dict[tuple[str, str], float] = {}
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("stage") != "ResponseComplete" or (ev.get("user") or {}).get("username") != user:
            continue
        ref = ev.get("objectRef") or {}
        res = ref.get("resource") or ""
        if ref.get("subresource"):
            res += f"/{ref['subresource']}"
        if not res:
            res = str(ev.get("requestURI", "")).split("?", 1)[0]
        verb = AUDIT_VERBS.get(str(ev.get("verb")), str(ev.get("verb", "?")).upper())
        out[(verb, res)] = out.get((verb, res), 0.0) + 1
    return out


def argo_measurements(analysis_run: Mapping[str, Any]) -> list[tuple[float, str]]:
    """(finishedAt as unix seconds, phase) of every measurement an AnalysisRun's status holds."""
    out: list[tuple[float, str]] = []
    for metric in ((analysis_run.get("status") or {}).get("metricResults") or []):
        for m in metric.get("measurements") or []:
            ts = _parse_time(m.get("finishedAt"))
            if ts is not None:
                out.append((ts, str(m.get("phase", ""))))
    return out


def _parse_time(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a side-by-side table: where its figure is in a controller's result and whether
    less or more of it is better (which decides who is ahead)."""

    label: str
    phase: str
    key: str
    unit: str = ""
    better: str = "lower"
    """"lower", "higher" or "" (a figure to read, nobody ahead on it)."""
    of: str | None = None
    """For a count: the key of what it is out of (shown as x/y, no ratio)."""
    resolution: float = 0.0
    """Differences smaller than this are even: what the coarser of the two sources can tell apart."""


ROWS: tuple[Row, ...] = (
    Row("set-up: every rollout stable, its pods available", "setup", "all_stable_s", " s"),
    Row("set-up: new revision → every canary at 5% and analysed", "setup", "all_warm_s", " s"),
    Row("idle: controller RSS", "idle", "rss_mib_max", " MiB"),
    Row("idle: controller CPU (% of one core)", "idle", "cpu_pct", "%"),
    Row("idle: API requests per rollout per window", "idle", "api_per_rollout_window"),
    Row("active: controller RSS max", "active", "rss_mib_max", " MiB"),
    Row("active: controller CPU (% of one core)", "active", "cpu_pct", "%"),
    Row("active: API reads (GET/LIST) per rollout per window", "active", "api_reads_per_rollout_window"),
    Row("active: API writes per rollout per window", "active", "api_writes_per_rollout_window"),
    Row("active: Prometheus queries per window (all rollouts)", "active", "prom_queries_per_window"),
    Row("active: analyses per rollout per window", "active", "evaluations_per_rollout_window", "", ""),
    Row("active: rollouts analysed", "active", "rollouts_evaluated", "", "higher", of="n"),
    # Argo Rollouts' measurement times are whole seconds: lags within a second of each other are even.
    Row("active: evaluation lag p50", "active", "lag_p50_s", " s", resolution=1.0),
    Row("active: evaluation lag p99", "active", "lag_p99_s", " s", resolution=1.0),
    Row("rollback: bad canaries aborted, traffic on stable", "rollback", "rolled_back", "", "higher", of="sample"),
    Row("rollback: canary turns bad → traffic on stable, p50", "rollback", "bad_to_stable_p50_s", " s"),
    Row("rollback: canary turns bad → traffic on stable, max", "rollback", "bad_to_stable_max_s", " s"),
    Row("rollback: breach sustained a window → traffic on stable, p50", "rollback", "met_to_stable_p50_s", " s"),
    Row("rollback: breach sustained a window → traffic on stable, max", "rollback", "met_to_stable_max_s", " s"),
    Row("restart: every active rollout analysed again", "restart", "all_s", " s"),
    Row("restart: controller RSS max", "restart", "rss_mib_max", " MiB"),
    Row("restart: API requests until then", "restart", "api_requests"),
    Row("promotion: good canaries promoted", "promote", "promoted", "", "higher", of="good"),
    Row("promotion: released → every good canary promoted", "promote", "all_s", " s"),
    Row("promotion: controller CPU (% of one core)", "promote", "cpu_pct", "%"),
)


def _value(result: Mapping[str, Any], row: Row) -> Any:
    if row.phase == "active" and row.of == "n":
        return (result.get("active") or {}).get(row.key)
    return (result.get(row.phase) or {}).get(row.key)


def ratio(ours: Any, theirs: Any) -> float | None:
    """launchgate / Argo Rollouts; None when either is missing or negative (an evaluation earlier
    than its window: no ratio means anything) or the peer's is 0."""
    if not isinstance(ours, int | float) or not isinstance(theirs, int | float) or theirs == 0:
        return None
    if ours < 0 or theirs < 0:
        return None
    return float(ours) / float(theirs)


def ahead(row: Row, ours: Any, theirs: Any) -> str:
    """Who is ahead on a row: "launchgate", "Argo Rollouts", "even" or "" (no verdict)."""
    if not row.better or not isinstance(ours, int | float) or not isinstance(theirs, int | float):
        return ""
    if row.resolution:  # a lag: early (negative) is not late at all
        ours, theirs = max(ours, 0.0), max(theirs, 0.0)
    if math.isclose(ours, theirs, rel_tol=0.05, abs_tol=max(row.resolution, 1e-9)):
        return "even"
    ours_better = ours < theirs if row.better == "lower" else ours > theirs
    return "launchgate" if ours_better else "Argo Rollouts"


def _cell(result: Mapping[str, Any], row: Row, n: int) -> str:
    v = _value(result, row)
    if row.of is None:
        return _fmt(v, row.unit)
    total = n if row.of == "n" else (result.get(row.phase) or {}).get(row.of)
    return f"{_fmt(v)}/{_fmt(total)}" if v is not None else "—"


def _ratio_cell(row: Row, ours: Any, theirs: Any) -> str:
    if row.of is not None:
        return "—"
    r = ratio(ours, theirs)
    if r is None:
        return "= (both 0)" if ours == 0 and theirs == 0 else "—"
    return f"{r:.2g}×" if r < 10 else f"{r:,.0f}×"


def side_by_side_table(n: int, results: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The markdown table for one N and the labels of the rows where Argo Rollouts is ahead."""
    ours, theirs = results.get(LAUNCHGATE) or {}, results.get(ARGO) or {}
    lines = ["| N = " + f"{n:,}" + " | launchgate | Argo Rollouts | ratio (launchgate / Argo) | ahead |",
             "|---|---:|---:|---:|---|"]
    argo_ahead: list[str] = []
    for row in ROWS:
        a, b = _value(ours, row), _value(theirs, row)
        if a is None and b is None:
            continue
        who = ahead(row, a, b)
        if who == "Argo Rollouts":
            argo_ahead.append(row.label)
        lines.append(f"| {row.label} | {_cell(ours, row, n)} | {_cell(theirs, row, n)} | "
                     f"{_ratio_cell(row, a, b)} | {who} |")
    return lines, argo_ahead


def requests_by_lines(results: Mapping[str, Mapping[str, Any]], phases: Sequence[str] = ("active", "restart"),
                      most: int = 6) -> list[str]:
    """Each controller's API requests by verb and resource in the given phases (the audit log's
    counts, largest first), as markdown list items; watches are requests that ended meanwhile."""
    out: list[str] = []
    for phase in phases:
        for name in (LAUNCHGATE, ARGO):
            p = (results.get(name) or {}).get(phase) or {}
            by = p.get("requests_by")
            if by is None:
                continue
            shown = ", ".join(f"{verb} {res} {_fmt(v)}" for verb, res, v in list(by)[:most]) or "none"
            more = f" (+{len(by) - most} more kinds)" if len(by) > most else ""
            out.append(f"- API requests by verb and resource, {name}, {phase}: {shown}{more}.")
    return [*out, ""] if out else []


def incomplete_lines(n: int, results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What did not finish, per controller: the run's error, or a phase's (a wait that ran out of
    the size's time), so a missing or low figure is never read as measured."""
    out: list[str] = []
    for name, res in results.items():
        errors = [("", res.get("error"))] + [(f" ({phase})", (res.get(phase) or {}).get("error"))
                                              for phase in ("setup", "idle", "active", "rollback", "restart", "promote")]
        out += [f"**{name} incomplete at N = {n:,}{where}:** {str(err)[:300]}" for where, err in errors if err]
    return [*out, ""] if out else []


def latest_per_size(runs: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(meta, size result) for each N, from the newest run that measured it (runs are the JSON
    files' contents, {"meta": ..., "results": [...]}), smallest N first: a run of one size
    replaces that size's table and keeps the others'."""
    best: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
    for run in runs:
        meta = run.get("meta") or {}
        for r in run.get("results") or []:
            n = int(r["n"])
            if n not in best or str(meta.get("date", "")) >= str(best[n][0].get("date", "")):
                best[n] = (meta, r)
    return [best[n] for n in sorted(best)]


def render_side_by_side(entries: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], notes: str = "") -> str:
    """BENCHMARKS.md's "Side by side" section: the method once, then per N how it was run and its
    table, and where Argo Rollouts is ahead."""
    lines = [
        SIDE_BEGIN,
        "## Side by side: launchgate and Argo Rollouts",
        "",
        "Generated by `make bench-peers` (`python -m launchgate_dev.bench_peers`). The same workload for both, one "
        "controller at a time on one control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
        "kwok's fake Nodes) with one Prometheus: N rollouts, canary 5% → 25% → 50% → 100% by replica ratio, held at "
        f"5% until released, the canary's success rate checked every window (target ≥ {TARGET:g}), a share of "
        "canaries turned bad, the controller process restarted. Each controller runs with its shipped defaults, its "
        "own user and ClusterRole; API requests come from kube-apiserver's audit log filtered by that user (its "
        "apiserver_request_total has no user label, and API Priority and Fairness counts per FlowSchema without verb "
        "or resource), CPU and RSS from /proc, queries from Prometheus' own counters (method: docstring of "
        "`devtools/launchgate_dev/bench_peers.py`). **Ratio below 1: launchgate needs less** (of time, CPU, memory, "
        "requests).",
        "",
    ]
    for meta, r in entries:
        n = int(r["n"])
        lines += [
            f"### N = {n:,}", "",
            f"`{meta.get('command', '?')}` on {meta.get('date', '?')}, commit {meta.get('commit', '?')}; "
            f"{meta.get('replicas', '?')} pods per rollout, {format_duration(float(meta.get('window_s', 30.0)))} "
            f"window, {float(meta.get('bad_pct', 10)):g}% of canaries turned bad; order "
            + " then ".join(meta.get("controllers") or CONTROLLERS)
            + f". Argo Rollouts {meta.get('argo_version', '?')} (`rollouts-controller` built from its Go module); "
            f"Kubernetes / etcd / kwok / Prometheus {meta.get('versions', '?')}. Machine: {meta.get('nproc', '?')} "
            f"CPUs, {float(meta.get('mem_gib', 0)):.1f} GiB, load average at start / end {meta.get('load_start', '?')} / "
            f"{meta.get('load_end', '?')}.",
            "",
        ]
        table, argo_ahead = side_by_side_table(n, r.get("controllers") or {})
        lines += table + [""] + requests_by_lines(r.get("controllers") or {})
        lines += incomplete_lines(n, r.get("controllers") or {})
        lines += ["Where Argo Rollouts is ahead at N = " + f"{n:,}: "
                  + ("; ".join(argo_ahead) if argo_ahead else "nowhere in this table") + ".", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    lines.append(SIDE_END)
    return "\n".join(lines) + "\n"


def merge_side_by_side(existing: str | None, section: str) -> str:
    """BENCHMARKS.md with the side-by-side section replaced, or placed first in the kept part
    (below `make bench`'s marker, which keeps it), or appended."""
    if not existing:
        return section
    if SIDE_BEGIN in existing and SIDE_END in existing:
        head, rest = existing.split(SIDE_BEGIN, 1)
        tail = rest.split(SIDE_END, 1)[1].lstrip("\n")
        return head + section + ("\n" + tail if tail else "")
    if GENERATED_END in existing:
        head, tail = existing.split(GENERATED_END, 1)
        return head + GENERATED_END + "\n\n" + section + "\n" + tail.lstrip("\n")
    return existing.rstrip("\n") + "\n\n" + section


# ============================================================================ the shared world


class AuditLog:
    """kube-apiserver's audit log, read between two offsets: what each controller's user asked."""

    POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
              "omitStages": ["RequestReceived", "ResponseStarted"],
              "rules": [{"level": "Metadata", "users": [LAUNCHGATE_USER, ARGO_USER]}, {"level": "None"}]}

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "audit.log"
        self.policy = workdir / "audit-policy.yaml"
        self.policy.write_text(yaml.safe_dump(self.POLICY))

    def apiserver_args(self) -> list[str]:
        return [f"--audit-policy-file={self.policy}", f"--audit-log-path={self.path}", "--audit-log-format=json",
                "--audit-log-maxsize=0"]

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def counts(self, user: str, start: int, end: int | None = None) -> dict[tuple[str, str], float]:
        end = self.offset() if end is None else end
        with open(self.path, "rb") as f:
            f.seek(start)
            chunk = f.read(max(0, end - start)).decode(errors="replace")
        return audit_counts(chunk.splitlines(), user)


@dataclasses.dataclass
class Options:
    sizes: list[int]
    window: float = 30.0
    windows: int = 2
    idle_windows: int = 1
    scrape: float = 2.0
    replicas: int = 20
    bad_pct: float = 10.0
    controllers: tuple[str, ...] = CONTROLLERS
    size_timeout: float = 900.0
    """Per controller and size."""
    workdir: Path | None = None
    keep: bool = False
    report_only: bool = False


class World:
    """One control plane (with the audit log), Prometheus and the synthetic fleet for one size."""

    def __init__(self, n: int, opts: Options, workdir: Path) -> None:
        self.n, self.o, self.workdir = n, opts, workdir
        self.cp: ControlPlane | None = None
        self.prom: PrometheusServer | None = None
        self.fleets: list[FleetProcess] = []
        self.audit = AuditLog(workdir)
        self.custom: Any = None
        self.apps: Any = None

    def start(self) -> float:
        t0 = time.monotonic()
        bins = binaries()
        # One controller's rollouts at their peak (stable and canary both full during promotion),
        # half as much again for the pods of the controller before it that are still going.
        nodes = max(3, math.ceil(1.5 * 2 * self.o.replicas * self.n / int(NODE_CAPACITY["pods"])) + 1)
        self.cp = cp = ControlPlane(self.workdir / "cp", users={**DEFAULT_USERS, ARGO_USER: ()}, bins=bins,
                                    nodes=nodes, extra_apiserver_args=self.audit.apiserver_args()).start()
        self.prom = PrometheusServer(self.workdir / "prom", scrape_interval=format_duration(self.o.scrape),
                                     evaluation_interval="30s", bins=bins).start()
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        api = client.ApiClient(cfg)
        self.custom, self.apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
        for k in range(math.ceil(self.n / PER_FLEET)):
            f = FleetProcess(self.workdir / f"fleet-{k}.log").start()
            self.fleets.append(f)
            self.prom.add_target(f"fleet-{k}", f.address)
        return time.monotonic() - t0

    def stop(self) -> None:
        with no_interrupts():
            for f in self.fleets:
                with contextlib.suppress(Exception):
                    f.stop()
            if self.prom is not None:
                self.prom.stop()
            if self.cp is not None:
                self.cp.stop()

    def set_rates(self, namespace: str, items: Mapping[int, Mapping[str, float]]) -> None:
        """{rollout index: {version: success rate}}: each rollout's versions in its fleet process."""
        batches: dict[int, list[dict[str, Any]]] = {}
        for i, versions in items.items():
            for version, rate in versions.items():
                batches.setdefault(i // PER_FLEET, []).append(
                    {"namespace": namespace, "version": version, "rates": {"success_rate": rate}})
        for k, batch in batches.items():
            self.fleets[k].upsert(batch)

    def prom_queries(self) -> float:
        assert self.prom is not None
        p = requests.get(f"{self.prom.url}/metrics", timeout=30)
        p.raise_for_status()
        c = parse_counters(p.text, ["prometheus_http_requests_total"])
        return sum(counter_sum(c, "prometheus_http_requests_total", handler=h)
                   for h in ("/api/v1/query", "/api/v1/query_range"))

    def breach_sustained_at(self, namespace: str, version: str, lo: float, hi: float) -> float | None:
        """Earliest time (±0.1 s) in [lo, hi] at which the canary's success rate over the last
        window was below target, by bisection (once the bad canary's window average is below, it
        stays below while it is bad); None when it never was by `hi`."""
        assert self.prom is not None
        expr = SUCCESS.format(ns=namespace, v=version, w=format_duration(self.o.window)) + f" < {TARGET}"
        prom = self.prom

        def below(t: float) -> bool:
            return bool(prom.query(expr, at=t))

        return earliest(below, lo, hi)

    def delete_namespace(self, namespace: str, timeout: float) -> float | None:
        """Delete a namespace and wait (up to `timeout`) until it is gone: the next controller
        starts on a cluster without the previous one's pods. Seconds taken, None if not gone."""
        assert self.cp is not None
        t0 = time.monotonic()
        self.cp.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        while time.monotonic() - t0 < timeout:
            if self.cp.kubectl("get", "namespace", namespace, check=False).returncode != 0:
                return time.monotonic() - t0
            time.sleep(2.0)
        return None


# ============================================================================ one controller's run


class ArgoProcess(OperatorProcess):
    """Argo Rollouts' rollouts-controller as a subprocess, through the same start/stop/log code
    as launchgate's operator; namespaced to its benchmark namespace, as launchgate's `-n`."""

    def __init__(self, binary: Path, kubeconfig: Path, log: Path, metrics_port: int, healthz_port: int) -> None:
        super().__init__(kubeconfig, "", [], log)
        self.binary, self.metrics_port, self.healthz_port = binary, metrics_port, healthz_port

    def command(self) -> tuple[list[str], dict[str, str]]:
        return ([str(self.binary), f"--kubeconfig={self.kubeconfig}", "--namespaced", "--leader-elect=false",
                 f"--metricsport={self.metrics_port}", f"--healthzPort={self.healthz_port}"],
                {**os.environ, "KUBECONFIG": str(self.kubeconfig), "POD_NAMESPACE": "argo-rollouts"})


class PeerRun:
    """One controller's phases on the shared world. Subclasses say how that controller is
    installed, started, and how its objects and statuses look; the phases and the measuring are here,
    the same for both."""

    name = ""
    user = ""

    def __init__(self, world: World, opts: Options, workdir: Path, say: Callable[[str], None]) -> None:
        self.w, self.o, self.workdir, self.say = world, opts, workdir, say
        self.n = world.n
        self.ns = f"bench-{self.name}"
        self.names = [f"a{i:05d}" for i in range(self.n)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.stable: dict[str, str] = {}
        self.canary: dict[str, str] = {}
        self.registered: set[str] = set()
        self.proc: OperatorProcess | None = None
        self.sampler: ProcSampler | None = None
        self.earlier_samples: list[tuple[float, float, int]] = []
        self.statuses: StatusWatch | None = None
        self.result: dict[str, Any] = {"n": self.n, "setup": {}}
        self.setting_up = True
        """Until every rollout is stable with its pods available."""
        self.deadline = time.monotonic() + opts.size_timeout

    # ---------------------------------------------------------------- what subclasses say
    def install(self) -> None:
        """CRDs, RBAC, kubeconfig: what the controller needs before it starts."""
        raise NotImplementedError

    def start_controller(self) -> None:
        raise NotImplementedError

    def objects(self, name: str) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(group, version, plural, body) to create for one rollout."""
        raise NotImplementedError

    def versions(self, st: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(stable, canary) version names as the controller's status shows them (canary None when none)."""
        raise NotImplementedError

    def is_stable(self, name: str, st: Mapping[str, Any]) -> bool:
        """Stable, and every one of its pods available: the same end of set-up for both (launchgate
        calls a first revision Healthy before its pods are up, Argo Rollouts only after)."""
        raise NotImplementedError

    def refresh(self) -> None:
        """Called once per poll of wait_all: read what the predicates need besides the statuses."""

    def held_and_analysed(self, name: str, st: Mapping[str, Any]) -> bool:
        """At the first step (5%), held there, and analysed with the canary's data."""
        raise NotImplementedError

    def evaluations(self) -> dict[str, set[float]]:
        """Every analysis seen so far, per rollout: when it ended (unix seconds)."""
        raise NotImplementedError

    def canary_pods_wanted(self, name: str) -> int | None:
        raise NotImplementedError

    def rolled_back(self, st: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def promote(self, name: str) -> None:
        raise NotImplementedError

    def promoted(self, name: str, st: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def bump(self, name: str) -> None:
        """A new revision: the pod template's image changes."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared machinery
    def _watch(self, statuses: StatusWatch) -> None:
        self.statuses = statuses
        statuses.start()

    def _started(self, proc: OperatorProcess) -> None:
        self.proc = proc
        self.sampler = ProcSampler(proc.pid)
        self.sampler.start()

    def stop_controller(self) -> None:
        if self.sampler is not None:
            self.sampler.stop_flag.set()
            self.earlier_samples += self.sampler.samples
        if self.proc is not None:
            self.proc.stop()

    def status_of(self) -> dict[str, dict[str, Any]]:
        assert self.statuses is not None
        return {k: v.get("status") or {} for k, v in self.statuses.snapshot().items()}

    def register_versions(self, statuses: Mapping[str, Mapping[str, Any]]) -> None:
        """Give every newly seen stable/canary version its synthetic success counter."""
        items: dict[int, dict[str, float]] = {}
        for name in self.names:
            stable, canary = self.versions(statuses.get(name) or {})
            for role, v in (("stable", stable), ("canary", canary)):
                if not v or v in self.registered:
                    continue
                (self.stable if role == "stable" else self.canary)[name] = v
                self.registered.add(v)
                items.setdefault(self.index[name], {})[v] = STABLE_SUCCESS if role == "stable" else CANARY_SUCCESS
        if items:
            self.w.set_rates(self.ns, items)

    def wait_all(self, what: str, names: Sequence[str], pred: Callable[[str, Mapping[str, Any]], bool],
                 timeout: float | None = None) -> float:
        """Until pred(name, status) holds for every name; seconds taken. Registers versions meanwhile."""
        t0 = time.monotonic()
        limit = min(self.deadline, t0 + timeout) if timeout else self.deadline
        last_report = t0
        while True:
            self.refresh()
            sts = self.status_of()
            self.register_versions(sts)
            done = sum(1 for n in names if pred(n, sts.get(n) or {}))
            if done == len(names):
                return time.monotonic() - t0
            now = time.monotonic()
            if self.proc is not None and not self.proc.alive():
                raise RuntimeError(f"{self.name} exited while waiting for {what}:\n{self.proc.tail()}")
            if now > limit:
                why = " (--size-timeout reached)" if limit == self.deadline else ""
                raise TimeoutError(f"{what}: only {done}/{len(names)} after {now - t0:.0f}s{why}")
            if now - last_report > 30:
                self.say(f"  … {what}: {done}/{len(names)} after {now - t0:.0f}s")
                last_report = now
            time.sleep(1.0)

    def snapshot(self) -> dict[str, Any]:
        assert self.proc is not None
        return {"at": time.time(), "audit": self.w.audit.offset(), "prom": self.w.prom_queries(),
                "cpu": proc_cpu_seconds(self.proc.pid)}

    def delta(self, a: Mapping[str, Any], b: Mapping[str, Any], rollouts: int) -> dict[str, Any]:
        """Requests, queries, CPU and RSS between two snapshots, per rollout and window."""
        assert self.sampler is not None
        seconds = b["at"] - a["at"]
        nwin = seconds / self.o.window
        by = self.w.audit.counts(self.user, a["audit"], b["audit"])
        writes, reads, watches = split_requests(by)
        out: dict[str, Any] = {
            "seconds": seconds, "windows": nwin,
            "api_writes_per_rollout_window": writes / rollouts / nwin,
            "api_reads_per_rollout_window": reads / rollouts / nwin,
            "api_per_rollout_window": (writes + reads) / rollouts / nwin,
            "api_watch_requests": watches,
            "api_requests": writes + reads,
            "prom_queries_per_window": (b["prom"] - a["prom"]) / nwin,
            "requests_by": sorted(((verb, res, v) for (verb, res), v in by.items()), key=lambda t: -t[2]),
        }
        if a["cpu"] is not None and b["cpu"] is not None:
            out["cpu_pct"] = 100.0 * (b["cpu"] - a["cpu"]) / seconds
        samples = self.sampler.between(a["at"], b["at"])
        if samples:
            out["rss_mib_max"] = max(s[1] for s in samples)
            out["rss_mib_end"] = samples[-1][1]
        return out

    def measure(self, label: str, windows: int, names: Sequence[str], lag: bool) -> dict[str, Any]:
        a = self.snapshot()
        time.sleep(windows * self.o.window)
        b = self.snapshot()
        time.sleep(min(5.0, self.o.window / 6))  # the last analyses of the period reach the status
        out = self.delta(a, b, len(names))
        if lag:
            times = {r: sorted(ts) for r, ts in self.evaluations().items()}
            st = lag_stats(times, names, a["at"], b["at"], self.o.window)
            out.update({"rollouts_evaluated": st.rollouts_evaluated, "evaluations": st.evaluations,
                        "evaluations_per_rollout_window": st.evaluations_per_rollout_window,
                        "lag_p50_s": st.lag_p50, "lag_p99_s": st.lag_p99, "lag_max_s": st.lag_max,
                        "within_target_pct": st.within_target_pct})
        self.say(f"  {label}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in out.items() if k in (
            "cpu_pct", "rss_mib_max", "api_reads_per_rollout_window", "api_writes_per_rollout_window",
            "prom_queries_per_window", "rollouts_evaluated", "lag_p50_s", "lag_p99_s")))
        return out

    # ---------------------------------------------------------------- phases
    def create(self) -> None:
        t0 = time.monotonic()
        assert self.w.cp is not None
        self.w.cp.kubectl("create", "namespace", self.ns, check=False)  # Argo's run made it already

        def create(name: str) -> None:
            for group, version, plural, body in self.objects(name):
                self.w.custom.create_namespaced_custom_object(group, version, self.ns, plural, body)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, self.names))
        self.result["setup"]["create_s"] = time.monotonic() - t0

    def start_canaries(self) -> None:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(self.bump, self.names))

    def rollback_phase(self) -> tuple[dict[str, Any], list[str]]:
        """Turn bad_pct% of the canaries bad; time until each one's traffic is back on stable."""
        k = max(1, min(self.n, round(self.n * self.o.bad_pct / 100)))
        step = self.n / k
        sample = [self.names[int(i * step)] for i in range(k)]
        back_at: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=record_when_true, daemon=True,
                                   args=(lambda name: self.canary_pods_wanted(name) == 0, set(sample), back_at, stop))
        watcher.start()
        t_bad = time.time()
        self.w.set_rates(self.ns, {self.index[name]: {self.canary[name]: BAD_SUCCESS} for name in sample})
        limit = time.monotonic() + 6 * self.o.window + 60
        while len(back_at) < k and time.monotonic() < min(limit, self.deadline):
            time.sleep(0.5)
        stop.set()
        time.sleep(2.0)
        sts = self.status_of()
        met: dict[str, float | None] = {}
        for name in sample:
            met[name] = self.w.breach_sustained_at(self.ns, self.canary[name], t_bad, back_at.get(name, time.time()))
        bad_to = [t - t_bad for t in back_at.values()]
        met_to = [back_at[n] - m for n, m in met.items() if m is not None and n in back_at]
        out = {
            "sample": k,
            "rolled_back": sum(1 for n in sample if n in back_at and self.rolled_back(sts.get(n) or {})),
            "bad_to_stable_p50_s": percentile(bad_to, 50), "bad_to_stable_max_s": max(bad_to, default=None),
            "met_to_stable_p50_s": percentile(met_to, 50), "met_to_stable_max_s": max(met_to, default=None),
            "details": [{"rollout": n, "t_bad": t_bad, "t_met": met[n], "t_stable": back_at.get(n)} for n in sample],
        }
        self.say(f"  rollback: {out['rolled_back']}/{k} aborted; bad → stable p50 "
                 f"{_fmt(out['bad_to_stable_p50_s'], ' s')}, breach → stable p50 {_fmt(out['met_to_stable_p50_s'], ' s')}")
        return out, [n for n in self.names if n not in set(sample)]

    def restart_phase(self, good: Sequence[str]) -> dict[str, Any]:
        """Replace the controller process while every good rollout is active; time until each has
        been analysed again by the new one."""
        before = self.evaluations()
        a = self.snapshot()
        self.stop_controller()
        t0 = time.time()
        self.start_controller()
        limit = time.monotonic() + max(300.0, 10 * self.o.window)
        firsts: dict[str, float] = {}
        while time.monotonic() < min(limit, self.deadline) and len(firsts) < len(good):
            if self.proc is not None and not self.proc.alive():
                raise RuntimeError(f"{self.name} exited after its restart:\n{self.proc.tail()}")
            now = self.evaluations()
            for name in good:
                new = [t for t in now.get(name, ()) if t not in before.get(name, set()) and t >= math.floor(t0)]
                if new and name not in firsts:
                    firsts[name] = min(new) - t0
            time.sleep(1.0)
        b = self.snapshot()
        d = self.delta(a, b, len(good))
        times = sorted(firsts.values())
        out = {"evaluated": len(times), "of": len(good), "first_s": times[0] if times else None,
               "p50_s": percentile(times, 50), "all_s": times[-1] if len(times) == len(good) else None,
               "rss_mib_max": d.get("rss_mib_max"), "api_requests": d["api_requests"],
               "requests_by": d["requests_by"]}
        self.say(f"  restart: {len(times)}/{len(good)} analysed again; p50 {_fmt(out['p50_s'], ' s')}, "
                 f"all {_fmt(out['all_s'], ' s')}")
        return out

    def promote_phase(self, good: Sequence[str]) -> dict[str, Any]:
        """Release every held good canary; each must pass its checks at 25%, 50% and 100% and be promoted."""
        a = self.snapshot()
        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(self.promote, good))
        err = None
        try:
            all_s: float | None = self.wait_all("promoted", good, self.promoted,
                                                timeout=max(600.0, 20 * self.o.window))
        except TimeoutError as e:
            all_s, err = None, str(e)
        b = self.snapshot()
        d = self.delta(a, b, len(good))
        sts = self.status_of()
        out = {"good": len(good), "promoted": sum(1 for n in good if self.promoted(n, sts.get(n) or {})),
               "all_s": all_s if all_s is not None else None, "cpu_pct": d.get("cpu_pct"),
               "rss_mib_max": d.get("rss_mib_max"), "api_requests": d["api_requests"],
               "wall_s": time.monotonic() - t0}
        if err:
            out["error"] = err
        self.say(f"  promotion: {out['promoted']}/{len(good)} promoted after {_fmt(out['wall_s'], ' s')}")
        return out

    def run(self) -> dict[str, Any]:
        try:
            self.install()
            self.start_controller()
            self.create()
            self.result["setup"]["all_stable_s"] = self.wait_all("all stable, pods available", self.names,
                                                                 self.is_stable)
            self.setting_up = False
            self.say(f"  {self.name}: all {self.n} stable after {self.result['setup']['all_stable_s']:.0f}s")
            time.sleep(self.o.window)
            self.result["idle"] = self.measure("idle", self.o.idle_windows, self.names, lag=False)
            t0 = time.monotonic()
            self.start_canaries()
            self.wait_all("every canary held at 5% and analysed", self.names, self.held_and_analysed)
            self.result["setup"]["all_warm_s"] = time.monotonic() - t0
            time.sleep(self.o.window / 2)
            self.result["active"] = self.measure("active", self.o.windows, self.names, lag=True)
            self.result["rollback"], good = self.rollback_phase()
            self.result["restart"] = self.restart_phase(good)
            self.result["promote"] = self.promote_phase(good)
        except Exception as e:  # noqa: BLE001 - recorded in the report; the other controller's run still counts
            self.result["error"] = f"{type(e).__name__}: {e}"[:2000]
            self.say(f"  {self.name} N={self.n} incomplete: {self.result['error'][:300]}")
        finally:
            self.stop_controller()
            for t in self._threads():
                t.stop_flag.set()
            samples = self.earlier_samples
            if samples:
                t_first = samples[0][0]
                self.result["rss_timeline"] = [(round(t - t_first, 1), round(rss, 1)) for t, rss, _ in samples[::10]]
        return self.result

    def _threads(self) -> list[Any]:
        return [t for t in (self.statuses,) if t is not None]


class LaunchgateRun(PeerRun):
    name = LAUNCHGATE
    user = LAUNCHGATE_USER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poller: EvaluationPoller | None = None
        self.kubeconfig: Path | None = None
        self.seen: dict[str, set[float]] = {}
        self.available: dict[str, int] = {}
        """Available pods per Deployment, listed (as admin) while set-up waits for them."""
        self.listed_at = 0.0

    def install(self) -> None:
        assert self.w.cp is not None
        self.w.cp.apply_crds([REPO_CRDS])
        self.kubeconfig = operator_kubeconfig(self.w.cp, self.workdir)
        self._watch(StatusWatch(self.w.custom, self.ns))

    def start_controller(self) -> None:
        assert self.w.prom is not None and self.kubeconfig is not None
        if self.poller is not None:  # keep what the previous process's gauge showed
            self.poller.stop_flag.set()
            for r, ts in self.poller.seen.items():
                self.seen.setdefault(r, set()).update(ts)
        proc, self.poller = start_operator(self.kubeconfig, self.w.prom.url, self.ns, self.workdir / "operator.log",
                                           self.o.window, self.o.scrape)
        self._started(proc)

    def _threads(self) -> list[Any]:
        return [*super()._threads(), *([self.poller] if self.poller is not None else [])]

    def objects(self, name: str) -> list[tuple[str, str, str, dict[str, Any]]]:
        w = format_duration(self.o.window)
        gate = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LaunchGate",
                "metadata": {"name": f"{name}-gate", "namespace": self.ns},
                "spec": {"window": w, "owners": {"reliability": "sre-oncall"},
                         "blockers": [{"name": "success_rate",
                                       "query": SUCCESS.format(ns="$namespace", v="$canary", w="$window"),
                                       "target": {"gte": TARGET}}]}}
        rate_window = format_duration(max(4 * self.o.scrape, 4.0))
        trigger = {"name": "success-rate", "query": SUCCESS.format(ns="$namespace", v="$canary", w=rate_window),
                   "below": {"value": TARGET}, "for": w, "step": format_duration(self.o.scrape)}
        gates = [f"{name}-gate"]
        rollout = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentRollout",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "replicas": self.o.replicas,
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": "agent", "image": "bench/agent:1"}]}},
                "trafficRouting": {"replicaRatio": {}},
                "interval": w, "progressDeadline": "24h", "availabilityDeadline": "24h",
                "phases": [
                    # Held at 5% until the harness promotes it, as Argo's `pause: {}` step.
                    {"name": "Canary1", "weight": 5, "gates": gates, "minDuration": "24h",
                     "rollbackTriggers": [trigger]},
                    {"name": "General", "weights": [25, 50, 100], "gates": gates, "rollbackTriggers": [trigger]},
                ],
            },
        }
        return [(GROUP, VERSION, "launchgates", gate), (GROUP, VERSION, "agentrollouts", rollout)]

    def bump(self, name: str) -> None:
        patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "bench/agent:2"}]
        self.w.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "agentrollouts", name, patch,
                                                     _content_type="application/json-patch+json")

    def versions(self, st: Mapping[str, Any]) -> tuple[str | None, str | None]:
        return st.get("stableRevision"), st.get("canaryRevision")

    def refresh(self) -> None:
        # A LIST of every Deployment is heavy at N = 1,000 (2,000 of them, decoded here on the cores
        # being measured): every 2 s at 100, every 10 s at 1,000.
        if self.setting_up and time.monotonic() - self.listed_at > max(2.0, self.n / 100):
            deps = self.w.apps.list_namespaced_deployment(self.ns, _request_timeout=60)
            self.available = {d.metadata.name: int(d.status.available_replicas or 0) for d in deps.items}
            self.listed_at = time.monotonic()

    def is_stable(self, name: str, st: Mapping[str, Any]) -> bool:
        return (st.get("state") == "Healthy" and bool(st.get("stableRevision"))
                and self.available.get(f"{name}-stable", 0) >= self.o.replicas)

    def held_and_analysed(self, name: str, st: Mapping[str, Any]) -> bool:
        return (st.get("phase") == "Canary1" and bool(st.get("canaryRevision"))
                and (st.get("message") or "").startswith("gates pass; minimum duration"))

    def evaluations(self) -> dict[str, set[float]]:
        out = {r: set(ts) for r, ts in self.seen.items()}
        if self.poller is not None:
            self.poller.seen_until(time.time(), timeout=2 * self.o.window)
            with self.poller._lock:
                for r, ts in self.poller.seen.items():
                    out.setdefault(r, set()).update(ts)
        return out

    def canary_pods_wanted(self, name: str) -> int | None:
        dep = self.w.apps.read_namespaced_deployment(f"{name}-canary", self.ns, _request_timeout=10)
        return int(dep.spec.replicas or 0)

    def rolled_back(self, st: Mapping[str, Any]) -> bool:
        return st.get("state") in ("RollingBack", "Degraded")

    def promote(self, name: str) -> None:
        self.w.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "rolloutactions", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "RolloutAction",
            "metadata": {"generateName": f"{name}-promote-", "namespace": self.ns},
            "spec": {"rollout": name, "action": "promote", "actor": "admin", "reason": "bench: release the hold"}})

    def promoted(self, name: str, st: Mapping[str, Any]) -> bool:
        return (st.get("state") == "Healthy" and bool(self.canary.get(name))
                and st.get("stableRevision") == self.canary.get(name))


class ArgoRun(PeerRun):
    name = ARGO
    user = ARGO_USER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.analysis: StatusWatch | None = None
        self.runs: dict[str, dict[str, Any]] = {}
        """AnalysisRuns by name, as the watch last saw them at the latest poll."""
        self.kubeconfig: Path | None = None
        self.home = argo_home()

    def install(self) -> None:
        cp = self.w.cp
        assert cp is not None and self.w.prom is not None
        cp.apply_crds([self.home / "crds"])
        for doc in yaml.safe_load_all((self.home / "rbac" / "argo-rollouts-clusterrole.yaml").read_text()):
            if isinstance(doc, dict):
                cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
        cp.kubectl("create", "clusterrolebinding", "bench-argo-rollouts", "--clusterrole=argo-rollouts",
                   f"--user={ARGO_USER}")
        cp.kubectl("create", "namespace", "argo-rollouts", check=False)
        kc = yaml.safe_load(cp.kubeconfig.read_text())
        for ctx in kc["contexts"]:
            if ctx["name"] == ARGO_USER:
                ctx["context"]["namespace"] = self.ns  # --namespaced watches the context's namespace
        kc["current-context"] = ARGO_USER
        self.kubeconfig = self.workdir / "argo.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(kc, sort_keys=False))
        self.kubeconfig.chmod(0o600)
        self._watch(StatusWatch(self.w.custom, self.ns, ARGO_GROUP, ARGO_VERSION, "rollouts"))
        self.analysis = StatusWatch(self.w.custom, self.ns, ARGO_GROUP, ARGO_VERSION, "analysisruns",
                                    keep=_analysis_run)
        self.analysis.start()

    def create(self) -> None:
        """The AnalysisTemplate first: a Rollout naming a template that does not exist yet is an
        error Argo Rollouts retries with backoff, which would slow its set-up for nothing."""
        assert self.w.prom is not None and self.w.cp is not None
        self.w.cp.kubectl("create", "namespace", self.ns)
        w = format_duration(self.o.window)
        template = {
            "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION}", "kind": "AnalysisTemplate",
            "metadata": {"name": "success-rate", "namespace": self.ns},
            "spec": {"args": [{"name": "canary-hash"}],
                     "metrics": [{"name": "success-rate", "interval": w,
                                  # a whole window below target aborts, as launchgate's trigger `for`
                                  "failureLimit": 0,
                                  "successCondition": f"result[0] >= {TARGET}",
                                  "provider": {"prometheus": {
                                      "address": self.w.prom.url,
                                      "query": SUCCESS.format(ns=self.ns, v="{{args.canary-hash}}", w=w)}}}]}}
        self.w.custom.create_namespaced_custom_object(ARGO_GROUP, ARGO_VERSION, self.ns, "analysistemplates", template)
        super().create()

    def start_controller(self) -> None:
        assert self.kubeconfig is not None
        metrics, healthz = _free_port(), _free_port()
        proc = ArgoProcess(self.home / "rollouts-controller", self.kubeconfig, self.workdir / "argo-rollouts.log",
                           metrics, healthz).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{healthz}/healthz", timeout=2).ok:
                    break
            if not proc.alive():
                raise RuntimeError(f"rollouts-controller exited:\n{proc.tail()}")
            time.sleep(0.5)
        self._started(proc)

    def _threads(self) -> list[Any]:
        return [*super()._threads(), *([self.analysis] if self.analysis is not None else [])]

    def objects(self, name: str) -> list[tuple[str, str, str, dict[str, Any]]]:
        w = format_duration(self.o.window)
        rollout = {
            "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION}", "kind": "Rollout",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "replicas": self.o.replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": "agent", "image": "bench/agent:1"}]}},
                "progressDeadlineSeconds": 86400,
                "strategy": {"canary": {
                    "analysis": {"templates": [{"templateName": "success-rate"}],
                                 "args": [{"name": "canary-hash",
                                           "valueFrom": {"podTemplateHashValue": "Latest"}}]},
                    # `pause: {}` holds at 5% until the harness promotes, as launchgate's minDuration;
                    # later steps wait a window each, as launchgate's gates pass once per interval.
                    "steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 25}, {"pause": {"duration": w}},
                              {"setWeight": 50}, {"pause": {"duration": w}}, {"setWeight": 100}]}},
            },
        }
        return [(ARGO_GROUP, ARGO_VERSION, "rollouts", rollout)]

    def bump(self, name: str) -> None:
        patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "bench/agent:2"}]
        self.w.custom.patch_namespaced_custom_object(ARGO_GROUP, ARGO_VERSION, self.ns, "rollouts", name, patch,
                                                     _content_type="application/json-patch+json")

    def versions(self, st: Mapping[str, Any]) -> tuple[str | None, str | None]:
        stable, current = st.get("stableRS"), st.get("currentPodHash")
        return stable, (current if current and current != stable else None)

    def is_stable(self, name: str, st: Mapping[str, Any]) -> bool:
        return (st.get("phase") == "Healthy" and bool(st.get("stableRS"))
                and st.get("stableRS") == st.get("currentPodHash")
                and int(st.get("availableReplicas") or 0) >= self.o.replicas)

    def refresh(self) -> None:
        assert self.analysis is not None
        self.runs = self.analysis.snapshot()  # once per poll, not once per rollout

    def _run_of(self, st: Mapping[str, Any]) -> dict[str, Any]:
        ar = ((st.get("canary") or {}).get("currentBackgroundAnalysisRunStatus") or {}).get("name")
        return (self.runs.get(ar) or {}) if ar else {}

    def held_and_analysed(self, name: str, st: Mapping[str, Any]) -> bool:
        if not (st.get("currentStepIndex") == 1 and st.get("pauseConditions") and self.versions(st)[1]):
            return False
        return any(phase == "Successful" for _, phase in argo_measurements(self._run_of(st)))

    def evaluations(self) -> dict[str, set[float]]:
        assert self.analysis is not None
        out: dict[str, set[float]] = {}
        for ar in self.analysis.snapshot().values():
            if ar.get("rollout"):
                out.setdefault(ar["rollout"], set()).update(t for t, _ in argo_measurements(ar))
        return out

    def canary_pods_wanted(self, name: str) -> int | None:
        rs = self.w.apps.read_namespaced_replica_set(f"{name}-{self.canary[name]}", self.ns, _request_timeout=10)
        return int(rs.spec.replicas or 0)

    def rolled_back(self, st: Mapping[str, Any]) -> bool:
        return bool(st.get("abort")) or st.get("phase") == "Degraded"

    def promote(self, name: str) -> None:
        """What `kubectl argo rollouts promote` does at a `pause: {}` step: clear the pause condition."""
        self.w.custom.patch_namespaced_custom_object_status(ARGO_GROUP, ARGO_VERSION, self.ns, "rollouts", name,
                                                            {"status": {"pauseConditions": None}})

    def promoted(self, name: str, st: Mapping[str, Any]) -> bool:
        return (st.get("phase") == "Healthy" and bool(self.canary.get(name))
                and st.get("stableRS") == self.canary.get(name))


def _analysis_run(obj: Mapping[str, Any]) -> dict[str, Any]:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    rollout = next((o.get("name") for o in owners if o.get("kind") == "Rollout"), None)
    return {"rollout": rollout, "status": obj.get("status") or {}}


def argo_home() -> Path:
    """Where hack/peers/build.sh put rollouts-controller, its CRDs and ClusterRole."""
    v = read_versions().get("ARGO_ROLLOUTS_VERSION")
    if not v:
        raise DevEnvError("hack/versions.env lacks ARGO_ROLLOUTS_VERSION")
    home = cache_dir() / f"argo-rollouts-{v}"
    if not (home / "rollouts-controller").is_file():
        raise DevEnvError(f"missing {home}/rollouts-controller: run `bash hack/peers/build.sh` (make bench-peers does)")
    return home


# ============================================================================ main


NOTES = """Reading the rows: **set-up and promotion** times are mostly pods starting on kwok's Nodes on
this shared machine, and vary between runs with its load; launchgate's last step also starts a new
stable pod set per rollout (it rolls its stable Deployment to the new template) where Argo Rollouts
keeps the canary ReplicaSet as the new stable, and launchgate waits for the canary's pods and then a
whole window of traffic at each step before its gates may promote. **Rollback**: Argo Rollouts
aborts at the first measurement whose window average is below target (`failureLimit: 0`);
launchgate's trigger fires once the breach has held at every point for a whole window (`for`),
later by design (a sustained trigger, argo-rollouts #4792). **Lag**: Argo's measurement times are
whole seconds. Argo's first measurement of each canary errors (no series yet: the canary's pods and
metrics start with it); its default `consecutiveErrorLimit` (4) absorbs it. **Pods per rollout**: at
20, the 5% step is exactly one pod; with fewer (see each size's line) both controllers round the
canary up to one pod, the same share for both. N = 10,000 is not run side by side: its 200,000 pods
are beyond kwok, the scheduler and the controller-manager on this 2-core machine shared with other
work (launchgate alone at 10,000, without pods, is in the sections below).

Flagger is not a third column: it shifts a canary's share of traffic only through a service mesh,
an ingress controller or a Gateway API implementation (its canary Deployment always runs at full
size), and its Kubernetes provider does blue/green only, so this replica-ratio workload cannot run
under it."""


def run_size(n: int, opts: Options, root: Path, say: Callable[[str], None]) -> dict[str, Any]:
    workdir = root / f"n{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    world = World(n, opts, workdir)
    out: dict[str, Any] = {"n": n, "controllers": {}}
    try:
        say(f"N={n}: control plane (audit log on), Prometheus, fleet")
        out["controlplane_s"] = world.start()
        for i, name in enumerate(opts.controllers):
            run_cls = LaunchgateRun if name == LAUNCHGATE else ArgoRun
            say(f"N={n}: {name}")
            t = time.monotonic()
            run = run_cls(world, opts, workdir, say)
            res = run.run()
            res["wall_s"] = time.monotonic() - t
            out["controllers"][name] = res
            if i + 1 < len(opts.controllers):
                gone = world.delete_namespace(run.ns, timeout=max(180.0, n * 0.5))
                out.setdefault("namespace_deleted_s", {})[name] = gone
    except (DevEnvError, RuntimeError, OSError, requests.RequestException) as e:
        out["error"] = f"{type(e).__name__}: {e}"[:2000]
        say(f"N={n} incomplete: {out['error'][:300]}")
    finally:
        world.stop()
    return out


def write_report(meta: Mapping[str, Any], results: Sequence[Mapping[str, Any]], out: Path, json_out: Path) -> None:
    """This run's JSON, then BENCHMARKS.md's section from every peers-*.json beside it (the newest
    table per N)."""
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str) + "\n")
    render_report(out, json_out.parent)


def render_report(out: Path, results_dir: Path) -> None:
    runs = [json.loads(f.read_text()) for f in sorted(results_dir.glob("peers-*.json"))]
    existing = out.read_text() if out.exists() else None
    out.write_text(merge_side_by_side(existing, render_side_by_side(latest_per_size(runs), NOTES)))


def parse_args(argv: Sequence[str] | None) -> tuple[Options, Path, Path, str]:
    p = argparse.ArgumentParser(prog="python -m launchgate_dev.bench_peers", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100", help="numbers of rollouts, comma-separated (default 100)")
    p.add_argument("--window", type=_seconds, default=30.0, help="analysis interval and window (default 30s)")
    p.add_argument("--windows", type=int, default=2, help="windows measured in the active phase (default 2)")
    p.add_argument("--replicas", type=int, default=20, help="pods per rollout (default 20: 5%% is one pod)")
    p.add_argument("--bad-pct", type=float, default=10.0, help="share of canaries turned bad (default 10)")
    p.add_argument("--controllers", default=",".join(CONTROLLERS), help="which, in this order")
    p.add_argument("--size-timeout", type=_seconds, default=900.0, help="per controller and size (default 15m)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=None, help="default benchmarks/results/peers-n<sizes>.json")
    p.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temp dir)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite the section of --out from benchmarks/results/peers-*.json")
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    controllers = tuple(c.strip() for c in a.controllers.split(",") if c.strip())
    if not sizes or any(s < 1 for s in sizes) or not set(controllers) <= set(CONTROLLERS) or not controllers:
        p.error(f"--sizes must be positive integers and --controllers among {', '.join(CONTROLLERS)}")
    opts = Options(sizes=sizes, window=a.window, windows=a.windows, replicas=a.replicas, bad_pct=a.bad_pct,
                   controllers=controllers, size_timeout=a.size_timeout, workdir=a.workdir,
                   report_only=a.report_only)
    json_out = a.json or REPO_ROOT / "benchmarks" / "results" / f"peers-{'-'.join(f'n{s}' for s in sizes)}.json"
    shown = ["python -m launchgate_dev.bench_peers", "--sizes", ",".join(map(str, sizes))]
    for flag, value, default in (("--window", format_duration(a.window), "30s"), ("--windows", a.windows, 2),
                                 ("--replicas", a.replicas, 20), ("--bad-pct", a.bad_pct, 10.0),
                                 ("--controllers", ",".join(controllers), ",".join(CONTROLLERS))):
        if value != default:
            shown += [flag, str(value)]
    return opts, a.out, json_out, " ".join(shown)


def main(argv: Sequence[str] | None = None) -> int:
    opts, out, json_out, command = parse_args(argv)
    if opts.report_only:
        render_report(out, json_out.parent)
        return 0
    say: Callable[[str], None] = lambda m: print(m, flush=True)  # noqa: E731
    meta: dict[str, Any] = {**machine_info(), "command": command, "window_s": opts.window, "windows": opts.windows,
                            "replicas": opts.replicas, "bad_pct": opts.bad_pct, "controllers": list(opts.controllers),
                            "argo_version": read_versions().get("ARGO_ROLLOUTS_VERSION")}
    root = opts.workdir or Path(tempfile.mkdtemp(prefix="launchgate-bench-peers-"))
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        with cleanup_on_signals():
            for n in opts.sizes:
                results.append(run_size(n, opts, root, say))
                meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
                write_report(meta, results, out, json_out)  # after each size: a long run never loses results
    except KeyboardInterrupt:
        say("interrupted; results so far are written")
    finally:
        meta["total_wall_s"] = time.monotonic() - t0
        if results:
            write_report(meta, results, out, json_out)
        if opts.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    say(f"wrote {out} and {json_out} in {meta['total_wall_s']:.0f}s")
    ok = all("error" not in r and not incomplete_lines(int(r["n"]), r["controllers"]) for r in results)
    return 0 if results and ok else 1


if __name__ == "__main__":
    sys.exit(main())
