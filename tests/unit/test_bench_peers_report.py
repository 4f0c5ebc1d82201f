"""The side-by-side benchmark's report builder: who is ahead, the ratios, the audit-log counts and
where the section goes in BENCHMARKS.md. Pure functions: a wrong ratio is a test failure, not a
claim in the report nobody checks. No timings are asserted."""

from __future__ import annotations

import json

import pytest

from launchgate_dev.bench import GENERATED_END
from launchgate_dev.bench_peers import (
    ARGO,
    LAUNCHGATE,
    ROWS,
    SIDE_BEGIN,
    SIDE_END,
    Row,
    ahead,
    argo_measurements,
    audit_counts,
    incomplete_lines,
    latest_per_size,
    merge_side_by_side,
    ratio,
    render_side_by_side,
    requests_by_lines,
    side_by_side_table,
)

LOWER = Row("x", "active", "cpu_pct", "%")
HIGHER = Row("n", "promote", "promoted", "", "higher", of="good")
NEUTRAL = Row("per window", "active", "evaluations_per_rollout_window", "", "")


@pytest.mark.parametrize(("row", "ours", "theirs", "want"), [
    (LOWER, 1.0, 4.0, "launchgate"),
    (LOWER, 4.0, 1.0, "Argo Rollouts"),
    (LOWER, 1.0, 1.02, "even"),  # within 5%
    (LOWER, 0, 0, "even"),
    (LOWER, None, 1.0, ""),
    (HIGHER, 9, 8, "launchgate"),
    (HIGHER, 8, 9, "Argo Rollouts"),
    (NEUTRAL, 1.0, 2.0, ""),
    (Row("lag", "active", "lag_p99_s", " s", resolution=1.0), 0.16, 0.0, "even"),  # whole-second timestamps
    (Row("lag", "active", "lag_p99_s", " s", resolution=1.0), 2.5, 0.0, "Argo Rollouts"),
    (Row("lag", "active", "lag_p50_s", " s", resolution=1.0), -4.9, 8.8, "launchgate"),  # early is not late
    (Row("lag", "active", "lag_p50_s", " s", resolution=1.0), -4.9, 0.0, "even"),
])
def test_ahead_follows_which_direction_is_better(row: Row, ours: object, theirs: object, want: str) -> None:
    assert ahead(row, ours, theirs) == want


@pytest.mark.parametrize(("ours", "theirs", "want"), [
    (1.0, 4.0, 0.25),
    (3.0, 1.5, 2.0),
    (1.0, 0, None),
    (None, 1.0, None),
    ("x", 1.0, None),
    (-4.9, 8.8, None),  # an evaluation earlier than its window: no ratio
])
def test_ratio_is_launchgate_over_argo(ours: object, theirs: object, want: float | None) -> None:
    assert ratio(ours, theirs) == want


def _result(cpu: float, rss: float, promoted: int, lag: float | None) -> dict[str, object]:
    return {"setup": {"all_stable_s": 10.0},
            "active": {"cpu_pct": cpu, "rss_mib_max": rss, "rollouts_evaluated": 100, "lag_p99_s": lag,
                       "prom_queries_per_window": 0.0},
            "promote": {"promoted": promoted, "good": 90}}


def test_table_rows_ratios_and_where_argo_is_ahead() -> None:
    lines, argo_ahead = side_by_side_table(100, {
        LAUNCHGATE: _result(cpu=2.0, rss=200.0, promoted=90, lag=0.5),
        ARGO: _result(cpu=8.0, rss=50.0, promoted=90, lag=None),
    })
    table = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert lines[0].startswith("| N = 100 | launchgate | Argo Rollouts | ratio")
    assert table["active: controller CPU (% of one core)"] == "| active: controller CPU (% of one core) | 2% | 8% | 0.25× | launchgate |"
    assert table["active: controller RSS max"].endswith("| 200 MiB | 50 MiB | 4× | Argo Rollouts |")
    # counts are shown out of their total, with no ratio; equal counts are even
    assert table["promotion: good canaries promoted"] == "| promotion: good canaries promoted | 90/90 | 90/90 | — | even |"
    assert table["active: rollouts analysed"].endswith("| 100/100 | 100/100 | — | even |")
    # one side missing: shown as —, no ratio, nobody ahead
    assert table["active: evaluation lag p99"].endswith("| 0.5 s | — | — |  |")
    # both zero: no ratio, even
    assert "= (both 0)" in table["active: Prometheus queries per window (all rollouts)"]
    # rows neither side measured are left out
    assert not any("restart" in key for key in table)
    assert argo_ahead == ["active: controller RSS max"]


def test_every_row_names_a_phase_and_a_direction() -> None:
    for row in ROWS:
        assert row.phase in {"setup", "idle", "active", "rollback", "restart", "promote"}
        assert row.better in {"lower", "higher", ""}
        assert row.of is None or row.better == "higher"


META = {"command": "python -m launchgate_dev.bench_peers --sizes 100", "date": "2026-12-07 22:00 UTC",
        "commit": "abc1234", "nproc": 2, "mem_gib": 23.5, "replicas": 20, "window_s": 30.0, "bad_pct": 10,
        "argo_version": "v1.8.3", "versions": "v1.32.13 / v3.5.21"}


def test_render_says_how_each_size_ran_where_argo_is_ahead_and_errors() -> None:
    text = render_side_by_side([(META, {"n": 100, "controllers": {
        LAUNCHGATE: _result(cpu=1.0, rss=100.0, promoted=90, lag=0.1),
        ARGO: {**_result(cpu=1.0, rss=90.0, promoted=80, lag=1.0), "error": "TimeoutError: promoted: only 80/90"},
    }})], notes="Flagger: one sentence.")
    assert text.startswith(SIDE_BEGIN) and text.rstrip().endswith(SIDE_END)
    assert "### N = 100" in text
    assert "`python -m launchgate_dev.bench_peers --sizes 100` on 2026-12-07 22:00 UTC, commit abc1234" in text
    assert "Argo Rollouts v1.8.3" in text
    assert "Where Argo Rollouts is ahead at N = 100: active: controller RSS max." in text
    assert "**argo-rollouts incomplete at N = 100:** TimeoutError" in text
    assert "Flagger: one sentence." in text


@pytest.mark.parametrize(("runs", "want"), [
    ([], []),
    # one run, two sizes: both, smallest first
    ([{"meta": {"date": "d1"}, "results": [{"n": 1000}, {"n": 100}]}], [("d1", 100), ("d1", 1000)]),
    # a later run of one size replaces that size's table and keeps the other's
    ([{"meta": {"date": "2026-12-07 21:29 UTC"}, "results": [{"n": 100}, {"n": 1000}]},
      {"meta": {"date": "2026-12-07 22:30 UTC"}, "results": [{"n": 100}]}],
     [("2026-12-07 22:30 UTC", 100), ("2026-12-07 21:29 UTC", 1000)]),
    # whatever order the files are read in
    ([{"meta": {"date": "2026-12-07 22:30 UTC"}, "results": [{"n": 100}]},
      {"meta": {"date": "2026-12-07 21:29 UTC"}, "results": [{"n": 100}]}],
     [("2026-12-07 22:30 UTC", 100)]),
])
def test_latest_per_size_keeps_the_newest_table_of_each_n(runs: list[dict[str, object]],
                                                         want: list[tuple[str, int]]) -> None:
    assert [(m["date"], r["n"]) for m, r in latest_per_size(runs)] == want


def test_merge_places_then_replaces_the_section() -> None:
    first = f"{SIDE_BEGIN}\nold\n{SIDE_END}\n"
    second = f"{SIDE_BEGIN}\nnew\n{SIDE_END}\n"
    bench = f"# launchgate benchmarks\n\ntables\n{GENERATED_END}\n\n## Reading this report\n"
    placed = merge_side_by_side(bench, first)
    assert placed.index(GENERATED_END) < placed.index(SIDE_BEGIN) < placed.index("## Reading this report")
    replaced = merge_side_by_side(placed, second)
    assert "old" not in replaced and replaced.count(SIDE_BEGIN) == 1 and "## Reading this report" in replaced
    assert replaced.index(SIDE_END) < replaced.index("## Reading this report")
    assert merge_side_by_side(None, first) == first
    assert merge_side_by_side("# other\n", first) == "# other\n\n" + first


def _event(user: str, verb: str, resource: str, stage: str = "ResponseComplete", sub: str | None = None) -> str:
    ref = {"resource": resource, **({"subresource": sub} if sub else {})}
    return json.dumps({"stage": stage, "verb": verb, "user": {"username": user}, "objectRef": ref,
                       "requestURI": f"/apis/x/{resource}"})


def test_audit_counts_one_users_completed_requests_by_verb_and_resource() -> None:
    lines = [
        _event("argo-rollouts", "get", "rollouts"),
        _event("argo-rollouts", "get", "rollouts"),
        _event("argo-rollouts", "patch", "rollouts", sub="status"),
        _event("argo-rollouts", "watch", "replicasets"),
        _event("argo-rollouts", "list", "pods", stage="ResponseStarted"),  # counted at completion only
        _event("launchgate-operator", "get", "rollouts"),
        json.dumps({"stage": "ResponseComplete", "verb": "get", "user": {"username": "argo-rollouts"},
                    "requestURI": "/version?timeout=32s"}),
        "not json {",
        "",
    ]
    assert audit_counts(lines, "argo-rollouts") == {
        ("GET", "rollouts"): 2, ("PATCH", "rollouts/status"): 1, ("WATCH", "replicasets"): 1, ("GET", "/version"): 1}
    assert audit_counts(lines, "nobody") == {}


def test_argo_measurements_read_every_metrics_finish_time() -> None:
    run = {"status": {"metricResults": [{"name": "success-rate", "measurements": [
        {"phase": "Successful", "startedAt": "2026-12-07T21:00:00Z", "finishedAt": "2026-12-07T21:00:01Z"},
        {"phase": "Failed", "finishedAt": "2026-12-07T21:00:31Z"},
        {"phase": "Running", "startedAt": "2026-12-07T21:01:01Z"},  # not finished: no analysis yet
    ]}]}}
    got = argo_measurements(run)
    assert [p for _, p in got] == ["Successful", "Failed"]
    assert got[1][0] - got[0][0] == 30.0
    assert argo_measurements({}) == []


def test_requests_by_lines_list_each_controllers_kinds_largest_first() -> None:
    lines = requests_by_lines({
        LAUNCHGATE: {"active": {"requests_by": []}, "restart": {"requests_by": [["GET", "deployments", 146.0]]}},
        ARGO: {"active": {"requests_by": [["PATCH", "analysisruns", 203.0], ["WATCH", "secrets", 1.0],
                                          ["WATCH", "configmaps", 1.0]]}},
    }, most=2)
    assert lines == [
        "- API requests by verb and resource, launchgate, active: none.",
        "- API requests by verb and resource, argo-rollouts, active: PATCH analysisruns 203, WATCH secrets 1"
        " (+1 more kinds).",
        "- API requests by verb and resource, launchgate, restart: GET deployments 146.",
        "",
    ]
    assert requests_by_lines({}) == []


def test_incomplete_lines_name_the_run_and_the_phase_that_did_not_finish() -> None:
    assert incomplete_lines(1000, {
        LAUNCHGATE: {"promote": {"promoted": 900}},
        ARGO: {"error": "RuntimeError: exited", "promote": {"error": "TimeoutError: promoted: only 0/900 after 236s"}},
    }) == ["**argo-rollouts incomplete at N = 1,000:** RuntimeError: exited",
           "**argo-rollouts incomplete at N = 1,000 (promote):** TimeoutError: promoted: only 0/900 after 236s", ""]
    assert incomplete_lines(100, {LAUNCHGATE: {}}) == []
