"""What status says when the world cannot be made to match it, and what a pass may still do.

Pure: the controller unpacks the client's exceptions and passes in the status code, reason and
body, so the classification reads and tests without a cluster."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from launchgate.api import AgentRolloutStatus
from launchgate.core.protocols import RouterError
from launchgate.core.rollout import refused_conditions

RETRIED_STATUSES = (404, 409, 429)
"""Client errors a retry can fix: the object is not there yet, a conflict, overload."""


def router_refusal(e: RouterError) -> str:
    return f"traffic router: {e.field}: {e}" if e.field else f"traffic router: {e}"


def client_refusal(e: ValidationError) -> str:
    """The API client checks request bodies before sending them: its words, naming the field."""
    problems = "; ".join(f"{_field_path(err['loc'])}: {err['msg']}" for err in e.errors()[:3])
    return f"the API client refused a workload change ({e.title}): {problems}"


def api_refusal(status: int | None, reason: str | None, body: str | None) -> str | None:
    """The API server's refusal of a change the user's spec asks for (an invalid pod template, a
    quota, an admission policy, missing RBAC): a 4xx other than those a retry can fix, said in the
    server's words. None for everything else (conflicts, overload, a server error): the pass is
    retried with backoff."""
    if status is None or not 400 <= status < 500 or status in RETRIED_STATUSES:
        return None
    try:
        detail = json.loads(body or "{}").get("message")
    except (ValueError, AttributeError):
        detail = None
    return f"the API server refused a workload change: {detail or f'{status} {reason}'}"


def refusal_allows(next_state: str | None) -> bool:
    """Whether a pass's decision may stand while the world refuses to match status. Only a
    rollback (an abort, a fired trigger) may: promoting onto traffic that cannot be steered would
    be blind, while a rollback asks for less of the world, never more."""
    return next_state == "RollingBack"


def refused_status(status: AgentRolloutStatus, error: str, now: datetime) -> tuple[str, dict[str, Any] | None]:
    """The message a refused change leaves in status, and the status patch that says it (None:
    status says it already, so nothing is written)."""
    message = f"{error}; retrying"
    conds = [c.model_dump(mode="json", by_alias=True, exclude_none=True)
             for c in refused_conditions(status, message, now)]
    old = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in status.conditions]
    if status.message != message or conds != old:
        return message, {"message": message, "conditions": conds}
    return message, None


def _field_path(loc: tuple[Any, ...]) -> str:
    """('2', 'spec', 'containers', 0, 'name') -> spec.containers[0].name: the leading argument
    position of the client's method is not part of the object."""
    parts = list(loc)
    if parts and str(parts[0]).isdigit():
        parts = parts[1:]
    path = ""
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    return path
