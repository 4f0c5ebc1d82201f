"""A canary that stops reporting holds its gates, range queries included, against a real Prometheus.

A synthetic agent is scraped every second and then stopped: Prometheus' next scrape fails and marks
its series stale. A gate over `rate(...[$window])` would go on answering from the samples left in
its window; the freshness check derived from the gate's own selectors must hold it well before the
window empties (the polls below end long before it does, so no hold can come from an empty window).
Through the engine with the plain source and the operator's shared one, and through `launchgate
check`. History backfilled into TSDB blocks has no staleness markers, so `check --at` over it shows
the age rule: the newest sample older than the freshness limit holds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import wait_for
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.adapters.sharing import SharedQueries
from launchgate.api import LaunchGateSpec
from launchgate.core import engine
from launchgate.core.gates import GateResult
from launchgate_dev import devenv
from launchgate_dev.synthetic import SyntheticAgent

NS = "fresh"
SEL = 'namespace="$namespace",version="$canary"'
# A long window: a hold seen within the polls' time cannot be the window running dry.
WINDOW = "90s"
SUCCESS = (f'sum(rate(agent_jobs_total{{{SEL},outcome="success"}}[$window]))'
           f" / sum(rate(agent_jobs_total{{{SEL}}}[$window]))")
GATE = LaunchGateSpec.model_validate({
    "window": WINDOW,
    "blockers": [
        {"name": "workflow_success_rate", "query": SUCCESS, "target": {"gte": 0.99}},
        {"name": "rollback_drill_passed", "query": f"max(agent_rollback_drill_passed{{{SEL}}})",
         "target": {"eq": 1}},
    ],
})


@pytest.fixture
def agents(prometheus: devenv.PrometheusServer) -> Iterator[Callable[..., SyntheticAgent]]:
    started: list[tuple[str, SyntheticAgent]] = []

    def start(**rates: Any) -> SyntheticAgent:
        agent = SyntheticAgent(f"v-{uuid.uuid4().hex[:8]}", namespace=NS, **rates).start()
        name = f"fresh-{agent.version}"
        started.append((name, agent))
        prometheus.add_target(name, agent.address)
        return agent

    yield start
    for name, agent in started:
        prometheus.remove_target(name)
        agent.stop()


def _blocker(res: GateResult, name: str) -> Any:
    return next(b for b in res.blockers if b.name == name)


class Not:
    """A falsy poll result that says what was seen instead, for the timeout's message."""

    def __init__(self, seen: str) -> None:
        self.seen = seen

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return self.seen


def held_for_freshness(source: Any, variables: dict[str, str]) -> GateResult | Not:
    res = engine.evaluate(GATE, source, variables)
    if res.decision == "hold" and "not fresh" in _blocker(res, "workflow_success_rate").reason:
        return res
    return Not(res.message)


def test_engine_holds_a_canary_that_stopped_reporting(prometheus: devenv.PrometheusServer, agents: Any) -> None:
    canary = agents(success_rate=0.995)
    variables = {"namespace": NS, "canary": canary.version}
    plain = PrometheusSource(prometheus.url)
    shared = SharedQueries(PrometheusSource(prometheus.url), max_age=0.5)

    for source in (plain, shared):
        wait_for("the gate to allow on the live canary",
                 lambda s=source: engine.evaluate(GATE, s, variables).decision == "allow", timeout=45)
    batched_before = shared.batched_queries

    canary.stop()
    # The range query still has its window's samples: the old answer would go on allowing.
    for source in (plain, shared):
        res = wait_for("a hold naming freshness", lambda s=source: held_for_freshness(s, variables), timeout=20)
        success = _blocker(res, "workflow_success_rate")
        assert success.missing and success.value is None and not success.passed
        assert "no data: canary series not fresh" in success.reason and "holds (onMissingData: hold)" in success.reason
        # The instant query has no series left at all: missing data of its own.
        assert "empty vector" in _blocker(res, "rollback_drill_passed").reason
    # The range query itself still answers: only the freshness check holds the gate.
    assert plain.query(engine.render_blocker(GATE.blockers[0], {**variables, "window": WINDOW}).canary).ok
    # The operator's source asked Prometheus the batched freshness query, not one per rollout.
    assert shared.batched_queries > batched_before


GATE_OBJECT = {
    "apiVersion": "launchgate.dev/v1alpha1",
    "kind": "LaunchGate",
    "metadata": {"name": "canary1", "namespace": NS},
    "spec": {**GATE.model_dump(by_alias=True, exclude_none=True), "blockers": [GATE.blockers[0].model_dump(
        by_alias=True, exclude_none=True)]},
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("launchgate", path=str(Path(sys.executable).parent))
    assert script, "the launchgate console script is not installed in this environment"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=120)


def test_check_holds_a_canary_that_stopped_reporting(prometheus: devenv.PrometheusServer, agents: Any,
                                                     tmp_path: Path) -> None:
    canary = agents(success_rate=0.995)
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump(GATE_OBJECT))
    args = ("check", "-f", str(gate), "--prometheus", prometheus.url, "--var", f"canary={canary.version}")
    wait_for("check to allow on the live canary", lambda: run_cli(*args).returncode == 0, timeout=45)

    canary.stop()
    held = wait_for("check to hold",
                    lambda: p if (p := run_cli(*args)).returncode == 1 else Not(f"exit {p.returncode}: {p.stderr}"),
                    timeout=20)
    contract = json.loads(held.stdout)
    blocker = contract["blockers"]["workflow_success_rate"]
    assert contract["decision"] == "hold" and contract["missing"] == ["workflow_success_rate"]
    assert blocker["missing"] is True and blocker["value"] is None
    assert "canary series not fresh" in blocker["reason"]
    assert "canary series not fresh" in held.stderr and "a hold is not a pass" in held.stderr


def _history(base: int, version: str, until: int) -> str:
    """OpenMetrics text: a good canary's agent_jobs_total every 15 s from `base` for `until` seconds."""
    lines = ["# HELP agent_jobs Jobs finished, by outcome.", "# TYPE agent_jobs counter"]
    for outcome, share in (("success", 0.995), ("error", 0.005)):
        for i in range(until // 15 + 1):
            value = 15 * i * 10 * share
            lines.append(f'agent_jobs_total{{namespace="{NS}",version="{version}",outcome="{outcome}"}} '
                         f"{value} {base + 15 * i}")
    return "\n".join(lines) + "\n# EOF\n"


def test_check_over_history_holds_once_the_newest_sample_is_older_than_the_limit(
    prometheus: devenv.PrometheusServer, tmp_path: Path
) -> None:
    now = int(time.time())
    base = now - 6 * 3600 - now % 600
    version = "v-history"
    last = base + 30 * 60  # the canary's last sample; no staleness marker follows it in blocks
    data = devenv.backfill(_history(base, version, last - base), tmp_path / "tsdb", bins=prometheus.bins)
    old = devenv.PrometheusServer(tmp_path / "prom", data_dir=data, bins=prometheus.bins)
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump({**GATE_OBJECT, "spec": {**GATE_OBJECT["spec"], "window": "10m"}}))

    def check(at: int, *extra: str) -> subprocess.CompletedProcess[str]:
        iso = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        return run_cli("check", "-f", str(gate), "--prometheus", old.url, "--var", f"canary={version}",
                       "--at", iso, *extra)

    try:
        old.start()
        # Within the limit (twice the 30s scrape interval by default) the canary's data counts.
        live = check(last + 45)
        assert live.returncode == 0, live.stderr
        # Past it, the 10m window still holds 9 minutes of good samples, but the gate holds.
        stale = check(last + 75)
        assert stale.returncode == 1, stale.stderr
        reason = json.loads(stale.stdout)["blockers"]["workflow_success_rate"]["reason"]
        assert reason.startswith("no data: canary series not fresh (last sample 75s ago; freshness 1m)"), reason
        # A longer scrape interval moves the limit.
        assert check(last + 75, "--scrape-interval", "1m").returncode == 0
    finally:
        old.stop()
