"""The benchmark's arithmetic and report: pure functions, so a wrong number is a unit-test failure,
not something nobody notices in BENCHMARKS.md."""

from __future__ import annotations

import pytest

from launchgate_dev.bench import (
    GENERATED_END,
    FleetCollector,
    bucket_quantile,
    counter_sum,
    fit_linear,
    lag_stats,
    last_evaluated,
    merge_report,
    parse_counters,
    percentile,
    projection,
    render_markdown,
    request_delta,
    split_requests,
)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    assert percentile([1.0, 2.0], 0) == 1.0


def test_last_evaluated_reads_the_operators_gauge_for_one_namespace() -> None:
    text = """# HELP launchgate_rollout_last_evaluated_timestamp_seconds When the last pass ended.
# TYPE launchgate_rollout_last_evaluated_timestamp_seconds gauge
launchgate_rollout_last_evaluated_timestamp_seconds{namespace="bench",rollout="a"} 1.7640e+09
launchgate_rollout_last_evaluated_timestamp_seconds{namespace="bench",rollout="b"} 1764000030.25
launchgate_rollout_last_evaluated_timestamp_seconds{namespace="other",rollout="c"} 1764000031.0
# TYPE launchgate_rollout_canary_weight gauge
launchgate_rollout_canary_weight{namespace="bench",rollout="a"} 5.0
"""
    assert last_evaluated(text, "bench") == {"a": 1.764e9, "b": 1764000030.25}
    assert last_evaluated("", "bench") == {}


def test_last_evaluated_agrees_with_the_full_exposition_parser() -> None:
    """The harness reads only the gauge's lines; what it reads must be what a full parser reads,
    whatever the label order, escapes or neighbouring families with a similar name."""
    from prometheus_client.parser import text_string_to_metric_families

    name = "launchgate_rollout_last_evaluated_timestamp_seconds"
    text = f"""# TYPE {name} gauge
{name}{{namespace="bench",rollout="plain"}} 1764000000.5
{name}{{rollout="reordered",namespace="bench"}} 1764000001
{name}{{namespace="bench",rollout="quote\\"brace}}x",extra="a\\\\b"}} 1764000002.0
{name}{{namespace="bench",rollout="new\\nline"}} 1.764000003e+09
{name}{{namespace="bench2",rollout="plain"}} 1764000004
# TYPE {name}_other gauge
{name}_other{{namespace="bench",rollout="plain"}} 7
"""
    full = {s.labels["rollout"]: s.value for f in text_string_to_metric_families(text) if f.name == name
            for s in f.samples if s.labels.get("namespace") == "bench"}
    assert last_evaluated(text, "bench") == full
    assert set(full) == {"plain", "reordered", 'quote"brace}x', "new\nline"}


def test_lag_stats_on_time_late_and_never_evaluated() -> None:
    window = 30.0
    times = {
        "on-time": [0.0, 30.1, 60.2, 90.3],
        "late": [0.0, 40.0, 70.0],
    }
    st = lag_stats(times, ["on-time", "late", "silent"], start=0.0, end=100.0, window=window)
    assert st.rollouts_expected == 3 and st.rollouts_evaluated == 2 and st.never_evaluated == 1
    assert st.evaluations == 7
    # gaps: 30.1, 30.1, 30.1 (on time), 40, 30 (late), 100 (silent: the whole period)
    assert st.gap_max == pytest.approx(100.0)
    assert st.lag_p50 == pytest.approx(0.1, abs=1e-6)
    assert st.within_target_pct == pytest.approx(100 * 4 / 6)


def test_lag_stats_counts_a_rollout_that_stopped_being_evaluated() -> None:
    st = lag_stats({"stopped": [0.0, 30.0]}, ["stopped"], start=0.0, end=120.0, window=30.0)
    assert st.gap_max == pytest.approx(90.0)  # from its last evaluation to the end of the period
    assert st.within_target_pct == pytest.approx(50.0)


METRICS_BEFORE = """\
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",resource="agentrollouts",subresource="",verb="GET"} 10
apiserver_request_total{code="200",resource="agentrollouts",subresource="status",verb="PATCH"} 2
apiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"} 5
"""
METRICS_AFTER = """\
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",resource="agentrollouts",subresource="",verb="GET"} 40
apiserver_request_total{code="200",resource="agentrollouts",subresource="status",verb="PATCH"} 3
apiserver_request_total{code="201",resource="decisionrecords",subresource="",verb="POST"} 4
apiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"} 9
apiserver_request_total{code="200",resource="",subresource="",verb="GET"} 7
apiserver_request_total{code="200",resource="launchgates",subresource="",verb="WATCH"} 1
"""


def test_request_delta_is_the_operators_traffic_by_verb_and_resource() -> None:
    before = parse_counters(METRICS_BEFORE, ["apiserver_request_total"])
    after = parse_counters(METRICS_AFTER, ["apiserver_request_total"])
    delta = request_delta(before, after)
    assert delta == {("GET", "agentrollouts"): 30, ("PATCH", "agentrollouts/status"): 1,
                     ("POST", "decisionrecords"): 4, ("WATCH", "launchgates"): 1}
    assert split_requests(delta) == (5, 30, 1)


def test_request_delta_leaves_out_what_only_the_clusters_components_ask_for() -> None:
    """kwok's Node and pod status, the scheduler's bindings, the controllers' ReplicaSets and
    status writes: none is the operator's. The operator's own Deployment writes stay."""
    lines = [f'apiserver_request_total{{code="200",resource="{r}",subresource="{sub}",verb="{verb}"}} V'
             for r, sub, verb in (("nodes", "status", "PATCH"), ("pods", "status", "PATCH"), ("pods", "binding", "POST"),
                                  ("replicasets", "status", "PUT"), ("deployments", "status", "PUT"),
                                  ("endpointslices", "", "PUT"), ("serviceaccounts", "token", "POST"),
                                  ("jobs", "status", "PUT"), ("deployments", "", "PATCH"))]
    before = parse_counters("\n".join(line.replace("V", "1") for line in lines) + "\n", ["apiserver_request_total"])
    after = parse_counters("\n".join(line.replace("V", "5") for line in lines) + "\n", ["apiserver_request_total"])
    assert request_delta(before, after) == {("PATCH", "deployments"): 4}


def test_the_report_shows_the_controllers_cpu_and_memory_beside_the_operators() -> None:
    results = [{"n": 10, "setup": {"nodes": 3}, "active": {
        "rollouts_evaluated": 10, "cpu_pct": 0.4, "rss_mib_max": 105.0,
        "components": {"kube-controller-manager": {"cpu_pct": 1.16, "rss_mib_max": 114.0},
                       "kwok": {"cpu_pct": 0.0964, "rss_mib_max": 58.1}}}}]
    md = render_markdown(META, results, projection(results))
    assert "| operator CPU (% of one core) | 0.4% |" in md
    assert "| kube-controller-manager CPU (% of one core) / RSS max | 1.16% / 114 MiB |" in md
    assert "| kwok CPU (% of one core) / RSS max | 0.0964% / 58.1 MiB |" in md
    assert "run on 3 fake Nodes (kwok) of 110 pods each" in md


def test_counter_sum_matches_labels() -> None:
    text = ('prometheus_http_requests_total{code="200",handler="/api/v1/query"} 12\n'
            'prometheus_http_requests_total{code="400",handler="/api/v1/query"} 3\n'
            'prometheus_http_requests_total{code="200",handler="/metrics"} 99\n')
    samples = parse_counters(text, ["prometheus_http_requests_total"])
    assert counter_sum(samples, "prometheus_http_requests_total", handler="/api/v1/query") == 15


def test_fit_and_projection() -> None:
    assert fit_linear([1.0], [2.0]) is None
    a, b = fit_linear([10, 100, 1000], [101, 110, 200]) or (0, 0)
    assert b == pytest.approx(0.1, rel=0.01) and a == pytest.approx(100, rel=0.02)
    results = [
        {"n": 10, "active": {"rss_mib_max": 101.0}},
        {"n": 1000, "active": {"rss_mib_max": 200.0, "cpu_ms_per_evaluation": 15.0,
                               "api_reads_per_evaluation": 8.0, "api_writes_per_evaluation": 0.0,
                               "prom_queries_per_evaluation": 4.0}},
    ]
    p = projection(results, target_n=10_000, target_window=30.0)
    assert p["rss_mib_projected"] == pytest.approx(100 + 0.1 * 10_000, rel=0.01)
    assert p["cpu_cores_needed"] == pytest.approx(15.0 * 10_000 / 30 / 1000)
    assert p["api_requests_per_s"] == pytest.approx(8.0 * 10_000 / 30)
    assert p["prom_queries_per_s"] == pytest.approx(4.0 * 10_000 / 30)


META = {"command": "python -m launchgate_dev.bench", "date": "2026-01-01 00:00 UTC", "nproc": 2, "mem_gib": 8.0,
        "python": "3.11.7", "os": "Linux", "window_s": 30.0, "windows": 3, "scrape_s": 2.0, "for_s": 30.0,
        "router": "gatewayAPI", "workers": 32}


def test_render_markdown_has_the_summary_row_and_marks_incomplete_sizes() -> None:
    results = [
        {"n": 10, "setup": {"create_s": 0.3}, "active": {"rollouts_evaluated": 10, "lag_p50_s": 0.05,
                                                          "lag_p99_s": 0.2, "rss_mib_max": 104.0,
                                                          "start_delay_p50_s": 0.01, "start_delay_p99_s": 2.5}},
        {"n": 1000, "setup": {}, "error": "TimeoutError: all stable: only 10/1000"},
    ]
    md = render_markdown(META, results, projection(results))
    assert "| 10 | 10/10 | 0.05 s | 0.2 s |" in md
    assert "| pass start delay p50 / p99 (late against its schedule) | 0.01 s / 2.5 s |" in md
    assert "**Incomplete:** TimeoutError" in md
    assert md.rstrip().endswith(GENERATED_END)
    assert "new revisions patched as fast as 16 threads get them through" in md
    assert "new revisions patched at 12 a second" in render_markdown({**META, "bump_rate": 12.0}, results,
                                                                      projection(results))


def test_a_paced_bump_is_part_of_the_command_shown() -> None:
    from launchgate_dev.bench import parse_args

    opts, _, _, shown = parse_args(["--sizes", "10000", "--bump-rate", "12"])
    assert opts.bump_rate == 12.0 and "--bump-rate 12.0" in shown
    opts, _, _, shown = parse_args(["--sizes", "10"])
    assert opts.bump_rate == 0.0 and "--bump-rate" not in shown


def test_merge_report_keeps_the_hand_written_analysis() -> None:
    old = "# old numbers\n" + GENERATED_END + "\n\n## Analysis\nfix the LIST first\n"
    new = "# new numbers\n" + GENERATED_END + "\n"
    merged = merge_report(new, old)
    assert merged.startswith("# new numbers") and "old numbers" not in merged
    assert merged.endswith("## Analysis\nfix the LIST first\n")
    assert merged.count(GENERATED_END) == 1
    assert merge_report(new, None) == new
    assert merge_report(new, "no marker here") == new


def test_fleet_collector_exports_one_family_for_many_versions() -> None:
    fleet = FleetCollector()
    fleet.upsert("bench", "v1", {"success_rate": 0.99})
    fleet.upsert("bench", "v2", {"success_rate": 0.97})
    fleet.upsert("bench", "v2", {"success_rate": 0.9})  # an update, not a second series
    fams = list(fleet.collect())
    assert [f.name for f in fams] == ["agent_jobs"]
    series = {(s.labels["version"], s.labels["outcome"]) for s in fams[0].samples}
    assert series == {("v1", "success"), ("v1", "error"), ("v2", "success"), ("v2", "error")}
    # The values are each Simulator's own counters (what its `agent_jobs` family exports), as of the scrape.
    for s in fams[0].samples:
        assert s.value == fleet.sims[("bench", s.labels["version"])].jobs[s.labels["outcome"]]
    assert all(s.name == "agent_jobs_total" for s in fams[0].samples)
    assert fleet.sims[("bench", "v2")].rates.success_rate == 0.9


def _hist(counts: dict[str, float], kind: str = "rollout") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {("h_bucket", tuple(sorted({"kind": kind, "le": le}.items()))): v for le, v in counts.items()}


@pytest.mark.parametrize("before,after,q,expected", [
    ({}, {"0.1": 0, "1.0": 0, "+Inf": 0}, 0.5, None),                       # nothing observed
    ({}, {"0.1": 50, "1.0": 100, "+Inf": 100}, 0.5, 0.1),                   # half within 0.1 s
    ({}, {"0.1": 50, "1.0": 100, "+Inf": 100}, 0.75, 0.55),                 # interpolated in (0.1, 1]
    ({"0.1": 40, "1.0": 40, "+Inf": 40}, {"0.1": 40, "1.0": 140, "+Inf": 140}, 0.5, 0.55),  # the increase only
    ({}, {"0.1": 10, "1.0": 10, "+Inf": 100}, 0.99, 1.0),                   # beyond the last bucket: its bound
])
def test_bucket_quantile_is_prometheus_histogram_quantile_over_the_increase(before, after, q, expected) -> None:
    got = bucket_quantile(_hist(before), {**_hist(after), **_hist({"+Inf": 999}, kind="gate")}, "h", q, kind="rollout")
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_the_poller_waits_for_a_poll_that_saw_the_end_of_a_measurement() -> None:
    """A real HTTP server in place of the operator's /metrics: an evaluation that ends just
    before the measurement does is counted once the poller has caught up."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from launchgate_dev.bench import EvaluationPoller

    value = {"ts": 1000.0}

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = ('launchgate_rollout_last_evaluated_timestamp_seconds{namespace="bench",rollout="a"} '
                    f'{value["ts"]}\n').encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    poller = EvaluationPoller(f"http://127.0.0.1:{server.server_address[1]}/metrics", "bench", every=0.5)
    poller.start()
    try:
        assert poller.seen_until(time.time(), timeout=10)
        value["ts"] = 2000.0  # an evaluation ends ...
        end = time.time()  # ... and the measurement right after it
        assert poller.seen_until(end, timeout=10)
        assert poller.between(0, 3000) == {"a": [1000.0, 2000.0]}
        server.shutdown()
        assert not poller.seen_until(time.time() + 1, timeout=1.5)  # nothing answers: says so
    finally:
        poller.stop_flag.set()
        server.server_close()


def test_a_write_limit_is_passed_on_shown_and_reported() -> None:
    from launchgate_dev.bench import parse_args

    opts, _, _, shown = parse_args(["--sizes", "10000", "--write-qps", "60"])
    assert opts.write_qps == 60.0 and "--write-qps 60.0" in shown
    opts, _, _, shown = parse_args(["--sizes", "10"])
    assert opts.write_qps == 0.0 and "--write-qps" not in shown
    results = [{"n": 10, "setup": {}, "error": "TimeoutError: x"}]
    assert "`LAUNCHGATE_API_WRITE_QPS=60`" in render_markdown({**META, "write_qps": 60.0}, results,
                                                               projection(results))
    assert "LAUNCHGATE_API_WRITE_QPS" not in render_markdown(META, results, projection(results))


def test_the_restart_phase_is_on_by_default_reported_and_can_be_skipped() -> None:
    from launchgate_dev.bench import parse_args

    opts, _, _, shown = parse_args(["--sizes", "10"])
    assert opts.restart and "--no-restart" not in shown
    opts, _, _, shown = parse_args(["--sizes", "10", "--no-restart"])
    assert not opts.restart and shown.endswith("--no-restart")
    results = [{"n": 10, "setup": {}, "restart": {"evaluated": 10, "first_s": 1.5, "p50_s": 2.25, "p99_s": 3.0,
                                                  "all_s": 3.5, "cpu_s": 4.0, "rss_mib_max": 99.0,
                                                  "api_reads": 12.0, "api_writes": 3.0,
                                                  "requests_by": [("GET", "deployments", 10.0), ("PATCH", "x", 3.0)]}},
               {"n": 20, "setup": {}, "restart": {"evaluated": 7, "first_s": 1.0, "p50_s": 2.0, "p99_s": 9.0,
                                                  "all_s": None, "cpu_s": None, "rss_mib_max": None}}]
    md = render_markdown(META, results, projection(results))
    assert "10/10 rollouts evaluated by the new one" in md
    assert "| its first evaluation | 1.5 |" in md and "| every rollout evaluated | 3.5 |" in md
    assert "| 99% of the rollouts evaluated | 3 |" in md
    assert "| (API reads / writes by then, all clients) | 12 / 3 |" in md
    assert "until then: GET deployments 10, PATCH x 3." in md
    assert "7/20 rollouts evaluated by the new one" in md and "| every rollout evaluated | — |" in md


def test_earliest_finds_when_a_lasting_condition_began() -> None:
    from launchgate_dev.bench import earliest

    assert earliest(lambda t: t >= 12.34, 0.0, 30.0) == pytest.approx(12.34, abs=0.1)
    assert earliest(lambda t: t >= 12.34, 0.0, 30.0) >= 12.34  # never before it held
    assert earliest(lambda t: False, 0.0, 30.0) is None
    assert earliest(lambda t: True, 5.0, 30.0) == pytest.approx(5.0, abs=0.1)
