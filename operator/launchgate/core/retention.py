"""Which DecisionRecords a retention lets go, and how often to look.

The timeline is evidence, kept for ever unless the operator is given a retention
(LAUNCHGATE_RECORD_RETENTION). A record's age is counted from its `spec.at`, the moment of the
decision it records, which the API server never lets change; a record whose time cannot be read
is kept, since deleting what cannot be dated would be a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

SWEEP_MIN, SWEEP_MAX = 1.0, 3600.0


def recorded_at(record: Mapping[str, Any]) -> datetime | None:
    """When the record's decision was made (`spec.at`, timezone-aware), or None if unreadable."""
    at = (record.get("spec") or {}).get("at")
    if not isinstance(at, str):
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def expired(records: Iterable[Mapping[str, Any]], retention: float, now: datetime) -> list[Mapping[str, Any]]:
    """The records older than `retention` seconds at `now`, in the order given."""
    cutoff = now - timedelta(seconds=retention)
    out = []
    for r in records:
        at = recorded_at(r)
        if at is not None and at < cutoff:
            out.append(r)
    return out


def sweep_every(retention: float) -> float:
    """Seconds between two looks: a tenth of the retention, so a record outlives it by at most a
    tenth, but at most hourly (a retention is days long, and a LIST of every record costs) and at
    least every second."""
    return min(SWEEP_MAX, max(SWEEP_MIN, retention / 10))
