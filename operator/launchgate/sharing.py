"""Rollouts that ask the same gate query share one Prometheus query.

Without this every rollout sent each of its gate's queries every pass, so Prometheus load and the
operator's client CPU grew with the number of rollouts (4 queries per evaluation in the N = 1,000
benchmark). `promql_batch` turns a query template into one batched query per *shape* whose result
holds every rollout's answer; `SharedQueries` sends it at most once per `max_age` seconds and hands
each rollout its own series. So queries grow with distinct gates x blockers, not with rollouts.

The price is freshness: a rollout may be judged on an answer up to `max_age` old (a few seconds,
against gate windows of minutes), which is the same as having been evaluated that much earlier.
A shape that cannot be proven batchable, an explicit evaluation time (backtests), or a failed
batched query (e.g. Prometheus' sample limit) falls back to one query per rollout, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .gates import QueryResult, RawResponse, from_prometheus
from .prom import MetricsSource
from .promql import render
from .promql_batch import IDENTITY_VARIABLES, Shape, batch_shape, split_vector

_EMPTY: dict[str, Any] = {"resultType": "vector", "result": []}


@dataclass
class _Answer:
    at: float
    series: dict[tuple[str, ...], dict[str, Any]] | None
    """None: the batched query failed; callers ask per rollout until the next attempt."""


class SharedQueries:
    """A MetricsSource that also answers templates, sharing batched queries between callers.

    Thread-safe: the operator's worker threads evaluate many rollouts at once. One lock per shape
    makes concurrent askers of an expired shape wait for a single query instead of all sending it.
    """

    def __init__(self, source: MetricsSource, max_age: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.max_age = max_age
        self._clock = clock
        self._shapes: dict[tuple[Any, ...], Shape | None] = {}
        self._answers: dict[str, _Answer] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.batched_queries = 0

    # MetricsSource, passed through: triggers and the CLI use rendered queries.
    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        return self.source.query(promql, at)

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        return self.source.query_raw(promql, at)

    def query_template(self, template: str, variables: Mapping[str, str], at: datetime | None = None,
                       max_age: float | None = None) -> QueryResult:
        """The answer to `template` rendered with `variables`; `max_age` (capped at the source's)
        lets a caller with a short interval ask for fresher data. TemplateError as `render`."""
        age = self.max_age if max_age is None else min(self.max_age, max_age)
        shape = self._shape(template, variables) if at is None and age > 0 else None
        if shape is None:
            return self.source.query(render(template, variables), at)
        answer = self._answer(shape, age)
        if answer.series is None:
            return self.source.query(render(template, variables), at)
        return from_prometheus(answer.series.get(shape.key(variables), _EMPTY))

    def _shape(self, template: str, variables: Mapping[str, str]) -> Shape | None:
        # Identity values never change the shape, only whether they are bound at all.
        key = (template, tuple(sorted((k, bool(v)) if k in IDENTITY_VARIABLES else (k, v)
                                      for k, v in variables.items())))
        if key not in self._shapes:
            self._shapes[key] = batch_shape(template, variables)
        return self._shapes[key]

    def _answer(self, shape: Shape, age: float) -> _Answer:
        answer = self._answers.get(shape.query)
        if answer is not None and self._clock() - answer.at <= age:
            return answer
        with self._guard:
            lock = self._locks.setdefault(shape.query, threading.Lock())
        with lock:
            answer = self._answers.get(shape.query)
            if answer is not None and self._clock() - answer.at <= age:
                return answer  # another thread asked while this one waited
            at = self._clock()
            raw = self.source.query_raw(shape.query)
            self.batched_queries += 1
            series = split_vector(raw.data, shape.labels) if raw.error is None and raw.data is not None else None
            answer = _Answer(at, series)
            self._answers[shape.query] = answer
            return answer


__all__ = ["SharedQueries"]
