"""Go-style durations (10m, 1h30m, 250ms): the format the CRD's CEL rules and PromQL both accept."""

from __future__ import annotations

import re
from functools import lru_cache

_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_WHOLE = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@lru_cache(maxsize=4096)
def _parse(text: str) -> float:
    if not _WHOLE.match(text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 10m, 1h30m")
    return sum(int(n) * _SECONDS[u] for n, u in _PART.findall(text))


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError names the bad input, since it usually comes from a user's YAML.

    Cached: a pass reads the same few durations (interval, windows, trigger steps) about ten times
    per rollout, and parsing them each time would be a noticeable part of a shared trigger's cost
    per rollout."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 10m, 1h30m")
    return _parse(text)


def format_duration(seconds: float) -> str:
    """The shortest exact Go-style spelling of a whole number of milliseconds."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError("duration must be positive")
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
