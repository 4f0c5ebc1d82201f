"""`kubectl launchgate`: status, approve, reject, promote, abort, retry, and a read-only dashboard.

Every verb that changes something creates an object (Approval or RolloutAction) as the calling
user; the API server's admission policy checks that the named approver or actor is that user, so
the timeline's "who" is what Kubernetes authenticated, not what someone typed.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from rich.console import Console
from rich.table import Table

from launchgate import GROUP, VERSION
from launchgate.config import env_name

console = Console()


class Ctx:
    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        self.api = client.ApiClient(cfg)
        self.custom: Any = client.CustomObjectsApi(self.api)
        if namespace is None:
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
                active = next((c for c in contexts if c["name"] == context), active)
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
        self.ns = namespace

    def get(self, plural: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)
            return obj
        except ApiException as e:
            raise click.ClickException(f"{plural[:-1]} {self.ns}/{name}: {_reason(e)}") from None

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)
            return obj
        except ApiException as e:
            raise click.ClickException(_reason(e)) from None

    def whoami(self) -> tuple[str, list[str]]:
        """The user as the API server authenticates it (SelfSubjectReview), never a local guess."""
        auth: Any = client.AuthenticationV1Api(self.api)
        review = auth.create_self_subject_review({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        info = review.status.user_info
        return str(info.username), list(info.groups or [])


def _reason(e: ApiException) -> str:
    import json

    try:
        return str(json.loads(e.body or "").get("message", e.reason))
    except (ValueError, TypeError, AttributeError):
        return f"{e.status} {e.reason}"


def _ns_option(f: Any) -> Any:
    """`-n` also after the verb, as kubectl users type it: `kubectl launchgate approve x -n agents`."""
    def remember(ctx: click.Context, _: Any, value: str | None) -> None:
        if value is not None:
            ctx.find_root().meta["namespace"] = value
    return click.option("-n", "--namespace", "ns_after", default=None, expose_value=False, callback=remember,
                        help="Namespace.")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="Path to the kubeconfig.")
@click.option("--context", default=None, help="Kubeconfig context (i.e. who you are).")
@click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
@click.pass_context
def main(ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Inspect and steer launchgate AgentRollouts."""
    if kubeconfig and ":" in kubeconfig:
        kubeconfig = kubeconfig.split(":")[0]
    ctx.obj = lambda: Ctx(kubeconfig, context, ctx.meta.get("namespace") or namespace)
    ctx.meta["kube"] = (kubeconfig, context, namespace)


@main.command()
@click.argument("rollout")
@_ns_option
@click.pass_obj
def status(make: Any, rollout: str) -> None:
    """Phase, weights, each gate's blockers and the pending approval."""
    c: Ctx = make()
    obj = c.get("agentrollouts", rollout)
    st = obj.get("status") or {}
    w = st.get("canaryWeight") or 0
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Rollout", f"{c.ns}/{rollout}")
    head.add_row("Phase", f"{st.get('phase', '-')}  ({st.get('state', '-')})")
    routed = st.get("trafficWeight", w) or 0
    head.add_row("Weights", f"stable {100 - routed}%  canary {routed}%"
                 + (f"  (canary {w}% once its pods are available)" if routed != w else ""))
    head.add_row("Revisions", f"stable {st.get('stableRevision', '-')}  canary {st.get('canaryRevision') or '-'}")
    head.add_row("Decision", f"{st.get('decision') or '-'}: {st.get('message') or ''}")
    console.print(head)

    phases = (obj.get("spec") or {}).get("phases") or []
    idx = st.get("phaseIndex")
    gates = phases[idx].get("gates", []) if idx is not None and idx < len(phases) else []
    for g in gates:
        try:
            gs = c.get("launchgates", g).get("status") or {}
        except click.ClickException as e:
            console.print(f"[red]gate {g}: {e.message}[/]")
            continue
        t = Table(title=f"gate {g}: {gs.get('decision', '-')} ({gs.get('passing', '-')})", title_justify="left")
        for col in ("blocker", "target", "value", "baseline", "n", "interval", "pass", "reason"):
            t.add_column(col)
        for b in gs.get("blockers", []):
            t.add_row(b["name"], b.get("target", ""), _num(b.get("value")), _num(b.get("baselineValue")),
                      _samples(b), _interval(b), _verdict(b), b.get("reason", ""))
        console.print(t)

    pending = st.get("pendingApproval")
    if pending:
        console.print(f"[bold]Pending approval[/] {pending['requestId']} for {pending['phase']}: "
                      f"{len(pending.get('approvedBy', []))}/{pending['approversRequired']} from group "
                      f"{pending['group']} (approved by: {', '.join(pending.get('approvedBy', [])) or 'nobody yet'})")
    hist = st.get("history") or []
    if hist:
        t = Table(title="recent decisions", title_justify="left")
        for col in ("at", "decision", "phase", "reason"):
            t.add_column(col)
        for h in hist[-8:]:
            t.add_row(h.get("at", ""), h.get("decision", ""), h.get("phase", ""), h.get("reason", ""))
        console.print(t)


def _samples(b: dict[str, Any]) -> str:
    """n of the canary (and of the stable, when compared with it)."""
    if b.get("samples") is None:
        return "-"
    n = _num(b["samples"])
    return n if b.get("baselineSamples") is None else f"{n} vs {_num(b['baselineSamples'])}"


def _interval(b: dict[str, Any]) -> str:
    iv = b.get("interval")
    shown = f"[{_num(iv[0])}, {_num(iv[1])}]" if isinstance(iv, list) and len(iv) == 2 else "-"
    return f"{b['judge']} {shown}" if b.get("judge") else shown


def _verdict(b: dict[str, Any]) -> str:
    if b.get("pass"):
        return "[green]yes[/]"
    if str(b.get("reason", "")).startswith("not enough evidence"):
        return "[yellow]not yet[/]"
    return "[red]no[/]"


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _vote(c: Ctx, rollout: str, decision: str, comment: str | None) -> None:
    st = c.get("agentrollouts", rollout).get("status") or {}
    pending = st.get("pendingApproval")
    if not pending:
        raise click.ClickException(f"{rollout} has no pending approval request (state: {st.get('state')})")
    user, _ = c.whoami()
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Approval",
        "metadata": {"generateName": f"{rollout}-{decision}-", "labels": {"launchgate.dev/rollout": rollout}},
        "spec": {"rollout": rollout, "requestId": pending["requestId"], "revision": pending["revision"],
                 "gatesHash": pending["gatesHash"], "decision": decision, "approver": user,
                 "group": pending["group"], **({"comment": comment} if comment else {})},
    }
    made = c.create("approvals", body)
    click.echo(f"{decision}d {rollout} request {pending['requestId']} as {user}: approval/{made['metadata']['name']}")


@main.command()
@click.argument("rollout")
@_ns_option
@click.option("-m", "--comment", default=None)
@click.pass_obj
def approve(make: Any, rollout: str, comment: str | None) -> None:
    """Approve the pending request (bound to its revision and gates hash)."""
    _vote(make(), rollout, "approve", comment)


@main.command()
@click.argument("rollout")
@_ns_option
@click.option("-m", "--comment", default=None)
@click.pass_obj
def reject(make: Any, rollout: str, comment: str | None) -> None:
    """Reject the pending request: the canary is rolled back."""
    _vote(make(), rollout, "reject", comment)


def _act(make: Any, rollout: str, action: str, reason: str | None) -> None:
    c: Ctx = make()
    c.get("agentrollouts", rollout)
    user, _ = c.whoami()
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RolloutAction",
        "metadata": {"generateName": f"{rollout}-{action}-", "labels": {"launchgate.dev/rollout": rollout}},
        "spec": {"rollout": rollout, "action": action, "actor": user, **({"reason": reason} if reason else {})},
    }
    made = c.create("rolloutactions", body)
    click.echo(f"{action} requested for {rollout} by {user} at "
               f"{datetime.now(UTC).isoformat(timespec='seconds')}: rolloutaction/{made['metadata']['name']}")


for _verb, _help in (("promote", "Promote now, skipping the wait (recorded with your name)."),
                     ("abort", "Roll the canary back now."),
                     ("retry", "Start a rolled-back revision again from the first phase.")):
    def _make(verb: str) -> Any:
        @click.argument("rollout")
        @_ns_option
        @click.option("-m", "--reason", default=None)
        @click.pass_obj
        def cmd(make: Any, rollout: str, reason: str | None) -> None:
            _act(make, rollout, verb, reason)
        return cmd
    main.command(name=_verb, help=_help)(_make(_verb))


@main.command()
@_ns_option
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Loopback address to serve on (127.0.0.0/8 or localhost only).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to serve on; 0 picks a free one.")
@click.option("--prometheus", "prometheus_url", envvar=env_name("prometheus_url"), default=None,
              help=f"Prometheus base URL for the blockers' plots [env {env_name('prometheus_url')}]; "
                   "without it the pages show no plots.")
@click.option("--prometheus-token", envvar=env_name("prometheus_token"), default=None,
              help=f"Bearer token for Prometheus [env {env_name('prometheus_token')}].")
@click.option("--prometheus-ca-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="CA bundle for a TLS Prometheus.")
@click.pass_context
def dashboard(ctx: click.Context, address: str, port: int, prometheus_url: str | None,
              prometheus_token: str | None, prometheus_ca_file: str | None) -> None:
    """Serve a read-only web dashboard on this machine and print its URL.

    \b
    The overview lists rollouts (phase, traffic, state, decision and its
    reason, time in phase, pending approvals) in one namespace or all you
    may list; a rollout's page shows its phases, each gate's contract, the
    decision timeline and each blocker's value over time from Prometheus.
    Pages update live from API server watches. Every read is made with your
    kubeconfig's credentials, so the API server's RBAC decides what you see.
    Nothing is opened by itself and nothing is written: approve and act with
    the other verbs. Opens on the namespace of -n, else on all namespaces.
    Needs the dashboard extra: pip install 'launchgate[dashboard]'.
    """
    try:
        from launchgate.adapters.prometheus import PrometheusSource
        from launchgate.cli.dashboard.kube import Reader
        from launchgate.cli.dashboard.server import loopback, serve
    except ImportError as e:
        raise click.ClickException(f"the dashboard needs the dashboard extra ({e.name} is missing): "
                                   "pip install 'launchgate[dashboard]'") from None
    kubeconfig, context, namespace = ctx.find_root().meta["kube"]
    namespace = ctx.find_root().meta.get("namespace") or namespace
    host = loopback(address)
    reader = Reader(kubeconfig, context, namespace)
    user = reader.whoami()
    source = (PrometheusSource(prometheus_url, bearer_token=prometheus_token, ca_file=prometheus_ca_file)
              if prometheus_url else None)
    serve(reader, user, host, port, namespace, source)


if __name__ == "__main__":
    sys.exit(main())
