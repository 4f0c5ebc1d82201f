"""Hashes: the one an Approval is bound to, and the short IDs of requests and records.

Both are part of what the API server holds (status.pendingApproval, Approval specs, ConfigMap
and record names), so their values must never change: an operator computing another value for
the same inputs would void every approval given and rename every policy ConfigMap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def approval_hash(*objs: Any) -> str:
    """The hash an Approval is bound to: 10 hex chars of sha256 over canonical JSON of `objs`.

    An approval counts only while the revision and the gates hash it names are what the rollout
    computes now, and both are this function's output (`revision_hash`, `gates_hash`), each
    including the policy's (`policy_hash`): a change to the pod template, to a gate's spec or to
    the policy opens a new request, and approvals given for the old one no longer count. Every
    place that computes one of these goes through here."""
    text = json.dumps(objs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def policy_hash(text: str) -> str:
    """The policy as mounted into the agent's pods, byte for byte: any change to the text, a
    comment too, is a new policy (and a new ConfigMap, which is named by this hash)."""
    return approval_hash(text)


def revision_hash(template: Any, policy: str) -> str:
    """The revision of a rollout: its pod template together with its policy's hash."""
    return approval_hash(template, policy)


def gates_hash(gate_specs: Mapping[str, Any], names: Sequence[str], policy: str) -> str:
    """What a phase's gates judge: each found gate's spec by name, or, when none was found, the
    names the phase lists; together with the policy's hash."""
    return approval_hash(sorted(gate_specs.items()) if gate_specs else names, policy)


def short_hash(*parts: object, n: int = 12) -> str:
    """A deterministic ID (request IDs, record names): the same step makes the same ID after a
    restart. Not what an approval is bound to: a request ID is minted once, kept in status, and
    compared as it is, never computed again."""
    h = hashlib.sha256("\x00".join(str(p) for p in parts).encode())
    return h.hexdigest()[:n]
