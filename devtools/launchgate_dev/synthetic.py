"""A small, real, deterministic AI-agent stand-in that serves Prometheus metrics.

Tests and the demo need an agent whose metrics say exactly what the test wants: a success rate of
0.994, a p95 of 1014 ms, then on command a bad canary. Randomness would make gate tests flaky, so
traffic is not sampled: counters are the exact integral of the configured rates over time,
computed when Prometheus scrapes (equivalent to a background thread ticking infinitely fast), and
fractional counts are fine for Prometheus. Histograms are shaped so histogram_quantile() lands
exactly on the configured quantile (see `_quantile_shares`). Ratios of series from one scrape
(success/total, bucket/bucket) are therefore exact whatever the scrape timing.

    python -m launchgate_dev.synthetic --port 9101 --version v2 --namespace agents --success-rate 0.994
    curl -XPOST localhost:9101/control -d '{"success_rate": 0.9}'    # turn the canary bad

It exports every metric of the agent metrics contract (docs/agent-metrics.md), each with a knob
that breaks the checklist control judging it (`Rates`, settable with flags and POST /control).
`SyntheticAgent` runs one in a subprocess for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import select
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

JOBS, JOBS_HELP = "agent_jobs", "Jobs finished, by outcome."
"""The jobs counter family (`agent_jobs_total`): also exported by the benchmark's fleet processes."""
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
APPROVAL_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)


@dataclass
class Rates:
    """Everything the agent simulates; all settable at runtime through POST /control."""

    rps: float = 20.0  # jobs per second
    success_rate: float = 0.994  # exact fraction of jobs with outcome="success"
    p95_ms: float = 1014.0  # p95 of agent_job_seconds, in ms
    approval_median_s: float = 520.0  # median of agent_approval_wait_seconds
    high_risk_rate: float = 1.0  # approved high-risk actions per second (each waits for approval)
    unapproved_rate: float = 0.0  # unapproved high-risk actions per second
    cost_per_job: float = 0.01  # USD
    policy_bypass_rate: float = 0.0  # per second
    critical_bypass_rate: float = 0.0  # replay critical bypasses per second
    duplicate_rate: float = 0.0  # duplicate side effects per second
    backlog_over_sla: float = 0.0  # gauge: approvals waiting beyond SLA
    drill_passed: float = 1.0  # gauge: 1 if the rollback drill passed
    # The rest of the agent metrics contract, each with the knob that breaks its checklist control.
    submit_policy_coverage: float = 1.0  # share of jobs given a policy decision at submit (control 1)
    dispatch_policy_coverage: float = 1.0  # share of jobs re-evaluated at dispatch (control 2)
    deny_rate: float = 0.5  # submit-stage DENY decisions per second (jobs never run)
    policy_hash: str = "0000000000"  # the policy bundle hash the agent has loaded (control 4)
    approvals_waiting: float = 2.0  # gauge: approval requests not yet decided
    unlinked_log_rate: float = 0.0  # decision-log records per second missing the job ID (control 5)
    schema_rejected_rate: float = 0.2  # requests refused at the API boundary per second (control 9)
    unvalidated_tool_call_rate: float = 0.0  # tool calls per second with unvalidated input (control 9)
    output_safety_coverage: float = 1.0  # share of outputs given an output-safety outcome (control 10)
    transient_retry_rate: float = 0.5  # retries of transient errors per second
    terminal_retry_rate: float = 0.0  # retries of terminal errors per second (control 11)
    global_timeout: float = 0.0  # 1: one timeout budget for every job class (control 12)
    dead_letter_depth: float = 3.0  # gauge: messages in the dead-letter queue
    dead_letter_oldest_age_s: float = 600.0  # gauge: age of the oldest dead letter
    stale_heartbeat_rate: float = 0.1  # stale worker heartbeats detected per second
    requeue_ratio: float = 1.0  # share of stale workers' jobs requeued (control 14)
    tokens_per_job: float = 1500.0  # model tokens per job
    egress_denied_rate: float = 0.05  # outbound calls refused by the egress allowlist per second
    job_classes: str = "default"  # comma-separated job classes; jobs are split evenly between them
    values: dict[str, float] = field(default_factory=dict)  # free gauges agent_test_value{name}

    def check(self) -> None:
        for name in ("success_rate", "submit_policy_coverage", "dispatch_policy_coverage", "output_safety_coverage",
                     "requeue_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        for name in ("rps", "high_risk_rate", "unapproved_rate", "cost_per_job", "policy_bypass_rate",
                     "critical_bypass_rate", "duplicate_rate", "deny_rate", "unlinked_log_rate",
                     "schema_rejected_rate", "unvalidated_tool_call_rate", "transient_retry_rate",
                     "terminal_retry_rate", "stale_heartbeat_rate", "tokens_per_job", "egress_denied_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not self.classes():
            raise ValueError("job_classes must name at least one job class")
        _quantile_shares(0.95, self.p95_ms / 1000.0, JOB_BUCKETS)
        _quantile_shares(0.5, self.approval_median_s, APPROVAL_BUCKETS)


    def classes(self) -> list[str]:
        return [c.strip() for c in self.job_classes.split(",") if c.strip()]


STR_SETTINGS = ("policy_hash", "job_classes")
"""Settings that are text, not numbers."""

# How jobs that pass policy split between the seed's production-policy rules, and the output-safety
# outcomes: fixed shares, so every ratio a gate takes is exact.
RULE_SHARES = {("ALLOW", "allow-read-only"): 0.7, ("REQUIRE_APPROVAL", "approval-prod-write"): 0.1,
               ("ALLOW_WITH_CONSTRAINTS", "constrain-external-egress"): 0.2}
SAFETY_SHARES = {"ALLOW": 0.94, "REDACT": 0.05, "QUARANTINE": 0.01}
TIMEOUT_SHARE = 0.001  # of a class's jobs that time out
TIMEOUT_BUDGETS = (30.0, 900.0, 3600.0)  # seconds, by job class in order (the last repeats)


def _quantile_shares(q: float, x: float, buckets: tuple[float, ...]) -> dict[int, float]:
    """Shares of observations per bucket index so that histogram_quantile(q) is exactly x.

    Bucket i is (buckets[i-1], buckets[i]]; index len(buckets) is the +Inf bucket. With x in
    bucket i = (L, U] and p = (x-L)/(U-L), put share d = min(q, 1-q) in bucket i, q - d*p in the
    bucket below and the rest above. Then the rank q*N falls in bucket i at fraction p of it, and
    Prometheus' linear interpolation returns L + (U-L)*p = x.
    """
    if not buckets[0] < x <= buckets[-1]:
        raise ValueError(f"{x:g} is outside the simulated histogram's range ({buckets[0]:g}, {buckets[-1]:g}]")
    i = next(k for k, u in enumerate(buckets) if x <= u)
    lower, upper = buckets[i - 1], buckets[i]
    p = (x - lower) / (upper - lower)
    d = min(q, 1.0 - q)
    return {i - 1: q - d * p, i: d, i + 1: 1.0 - q - d * (1.0 - p)}


class Simulator:
    """Counters as exact integrals of piecewise-constant rates; thread-safe."""

    def __init__(self, namespace: str, version: str, rates: Rates | None = None) -> None:
        self.namespace, self.version = namespace, version
        self.rates = rates or Rates()
        self.rates.check()
        self._lock = threading.Lock()
        self._last = time.time()
        self.jobs = {"success": 0.0, "error": 0.0}
        self.job_buckets = [0.0] * (len(JOB_BUCKETS) + 1)
        self.job_seconds_sum = 0.0
        self.high_risk = {"true": 0.0, "false": 0.0}
        self.approval_buckets = [0.0] * (len(APPROVAL_BUCKETS) + 1)
        self.approval_sum = 0.0
        self.cost = 0.0
        self.policy_bypass = 0.0
        self.critical_bypass = 0.0
        self.duplicates = 0.0
        self.c: dict[str, float] = {}  # the contract's other counters, by name (see _advance_contract)

    def _advance(self, now: float) -> None:
        dt = max(0.0, now - self._last)
        self._last = now
        r = self.rates
        jobs = r.rps * dt
        self.jobs["success"] += jobs * r.success_rate
        self.jobs["error"] += jobs * (1.0 - r.success_rate)
        p95 = r.p95_ms / 1000.0
        for i, share in _quantile_shares(0.95, p95, JOB_BUCKETS).items():
            self.job_buckets[i] += jobs * share
        self.job_seconds_sum += jobs * p95 * 0.8
        approvals = r.high_risk_rate * dt
        self.high_risk["true"] += approvals
        self.high_risk["false"] += r.unapproved_rate * dt
        for i, share in _quantile_shares(0.5, r.approval_median_s, APPROVAL_BUCKETS).items():
            self.approval_buckets[i] += approvals * share
        self.approval_sum += approvals * r.approval_median_s
        self.cost += jobs * r.cost_per_job
        self.policy_bypass += r.policy_bypass_rate * dt
        self.critical_bypass += r.critical_bypass_rate * dt
        self.duplicates += r.duplicate_rate * dt
        self._advance_contract(r, jobs, dt)

    def _add(self, key: str, x: float) -> None:
        self.c[key] = self.c.get(key, 0.0) + x

    def _advance_contract(self, r: Rates, jobs: float, dt: float) -> None:
        add = self._add
        for (decision, rule), share in RULE_SHARES.items():
            add(f"submit|{decision}|{rule}", jobs * r.submit_policy_coverage * share)
            add(f"dispatch|{decision}|{rule}", jobs * r.dispatch_policy_coverage * share)
        add("submit|DENY|deny-destructive-prod", r.deny_rate * dt)
        add("dispatch|DENY|deny-destructive-prod", 0.0)
        approvals = r.high_risk_rate * dt
        add("approvals_requested", approvals)
        add("approvals_granted", approvals)
        add("log|true", jobs)
        add("log|false", r.unlinked_log_rate * dt)
        add("schema_rejected", r.schema_rejected_rate * dt)
        add("tool|true", jobs)
        add("tool|false", r.unvalidated_tool_call_rate * dt)
        for outcome, share in SAFETY_SHARES.items():
            add(f"safety|{outcome}", jobs * r.output_safety_coverage * share)
        add("retry|transient", r.transient_retry_rate * dt)
        add("retry|terminal", r.terminal_retry_rate * dt)
        classes = r.classes()
        for job_class in classes:
            add(f"timeouts|{job_class}", jobs * TIMEOUT_SHARE / len(classes))
        stale = r.stale_heartbeat_rate * dt
        add("heartbeats_stale", stale)
        add("requeues", stale * r.requeue_ratio)
        add("tokens", jobs * r.tokens_per_job)
        add("egress_denied", r.egress_denied_rate * dt)

    def set(self, changes: dict[str, Any]) -> Rates:
        """Apply new rates from now on (what happened so far stays counted at the old rates)."""
        known = {f.name for f in dataclasses.fields(Rates)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        with self._lock:
            self._advance(time.time())
            values = dict(self.rates.values)
            values.update({str(k): float(v) for k, v in (changes.get("values") or {}).items()})
            settings: dict[str, Any] = {k: (str(v) if k in STR_SETTINGS else float(v))
                                        for k, v in changes.items() if k != "values"}
            new = dataclasses.replace(self.rates, **settings, values=values)
            new.check()
            self.rates = new
            return new

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._advance(time.time())
            yield from self._families()

    def jobs_total(self) -> dict[str, float]:
        """Jobs finished so far, by outcome (the `agent_jobs` family's values). The benchmark's
        fleets export only this family: building every family of 500 simulators per scrape only to
        drop all but one would take CPU from the cores the operator is measured on."""
        with self._lock:
            self._advance(time.time())
            return dict(self.jobs)

    def _families(self) -> Iterator[Metric]:
        nv = [self.namespace, self.version]
        labels = ["namespace", "version"]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            fam = CounterMetricFamily(name, doc, labels=labels)
            fam.add_metric(nv, value)
            return fam

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(name, doc, labels=labels)
            fam.add_metric(nv, value)
            return fam

        def histogram(
            name: str, doc: str, bounds: tuple[float, ...], counts: list[float], total: float
        ) -> HistogramMetricFamily:
            fam = HistogramMetricFamily(name, doc, labels=labels)
            cumulative, acc = [], 0.0
            for bound, c in zip((*bounds, float("inf")), counts, strict=True):
                acc += c
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), acc))
            fam.add_metric(nv, cumulative, sum_value=total)
            return fam

        classes = self.rates.classes()
        jobs = CounterMetricFamily(JOBS, JOBS_HELP, labels=[*labels, "outcome", "job_class"])
        for outcome, value in self.jobs.items():
            for job_class in classes:
                jobs.add_metric([*nv, outcome, job_class], value / len(classes))
        yield jobs
        yield histogram("agent_job_seconds", "Job duration.", JOB_BUCKETS, self.job_buckets, self.job_seconds_sum)
        risk = CounterMetricFamily("agent_high_risk_actions", "High-risk actions.", labels=[*labels, "approved"])
        for approved, value in self.high_risk.items():
            risk.add_metric([*nv, approved], value)
        yield risk
        yield histogram("agent_approval_wait_seconds", "Wait for human approval.", APPROVAL_BUCKETS,
                        self.approval_buckets, self.approval_sum)
        yield counter("agent_cost_usd", "Model and tool spend.", self.cost)
        yield counter("agent_policy_bypass", "Actions that bypassed policy.", self.policy_bypass)
        yield counter("agent_replay_critical_bypass", "Critical bypasses in replay.", self.critical_bypass)
        yield counter("agent_duplicate_side_effects", "Duplicated external side effects.", self.duplicates)
        yield gauge("agent_approval_backlog_over_sla", "Approvals waiting beyond SLA.", self.rates.backlog_over_sla)
        yield gauge("agent_rollback_drill_passed", "1 if the rollback drill passed.", self.rates.drill_passed)
        yield from self._contract_families(nv, labels, counter, gauge)
        test = GaugeMetricFamily("agent_test_value", "Free gauges for exact tests.", labels=[*labels, "name"])
        for name, value in sorted(self.rates.values.items()):
            test.add_metric([*nv, name], value)
        yield test


    def _contract_families(self, nv: list[str], labels: list[str], counter: Any, gauge: Any) -> Iterator[Metric]:
        """The rest of the agent metrics contract (docs/agent-metrics.md)."""
        r, c = self.rates, self.c

        def labelled(kind: type[Metric], name: str, doc: str, keys: list[str],
                     rows: list[tuple[list[str], float]]) -> Metric:
            fam = kind(name, doc, labels=[*labels, *keys])  # type: ignore[call-arg]
            for values, x in rows:
                fam.add_metric([*nv, *values], x)  # type: ignore[attr-defined]
            return fam

        decisions = [(k.split("|"), x) for k, x in sorted(c.items()) if k.startswith(("submit|", "dispatch|"))]
        yield labelled(CounterMetricFamily, "agent_policy_decisions", "Policy decisions, by stage, decision and rule.",
                       ["stage", "decision", "rule"], decisions)
        yield labelled(GaugeMetricFamily, "agent_policy_bundle_info", "The policy bundle the agent has loaded.",
                       ["bundle_hash"], [([r.policy_hash], 1.0)])
        yield counter("agent_approvals_requested", "Approvals requested.", c.get("approvals_requested", 0.0))
        yield counter("agent_approvals_granted", "Approvals granted.", c.get("approvals_granted", 0.0))
        yield gauge("agent_approvals_waiting", "Approval requests not yet decided.", r.approvals_waiting)
        yield labelled(CounterMetricFamily, "agent_decision_log_records",
                       "Decision-log records; linked=false lacks the job ID tying request, decision, approver "
                       "and outcome together.", ["linked"],
                       [([v], c.get(f"log|{v}", 0.0)) for v in ("true", "false")])
        yield labelled(CounterMetricFamily, "agent_requests_rejected", "Requests refused at the API boundary.",
                       ["reason"], [(["schema"], c.get("schema_rejected", 0.0))])
        yield labelled(CounterMetricFamily, "agent_tool_calls", "Tool calls, by whether their input was validated.",
                       ["validated"], [([v], c.get(f"tool|{v}", 0.0)) for v in ("true", "false")])
        yield labelled(CounterMetricFamily, "agent_output_safety", "Output-safety outcomes.", ["outcome"],
                       [([o], c.get(f"safety|{o}", 0.0)) for o in SAFETY_SHARES])
        yield labelled(CounterMetricFamily, "agent_retries", "Retries, by error class.", ["error_class"],
                       [([e], c.get(f"retry|{e}", 0.0)) for e in ("transient", "terminal")])
        classes = r.classes()
        yield labelled(CounterMetricFamily, "agent_job_timeouts", "Jobs that ran out of their timeout budget.",
                       ["job_class"], [([j], c.get(f"timeouts|{j}", 0.0)) for j in classes])
        budgets = [(["*"], TIMEOUT_BUDGETS[0])] if r.global_timeout else [
            ([j], TIMEOUT_BUDGETS[min(i, len(TIMEOUT_BUDGETS) - 1)]) for i, j in enumerate(classes)]
        yield labelled(GaugeMetricFamily, "agent_job_timeout_budget_seconds",
                       "Timeout budget by job class (job_class=\"*\": one budget for all).", ["job_class"], budgets)
        yield gauge("agent_dead_letter_depth", "Messages in the dead-letter queue.", r.dead_letter_depth)
        yield gauge("agent_dead_letter_oldest_age_seconds", "Age of the oldest dead letter.",
                    r.dead_letter_oldest_age_s)
        yield counter("agent_worker_heartbeats_stale", "Workers detected with a stale heartbeat.",
                      c.get("heartbeats_stale", 0.0))
        yield counter("agent_worker_requeues", "Jobs of stale workers requeued.", c.get("requeues", 0.0))
        yield counter("agent_cost_tokens", "Model tokens spent.", c.get("tokens", 0.0))
        yield counter("agent_egress_denied", "Outbound calls refused by the egress allowlist.",
                      c.get("egress_denied", 0.0))


def make_server(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(sim)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _config(self) -> bytes:
            return json.dumps({"namespace": sim.namespace, "version": sim.version,
                               **dataclasses.asdict(sim.rates)}).encode()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.startswith("/metrics"):
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/control":
                self._reply(200, self._config())
            elif self.path == "/healthz":
                self._reply(200, b"ok", "text/plain")
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/control":
                self._reply(404, b"not found", "text/plain")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                sim.set(body)
            except (ValueError, TypeError) as e:
                self._reply(400, json.dumps({"error": str(e)}).encode())
                return
            self._reply(200, self._config())

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
            pass

    return ThreadingHTTPServer((host, port), Handler)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m launchgate_dev.synthetic", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    ap.add_argument("--version", required=True, help="value of the version label")
    ap.add_argument("--namespace", default="agents")
    defaults = Rates()
    for f in dataclasses.fields(Rates):
        if f.name != "values":
            ap.add_argument("--" + f.name.replace("_", "-"), type=str if f.name in STR_SETTINGS else float,
                            default=getattr(defaults, f.name))
    ap.add_argument("--value", action="append", default=[], metavar="NAME=X", help="agent_test_value gauge")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    rates = Rates(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Rates) if f.name != "values"})
    for item in args.value:
        name, _, x = item.partition("=")
        rates.values[name] = float(x)
    server = make_server(Simulator(args.namespace, args.version, rates), args.host, args.port)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


class SyntheticAgent:
    """One synthetic agent in a subprocess, for tests: `.port`, `.address`, `.set(...)`, `.stop()`."""

    def __init__(self, version: str, namespace: str = "agents", host: str = "127.0.0.1", **rates: Any) -> None:
        self.version, self.namespace, self.host = version, namespace, host
        self.initial = rates
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 30.0) -> SyntheticAgent:
        cmd = [sys.executable, "-m", "launchgate_dev.synthetic", "--host", self.host, "--port", "0",
               "--version", self.version, "--namespace", self.namespace]
        for k, v in self.initial.items():
            if k == "values":
                cmd += [a for name, x in v.items() for a in ("--value", f"{name}={x}")]
            else:
                cmd += ["--" + k.replace("_", "-"), str(v)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while not line and time.monotonic() < deadline and self.proc.poll() is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"synthetic agent {self.version} did not start (output: {line!r})")
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def set(self, **rates: Any) -> dict[str, Any]:
        """Change rates now, e.g. `.set(success_rate=0.9)` or `.set(values={"error_ratio": 0.3})`."""
        return self._request("POST", "/control", rates)

    def config(self) -> dict[str, Any]:
        return self._request("GET", "/control")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> SyntheticAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
