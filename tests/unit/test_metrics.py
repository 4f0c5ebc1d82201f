"""Operator metrics, scraped over HTTP from the real /metrics endpoint on a loopback port."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from launchgate.adapters import metrics as module
from launchgate.adapters.metrics import OperatorMetrics, blocker_points
from launchgate.core.gates import BlockerResult, GateResult

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def served() -> Iterator[tuple[OperatorMetrics, str]]:
    m = OperatorMetrics()
    server = m.serve(0, addr="127.0.0.1")
    yield m, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def scrape(url: str) -> tuple[str, dict[str, str], Samples]:
    """The raw text, each family's type, and every sample keyed by (name, labels)."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    types: dict[str, str] = {}
    samples: Samples = {}
    for fam in text_string_to_metric_families(text):
        if fam.name.endswith("_created"):
            continue  # prometheus_client's creation timestamps, one per series
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, types, samples


def lbl(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def series(samples: Samples, name: str, **match: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name and lbl(**match) <= labels]


def test_families_are_exported_with_types(served: tuple[OperatorMetrics, str]) -> None:
    _, url = served
    text, types, samples = scrape(url)
    assert types == {
        "launchgate_approval_wait_seconds": "histogram",
        "launchgate_decisions": "counter",
        "launchgate_rollout_phase_index": "gauge",
        "launchgate_rollout_canary_weight": "gauge",
        "launchgate_rollout_last_evaluated_timestamp_seconds": "gauge",
        "launchgate_rollout_info": "gauge",
        "launchgate_rollout_consecutive_no_data": "gauge",
        "launchgate_approval_requested_timestamp_seconds": "gauge",
        "launchgate_blocker_value": "gauge",
        "launchgate_blocker_target": "gauge",
        "launchgate_blocker_pass": "gauge",
        "launchgate_evaluation_duration_seconds": "histogram",
        "launchgate_shared_query_duration_seconds": "histogram",
        "launchgate_pass_start_delay_seconds": "histogram",
        "launchgate_prometheus_queries": "counter",
        "launchgate_api_writes": "counter",
        "launchgate_notifications": "counter",
        "launchgate_status_writes_pending": "gauge",
        "launchgate_api_write_wait_seconds": "counter",
        "launchgate_status_write_failures": "counter",
        "launchgate_leader": "gauge",
        "launchgate_fenced_writes": "counter",
    }
    for name in ("launchgate_decisions_total", "launchgate_prometheus_queries_total", "launchgate_api_writes_total",
                 "launchgate_notifications_total", "launchgate_approval_wait_seconds",
                 "launchgate_rollout_info"):
        assert f"# HELP {name}" in text
    # "No failed notifications" is visible as a zero, not as an absent series.
    for result in ("sent", "failed", "dropped"):
        assert samples[("launchgate_notifications_total", lbl(result=result))] == 0
    assert samples[("launchgate_evaluation_duration_seconds_count", lbl(kind="rollout"))] == 0
    assert samples[("launchgate_pass_start_delay_seconds_count", lbl(kind="rollout"))] == 0
    # Our own registry: nothing leaks into (or from) the process-global one.
    assert REGISTRY.get_sample_value("launchgate_api_writes_total") is None
    assert "python_gc_objects_collected_total" not in text


def test_decisions_status_and_counters(served: tuple[OperatorMetrics, str]) -> None:
    m, url = served
    m.observe_decision("agents", "support-agent", "promote")
    m.observe_decision("agents", "support-agent", "promote")
    m.observe_decision("agents", "support-agent", "rollback")
    before = time.time()
    m.observe_status("agents", "support-agent", "Canary1", 1, 5, "Progressing", "abc123")
    m.observe_prometheus_queries(4)
    m.observe_api_writes()
    m.observe_notification("failed")
    _, _, s = scrape(url)
    assert s[("launchgate_decisions_total", lbl(namespace="agents", rollout="support-agent", decision="promote"))] == 2
    assert s[("launchgate_decisions_total", lbl(namespace="agents", rollout="support-agent", decision="rollback"))] == 1
    assert s[("launchgate_rollout_phase_index", lbl(namespace="agents", rollout="support-agent"))] == 1
    assert s[("launchgate_rollout_canary_weight", lbl(namespace="agents", rollout="support-agent"))] == 5
    assert before <= s[("launchgate_rollout_last_evaluated_timestamp_seconds",
                        lbl(namespace="agents", rollout="support-agent"))] <= time.time()
    assert s[("launchgate_rollout_info", lbl(namespace="agents", rollout="support-agent", phase="Canary1",
                                             state="Progressing", canary_revision="abc123"))] == 1
    assert s[("launchgate_prometheus_queries_total", lbl())] == 4
    assert s[("launchgate_api_writes_total", lbl())] == 1
    assert s[("launchgate_notifications_total", lbl(result="failed"))] == 1


def test_info_series_is_replaced_not_accumulated(served: tuple[OperatorMetrics, str]) -> None:
    m, url = served
    for i in range(50):
        m.observe_status("agents", "a", f"P{i % 4}", i % 4, i, "Progressing", f"rev{i}")
    m.observe_status("agents", "b", "General", 3, 100, "Healthy", None)
    m.observe_status("agents", "a", "General", 3, 100, "Healthy", "rev49")
    _, _, s = scrape(url)
    assert series(s, "launchgate_rollout_info", rollout="a") == [
        {"namespace": "agents", "rollout": "a", "phase": "General", "state": "Healthy", "canary_revision": "rev49"}]
    assert series(s, "launchgate_rollout_info", rollout="b") == [
        {"namespace": "agents", "rollout": "b", "phase": "General", "state": "Healthy", "canary_revision": ""}]
    assert s[("launchgate_rollout_canary_weight", lbl(namespace="agents", rollout="a"))] == 100


def test_no_data_count_and_the_waiting_approval_request(served: tuple[OperatorMetrics, str]) -> None:
    """What the shipped alerts read: a pause for missing data, an approval waiting past its SLA."""
    m, url = served
    m.observe_status("agents", "r", "General", 3, 50, "AwaitingApproval", "r2", 0, ("General", 1_700_000_000.5))
    m.observe_status("agents", "q", "Canary1", 1, 5, "Paused", "q2", 12, None)
    _, _, s = scrape(url)
    assert s[("launchgate_approval_requested_timestamp_seconds",
              lbl(namespace="agents", rollout="r", phase="General"))] == 1_700_000_000.5
    assert s[("launchgate_rollout_consecutive_no_data", lbl(namespace="agents", rollout="q"))] == 12
    assert s[("launchgate_rollout_consecutive_no_data", lbl(namespace="agents", rollout="r"))] == 0
    assert not series(s, "launchgate_approval_requested_timestamp_seconds", rollout="q")
    # Approved: the request's series goes, so the alert resolves.
    m.observe_status("agents", "r", "General", 3, 100, "Progressing", "r2", 0, None)
    _, _, s = scrape(url)
    assert not series(s, "launchgate_approval_requested_timestamp_seconds", rollout="r")


def test_blockers_of_the_last_pass_against_their_targets(served: tuple[OperatorMetrics, str]) -> None:
    m, url = served
    gates = {"canary1": GateResult("block", [
        BlockerResult("success", "gte 0.99", 0.995, None, True, "ok"),
        BlockerResult("p95", "lte 1.2x baseline", 1500.0, 1000.0, False, "ratio 1.5"),
        BlockerResult("quiet", "eq 0", None, None, False, "no data", missing=True)], "1/3"),
        "canary2": "gate canary2 not found"}
    m.observe_status("agents", "r", "Canary1", 1, 5, "Progressing", "r2", blockers=blocker_points(gates))
    _, _, s = scrape(url)
    b = {"namespace": "agents", "rollout": "r", "gate": "canary1"}
    assert s[("launchgate_blocker_value", lbl(**b, blocker="success"))] == 0.995
    assert s[("launchgate_blocker_target", lbl(**b, blocker="success", comparison="gte"))] == 0.99
    assert s[("launchgate_blocker_target", lbl(**b, blocker="p95", comparison="lte"))] == 1200
    assert s[("launchgate_blocker_pass", lbl(**b, blocker="p95"))] == 0
    assert s[("launchgate_blocker_target", lbl(**b, blocker="quiet", comparison="eq"))] == 0
    assert not series(s, "launchgate_blocker_value", blocker="quiet")  # no value: no sample, not a fake 0
    # The next phase's gates replace them.
    m.observe_status("agents", "r", "Canary2", 2, 25, "Progressing", "r2")
    _, _, s = scrape(url)
    assert not series(s, "launchgate_blocker_pass", rollout="r")


def test_approval_wait_histogram(served: tuple[OperatorMetrics, str]) -> None:
    m, url = served
    m.observe_approval_wait("agents", "a", "General", 600)
    m.observe_approval_wait("agents", "a", "General", 5400)
    _, _, s = scrape(url)
    key = {"namespace": "agents", "rollout": "a", "phase": "General"}
    assert s[("launchgate_approval_wait_seconds_count", lbl(**key))] == 2
    assert s[("launchgate_approval_wait_seconds_sum", lbl(**key))] == 6000
    # The checklist's Canary2 bar is a 15-minute median: 900 s is a bucket boundary.
    assert s[("launchgate_approval_wait_seconds_bucket", lbl(**key, le="900.0"))] == 1
    assert s[("launchgate_approval_wait_seconds_bucket", lbl(**key, le="7200.0"))] == 2


def test_time_evaluation_counts_failures_too(served: tuple[OperatorMetrics, str]) -> None:
    m, url = served
    with m.time_evaluation("gate"):
        pass
    with pytest.raises(RuntimeError), m.time_evaluation("rollout"):
        raise RuntimeError("prometheus down")
    with pytest.raises(ValueError, match="rollout or gate"):
        with m.time_evaluation("cluster"):  # type: ignore[arg-type]
            pass
    _, _, s = scrape(url)
    assert s[("launchgate_evaluation_duration_seconds_count", lbl(kind="gate"))] == 1
    assert s[("launchgate_evaluation_duration_seconds_count", lbl(kind="rollout"))] == 1


def test_forget_removes_every_series_of_a_deleted_rollout(served: tuple[OperatorMetrics, str]) -> None:
    m, url = served
    for name in ("gone", "kept"):
        m.observe_decision("agents", name, "hold")
        m.observe_status("agents", name, "Canary2", 2, 25, "AwaitingApproval", "r1")
        m.observe_approval_wait("agents", name, "Canary2", 30)
    m.forget("agents", "gone")
    m.forget("agents", "never-seen")  # harmless
    _, _, s = scrape(url)
    assert not [k for k in s if ("rollout", "gone") in k[1]]
    assert series(s, "launchgate_decisions_total", rollout="kept")
    assert series(s, "launchgate_rollout_info", rollout="kept")
    assert series(s, "launchgate_approval_wait_seconds_count", rollout="kept")
    # A rollout re-created under the same name starts clean.
    m.observe_decision("agents", "gone", "promote")
    _, _, s = scrape(url)
    assert series(s, "launchgate_decisions_total", rollout="gone") == [
        {"namespace": "agents", "rollout": "gone", "decision": "promote"}]


def test_module_level_api_uses_the_operator_registry() -> None:
    module.observe_decision("ns-module-test", "r", "rollback")
    module.observe_status("ns-module-test", "r", "Canary1", 1, 5, "RollingBack", "x")
    with module.time_evaluation("rollout"):
        pass
    reg = module.METRICS.registry
    assert reg.get_sample_value("launchgate_decisions_total",
                                {"namespace": "ns-module-test", "rollout": "r", "decision": "rollback"}) == 1
    module.forget("ns-module-test", "r")
    assert reg.get_sample_value("launchgate_decisions_total",
                                {"namespace": "ns-module-test", "rollout": "r", "decision": "rollback"}) is None
    assert reg.get_sample_value("launchgate_rollout_canary_weight", {"namespace": "ns-module-test", "rollout": "r"}) is None


def test_the_served_text_says_what_the_registry_says_with_odd_label_values(served: tuple[OperatorMetrics, str]) -> None:
    """/metrics formats the per-rollout series itself (see _RolloutBoard); the registry's slow path
    must agree with it, label escaping included, and a changed value must show at the next scrape."""
    m, url = served
    odd = 'say "hi"\\now\nthen'
    for i in range(30):
        m.observe_decision("agents", f"r{i}", "hold")
        m.observe_status("agents", f"r{i}", f"P{i % 3}", i % 3, i, "Progressing", odd if i % 2 else f"rev{i}")
    m.observe_decision("agents", "r1", odd)
    m.observe_decision("agents", "only-decided", "promote")
    m.forget("agents", "r7")
    _, _, first = scrape(url)
    m.observe_status("agents", "r3", "General", 3, 100, "Healthy", odd)
    text, _, s = scrape(url)
    slow = {(x.name, frozenset(x.labels.items())): x.value
            for fam in text_string_to_metric_families(generate_latest(m.registry).decode())
            if not fam.name.endswith("_created") for x in fam.samples}
    assert s == slow
    assert s[("launchgate_decisions_total", lbl(namespace="agents", rollout="r1", decision=odd))] == 1
    assert series(s, "launchgate_rollout_info", rollout="r1")[0]["canary_revision"] == odd
    assert series(s, "launchgate_rollout_info", rollout="r3") == [
        {"namespace": "agents", "rollout": "r3", "phase": "General", "state": "Healthy", "canary_revision": odd}]
    assert s[("launchgate_rollout_canary_weight", lbl(namespace="agents", rollout="r3"))] == 100
    assert first[("launchgate_rollout_canary_weight", lbl(namespace="agents", rollout="r3"))] == 3
    assert not series(s, "launchgate_rollout_info", rollout="r7")
    # Decided but never evaluated: its decisions, no gauges (as prometheus_client shows it).
    assert not series(s, "launchgate_rollout_phase_index", rollout="only-decided")
    assert text.count("# TYPE launchgate_rollout_info gauge") == 1
    # Labels in name order, byte for byte as prometheus_client writes them.
    assert 'launchgate_decisions_total{decision="hold",namespace="agents",rollout="r0"} 1.0\n' in text
    assert ('launchgate_rollout_info{canary_revision="rev0",namespace="agents",phase="P0",rollout="r0",'
            'state="Progressing"} 1.0\n') in text


def test_metrics_are_not_gzipped_even_when_asked(served: tuple[OperatorMetrics, str]) -> None:
    _, url = served
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers.get("Content-Encoding") is None
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"# TYPE launchgate_decisions_total counter" in resp.read()


@pytest.mark.parametrize(("target", "base", "comparison", "number"), [
    ({"gte": 0.99}, None, "gte", 0.99), ({"lte": 1200}, None, "lte", 1200.0), ({"eq": 0}, None, "eq", 0.0),
    ({"lteBaselineRatio": 1.2}, 1000.0, "lte", 1200.0), ({"gteBaselineRatio": 0.5}, 0.9, "gte", 0.45),
    ({"judge": {"direction": "higherIsBad"}}, None, "", None),  # a judge compares samples: no number to draw
])
def test_blocker_targets_are_read_from_what_the_gate_engine_writes(target: dict[str, object], base: float | None,
                                                                  comparison: str, number: float | None) -> None:
    """The blocker gauges parse describe_target's text: a change of that text must fail here, not
    make launchgate_blocker_target vanish silently."""
    from launchgate.api import Target
    from launchgate.core.gates import describe_target
    text = describe_target(Target.model_validate(target))
    res = GateResult("hold", [BlockerResult("b", text, 1.0, base, False, "")], "0/1")
    (point,) = blocker_points({"g": res})
    assert point.comparison == comparison
    assert point.target == pytest.approx(number) if number is not None else point.target is None
