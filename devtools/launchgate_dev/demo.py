"""`make demo`: two canaries on a private, local control plane, told live on one screen.

Story (a): a good canary of support-agent walks ReplayGate → Canary1 → Canary2 → General 50% →
100% → Completed; the General phase waits for two reliability reviewers, alice and bob, who
approve as themselves (their own Kubernetes users). Story (b): a bad canary of triage-agent reaches
Canary1, its error rate climbs to 3x the stable baseline, and its rollback trigger sends all
traffic back to stable once the breach has held for its whole `for`.

Why it is built this way: the demo is the product's first impression *and* a smoke test. So it
uses only real parts (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and Prometheus
from ``launchgate_dev.devenv``, with kwok playing the kubelet of fake Nodes; the operator as a
subprocess under the least-privilege RBAC of manifests/; real synthetic-agent processes that
Prometheus scrapes) and exits non-zero when a story does not end as it should. The Deployment
controller makes the pods, the scheduler places them and kwok reports them ready, but no container
runs: synthetic agents play the pods' part, exporting metrics under the revision labels the
operator assigned. Everything it starts lives in a temporary directory and is stopped at the end,
on errors, on Ctrl-C and on SIGTERM.

``run_demo(console, timeout)`` is importable (for a test); ``python -m launchgate_dev.demo`` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from launchgate import GROUP, VERSION
from launchgate.adapters.kube import load_config
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.api import AgentRolloutSpec
from launchgate.core import engine
from launchgate.core.gates import TriggerResult
from launchgate_dev.devenv import (
    REPO_CRDS,
    REPO_ROOT,
    ControlPlane,
    DevEnvError,
    PrometheusServer,
    _free_port,
    binaries,
)
from launchgate_dev.synthetic import SyntheticAgent

DEMO_DIR = REPO_ROOT / "examples" / "demo"
RBAC_FILE = REPO_ROOT / "manifests" / "base" / "rbac.yaml"
USER_ROLES_FILE = REPO_ROOT / "manifests" / "base" / "user-roles.yaml"
OPERATOR_USER = "launchgate-operator"
APPROVERS = ("alice", "bob")
EXIT_OK, EXIT_STORY_FAILED, EXIT_SETUP_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130


# --------------------------------------------------------------------------------------------
# Shared with the benchmark: environment, operator process, RBAC
# --------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the child when we die, even by SIGKILL (no strays)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class OperatorProcess:
    """The operator as a real subprocess (`python -m launchgate.controller.main -n NS ...`), in its own session.

    Why a subprocess: its RSS and CPU can be read from /proc, a crash is a real crash, and it runs
    with its own kubeconfig (the operator's least-privilege user), exactly as it would in a pod.
    """

    def __init__(self, kubeconfig: Path, prometheus_url: str, namespaces: Sequence[str], log: Path,
                 **env: str) -> None:
        self.kubeconfig, self.prometheus_url = kubeconfig, prometheus_url
        self.namespaces, self.log, self.env = list(namespaces), log, env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The argv and environment to run; the side-by-side benchmark runs a peer's controller
        through the same start, stop and log handling by overriding this."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "LAUNCHGATE_PROMETHEUS_URL": self.prometheus_url,
               "LAUNCHGATE_GATE_INTERVAL": "1s", "LAUNCHGATE_PROMETHEUS_TIMEOUT": "3", **self.env}
        argv = [sys.executable, "-m", "launchgate.controller.main"]
        for ns in self.namespaces:
            argv += ["-n", ns]
        return argv, env

    def start(self) -> OperatorProcess:
        argv, env = self.command()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, preexec_fn=_die_with_parent)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the operator's process group (Kopf shuts down gracefully), SIGKILL if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no operator log>"


def operator_kubeconfig(cp: ControlPlane, workdir: Path) -> Path:
    """Bind manifests/base/rbac.yaml's ClusterRole to the operator's user; return its kubeconfig.

    Why: the operator must run with exactly the permissions it ships with, so a missing verb in
    the RBAC shows up here rather than in a user's cluster.
    """
    for doc in yaml.safe_load_all(RBAC_FILE.read_text()):
        if not isinstance(doc, dict):
            continue
        if doc["kind"] == "ClusterRoleBinding":
            doc["subjects"] = [{"kind": "User", "name": OPERATOR_USER, "apiGroup": "rbac.authorization.k8s.io"}]
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    path = workdir / "operator.kubeconfig"
    config = yaml.safe_load(cp.kubeconfig.read_text())
    config["current-context"] = OPERATOR_USER
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def apply_admission_policies(cp: ControlPlane) -> list[str]:
    """Apply any ValidatingAdmissionPolicy (+Binding) shipped in manifests/base (e.g. the one that
    makes an Approval's approver the requesting user). Returns their names; none is fine."""
    names: list[str] = []
    for f in sorted((REPO_ROOT / "manifests" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and str(doc.get("kind", "")).startswith("ValidatingAdmissionPolicy"):
                cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
                names.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return names


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """SIGTERM becomes SystemExit (so `finally` blocks stop our children); during teardown a
    second Ctrl-C is ignored, so cleanup is never cut short."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def _term(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, _term)
    yield


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Shield a teardown from Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def utc(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# The stories
# --------------------------------------------------------------------------------------------


@dataclass
class Story:
    """One rollout's script and what the demo has seen of it so far."""

    key: str
    namespace: str
    rollout: str
    caption: str
    new_image: str
    stable_rates: dict[str, float]
    canary_rates: dict[str, float]
    # observed / driven state
    stage: str = "boot"
    mark: float = 0.0
    stable_rev: str | None = None
    canary_rev: str | None = None
    stable_agent: SyntheticAgent | None = None
    canary_agent: SyntheticAgent | None = None
    obj: dict[str, Any] = field(default_factory=dict)
    weights: tuple[int | None, int | None] = (None, None)
    weights_seen: list[int] = field(default_factory=list)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: list[TriggerResult] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    request_seen: str | None = None
    turned_bad: bool = False
    held_for_evidence: str | None = None
    finished: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.obj.get("status") or {})

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.rollout}"


def default_stories() -> list[Story]:
    """(a) good: no errors vs stable's 1% at half the stable's requests, p95 within 5% of stable,
    held for evidence at Canary1 until its requests arrive; (b) bad: 3% errors once at Canary1."""
    return [
        Story("a", "support", "support-agent",
              "(a) good canary → held for evidence, then promoted through every phase, approved by alice and bob",
              "registry.example/support-agent:1.1.0",
              stable_rates={"success_rate": 0.99, "p95_ms": 1000.0},
              canary_rates={"success_rate": 1.0, "p95_ms": 1050.0, "rps": 10.0}),
        Story("b", "triage", "triage-agent",
              "(b) bad canary → 3× the stable error rate at Canary1, rolled back by its trigger",
              "registry.example/triage-agent:1.1.0",
              stable_rates={"success_rate": 0.99, "p95_ms": 1000.0},
              canary_rates={"success_rate": 0.994, "p95_ms": 1000.0}),
    ]


BAD_CANARY_SUCCESS_RATE = 0.97  # 3% errors: 3x the stable's 1%, above the trigger's 2x


# --------------------------------------------------------------------------------------------
# Approving: the ONE place to switch to the kubectl plugin
# --------------------------------------------------------------------------------------------


def plugin_available() -> Path | None:
    """The `kubectl-launchgate` console script, if the plugin module exists in this install."""
    if importlib.util.find_spec("launchgate.cli.plugin") is None:
        return None
    script = Path(sys.executable).parent / "kubectl-launchgate"
    if script.is_file():
        return script
    found = shutil.which("kubectl-launchgate")
    return Path(found) if found else None


def approve(cp: ControlPlane, namespace: str, rollout: str, user: str, pending: dict[str, Any]) -> str:
    """`user` approves the rollout's pending request, as that Kubernetes user; returns how.

    This is the single switch point between the kubectl plugin and a plain Approval object.
    With the plugin installed (`launchgate.cli.plugin`): `kubectl-launchgate --context USER -n NS
    approve ROLLOUT`, what a reviewer would type. Without it: `kubectl --context USER create` of an
    Approval bound to the request ID, the canary revision and the gates hash from
    status.pendingApproval (an approval only counts while both hashes still match). Either way the
    API server authenticates the approver; a failure raises (the demo is a smoke test).
    """
    comment = f"reviewed the {pending.get('phase', '')} evidence in the demo"
    script = plugin_available()
    if script is not None:
        proc = subprocess.run([str(script), "--kubeconfig", str(cp.kubeconfig), "--context", user, "-n", namespace,
                               "approve", rollout, "-m", comment], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise DevEnvError(f"kubectl-launchgate approve as {user} failed ({proc.returncode}): "
                              f"{proc.stderr.strip() or proc.stdout.strip()}")
        return "kubectl launchgate approve"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Approval",
        "metadata": {"generateName": f"{rollout}-{user}-", "namespace": namespace},
        "spec": {
            "rollout": rollout,
            "requestId": pending["requestId"],
            "revision": pending["revision"],
            "gatesHash": pending["gatesHash"],
            "decision": "approve",
            "approver": user,
            "group": pending["group"],
            "comment": comment,
        },
    }
    cp.kubectl("create", "-f", "-", user=user, input=yaml.safe_dump(body))
    return "kubectl create approval"


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


class Demo:
    """Sets up the world, drives both stories tick by tick, renders, verifies, tears down."""

    tick = 0.5

    def __init__(self, console: Console, workdir: Path, timeout: float, live: bool | None = None) -> None:
        self.console, self.workdir, self.timeout = console, workdir, timeout
        self.live = console.is_terminal if live is None else live
        self.stories = default_stories()
        self.cp: ControlPlane | None = None
        self.prom: PrometheusServer | None = None
        self.operator: OperatorProcess | None = None
        self.api: client.ApiClient | None = None
        self.custom: Any = None
        self.source: PrometheusSource | None = None
        self.records: list[dict[str, Any]] = []
        self.approvals: list[dict[str, Any]] = []
        self.log: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self._printed: dict[str, tuple[Any, ...]] = {}

    # ---------------------------------------------------------------- narration
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        """A line of the story: kept for the live view, printed at once in plain mode."""
        self.log.append((self.elapsed(), msg))
        if not self.live:
            self.console.print(f"[{self.elapsed():6.1f}s] {msg}", markup=False, highlight=False, soft_wrap=True)

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        """Control plane, Prometheus, CRDs, RBAC, namespaces, gates, rollouts, operator."""
        bins = binaries()
        self.say("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake Nodes) "
                 "and Prometheus (private, in a temp dir)")
        self.cp = cp = ControlPlane(self.workdir / "controlplane", bins=bins).start()
        self.prom = PrometheusServer(self.workdir / "prometheus", scrape_interval="1s",
                                     evaluation_interval="1s", bins=bins).start()
        crds = cp.apply_crds([REPO_CRDS]) + cp.install_gateway_api()
        self.say(f"kube-apiserver {cp.server}, Prometheus {self.prom.url}; {len(crds)} CRDs established")
        self.api = load_config(str(cp.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.source = PrometheusSource(self.prom.url, timeout=3)
        kubeconfig = operator_kubeconfig(cp, self.workdir)
        if USER_ROLES_FILE.is_file():
            cp.kubectl("apply", "-f", str(USER_ROLES_FILE))
        cp.kubectl("apply", "-f", str(DEMO_DIR / "approvers-rbac.yaml"))
        policies = apply_admission_policies(cp)
        self.say("RBAC: operator bound to manifests/base/rbac.yaml; group reliability-reviewers may approve"
                 + (f"; admission: {', '.join(policies)}" if policies else ""))
        for s in self.stories:
            cp.kubectl("create", "namespace", s.namespace)
            cp.kubectl("apply", "-n", s.namespace, "-f", str(DEMO_DIR / "launchgates.yaml"))
        # A free port for the operator's /metrics: 8000 may be taken on a developer's machine.
        self.operator = OperatorProcess(kubeconfig, self.prom.url, [s.namespace for s in self.stories],
                                        self.workdir / "operator.log", LAUNCHGATE_METRICS_PORT=str(_free_port()),
                                        LAUNCHGATE_METRICS_ADDR="127.0.0.1").start()
        self.say(f"operator started as user {OPERATOR_USER} (pid {self.operator.pid}), "
                 f"watching {', '.join(s.namespace for s in self.stories)}")
        for s in self.stories:
            cp.kubectl("apply", "-n", s.namespace, "-f", str(DEMO_DIR / f"{s.rollout}.yaml"))
            s.mark = time.monotonic()
        self.say("applied LaunchGates replay, canary1, canary2, general and AgentRollouts support-agent, triage-agent")

    # ---------------------------------------------------------------- observe
    def _list(self, ns: str, plural: str, group: str = GROUP, version: str = VERSION) -> list[dict[str, Any]]:
        try:
            return list(self.custom.list_namespaced_custom_object(group, version, ns, plural).get("items", []))
        except ApiException:
            return []

    def observe(self) -> None:
        records, approvals = [], []
        for s in self.stories:
            ro = {o["metadata"]["name"]: o for o in self._list(s.namespace, "agentrollouts")}
            s.obj = ro.get(s.rollout, s.obj)
            if not s.finished:
                # Frozen at the end: once no rollout uses a gate, the operator evaluates it on its
                # own (without $canary), which would hide the evidence the story ended on.
                s.gates = {o["metadata"]["name"]: o for o in self._list(s.namespace, "launchgates")}
            route = {o["metadata"]["name"]: o for o in
                     self._list(s.namespace, "httproutes", "gateway.networking.k8s.io", "v1")}.get(s.rollout)
            if route is not None:
                refs = {r["name"]: r.get("weight") for rule in route["spec"].get("rules", [])
                        for r in rule.get("backendRefs", [])}
                s.weights = (refs.get(f"{s.rollout}-stable"), refs.get(f"{s.rollout}-canary"))
                canary = s.weights[1]
                if canary is not None and (not s.weights_seen or s.weights_seen[-1] != canary):
                    s.weights_seen.append(canary)
            records += [{**r["spec"], "_ns": s.namespace, "_meta": r["metadata"]}
                        for r in self._list(s.namespace, "decisionrecords")]
            approvals += [{**a["spec"], "_ns": s.namespace, "_meta": a["metadata"]}
                          for a in self._list(s.namespace, "approvals")]
            s.triggers = self._triggers(s)
        self.records = sorted(records, key=_record_key)
        self.approvals = approvals

    def _triggers(self, s: Story) -> list[TriggerResult]:
        """The current phase's rollback triggers, evaluated by the demo with the operator's own
        engine so the screen can show a breach building up step by step (display only)."""
        st = s.status
        if self.source is None or not s.canary_rev or not s.stable_rev or st.get("state") not in (
                "Progressing", "AwaitingApproval"):
            return []
        try:
            spec = AgentRolloutSpec.model_validate(s.obj.get("spec") or {})
        except ValueError:
            return []
        phases = spec.effective_phases()
        phase = phases[min(st.get("phaseIndex") or 0, len(phases) - 1)]
        variables = {"namespace": s.namespace, "rollout": s.rollout, "stable": s.stable_rev, "canary": s.canary_rev}
        return [engine.evaluate_trigger(t, self.source, {**variables, "window": t.for_})
                for t in phase.rollback_triggers]

    # ---------------------------------------------------------------- drive
    def advance(self, s: Story) -> None:
        """Move one story along: each stage waits for what the operator did, then acts like a user."""
        assert self.cp is not None and self.prom is not None
        st, now = s.status, time.monotonic()
        if s.stage == "boot" and st.get("state") == "Healthy" and st.get("stableRevision"):
            s.stable_rev = st["stableRevision"]
            s.stable_agent = self._agent(s, s.stable_rev, s.stable_rates)
            self.say(f"{s.label}: revision {s.stable_rev} is stable; its agents report "
                     f"{_pct(1 - s.stable_rates['success_rate'])} errors, p95 {s.stable_rates['p95_ms']:.0f} ms")
            s.stage, s.mark = "baseline", now
        elif s.stage == "baseline" and now - s.mark > 4.0:
            # A few seconds of baseline history first, so ratio blockers have a stable side.
            self.cp.kubectl("patch", "agentrollout", s.rollout, "-n", s.namespace, "--type=json", "-p", json.dumps(
                [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": s.new_image}]))
            self.say(f"{s.label}: a user sets the image to {s.new_image}")
            s.stage, s.mark = "new-revision", now
        elif s.stage == "new-revision" and st.get("canaryRevision"):
            s.canary_rev = st["canaryRevision"]
            s.canary_agent = self._agent(s, s.canary_rev, s.canary_rates)
            self.say(f"{s.label}: canary revision {s.canary_rev} starts at {st.get('phase')}; its agents report "
                     f"{_pct(1 - s.canary_rates['success_rate'])} errors, p95 {s.canary_rates['p95_ms']:.0f} ms")
            s.stage, s.mark = "canary", now
        elif s.stage == "canary":
            if s.key == "a":
                self._good(s, st, now)
            else:
                self._bad(s, st)

    def _good(self, s: Story, st: dict[str, Any], now: float) -> None:
        assert self.cp is not None
        message = st.get("message") or ""
        if s.held_for_evidence is None and "not enough evidence" in message:
            s.held_for_evidence = message
            self.say(f"{s.label}: held at {st.get('phase')}: {message.split('; ', 1)[0][:160]}")
        pending = st.get("pendingApproval") or {}
        if st.get("state") == "AwaitingApproval" and pending.get("requestId"):
            if s.request_seen != pending["requestId"]:
                s.request_seen, s.mark = pending["requestId"], now
                self.say(f"{s.label}: approval requested ({pending['requestId']}, "
                         f"{pending.get('approversRequired')} of group {pending.get('group')})")
            done = set(pending.get("approvedBy") or [])
            todo = [u for u in APPROVERS if u not in s.approved and u not in done]
            if todo and now - s.mark >= 3.0:  # a human takes a moment to read the evidence
                user = todo[0]
                how = approve(self.cp, s.namespace, s.rollout, user, pending)
                s.approved.append(user)
                s.mark = now
                self.say(f"{s.label}: {user} (reliability-reviewers) approves {pending['requestId']} "
                         f"for revision {pending.get('revision')} [{how}]")
        if st.get("phase") == "Completed" and st.get("stableRevision") == s.canary_rev:
            s.finished = True
            self.say(f"{s.label}: rollout complete, {s.canary_rev} is the new stable revision")
        elif st.get("state") == "Degraded":
            s.finished = True
            self.say(f"{s.label}: unexpectedly rolled back: {st.get('message')}")

    def _bad(self, s: Story, st: dict[str, Any]) -> None:
        if not s.turned_bad and st.get("phase") == "Canary1" and s.canary_agent is not None:
            s.canary_agent.set(success_rate=BAD_CANARY_SUCCESS_RATE)
            s.turned_bad = True
            self.say(f"{s.label}: at 5% live traffic the canary turns bad: "
                     f"{_pct(1 - BAD_CANARY_SUCCESS_RATE)} errors, 3x the stable's "
                     f"{_pct(1 - s.stable_rates['success_rate'])}")
        if st.get("state") == "Degraded":
            s.finished = True
            self.say(f"{s.label}: rolled back: {st.get('message')}")
        elif st.get("phase") == "Completed":
            s.finished = True
            self.say(f"{s.label}: the bad canary was promoted to stable!")

    def _agent(self, s: Story, revision: str, rates: dict[str, float]) -> SyntheticAgent:
        """A real agent process for `revision`, scraped by Prometheus: it stands in for the pods."""
        assert self.prom is not None
        agent = SyntheticAgent(revision, s.namespace, "127.0.0.1", **rates).start()
        self.prom.add_target(f"{s.namespace}-{revision}", agent.address, {"rollout": s.rollout})
        return agent

    # ---------------------------------------------------------------- verify
    def verify(self) -> list[str]:
        """What must be true at the end; any problem fails the demo (it is a smoke test)."""
        problems: list[str] = []
        for s in self.stories:
            st = s.status
            if s.key == "a":
                ok = (st.get("phase") == "Completed" and st.get("state") == "Healthy"
                      and s.canary_rev is not None and st.get("stableRevision") == s.canary_rev)
                if not ok:
                    problems.append(f"{s.label}: expected Completed with stable = {s.canary_rev}, got phase="
                                    f"{st.get('phase')} state={st.get('state')} stable={st.get('stableRevision')}")
                if s.held_for_evidence is None:
                    problems.append(f"{s.label}: never held for evidence at Canary1")
                promoted = [r for r in self.records if r["_ns"] == s.namespace and r.get("decision") == "promote"]
                if not any("approved by alice, bob" in r.get("reason", "") for r in promoted):
                    problems.append(f"{s.label}: no promotion records approval by alice and bob")
            else:
                if st.get("state") != "Degraded" or st.get("decision") != "rollback":
                    problems.append(f"{s.label}: expected Degraded after a rollback, got state={st.get('state')} "
                                    f"decision={st.get('decision')}")
                if s.stable_rev is not None and st.get("stableRevision") != s.stable_rev:
                    problems.append(f"{s.label}: stable revision changed to {st.get('stableRevision')}")
                if "error-rate-2x-baseline" not in (st.get("message") or ""):
                    problems.append(f"{s.label}: rollback not caused by its trigger: {st.get('message')}")
            if s.weights != (100, 0):
                problems.append(f"{s.label}: HTTPRoute weights stable/canary are {s.weights}, expected (100, 0)")
        return problems

    # ---------------------------------------------------------------- run
    def run(self) -> int:
        """Drive both stories to their end (or the timeout) and return the exit code."""
        deadline = time.monotonic() + self.timeout
        with self._view() as refresh:
            while True:
                if self.operator is not None and not self.operator.alive():
                    self.say("the operator exited unexpectedly")
                    break
                try:
                    self.observe()
                    for s in self.stories:
                        if not s.finished:
                            self.advance(s)
                except (DevEnvError, ApiException, OSError, RuntimeError, subprocess.SubprocessError) as e:
                    self.say(f"the demo could not continue: {e}")
                    break
                refresh()
                if all(s.finished for s in self.stories):
                    # One more look so the screen shows the final weights and records.
                    time.sleep(1.5)
                    self.observe()
                    refresh()
                    break
                if time.monotonic() > deadline:
                    self.say(f"timed out after {self.timeout:.0f}s")
                    break
                time.sleep(self.tick)
        problems = self.verify()
        self.print_timeline()
        if problems:
            self.console.print(Text("DEMO FAILED", style="bold red"))
            for p in problems:
                self.console.print(f"  - {p}", markup=False)
            if self.operator is not None:
                self.console.print(Panel(Text(self.operator.tail()), title="operator log (tail)"))
            return EXIT_STORY_FAILED
        a, b = self.stories
        self.console.print(Text.assemble(
            ("OK ", "bold green"),
            f"in {self.elapsed():.0f}s: {a.label} promoted to {a.canary_rev} (weights seen: "
            f"{' → '.join(map(str, a.weights_seen))}); {b.label} rolled back to {b.stable_rev} "
            f"(weights seen: {' → '.join(map(str, b.weights_seen))})"))
        return EXIT_OK

    @contextlib.contextmanager
    def _view(self) -> Iterator[Callable[[], None]]:
        if self.live:
            with Live(self.render(), console=self.console, refresh_per_second=4, transient=False,
                      vertical_overflow="ellipsis") as live:
                yield lambda: live.update(self.render())
        else:
            yield self._print_changes

    def close(self) -> None:
        """Stop everything we started, in reverse order; never raises."""
        with no_interrupts():
            if self.operator is not None:
                self.operator.stop()
            for s in self.stories:
                for agent in (s.canary_agent, s.stable_agent):
                    if agent is not None:
                        with contextlib.suppress(Exception):
                            agent.stop()
            for closable in (self.source, self.api):
                if closable is not None:
                    with contextlib.suppress(Exception):
                        closable.close()
            if self.prom is not None:
                self.prom.stop()
            if self.cp is not None:
                self.cp.stop()

    # ---------------------------------------------------------------- rendering
    def _print_changes(self) -> None:
        """Plain mode (not a TTY, e.g. CI): one line per change of a rollout's status."""
        for s in self.stories:
            st = s.status
            key = (st.get("phase"), st.get("canaryWeight"), st.get("state"), st.get("decision"), st.get("message"))
            if st and self._printed.get(s.label) != key:
                self._printed[s.label] = key
                self.console.print(
                    f"[{self.elapsed():6.1f}s] {s.label}: phase={st.get('phase') or '-'} weight={_weights(s.weights)} "
                    f"state={st.get('state') or '-'} decision={st.get('decision') or '-'}: {st.get('message') or ''}",
                    markup=False, highlight=False, soft_wrap=True)

    def render(self) -> RenderableType:
        header = Text.assemble(("launchgate demo", "bold"), "  two canaries, one operator, a local control plane  ",
                               (f"{self.elapsed():5.0f}s", "cyan"))
        panels = [self._story_panel(s) for s in self.stories]
        if self.console.width >= 170:
            grid = Table.grid(expand=True, padding=(0, 1))
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(*panels)
            body: RenderableType = grid
        else:
            body = Group(*panels)
        return Group(header, body, self._decisions_table(), self._log_panel())

    def _story_panel(self, s: Story) -> Panel:
        st = s.status
        state = st.get("state") or "—"
        style = {"Healthy": "green", "Degraded": "red", "RollingBack": "red", "AwaitingApproval": "yellow",
                 "Paused": "yellow"}.get(state, "cyan")
        top = Table.grid(padding=(0, 2))
        top.add_row(Text("phase", style="dim"), Text(st.get("phase") or "—", style="bold"),
                    Text("weights", style="dim"), Text(_weights(s.weights)),
                    Text("state", style="dim"), Text(state, style=style),
                    Text("decision", style="dim"), Text(st.get("decision") or "—", style="bold"))
        revs = Text.assemble(("stable ", "dim"), st.get("stableRevision") or "—", ("  canary ", "dim"),
                             st.get("canaryRevision") or "—")
        reason = Text(st.get("message") or s.stage, style="italic")
        parts: list[RenderableType] = [top, revs, reason]
        pending = st.get("pendingApproval")
        if pending:
            parts.append(Text.assemble(("approval ", "yellow"), f"{pending.get('requestId')}: "
                                       f"{len(pending.get('approvedBy') or [])}/{pending.get('approversRequired')} "
                                       f"of {pending.get('group')}",
                                       f" (approved by {', '.join(pending.get('approvedBy') or [])})"
                                       if pending.get("approvedBy") else ""))
        parts.append(self._gates_table(s))
        for t in s.triggers:
            parts.append(Text.assemble(("trigger ", "magenta"), (t.name, "bold"),
                                       (" FIRED " if t.fired else f" {t.held_steps}/{t.steps} steps held ",
                                        "bold red" if t.fired else ""), (t.reason, "dim")))
        return Panel(Group(*parts), title=f"{s.label}", subtitle=s.caption, title_align="left",
                     subtitle_align="left", border_style=style)

    def _gates_table(self, s: Story) -> Table:
        t = Table(expand=True, box=None, padding=(0, 1), show_edge=False)
        for col in ("gate", "blocker", "value", "baseline", "target", "pass"):
            t.add_column(col, style="dim" if col == "gate" else None,
                         justify="right" if col in ("value", "baseline") else "left")
        spec = s.obj.get("spec") or {}
        phases = spec.get("phases") or []
        idx = s.status.get("phaseIndex")
        phase = phases[idx] if isinstance(idx, int) and idx < len(phases) and s.status.get("canaryRevision") else None
        names = (phase or {}).get("gates") or []
        if not names:
            t.add_row("—", "no gate in force", "", "", "", "")
        for name in names:
            gst = (s.gates.get(name) or {}).get("status") or {}
            first = True
            for b in gst.get("blockers") or []:
                label = f"{name} {gst.get('decision', '')} {gst.get('passing', '')}" if first else ""
                first = False
                passed = b.get("pass")
                t.add_row(label, b.get("name"), _num(b.get("value")), _num(b.get("baselineValue")), b.get("target"),
                          Text("pass" if passed else "FAIL", style="green" if passed else "bold red"))
            if first:
                t.add_row(name, "not evaluated yet", "", "", "", "")
        return t

    def _decisions_table(self) -> Table:
        t = Table(title="recent decisions (DecisionRecords)", title_justify="left", expand=True, box=None,
                  padding=(0, 1))
        for col in ("time", "rollout", "kind", "decision", "phase", "reason"):
            t.add_column(col, overflow="ellipsis", no_wrap=col != "reason")
        for r in self.records[-8:]:
            t.add_row(_hms(r.get("at")), r["rollout"], r["kind"], _decision_text(r.get("decision")),
                      r.get("phase") or "", r.get("reason") or "")
        return t

    def _log_panel(self) -> Panel:
        lines = [Text.assemble((f"{t:6.1f}s ", "dim"), msg) for t, msg in self.log[-6:]]
        return Panel(Group(*lines), title="what happens", title_align="left", border_style="dim")

    def timeline_rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        """The decision timeline of both rollouts, oldest first: (time, rollout, kind, decision,
        phase, reason, actor). DecisionRecords, plus any Approval the operator did not record."""
        phase_of_request = {r.get("requestId"): r.get("phase") for r in self.records if r.get("requestId")}
        recorded = {(r["_ns"], r.get("requestId"), r.get("actor")) for r in self.records
                    if r["kind"] in ("approval", "rejection")}
        keyed = [(_record_key(r), (_hms(r.get("at")), f"{r['_ns']}/{r['rollout']}", r["kind"],
                                   r.get("decision") or "", r.get("phase") or "", r.get("reason") or "",
                                   r.get("actor") or "")) for r in self.records]
        for a in self.approvals:
            if (a["_ns"], a.get("requestId"), a.get("approver")) in recorded:
                continue
            meta = a["_meta"]
            keyed.append((_record_key({"at": meta.get("creationTimestamp"), "_meta": meta}),
                          (_hms(meta.get("creationTimestamp")), f"{a['_ns']}/{a['rollout']}", "approval",
                           a.get("decision") or "", phase_of_request.get(a.get("requestId")) or "",
                           f"Approval object: request {a.get('requestId')}, revision {a.get('revision')}",
                           a.get("approver") or "")))
        keyed.sort(key=lambda kv: kv[0])
        return [row for _, row in keyed]

    def print_timeline(self) -> None:
        """A table on a terminal; one tab-free line per entry otherwise (CI logs stay greppable)."""
        rows = self.timeline_rows()
        if not self.live:
            self.console.print("decision timeline (UTC | rollout | kind | decision | phase | reason | actor):",
                               markup=False, soft_wrap=True)
            for row in rows:
                self.console.print("  " + " | ".join(row), markup=False, highlight=False, soft_wrap=True)
            return
        t = Table(title="decision timeline", title_justify="left", expand=True)
        for col in ("time (UTC)", "rollout", "kind", "decision", "phase", "reason", "actor"):
            t.add_column(col, no_wrap=col in ("time (UTC)", "kind", "decision"), overflow="fold")
        for at, rollout, kind, decision, phase, reason, actor in rows:
            t.add_row(at, rollout, kind, _decision_text(decision), phase, reason, actor)
        self.console.print(t)


def _record_key(r: dict[str, Any]) -> tuple[str, str, int]:
    """Chronological order: record time (1 s resolution), then creation, then etcd's revision."""
    meta = r.get("_meta") or {}
    try:
        rv = int(meta.get("resourceVersion") or 0)
    except ValueError:
        rv = 0
    return (str(r.get("at") or ""), str(meta.get("creationTimestamp") or ""), rv)


def _hms(ts: str | None) -> str:
    t = utc(ts)
    return t.astimezone(UTC).strftime("%H:%M:%S") if t else ""


def _num(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _weights(w: tuple[int | None, int | None]) -> str:
    return f"{w[0] if w[0] is not None else '—'}/{w[1] if w[1] is not None else '—'}"


def _decision_text(d: str | None) -> Text:
    style = {"promote": "green", "rollback": "bold red", "await_approval": "yellow", "hold": ""}.get(d or "", "")
    return Text(d or "", style=style)


def run_demo(console: Console | None = None, timeout: float = 300.0, *, keep: bool = False,
             live: bool | None = None) -> int:
    """Run both stories once; 0 if both ended as expected, 1 if not, 2 if setup failed, 130 on Ctrl-C.

    `timeout` bounds the stories (setup and teardown come on top). `keep` leaves the temp dir
    (logs) behind for a post-mortem; processes are stopped either way.
    """
    console = console or Console()
    workdir = Path(tempfile.mkdtemp(prefix="launchgate-demo-"))
    demo = Demo(console, workdir, timeout, live=live)
    code = EXIT_SETUP_FAILED
    try:
        with cleanup_on_signals():
            try:
                demo.setup()
            except (DevEnvError, OSError, subprocess.SubprocessError) as e:
                console.print(Text(f"setup failed: {e}", style="bold red"))
                return EXIT_SETUP_FAILED
            code = demo.run()
            return code
    except KeyboardInterrupt:
        console.print(Text("interrupted; cleaning up", style="yellow"))
        code = EXIT_INTERRUPTED
        return code
    except SystemExit as e:  # SIGTERM (see cleanup_on_signals)
        console.print(Text("terminated; cleaning up", style="yellow"))
        code = e.code if isinstance(e.code, int) else EXIT_INTERRUPTED
        return code
    finally:
        demo.close()
        if keep or code in (EXIT_STORY_FAILED, EXIT_SETUP_FAILED):
            console.print(f"logs kept in {workdir}", markup=False, highlight=False)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m launchgate_dev.demo", description=__doc__.split("\n")[0])
    p.add_argument("--timeout", type=float, default=300.0, help="seconds the two stories may take (default 300)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with logs")
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    a = p.parse_args(argv)
    return run_demo(Console(), a.timeout, keep=a.keep, live=False if a.plain else None)


if __name__ == "__main__":
    sys.exit(main())
