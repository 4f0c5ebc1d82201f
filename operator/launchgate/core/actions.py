"""People's RolloutActions (promote, abort, retry): which one a pass acts on, and what its
outcome says. Pure, so the ordering rules and the wording read and test on their own."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from launchgate.api import LastAction
from launchgate.core.rollout import Outcome


def next_action(actions: Iterable[dict[str, Any]], rollout: str, last: LastAction | None) -> dict[str, Any] | None:
    """The oldest RolloutAction for `rollout` not yet handled; status.lastAction makes each count once.

    Creation times have one-second precision, so an abort and a promote sent in the same second
    tie: the apiserver's resourceVersion (in practice the order it stored them) breaks the tie,
    and lastAction keeps the names already handled within that second."""
    def key(a: dict[str, Any]) -> tuple[str, int, str]:
        rv = str(a["metadata"].get("resourceVersion") or "")
        return a["metadata"]["creationTimestamp"], int(rv) if rv.isdigit() else 0, a["metadata"]["name"]

    items = sorted((a for a in actions if (a.get("spec") or {}).get("rollout") == rollout), key=key)
    if last is not None:
        second = last.created.strftime("%Y-%m-%dT%H:%M:%SZ")
        handled = {last.name, *last.handled_same_second}
        items = [a for a in items if key(a)[0] > second
                 or (key(a)[0] == second and a["metadata"]["name"] not in handled)]
    return items[0] if items else None


def action_outcome(out: Outcome) -> str:
    """What the person who sent the action reads in status.lastAction: why it was not applied,
    or the decision it led to."""
    if out.action_note is not None:
        return f"not applied: {out.action_note}"
    if out.decision:
        return f"{out.decision}: {out.reason}"
    return out.reason  # a retry restarts without a gate decision


def handled(prev: LastAction | None, action: dict[str, Any], outcome: str) -> LastAction:
    """status.lastAction once `action` is handled. Actions created in the same second as the
    previous one are told apart by name (see next_action), so their names are kept, the newest 64."""
    spec, meta = action["spec"], action["metadata"]
    created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
    same = [*prev.handled_same_second, prev.name][-64:] if prev is not None and prev.created == created else []
    return LastAction(name=meta["name"], action=spec["action"], actor=spec["actor"], created=created,
                      outcome=outcome[:1024], handled_same_second=same)
