"""The operator never promotes a canary that stopped reporting, whatever its gates' windows.

Real kube-apiserver, Prometheus scraping every second, agent processes and operator (see
test_rollout_e2e.py). The canary1 gate's blockers are `rate(...[$window])` queries over a 60 s
window, which go on answering from the samples left in it for a minute after the canary's agent
stops; everything below happens well within that minute.
"""

from __future__ import annotations

import itertools
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import CANARY1_BLOCKERS, World
from test_rollout_e2e import given_a_stable_rollout, phases, promotions, when_a_new_revision_is_applied

_ids = itertools.count()


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path) -> Any:
    w = World(kubeconfig, prometheus, f"fresh-{next(_ids)}-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS, window="60s")
    yield w
    w.close()


def test_a_canary_whose_agent_stops_mid_canary1_is_never_promoted(world: World) -> None:
    w = world
    # Prometheus here scrapes every second: a canary's newest sample may be 2 s old.
    w.start_operator(LAUNCHGATE_SCRAPE_INTERVAL="1s")
    given_a_stable_rollout(w, "quiet", phases=phases(min_duration="10s"))
    rev2 = when_a_new_revision_is_applied(w, "quiet")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)
    w.wait_status("quiet", "Canary1", lambda s: s.get("phase") == "Canary1")

    # When the canary's agent process stops (its pods crashed) while its window is full of good samples,
    w.agents[rev2].stop()
    # then the operator evaluates the gate after the stop and holds, saying why,
    st = w.wait_status("quiet", "a hold naming freshness",
                       lambda s: s.get("decision") == "hold" and "not fresh" in (s.get("message") or ""),
                       timeout=30)
    assert "canary1" in st["message"] and "canary series not fresh" in st["message"]
    gate = w.get("launchgate", "canary1").get("status") or {}
    reasons = {b["name"]: b.get("reason", "") for b in gate.get("blockers") or []}
    assert "canary series not fresh" in reasons["workflow_success_rate"], gate
    # and well past Canary1's minDuration, the canary has not moved on.
    threading.Event().wait(12)
    st = w.status("quiet")
    assert st["phase"] == "Canary1" and st["canaryWeight"] == 5 and w.route_weights("quiet") == (95, 5), st
    assert promotions(w, "quiet") == [("Canary1", "promote")]  # into Canary1 only, before the stop
    assert (st.get("consecutiveNoData") or 0) >= 2, st
