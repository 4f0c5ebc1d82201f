"""The decision timeline is kept: records outlive their rollout, their labels hold, and only the
retention path deletes them, all judged by the real API server with the shipped policies."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import CANARY1_BLOCKERS, ROOT, Operator, World, kustomize_with_retention, rollout_obj, wait_for
from kubectl_util import kubectl, kubectl_json

PHASES = [{"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
          {"name": "General", "weight": 100, "gates": ["canary1"]}]


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path):
    w = World(kubeconfig, prometheus, f"timeline-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


def records(w: World, selector: str | None = None) -> list[dict[str, Any]]:
    """Every DecisionRecord in the namespace, whole (metadata too), optionally by label selector."""
    args = ["get", "decisionrecords", "-n", w.ns] + (["-l", selector] if selector else [])
    return list(kubectl_json(w.kubeconfig, *args)["items"])


def a_stable_rollout(w: World, name: str) -> dict[str, Any]:
    w.http_route(name)
    w.apply(rollout_obj(name, "agent:1", PHASES))
    w.wait_status(name, "the first revision to become stable", lambda s: s.get("state") == "Healthy")
    return w.get("agentrollout", name)


def evaluated(w: World, name: str) -> bool:
    """The operator still shows the rollout's series: it has not yet handled its deletion."""
    assert w.operator is not None
    return any(line.startswith("launchgate_rollout_last_evaluated_timestamp_seconds")
               and f'namespace="{w.ns}"' in line and f'rollout="{name}"' in line
               for line in w.operator.scrape().splitlines())


def test_records_have_no_owner_and_outlive_their_rollout_and_its_re_creation(world: World) -> None:
    """Without a controller-manager here nothing garbage-collects, so what is checked is what
    would make it: no record names its rollout as owner, and the operator's own handling of a
    deleted rollout deletes nothing."""
    w = world
    w.start_operator()
    first = a_stable_rollout(w, "keep")
    uid = first["metadata"]["uid"]
    kept = wait_for("the first record", lambda: records(w, "launchgate.dev/rollout=keep"), timeout=15)
    for r in kept:
        assert "ownerReferences" not in r["metadata"], r["metadata"]
        assert r["metadata"]["labels"]["launchgate.dev/rollout-uid"] == uid
        assert r["spec"]["rollout"] == "keep" and r["spec"]["rolloutUid"] == uid

    kubectl(w.kubeconfig, "delete", "agentrollout", "keep", "-n", w.ns)
    wait_for("the operator to handle the deletion", lambda: not evaluated(w, "keep"), timeout=30)
    time.sleep(3)  # three of the rollout's intervals: anything the operator did would be done
    names = {r["metadata"]["name"] for r in kept}
    assert names <= {r["metadata"]["name"] for r in records(w, "launchgate.dev/rollout=keep")}

    # A rollout of the same name is another rollout: its timeline is its own, next to the old one.
    second = a_stable_rollout(w, "keep")
    new_uid = second["metadata"]["uid"]
    assert new_uid != uid
    own = wait_for("the re-created rollout's own first record",
                   lambda: records(w, f"launchgate.dev/rollout-uid={new_uid}"), timeout=15)
    assert [r["spec"]["reason"] for r in own] == ["initial revision becomes stable"]
    assert names <= {r["metadata"]["name"] for r in records(w, f"launchgate.dev/rollout-uid={uid}")}


# --------------------------------------------------------------------------- the admission policy

RETENTION_GROUP = "launchgate-timeline-retention"


@pytest.fixture(scope="module")
def policies(kubeconfig: Path) -> None:
    """The shipped admission policies and user roles, as test_approvals installs them."""
    for name in ("admission.yaml", "user-roles.yaml"):
        kubectl(kubeconfig, "apply", "-f", str(ROOT / "manifests" / "base" / name))


def a_record(w: World, name: str, rollout: str = "ghost", at: str = "2026-01-01T00:00:00Z") -> str:
    """A record made by hand (admin, system:masters), as the operator writes one."""
    body = {"apiVersion": "launchgate.dev/v1alpha1", "kind": "DecisionRecord",
            "metadata": {"name": name, "namespace": w.ns,
                         "labels": {"launchgate.dev/rollout": rollout, "launchgate.dev/rollout-uid": "uid-1"}},
            "spec": {"id": name, "rollout": rollout, "rolloutUid": "uid-1", "kind": "decision", "decision": "hold",
                     "phase": "Canary1", "revision": "abc", "actor": "launchgate-operator", "at": at}}
    kubectl(w.kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(body))
    return name


def label(w: World, record: str, *change: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    return kubectl(w.kubeconfig, "label", "decisionrecord", record, "-n", w.ns, "--overwrite", *change, user=user,
                   check=False)


def delete(w: World, record: str, *as_: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    return kubectl(w.kubeconfig, "delete", "decisionrecord", record, "-n", w.ns, "--wait=false", *as_, user=user,
                   check=False)


LABELS_FIXED = "the launchgate.dev/ labels of a DecisionRecord tie it to its rollout"
NOT_RETENTION = "may not delete a DecisionRecord"


def test_the_labels_that_tie_a_record_to_its_rollout_never_change(world: World, policies: None) -> None:
    w = world
    rec = a_record(w, "rec-labels")
    # Probed by server-side dry runs, which admission judges too: a change let through before the
    # policy is active must not land, or the probe would be a no-op from then on.
    wait_for("the records policy to be active", lambda: LABELS_FIXED in label(
        w, rec, "launchgate.dev/rollout=other", "--dry-run=server").stderr, timeout=30, every=0.5)
    for change in ("launchgate.dev/rollout-uid=uid-2", "launchgate.dev/rollout-", "launchgate.dev/rollout-uid-",
                   "launchgate.dev/role=stable"):
        refused = label(w, rec, change)
        assert refused.returncode != 0 and LABELS_FIXED in refused.stderr, (change, refused.stderr)
    assert [r["metadata"]["name"] for r in records(w, "launchgate.dev/rollout=ghost")] == [rec]
    # Other labels are the user's: the policy is about the timeline's, not a blanket refusal.
    assert label(w, rec, "team=audit").returncode == 0


def test_only_the_retention_group_deletes_a_record_whatever_rbac_allows(world: World, policies: None) -> None:
    w = world
    rec = a_record(w, "rec-delete")
    wait_for("the records policy to be active", lambda: NOT_RETENTION in delete(w, rec, "--dry-run=server").stderr,
             timeout=30, every=0.5)
    # A cluster-admin (system:masters: RBAC allows everything) is refused, by name and as a collection.
    refused = delete(w, rec)
    assert refused.returncode != 0 and f"admin {NOT_RETENTION}" in refused.stderr, refused.stderr
    collection = kubectl(w.kubeconfig, "delete", "--raw", f"/apis/launchgate.dev/v1alpha1/namespaces/{w.ns}/"
                         "decisionrecords", check=False)
    assert collection.returncode != 0 and NOT_RETENTION in collection.stderr, collection.stderr
    # mallory holds the retention role by RBAC but is not in the group: refused too.
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "mallory-retention", "namespace": w.ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RETENTION_GROUP},
               "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]}
    kubectl(w.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(binding))
    can = kubectl(w.kubeconfig, "auth", "can-i", "delete", "decisionrecords.launchgate.dev", "-n", w.ns,
                  user="mallory", check=False)
    assert can.stdout.strip() == "yes", can.stdout + can.stderr
    refused = delete(w, rec, user="mallory")
    assert refused.returncode != 0 and f"mallory {NOT_RETENTION}" in refused.stderr, refused.stderr
    assert [r["metadata"]["name"] for r in records(w)] == [rec]
    # A member of the group (RBAC through the shipped binding) may: the documented retention path.
    allowed = delete(w, rec, "--as=dana", f"--as-group={RETENTION_GROUP}")
    assert allowed.returncode == 0, allowed.stderr
    wait_for("the record gone", lambda: records(w) == [], timeout=10)


# --------------------------------------------------------------------------- retention

SA_NS, SA = "launchgate-system", "launchgate-operator"
RETENTION_ROLE = "launchgate-operator-record-retention"


@pytest.fixture
def service_account_kubeconfig(kubeconfig: Path, tmp_path: Path, policies: None) -> Iterator[Path]:
    """The operator as it runs in a cluster: its real ServiceAccount (a TokenRequest token), bound
    to the shipped ClusterRole and to the manifests/retention component's, whose Deployment patch
    is checked to set LAUNCHGATE_RECORD_RETENTION. The bindings get names of this test's own (the
    harness binds the shipped name to its token user) and go afterwards, so no other test sees an
    operator that may delete records."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    docs = kustomize_with_retention(kubeconfig, overlay)
    (container,) = one(docs, "Deployment", "launchgate-operator")["spec"]["template"]["spec"]["containers"]
    assert "LAUNCHGATE_RECORD_RETENTION" in {e["name"] for e in container["env"]}
    bindings = []
    for name in ("launchgate-operator", RETENTION_ROLE):
        b = one(docs, "ClusterRoleBinding", name)
        b["metadata"]["name"] = f"{name}-timeline-test"
        bindings.append(b)
    objs = [one(docs, "Namespace", SA_NS), one(docs, "ServiceAccount", SA), one(docs, "ClusterRole", "launchgate-operator"),
            one(docs, "ClusterRole", RETENTION_ROLE), *bindings]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(objs))
    token = kubectl(kubeconfig, "create", "token", SA, "-n", SA_NS, "--duration=1h").stdout.strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": SA, "user": {"token": token}}]
    config["contexts"] = [{"name": SA, "context": {"cluster": config["clusters"][0]["name"], "user": SA}}]
    config["current-context"] = SA
    path = tmp_path / "service-account.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    who = kubectl_json(path, "auth", "whoami")["status"]["userInfo"]["username"]
    assert who == f"system:serviceaccount:{SA_NS}:{SA}", who
    try:
        yield path
    finally:
        for b in bindings:
            kubectl(kubeconfig, "delete", "clusterrolebinding", b["metadata"]["name"], check=False)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def events(w: World, reason: str) -> list[dict[str, Any]]:
    return [e for e in kubectl_json(w.kubeconfig, "get", "events", "-n", w.ns)["items"] if e.get("reason") == reason]


def test_the_operator_deletes_records_older_than_its_retention_and_says_so(
        world: World, service_account_kubeconfig: Path) -> None:
    w = world
    now = datetime.now(UTC)
    old = a_record(w, "ghost-old", at=(now - timedelta(days=1)).isoformat().replace("+00:00", "Z"))
    young = a_record(w, "ghost-young", at=(now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"))
    w.operator = Operator(service_account_kubeconfig, w.prometheus.url, w.ns, w.workdir,
                          LAUNCHGATE_RECORD_RETENTION="6s").start()

    # The record of a rollout that is gone: deleted, with an Event in the namespace about that rollout.
    wait_for("the expired record to go", lambda: old not in {r["metadata"]["name"] for r in records(w)}, timeout=30)
    (gone,) = wait_for("the Event about it", lambda: events(w, "RecordsExpired"), timeout=15)
    assert gone["involvedObject"]["kind"] == "AgentRollout" and gone["involvedObject"]["name"] == "ghost"
    assert gone["involvedObject"]["uid"] == "uid-1" and old in gone["message"] and "6s" in gone["message"]
    deleted = [json.loads(line.split(" ", 4)[-1]) for line in w.operator.log.read_text().splitlines()
               if '"msg": "decision record deleted"' in line]
    assert [(d["record"], d["rollout"], d["at"]) for d in deleted] == [
        (f"{w.ns}/{old}", "ghost", (now - timedelta(days=1)).isoformat().replace("+00:00", "Z"))]

    # A live rollout's records go once older than the retention, the Event on the rollout itself.
    rollout = a_stable_rollout(w, "short")
    first = wait_for("its first record", lambda: records(w, "launchgate.dev/rollout=short"), timeout=15)
    wait_for("its records to expire", lambda: not records(w, "launchgate.dev/rollout=short"), timeout=30)
    on_rollout = wait_for("the Event on the rollout", lambda: [
        e for e in events(w, "RecordsExpired") if e["involvedObject"].get("uid") == rollout["metadata"]["uid"]],
        timeout=15)
    assert first[0]["metadata"]["name"] in on_rollout[0]["message"]
    # A record younger than the retention stays; so does the operator, whose work this was.
    assert young in {r["metadata"]["name"] for r in records(w)}
    w.operator.assert_alive()
