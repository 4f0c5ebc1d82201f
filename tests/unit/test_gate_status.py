"""A LaunchGate's status as written: built through LaunchGateStatus, the same JSON as the
hand-made dicts it replaces.

WRITTEN holds what those dicts gave for the inputs below (keys, None handling, rounding), so the
model-built status is compared with it byte for byte as canonical JSON (sorted keys: a JSON
object's key order is not part of a merge patch)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from launchgate.api import LaunchGateSpec
from launchgate.controller.gate_status import gate_status, idle_gate_status
from launchgate.core.gates import BlockerResult, GateResult

SPEC = {"window": "5m", "blockers": [{"name": "b", "query": "q", "target": {"gte": 0.99}}]}
SPEC_OWNERS = {**SPEC, "owners": {"reliability": "sre@x", "cost": "fin@x"}}
B = BlockerResult
EVALUATED = {
    "allow_plain": (SPEC, GateResult("allow", [B("success", "gte 0.99", 0.99912345, None, True, "0.9991 >= 0.99")],
                                     "1/1", message="all pass"),
                    7, datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), None, None),
    "block_owners_rollout": (SPEC_OWNERS, GateResult("block", [
        B("lat", "lteBaselineRatio 1.2", 123456.789, 100000.0, False, "ratio 1.23 > 1.2", owner="reliability"),
        B("err", "lte 0.01", float("nan"), float("inf"), False, "no data", owner="", missing=True),
        B("cost", "lte 5", None, None, True, "", owner=None),
        B("tiny", "gte 0", 1.23456e-7, -0.0, True, "ok", owner="cost")], "2/4", failing=["lat"],
        escalate_to=["sre@x"], message="blocked " + "m" * 5000),
        None, datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), "agent", "abc123"),
    "hold_offset": (SPEC, GateResult("hold", [], "0/0", message="waiting"), 0,
                    datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))), "r", None),
}
IDLE = {
    "idle_canary": (SPEC, 3, datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), "canary"),
    "idle_none_gen": (SPEC_OWNERS, None, datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC), "rollout"),
}

WRITTEN: dict[str, Any] = {
    'allow_plain': {'decision': 'allow',
     'passing': '1/1',
     'window': '5m',
     'evaluatedAt': '2026-03-01T12:00:00Z',
     'observedGeneration': 7,
     'owners': {},
     'blockers': [{'name': 'success',
                   'target': 'gte 0.99',
                   'pass': True,
                   'reason': '0.9991 >= 0.99',
                   'value': 0.9991}],
     'message': 'all pass',
     'conditions': [{'type': 'Ready',
                     'status': 'True',
                     'reason': 'Allow',
                     'message': 'all pass',
                     'lastTransitionTime': '2026-03-01T12:00:00Z'},
                    {'type': 'Reconciling',
                     'status': 'False',
                     'reason': 'Evaluated',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00Z'},
                    {'type': 'Stalled',
                     'status': 'False',
                     'reason': 'Evaluated',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00Z'}]},
    'block_owners_rollout': {'decision': 'block',
     'passing': '2/4',
     'window': '5m',
     'evaluatedAt': '2026-03-01T12:00:00.123456Z',
     'observedGeneration': None,
     'owners': {'reliability': 'sre@x', 'cost': 'fin@x'},
     'blockers': [{'name': 'lat',
                   'target': 'lteBaselineRatio 1.2',
                   'pass': False,
                   'reason': 'ratio 1.23 > 1.2',
                   'value': 123500.0,
                   'baselineValue': 100000.0,
                   'owner': 'reliability'},
                  {'name': 'err', 'target': 'lte 0.01', 'pass': False, 'reason': 'no data'},
                  {'name': 'cost', 'target': 'lte 5', 'pass': True, 'reason': ''},
                  {'name': 'tiny',
                   'target': 'gte 0',
                   'pass': True,
                   'reason': 'ok',
                   'value': 1.235e-07,
                   'baselineValue': -0.0,
                   'owner': 'cost'}],
     'message': 'blocked ' + 'm' * 4088,
     'conditions': [{'type': 'Ready',
                     'status': 'False',
                     'reason': 'Block',
                     'message': 'blocked ' + 'm' * 4088,
                     'lastTransitionTime': '2026-03-01T12:00:00.123456Z'},
                    {'type': 'Reconciling',
                     'status': 'False',
                     'reason': 'Evaluated',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00.123456Z'},
                    {'type': 'Stalled',
                     'status': 'False',
                     'reason': 'Evaluated',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00.123456Z'}]},
    'hold_offset': {'decision': 'hold',
     'passing': '0/0',
     'window': '5m',
     'evaluatedAt': '2026-03-01T12:00:00+02:00',
     'observedGeneration': 0,
     'owners': {},
     'blockers': [],
     'message': 'waiting (rollout r, revision None)',
     'conditions': [{'type': 'Ready',
                     'status': 'False',
                     'reason': 'Hold',
                     'message': 'waiting',
                     'lastTransitionTime': '2026-03-01T12:00:00+02:00'},
                    {'type': 'Reconciling',
                     'status': 'False',
                     'reason': 'Evaluated',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00+02:00'},
                    {'type': 'Stalled',
                     'status': 'False',
                     'reason': 'Evaluated',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00+02:00'}]},
    'idle_canary': {'decision': None,
     'passing': None,
     'blockers': [],
     'evaluatedAt': '2026-03-01T12:00:00Z',
     'window': '5m',
     'observedGeneration': 3,
     'owners': {},
     'message': 'idle: not used by an active rollout; its queries need $canary, which a rollout provides (set '
                'spec.variables.canary to evaluate it on its own)',
     'conditions': [{'type': 'Ready',
                     'status': 'False',
                     'reason': 'Idle',
                     'message': 'idle: not used by an active rollout; its queries need $canary, which a rollout '
                                'provides (set spec.variables.canary to evaluate it on its own)',
                     'lastTransitionTime': '2026-03-01T12:00:00Z'},
                    {'type': 'Reconciling',
                     'status': 'False',
                     'reason': 'Idle',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00Z'},
                    {'type': 'Stalled',
                     'status': 'False',
                     'reason': 'Idle',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00Z'}]},
    'idle_none_gen': {'decision': None,
     'passing': None,
     'blockers': [],
     'evaluatedAt': '2026-03-01T12:00:00.000005Z',
     'window': '5m',
     'observedGeneration': None,
     'owners': {'reliability': 'sre@x', 'cost': 'fin@x'},
     'message': 'idle: not used by an active rollout; its queries need $rollout, which a rollout provides (set '
                'spec.variables.rollout to evaluate it on its own)',
     'conditions': [{'type': 'Ready',
                     'status': 'False',
                     'reason': 'Idle',
                     'message': 'idle: not used by an active rollout; its queries need $rollout, which a rollout '
                                'provides (set spec.variables.rollout to evaluate it on its own)',
                     'lastTransitionTime': '2026-03-01T12:00:00.000005Z'},
                    {'type': 'Reconciling',
                     'status': 'False',
                     'reason': 'Idle',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00.000005Z'},
                    {'type': 'Stalled',
                     'status': 'False',
                     'reason': 'Idle',
                     'message': '',
                     'lastTransitionTime': '2026-03-01T12:00:00.000005Z'}]},
}


def canonical(status: dict[str, Any]) -> str:
    return json.dumps(status, sort_keys=True)


@pytest.mark.parametrize("case", list(EVALUATED))
def test_an_evaluated_gate_writes_what_it_always_wrote(case: str) -> None:
    spec, res, generation, now, rollout, revision = EVALUATED[case]
    status = gate_status(LaunchGateSpec.model_validate(spec), res, generation, now, rollout=rollout,
                         revision=revision)
    assert canonical(status) == canonical(WRITTEN[case])


@pytest.mark.parametrize("case", list(IDLE))
def test_an_idle_gate_writes_what_it_always_wrote(case: str) -> None:
    spec, generation, now, variable = IDLE[case]
    status = idle_gate_status(LaunchGateSpec.model_validate(spec), generation, now, variable)
    assert canonical(status) == canonical(WRITTEN[case])


def test_the_top_level_nulls_are_written_to_clear_what_was_there() -> None:
    """A merge patch: an idle gate's decision must be null, not absent, to clear the last one."""
    spec, generation, now, variable = IDLE["idle_none_gen"]
    status = idle_gate_status(LaunchGateSpec.model_validate(spec), generation, now, variable)
    assert status["decision"] is None and status["passing"] is None and status["observedGeneration"] is None
    assert "kopf" not in status
