"""The incident replay drill: `launchgate backtest` of a whole AgentRollout over Prometheus history
backfilled with promtool from an incident the test writes (a canary whose error rate climbs over
20 minutes): the replay names the window, the phase, the trigger and the traffic of the rollback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from launchgate_dev import devenv

NS = "agents"
STABLE, CANARY = "v1", "v2"
RPS = 10.0
BASE_ERROR = 0.005


def launchgate(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("launchgate", path=str(Path(sys.executable).parent))
    assert script, "the launchgate console script is not installed in this environment"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=300)


def error_rate(version: str, minute: float) -> float:
    """The incident: the canary's error rate climbs from 0.5% at minute 30 to 20% at minute 50."""
    if version == STABLE or minute <= 30:
        return BASE_ERROR
    return BASE_ERROR + (0.2 - BASE_ERROR) * min(1.0, (minute - 30) / 20)


def history(base: int, minutes: int) -> str:
    """OpenMetrics text: 15s samples of agent_jobs_total for the stable and the canary."""
    lines = ["# HELP agent_jobs Jobs finished, by outcome.", "# TYPE agent_jobs counter"]
    for version in (STABLE, CANARY):
        totals = {"success": 0.0, "error": 0.0}
        for i in range(minutes * 4 + 1):
            if i:
                e = error_rate(version, 15 * i / 60)
                totals["error"] += 15 * RPS * e
                totals["success"] += 15 * RPS * (1 - e)
            for outcome, total in totals.items():
                lines.append(f'agent_jobs_total{{namespace="{NS}",version="{version}",outcome="{outcome}"}} '
                             f'{total} {base + 15 * i}')
    return "\n".join(lines) + "\n# EOF\n"


JOBS = 'agent_jobs_total{namespace="$namespace",version="$version"'
ERROR_RATE = f'sum(rate({JOBS},outcome="error"}}[2m])) / sum(rate({JOBS}}}[2m]))'
SUCCESS_RATE = ('sum(rate(agent_jobs_total{namespace="$namespace",version="$canary",outcome="success"}[$window]))'
                ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$canary"}[$window]))')
TRIGGER = {"name": "error_rate_vs_stable", "query": ERROR_RATE, "above": {"baselineRatio": 2}, "for": "5m"}
OBJECTS: list[dict[str, Any]] = [
    {"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate", "metadata": {"name": "canary1", "namespace": NS},
     "spec": {"window": "5m", "owners": {"reliability": "sre-oncall"},
              "blockers": [{"name": "workflow_success_rate", "owner": "reliability", "query": SUCCESS_RATE,
                            "target": {"gte": 0.99}}]}},
    {"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout", "metadata": {"name": "support-agent",
                                                                                    "namespace": NS},
     "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}},
              "trafficRouting": {"replicaRatio": {}}, "interval": "30s",
              "phases": [
                  {"name": "Canary1", "weight": 5, "gates": ["canary1"], "minDuration": "10m",
                   "rollbackTriggers": [TRIGGER]},
                  {"name": "Canary2", "weight": 25, "gates": ["canary1"], "minDuration": "2h",
                   "rollbackTriggers": [TRIGGER]},
                  {"name": "General", "weights": [50, 100], "gates": ["canary1"]}]}},
]


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def test_rollout_replay_names_the_rollback_window_and_trigger(prometheus: devenv.PrometheusServer,
                                                              tmp_path: Path) -> None:
    now = int(time.time())
    base = now - 6 * 3600 - now % 600  # older than the head block, on a 10-minute boundary
    data = devenv.backfill(history(base, 70), tmp_path / "tsdb", bins=prometheus.bins)
    old = devenv.PrometheusServer(tmp_path / "prom", data_dir=data, bins=prometheus.bins)
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump_all(OBJECTS))
    try:
        old.start()
        args = ["backtest", "-f", str(path), "--prometheus", old.url, "--var", f"canary={CANARY}",
                "--var", f"stable={STABLE}", "--from", iso(base + 10 * 60), "--to", iso(base + 70 * 60),
                "--step", "1m"]
        r = launchgate(*args, "-o", "json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        windows = report["windows"]
        assert report["outcome"] == "rollback", [(w["end"], w["phase"], w["decision"], w["reason"]) for w in windows]
        rollback = report["rollback"]
        # Canary1 held for its 10 minutes, promoted to Canary2 (25%), where the climb began.
        assert [w["phase"] for w in windows if w["decision"] == "promote"] == ["Canary1"], windows
        assert rollback["phase"] == "Canary2" and rollback["trafficRemoved"] == 25
        assert rollback["trigger"] == "error_rate_vs_stable", rollback
        # The error rate passes 2x the stable's (1%) at about minute 30.5 and must stay above it for
        # 5 minutes, judged on 15s steps of a 2m rate: the trigger fires between minutes 35 and 38.
        at = int(datetime.fromisoformat(rollback["at"].replace("Z", "+00:00")).timestamp())
        assert base + 35 * 60 <= at <= base + 38 * 60, rollback
        assert windows[-1]["end"] == rollback["at"] and windows[-1]["fired"] == ["error_rate_vs_stable"]
        assert all(not w["fired"] for w in windows[:-1])
        assert "error_rate_vs_stable" in rollback["reason"]

        table = launchgate(*args)
        assert table.returncode == 0, table.stderr
        text = " ".join(table.stdout.split())
        assert f"rolled back at {rollback['at']} in Canary2 by trigger error_rate_vs_stable: 25% of traffic" in text
    finally:
        old.stop()
