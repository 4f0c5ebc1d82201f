"""Launch math with evidence, checked against an independent implementation (scipy.stats) and by
properties (hypothesis). scipy is a dev dependency only: the operator computes these in pure Python.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from launchgate.core.evidence import (
    count_problem,
    hodges_lehmann,
    judge,
    judge_proportion,
    judge_two_proportions,
    mann_whitney,
    mover_difference,
    wilson,
    z_of,
)

CONFIDENCES = st.sampled_from([0.8, 0.9, 0.95, 0.975, 0.99, 0.999])

# --------------------------------------------------------------------------- vectors, cross-checked


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 12), (3, 40), (40, 40), (39, 40), (994, 1000),
                                      (1, 5000), (17, 23), (0, 380)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = wilson(k, n, confidence)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 100_000), data=st.data(), confidence=CONFIDENCES)
def test_wilson_matches_scipy_everywhere(n: int, data: st.DataObject, confidence: float) -> None:
    k = data.draw(st.integers(0, n))
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    lo, hi = wilson(k, n, confidence)
    assert lo == pytest.approx(ref.low, abs=1e-10) and hi == pytest.approx(ref.high, abs=1e-10)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_z_matches_scipy() -> None:
    for c in (0.5, 0.8, 0.95, 0.99, 0.9999):
        assert z_of(c) == pytest.approx(stats.norm.ppf(1 - (1 - c) / 2), rel=1e-12)
    for bad in (0.0, 1.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            z_of(bad)


def _scipy_mover(e1: int, n1: int, e2: int, n2: int, ratio: float, confidence: float) -> tuple[float, float]:
    """Newcombe's / Zou & Donner's MOVER limits, with Wilson intervals from scipy."""
    a = stats.binomtest(e1, n1).proportion_ci(confidence, "wilson")
    b = stats.binomtest(e2, n2).proportion_ci(confidence, "wilson")
    p1, p2 = e1 / n1, e2 / n2
    d = p1 - ratio * p2
    return (d - math.hypot(p1 - a.low, ratio * (b.high - p2)),
            d + math.hypot(a.high - p1, ratio * (p2 - b.low)))


@pytest.mark.parametrize(("e1", "n1", "e2", "n2", "ratio"), [
    (0, 40, 20, 2000, 2.0), (5, 40, 20, 2000, 2.0), (56, 70, 48, 80, 1.0), (0, 10, 0, 20, 1.0),
    (10, 10, 20, 20, 1.0), (9, 100, 30, 1000, 3.0), (1, 50, 300, 10_000, 1.5)])
def test_mover_matches_a_textbook_implementation_over_scipy(e1: int, n1: int, e2: int, n2: int, ratio: float) -> None:
    d, lo, hi = mover_difference(e1, n1, e2, n2, ratio, 0.95)
    ref = _scipy_mover(e1, n1, e2, n2, ratio, 0.95)
    assert d == pytest.approx(e1 / n1 - ratio * e2 / n2)
    assert (lo, hi) == pytest.approx(ref, abs=1e-12)


def test_newcombe_example_from_the_paper() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, Table II example (a): 56/70 - 48/80, method 10:
    0.0524 to 0.3339."""
    _, lo, hi = mover_difference(56, 70, 48, 80, 1.0, 0.95)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_mover_covers_the_truth_about_as_often_as_it_says() -> None:
    """Coverage by simulation: a canary with twice the stable's error rate at 5% of the traffic."""
    rng = np.random.default_rng(7)
    p_stable, n_canary, n_stable, trials = 0.01, 400, 7600, 4000
    e1 = rng.binomial(n_canary, 2 * p_stable, trials)
    e2 = rng.binomial(n_stable, p_stable, trials)
    covered = sum(lo <= 0 <= hi for lo, hi in
                  (mover_difference(a, n_canary, b, n_stable, 2.0, 0.95)[1:] for a, b in zip(e1, e2, strict=True)))
    assert 0.93 <= covered / trials <= 0.99


@pytest.mark.parametrize("seed", range(12))
def test_mann_whitney_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    x = [round(rng.gauss(100, 15)) for _ in range(rng.randint(1, 60))]  # rounded: ties
    y = [round(rng.gauss(100 + seed, 15)) for _ in range(rng.randint(1, 60))]
    ref = stats.mannwhitneyu(x, y, use_continuity=True, alternative="two-sided", method="asymptotic")
    u, p = mann_whitney(x, y)
    assert u == pytest.approx(ref.statistic)
    if math.isnan(ref.pvalue):  # scipy: every value the same
        assert p == 1.0
    else:
        assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(st.one_of(finite, st.integers(-5, 5).map(float)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(x=samples, y=samples)
def test_mann_whitney_matches_scipy_everywhere(x: list[float], y: list[float]) -> None:
    ref = stats.mannwhitneyu(x, y, use_continuity=True, alternative="two-sided", method="asymptotic")
    u, p = mann_whitney(x, y)
    assert u == pytest.approx(ref.statistic)
    assert p == (1.0 if math.isnan(ref.pvalue) else pytest.approx(ref.pvalue, rel=1e-7, abs=1e-12))


@settings(max_examples=200, deadline=None)
@given(x=samples, y=samples)
def test_hodges_lehmann_is_the_median_of_pairwise_differences(x: list[float], y: list[float]) -> None:
    shift, lo, hi = hodges_lehmann(x, y, 0.95)
    diffs = np.subtract.outer(np.array(x), np.array(y)).ravel()
    assert shift == pytest.approx(float(np.median(diffs)), rel=1e-9, abs=1e-9)
    assert lo <= shift <= hi
    assert diffs.min() <= lo and hi <= diffs.max()


def test_hodges_lehmann_interval_known_case() -> None:
    """Two samples of 10, one shifted by 10: the Moses interval is the 24th smallest and largest of
    the 100 differences (k = floor(50 - 1.96 * sqrt(100 * 21 / 12)) = 24)."""
    x = [float(v) for v in range(10, 20)]
    y = [float(v) for v in range(0, 10)]
    diffs = sorted(a - b for a in x for b in y)
    shift, lo, hi = hodges_lehmann(x, y, 0.95)
    assert shift == 10.0 and (lo, hi) == (diffs[23], diffs[76])


# --------------------------------------------------------------------------- the judge: properties


@settings(max_examples=300, deadline=None)
@given(x=samples, confidence=CONFIDENCES, tolerance=st.sampled_from([0.0, 1.0, 100.0]))
def test_identical_samples_pass(x: list[float], confidence: float, tolerance: float) -> None:
    r = judge(x, list(x), confidence, tolerance, "either")
    assert r.outcome == "pass" and not r.bad and r.estimate == 0.0


@settings(max_examples=300, deadline=None)
@given(x=samples, y=samples, confidence=CONFIDENCES, tolerance=st.sampled_from([0.0, 0.5, 10.0]))
def test_swapping_canary_and_stable_swaps_high_and_low(x: list[float], y: list[float], confidence: float,
                                                      tolerance: float) -> None:
    a = judge(x, y, confidence, tolerance)
    b = judge(y, x, confidence, tolerance)
    swapped = {"high": "low", "low": "high", "pass": "pass", "nodata": "nodata"}
    assert b.outcome == swapped[a.outcome]
    assert a.estimate == pytest.approx(-b.estimate)  # type: ignore[operator]


@given(x=samples, direction=st.sampled_from(["higherIsBad", "lowerIsBad", "either"]))
def test_empty_samples_are_nodata(x: list[float], direction: str) -> None:
    for canary, stable in (([], x), (x, []), ([], [])):
        r = judge(canary, stable, direction=direction)  # type: ignore[arg-type]
        assert r.outcome == "nodata" and not r.bad and r.enough


@settings(max_examples=300, deadline=None)
@given(x=samples, y=samples, bad=st.sampled_from([math.nan, math.inf, -math.inf]), data=st.data(),
       direction=st.sampled_from(["higherIsBad", "lowerIsBad", "either"]))
def test_nan_and_inf_are_nodata(x: list[float], y: list[float], bad: float, data: st.DataObject,
                                direction: str) -> None:
    side = data.draw(st.sampled_from(["canary", "stable", "both"]))
    if side in ("canary", "both"):
        x = [*x[: len(x) // 2], bad, *x[len(x) // 2:]]
    if side in ("stable", "both"):
        y = [bad, *y]
    r = judge(x, y, direction=direction)  # type: ignore[arg-type]
    assert r.outcome == "nodata" and not r.bad


def test_judge_finds_a_clear_shift_and_says_which_way_is_bad() -> None:
    rng = random.Random(1)
    stable = [rng.gauss(1000, 50) for _ in range(40)]
    canary = [rng.gauss(1200, 50) for _ in range(40)]
    r = judge(canary, stable, 0.95, tolerance=50, direction="higherIsBad")
    assert r.outcome == "high" and r.bad and r.lower is not None and r.lower > 100
    assert "n = 40 vs 40 samples" in r.reason
    assert judge(canary, stable, direction="lowerIsBad").bad is False
    assert judge(stable, canary, direction="lowerIsBad").outcome == "low"
    assert judge(stable, canary, direction="lowerIsBad").bad
    # A shift within the tolerance is a pass, however significant.
    assert judge(canary, stable, tolerance=500).outcome == "pass"


def test_judge_with_too_few_samples_is_not_enough_evidence() -> None:
    r = judge([5.0, 6.0], [1.0, 2.0], min_samples=5)
    assert r.outcome == "nodata" and not r.enough and "not enough evidence" in r.reason


# --------------------------------------------------------------------------- proportions: verdicts


def test_a_healthy_canary_holds_until_the_requests_arrive() -> None:
    """No error in 40 requests does not show an error rate <= 1%: the Wilson upper bound is 8.8%."""
    r = judge_proportion("lte", 0.01, 0.0, 40, 0.95)
    assert r.verdict == "hold" and r.reason.startswith("not enough evidence: n = 40")
    assert "interval [0, 0.08762]" in r.reason
    # Without an error the upper bound is z^2 / (n + z^2): at most 1% from n = 99 z^2 = 380.3 on.
    assert judge_proportion("lte", 0.01, 0.0, 380, 0.95).verdict == "hold"
    assert judge_proportion("lte", 0.01, 0.0, 381, 0.95).verdict == "pass"
    assert judge_proportion("gte", 0.99, 381, 381, 0.95).verdict == "pass"


def test_a_clearly_bad_canary_blocks_on_few_requests() -> None:
    assert judge_proportion("lte", 0.01, 6, 40, 0.95).verdict == "fail"
    assert judge_proportion("gte", 0.99, 34, 40, 0.95).verdict == "fail"


def test_min_samples_holds_even_a_conclusive_answer() -> None:
    r = judge_proportion("lte", 0.01, 0.0, 1000, 0.95, min_samples=2000)
    assert r.verdict == "hold" and "minSamples 2000" in r.reason


def test_baseline_ratio_with_confidence() -> None:
    # Canary 5% errors on 400 requests vs stable 1% on 7600: above 2x with confidence.
    assert judge_two_proportions("lteBaselineRatio", 2.0, 20, 400, 76, 7600, 0.95).verdict == "fail"
    # Canary 1 error in 40: not enough evidence either way.
    held = judge_two_proportions("lteBaselineRatio", 2.0, 1, 40, 76, 7600, 0.95)
    assert held.verdict == "hold" and held.reason.startswith("not enough evidence: n = 40 vs 7600")
    # Canary 1% on 2000: under 2x the stable's with confidence.
    assert judge_two_proportions("lteBaselineRatio", 2.0, 20, 2000, 76, 7600, 0.95).verdict == "pass"
    assert judge_two_proportions("gteBaselineRatio", 0.98, 1990, 2000, 7524, 7600, 0.95).verdict == "pass"


@pytest.mark.parametrize(("events", "total", "problem"), [
    (0, 0, "total is 0"), (math.nan, 10, "not finite"), (1, math.inf, "not finite"), (-1, 10, "negative"),
    (11, 10, "exceed the total"), (10.0000000001, 10, None), (3, 10, None)])
def test_count_problems(events: float, total: float, problem: str | None) -> None:
    got = count_problem(events, total)
    assert (got is None) if problem is None else (got is not None and problem in got)
