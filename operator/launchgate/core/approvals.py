"""Which Approvals count for a pending request: pure, so the rule reads and tests on its own."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from launchgate.api import PendingApproval
from launchgate.core.durations import parse_duration
from launchgate.core.rollout import ApprovalVote


def counted_votes(approvals: Iterable[dict[str, Any]], rollout: str, pending: PendingApproval, revision: str,
                  gates_hash: str, group: str, expires_after: str, now: datetime) -> list[ApprovalVote]:
    """Approvals that still bind: same request, same revision, same gates+policy hash, the
    required group (membership was checked by admission), not expired.

    Each binding field must match what the request was opened for, so an approval given for one
    revision, gate set or policy never carries over to another; the group is the phase's, which
    admission checked the approver belongs to."""
    ttl = timedelta(seconds=parse_duration(expires_after))
    votes = []
    for a in approvals:
        s = a.get("spec") or {}
        if (s.get("rollout") != rollout or s.get("requestId") != pending.request_id
                or s.get("revision") != revision or s.get("gatesHash") != gates_hash
                or s.get("group") != group):
            continue
        created = datetime.fromisoformat(a["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        if now - created > ttl:
            continue
        votes.append(ApprovalVote(approver=s["approver"], decision=s["decision"], created=created))
    return votes
