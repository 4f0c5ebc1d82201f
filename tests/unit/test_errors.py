"""The pure half of a refused change (core.errors): the words status says and what a pass may do."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from launchgate.api import AgentRolloutStatus
from launchgate.core import errors
from launchgate.core.protocols import RouterError
from launchgate.core.rollout import refused_conditions

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("status,reason,body,expected", [
    (422, "Unprocessable Entity", json.dumps({"message": "bad template"}),
     "the API server refused a workload change: bad template"),
    (403, "Forbidden", json.dumps({"message": None}), "the API server refused a workload change: 403 Forbidden"),
    (400, "Bad Request", None, "the API server refused a workload change: 400 Bad Request"),
    (400, "Bad Request", "not json", "the API server refused a workload change: 400 Bad Request"),
    (400, "Bad Request", "[1]", "the API server refused a workload change: 400 Bad Request"),
    (404, "Not Found", None, None), (409, "Conflict", None, None), (429, "Too Many", None, None),
    (500, "Internal", None, None), (503, "Unavailable", None, None), (None, None, None, None),
    (399, "x", None, None),
])
def test_api_refusals_are_classified_by_status(status: int | None, reason: str | None, body: str | None,
                                               expected: str | None) -> None:
    assert errors.api_refusal(status, reason, body) == expected


def test_router_refusal() -> None:
    assert errors.router_refusal(RouterError("HTTPRoute r not found")) == "traffic router: HTTPRoute r not found"


def test_a_router_refusal_names_the_field_the_user_wrote() -> None:
    e = RouterError("HTTPRoute ns/r not found", "spec.trafficRouting.gatewayAPI.httpRoute")
    assert errors.router_refusal(e) == "traffic router: spec.trafficRouting.gatewayAPI.httpRoute: HTTPRoute ns/r not found"


@pytest.mark.parametrize("state,allowed", [("RollingBack", True), ("Progressing", False),
                                           ("AwaitingApproval", False), ("Degraded", False), (None, False)])
def test_only_a_rollback_stands_while_the_world_refuses(state: str | None, allowed: bool) -> None:
    assert errors.refusal_allows(state) is allowed


def test_a_refusal_is_written_once() -> None:
    message, patch = errors.refused_status(AgentRolloutStatus(message="x"), "traffic router: down", NOW)
    assert message == "traffic router: down; retrying"
    assert patch is not None and patch["message"] == message
    assert [(c["type"], c["status"], c["reason"]) for c in patch["conditions"]] == [
        ("Ready", "False", "ChangeRefused"), ("Reconciling", "False", "AsExpected"),
        ("Stalled", "True", "ChangeRefused")]
    said = AgentRolloutStatus(message=message, conditions=refused_conditions(AgentRolloutStatus(), message, NOW))
    assert errors.refused_status(said, "traffic router: down", NOW) == (message, None)
