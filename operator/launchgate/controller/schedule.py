"""One timetable for every object's passes, instead of one Kopf daemon per object.

A Kopf daemon costs a task, a coroutine chain, a stopper and a live copy of the full body for as
long as the object exists, plus a finalizer patched onto the object when it is first seen. At
thousands of rollouts that is most of the operator's memory, and the finalizer patches of a first
start are a burst of writes the API server answers with 429s (see BENCHMARKS.md). Here an object is
an entry in a dict and a heap: its slimmed body, when it is due, and a little state the pass keeps
between runs.

`Agenda` is the pure part (no I/O, no clock of its own) and is tested with tables; `Scheduler`
runs it on the event loop with at most `concurrency` passes in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("launchgate")

MIN_REST = 0.5
"""The least time between a pass's end and the next, as a share of its delay (see Agenda.done)."""

@dataclass
class Entry:
    body: Any
    due: float
    generation: Any = None
    running: bool = False
    woken: bool = False
    """Changed while a pass was running: run again as soon as it ends."""
    removed: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    """Kept between passes by the pass itself (e.g. backoff, the gates a rollout uses)."""


class Agenda:
    """Which object is due when. Times are whatever clock the caller passes (monotonic seconds).

    An object is due at once when first seen and when its spec changes (a new generation), so an
    edit is acted on without waiting out the interval; the operator's own status writes do not
    wake it. One object never has two passes at once."""

    def __init__(self) -> None:
        self.entries: dict[Hashable, Entry] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()

    def _push(self, key: Hashable, entry: Entry, due: float) -> None:
        entry.due = due
        heapq.heappush(self._heap, (due, next(self._seq), key))

    def observe(self, key: Hashable, body: Any, now: float) -> bool:
        """A watch event's body: a dict, or anything with a `generation` (kube.Packed). True when
        the object is due now because of it."""
        generation = body.generation if hasattr(body, "generation") else (body.get("metadata") or {}).get("generation")
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = Entry(body=body, due=now, generation=generation)
            self._push(key, entry, now)
            return True
        entry.body = body
        if entry.removed:  # deleted and re-created while its last pass ran: run again right after
            entry.removed, entry.woken, entry.generation = False, True, generation
            return False
        if generation == entry.generation:
            return False
        entry.generation = generation
        if entry.running:
            entry.woken = True
            return False
        if entry.due > now:
            self._push(key, entry, now)
        return True

    def wake(self, key: Hashable, now: float) -> bool:
        """Something the object's pass reads, but which is not the object, changed (an approval, an
        action): due now, or right after the pass in flight. True when due now; False also for an
        unknown object (a rollout not seen yet is due at once anyway when it is)."""
        entry = self.entries.get(key)
        if entry is None or entry.removed:
            return False
        if entry.running:
            entry.woken = True
            return False
        if entry.due > now:
            self._push(key, entry, now)
        return True

    def remove(self, key: Hashable) -> Entry | None:
        """The object is gone. Returns its entry when nothing runs for it any more (the caller
        cleans up now); while a pass runs, the entry is dropped when that pass ends (see `done`)."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.running:
            entry.removed = True
            return None
        del self.entries[key]
        return entry

    def pop_due(self, now: float, limit: int) -> list[tuple[Hashable, Entry]]:
        """Up to `limit` due objects, earliest first, each marked running."""
        out: list[tuple[Hashable, Entry]] = []
        while self._heap and len(out) < limit and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            entry = self.entries.get(key)
            if entry is None or entry.running or entry.due != due:
                continue  # removed, or rescheduled since: a stale heap item
            entry.running = True
            out.append((key, entry))
        return out

    def done(self, key: Hashable, entry: Entry, now: float, delay: float) -> bool:
        """A pass ended; the next is due `delay` after this one was due (or at once if the spec
        changed meanwhile). False when the object went away during the pass: the caller cleans up.

        Counted from when the pass was due, not from when it ended: counted from the end, every
        wait for a free worker and every pass's own duration would push all later passes back, so
        under load each object would be evaluated every interval plus a few seconds. A pass that
        ended more than half a delay late gets at least half a delay's rest: behind schedule,
        objects come round less often than asked, never more."""
        entry.running = False
        if entry.removed or self.entries.get(key) is not entry:
            if self.entries.get(key) is entry:
                del self.entries[key]
            return False
        self._push(key, entry, now if entry.woken else max(entry.due + delay, now + delay * MIN_REST))
        entry.woken = False
        return True

    def next_due(self) -> float | None:
        """When the earliest item is due (it may be stale: waking early only costs a look)."""
        while self._heap:
            due, _, key = self._heap[0]
            entry = self.entries.get(key)
            if entry is None or entry.running or entry.due != due:
                heapq.heappop(self._heap)
                continue
            return due
        return None


Work = Callable[[Hashable, Entry], Awaitable[float]]
Gone = Callable[[Hashable, Entry], None]
Started = Callable[[Hashable, float], None]
"""Told each pass's key and how many seconds after it was due it started."""


class Scheduler:
    """Runs `Agenda` on the event loop: each due object's `work` (which returns the delay to its
    next pass) with at most `concurrency` passes in flight. `work` must not block the loop: it
    hands blocking calls to threads."""

    def __init__(self, work: Work, concurrency: int, gone: Gone | None = None,
                 clock: Callable[[], float] = time.monotonic, started: Started | None = None,
                 leading: Callable[[], bool] | None = None, standby_poll: float = 1.0) -> None:
        """`leading`, under leader election: passes start only while it answers True. A standby's
        agenda still follows every watch event, so when it takes over every object is due at once
        (its due times passed while it stood by), with no listing to wait for."""
        self.agenda = Agenda()
        self._leading = leading
        self._standby_poll = standby_poll
        self._work = work
        self._gone = gone
        self._started = started
        self._limit = max(1, concurrency)
        self._clock = clock
        self._running = 0
        self._kick = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, key: Hashable, body: Any) -> None:
        if self.agenda.observe(key, body, self._clock()):
            self._kick.set()

    def wake(self, key: Hashable) -> None:
        if self.agenda.wake(key, self._clock()):
            self._kick.set()

    def body(self, key: Hashable) -> Any:
        """The object's body as last observed; None once it is removed or if it was never seen.
        Safe from a pass's thread: a dict lookup and an attribute read."""
        entry = self.agenda.entries.get(key)
        return None if entry is None or entry.removed else entry.body

    def remove(self, key: Hashable) -> None:
        entry = self.agenda.remove(key)
        if entry is not None and self._gone is not None:
            self._gone(key, entry)

    def kick(self) -> None:
        """Look at the agenda now (e.g. leadership was just gained). Event-loop thread only."""
        self._kick.set()

    async def run(self) -> None:
        while True:
            self._kick.clear()
            if self._leading is not None and not self._leading():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), self._standby_poll)
                continue
            now = self._clock()
            for key, entry in self.agenda.pop_due(now, self._limit - self._running):
                self._running += 1
                if self._started is not None:
                    self._started(key, now - entry.due)
                task = asyncio.create_task(self._one(key, entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            due = self.agenda.next_due()
            timeout = None if due is None or self._running >= self._limit else max(0.0, due - self._clock())
            try:
                await asyncio.wait_for(self._kick.wait(), timeout)
            except TimeoutError:
                pass

    async def _one(self, key: Hashable, entry: Entry) -> None:
        delay = 1.0
        try:
            delay = await self._work(key, entry)
        except Exception:  # noqa: BLE001 - `work` logs its own failures; this is the last net
            log.exception("scheduled pass failed: %s", key)
        finally:
            self._running -= 1
            if not self.agenda.done(key, entry, self._clock(), delay) and self._gone is not None:
                self._gone(key, entry)
            self._kick.set()

    async def drain(self) -> None:
        """Let the passes in flight finish (their threads cannot be cancelled anyway)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))
