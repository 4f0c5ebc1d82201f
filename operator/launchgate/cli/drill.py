"""`launchgate backtest` of a whole AgentRollout: the incident replay drill (checklist control 20).

    launchgate backtest -f rollout-and-gates.yaml --prometheus URL --var canary=v2 --var stable=v1 \\
        --from 2026-04-01T10:00:00Z --to 2026-04-01T11:00:00Z

When the file holds an AgentRollout, `backtest` replays the rollout rather than one gate: its
phases, gates and rollback triggers, window by window, decided by the operator's own state machine
(see core/drill.py): when it would have stopped, which trigger, which traffic it would have removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from launchgate.api import AgentRolloutSpec, validation_message
from launchgate.cli.main import InputError, _fail, _rfc3339, _source, load_gates, parse_time, parse_vars
from launchgate.core.drill import ASSUMED, Replay, replay_rollout
from launchgate.core.durations import parse_duration
from launchgate.core.engine import render_gate, render_trigger
from launchgate.core.freshness import default_freshness
from launchgate.core.promql import TemplateError


def holds_rollout(path: str) -> bool:
    """Whether the file names an AgentRollout (then backtest replays the rollout). A file that
    cannot be read or parsed is left to the gate path, which reports it."""
    if path == "-":
        return False
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text()))
    except (OSError, yaml.YAMLError):
        return False
    return any(isinstance(d, dict) and d.get("kind") == "AgentRollout" for d in docs)


def _load(path: str, name: str | None) -> tuple[str, str | None, AgentRolloutSpec, dict[str, Any]]:
    text = Path(path).read_text()
    rollouts = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == "AgentRollout"]
    if name is not None:
        rollouts = [d for d in rollouts if (d.get("metadata") or {}).get("name") == name]
        if not rollouts:
            raise InputError(f"no AgentRollout named {name!r} in the file")
    if len(rollouts) > 1:
        raise InputError(f"the file holds {len(rollouts)} AgentRollouts: pick one with --name")
    doc = rollouts[0]
    meta = doc.get("metadata") or {}
    try:
        spec = AgentRolloutSpec.model_validate(doc.get("spec"))
    except ValidationError as e:
        raise InputError(validation_message(e, "spec")) from None
    try:
        gates = {g.name: g.spec for g in load_gates(text)}
    except InputError as e:
        if "no LaunchGate found" not in str(e):
            raise
        gates = {}
    return str(meta.get("name") or "rollout"), meta.get("namespace"), spec, gates


def replay_json(name: str, replay: Replay, start: datetime, end: datetime, step: timedelta) -> dict[str, Any]:
    return {
        "rollout": name,
        "from": _rfc3339(start),
        "to": _rfc3339(end),
        "step": f"{int(step.total_seconds())}s",
        "assumed": list(ASSUMED),
        "outcome": replay.outcome,
        "rollback": None if replay.outcome != "rollback" else {
            "at": _rfc3339(replay.rollback_at) if replay.rollback_at else None,
            "phase": replay.phase,
            "trigger": replay.trigger,
            "trafficRemoved": replay.traffic_removed,
            "reason": replay.reason,
        },
        "windows": [{"end": _rfc3339(w.end), "phase": w.phase, "weight": w.weight, "decision": w.decision,
                     "reason": w.reason, "gates": w.gates, "fired": w.fired, "values": w.values}
                    for w in replay.windows],
    }


def _print(name: str, replay: Replay) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{name}: rollout replay, {len(replay.windows)} decisions")
    for column in ("decision time (UTC)", "phase", "weight", "decision", "gates", "reason"):
        table.add_column(column, overflow="fold")
    style = {"rollback": "bold red", "promote": "green", "hold": "yellow", "await_approval": "yellow"}
    for w in replay.windows:
        gates = ", ".join(f"{g}: {v}" for g, v in w.gates.items())
        table.add_row(w.end.strftime("%Y-%m-%d %H:%M:%S"), w.phase, f"{w.weight}%",
                      f"[{style.get(w.decision, 'white')}]{w.decision}[/]", escape(gates), escape(w.reason))
    console = Console()
    console.print(table)
    if replay.outcome == "rollback" and replay.rollback_at is not None:
        what = f"trigger {replay.trigger}" if replay.trigger else "its gates"
        console.print(f"rolled back at {_rfc3339(replay.rollback_at)} in {replay.phase} by {what}: "
                      f"{replay.traffic_removed}% of traffic taken off the canary", highlight=False)
    else:
        console.print(f"{replay.outcome}: {replay.reason}", highlight=False)
    console.print("assumed: " + "; ".join(ASSUMED), highlight=False)


def backtest_rollout(path: str, name: str | None, url: str, var_items: Sequence[str], token: str | None,
                     ca_file: str | None, insecure: bool, timeout: float, scrape_interval: float, deadline: float,
                     from_text: str, to_text: str, step: str | None, output: str) -> None:
    """The `backtest` command for a file holding an AgentRollout (see the module docstring)."""
    ends = time.monotonic() + deadline
    try:
        rollout, namespace, spec, gates = _load(path, name)
        variables: dict[str, str] = {"rollout": rollout, **({"namespace": namespace} if namespace else {})}
        variables.update(parse_vars(var_items))
        missing = [v for v in ("canary", "stable") if v not in variables]
        if missing:
            raise InputError("a rollout replay judges one canary against one stable: set "
                             + " and ".join(f"--var {v}=..." for v in missing))
        for gate in gates.values():
            render_gate(gate, variables)
        for phase in spec.effective_phases():
            for trigger in phase.rollback_triggers:
                render_trigger(trigger, variables)
        now = datetime.now(UTC)
        start, end = parse_time(from_text, now), parse_time(to_text, now)
        step_td = timedelta(seconds=parse_duration(step or spec.interval))
        if end <= start:
            raise InputError("--to must be after --from")
        if (end - start) // step_td + 1 > 10_000:
            raise InputError("too many windows (more than 10000): use a larger --step")
    except (InputError, TemplateError, ValueError) as e:
        _fail(str(e))
    source = _source(url, token, ca_file, insecure, timeout, ends)
    replay = replay_rollout(spec, gates, source, variables, start, end, step_td,
                            freshness=default_freshness(scrape_interval))
    if replay.errors:
        _fail(replay.errors[0])
    if output == "json":
        click.echo(json.dumps(replay_json(rollout, replay, start, end, step_td), indent=2))
    else:
        _print(rollout, replay)
