"""Decision quality of fixed thresholds against evidence-aware gates: pure logic, no cluster.

    python -m launchgate_dev.decision_bench [--canaries 2000] [--seed 1] [--write]    # make bench-decisions

Thousands of simulated canaries at a 5% traffic share, with known true error rates and latencies
(identical to the stable, slightly worse, clearly worse), each judged by two policies exactly as
the operator's rules order them (a rollback trigger first, then the gate, promoting no earlier
than the phase's minimum duration), every 30 s for at most the simulated horizon:

* fixed thresholds, the way gates read values today: success rate >= 99% over a 10m window (as
  examples/launchgates.yaml) and mean latency <= 1.2x the stable's, promoted on the first
  evaluation that meets them; a trigger that rolls back when the error rate over 5m is above the
  same 1% at every step of 2m. A variant with a 30m window shows what a longer window alone buys.
* evidence-aware: the same targets with launchgate's evidence: error rate <= 1% with confidence
  0.95 from counts over a 30m window (minSamples 100) and a latency judge (higher is bad,
  confidence 0.95, tolerance 100 ms, 30s samples over 10m, minSamples 10); a trigger that rolls
  back when the error rate is above 1% with confidence 0.95 (minSamples 100) at every step of 2m.

The decisions are launchgate's own functions (launchgate.core.evidence), not re-implementations.
Requests are Poisson, errors binomial, latencies lognormal; each 30 s step's latency sample is the
mean of that step's requests, as a per-step range query would read it.

A false rollback is an identical canary rolled back; a false promotion is a worse canary promoted.
Time to a decision is the median minutes from the canary's start to its promotion or rollback;
canaries still held at the horizon are counted as undecided.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from launchgate.core.evidence import judge, judge_proportion

ROOT = Path(__file__).resolve().parents[2]
STEP_S = 30
MIN_DURATION_STEPS = 20  # 10m
HORIZON_STEPS = 240  # 2h
FOR_STEPS = 4  # a trigger must hold at every step of 2m
TRIGGER_MIN_SAMPLES = 100
TOTAL_RPS = 20.0
SHARE = 0.05
STABLE_ERROR = 0.005
STABLE_LATENCY_MS = 1000.0
LATENCY_SIGMA = 0.5


@dataclass(frozen=True)
class Scenario:
    name: str
    error_rate: float
    latency_ms: float
    bad: bool


SCENARIOS = [
    Scenario("identical to stable (0.5% errors, 1000 ms)", STABLE_ERROR, STABLE_LATENCY_MS, False),
    Scenario("slightly worse (2x errors: 1%, +10% latency)", 2 * STABLE_ERROR, 1.1 * STABLE_LATENCY_MS, True),
    Scenario("clearly worse (5x errors: 2.5%, +50% latency)", 5 * STABLE_ERROR, 1.5 * STABLE_LATENCY_MS, True),
]


@dataclass
class Traffic:
    """One canary's and its stable's requests, errors and mean latency per 30 s step."""

    n: np.ndarray
    e: np.ndarray
    lat: np.ndarray
    sn: np.ndarray
    se: np.ndarray
    slat: np.ndarray


def simulate(s: Scenario, rng: np.random.Generator) -> Traffic:
    def side(rps: float, p: float, mean_ms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = rng.poisson(rps * STEP_S, HORIZON_STEPS)
        e = rng.binomial(n, p)
        mu = np.log(mean_ms) - LATENCY_SIGMA ** 2 / 2  # lognormal with this mean
        # The mean of k lognormal latencies per step, drawn per step (a sum of k draws).
        lat = np.array([rng.lognormal(mu, LATENCY_SIGMA, k).mean() if k else np.nan for k in n])
        return n, e, lat
    n, e, lat = side(TOTAL_RPS * SHARE, s.error_rate, s.latency_ms)
    sn, se, slat = side(TOTAL_RPS * (1 - SHARE), STABLE_ERROR, STABLE_LATENCY_MS)
    return Traffic(n, e, lat, sn, se, slat)


def _window(x: np.ndarray, t: int, steps: int) -> float:
    return float(x[max(0, t + 1 - steps): t + 1].sum())


# A policy: (rollback at step t?, gate allows at step t?)
Policy = tuple[Callable[[Traffic, int], bool], Callable[[Traffic, int], bool]]


def fixed(window_steps: int) -> Policy:
    def breach(tr: Traffic, t: int) -> bool:
        n = _window(tr.n, t, 10)  # 5m
        return n > 0 and _window(tr.e, t, 10) / n > 0.01

    def trigger(tr: Traffic, t: int) -> bool:
        return t >= FOR_STEPS - 1 and all(breach(tr, k) for k in range(t - FOR_STEPS + 1, t + 1))

    def gate(tr: Traffic, t: int) -> bool:
        n, sn = _window(tr.n, t, window_steps), _window(tr.sn, t, window_steps)
        if n == 0 or sn == 0:
            return False  # missing data holds
        success = 1 - _window(tr.e, t, window_steps) / n
        lat = float(np.nansum(tr.lat[max(0, t + 1 - window_steps): t + 1] * tr.n[max(0, t + 1 - window_steps): t + 1]) / n)
        slat = float(np.nansum(tr.slat[max(0, t + 1 - window_steps): t + 1] * tr.sn[max(0, t + 1 - window_steps): t + 1]) / sn)
        return success >= 0.99 and lat <= 1.2 * slat
    return trigger, gate


def evidence(confidence: float = 0.95) -> Policy:
    window, judge_steps = 60, 20  # 30m of counts, 10m of latency samples

    def significant(tr: Traffic, k: int) -> bool:
        n = _window(tr.n, k, window)
        if n < TRIGGER_MIN_SAMPLES:
            return False
        return judge_proportion("lte", 0.01, _window(tr.e, k, window), n, confidence).verdict == "fail"

    def trigger(tr: Traffic, t: int) -> bool:
        return t >= FOR_STEPS - 1 and all(significant(tr, k) for k in range(t - FOR_STEPS + 1, t + 1))

    def gate(tr: Traffic, t: int) -> bool:
        n = _window(tr.n, t, window)
        if n == 0:
            return False
        errors = judge_proportion("lte", 0.01, _window(tr.e, t, window), n, confidence, min_samples=100)
        if errors.verdict != "pass":
            return False
        lo = max(0, t + 1 - judge_steps)
        canary = [float(x) for x in tr.lat[lo:t + 1] if np.isfinite(x)]
        stable = [float(x) for x in tr.slat[lo:t + 1]]
        latency = judge(canary, stable, confidence, tolerance=100.0, direction="higherIsBad", min_samples=10)
        return latency.outcome != "nodata" and not latency.bad
    return trigger, gate


POLICIES: dict[str, Policy] = {
    "fixed thresholds (10m window)": fixed(20),
    "fixed thresholds, 30m window": fixed(60),
    "evidence-aware, confidence 0.95": evidence(0.95),
}


@dataclass
class Tally:
    promoted: int = 0
    rolled_back: int = 0
    undecided: int = 0
    minutes: list[float] | None = None


def run(canaries: int, seed: int) -> dict[tuple[str, str], Tally]:
    out: dict[tuple[str, str], Tally] = {}
    for si, s in enumerate(SCENARIOS):
        rng = np.random.default_rng([seed, si])
        runs = [simulate(s, rng) for _ in range(canaries)]
        for pname, (trigger, gate) in POLICIES.items():
            tally = Tally(minutes=[])
            for tr in runs:
                for t in range(HORIZON_STEPS):
                    if trigger(tr, t):
                        tally.rolled_back += 1
                        tally.minutes.append((t + 1) * STEP_S / 60)  # type: ignore[union-attr]
                        break
                    if t + 1 >= MIN_DURATION_STEPS and gate(tr, t):
                        tally.promoted += 1
                        tally.minutes.append((t + 1) * STEP_S / 60)  # type: ignore[union-attr]
                        break
                else:
                    tally.undecided += 1
            out[(s.name, pname)] = tally
    return out


def _pct(x: float) -> str:
    return f"{round(1000 * x) / 10:.1f}%"


def table(results: dict[tuple[str, str], Tally], canaries: int) -> str:
    rows = ["| canary | policy | promoted | rolled back | undecided at 2h | median minutes to a decision |",
            "|---|---|---:|---:|---:|---:|"]
    for s in SCENARIOS:
        for pname in POLICIES:
            t = results[(s.name, pname)]
            pct = [_pct(x / canaries) for x in (t.promoted, t.rolled_back, t.undecided)]
            if s.bad:
                pct[0] = f"**{pct[0]}** false promotion"
            else:
                pct[1] = f"**{pct[1]}** false rollback"
            med = f"{statistics.median(t.minutes):.1f}" if t.minutes else "-"
            rows.append(f"| {s.name} | {pname} | {pct[0]} | {pct[1]} | {pct[2]} | {med} |")
    return "\n".join(rows)


def headline(results: dict[tuple[str, str], Tally], canaries: int) -> dict[str, float]:
    ident, worse = SCENARIOS[0].name, SCENARIOS[1].name
    fixed_name, ev = "fixed thresholds (10m window)", "evidence-aware, confidence 0.95"
    return {
        "false_rollback_fixed": results[(ident, fixed_name)].rolled_back / canaries,
        "false_rollback_evidence": results[(ident, ev)].rolled_back / canaries,
        "false_promotion_2x_fixed": results[(worse, fixed_name)].promoted / canaries,
        "false_promotion_2x_evidence": results[(worse, ev)].promoted / canaries,
    }


MARK_BEGIN = "<!-- decision-bench:begin -->"
MARK_END = "<!-- decision-bench:end -->"


def section(results: dict[tuple[str, str], Tally], canaries: int, seed: int, took: float) -> str:
    import launchgate

    h = headline(results, canaries)
    return f"""{MARK_BEGIN}
## Decision quality: fixed thresholds against evidence-aware gates

Generated by `make bench-decisions` (`python -m launchgate_dev.decision_bench --canaries {canaries} --seed {seed} --write`);
pure logic, no cluster: {canaries} simulated canaries per row at a {SHARE:.0%} traffic share of {TOTAL_RPS:g} requests/s
(so about {TOTAL_RPS * SHARE * 600:.0f} canary requests per 10 minutes), the stable at {STABLE_ERROR:.1%} errors and a mean
latency of {STABLE_LATENCY_MS:.0f} ms, evaluated every {STEP_S} s for up to 2 h, promoted no earlier than 10 min. The policies
and the model are described in `devtools/launchgate_dev/decision_bench.py`; the decisions are launchgate's own
functions. Date {datetime.now(UTC):%Y-%m-%d}; machine {platform.machine()}, {platform.system()} {platform.release()},
Python {platform.python_version()}, numpy {np.__version__}, launchgate {launchgate.__version__}; {took:.0f} s.

{table(results, canaries)}

Headline: identical canaries falsely rolled back **{_pct(h['false_rollback_fixed'])}** with fixed thresholds,
**{_pct(h['false_rollback_evidence'])}** with the evidence-aware gates; canaries with twice the stable's error rate
falsely promoted **{_pct(h['false_promotion_2x_fixed'])}** with fixed thresholds,
**{_pct(h['false_promotion_2x_evidence'])}** with evidence (the rest of those are held: undecided after 2 h, or rolled back). The price is time: an evidence-aware gate waits for the requests that make it sure, and a canary
whose true error rate sits on the target is held rather than promoted or rolled back on a coin toss.
{MARK_END}
"""


def write(text: str, path: Path) -> None:
    """Replace this benchmark's own block at the end of BENCHMARKS.md (or append it), leaving the
    rest of the file as other benchmarks wrote it."""
    old = path.read_text() if path.exists() else ""
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1].lstrip("\n")
        new = head + text + (("\n" + tail) if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launchgate_dev.decision_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--canaries", type=int, default=2000, help="simulated canaries per scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args(argv)
    started = time.monotonic()
    results = run(args.canaries, args.seed)
    text = section(results, args.canaries, args.seed, time.monotonic() - started)
    print(text)
    if args.write:
        write(text, ROOT / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
