"""Two operator replicas under leader election, against a real API server: real processes, real
Leases, SIGKILL and SIGSTOP.

The replicas run as two users of their own (`replica-a`, `replica-b`, both in the group the
operator's ClusterRole is bound to) on a control plane of their own whose audit log records every
write those two users send, with its time. So "who wrote what, when" is read from the API
server, not from the operators' own accounts: a frozen leader that wakes up after losing its
Lease is proved to send nothing, whatever it believes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import CANARY1_BLOCKERS, ERROR_RATE, ROOT, Operator, World, rollout_obj, wait_for
from kubectl_util import kubectl, kubectl_json
from launchgate_dev import devenv

REPLICAS = ("replica-a", "replica-b")
GROUP_NAME = "launchgate-operators"
LEASE = "launchgate"
# Seconds, so a takeover is quick; the same ratios as client-go's defaults (15 / 10 / 2).
TERMS = {"LAUNCHGATE_LEADER_ELECTION": "true", "LAUNCHGATE_LEADER_ELECTION_LEASE": LEASE,
         "LAUNCHGATE_LEADER_ELECTION_LEASE_DURATION": "4s", "LAUNCHGATE_LEADER_ELECTION_RENEW_DEADLINE": "3s",
         "LAUNCHGATE_LEADER_ELECTION_RETRY_PERIOD": "500ms"}
WRITES = ("create", "update", "patch", "delete", "deletecollection")


@pytest.fixture(scope="module")
def ha_plane(devenv_binaries: devenv.Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[devenv.ControlPlane]:
    d = tmp_path_factory.mktemp("ha")
    policy = d / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [{"level": "Metadata", "users": list(REPLICAS), "verbs": list(WRITES)}, {"level": "None"}]}))
    cp = devenv.ControlPlane(d / "cp", bins=devenv_binaries,
                             users={**devenv.DEFAULT_USERS, **{r: (GROUP_NAME,) for r in REPLICAS}},
                             extra_apiserver_args=[f"--audit-policy-file={policy}", f"--audit-log-path={d / 'audit.log'}",
                                                   "--audit-log-format=json", "--audit-log-maxsize=0"])
    cp.start()
    try:
        cp.apply_crds([devenv.REPO_CRDS])
        cp.install_gateway_api()
        rbac = [doc for doc in yaml.safe_load_all((ROOT / "manifests" / "base" / "rbac.yaml").read_text()) if doc]
        for doc in rbac:
            if doc["kind"] == "ClusterRole":
                kubectl(cp.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
        kubectl(cp.kubeconfig, "create", "clusterrolebinding", "launchgate-replicas",
                "--clusterrole=launchgate-operator", f"--group={GROUP_NAME}")
        yield cp
    finally:
        cp.stop()


class Replicas:
    """Two operators sharing one Lease in the test's namespace, each as its own user."""

    def __init__(self, plane: devenv.ControlPlane, w: World, workdir: Path) -> None:
        self.plane, self.w = plane, w
        # The shipped Role for the Lease, in the test's namespace instead of launchgate-system.
        for doc in yaml.safe_load_all((ROOT / "manifests" / "base" / "rbac.yaml").read_text()):
            if doc and doc["kind"] in ("Role", "RoleBinding"):
                doc["metadata"]["namespace"] = w.ns
                if doc["kind"] == "RoleBinding":
                    doc["subjects"] = [{"kind": "Group", "name": GROUP_NAME, "apiGroup": "rbac.authorization.k8s.io"}]
                kubectl(plane.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
        self.ops: dict[str, Operator] = {}
        for user in REPLICAS:
            d = workdir / user
            d.mkdir()
            kc = d / "kubeconfig"
            kc.write_text(plane.kubeconfig.read_text())
            kubectl(kc, "config", "use-context", user)
            env = {**TERMS, "LAUNCHGATE_LEADER_ELECTION_NAMESPACE": w.ns}
            self.ops[user] = Operator(kc, w.prometheus.url, w.ns, d, **env).start()

    def leader(self) -> str | None:
        """The user whose replica says it leads (its launchgate_leader gauge), if exactly one does."""
        leading = [u for u, op in self.ops.items() if op.proc is not None and op.proc.poll() is None
                   and _gauge(op, "launchgate_leader") == 1.0]
        return leading[0] if len(leading) == 1 else None

    def holder(self) -> str | None:
        spec = kubectl_json(self.plane.kubeconfig, "get", "lease", LEASE, "-n", self.w.ns).get("spec") or {}
        return spec.get("holderIdentity")

    def stop(self) -> None:
        for op in self.ops.values():
            if op.proc is not None and op.proc.poll() is None:
                os.killpg(op.proc.pid, signal.SIGCONT)
            op.stop()


def _gauge(op: Operator, name: str) -> float | None:
    try:
        text = op.scrape()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def audited_writes(plane: devenv.ControlPlane, user: str, since: datetime) -> list[dict[str, Any]]:
    """The writes `user` sent that the API server received at or after `since`."""
    path = plane.workdir.parent / "audit.log"
    out = []
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        if (ev.get("user") or {}).get("username") != user or ev.get("verb") not in WRITES:
            continue
        received = datetime.fromisoformat(ev["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if received >= since:
            out.append(ev)
    return out


def phases(hold: str) -> list[dict[str, Any]]:
    return [
        {"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
        {"name": "Canary1", "weight": 5, "gates": ["canary1"], "minDuration": hold,
         "rollbackTriggers": [{"name": "error-rate-2x-baseline", "query": ERROR_RATE,
                               "above": {"baselineRatio": 2}, "for": "6s", "step": "1s"}]},
        {"name": "Canary2", "weight": 25, "gates": ["canary1"], "minDuration": hold},
        {"name": "General", "weights": [50, 100], "gates": ["canary1"]},
    ]


@pytest.fixture
def world(ha_plane: devenv.ControlPlane, prometheus: Any, tmp_path: Path) -> Iterator[World]:
    w = World(ha_plane.kubeconfig, prometheus, f"ha-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


@pytest.fixture
def replicas(ha_plane: devenv.ControlPlane, world: World, tmp_path: Path) -> Iterator[Replicas]:
    r = Replicas(ha_plane, world, tmp_path)
    yield r
    r.stop()


def given_stable_rollouts(w: World, r: Replicas, names: list[str], hold: str) -> dict[str, str]:
    for name in names:
        w.http_route(name)
        w.apply(rollout_obj(name, "agent:1", phases(hold)))
    stable = {}
    for name in names:
        st = wait_for(f"{name} stable", lambda n=name: (s := w.status(n)).get("state") == "Healthy" and s, timeout=90)
        stable[name] = st["stableRevision"]
        w.agent(st["stableRevision"], success_rate=0.995, p95_ms=1000)
    return stable


def when_new_revisions_are_applied(w: World, names: list[str]) -> dict[str, str]:
    canaries = {}
    for name in names:
        kubectl(w.kubeconfig, "patch", "agentrollout", name, "-n", w.ns, "--type=json", "-p",
                json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "agent:2"}]))
    for name in names:
        st = wait_for(f"{name} canary", lambda n=name: (s := w.status(n)).get("canaryRevision") and s, timeout=60)
        canaries[name] = st["canaryRevision"]
        w.agent(st["canaryRevision"], success_rate=0.997, p95_ms=1000)
    return canaries


def promotions(w: World, name: str) -> list[tuple[str, str]]:
    return [(rec["phase"], rec["decision"]) for rec in w.records(name)
            if rec["kind"] == "decision" and rec.get("decision") in ("promote", "rollback")]


EVERY_STEP = [("Canary1", "promote"), ("Canary2", "promote"), ("General", "promote"), ("General", "promote"),
              ("Finalizing", "promote"), ("Completed", "promote")]


def test_one_replica_leads_and_the_standby_takes_over_when_it_is_killed(world: World, replicas: Replicas) -> None:
    w, r = world, replicas
    first = wait_for("one replica to lead", r.leader, timeout=30)
    other = next(u for u in REPLICAS if u != first)
    assert r.holder() is not None and r.holder().startswith(os.uname().nodename)  # type: ignore[union-attr]
    names = ["ha-1", "ha-2", "ha-3"]
    given_stable_rollouts(w, r, names, hold="8s")
    # The standby has decided nothing: every write so far is the leader's.
    t0 = datetime.fromtimestamp(0, UTC)
    assert [e for e in audited_writes(r.plane, other, t0) if e["objectRef"].get("resource") != "leases"] == []

    canaries = when_new_revisions_are_applied(w, names)
    wait_for("every canary at Canary1", lambda: all(w.status(n).get("phase") == "Canary1" for n in names), timeout=60)
    # Given the leader dies mid-rollout (a node failure: no shutdown, no Lease released) ...
    r.ops[first].kill()
    killed_at = time.monotonic()
    # ... the standby takes the Lease over after the lease duration, and every rollout finishes.
    wait_for("the standby to lead", lambda: r.leader() == other, timeout=30)
    takeover = time.monotonic() - killed_at
    for name in names:
        wait_for(f"{name} complete", lambda n=name: w.status(n).get("stableRevision") == canaries[n]
                 and w.status(n).get("state") == "Healthy", timeout=150)
        # No promotion repeated, none lost: each step once, in order, across the two replicas.
        assert promotions(w, name) == EVERY_STEP, (name, promotions(w, name))
    assert takeover > 0  # measured, not asserted against a bound: BENCHMARKS.md has the figures
    writes = audited_writes(r.plane, other, t0)
    assert any(e["objectRef"].get("resource") == "agentrollouts" for e in writes), "the new leader wrote no decision"


def test_a_frozen_leader_that_lost_its_lease_writes_nothing_when_it_wakes(world: World, replicas: Replicas) -> None:
    w, r = world, replicas
    first = wait_for("one replica to lead", r.leader, timeout=30)
    other = next(u for u in REPLICAS if u != first)
    names = ["frozen-1", "frozen-2"]
    given_stable_rollouts(w, r, names, hold="1h")  # held at Canary1: every pass evaluates, none moves on
    when_new_revisions_are_applied(w, names)
    wait_for("every canary at Canary1", lambda: all(w.status(n).get("phase") == "Canary1" for n in names), timeout=60)
    leader = r.ops[first]
    assert leader.proc is not None
    # Given the leader is frozen (SIGSTOP: a paused VM, a stalled process) past its lease ...
    os.killpg(leader.proc.pid, signal.SIGSTOP)
    frozen_at = datetime.now(UTC)
    wait_for("the standby to lead", lambda: _gauge(r.ops[other], "launchgate_leader") == 1.0, timeout=30)
    # ... and the new leader decides meanwhile (a new rollout it takes from nothing to stable) ...
    w.http_route("after")
    w.apply(rollout_obj("after", "agent:1", phases("1h")))
    wait_for("the new leader's rollout stable", lambda: w.status("after").get("state") == "Healthy", timeout=90)
    # ... when the old leader wakes, it finds it does not lead (proof that it ran: its gauge says 0
    # and its log says so, written after waking) ...
    woke_at = datetime.now(UTC)
    os.killpg(leader.proc.pid, signal.SIGCONT)
    wait_for("the woken replica to stand by", lambda: _gauge(leader, "launchgate_leader") == 0.0, timeout=30)
    wait_for("the woken replica to log it", lambda: '"msg": "not leading"' in leader.log.read_text(), timeout=30)
    # and gives the new leader a few of its own passes' time (the rollouts' interval is 1s).
    until = time.monotonic() + 5
    wait_for("five more seconds of both replicas running", lambda: time.monotonic() > until, timeout=10)
    assert r.leader() == other
    # Then the API server received nothing from it since it was frozen (Lease reads are not writes;
    # a failed Lease update would be one, and there is none either: it never tries to take a valid Lease).
    late = audited_writes(r.plane, first, frozen_at)
    assert late == [], [(e["verb"], e["objectRef"], e["requestReceivedTimestamp"]) for e in late]
    assert audited_writes(r.plane, other, woke_at), "the new leader should still be writing (heartbeats, Lease)"
