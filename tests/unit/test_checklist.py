"""The checklist as a gate: the seed's 20 rows, the example's blockers, and how a result reads as rows."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from launchgate.api import LaunchGateSpec
from launchgate.core.checklist import (
    AREA_OWNER,
    CONTROLS,
    LAUNCH_BLOCKING,
    checklist_problems,
    launch_blocked,
    rows,
)
from launchgate.core.gates import QueryResult, evaluate_gate

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "checklist" / "checklist.yaml"


def example() -> LaunchGateSpec:
    return LaunchGateSpec.model_validate(yaml.safe_load(EXAMPLE.read_text())["spec"])


def snake(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def test_the_seed_table_has_20_controls_and_its_critical_set() -> None:
    assert [c.number for c in CONTROLS] == list(range(1, 21))
    assert LAUNCH_BLOCKING == {1, 2, 3, 4, 5, 6, 10, 13, 16, 17}
    assert {c.area for c in CONTROLS} == set(AREA_OWNER)


def test_the_example_has_one_blocker_per_control_named_after_it_and_owned_by_its_area() -> None:
    spec = example()
    assert checklist_problems(spec) == []
    by_control = {b.control: b for b in spec.blockers}
    assert sorted(by_control) == list(range(1, 21))
    for c in CONTROLS:
        b = by_control[c.number]
        assert b.name == snake(c.control), (c.number, b.name)
        assert b.owner == AREA_OWNER[c.area], (c.number, b.owner)
        assert getattr(spec.owners, AREA_OWNER[c.area]), f"no {AREA_OWNER[c.area]} owner"


def test_rows_read_a_gate_result_missing_data_and_absent_controls_never_pass() -> None:
    spec = LaunchGateSpec.model_validate({"window": "5m", "owners": {"governance": "gov"}, "blockers": [
        {"name": "a", "control": 1, "owner": "governance", "query": "x", "target": {"eq": 0}},
        {"name": "b", "control": 7, "query": "y", "target": {"lte": 90}},
        {"name": "c", "control": 11, "query": "z", "target": {"eq": 0}},
    ]})
    result = evaluate_gate(spec, {"a": QueryResult.of(0), "b": QueryResult.unavailable("empty vector"),
                                  "c": QueryResult.of(3)}, {})
    table = rows(spec, result)
    assert len(table) == 20
    by = {r.control.number: r for r in table}
    assert by[1].passed and by[1].owner == "gov" and by[1].value == 0
    assert not by[7].passed and "no data" in by[7].reason
    assert not by[11].passed and by[11].value == 3
    assert not by[2].passed and by[2].blocker is None
    # 7 and 11 are not launch-blocking; 2-6, 10, 13, 16, 17 have no blocker here, so they block.
    assert launch_blocked(table) == [2, 3, 4, 5, 6, 10, 13, 16, 17]
    assert by[1].to_json()["result"] == "PASS" and by[11].to_json()["result"] == "BLOCK"


def test_a_control_judged_twice_or_none_at_all_is_bad_input() -> None:
    twice = LaunchGateSpec.model_validate({"blockers": [
        {"name": "a", "control": 3, "query": "x", "target": {"eq": 0}},
        {"name": "b", "control": 3, "query": "y", "target": {"eq": 0}},
    ]})
    assert checklist_problems(twice) == ["spec.blockers[1].control: control 3 is already judged by blocker 'a'"]
    none = LaunchGateSpec.model_validate({"blockers": [{"name": "a", "query": "x", "target": {"eq": 0}}]})
    assert "no blocker names a checklist control" in checklist_problems(none)[0]


def _cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from launchgate.cli.main import main

    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def test_the_command_refuses_a_gate_that_is_no_checklist_before_asking_prometheus(tmp_path: Path) -> None:
    gate = tmp_path / "g.yaml"
    gate.write_text(yaml.safe_dump({"window": "5m", "blockers": [{"name": "a", "query": "x", "target": {"eq": 0}}]}))
    code, out = _cli("checklist", "-f", str(gate), "--prometheus", "http://127.0.0.1:9")
    assert code == 2 and "no blocker names a checklist control" in out


def test_the_command_needs_every_variable_of_the_example(tmp_path: Path) -> None:
    code, out = _cli("checklist", "-f", str(EXAMPLE), "--prometheus", "http://127.0.0.1:9", "--var", "canary=v2",
                     "--var", "stable=v1", "--var", "rollout=a")
    assert code == 2 and "$policy" in out and "policy=" in out


def test_backtest_of_a_rollout_needs_its_two_revisions(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout",
                                    "metadata": {"name": "r", "namespace": "agents"},
                                    "spec": {"template": {}, "trafficRouting": {"replicaRatio": {}}}}))
    code, out = _cli("backtest", "-f", str(path), "--prometheus", "http://127.0.0.1:9", "--from", "-1h",
                     "--var", "canary=v2")
    assert code == 2 and "--var stable=..." in out
