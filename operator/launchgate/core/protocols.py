"""The small interfaces the pure core asks of the outside world, and the values that cross them.

The core decides; adapters fulfil these protocols with Prometheus, the Kubernetes API and webhooks.
Keeping them here, beside the decisions that use them, lets the core be read and tested without
any I/O library, and lets another metrics provider, router or notifier plug in without touching it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

from launchgate.core.gates import QueryResult, RawResponse

# --------------------------------------------------------------------------- metrics


@runtime_checkable
class MetricsSource(Protocol):
    """Instant queries at an explicit time (None = now). Implementations must not raise for
    Prometheus' own failures: they report them as missing data."""

    def query(self, promql: str, at: datetime | None = None) -> QueryResult: ...

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse: ...


# --------------------------------------------------------------------------- traffic


class RouterError(Exception):
    """The router could not apply a weight; the reconciler retries with backoff and says so in status.

    `field` is the spec field that names what the router could not use (e.g. the HTTPRoute), so
    status tells the user which line of their rollout to look at."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TrafficRouter(Protocol):
    ratio_router: bool

    def set_weight(self, namespace: str, rollout: str, weight: int) -> bool:
        """Make the canary carry `weight` % of live traffic. True if something was written."""
        ...


# --------------------------------------------------------------------------- notifications

NotificationKind = Literal["block", "rollback", "pause", "approval_request"]
KINDS: tuple[str, ...] = ("block", "rollback", "pause", "approval_request")


@dataclass(frozen=True)
class Notification:
    """One event an owner must hear about, with the evidence (blocker values) that caused it."""

    kind: NotificationKind
    rollout: str
    namespace: str
    phase: str
    decision_id: str
    reason: str
    values: Mapping[str, float | None] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    """Role -> contact, as configured on the gate (reliability, governance, cost)."""
    escalate_to: Sequence[str] = ()
    """The contacts this event pages: the owners of the failing blockers or of the approval, the
    reliability owner for a rollback or a pause."""
    approval_request_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"notification kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def dedup_key(self) -> str:
        """Stable across retries and operator restarts, so a receiver can drop duplicates."""
        return f"{self.namespace}/{self.rollout}/{self.decision_id}/{self.kind}"


class Notifier(Protocol):
    def send(self, n: Notification) -> bool: ...
