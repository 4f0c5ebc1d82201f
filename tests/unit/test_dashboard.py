"""The dashboard's layout rules (pure) and its command line; the pages themselves are tested in a
real browser in tests/integration/test_dashboard_browser.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner

from launchgate.cli.dashboard import view
from launchgate.cli.dashboard.plots import _series, rollout_variables, step_for
from launchgate.cli.dashboard.server import loopback
from launchgate.cli.plugin import main as plugin

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
PHASES = [{"name": "Canary1", "weight": 5, "gates": ["canary1"]},
          {"name": "General", "weights": [50, 100], "gates": ["general"],
           "approval": {"approvers": 2, "group": "reliability-reviewers"}}]


def rollout(status: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {"metadata": {"namespace": "agents", "name": name, "uid": "u1"},
            "spec": {"template": {"spec": {}}, "trafficRouting": {"replicaRatio": {}}, "phases": PHASES},
            "status": status}


def at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def test_an_overview_row_says_where_the_rollout_stands_and_who_it_waits_for() -> None:
    row = view.overview_row(rollout({
        "phase": "General", "phaseIndex": 1, "state": "AwaitingApproval", "canaryWeight": 50, "trafficWeight": 25,
        "stableRevision": "r1", "canaryRevision": "r2", "decision": "await_approval",
        "message": "gates pass; waiting for 1 more approval(s)", "phaseStartedAt": at(90),
        "pendingApproval": {"requestId": "req-1", "phase": "General", "group": "reliability-reviewers",
                            "approversRequired": 2, "approvedBy": ["alice"], "requestedAt": at(30)}}))
    assert (row.phase, row.phase_number, row.state, row.decision) == ("General", "2/2", "AwaitingApproval",
                                                                      "await_approval")
    assert (row.traffic_weight, row.canary_weight) == (25, 50)
    assert row.pending == "1/2 from reliability-reviewers"
    assert view.since(row.phase_since, NOW) == "1m30s" and view.since(row.pending_since, NOW) == "30s"
    # A rollout the operator has not seen yet has no status: shown as such, not a crash.
    bare = view.overview_row(rollout({}))
    assert (bare.phase, bare.state, bare.decision, bare.pending, bare.phase_number) == ("-", "-", "-", "", "")


@pytest.mark.parametrize(("status", "states"), [
    ({"stableRevision": "r1", "state": "Healthy"}, ["pending", "pending", "pending", "pending"]),
    ({"phase": "General", "phaseIndex": 1, "canaryRevision": "r2", "state": "Progressing"},
     ["done", "current", "pending", "pending"]),
    ({"phase": "Finalizing", "phaseIndex": 1, "canaryRevision": "r2", "state": "Progressing"},
     ["done", "done", "current", "pending"]),
    ({"phase": "Completed", "state": "Healthy"}, ["done", "done", "done", "done"]),
    ({"phase": "Canary1", "phaseIndex": 0, "canaryRevision": "r2", "state": "RollingBack"},
     ["failed", "pending", "pending", "pending"]),
    # After a rollback the canary is gone: the last decision names the phase it failed in.
    ({"state": "Degraded", "lastDecision": {"phase": "General", "decision": "rollback"}},
     ["done", "failed", "pending", "pending"]),
])
def test_the_progress_line(status: dict[str, Any], states: list[str]) -> None:
    steps = view.progress(rollout(status))
    assert [s.name for s in steps] == ["Canary1", "General", "Finalizing", "Completed"]
    assert [s.state for s in steps] == states
    assert steps[1].weights == "50%/100%" and steps[1].approval == "2 from reliability-reviewers"


def test_a_gate_view_is_the_seed_contract_from_the_gate_status() -> None:
    gate = {"spec": {"window": "10m", "owners": {"reliability": "sre-oncall"}, "blockers": [
                {"name": "workflow_success_rate", "query": "q", "target": {"gte": 0.99}},
                {"name": "p95_latency_ms", "query": "q", "target": {"lteBaselineRatio": 1.2}},
                {"name": "new_one", "query": "q", "target": {"eq": 0}}]},
            "status": {"decision": "block", "passing": "1/3", "window": "10m", "evaluatedAt": at(5),
                       "owners": {"reliability": "sre-oncall"},
                       "blockers": [{"name": "workflow_success_rate", "target": "gte 0.99", "value": 0.994,
                                     "pass": True, "reason": "0.994 >= 0.99"},
                                    {"name": "p95_latency_ms", "target": "lte 1.2x baseline", "value": 1500,
                                     "baselineValue": 1000, "pass": False, "reason": "ratio 1.5"}]}}
    g = view.gate_view("canary1", gate)
    assert [(r.blocker, r.value, r.passed) for r in g.rows] == [
        ("workflow_success_rate", "0.994", True), ("p95_latency_ms", "1500", False), ("new_one", "-", None)]
    assert g.contract["blockers"] == {
        "workflow_success_rate": {"target_gte": 0.99, "value": 0.994, "pass": True},
        "p95_latency_ms": {"target_lte_baseline_ratio": 1.2, "value": 1500, "pass": False},
        "new_one": {"target_eq": 0.0},
    }
    assert (g.contract["decision"], g.contract["owners"], g.passing) == ("block", {"reliability": "sre-oncall"}, "1/3")
    missing = view.gate_view("canary2", None, "forbidden: no")
    assert not missing.found and missing.error == "forbidden: no"


def record(id_: str, kind: str, seconds_ago: float, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": id_}, "spec": {"id": id_, "kind": kind, "at": at(seconds_ago), "phase": "General",
                                                 "revision": "r2", "actor": "launchgate-operator", **spec}}


def test_the_timeline_ties_requests_to_their_answers_newest_first() -> None:
    entries = view.timeline([
        record("d-1", "decision", 60, decision="promote", phase="Canary1"),
        record("q-1", "approval-request", 50, requestId="req-1"),
        record("a-1", "approval", 40, requestId="req-1", actor="alice"),
        record("a-2", "rejection", 30, requestId="req-1", actor="bob"),
        record("d-2", "decision", 20, decision="rollback"),
    ])
    assert [(e.id, e.what) for e in entries] == [("d-2", "rollback"), ("a-2", "reject"), ("a-1", "approve"),
                                                 ("q-1", "request"), ("d-1", "promote")]
    assert next(e for e in entries if e.id == "q-1").answers == ["a-1", "a-2"]
    marks = view.phase_markers(entries)
    assert [m.label for m in marks] == ["promote Canary1", "rollback General"]


def test_the_plot_range_covers_the_revision_being_rolled_out() -> None:
    entries = view.timeline([record("old", "decision", 3000, revision="r1", decision="promote"),
                             record("d-1", "decision", 1000, decision="promote")])
    start, end = view.plot_range(rollout({"canaryRevision": "r2"}), entries, NOW)
    assert end == NOW and (NOW - start).total_seconds() == pytest.approx(1100)
    start, _ = view.plot_range(rollout({"canaryRevision": "r3"}), entries, NOW)
    assert (NOW - start).total_seconds() == 60  # nothing yet for r3: the last minute


def test_plots_ask_for_at_most_240_points_a_second_or_more_apart() -> None:
    assert step_for(NOW - timedelta(minutes=2), NOW) == 1.0
    assert step_for(NOW - timedelta(hours=4), NOW) == 60.0


def test_a_range_answer_is_laid_on_the_plot_grid_with_gaps_for_missing_samples() -> None:
    raw = SimpleNamespace(error=None, data={"resultType": "matrix", "result": [
        {"metric": {}, "values": [[100, "0.5"], [102, "NaN"]]}, {"metric": {"a": "b"}, "values": []}]})
    values, note = _series(raw, [100.0, 101.0, 102.0])
    assert values == [0.5, None, None] and note == "2 series; the first is drawn"
    values, note = _series(SimpleNamespace(error="prometheus unreachable: x", data=None), [1.0])
    assert values == [None] and note == "prometheus unreachable: x"


def test_plot_queries_bind_what_the_operator_binds() -> None:
    obj = rollout({"stableRevision": "r1", "canaryRevision": "r2"})
    assert rollout_variables(obj, "r2") == {"namespace": "agents", "rollout": "web", "stable": "r1", "canary": "r2"}


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_the_dashboard_serves_loopback(address: str) -> None:
    assert loopback(address).startswith("127.")


@pytest.mark.parametrize("address", ["0.0.0.0", "10.1.2.3", "::1", "example.org"])
def test_the_dashboard_refuses_other_addresses(address: str) -> None:
    with pytest.raises(click.BadParameter):
        loopback(address)


def test_kubectl_launchgate_dashboard_help() -> None:
    out = CliRunner().invoke(plugin, ["dashboard", "--help"])
    assert out.exit_code == 0, out.output
    assert "read-only" in out.output and "--prometheus" in out.output and "--port" in out.output
