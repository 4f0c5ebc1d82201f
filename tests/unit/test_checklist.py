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
