"""The decision-quality benchmark: its block in BENCHMARKS.md is its own, and it runs."""

from __future__ import annotations

from pathlib import Path

from launchgate_dev import decision_bench as bench


def test_its_block_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nother engineer's section\n")
    bench.write(f"{bench.MARK_BEGIN}\nfirst\n{bench.MARK_END}\n", path)
    bench.write(f"{bench.MARK_BEGIN}\nsecond\n{bench.MARK_END}\n", path)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nother engineer's section\n") and "second" in text and "first" not in text
    assert text.count(bench.MARK_BEGIN) == 1


def test_a_small_run_separates_identical_from_clearly_worse() -> None:
    results = bench.run(canaries=40, seed=3)
    ev = "evidence-aware, confidence 0.95"
    assert results[(bench.SCENARIOS[0].name, ev)].rolled_back <= 4
    assert results[(bench.SCENARIOS[2].name, ev)].promoted == 0
    assert "| canary | policy |" in bench.table(results, 40)
