"""`launchgate checklist`: the AI Agent Production Deployment Checklist for one agent, as its table.

    launchgate checklist -f examples/checklist/checklist.yaml --prometheus URL \\
        --var rollout=support-agent --var canary=v2 --var stable=v1 --var policy=<hash>

The checklist is a LaunchGate whose blockers name their control; it is evaluated by the same
engine as `launchgate check`, then printed as the seed's 20 rows. Exit 1 when a launch-blocking
row (controls 1-6, 10, 13, 16, 17) does not pass, 0 otherwise, 2 as for check (bad input, or a
Prometheus that cannot answer). A row without data does not pass.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from launchgate.cli.main import (
    EXIT_ALLOW,
    EXIT_BLOCK,
    InputError,
    _common,
    _deadline_option,
    _fail,
    _prepare,
    _rfc3339,
    _source,
    backend_failure,
    parse_time,
)
from launchgate.core.checklist import Row, checklist_problems, launch_blocked, rows
from launchgate.core.engine import evaluate
from launchgate.core.freshness import default_freshness
from launchgate.core.hashing import policy_hash
from launchgate.core.promql import TemplateError


def _gate_namespace(path: str, name: str | None) -> str | None:
    """The checklist gate's own namespace, where --rollout looks for the rollout by default."""
    if path == "-":
        return None
    from launchgate.cli.main import load_gates, pick_gate

    try:
        return pick_gate(load_gates(Path(path).read_text()), name).namespace
    except OSError:
        return None


def _value(row: Row) -> str:
    if row.value is None:
        return "—"
    return f"{row.value:.4g}"


def _print_table(name: str, table: Sequence[Row], blocked: list[int]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Table(title=f"{name}: AI Agent Production Deployment Checklist (* blocks the launch)", show_lines=False)
    for column in ("#", "area", "control", "pass signal", "target", "value", "result", "owner"):
        out.add_column(column, overflow="fold")
    for r in table:
        c = r.control
        verdict = "[green]PASS[/green]" if r.passed else "[bold red]BLOCK[/bold red]"
        value = _value(r) if r.passed else f"{_value(r)} [dim]({escape(r.reason.rsplit('; ', 1)[0])})[/dim]"
        out.add_row(f"{c.number}{'*' if c.launch_blocking else ''}", c.area, c.control, c.pass_signal,
                    escape(r.target), value, verdict, escape(r.owner or "—"))
    console = Console()
    console.print(out)
    if blocked:
        console.print(f"launch blocked by control(s) {', '.join(map(str, blocked))}", highlight=False)


def rollout_variables(name: str, namespace: str, kubeconfig: str | None, context: str | None) -> list[str]:
    """--var items for an AgentRollout as the operator binds them: its namespace and name, the
    canary's revision (the stable's when no canary runs: the checklist then judges what serves),
    the stable's, and its policy's hash, computed from the policy text exactly as the operator
    mounts it. InputError when the rollout or its policy cannot be read."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    from launchgate import GROUP, VERSION
    from launchgate.api import AgentRolloutSpec

    try:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        api = client.ApiClient(cfg)
        custom: Any = client.CustomObjectsApi(api)
        obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "agentrollouts",
                                                                         name)
        spec = AgentRolloutSpec.model_validate(obj.get("spec"))
        status = obj.get("status") or {}
        stable = status.get("stableRevision")
        if not stable:
            raise InputError(f"--rollout {namespace}/{name}: no stable revision in its status yet")
        items = [f"namespace={namespace}", f"rollout={name}", f"stable={stable}",
                 f"canary={status.get('canaryRevision') or stable}"]
        if spec.policy is not None:
            if spec.policy.bundle is not None:
                text = yaml.safe_dump(spec.policy.bundle.model_dump(mode="json", by_alias=True, exclude_none=True),
                                      sort_keys=True)
            else:
                ref = spec.policy.config_map_ref
                assert ref is not None
                cm = client.CoreV1Api(api).read_namespaced_config_map(ref.name, namespace)
                data: dict[str, str] = cm.data or {}
                if ref.key not in data:
                    raise InputError(f"--rollout {namespace}/{name}: ConfigMap {ref.name} has no key {ref.key}")
                text = data[ref.key]
            items.append(f"policy={policy_hash(text)}")
        return items
    except ApiException as e:
        raise InputError(f"--rollout {namespace}/{name}: {e.status} {e.reason}") from None
    except config.ConfigException as e:
        raise InputError(f"--rollout: no usable kubeconfig: {e}") from None


@click.command()
@_common
@_deadline_option(60.0)
@click.option("--at", "at_text", default=None, help="Evaluate at this time instead of now (RFC3339 or -1h).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--rollout", "rollout", default=None,
              help="Judge this AgentRollout: its namespace, name, revisions and policy hash bind the variables "
              "(--var still overrides). Read from the cluster of --kubeconfig.")
@click.option("--kubeconfig", default=None, envvar="KUBECONFIG", help="Kubeconfig for --rollout [env KUBECONFIG].")
@click.option("--context", default=None, help="Kubeconfig context for --rollout.")
def checklist(
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
    output: str,
    rollout: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Evaluate the checklist for one agent and print its 20 rows.

    The file is a LaunchGate whose blockers name the control they judge
    (`control: 1..20`, see examples/checklist/). Bind the agent with
    --var: namespace, rollout (its pods, Secrets, NetworkPolicy),
    canary and stable (its versions), policy (the approved bundle hash);
    or name an AgentRollout with --rollout, which binds them all.

    \b
    Exit status:
      0 every launch-blocking row passes (controls 1-6, 10, 13, 16, 17).
      1 a launch-blocking row does not pass; missing data never passes.
      2 bad input or a Prometheus that cannot answer, as for check.
    """
    ends = time.monotonic() + deadline
    try:
        if rollout is not None:
            given = dict(item.partition("=")[::2] for item in var_items)
            namespace = given.get("namespace") or _gate_namespace(path, name)
            if not namespace:
                raise InputError("--rollout: set --var namespace=... (the gate file names none)")
            var_items = (*rollout_variables(rollout, namespace, kubeconfig, context), *var_items)
        gate, variables = _prepare(path, name, var_items)
        problems = checklist_problems(gate.spec)
        if problems:
            raise InputError(problems[0])
        at = parse_time(at_text) if at_text else None
    except (InputError, TemplateError, ValueError) as e:
        _fail(str(e))
    source = _source(url, token, ca_file, insecure_skip_verify, timeout, ends)
    evaluated_at = at or datetime.now(UTC)
    result = evaluate(gate.spec, source, variables, at=at, freshness=default_freshness(scrape_interval))
    failure = backend_failure(result)
    if failure:
        _fail(failure)
    table = rows(gate.spec, result)
    blocked = launch_blocked(table)
    if output == "json":
        click.echo(json.dumps({
            "checklist": gate.name,
            "decision": "block" if blocked else "allow",
            "launchBlockedBy": blocked,
            "passing": f"{sum(r.passed for r in table)}/{len(table)}",
            "rows": [r.to_json() for r in table],
            "evaluatedAt": _rfc3339(evaluated_at),
        }, indent=2))
    else:
        _print_table(gate.name, table, blocked)
    sys.exit(EXIT_BLOCK if blocked else EXIT_ALLOW)
