"""Launch math with evidence: how sure a gate is, in pure Python (no numpy, no scipy at run time).

At Canary1 the canary serves a few percent of traffic, so a window holds tens of requests. A fixed
threshold on a ratio of tens promotes on luck or rolls back on noise; the functions here say what
the data supports and how firmly.

Proportions (a `successes`/`errors` and a `total` count): the **Wilson score interval**. It is
closed-form (cheap enough to run for every blocker of every rollout each pass), stays inside
[0, 1], is well-defined at 0 and at n events out of n (where the textbook Wald interval collapses to
a point and "0 errors out of 12" would read as certainty), and its coverage is close to nominal down
to a few dozen samples, which is exactly the regime of a small canary. A Beta posterior (Jeffreys)
behaves much the same but needs an inverse incomplete beta function; an exact Clopper-Pearson
interval is conservative (wider than it needs to be, so it holds longer for nothing). Counts from
PromQL's increase() are fractional; the formula takes them as they are.

Two proportions (a baseline ratio, canary <= R x stable): the difference canary - R x stable with
the **MOVER** interval (Newcombe's hybrid score method, generalised by Zou & Donner to any linear
combination): each side's Wilson bounds are combined, so it inherits Wilson's behaviour at zero
counts, where ratio intervals (Katz's log method) break down.

Decisions use the interval on both sides: pass when the bound on the safe side meets the target,
fail only when the bound on the other side misses it, otherwise not enough evidence (hold).

Distributions (the judge): a **Mann-Whitney U** test, normal approximation with tie correction and
continuity correction (what scipy.stats.mannwhitneyu(method="asymptotic") computes), and the
**Hodges-Lehmann** shift estimate (median of all canary - stable differences) with its
distribution-free (Moses) confidence interval. High or low needs both a significant test and a
shift beyond the tolerance; otherwise pass. No samples, or any NaN or infinity, is nodata: never a
pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

_NORMAL = NormalDist()

Verdict = Literal["pass", "fail", "hold"]
JudgeOutcome = Literal["pass", "high", "low", "nodata"]
Direction = Literal["higherIsBad", "lowerIsBad", "either"]
MAX_JUDGE_SAMPLES = 1000
"""Samples per side the judge keeps (the newest): its shift estimate looks at every pair."""


def z_of(confidence: float) -> float:
    """The two-sided normal quantile for `confidence` (0.95 -> 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence!r}")
    return _NORMAL.inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _n(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


# --------------------------------------------------------------------------- one proportion


def wilson(events: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson score interval for a proportion of `events` out of `n` (n > 0, 0 <= events <= n)."""
    if not (n > 0 and math.isfinite(n) and math.isfinite(events)):
        raise ValueError("wilson: need a positive, finite n and a finite count")
    p = min(max(events / n, 0.0), 1.0)
    z = z_of(confidence)
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    lo, hi = max(0.0, center - half), min(1.0, center + half)
    # Exact ends: no events means no evidence against 0, all events none against 1.
    return (0.0 if p == 0.0 else lo), (1.0 if p == 1.0 else hi)


@dataclass(frozen=True)
class Proportion:
    """What the counts say about one target, and how sure that is."""

    verdict: Verdict
    estimate: float
    """The canary's proportion (for a baseline ratio too: the difference is in `lower`/`upper`)."""
    lower: float
    upper: float
    """The interval the verdict was read from: of the proportion, or of canary - R x stable."""
    n: float
    baseline_estimate: float | None = None
    baseline_n: float | None = None
    reason: str = ""

    @property
    def conclusive(self) -> bool:
        return self.verdict != "hold"


def count_problem(events: float, total: float, what: str = "canary") -> str | None:
    """Why counts cannot be judged (None when they can): the reason is missing data."""
    if not (math.isfinite(events) and math.isfinite(total)):
        return f"{what} counts are not finite (events {events}, total {total})"
    if total < 0 or events < 0:
        return f"{what} counts are negative (events {_fmt(events)}, total {_fmt(total)})"
    if total == 0:
        return f"{what} total is 0: no requests in the window"
    if events > total * (1 + 1e-9):  # relative slack only: increase() of two series rounds differently
        return f"{what} events ({_fmt(events)}) exceed the total ({_fmt(total)})"
    return None


def _interval_text(lo: float, hi: float) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def judge_proportion(kind: str, threshold: float, events: float, n: float, confidence: float,
                     min_samples: float | None = None) -> Proportion:
    """A proportion against an absolute target: `kind` is gte or lte (events / n compared with
    `threshold`). Counts must have passed `count_problem`."""
    p = min(max(events / n, 0.0), 1.0)
    lo, hi = wilson(events, n, confidence)
    interval = _interval_text(lo, hi)
    level = f"{confidence:g}"
    if min_samples is not None and n < min_samples:
        return Proportion("hold", p, lo, hi, n, reason=(
            f"not enough evidence: n = {_n(n)} < minSamples {_n(min_samples)}, {_fmt(p)}, interval {interval}"))
    if kind == "gte":
        if lo >= threshold:
            return Proportion("pass", p, lo, hi, n, reason=(
                f"{_fmt(p)} >= {_fmt(threshold)} with confidence {level}: n = {_n(n)}, interval {interval}"))
        if hi < threshold:
            return Proportion("fail", p, lo, hi, n, reason=(
                f"{_fmt(p)} is below {_fmt(threshold)} with confidence {level}: n = {_n(n)}, interval {interval}"))
    elif kind == "lte":
        if hi <= threshold:
            return Proportion("pass", p, lo, hi, n, reason=(
                f"{_fmt(p)} <= {_fmt(threshold)} with confidence {level}: n = {_n(n)}, interval {interval}"))
        if lo > threshold:
            return Proportion("fail", p, lo, hi, n, reason=(
                f"{_fmt(p)} is above {_fmt(threshold)} with confidence {level}: n = {_n(n)}, interval {interval}"))
    else:
        raise ValueError(f"a proportion is compared with gte or lte, not {kind}")
    return Proportion("hold", p, lo, hi, n, reason=f"not enough evidence: n = {_n(n)}, {_fmt(p)}, interval {interval}")


# --------------------------------------------------------------------------- two proportions


def mover_difference(e1: float, n1: float, e2: float, n2: float, ratio: float,
                     confidence: float) -> tuple[float, float, float]:
    """(d, lower, upper) for d = p1 - ratio x p2, by MOVER from each proportion's Wilson interval.

    With ratio 1 this is Newcombe's hybrid score interval for a difference of proportions."""
    p1, p2 = e1 / n1, e2 / n2
    l1, u1 = wilson(e1, n1, confidence)
    l2, u2 = wilson(e2, n2, confidence)
    d = p1 - ratio * p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (ratio * (u2 - p2)) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (ratio * (p2 - l2)) ** 2)
    return d, lower, upper


def judge_two_proportions(kind: str, ratio: float, events: float, n: float, base_events: float, base_n: float,
                          confidence: float, min_samples: float | None = None) -> Proportion:
    """canary proportion against `ratio` x the stable's: `kind` lteBaselineRatio or gteBaselineRatio."""
    p, pb = min(max(events / n, 0.0), 1.0), min(max(base_events / base_n, 0.0), 1.0)
    d, lo, hi = mover_difference(min(events, n), n, min(base_events, base_n), base_n, ratio, confidence)
    level = f"{confidence:g}"
    cl, cu = wilson(events, n, confidence)
    ev = (f"n = {_n(n)} vs {_n(base_n)}, canary {_fmt(p)} {_interval_text(cl, cu)}, "
          f"{_fmt(ratio)}x baseline {_fmt(ratio * pb)}; difference interval {_interval_text(lo, hi)}")

    def out(verdict: Verdict, reason: str) -> Proportion:
        return Proportion(verdict, p, lo, hi, n, pb, base_n, reason)

    if min_samples is not None and n < min_samples:
        return out("hold", f"not enough evidence: n = {_n(n)} < minSamples {_n(min_samples)}; {ev}")
    if kind == "lteBaselineRatio":
        if hi <= 0:
            return out("pass", f"{_fmt(p)} <= {_fmt(ratio)}x baseline {_fmt(pb)} with confidence {level}: {ev}")
        if lo > 0:
            return out("fail", f"{_fmt(p)} is above {_fmt(ratio)}x baseline {_fmt(pb)} with confidence {level}: {ev}")
    elif kind == "gteBaselineRatio":
        if lo >= 0:
            return out("pass", f"{_fmt(p)} >= {_fmt(ratio)}x baseline {_fmt(pb)} with confidence {level}: {ev}")
        if hi < 0:
            return out("fail", f"{_fmt(p)} is below {_fmt(ratio)}x baseline {_fmt(pb)} with confidence {level}: {ev}")
    else:
        raise ValueError(f"two proportions are compared with a baseline ratio, not {kind}")
    return out("hold", f"not enough evidence: {ev}")


# --------------------------------------------------------------------------- distributions


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Average ranks (1-based) of `values`, and the tie term sum(t^3 - t) over groups of ties."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    return ranks, ties


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(U of x, two-sided p-value) by the normal approximation with tie and continuity correction,
    as scipy.stats.mannwhitneyu(x, y, method="asymptotic") computes them. p is 1 when every value
    is the same (no evidence of any difference)."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney needs samples on both sides")
    ranks, ties = _ranks([*x, *y])
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    mu = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1, 1.0
    u = max(u1, n1 * n2 - u1)
    z = (u - mu - 0.5) / math.sqrt(var)
    return u1, min(1.0, 2.0 * (1.0 - _NORMAL.cdf(z)))


def _median(sorted_values: Sequence[float]) -> float:
    m = len(sorted_values)
    mid = m // 2
    return sorted_values[mid] if m % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


def hodges_lehmann(x: Sequence[float], y: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """(shift, lower, upper): the median of every x_i - y_j, with the distribution-free (Moses)
    interval: the k-th smallest and k-th largest difference, k from the normal approximation of U."""
    diffs = sorted(a - b for a in x for b in y)
    m = len(diffs)
    n1, n2 = len(x), len(y)
    z = z_of(confidence)
    k = math.floor(m / 2.0 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0))
    k = min(max(k, 1), (m + 1) // 2)
    return _median(diffs), diffs[k - 1], diffs[m - k]


@dataclass(frozen=True)
class JudgeResult:
    """The judge's comparison of the canary's samples with the stable's."""

    outcome: JudgeOutcome
    bad: bool
    """Whether the outcome is the direction the judge was told is bad (never for pass or nodata)."""
    estimate: float | None
    """Hodges-Lehmann shift, canary - stable, in the query's unit."""
    lower: float | None
    upper: float | None
    p_value: float | None
    n: int
    baseline_n: int
    canary_median: float | None = None
    stable_median: float | None = None
    reason: str = ""
    enough: bool = True
    """False when there are samples on both sides but fewer than minSamples: not enough evidence
    yet (outcome nodata), as opposed to no usable data at all."""


def _nonfinite(values: Sequence[float]) -> int:
    return sum(1 for v in values if not math.isfinite(v))


def judge(canary: Sequence[float], stable: Sequence[float], confidence: float = 0.95, tolerance: float = 0.0,
          direction: Direction = "higherIsBad", min_samples: int = 1) -> JudgeResult:
    """pass, high, low or nodata for the canary's samples against the stable's (Kayenta-style).

    nodata: a side without samples, or any NaN or infinity among them (never read as a pass), or
    fewer than `min_samples` on a side (`enough` False: not enough evidence yet). Otherwise high
    (low) when the two-sided Mann-Whitney test is significant at `confidence` and the
    Hodges-Lehmann shift is above `tolerance` (below -`tolerance`); else pass.
    """
    n1, n2 = len(canary), len(stable)
    bad_c, bad_s = _nonfinite(canary), _nonfinite(stable)
    if n1 == 0 or n2 == 0:
        side = "canary" if n1 == 0 else "stable"
        if n1 == 0 and n2 == 0:
            side = "canary and stable"
        return JudgeResult("nodata", False, None, None, None, None, n1, n2, reason=f"no {side} samples in the window")
    if bad_c or bad_s:
        what = "; ".join(f"{s} has {k} NaN or infinite sample(s)" for s, k in (("canary", bad_c), ("stable", bad_s)) if k)
        return JudgeResult("nodata", False, None, None, None, None, n1, n2, reason=what)
    canary, stable = list(canary)[-MAX_JUDGE_SAMPLES:], list(stable)[-MAX_JUDGE_SAMPLES:]
    n1, n2 = len(canary), len(stable)
    cm, sm = _median(sorted(canary)), _median(sorted(stable))
    shift, lo, hi = hodges_lehmann(canary, stable, confidence)
    _, p = mann_whitney(canary, stable)
    ev = (f"n = {n1} vs {n2} samples, shift {_fmt(shift)} [{_fmt(lo)}, {_fmt(hi)}], p = {p:.3g}, "
          f"medians {_fmt(cm)} vs {_fmt(sm)}")
    if n1 < min_samples or n2 < min_samples:
        return JudgeResult("nodata", False, shift, lo, hi, p, n1, n2, cm, sm,
                           f"not enough evidence: {ev} (minSamples {min_samples})", enough=False)
    significant = p < 1.0 - confidence
    outcome: JudgeOutcome = "pass"
    if significant and shift > tolerance:
        outcome = "high"
    elif significant and shift < -tolerance:
        outcome = "low"
    bad = (outcome == "high" and direction in ("higherIsBad", "either")) or \
          (outcome == "low" and direction in ("lowerIsBad", "either"))
    level = f"{confidence:g}"
    tol = f" beyond tolerance {_fmt(tolerance)}" if tolerance else ""
    if outcome == "pass":
        why = "no significant shift" if not significant else f"shift within tolerance {_fmt(tolerance)}"
        reason = f"pass: {why} at confidence {level}: {ev}"
    else:
        where = "above" if outcome == "high" else "below"
        reason = f"{outcome}: canary significantly {where} stable{tol} at confidence {level}: {ev}"
    return JudgeResult(outcome, bad, shift, lo, hi, p, n1, n2, cm, sm, reason)


__all__ = [
    "MAX_JUDGE_SAMPLES",
    "JudgeResult",
    "Proportion",
    "count_problem",
    "hodges_lehmann",
    "judge",
    "judge_proportion",
    "judge_two_proportions",
    "mann_whitney",
    "mover_difference",
    "wilson",
    "z_of",
]
