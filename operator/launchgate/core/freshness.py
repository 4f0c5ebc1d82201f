"""Is the canary still reporting? A blocker's value alone cannot say.

A query over `rate(...[$window])` keeps answering from the samples left inside its window after the
canary's series stop (its pods crashed, its target is no longer scraped): a 10m window would let a
canary that vanished ten minutes ago promote on its last good numbers. So each blocker's canary
data is also checked for freshness, with instant queries derived from the blocker's own query:

* its selectors are found by reading the query as PromQL (`promql_batch.vector_selectors`), and
  those that pick the canary's series, with an `=` or `=~` matcher on `$canary` (or `$version`,
  which names the canary on the canary side), are kept, as written in the template;
* for each, `time() - max(timestamp(<selector>))` is the age of its newest sample. An instant
  selector drops series Prometheus has marked stale (a failed scrape, a target gone) at once, and
  any series after its lookback: then the answer is empty;
* the blocker's canary data is fresh when some selector's newest sample is at most the freshness
  limit old (by default twice the scrape interval); otherwise the blocker is missing data with the
  reason, which holds the gate (or blocks it, with onMissingData: fail) like any missing data.
  Only a blocker that would pass is checked: freshness can only take a pass away, and a value that
  fails its target failed while the canary reported.

The queries are templates like the blocker's own, so rollouts share them (sharing.py batches them by
shape) and one evaluation asks each distinct selector once. A blocker whose query has no such selector
(it picks no series by the canary's version, e.g. by a name built from `$rollout`) is not checked:
nothing in its query says which series would go quiet. A recording rule's output stays fresh for as
long as the rule finds samples in its own range, so a blocker over one is only as fresh as that.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import lru_cache

from launchgate.api import Blocker, LaunchGateSpec
from launchgate.core.durations import format_duration, parse_duration
from launchgate.core.gates import QueryResult, unanswered
from launchgate.core.promql import KNOWN_VARIABLES, TemplateError, render
from launchgate.core.promql_batch import vector_selectors

DEFAULT_SCRAPE_INTERVAL = 30.0
"""Seconds between two scrapes of a canary, when the operator's settings do not say
(LAUNCHGATE_SCRAPE_INTERVAL)."""

# Variables whose value names the canary in a query evaluated for the canary.
CANARY_VARIABLES = ("canary", "version")
_POSITIVE = ("=", "=~")

# Placeholders rendered in place of every variable, so that what became of each in the rendered text
# can be found and put back as a reference. Letters, digits and `_` only: no escaping changes them.
_NONCE = secrets.token_hex(6)
_PLACEHOLDERS = {name: f"lg{_NONCE}_{name}_" for name in KNOWN_VARIABLES if name != "window"}
# $window must render as a duration.
_PLACEHOLDERS["window"] = f"{int(_NONCE, 16) + 10**15}ms"
_BACK = re.compile("|".join(re.escape(p) for p in _PLACEHOLDERS.values()))
_NAMES = {p: name for name, p in _PLACEHOLDERS.items()}


def default_freshness(scrape_interval: float) -> float:
    """Twice the scrape interval: a live canary's newest sample is never older than one interval
    plus the scrape's own duration, so one late scrape does not hold a gate, and a missed one does."""
    return 2 * scrape_interval


def blocker_freshness(spec: LaunchGateSpec, blocker: Blocker, default: float) -> float:
    """Seconds the canary's newest sample may be old for `blocker`: its own `freshness`, else the
    gate's, else `default`."""
    text = blocker.freshness or spec.freshness
    return parse_duration(text) if text else default


@lru_cache(maxsize=1024)
def canary_selectors(template: str) -> tuple[str, ...]:
    """The selectors of `template` that pick the canary's series, each as template text (its metric
    name and matchers, variables still unrendered), without repeats; () when there is none or the
    template cannot be read."""
    try:
        rendered = render(template, _PLACEHOLDERS)
    except TemplateError:
        return ()
    spans = vector_selectors(rendered)
    if spans is None:
        return ()
    marks = tuple(_PLACEHOLDERS[name] for name in CANARY_VARIABLES)
    out: list[str] = []
    for span in spans:
        if any(op in _POSITIVE and any(m in literal for m in marks) for _, op, literal in span.matchers):
            out.append(_BACK.sub(lambda m: "${" + _NAMES[m.group(0)] + "}", rendered[span.start:span.end]))
    return tuple(dict.fromkeys(out))


def freshness_query(selector: str) -> str:
    """Seconds since the newest sample of `selector` (a template): empty when it has no current
    series."""
    return f"time() - max(timestamp({selector}))"


def _seconds(age: float) -> str:
    return f"{age:.1f}s" if age < 10 else f"{age:.0f}s"


def stale_reason(ages: Sequence[QueryResult], limit: float) -> str | None:
    """None when the canary's data is fresh: some selector's newest sample (`ages`, answers to
    `freshness_query`) is at most `limit` seconds old, or there is nothing to check. Otherwise why
    not: a query that got no answer (its own reason, so a caller that reports on the backend sees
    it), the newest sample's age, or no current sample at all."""
    if not ages or any(a.ok and a.value is not None and a.value <= limit for a in ages):
        return None
    for a in ages:
        if a.missing is not None and unanswered(a.missing):
            return f"{a.missing} (canary freshness check)"
    known = [a.value for a in ages if a.ok and a.value is not None]
    within = f"freshness {format_duration(limit)}"
    if known:
        return f"canary series not fresh (last sample {_seconds(min(known))} ago; {within})"
    return f"canary series not fresh (no current sample: stopped, or no longer scraped; {within})"


__all__ = [
    "CANARY_VARIABLES",
    "DEFAULT_SCRAPE_INTERVAL",
    "blocker_freshness",
    "canary_selectors",
    "default_freshness",
    "freshness_query",
    "stale_reason",
]
