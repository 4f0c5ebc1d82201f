"""The gate engine against a real Prometheus scraping real (synthetic) agent processes.

Every value here went through a scrape, the TSDB and PromQL: the checklist's gate, baseline ratios,
sustained rollback triggers judged from Prometheus' history, Prometheus going away, injection
attempts, and the `launchgate` console script (check and backtest over backfilled history).
Tests poll for conditions instead of sleeping fixed amounts, and isolate themselves by giving
their agents unique version labels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from launchgate.adapters.prometheus import PrometheusSource
from launchgate.api import LaunchGateSpec, RollbackTrigger
from launchgate.core import engine
from launchgate.core.gates import GateResult, TriggerResult
from launchgate.core.promql import render
from launchgate_dev import devenv
from launchgate_dev.synthetic import SyntheticAgent

NS = "agents"


def poll(what: str, fn: Callable[[], Any], timeout: float = 45.0, every: float = 0.25) -> Any:
    """Call fn until it returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def agents(prometheus: devenv.PrometheusServer) -> Iterator[Callable[..., SyntheticAgent]]:
    """Start synthetic agents registered as scrape targets; all stopped and removed afterwards."""
    started: list[tuple[str, SyntheticAgent]] = []

    def start(version: str, labels: dict[str, str] | None = None, **rates: Any) -> SyntheticAgent:
        agent = SyntheticAgent(version, namespace=NS, **rates).start()
        name = uid("agent")
        started.append((name, agent))
        prometheus.add_target(name, agent.address, labels)
        return agent

    yield start
    for name, agent in started:
        prometheus.remove_target(name)
        agent.stop()


# --------------------------------------------------------------------------- the checklist's gate

SEED_GATE = LaunchGateSpec.model_validate(
    {
        "window": "5s",
        "owners": {"reliability": "sre-oncall", "governance": "ai-governance", "cost": "finops"},
        "blockers": [
            {
                "name": "unapproved_high_risk_actions",
                "owner": "governance",
                "onMissingData": "fail",
                "query": 'sum(increase(agent_high_risk_actions_total{namespace="$namespace",version="$canary",'
                'approved="false"}[$window]))',
                "target": {"eq": 0},
            },
            {
                "name": "workflow_success_rate",
                "owner": "reliability",
                "query": 'sum(rate(agent_jobs_total{namespace="$namespace",version="$canary",outcome="success"}[$window]))'
                ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$canary"}[$window]))',
                "target": {"gte": 0.99},
            },
            {
                "name": "p95_latency_ms",
                "owner": "reliability",
                "query": "1000 * histogram_quantile(0.95, sum by (le) "
                '(rate(agent_job_seconds_bucket{namespace="$namespace",version="$canary"}[$window])))',
                "target": {"lte": 1200},
            },
            {
                "name": "approval_queue_median_sec",
                "owner": "governance",
                "query": "histogram_quantile(0.5, sum by (le) "
                '(rate(agent_approval_wait_seconds_bucket{namespace="$namespace",version="$canary"}[$window])))',
                "target": {"lte": 900},
            },
            {
                "name": "rollback_drill_passed",
                "owner": "reliability",
                "query": 'max(agent_rollback_drill_passed{namespace="$namespace",version="$canary"})',
                "target": {"eq": 1},
            },
        ],
    }
)
SEED_GOOD = {
    "unapproved_high_risk_actions": 0.0,
    "workflow_success_rate": 0.994,
    "p95_latency_ms": 1014.0,
    "approval_queue_median_sec": 520.0,
    "rollback_drill_passed": 1.0,
}
# The agent setting that flips each blocker, its bad value, and the good value to restore.
FLIPS = {
    "unapproved_high_risk_actions": ("unapproved_rate", 0.5, 0.0),
    "workflow_success_rate": ("success_rate", 0.98, 0.994),
    "p95_latency_ms": ("p95_ms", 1300.0, 1014.0),
    "approval_queue_median_sec": ("approval_median_s", 1000.0, 520.0),
    "rollback_drill_passed": ("drill_passed", 0.0, 1.0),
}


def values_match(res: GateResult, expected: dict[str, float]) -> bool:
    got = {b.name: b.value for b in res.blockers}
    return all(got[k] is not None and got[k] == pytest.approx(v, rel=1e-6, abs=1e-9) for k, v in expected.items())


def test_seed_gate_allows_then_blocks_each_flipped_blocker(prometheus: devenv.PrometheusServer, agents: Any) -> None:
    canary = agents(uid("v2"), rps=20, success_rate=0.994, p95_ms=1014, approval_median_s=520)
    source = PrometheusSource(prometheus.url)
    variables = {"namespace": NS, "canary": canary.version, "stable": "unused"}

    def evaluate() -> GateResult:
        return engine.evaluate(SEED_GATE, source, variables)

    res = poll("the seed gate to allow with the seed's values",
               lambda: (r := evaluate()).decision == "allow" and values_match(r, SEED_GOOD) and r)
    assert res.passing == "5/5" and res.failing == []

    for blocker, (setting, bad, good) in FLIPS.items():
        canary.set(**{setting: bad})
        res = poll(f"{blocker} to block", lambda: (r := evaluate()).decision == "block" and r)
        assert res.failing == [blocker], res.message
        assert blocker in res.message
        assert res.passing == "4/5"
        canary.set(**{setting: good})
        poll(f"{blocker} to recover", lambda: (r := evaluate()).decision == "allow" and values_match(r, SEED_GOOD))


def test_baseline_ratio(prometheus: devenv.PrometheusServer, agents: Any) -> None:
    stable = agents(uid("v1"), p95_ms=1000)
    canary = agents(uid("v2"), p95_ms=1300)
    spec = LaunchGateSpec.model_validate(
        {
            "window": "4s",
            "blockers": [
                {
                    "name": "p95_latency_ms",
                    "query": "1000 * histogram_quantile(0.95, sum by (le) "
                    '(rate(agent_job_seconds_bucket{namespace="$namespace",version="$version"}[$window])))',
                    "target": {"lteBaselineRatio": 1.2},
                }
            ],
        }
    )
    source = PrometheusSource(prometheus.url)
    variables = {"namespace": NS, "canary": canary.version, "stable": stable.version}

    def blocker() -> Any:
        r = engine.evaluate(spec, source, variables)
        return r, r.blockers[0]

    def both(canary_ms: float) -> Any:
        x = blocker()
        return x[1].value == pytest.approx(canary_ms) and x[1].baseline_value == pytest.approx(1000) and x

    res, b = poll("1.3x baseline to block", lambda: both(1300))
    assert res.decision == "block" and not b.passed
    assert "ratio 1.3" in b.reason
    canary.set(p95_ms=1100)
    res, b = poll("1.1x baseline to pass", lambda: both(1100))
    assert res.decision == "allow" and b.passed and "ratio 1.1" in b.reason


def test_queries_are_deduplicated_and_counted(prometheus: devenv.PrometheusServer, agents: Any) -> None:
    canary = agents(uid("v2"))
    query = 'sum(rate(agent_jobs_total{namespace="$namespace",version="$canary"}[$window]))'
    spec = LaunchGateSpec.model_validate(
        {
            "window": "4s",
            "blockers": [
                {"name": "a", "query": query, "target": {"gte": 0}},
                {"name": "b", "query": query, "target": {"lte": 1000}},
                # No $version: canary and baseline sides are the same query, sent once.
                {"name": "c", "query": query, "target": {"lteBaselineRatio": 1.0}},
                {"name": "d", "query": "sum(", "target": {"eq": 0}},
            ],
        }
    )
    source = PrometheusSource(prometheus.url)
    variables = {"namespace": NS, "canary": canary.version, "stable": "v-stable"}
    poll("data", lambda: engine.evaluate(spec, source, variables).blockers[0].value)
    before = source.queries_issued
    res = engine.evaluate(spec, source, variables)
    # One per distinct query, and one freshness check for the canary selector the blockers share.
    assert source.queries_issued - before == 3
    a, b, c, d = res.blockers
    assert a.passed and b.passed and c.passed and c.value == c.baseline_value
    assert d.missing and "query error" in d.reason and "parse error" in d.reason and "bad_data" in d.reason
    assert res.decision == "hold"
    long = "vector(7) " + "# padding: long queries go in a POST body\n" * 200
    assert len(long) > 4000 and source.query(long).value == 7


# --------------------------------------------------------------------------- sustained triggers

FOR_SECONDS = 6


def error_trigger() -> RollbackTrigger:
    return RollbackTrigger.model_validate(
        {
            "name": "error-rate-2x-baseline",
            "query": 'max(agent_test_value{namespace="$namespace",version="$version",name="error_ratio"})',
            "above": {"baselineRatio": 2},
            "for": f"{FOR_SECONDS}s",
            "step": "1s",
        }
    )


def judge(url: str, variables: dict[str, str], at: datetime | None = None) -> TriggerResult:
    """A brand-new source each time: nothing but Prometheus' data can carry state between calls."""
    return engine.evaluate_trigger(error_trigger(), PrometheusSource(url), variables, at=at)


def bad_seconds(prometheus: devenv.PrometheusServer, version: str, lookback: int = 120) -> float:
    """How many 1s steps in the last `lookback` seconds Prometheus saw the canary at 0.03."""
    q = (f'count_over_time((max(agent_test_value{{version="{version}",name="error_ratio"}}) > 0.025)'
         f"[{lookback}s:1s])")
    r = prometheus.query(q)
    return float(r[0]["value"][1]) if r else 0.0


def test_trigger_breach_shorter_than_for_does_not_fire(prometheus: devenv.PrometheusServer, agents: Any) -> None:
    stable = agents(uid("v1"), values={"error_ratio": 0.01})
    canary = agents(uid("v2"), values={"error_ratio": 0.01})
    variables = {"namespace": NS, "canary": canary.version, "stable": stable.version}
    poll("data for the whole window", lambda: judge(prometheus.url, variables).data_steps == FOR_SECONDS)
    start = datetime.now(UTC)
    canary.set(values={"error_ratio": 0.03})  # 3x baseline
    poll("Prometheus to see the breach", lambda: judge(prometheus.url, variables).held_steps >= 2)
    canary.set(values={"error_ratio": 0.01})
    poll("Prometheus to see the recovery", lambda: judge(prometheus.url, variables).value == pytest.approx(0.01))
    end = datetime.now(UTC) + timedelta(seconds=1)
    seen = bad_seconds(prometheus, canary.version)
    assert 2 <= seen < FOR_SECONDS - 1, f"precondition: the breach lasted {seen}s in Prometheus"
    t = start
    while t <= end:  # judged at every second of the episode, from history
        r = judge(prometheus.url, variables, at=t)
        assert not r.fired, (t, r)
        t += timedelta(seconds=0.5)


def test_trigger_fires_after_the_whole_for_judged_from_prometheus(
    prometheus: devenv.PrometheusServer, agents: Any
) -> None:
    stable = agents(uid("v1"), values={"error_ratio": 0.01})
    canary = agents(uid("v2"), values={"error_ratio": 0.01})
    variables = {"namespace": NS, "canary": canary.version, "stable": stable.version}
    poll("data for the whole window", lambda: judge(prometheus.url, variables).data_steps == FOR_SECONDS)
    assert not judge(prometheus.url, variables).fired
    canary.set(values={"error_ratio": 0.03})
    first_bad = poll("Prometheus to see the breach", lambda: judge(prometheus.url, variables).held_steps >= 1
                     and datetime.now(UTC))
    fired = poll("the trigger to fire", lambda: (r := judge(prometheus.url, variables)).fired and r)
    fired_at = datetime.now(UTC)
    assert fired.value == pytest.approx(0.03) and fired.baseline_value == pytest.approx(0.01)
    assert fired.held_steps == fired.steps == FOR_SECONDS and not fired.missing
    assert "for the whole 6s" in fired.reason
    assert fired_at - first_bad >= timedelta(seconds=FOR_SECONDS - 2)
    # The same question asked again at those instants, by fresh objects: history answers the same.
    assert judge(prometheus.url, variables, at=fired_at).fired
    assert not judge(prometheus.url, variables, at=first_bad).fired


def test_trigger_gap_in_data_never_counts_as_held(prometheus: devenv.PrometheusServer, agents: Any) -> None:
    stable = agents(uid("v1"), values={"error_ratio": 0.01})
    canary = SyntheticAgent(uid("v2"), namespace=NS, values={"error_ratio": 0.03}).start()
    target = uid("gap")
    try:
        variables = {"namespace": NS, "canary": canary.version, "stable": stable.version}
        prometheus.add_target(target, canary.address)
        poll("the breach to fire", lambda: judge(prometheus.url, variables).fired)
        prometheus.remove_target(target)  # the canary's series go stale: a gap, not "still bad"
        poll("the gap to reach Prometheus", lambda: judge(prometheus.url, variables).missing)
        assert not judge(prometheus.url, variables).fired
        prometheus.add_target(target, canary.address)
        back = poll("data again", lambda: judge(prometheus.url, variables).value is not None and datetime.now(UTC))
        fired = poll("the trigger to fire again", lambda: judge(prometheus.url, variables).fired and datetime.now(UTC))
        assert fired - back >= timedelta(seconds=FOR_SECONDS - 2)  # the clock restarted after the gap
    finally:
        prometheus.remove_target(target)
        canary.stop()


# --------------------------------------------------------------------------- Prometheus goes away


def test_prometheus_down_holds_and_recovers(
    prometheus: devenv.PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = devenv.PrometheusServer(tmp_path / "prom", scrape_interval="1s", bins=prometheus.bins)
    canary = SyntheticAgent(uid("v2"), namespace=NS).start()
    try:
        own.start()
        own.add_target("canary", canary.address)
        source = PrometheusSource(own.url, timeout=3)
        variables = {"namespace": NS, "canary": canary.version, "stable": "unused"}
        poll("allow", lambda: engine.evaluate(SEED_GATE, source, variables).decision == "allow")
        port = own.port
        own.stop()
        res = engine.evaluate(SEED_GATE, source, variables)
        assert res.decision != "allow"
        assert all(b.missing and "prometheus unreachable" in b.reason for b in res.blockers), res.message
        # unapproved_high_risk_actions has onMissingData: fail, so this gate blocks; the rest hold.
        assert res.decision == "block" and res.failing == ["unapproved_high_risk_actions"]
        lenient = SEED_GATE.model_copy(update={"blockers": SEED_GATE.blockers[1:]})
        res = engine.evaluate(lenient, source, variables)
        assert res.decision == "hold" and "prometheus unreachable" in res.message
        trig = engine.evaluate_trigger(error_trigger(), source, variables)
        assert not trig.fired and trig.missing and "prometheus unreachable" in trig.reason

        monkeypatch.setattr(devenv, "_free_port", lambda: port)  # restart on the same port and data
        own.start()
        assert own.port == port
        res = poll("recovery after restart", lambda: (r := engine.evaluate(SEED_GATE, source, variables)).decision
                   == "allow" and r)
        assert res.passing == "5/5"
    finally:
        own.stop()
        canary.stop()


# --------------------------------------------------------------------------- injection, for real

INJECTIONS = [
    'x"} or vector(1) #',
    "x'} or vector(1) #",
    'x"}) or vector(1) or sum(up{a="',
    "} or vector(1)",
    "\\",
    'x\\"',
    "a\nb",
    "a\r\n# b",
    "\t\x01\x7f",
    "ünïcødé 日本語 🚀",
    "\u2028\u200b",
    ".*",
    ".+|x",
    "(a|b)[c]{1,2}^$",
    "$canary ${stable}",
    "$1$$",
    "#",
    '"',
    "'",
    "`",
    "a\"b'c`d",
    "\\x41\\u0041",
]


@pytest.mark.parametrize("quote", ['"', "'", "`"])
def test_injection_corpus_leaves_meaning_unchanged(
    prometheus: devenv.PrometheusServer, agents: Any, quote: str
) -> None:
    labels = {f"p{i}": payload for i, payload in enumerate(INJECTIONS)}
    agent = agents(uid("inj"), labels=labels)
    source = PrometheusSource(prometheus.url)
    series = f'count(agent_jobs_total{{version="{agent.version}"}})'
    poll("the agent's series", lambda: source.query(series).value == 2)

    def count(query: str, value: str) -> float | None:
        return source.query(render(query, {"canary": value})).value

    for i, payload in enumerate(INJECTIONS):
        exact = f"count(agent_jobs_total{{p{i}={quote}$canary{quote}}})"
        regex = f"count(agent_jobs_total{{p{i}=~{quote}$canary{quote}}})"
        negated = f'count(agent_jobs_total{{version="{agent.version}",p{i}!~{quote}$canary{quote}}})'
        other = f"count(agent_jobs_total{{version={quote}$canary{quote}}})"
        # The value is the label value, exactly: it matches the series that carry it...
        assert count(exact, payload) == 2, payload
        assert count(regex, payload) == 2, payload
        # ...and nothing else: not a longer value, not other series, not a vector(1) of its own.
        assert count(exact, payload + "x") is None, payload
        assert count(regex, payload + "x") is None, payload
        assert count(negated, payload) is None, payload
        assert count(other, payload) is None, payload  # as `version="no-such-version"` would be


# --------------------------------------------------------------------------- the console script


def launchgate_script() -> str:
    script = shutil.which("launchgate", path=str(Path(sys.executable).parent))
    assert script, "the launchgate console script is not installed in this environment"
    return script


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([launchgate_script(), *args], capture_output=True, text=True, timeout=120)


GATE_OBJECT = {
    "apiVersion": "launchgate.dev/v1alpha1",
    "kind": "LaunchGate",
    "metadata": {"name": "canary1", "namespace": NS},
    "spec": SEED_GATE.model_dump(by_alias=True, exclude_none=True),
}


def test_cli_check_exit_codes(prometheus: devenv.PrometheusServer, agents: Any, tmp_path: Path) -> None:
    good = agents(uid("v2"))
    bad = agents(uid("v3"), success_rate=0.9)
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump(GATE_OBJECT))
    source = PrometheusSource(prometheus.url)
    for agent in (good, bad):
        poll("data", lambda a=agent: engine.evaluate(SEED_GATE, source, {"namespace": NS, "canary": a.version})
             .blockers[1].value is not None)

    ok = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url, "--var", f"canary={good.version}")
    assert ok.returncode == 0, ok.stderr
    contract = json.loads(ok.stdout)
    assert contract["gate_id"] == "canary1" and contract["decision"] == "allow" and contract["window"] == "5s"
    assert contract["blockers"]["workflow_success_rate"]["value"] == pytest.approx(0.994)
    assert contract["blockers"]["workflow_success_rate"]["target_gte"] == 0.99

    blocked = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url, "--var", f"canary={bad.version}")
    assert blocked.returncode == 1
    assert json.loads(blocked.stdout)["decision"] == "block"
    assert "workflow_success_rate" in blocked.stderr and len(blocked.stderr.strip().splitlines()) == 1

    held = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url, "--var", "canary=no-such-version")
    assert held.returncode == 1  # no data: a hold (here a block: onMissingData fail), never a pass
    assert json.loads(held.stdout)["decision"] in ("hold", "block")

    down = run_cli("check", "-f", str(gate), "--prometheus", "http://127.0.0.1:9", "--var", f"canary={good.version}")
    assert down.returncode == 2 and "prometheus unreachable" in down.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(gate.read_text().replace("gte: 0.99", "gte: high"))
    bad_input = run_cli("check", "-f", str(broken), "--prometheus", prometheus.url, "--var", "canary=x")
    assert bad_input.returncode == 2 and "spec.blockers[1].target.gte" in bad_input.stderr


def test_cli_check_hold_exits_1(prometheus: devenv.PrometheusServer, tmp_path: Path) -> None:
    lenient = {**GATE_OBJECT, "spec": {**GATE_OBJECT["spec"], "blockers": GATE_OBJECT["spec"]["blockers"][1:2]}}
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump(lenient))
    held = run_cli("check", "-f", str(gate), "--prometheus", prometheus.url, "--var", "canary=no-such-version")
    assert held.returncode == 1
    assert json.loads(held.stdout)["decision"] == "hold"
    assert "a hold is not a pass" in held.stderr and "empty vector" in held.stderr


# --------------------------------------------------------------------------- backtest over history


def _history(base: int, minutes: int, incident: tuple[int, int], version: str) -> str:
    """OpenMetrics text: 15s samples of agent_jobs_total; success rate 0.5 during `incident`."""
    lines = ["# HELP agent_jobs Jobs finished, by outcome.", "# TYPE agent_jobs counter"]
    for outcome in ("success", "error"):
        total = 0.0
        for i in range(minutes * 4 + 1):
            t = base + 15 * i
            if i:
                bad = incident[0] * 60 < 15 * i <= incident[1] * 60
                rate = 0.5 if bad else (0.995 if outcome == "success" else 0.005)
                total += 15 * 10 * rate  # 10 jobs per second
            lines.append(f'agent_jobs_total{{namespace="{NS}",version="{version}",outcome="{outcome}"}} {total} {t}')
    return "\n".join(lines) + "\n# EOF\n"


def test_cli_backtest_finds_where_the_incident_began(
    prometheus: devenv.PrometheusServer, tmp_path: Path
) -> None:
    now = int(time.time())
    base = now - 6 * 3600 - now % 600  # six hours ago, on a 10-minute boundary
    version = "v7"
    data = devenv.backfill(_history(base, 120, (35, 55), version), tmp_path / "tsdb", bins=prometheus.bins)
    old = devenv.PrometheusServer(tmp_path / "prom", data_dir=data, bins=prometheus.bins)
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump({**GATE_OBJECT, "spec": {
        "window": "10m",
        "owners": {"reliability": "sre-oncall"},
        "blockers": [GATE_OBJECT["spec"]["blockers"][1]],
    }}))
    try:
        old.start()

        def iso(t: int) -> str:
            return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")

        # The first evaluation is at --from: the first whole 10m window of history ends at base + 10m.
        args = ["backtest", "-f", str(gate), "--prometheus", old.url, "--var", f"canary={version}",
                "--from", iso(base + 10 * 60), "--to", iso(base + 100 * 60), "--step", "10m"]
        out = run_cli(*args, "-o", "json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        decisions = [(w["end"], w["decision"]) for w in report["windows"]]
        assert len(decisions) == 10
        assert [d for _, d in decisions] == ["allow"] * 3 + ["block"] * 3 + ["allow"] * 4, decisions
        began, ended = report["transitions"]
        assert (began["at"], began["from"], began["to"]) == (iso(base + 40 * 60), "allow", "block")
        assert began["failing"] == ["workflow_success_rate"]
        assert (ended["at"], ended["to"]) == (iso(base + 70 * 60), "allow")
        first_bad = report["windows"][3]
        assert first_bad["start"] == iso(base + 30 * 60)
        assert first_bad["values"]["workflow_success_rate"] == pytest.approx(0.7475, rel=1e-3)

        table = run_cli(*args)
        assert table.returncode == 0, table.stderr
        assert f"{iso(base + 40 * 60)}: allow -> block (workflow_success_rate)" in table.stdout
    finally:
        old.stop()
