"""Which Approvals count for a pending request (core.approvals, no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from launchgate.api import PendingApproval
from launchgate.core.approvals import counted_votes
from launchgate.core.rollout import ApprovalVote

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PENDING = PendingApproval(request_id="req-1", phase="General", revision="rev2", gates_hash="gh1",
                          group="reviewers", approvers_required=1, requested_at=NOW)


def approval(created: str = "2026-03-01T11:00:00Z", **spec: Any) -> dict[str, Any]:
    base = {"rollout": "r", "requestId": "req-1", "revision": "rev2", "gatesHash": "gh1", "group": "reviewers",
            "approver": "alice", "decision": "approve"}
    return {"metadata": {"name": "a", "creationTimestamp": created}, "spec": base | spec}


def votes(*approvals: dict[str, Any], expires_after: str = "24h") -> list[ApprovalVote]:
    return counted_votes(approvals, "r", PENDING, "rev2", "gh1", "reviewers", expires_after, NOW)


def test_a_matching_approval_counts_with_its_creation_time() -> None:
    assert votes(approval(), approval(approver="bob", decision="reject")) == [
        ApprovalVote("alice", "approve", datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC)),
        ApprovalVote("bob", "reject", datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC)),
    ]


@pytest.mark.parametrize("field,value", [
    ("rollout", "other"), ("requestId", "req-0"), ("revision", "rev1"), ("gatesHash", "gh0"), ("group", "admins"),
])
def test_an_approval_bound_to_anything_else_does_not_count(field: str, value: str) -> None:
    assert votes(approval(**{field: value})) == []


def test_an_expired_approval_does_not_count() -> None:
    assert votes(approval("2026-03-01T10:59:59Z"), expires_after="1h") == []
    assert len(votes(approval("2026-03-01T11:00:00Z"), expires_after="1h")) == 1  # exactly at the limit
