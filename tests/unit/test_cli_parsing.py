"""The CLI's pure parts: gate files, --var, times, and bad input exiting 2 before any query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from launchgate.api import LaunchGateSpec
from launchgate.cli.main import (
    InputError,
    backend_failure,
    load_gates,
    main,
    parse_time,
    parse_vars,
    pick_gate,
    transitions,
)
from launchgate.core.gates import QueryResult, evaluate_gate

ROOT = Path(__file__).resolve().parents[2]

FULL = """
apiVersion: launchgate.dev/v1alpha1
kind: LaunchGate
metadata: {name: canary1, namespace: agents}
spec:
  window: 5m
  blockers:
    - name: ok
      query: sum(up{version="$canary"})
      target: {gte: 1}
"""

SPEC_ONLY = """
window: 5m
blockers:
  - {name: ok, query: "sum(up)", target: {gte: 1}}
"""


def test_full_object() -> None:
    (g,) = load_gates(FULL)
    assert (g.name, g.namespace, g.spec.window) == ("canary1", "agents", "5m")


def test_bare_spec_takes_the_default_name() -> None:
    (g,) = load_gates(SPEC_ONLY, "mygate")
    assert (g.name, g.namespace) == ("mygate", None)


def test_multi_document_file_skips_other_kinds() -> None:
    text = (ROOT / "examples" / "launchgates.yaml").read_text() + "\n---\n" + "kind: AgentRollout\nspec: {}\n"
    gates = load_gates(text)
    assert [g.name for g in gates] == ["replay", "canary1", "canary2", "general", "canary1-evidence"]
    assert pick_gate(gates, "canary2").name == "canary2"
    with pytest.raises(InputError, match="pick one with --name"):
        pick_gate(gates, None)
    with pytest.raises(InputError, match="no LaunchGate named 'nope'"):
        pick_gate(gates, "nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "invalid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("kind: AgentRollout\n", "no LaunchGate found"),
        ("kind: LaunchGate\nmetadata: {name: x}\n", "spec: field required"),
        (FULL.replace("gte: 1", "gte: lots"), "spec.blockers[0].target.gte: Input should be a valid number"),
        (FULL.replace("window: 5m", "window: 5 minutes"), "spec.window: String should match pattern"),
        (FULL.replace("target: {gte: 1}", "target: {gte: 1, lte: 2}"), "spec.blockers[0].target: exactly one of"),
        (FULL.replace("target: {gte: 1}", "target: {}"), "spec.blockers[0].target: exactly one of"),
        (FULL.replace("target: {gte: 1}", "target: {gte: 1}\n      colour: blue"),
         "spec.blockers[0].colour: Extra inputs are not permitted"),
        (SPEC_ONLY.replace("window: 5m", "blockers2: []"), "blockers2: Extra inputs are not permitted"),
        (SPEC_ONLY + "  - {name: ok, query: x, target: {eq: 0}}\n", "blockers[1].name: duplicate blocker name 'ok'"),
        ("blockers: []\n", "blockers: List should have at least 1 item"),
    ],
)
def test_bad_files_name_the_field(text: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        load_gates(text)
    assert message in str(e.value)


def test_parse_vars() -> None:
    assert parse_vars(["canary=v2", "stable=a=b", "namespace="]) == {"canary": "v2", "stable": "a=b", "namespace": ""}
    for bad in ["canary", "=v", "1x=2", "a-b=c"]:
        with pytest.raises(InputError, match="expected name=value"):
            parse_vars([bad])


NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-3h", NOW - timedelta(hours=3)),
        ("now-90m", NOW - timedelta(minutes=90)),
        ("-1h30m", NOW - timedelta(minutes=90)),
        ("-2d", NOW - timedelta(days=2)),
        ("+10s", NOW + timedelta(seconds=10)),
        ("2026-04-01T09:30:00Z", datetime(2026, 4, 1, 9, 30, tzinfo=UTC)),
        ("2026-04-01T11:30:00+02:00", datetime(2026, 4, 1, 9, 30, tzinfo=UTC)),
        ("2026-04-01T09:30:00", datetime(2026, 4, 1, 9, 30, tzinfo=UTC)),
        ("1775035800", datetime.fromtimestamp(1775035800, UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-3x", "2026-13-01T00:00:00Z"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises((InputError, ValueError)):
        parse_time(text, NOW)


SPEC = LaunchGateSpec.model_validate({"blockers": [{"name": "b", "query": "q", "target": {"gte": 1}}]})


def test_transitions_mark_where_an_incident_began() -> None:
    ok = evaluate_gate(SPEC, {"b": QueryResult.of(1)}, {})
    bad = evaluate_gate(SPEC, {"b": QueryResult.of(0)}, {})
    rows = [(NOW + timedelta(minutes=10 * i), r) for i, r in enumerate([ok, ok, bad, bad, ok])]
    tr = transitions(rows)
    assert [(t["at"], t["from"], t["to"]) for t in tr] == [
        ("2026-04-01T12:20:00Z", "allow", "block"),
        ("2026-04-01T12:40:00Z", "block", "allow"),
    ]
    assert tr[0]["failing"] == ["b"]


@pytest.mark.parametrize("missing", [
    "prometheus unreachable: [Errno 111] refused",
    "query error: parse error (HTTP 400, bad_data)",
    "query error: many-to-many matching not allowed (HTTP 422, execution)",
    "query error: HTTP 404 (is the URL Prometheus' base URL?)",
    "query error: HTTP 501",
    "query error: unexpected response (unexpected character)",
    "template error: blocker b: variable $canary is used but not bound (set canary=...)",
])
def test_backend_failure(missing: str) -> None:
    res = evaluate_gate(SPEC, {"b": QueryResult.unavailable(missing)}, {})
    assert backend_failure(res) == f"blocker b: {missing}"
    assert res.decision == "hold"  # what the operator does with it


@pytest.mark.parametrize("missing", ["empty vector", "NaN", "several series (2) where one was expected"])
def test_missing_data_is_not_a_backend_failure(missing: str) -> None:
    assert backend_failure(evaluate_gate(SPEC, {"b": QueryResult.unavailable(missing)}, {})) is None


# --------------------------------------------------------------------------- exit 2 before any query


@pytest.fixture
def gate_file(tmp_path: Path) -> Path:
    p = tmp_path / "gate.yaml"
    p.write_text(FULL)
    return p


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


# A port nothing listens on: these must fail on input before contacting it.
NOWHERE = "http://127.0.0.1:9"


def test_check_bad_yaml_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text(FULL.replace("gte: 1", "gte: lots"))
    code, out, err = run("check", "-f", str(p), "--prometheus", NOWHERE)
    assert code == 2 and out == ""
    assert "spec.blockers[0].target.gte" in err and len(err.strip().splitlines()) == 1


def test_check_unbound_variable_exits_2(gate_file: Path) -> None:
    code, _, err = run("check", "-f", str(gate_file), "--prometheus", NOWHERE)
    assert code == 2 and "blocker ok: variable $canary is used but not bound" in err


def test_check_bad_var_exits_2(gate_file: Path) -> None:
    code, _, err = run("check", "-f", str(gate_file), "--prometheus", NOWHERE, "--var", "canary")
    assert code == 2 and "expected name=value" in err


def test_check_injection_outside_literal_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text(FULL.replace('sum(up{version="$canary"})', "sum(up_$canary)"))
    code, _, err = run("check", "-f", str(p), "--prometheus", NOWHERE, "--var", "canary=x) or vector(1")
    assert code == 2 and "$canary" in err


def test_check_missing_file_exits_2() -> None:
    code, _, _ = run("check", "-f", "/nonexistent/gate.yaml", "--prometheus", NOWHERE)
    assert code == 2


def test_backtest_bad_range_exits_2(gate_file: Path) -> None:
    code, _, err = run("backtest", "-f", str(gate_file), "--prometheus", NOWHERE, "--var", "canary=v2",
                       "--from", "now", "--to", "-1h")
    assert code == 2 and "--to must be after --from" in err


@pytest.mark.parametrize("value", ["0s", "30", "soon"])
@pytest.mark.parametrize("command", ["check", "backtest"])
def test_a_bad_scrape_interval_exits_2(gate_file: Path, command: str, value: str) -> None:
    since = ("--from", "-1h") if command == "backtest" else ()
    code, out, err = run(command, "-f", str(gate_file), "--prometheus", NOWHERE, "--var", "canary=v2", *since,
                         "--scrape-interval", value)
    assert code == 2 and out == "" and "--scrape-interval" in err


def test_help_says_hold_is_not_a_pass() -> None:
    code, out, _ = run("check", "--help")
    assert code == 0 and "not a pass" in out
