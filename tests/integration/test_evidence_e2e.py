"""Launch math with evidence, end to end: real kube-apiserver, Prometheus scraping every second,
agent processes and operator (see test_rollout_e2e.py).

The canary's agent serves a tenth of the stable's requests. Its gate asks for an error rate of at
most 1% with confidence 0.95, from counts over the window, and a latency judge against the
stable. A healthy canary (no errors) is held with "not enough evidence" until about 381 requests
have arrived (the Wilson upper bound of 0 errors in n is 1.96^2 / (n + 1.96^2)), then promoted. A
slightly worse one (3% errors against the stable's 1%) is held, never promoted, and rolled back by
a trigger once its error rate is significantly above the stable's at every step of the trigger's
`for`.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import World, rollout_obj, wait_for
from test_rollout_e2e import promotions, when_a_new_revision_is_applied

_ids = itertools.count()

JOBS = 'agent_jobs_total{namespace="$namespace",version="$version"'
ERRORS = f'sum(increase({JOBS},outcome!="success"}}[$window]))'
TOTAL = f'sum(increase({JOBS}}}[$window]))'
P95_PER_STEP = ('1000 * histogram_quantile(0.95, sum by (le) '
                '(rate(agent_job_seconds_bucket{namespace="$namespace",version="$version"}[5s])))')
EVIDENCE_BLOCKERS = [
    {"name": "error_rate", "errors": ERRORS, "total": TOTAL, "target": {"lte": 0.01}, "confidence": 0.95,
     "minSamples": 50, "owner": "reliability"},
    {"name": "p95_vs_stable", "query": P95_PER_STEP,
     "target": {"judge": {"direction": "higherIsBad", "confidence": 0.95, "tolerance": 50, "step": "1s",
                          "minSamples": 5}}},
]
# Each step's counts over the last 60s: significant once the canary has served a few hundred requests.
TRIGGER = {"name": "errors-significantly-above-stable",
           "errors": ERRORS.replace("$window", "60s"), "total": TOTAL.replace("$window", "60s"),
           "confidence": 0.95, "minSamples": 100, "above": {"baselineRatio": 1}, "for": "5s", "step": "1s"}
PHASES = [
    {"name": "Canary1", "weight": 5, "gates": ["evidence"], "rollbackTriggers": [TRIGGER]},
    {"name": "General", "weight": 100, "gates": ["evidence"]},
]


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path) -> Any:
    w = World(kubeconfig, prometheus, f"evidence-{next(_ids)}-{random.randrange(10**6)}", tmp_path)
    w.gate("evidence", EVIDENCE_BLOCKERS, window="60s")
    yield w
    w.close()


def given_a_busy_stable(w: World, name: str) -> str:
    w.http_route(name)
    w.apply(rollout_obj(name, "agent:1", PHASES))
    st = w.wait_status(name, "first revision to become stable", lambda s: s.get("state") == "Healthy")
    rev1 = str(st["stableRevision"])
    w.agent(rev1, rps=100, success_rate=0.99, p95_ms=1000)
    return rev1


class Watcher(threading.Thread):
    """Records what the rollout's status and the gate's blockers said along the way."""

    def __init__(self, w: World, name: str) -> None:
        super().__init__(daemon=True)
        self.w, self.name, self.stop_flag = w, name, threading.Event()
        self.messages: list[str] = []
        self.blockers: list[dict[str, Any]] = []

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                msg = self.w.status(self.name).get("message") or ""
                gate = self.w.get("launchgates", "evidence").get("status") or {}
            except AssertionError:
                continue
            if not self.messages or self.messages[-1] != msg:
                self.messages.append(msg)
            self.blockers.extend(b for b in gate.get("blockers") or [] if b["name"] == "error_rate")
            self.stop_flag.wait(0.3)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join()


def test_a_low_traffic_healthy_canary_is_held_for_evidence_then_promoted(world: World) -> None:
    w = world
    w.start_operator(LAUNCHGATE_SCRAPE_INTERVAL="1s")
    given_a_busy_stable(w, "quiet")
    watcher = Watcher(w, "quiet")
    watcher.start()
    rev2 = when_a_new_revision_is_applied(w, "quiet")
    w.agent(rev2, rps=10, success_rate=1.0, p95_ms=1000)

    st = w.wait_status("quiet", "the healthy canary to be promoted",
                       lambda s: s.get("stableRevision") == rev2 and s.get("state") == "Healthy", timeout=150)
    watcher.stop()
    assert st["phase"] == "Completed"
    # It was held in Canary1 for evidence, saying so with n and the interval, not for missing data,
    held = [m for m in watcher.messages if "not enough evidence" in m]
    assert held, watcher.messages
    assert "error_rate: not enough evidence: n = " in held[-1] and "interval [0, " in held[-1], held[-1]
    waiting = [b for b in watcher.blockers if "not enough evidence" in b.get("reason", "")]
    assert waiting and all(b["pass"] is False and b.get("samples", 0) > 0 and len(b["interval"]) == 2 for b in waiting), \
        json.dumps(waiting)
    assert max(b["samples"] for b in waiting) < 385  # the Wilson bound passes 1% at n = 381
    passed = [b for b in watcher.blockers if b["pass"]]
    assert passed and passed[0]["samples"] >= 380 and passed[0]["interval"][1] <= 0.01, passed[0]
    # and then promoted through both phases.
    done = promotions(w, "quiet")
    assert done[0] == ("General", "promote") and all(d == "promote" for _, d in done), done


def test_a_slightly_worse_canary_is_held_then_rolled_back_once_the_evidence_is_significant(world: World) -> None:
    w = world
    w.start_operator(LAUNCHGATE_SCRAPE_INTERVAL="1s")
    given_a_busy_stable(w, "worse")
    watcher = Watcher(w, "worse")
    watcher.start()
    rev2 = when_a_new_revision_is_applied(w, "worse")
    w.agent(rev2, rps=10, success_rate=0.97, p95_ms=1000)

    st = w.wait_status("worse", "the rollback", lambda s: s.get("state") == "Degraded", timeout=150)
    watcher.stop()
    assert st["decision"] == "rollback" and "errors-significantly-above-stable" in st["message"], st
    assert "with confidence 0.95 for the whole 5s" in st["message"], st["message"]
    # Held first, for evidence: never promoted past Canary1.
    assert any("not enough evidence" in m for m in watcher.messages), watcher.messages
    assert promotions(w, "worse") == [("Canary1", "rollback")]
    wait_for("traffic back on stable", lambda: w.route_weights("worse") == (100, 0), timeout=15)
