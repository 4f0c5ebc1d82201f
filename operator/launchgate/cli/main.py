"""`launchgate`: the gate-check.sh of the AI Agent Production Deployment Checklist done properly,
plus a backtester.

    launchgate check -f gate.yaml --prometheus http://prometheus:9090 --var canary=v2 --var stable=v1
    launchgate backtest -f gate.yaml --prometheus URL --from -6h --to now --step 10m

`main` is a click group; other modules add their subcommands with `main.add_command(...)`.
Exit codes are the CI contract: 0 allow, 1 block or hold (a hold is not a pass), 2 bad input,
Prometheus unusable or a query that can never succeed (the gate could not be judged at all).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from pydantic import ValidationError

from launchgate import __version__
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.api import LaunchGateSpec, validation_message
from launchgate.config import env_name
from launchgate.core.durations import parse_duration
from launchgate.core.engine import CALLER_VARIABLES, evaluate, render_gate
from launchgate.core.engine import backtest as run_backtest
from launchgate.core.freshness import default_freshness
from launchgate.core.gates import BlockerResult, GateResult, contract_json, spec_problems
from launchgate.core.promql import TemplateError

EXIT_ALLOW, EXIT_BLOCK, EXIT_BAD_INPUT = 0, 1, 2


class InputError(Exception):
    """Bad input from the user (file, flags): exit 2 with this one-line message."""


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class GateDoc:
    name: str
    namespace: str | None
    spec: LaunchGateSpec


def load_gates(text: str, default_name: str = "gate") -> list[GateDoc]:
    """Every LaunchGate in a YAML text: full objects (kind: LaunchGate) or a bare spec.

    Other kinds in a multi-document file (an AgentRollout next to its gates) are skipped.
    InputError names the document and the field.
    """
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {' '.join(str(e).split())}") from None
    gates: list[GateDoc] = []
    for i, doc in enumerate(docs):
        where = f"document {i + 1}: " if len(docs) > 1 else ""
        if not isinstance(doc, dict):
            raise InputError(f"{where}expected a mapping (a LaunchGate or its spec), got {type(doc).__name__}")
        if "kind" in doc or "apiVersion" in doc:
            if doc.get("kind") != "LaunchGate":
                continue
            meta = doc.get("metadata") or {}
            if not isinstance(meta, dict):
                raise InputError(f"{where}metadata: expected a mapping")
            raw_spec, prefix = doc.get("spec"), "spec"
            if raw_spec is None:
                raise InputError(f"{where}spec: field required")
            name = str(meta.get("name") or default_name)
            namespace = meta.get("namespace")
        else:
            raw_spec, prefix, name, namespace = doc, "", default_name, None
        try:
            spec = LaunchGateSpec.model_validate(raw_spec)
        except ValidationError as e:
            raise InputError(f"{where}{validation_message(e, prefix)}") from None
        problems = spec_problems(spec)
        if problems:
            msg = problems[0] if prefix else problems[0].removeprefix("spec.")
            raise InputError(f"{where}{msg}")
        gates.append(GateDoc(name, str(namespace) if namespace else None, spec))
    if not gates:
        raise InputError("no LaunchGate found in the file")
    return gates


def pick_gate(gates: Sequence[GateDoc], name: str | None) -> GateDoc:
    if name is not None:
        for g in gates:
            if g.name == name:
                return g
        raise InputError(f"no LaunchGate named {name!r} (found: {', '.join(g.name for g in gates)})")
    if len(gates) > 1:
        raise InputError(f"the file holds {len(gates)} gates ({', '.join(g.name for g in gates)}): pick one with --name")
    return gates[0]


_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Names a caller may not set, and why: the engine binds them itself (see engine.CALLER_VARIABLES).
_DERIVED = {
    "version": "$version takes the canary's version (and the stable's for a baseline): set canary=... "
               "and stable=... instead",
    "window": "$window is the gate's own spec.window",
}


def parse_vars(items: Iterable[str]) -> dict[str, str]:
    """`k=v` pairs; values may contain '=' (everything after the first '=' is the value).

    Only the variables a gate's queries can be given are accepted: a misspelt name would otherwise
    be ignored, and the gate judged with the value it was meant to replace (or none)."""
    out: dict[str, str] = {}
    known = f"(known: {', '.join(CALLER_VARIABLES)})"
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _VAR.match(key):
            raise InputError(f"--var {item!r}: expected name=value, e.g. --var canary=v2")
        if key in _DERIVED:
            raise InputError(f"--var {key}: {_DERIVED[key]} {known}")
        if key not in CALLER_VARIABLES:
            raise InputError(f"--var {key}: unknown variable {known}")
        out[key] = value
    return out


_RELATIVE = re.compile(r"^(?:now)?\s*([+-])\s*((?:[0-9]+(?:ms|s|m|h|d))+)$")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """RFC3339, a Unix timestamp, `now`, or relative to now: `-3h`, `now-90m`, `-1h30m`, `-2d`."""
    now = now or datetime.now(UTC)
    t = text.strip()
    if t == "now":
        return now
    m = _RELATIVE.match(t)
    if m:
        sign, amount = m.groups()
        days = 0
        dm = re.match(r"^([0-9]+)d(.*)$", amount)
        if dm:
            days, amount = int(dm.group(1)), dm.group(2)
        seconds = days * 86400 + (parse_duration(amount) if amount else 0)
        delta = timedelta(seconds=seconds)
        return now - delta if sign == "-" else now + delta
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", t):
        return datetime.fromtimestamp(float(t), UTC)
    try:
        parsed = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"invalid time {text!r}: use RFC3339 (2026-04-01T12:00:00Z), now, or e.g. -3h") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def backend_failure(result: GateResult) -> str | None:
    """Why the gate could not be judged at all, if so: Prometheus unreachable, too slow, not
    Prometheus (a wrong URL or base path), or refusing a query (parse or execution error). Waiting
    cannot fix any of these, so they are exit 2; missing data (empty, NaN) is a hold, exit 1."""
    for b in result.blockers:
        if b.error is not None:
            return f"blocker {b.name}: {b.error}"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- commands


def _fail(message: str) -> NoReturn:
    click.echo(f"launchgate: {_one_line(message)}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="launchgate")
def main() -> None:
    """launchgate: AI agents reach production only through gates that can fail a release."""


class Seconds(click.ParamType):
    """A positive, finite number of seconds: 0, a negative number or NaN would make every query
    fail, which must be bad input (exit 2), not a hold."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"{value!r}: must be a positive number of seconds", param, ctx)
        return seconds


class Duration(click.ParamType):
    """A positive duration such as 15s or 1m, in seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if not seconds > 0:
            self.fail(f"{value!r}: must be a positive duration", param, ctx)
        return seconds


def _common(f: Any) -> Any:
    options = [
        click.option("-f", "--file", "path", required=True, type=click.Path(dir_okay=False, allow_dash=True),
                     help="LaunchGate YAML (a full object, several, or just a spec); - for stdin."),
        click.option("--name", default=None, help="Which LaunchGate, when the file holds several."),
        click.option("--prometheus", "url", required=True, envvar=env_name("prometheus_url"),
                     help=f"Prometheus base URL [env {env_name('prometheus_url')}]."),
        click.option("--var", "var_items", multiple=True, metavar="NAME=VALUE",
                     help="Template variable: canary, stable, namespace, rollout, policy (repeatable). Overrides the "
                     "gate's spec.variables; namespace defaults to the gate's metadata.namespace."),
        click.option("--token", envvar=env_name("prometheus_token"), default=None,
                     help=f"Bearer token for Prometheus [env {env_name('prometheus_token')}]."),
        click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="CA bundle for a TLS Prometheus."),
        click.option("--insecure-skip-verify", is_flag=True, help="Do not verify Prometheus' TLS certificate."),
        click.option("--timeout", type=Seconds(), default=10.0, show_default=True,
                     help="Seconds one query may take, from connecting to the last byte of the answer."),
        click.option("--scrape-interval", "scrape_interval", type=Duration(), default="30s", show_default=True,
                     envvar=env_name("scrape_interval"),
                     help="How often Prometheus scrapes the canary: a blocker's value counts only while the "
                     "canary's newest sample is at most twice this old, unless the gate sets freshness "
                     f"[env {env_name('scrape_interval')}]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _deadline_option(default: float) -> Any:
    return click.option(
        "--deadline", type=Seconds(), default=default, show_default=True,
        help="Seconds the whole command may take, all queries included; a query never runs past it "
        "and none is sent after it (then exit 2).",
    )


def _prepare(path: str, name: str | None, var_items: Sequence[str]) -> tuple[GateDoc, dict[str, str]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    default_name = "gate" if path == "-" else Path(path).stem
    gate = pick_gate(load_gates(text, default_name), name)
    given = parse_vars(var_items)
    # As the operator evaluates a gate on its own: its namespace, then its spec.variables; --var
    # then plays the part of a rollout that uses the gate and supplies its own values.
    variables = {"namespace": gate.namespace} if gate.namespace else {}
    variables.update(gate.spec.variables)
    variables.update(given)
    render_gate(gate.spec, variables)  # every template problem is bad input, before any query
    return gate, variables


def _source(url: str, token: str | None, ca_file: str | None, insecure: bool, timeout: float,
            deadline: float) -> PrometheusSource:
    return PrometheusSource(url, bearer_token=token, ca_file=ca_file, insecure_skip_verify=insecure, timeout=timeout,
                            deadline=deadline)


@main.command()
@_common
@_deadline_option(60.0)
@click.option("--at", "at_text", default=None, help="Evaluate at this time instead of now (RFC3339 or -1h).")
def check(
    path: str,
    name: str | None,
    url: str,
    var_items: tuple[str, ...],
    token: str | None,
    ca_file: str | None,
    insecure_skip_verify: bool,
    timeout: float,
    scrape_interval: float,
    deadline: float,
    at_text: str | None,
) -> None:
    """Evaluate one gate now and print its contract JSON.

    \b
    Exit status:
      0 allow.
      1 block, or hold: missing data (an empty result, NaN, a series
        absent, a canary whose newest sample is older than twice
        --scrape-interval or the gate's freshness) holds, and a hold is
        not a pass, so CI must not promote on it; the data may still come.
      2 Prometheus is unusable or a query can never succeed: bad input
        (YAML, schema, template variables, --timeout), Prometheus
        unreachable or too slow (--timeout, --deadline), not Prometheus
        (a wrong URL or base path), or a query it refuses (a parse or
        execution error). Waiting does not fix these.

    The reason is one line on stderr. The contract JSON on stdout is a
    verdict: it is printed with exit 0 and 1 only, never with 2.
    """
    ends = time.monotonic() + deadline
    try:
        gate, variables = _prepare(path, name, var_items)
        at = parse_time(at_text) if at_text else None
    except (InputError, TemplateError, ValueError) as e:
        _fail(str(e))
    source = _source(url, token, ca_file, insecure_skip_verify, timeout, ends)
    evaluated_at = at or datetime.now(UTC)
    result = evaluate(gate.spec, source, variables, at=at, freshness=default_freshness(scrape_interval))
    failure = backend_failure(result)
    if failure:
        _fail(failure)
    click.echo(json.dumps(contract_json(gate.spec, result, gate.name, evaluated_at), indent=2))
    if result.decision == "allow":
        click.echo(f"launchgate: {_one_line(result.message)}", err=True)
        sys.exit(EXIT_ALLOW)
    suffix = " (a hold is not a pass)" if result.decision == "hold" else ""
    click.echo(f"launchgate: {_one_line(result.message)}{suffix}", err=True)
    sys.exit(EXIT_BLOCK)


def transitions(rows: Sequence[tuple[datetime, GateResult]]) -> list[dict[str, Any]]:
    """Where the decision changed from one window to the next: where incidents began and ended."""
    out: list[dict[str, Any]] = []
    for (_, prev), (t, cur) in zip(rows, rows[1:], strict=False):
        if cur.decision != prev.decision:
            out.append({
                "at": _rfc3339(t),
                "from": prev.decision,
                "to": cur.decision,
                "failing": cur.failing,
                "missing": cur.missing,
                "message": cur.message,
            })
    return out


def backtest_json(gate: GateDoc, rows: Sequence[tuple[datetime, GateResult]], start: datetime, end: datetime,
                  step: timedelta) -> dict[str, Any]:
    window = timedelta(seconds=parse_duration(gate.spec.window))
    return {
        "gate": gate.name,
        "window": gate.spec.window,
        "from": _rfc3339(start),
        "to": _rfc3339(end),
        "step": f"{int(step.total_seconds())}s",
        "windows": [
            {
                "start": _rfc3339(t - window),
                "end": _rfc3339(t),
                "decision": r.decision,
                "passing": r.passing,
                "failing": r.failing,
                "missing": r.missing,
                "values": r.values(),
                "evidence": {b.name: b.evidence() for b in r.blockers if b.evidence()},
                "message": r.message,
            }
            for t, r in rows
        ],
        "transitions": transitions(rows),
    }


def _evidence_cell(b: BlockerResult) -> str:
    """' n = 40 [0, 0.088]': the evidence beside a value, for blockers that have it."""
    out = ""
    if b.judge is not None:
        out += f" {b.judge}"
    if b.n is not None:
        out += f" n = {b.n:.0f}" + (f" vs {b.baseline_n:.0f}" if b.baseline_n is not None else "")
    if b.interval is not None:
        out += f" [{b.interval[0]:.4g}, {b.interval[1]:.4g}]"
    return out


def _print_table(gate: GateDoc, rows: Sequence[tuple[datetime, GateResult]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{gate.name}: window {gate.spec.window}, {len(rows)} evaluations")
    table.add_column("window end (UTC)", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    table.add_column("passing", no_wrap=True)
    names = [b.name for b in gate.spec.blockers]
    for n in names:
        table.add_column(n, justify="right")
    style = {"allow": "green", "block": "bold red", "hold": "yellow"}
    for t, r in rows:
        cells = []
        for b in r.blockers:
            if b.missing:
                # The reason without its "; holds (onMissingData: ...)" tail: the colour says that.
                why = escape(b.reason.rsplit("; ", 1)[0])
                cells.append(f"[red]— {why} ✗[/red]" if b.blocking else f"[yellow]— {why}[/yellow]")
                continue
            v = "—" if b.value is None else f"{b.value:.6g}"
            v += _evidence_cell(b)
            if b.waiting:
                cells.append(f"[yellow]{v} (not enough evidence)[/yellow]")
                continue
            cells.append(v if b.passed else f"[red]{v} ✗[/red]")
        table.add_row(t.strftime("%Y-%m-%d %H:%M:%S"), f"[{style[r.decision]}]{r.decision}[/]", r.passing, *cells)
    console = Console()
    console.print(table)
    for tr in transitions(rows):
        what = ", ".join(tr["failing"] or tr["missing"]) or "all blockers pass"
        console.print(f"{tr['at']}: {tr['from']} -> {tr['to']} ({what})", highlight=False)


@main.command()
@_common
@_deadline_option(600.0)
@click.option("--from", "from_text", required=True,
              help="Time of the first evaluation (the end of the first window): RFC3339, Unix seconds, or "
              "relative like -6h.")
@click.option("--to", "to_text", default="now", show_default=True,
              help="Time of the last evaluation, if it falls on a step: RFC3339, Unix seconds, now or -1h.")
@click.option("--step", default=None, help="Distance between evaluations, e.g. 10m [default: the gate's window].")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def backtest(
    path: str,
    name: str | None,
    url: str,
    var_items: tuple[str, ...],
    token: str | None,
    ca_file: str | None,
    insecure_skip_verify: bool,
    timeout: float,
    scrape_interval: float,
    deadline: float,
    from_text: str,
    to_text: str,
    step: str | None,
    output: str,
) -> None:
    """Replay a gate over a past time range, window by window: what would it have decided?

    Each row is one evaluation at --from, --from + step, ... up to --to (the evaluation times of a
    Prometheus range query): the first row is the evaluation at --from. Each looks back over the
    gate's window from its time, exactly as a live evaluation at that moment would have; a held
    row shows why each missing blocker has no data. Decision changes are listed after the table
    (the first allow -> block is where an incident began). Exit status: 0 when the replay ran,
    2 on bad input, an unusable Prometheus or a query that can never succeed, as for check
    (nothing is printed on stdout then).

    A file holding an AgentRollout replays the whole rollout instead (the incident replay drill):
    its phases, gates and rollback triggers, decided window by window as the operator would have,
    up to the rollback (its window, trigger and the traffic it removes) or the last phase; --step
    defaults to the rollout's interval and --var canary=... stable=... name the revisions.
    """
    from launchgate.cli.drill import backtest_rollout, holds_rollout

    if holds_rollout(path):
        backtest_rollout(path, name, url, var_items, token, ca_file, insecure_skip_verify, timeout, scrape_interval,
                         deadline, from_text, to_text, step, output)
        return
    ends = time.monotonic() + deadline
    try:
        gate, variables = _prepare(path, name, var_items)
        now = datetime.now(UTC)
        start, end = parse_time(from_text, now), parse_time(to_text, now)
        step_td = timedelta(seconds=parse_duration(step or gate.spec.window))
        if end <= start:
            raise InputError("--to must be after --from")
        if (end - start) // step_td + 1 > 10_000:
            raise InputError("too many windows (more than 10000): use a larger --step")
    except (InputError, TemplateError, ValueError) as e:
        _fail(str(e))
    source = _source(url, token, ca_file, insecure_skip_verify, timeout, ends)
    rows = run_backtest(gate.spec, source, variables, start, end, step_td,
                        freshness=default_freshness(scrape_interval))
    for _, r in rows:
        failure = backend_failure(r)
        if failure:
            _fail(failure)
    if output == "json":
        click.echo(json.dumps(backtest_json(gate, rows, start, end, step_td), indent=2))
    else:
        _print_table(gate, rows)


if __name__ == "__main__":
    main()


def _register() -> None:
    """Subcommands that live in their own modules, so `launchgate --help` lists them all."""
    from launchgate.cli.checklist import checklist
    from launchgate.cli.policy import policy

    @main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def run(args: tuple[str, ...]) -> None:
        """Run the operator (see `launchgate run --help`)."""
        from launchgate.controller.main import main as run_main

        raise SystemExit(run_main(list(args)))

    main.add_command(policy)
    main.add_command(checklist)


_register()

