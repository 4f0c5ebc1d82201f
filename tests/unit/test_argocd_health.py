"""The Argo CD health checks (manifests/argocd) run by a real Lua interpreter.

Argo CD runs `resource.customizations.health.<group>_<kind>` scripts with gopher-lua, a Lua 5.1,
with the live object as the global `obj` and the script's returned table as the health. These
tests do the same with Debian's `lua5.1` (or a newer Lua when that is all there is) over:

* the fixture set in Argo CD's own format (launchgate.dev/<Kind>/health_test.yaml + testdata/),
  so the scripts and fixtures could go upstream into argo-cd's resource_customizations unchanged;
* statuses produced by the operator's real code (the rollout state machine and gate_status), so
  the scripts cannot drift from what the operator writes, and agree with kstatus (Flux).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_rollout_decide import spec as _spec

from kstatus import kstatus
from launchgate.api import AgentRolloutStatus, LaunchGateSpec
from launchgate.controller.gate_status import gate_status
from launchgate.core.gates import BlockerResult, GateResult, summarize
from launchgate.core.rollout import ApprovalVote, Observation, decide

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "manifests" / "argocd"
KINDS = ("AgentRollout", "LaunchGate")
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended"}


def _find_lua() -> str | None:
    # 5.1 first: it is the language gopher-lua implements, so 5.2+ features would be caught.
    for name in ("lua5.1", "lua5.4", "lua5.3", "lua"):
        path = shutil.which(name)
        if path:
            return path
    return None


LUA = _find_lua()
@pytest.fixture
def _lua() -> str:
    """The Lua interpreter; a missing one FAILS the test (like a missing control-plane binary)
    rather than skipping it, so a machine without Lua never reports a green run."""
    if LUA is None:
        pytest.fail("no Lua interpreter on PATH: run `make testenv` (it installs Debian's lua5.1, the Lua "
                    "version Argo CD's gopher-lua implements) or `apt-get install -y lua5.1`", pytrace=False)
    return LUA


needs_lua = pytest.mark.usefixtures("_lua")


def health_script(kind: str) -> Path:
    return ARGOCD / "launchgate.dev" / kind / "health.lua"


# --------------------------------------------------------------------------- Lua bridge


def lua_literal(value: Any) -> str:
    """A Lua expression for a JSON-like value, as Argo CD hands an object to the script: maps
    become tables with string keys, lists 1-based tables, JSON null nil. Strings are written
    byte by byte (\\ddd for anything but printable ASCII), which every Lua version reads alike."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):  # YAML timestamps; Argo sees RFC 3339 strings
        value = value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        return '"' + "".join(
            chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}" for b in value.encode()
        ) + '"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def run_health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) that Argo CD would show for obj."""
    assert LUA is not None
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = assert(loadfile({lua_literal(str(health_script(kind)))}))()\n"
        "assert(type(hs) == 'table', 'the script must return a table')\n"
        "assert(type(hs.status) == 'string', 'hs.status must be a string')\n"
        "assert(type(hs.message) == 'string', 'hs.message must be a string')\n"
        "io.write(hs.status, '\\0', hs.message)\n"
    )
    proc = subprocess.run([LUA, "-"], input=program.encode(), capture_output=True, timeout=30)
    assert proc.returncode == 0, f"{kind} health.lua failed: {proc.stderr.decode(errors='replace')}"
    status, _, message = proc.stdout.decode().partition("\0")
    assert status in ARGO_HEALTH, f"{status!r} is not an Argo CD health status"
    return status, message


# --------------------------------------------------------------------------- Argo CD fixture set


def _fixture_cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        spec = yaml.safe_load((ARGOCD / "launchgate.dev" / kind / "health_test.yaml").read_text())
        for t in spec["tests"]:
            cases.append(pytest.param(kind, t["inputPath"], t["healthStatus"], id=f"{kind}-{Path(t['inputPath']).stem}"))
    return cases


@needs_lua
@pytest.mark.parametrize(("kind", "input_path", "expected"), _fixture_cases())
def test_argocd_fixture(kind: str, input_path: str, expected: dict[str, str]) -> None:
    obj = yaml.safe_load((ARGOCD / "launchgate.dev" / kind / input_path).read_text())
    assert obj["kind"] == kind
    assert run_health(kind, obj) == (expected["status"], expected["message"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_has_an_expected_health(kind: str) -> None:
    base = ARGOCD / "launchgate.dev" / kind
    listed = {t["inputPath"] for t in yaml.safe_load((base / "health_test.yaml").read_text())["tests"]}
    present = {f"testdata/{p.name}" for p in (base / "testdata").glob("*.yaml")}
    assert listed == present
    statuses = {t["healthStatus"]["status"] for t in yaml.safe_load((base / "health_test.yaml").read_text())["tests"]}
    assert statuses <= ARGO_HEALTH


def test_argocd_cm_patch_carries_the_tested_scripts() -> None:
    """The argocd-cm patch users apply inlines the scripts; it must be exactly the tested files."""
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    expected = {f"resource.customizations.health.launchgate.dev_{k}": health_script(k).read_text() for k in KINDS}
    assert patch["data"] == expected, (
        "manifests/argocd/argocd-cm-patch.yaml differs from launchgate.dev/*/health.lua: "
        "paste each health.lua, indented by 4 spaces, under its key"
    )
    component = yaml.safe_load((ARGOCD / "kustomization.yaml").read_text())
    assert component["kind"] == "Component" and component["patches"] == [{"path": "argocd-cm-patch.yaml"}]


@pytest.mark.parametrize("kind", KINDS)
def test_scripts_use_nothing_argo_cd_sandboxes_away(kind: str) -> None:
    code = "\n".join(line.split("--", 1)[0] for line in health_script(kind).read_text().splitlines())
    for forbidden in ("os.", "io.", "require", "dofile", "loadfile", "loadstring", "goto ", "//"):
        assert forbidden not in code, f"{kind}/health.lua uses {forbidden!r}"


@needs_lua
def test_lua_literal_round_trips_awkward_values() -> None:
    text = 'quote " backslash \\ newline \n tab \t unicode é ✓ {[x]} ]] --'
    table = lua_literal({"s": text, "n": [1, 2.5], "b": False, "nothing": None})
    program = f"local t = {table}\nio.write(t.s, '|', #t.n, '|', tostring(t.n[2]), '|', tostring(t.b), '|', tostring(t.nothing))"
    out = subprocess.run([str(LUA), "-"], input=program.encode(), capture_output=True, timeout=30)
    assert out.stdout.decode() == f"{text}|2|2.5|false|nil", out.stderr.decode()


# --------------------------------------------------------------------------- the operator's own statuses

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _gate(decision: str) -> GateResult:
    b = BlockerResult(name="success_rate", target="gte 0.99", value=0.97 if decision == "block" else 0.995,
                      baseline_value=None, passed=decision == "allow", reason="r", missing=decision == "hold")
    return summarize([b])


def _obs(gates: str = "allow", **kw: Any) -> Observation:
    base: dict[str, Any] = dict(now=T0, revision="rev2", gates_hash="gh",
                                gates={g: _gate(gates) for g in ("replay", "canary1", "canary2", "general")})
    base.update(kw)
    return Observation(**base)


def _at(index: int, step: int = 0, **kw: Any) -> AgentRolloutStatus:
    names, weights = ["ReplayGate", "Canary1", "Canary2", "General"], [[0], [5], [25], [50, 100]]
    base: dict[str, Any] = dict(stable_revision="rev1", canary_revision="rev2", phase=names[index], phase_index=index,
                                step_index=step, canary_weight=weights[index][step], state="Progressing",
                                phase_started_at=T0 - timedelta(hours=1))
    base.update(kw)
    return AgentRolloutStatus(**base)


def _rollout_scenarios() -> dict[str, tuple[AgentRolloutStatus, str]]:
    """name -> (status from the real state machine, the Argo CD health it must map to)."""
    no_data_pause = _spec(failurePolicy={"maxConsecutiveNoData": 3, "action": "pause"})
    no_data_rollback = _spec(failurePolicy={"maxConsecutiveNoData": 3, "action": "rollback"})
    rolling_back = decide(no_data_rollback, _at(1, consecutive_no_data=2), _obs("hold")).status
    awaiting = decide(_spec(), _at(3), _obs()).status
    votes = [ApprovalVote(approver=w, decision="approve", created=T0) for w in ("alice", "bob")]
    at_100 = decide(_spec(), awaiting, _obs(votes=votes)).status
    routed_100 = decide(_spec(), at_100, _obs()).status
    finalizing = decide(_spec(), routed_100, _obs(now=T0 + timedelta(minutes=1))).status
    assert (routed_100.traffic_weight, finalizing.phase) == (100, "Finalizing")
    return {
        "initial-revision": (decide(_spec(), AgentRolloutStatus(), _obs(revision="rev1")).status, "Healthy"),
        "gates-blocking": (decide(_spec(), _at(1), _obs("block")).status, "Progressing"),
        "gates-holding": (decide(_spec(), _at(1), _obs("hold")).status, "Progressing"),
        "promoted-a-step": (decide(_spec(), _at(1), _obs()).status, "Progressing"),
        "awaiting-approval": (awaiting, "Suspended"),
        "approved-to-100": (at_100, "Progressing"),
        "finalizing": (finalizing, "Progressing"),
        "completed": (decide(_spec(), finalizing, _obs()).status, "Healthy"),
        "paused-by-spec": (decide(_spec(paused=True), _at(2), _obs()).status, "Suspended"),
        "paused-for-missing-data": (decide(no_data_pause, _at(1, consecutive_no_data=2), _obs("hold")).status,
                                    "Degraded"),
        "rolling-back": (rolling_back, "Degraded"),
        "rolled-back": (decide(_spec(), rolling_back, _obs()).status, "Degraded"),
        "progress-deadline": (decide(_spec(progressDeadline="1h"), _at(1, phase_started_at=T0 - timedelta(hours=3)),
                                     _obs("block")).status, "Degraded"),
    }


def _rollout_obj(status: AgentRolloutStatus, generation: int = 3, observed: int | None = 3) -> dict[str, Any]:
    st = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    if observed is not None:
        st["observedGeneration"] = observed  # the reconciler adds it when it writes the status
    return {"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout",
            "metadata": {"name": "support-agent", "namespace": "agents", "generation": generation}, "status": st}


@needs_lua
@pytest.mark.parametrize("name", list(_rollout_scenarios()))
def test_rollout_health_of_real_statuses_agrees_with_kstatus(name: str) -> None:
    status, expected = _rollout_scenarios()[name]
    obj = _rollout_obj(status)
    health, message = run_health("AgentRollout", obj)
    assert health == expected, f"{name}: state {status.state}, {message}"
    assert message
    ks = kstatus(obj)
    # Degraded is kstatus' Failed; the one deliberate difference is a rollback in progress, which
    # kstatus calls InProgress and Argo CD shows red at once (as Argo Rollouts does for an abort).
    if status.state != "RollingBack":
        assert (health == "Degraded") == (ks == "Failed"), f"{name}: Argo {health}, kstatus {ks}"
    if health == "Healthy":
        assert ks == "Current" and any(c.type == "Ready" and c.status == "True" for c in status.conditions)
    # A status the operator has not caught up with is never reported as settled.
    stale = _rollout_obj(status, generation=4, observed=3)
    assert run_health("AgentRollout", stale)[0] == "Progressing" and kstatus(stale) == "InProgress"


def _launchgate_obj(decision: str, generation: int = 2) -> dict[str, Any]:
    spec = LaunchGateSpec.model_validate({
        "window": "10m", "owners": {"reliability": "sre-oncall"},
        "blockers": [{"name": "success_rate", "owner": "reliability", "query": "q", "target": {"gte": 0.99}}],
    })
    status = gate_status(spec, _gate(decision), generation, T0, rollout="support-agent", revision="rev2")
    return {"apiVersion": "launchgate.dev/v1alpha1", "kind": "LaunchGate",
            "metadata": {"name": "canary1", "namespace": "agents", "generation": generation}, "status": status}


@needs_lua
@pytest.mark.parametrize(("decision", "expected"), [("allow", "Healthy"), ("block", "Suspended"), ("hold", "Suspended")])
def test_gate_health_of_real_statuses(decision: str, expected: str) -> None:
    obj = _launchgate_obj(decision)
    health, message = run_health("LaunchGate", obj)
    assert health == expected
    assert message == obj["status"]["message"] and message.startswith(decision)
    stale = _launchgate_obj(decision)
    stale["metadata"]["generation"] = 3
    assert run_health("LaunchGate", stale)[0] == "Progressing"
