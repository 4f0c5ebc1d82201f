"""Who may decide: the rules of leader election on a `coordination.k8s.io/v1` Lease, without I/O.

The API server is the only arbiter: a replica holds the Lease when its update of the Lease object
(conditional on the resourceVersion it read) succeeds, so two replicas never both win one round.
What the API server cannot arbitrate is time: a holder that stops renewing (paused, partitioned)
must stop deciding before anyone else may take the Lease over. These rules make that so, as
client-go's leader election does:

- a standby takes a Lease over only once the holder's record has stayed unchanged for the whole
  lease duration, measured on the standby's own clock from when it first saw that record (clocks of
  different machines are never compared);
- the holder decides only while less than the renew deadline has passed since it *sent* its last
  successful renewal, and the renew deadline is shorter than the lease duration.

So after the holder's last renewal it stops deciding at most `renew_deadline` after sending it,
while a standby waits at least `lease_duration` after seeing it: the difference is the margin for
clocks running at slightly different rates and for a write already on its way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LeaseTerms:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s between attempts."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def problems(self) -> list[str]:
        """What makes these terms unsafe, one sentence each (empty when they are sound)."""
        out = []
        if not self.retry_period > 0:
            out.append(f"the retry period must be more than 0s, got {self.retry_period:g}s")
        if not self.renew_deadline > self.retry_period:
            out.append(f"the renew deadline ({self.renew_deadline:g}s) must be longer than the retry period "
                       f"({self.retry_period:g}s), or one slow attempt loses the lease")
        if not self.lease_duration > self.renew_deadline:
            out.append(f"the lease duration ({self.lease_duration:g}s) must be longer than the renew deadline "
                       f"({self.renew_deadline:g}s), or a standby could take over while the holder still decides")
        return out


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that election reads and writes."""

    holder: str | None
    lease_duration_seconds: int | None
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int = 0

    def key(self) -> tuple[object, ...]:
        """What identifies one version of the record: a renewal changes it."""
        return (self.holder, self.renew_time, self.acquire_time, self.transitions)


@dataclass
class Observation:
    """A standby's memory of the record it last saw and when (its own monotonic clock)."""

    key: tuple[object, ...] | None = None
    since: float = 0.0

    def saw(self, record: LeaseRecord | None, now: float) -> float:
        """Note the record read at `now`; returns how long it has been unchanged, as far as this
        replica knows (0 when it just changed or is first seen)."""
        key = record.key() if record is not None else None
        if key != self.key:
            self.key, self.since = key, now
        return now - self.since


def claim(record: LeaseRecord | None, me: str, unchanged_for: float, terms: LeaseTerms,
          now: datetime) -> LeaseRecord | None:
    """The record to write to hold the Lease, or None when it is someone else's and still valid.

    Renewing one's own lease keeps its acquire time; taking over an expired or released one
    counts a transition. The lease duration a holder wrote is honoured when it is longer than
    ours: a standby never cuts a holder's promise short."""
    duration = int(-(-terms.lease_duration // 1))  # whole seconds, rounded up, as the API stores them
    if record is not None and record.holder == me:
        return LeaseRecord(me, duration, record.acquire_time or now, now, record.transitions)
    if record is not None and record.holder:
        promised = max(float(record.lease_duration_seconds or 0), terms.lease_duration)
        if unchanged_for < promised:
            return None
    return LeaseRecord(me, duration, now, now, record.transitions + 1 if record is not None else 0)


def still_leading(renew_sent_at: float | None, now: float, terms: LeaseTerms) -> bool:
    """True while the last successful renewal was sent less than the renew deadline ago."""
    return renew_sent_at is not None and now - renew_sent_at < terms.renew_deadline
