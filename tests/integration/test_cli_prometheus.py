"""`launchgate check|backtest` and PrometheusSource against servers that misbehave, and against a
real Prometheus for the answers a CI script acts on.

Misbehaving servers are small socket servers on 127.0.0.1 started by each test: one trickles a
byte every few tenths of a second (a per-read timeout never fires), one accepts and never answers.
Elapsed-time assertions are generous upper bounds on termination: the point is that it ends.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from launchgate.adapters.prometheus import PrometheusSource, source_from_config
from launchgate_dev.synthetic import SyntheticAgent

NS = "agents"


def launchgate_script() -> str:
    script = shutil.which("launchgate", path=str(Path(sys.executable).parent))
    assert script, "the launchgate console script is not installed in this environment"
    return script


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The console script as CI runs it, and how long it took. The subprocess timeout only keeps a
    hanging run from hanging the suite; the tests assert much tighter bounds."""
    t0 = time.monotonic()
    r = subprocess.run([launchgate_script(), *args], capture_output=True, text=True, timeout=60)
    return r, time.monotonic() - t0


@pytest.fixture(scope="module")
def startup() -> float:
    """Time bounds add this for starting the console script: twice the longer of two bare runs,
    so a busy machine does not turn a slow start into a failure."""
    return 2 * max(run_cli("--version")[1] for _ in range(2))


# --------------------------------------------------------------------------- misbehaving servers


class BadServer:
    """A TCP server on 127.0.0.1 that reads each request and then misbehaves, for at most 60 s.

    mode "silent": never answers. "headers": sends a status line, then a header one byte at a time.
    "body": sends complete headers announcing a large body, then the body one byte at a time.
    """

    def __init__(self, mode: str, every: float = 0.3) -> None:
        self.mode, self.every = mode, every
        self.stop_event = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.accepted = 0

    def __enter__(self) -> BadServer:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        self.listener.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        end = time.monotonic() + 60
        try:
            conn.settimeout(1)
            try:
                conn.recv(65536)  # the request (small enough for one read here)
            except TimeoutError:
                pass
            if self.mode == "headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            elif self.mode == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
            while not self.stop_event.wait(self.every) and time.monotonic() < end:
                if self.mode != "silent":
                    conn.sendall(b"a")
        except OSError:
            pass


# --------------------------------------------------------------------------- 2: deadlines


def _finishes(fn: Any, within: float) -> Any:
    """Run fn in a thread; fail unless it returns within `within` seconds."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(within)
    assert not t.is_alive(), f"still running after {within:.1f}s"
    assert out, "raised instead of returning"
    return out[0], time.monotonic() - t0


@pytest.mark.parametrize("mode", ["headers", "body", "silent"])
def test_source_query_never_outlives_its_timeout(mode: str) -> None:
    """The operator's and the CLI's client: a whole request (connect and every read) is bounded."""
    with BadServer(mode) as server:
        operator_source = source_from_config({"url": server.url, "timeout": "2"})
        raw, took = _finishes(lambda: operator_source.query_raw("up"), within=2 + 1)
        assert raw.data is None and raw.error is not None and raw.error.startswith("prometheus unreachable"), raw
        assert "2s" in raw.error, raw.error
        cli_source = PrometheusSource(server.url, timeout=1.5, retries=0)
        t = datetime.now(UTC)
        ranged, _ = _finishes(lambda: cli_source.query_range_raw("up", t - timedelta(minutes=1), t, 15.0),
                              within=1.5 + 1)
        assert ranged.error is not None and ranged.error.startswith("prometheus unreachable"), ranged


def test_source_reuses_a_bounded_connection_for_the_next_query(prometheus: Any) -> None:
    """The bound is per request: a pooled connection that served one answer serves the next."""
    source = PrometheusSource(prometheus.url, timeout=2)
    assert source.query("vector(1)").value == 1
    assert source.query("vector(2)").value == 2
    pools = source._pc._session.get_adapter(prometheus.url).poolmanager.pools
    assert [pools[k].num_connections for k in pools.keys()] == [1]


def test_source_overall_deadline_stops_later_queries() -> None:
    with BadServer("silent") as server:
        source = PrometheusSource(server.url, timeout=5, retries=0, deadline=time.monotonic() + 1.5)
        first, took = _finishes(lambda: source.query_raw("up"), within=1.5 + 1)
        assert first.error is not None and "deadline" in first.error, first.error
        second, took = _finishes(lambda: source.query_raw("up"), within=0.5)
        assert second.error is not None and "deadline" in second.error, second.error
        assert server.accepted == 1  # nothing is sent once the deadline has passed


FOUR_BLOCKERS = {
    "apiVersion": "launchgate.dev/v1alpha1",
    "kind": "LaunchGate",
    "metadata": {"name": "four", "namespace": NS},
    "spec": {
        "window": "5m",
        "blockers": [
            {"name": f"b{i}", "query": f'sum(up{{version="$canary",n="{i}"}})', "target": {"gte": 1}}
            for i in range(4)
        ],
    },
}


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_check_timeout_bounds_a_trickling_server(mode: str, tmp_path: Path, startup: float) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump({**FOUR_BLOCKERS, "spec": {**FOUR_BLOCKERS["spec"],
                                                              "blockers": FOUR_BLOCKERS["spec"]["blockers"][:1]}}))
    with BadServer(mode) as server:
        r, took = run_cli("check", "-f", str(gate), "--prometheus", server.url, "--var", "canary=v2",
                          "--timeout", "2")
    assert took < 2 + 1 + startup, f"took {took:.1f}s"
    assert r.returncode == 2 and "prometheus unreachable" in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["check", "backtest"])
def test_deadline_bounds_the_whole_command(command: str, tmp_path: Path, startup: float) -> None:
    """Four queries against a server that never answers: the deadline, not 4 x the timeout."""
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump(FOUR_BLOCKERS))
    extra = ["--from", "-1h", "--to", "now", "--step", "10m"] if command == "backtest" else []
    with BadServer("silent") as server:
        r, took = run_cli(command, "-f", str(gate), "--prometheus", server.url, "--var", "canary=v2",
                          "--timeout", "2", "--deadline", "3", *extra)
    assert took < 3 + 1 + startup, f"took {took:.1f}s"
    assert r.returncode == 2 and "prometheus unreachable" in r.stderr, r.stderr


def test_deadline_default_is_documented() -> None:
    for command in ("check", "backtest"):
        r, _ = run_cli(command, "--help")
        assert r.returncode == 0 and "--deadline" in r.stdout, r.stdout


# --------------------------------------------------------------------------- 3: exit codes


def gate_file(tmp_path: Path, *queries: str, name: str = "g") -> Path:
    """A gate with one blocker per query (target gte 0, so any number passes)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"window": "5m", "blockers": [
            {"name": f"b{i}", "query": q, "target": {"gte": 0}} for i, q in enumerate(queries)
        ]},
    }))
    return path


# Two series on each side and nothing to match them by: Prometheus refuses while executing it
# (HTTP 422, errorType execution), whatever data it holds.
MANY_TO_MANY = ('sum((label_replace(vector(1), "a", "x", "", "") or label_replace(vector(1), "a", "y", "", ""))'
                ' * on() (label_replace(vector(1), "a", "x", "", "") or label_replace(vector(1), "a", "y", "", "")))')


class NotPrometheus:
    """A real HTTP server that is not Prometheus: it serves files and answers POST with 501."""

    def __init__(self, directory: Path) -> None:
        import functools
        import http.server

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *_: None  # type: ignore[attr-defined]
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> NotPrometheus:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("case", ["wrong base path", "parse error", "execution error", "not prometheus"])
def test_check_exits_2_when_prometheus_cannot_answer(case: str, prometheus: Any, tmp_path: Path) -> None:
    """A misconfigured or unusable Prometheus, or a query that can never succeed: exit 2, the reason
    on stderr, and no verdict on stdout."""
    url, query, reason = {
        "wrong base path": (prometheus.url + "/prometheus", "vector(1)", "HTTP 404"),
        "parse error": (prometheus.url, "sum(", "HTTP 400"),
        "execution error": (prometheus.url, MANY_TO_MANY, "HTTP 422"),
        "not prometheus": (None, "vector(1)", "HTTP 501"),
    }[case]
    gate = gate_file(tmp_path, "vector(1)", query)
    if url is None:
        with NotPrometheus(tmp_path) as other:
            r, _ = run_cli("check", "-f", str(gate), "--prometheus", other.url)
    else:
        r, _ = run_cli("check", "-f", str(gate), "--prometheus", url)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert reason in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("flag", [("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "nan"),
                                  ("--deadline", "0"), ("--deadline", "-1"), ("--deadline", "inf")])
def test_a_timeout_that_cannot_work_is_bad_input(flag: tuple[str, str], prometheus: Any, tmp_path: Path) -> None:
    for command, extra in (("check", []), ("backtest", ["--from", "-10m"])):
        r, _ = run_cli(command, "-f", str(gate_file(tmp_path, "vector(1)")), "--prometheus", prometheus.url, *flag,
                       *extra)
        assert r.returncode == 2 and flag[0] in r.stderr and r.stdout == "", (command, r.returncode, r.stderr)


@pytest.mark.parametrize("query, reason", [
    ("sum(launchgate_no_such_metric)", "empty vector"),
    ("vector(0) / 0", "NaN"),
])
def test_check_exits_1_for_missing_data(query: str, reason: str, prometheus: Any, tmp_path: Path) -> None:
    r, _ = run_cli("check", "-f", str(gate_file(tmp_path, "vector(1)", query)), "--prometheus", prometheus.url)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert json.loads(r.stdout)["decision"] == "hold" and reason in r.stderr


def test_backtest_exits_2_for_a_query_error(prometheus: Any, tmp_path: Path) -> None:
    r, _ = run_cli("backtest", "-f", str(gate_file(tmp_path, MANY_TO_MANY)), "--prometheus", prometheus.url,
                   "--from", "-10m", "--step", "5m")
    assert r.returncode == 2 and "HTTP 422" in r.stderr and r.stdout == "", r.stderr


def test_the_operator_still_holds_on_the_same_errors(prometheus: Any) -> None:
    """The classification is the CLI's exit code; for the operator every one of them is a hold."""
    from launchgate.api import LaunchGateSpec
    from launchgate.core import engine

    spec = LaunchGateSpec.model_validate({"window": "5m", "blockers": [
        {"name": "a", "query": MANY_TO_MANY, "target": {"gte": 0}},
        {"name": "b", "query": "vector(1)", "target": {"gte": 0}},
    ]})
    for url in (prometheus.url, prometheus.url + "/prometheus", "http://127.0.0.1:9"):
        res = engine.evaluate(spec, PrometheusSource(url, timeout=3, retries=0), {})
        assert res.decision == "hold" and "a" in res.missing, res.message


def test_check_help_and_readme_state_the_exit_code_rule() -> None:
    r, _ = run_cli("check", "--help")
    text = " ".join(r.stdout.split())
    assert "2 Prometheus is unusable" in text and "1 block, or hold" in text and "missing data" in text
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert "2 Prometheus unusable or a query that can never succeed" in readme


# --------------------------------------------------------------------------- 4: gate files as the operator reads them


@pytest.fixture
def agent(prometheus: Any) -> Iterator[Callable[..., SyntheticAgent]]:
    """Start synthetic agents registered as scrape targets; all stopped and removed afterwards."""
    started: list[tuple[str, SyntheticAgent]] = []

    def start(version: str, **rates: Any) -> SyntheticAgent:
        a = SyntheticAgent(version, namespace=NS, **rates).start()
        name = f"cli-{uuid.uuid4().hex[:8]}"
        started.append((name, a))
        prometheus.add_target(name, a.address)
        return a

    yield start
    for name, a in started:
        prometheus.remove_target(name)
        a.stop()


VALUE = 'max(agent_test_value{namespace="$namespace",version="$version",name="score"})'


def scored_gate(tmp_path: Path, variables: dict[str, str] | None, target: dict[str, float]) -> Path:
    spec: dict[str, Any] = {"window": "5m", "blockers": [{"name": "score", "query": VALUE, "target": target}]}
    if variables is not None:
        spec["variables"] = variables
    path = tmp_path / "scored.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate",
                                    "metadata": {"name": "scored", "namespace": NS}, "spec": spec}))
    return path


def wait_for_series(prometheus: Any, version: str) -> None:
    source = PrometheusSource(prometheus.url)
    end = time.monotonic() + 45
    q = f'max(agent_test_value{{version="{version}",name="score"}})'
    while source.query(q).value is None:
        assert time.monotonic() < end, f"no series for {version}"
        time.sleep(0.25)


def test_spec_variables_are_used_by_check_and_backtest(prometheus: Any, agent: Any, tmp_path: Path) -> None:
    """As the operator evaluates a gate on its own: spec.variables bind $canary/$stable; --var
    overrides them."""
    stable = agent(f"s-{uuid.uuid4().hex[:6]}", values={"score": 10})
    canary = agent(f"c-{uuid.uuid4().hex[:6]}", values={"score": 11})
    other = agent(f"o-{uuid.uuid4().hex[:6]}", values={"score": 30})
    for a in (stable, canary, other):
        wait_for_series(prometheus, a.version)
    gate = scored_gate(tmp_path, {"canary": canary.version, "stable": stable.version}, {"lteBaselineRatio": 1.2})

    r, _ = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url)
    assert r.returncode == 0, r.stderr
    blocker = json.loads(r.stdout)["blockers"]["score"]
    assert (blocker["value"], blocker["baseline_value"]) == (11, 10)

    r, _ = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url, "--var", f"canary={other.version}")
    assert r.returncode == 1 and json.loads(r.stdout)["blockers"]["score"]["value"] == 30, r.stderr

    r, _ = run_cli("backtest", "-f", str(gate), "--prometheus", prometheus.url, "--from", "-2s", "--step", "1s",
                   "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["windows"][-1]["values"] == {"score": 11}


@pytest.mark.parametrize("item, hint", [
    ("canry=v2", "unknown variable"),
    ("version=v2", "set canary="),
    ("window=1m", "spec.window"),
    ("Canary=v2", "unknown variable"),
])
def test_unknown_var_names_are_refused(item: str, hint: str, prometheus: Any, tmp_path: Path) -> None:
    gate = scored_gate(tmp_path, {"canary": "v1", "stable": "v0"}, {"gte": 0})
    for command, extra in (("check", []), ("backtest", ["--from", "-10m"])):
        r, _ = run_cli(command, "-f", str(gate), "--prometheus", prometheus.url, "--var", item, *extra)
        assert r.returncode == 2 and r.stdout == "", (command, r.returncode, r.stderr)
        name = item.partition("=")[0]
        assert f"--var {name}" in r.stderr and hint in r.stderr, r.stderr
        assert "known: namespace, rollout, stable, canary" in r.stderr, r.stderr


@pytest.mark.parametrize("given, missing", [
    (["canary=v2"], "set stable=..."),
    (["stable=v1"], "set canary=..."),
    ([], "set canary=... and stable=..."),
])
def test_a_ratio_blocker_says_exactly_which_version_is_missing(given: list[str], missing: str, prometheus: Any,
                                                               tmp_path: Path) -> None:
    gate = scored_gate(tmp_path, None, {"lteBaselineRatio": 1.2})
    args = [arg for item in given for arg in ("--var", item)]
    r, _ = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url, *args)
    assert r.returncode == 2 and r.stderr.rstrip().endswith(missing), r.stderr
    assert "$version is used but not bound" in r.stderr


def test_check_json_lists_the_blockers_with_missing_data(prometheus: Any, tmp_path: Path) -> None:
    gate = gate_file(tmp_path, "vector(1)", "sum(launchgate_no_such_metric)", "vector(0) / 0")
    r, _ = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["decision"] == "hold" and doc["missing"] == ["b1", "b2"]
    backtest, _ = run_cli("backtest", "-f", str(gate), "--prometheus", prometheus.url, "--from", "-1m", "--step",
                          "1m", "-o", "json")
    assert json.loads(backtest.stdout)["windows"][-1]["missing"] == doc["missing"]  # the same key and meaning


# --------------------------------------------------------------------------- 5: backtest rows


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_backtest_rows_start_at_from(prometheus: Any, tmp_path: Path) -> None:
    """Rows are evaluations at --from, --from + step, ... up to --to, each the end of its window,
    like the evaluation times of a Prometheus range query."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    r, _ = run_cli("backtest", "-f", str(gate_file(tmp_path, "vector(1)")), "--prometheus", prometheus.url,
                   "--from", iso(start), "--to", iso(start + timedelta(minutes=30)), "--step", "10m", "-o", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["windows"]
    assert [w["end"] for w in rows] == [iso(start + timedelta(minutes=m)) for m in (0, 10, 20, 30)]
    assert rows[0]["start"] == iso(start - timedelta(minutes=5))  # the gate's 5m window, ending at --from
    help_text = " ".join(run_cli("backtest", "--help")[0].stdout.split())
    assert "the first row is the evaluation at --from" in help_text, help_text


def test_backtest_table_shows_why_a_row_holds(prometheus: Any, tmp_path: Path) -> None:
    gate = gate_file(tmp_path, "vector(1)", "sum(launchgate_no_such_metric)", "vector(0) / 0")
    r = subprocess.run([launchgate_script(), "backtest", "-f", str(gate), "--prometheus", prometheus.url,
                        "--from", "-2m", "--step", "1m"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    held = [line for line in r.stdout.splitlines() if " hold " in line]
    assert len(held) == 3, r.stdout
    assert all("no data: empty vector" in line and "no data: NaN" in line for line in held), r.stdout


# --------------------------------------------------------------------------- evidence


def test_check_and_backtest_show_the_evidence(prometheus: Any, agent: Any, tmp_path: Path) -> None:
    """A count blocker and a judge against a real Prometheus: check's JSON and backtest's rows say
    n, the interval and why the blocker holds."""
    stable = agent(f"s-{uuid.uuid4().hex[:6]}", rps=50, success_rate=0.99, values={"score": 10})
    canary = agent(f"c-{uuid.uuid4().hex[:6]}", rps=2, success_rate=1.0, values={"score": 10})
    for a in (stable, canary):
        wait_for_series(prometheus, a.version)
    jobs = 'agent_jobs_total{namespace="$namespace",version="$version"'
    spec = {"window": "1m", "variables": {"canary": canary.version, "stable": stable.version}, "blockers": [
        {"name": "error_rate", "errors": f'sum(increase({jobs},outcome!="success"}}[$window]))',
         "total": f"sum(increase({jobs}}}[$window]))", "target": {"lte": 0.01}, "confidence": 0.95},
        {"name": "score_vs_stable", "query": VALUE,
         "target": {"judge": {"direction": "either", "step": "1s", "minSamples": 3}}}]}
    path = tmp_path / "evidence.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate",
                                    "metadata": {"name": "evidence", "namespace": NS}, "spec": spec}))
    time.sleep(4)  # a few samples of each

    r, _ = run_cli("check", "-f", str(path), "--prometheus", prometheus.url)
    assert r.returncode == 1 and "not enough evidence" in r.stderr and "a hold is not a pass" in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    errors, score = doc["blockers"]["error_rate"], doc["blockers"]["score_vs_stable"]
    assert errors["waiting"] is True and 0 < errors["n"] < 381 and errors["interval"][0] == 0, errors
    assert errors["reason"].startswith("not enough evidence: n = "), errors
    assert score["judge"] == "pass" and score["pass"] is True and score["n"] >= 3, score

    r = subprocess.run([launchgate_script(), "backtest", "-f", str(path), "--prometheus", prometheus.url,
                        "--from", "-2s", "--step", "1s"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    assert "not enough evidence" in r.stdout and "n = " in r.stdout and " pass n = " in r.stdout, r.stdout
