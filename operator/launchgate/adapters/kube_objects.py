"""The Kubernetes objects the operator creates for a rollout, as plain dicts.

Pure functions: each takes what the object depends on and returns its body, so what the
operator asks of the API server can be read and tested without one. They live in the adapters
layer because they are Kubernetes' vocabulary (label keys, owner references, pod template
fields), which the decisions in `core` do not speak; the controller decides when to ask for
them and `kube` sends them.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

from launchgate import GROUP, VERSION
from launchgate.api import AgentRolloutSpec, AgentRolloutStatus, ReplaySpec
from launchgate.core.durations import parse_duration

ROLE, REV, ROLLOUT = "launchgate.dev/role", "launchgate.dev/revision", "launchgate.dev/rollout"
ROLLOUT_UID = "launchgate.dev/rollout-uid"


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(rollout: str, role: str, revision: str) -> dict[str, str]:
    return {ROLLOUT: rollout, ROLE: role, REV: revision}


def service(name: str, rollout: str, role: str, port: int, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {ROLLOUT: rollout, ROLE: role}, "ownerReferences": [owner]},
        "spec": {"selector": {ROLLOUT: rollout, ROLE: role},
                 "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }


def policy_configmap(rollout: str, text: str, policy_hash: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{rollout}-policy-{policy_hash}", "labels": {ROLLOUT: rollout},
                     "ownerReferences": [owner]},
        "data": {"policy.yaml": text},
        "immutable": True,
    }


def stable_template(rollout: str, revision: str, deployment: dict[str, Any],
                    owner: dict[str, Any]) -> dict[str, Any]:
    """The stable Deployment as created, kept while later revisions are canaried: the spec holds
    only the newest template, and this is what a deleted stable Deployment is recreated from."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{rollout}-stable-template", "labels": {ROLLOUT: rollout},
                     "annotations": {REV: revision}, "ownerReferences": [owner]},
        "data": {"revision": revision, "deployment.json": json.dumps(deployment, sort_keys=True)},
    }


def deployment(name: str, rollout: str, role: str, revision: str, template: dict[str, Any], replicas: int,
               owner: dict[str, Any], policy_hash: str | None) -> dict[str, Any]:
    tpl = copy.deepcopy(template)
    meta = tpl.setdefault("metadata", {})
    meta.setdefault("labels", {}).update(labels(rollout, role, revision))
    pod = tpl.setdefault("spec", {})
    for c in pod.get("containers", []):
        env = c.setdefault("env", [])
        env.append({"name": "LAUNCHGATE_REVISION", "value": revision})
        env.append({"name": "LAUNCHGATE_ROLE", "value": role})
        if policy_hash:
            c.setdefault("volumeMounts", []).append({"name": "launchgate-policy", "mountPath": "/etc/launchgate",
                                                     "readOnly": True})
    if policy_hash:
        pod.setdefault("volumes", []).append(
            {"name": "launchgate-policy", "configMap": {"name": f"{rollout}-policy-{policy_hash}"}})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {ROLLOUT: rollout, ROLE: role},
                     "annotations": {REV: revision}, "ownerReferences": [owner]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {ROLLOUT: rollout, ROLE: role}},
            "template": tpl,
        },
    }


def replay_job(job_name: str, rollout: str, revision: str, replay: ReplaySpec, spec: AgentRolloutSpec,
               owner: dict[str, Any]) -> dict[str, Any]:
    tpl = copy.deepcopy(replay.template)
    tpl.setdefault("metadata", {}).setdefault("labels", {}).update({ROLLOUT: rollout, REV: revision})
    pod = tpl.setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    port = spec.traffic_routing.gateway_api.port if spec.traffic_routing.gateway_api else 80
    for c in pod.get("containers", []):
        c.setdefault("env", []).extend([
            {"name": "LAUNCHGATE_TARGET", "value": f"http://{rollout}-canary:{port}"},
            {"name": "LAUNCHGATE_REVISION", "value": revision},
        ])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "labels": {ROLLOUT: rollout, REV: revision}, "ownerReferences": [owner]},
        "spec": {"backoffLimit": replay.backoff_limit,
                 "activeDeadlineSeconds": int(parse_duration(replay.active_deadline)),
                 "template": tpl},
    }


def finite_values(values: dict[str, float | None]) -> dict[str, float]:
    """The values a record can hold: JSON has no NaN or infinity, and a missing value is left out."""
    return {k: v for k, v in values.items() if v is not None and math.isfinite(v)}


def decision_record(obj: dict[str, Any], rid: str, kind: str, actor: str, reason: str, st: AgentRolloutStatus,
                    decision: str | None, request_id: str | None, values: dict[str, float | None],
                    at: datetime) -> dict[str, Any]:
    """One immutable timeline entry. Its name derives from `rid`, which the caller makes
    deterministic, so creating it again after a restart is a conflict, not a duplicate.

    It has no ownerReference: the timeline is evidence, and an owner would let the garbage
    collector delete it with its rollout (a GitOps prune, a rename). The rollout's name and uid
    are in its labels, to list it by, and in its spec, which the API server keeps as written."""
    ns, name, uid = obj["metadata"]["namespace"], obj["metadata"]["name"], obj["metadata"].get("uid")
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DecisionRecord",
        "metadata": {
            "name": f"{name}-{rid}"[:253],
            "namespace": ns,
            "labels": {ROLLOUT: name} | ({ROLLOUT_UID: uid} if uid else {}),
        },
        "spec": {
            "id": rid,
            "rollout": name,
            "kind": kind,
            "phase": st.phase or "",
            "revision": st.canary_revision or st.stable_revision or "",
            "actor": actor,
            "reason": reason[:4096],
            "outcome": st.state or "",
            "values": finite_values(values),
            # Microseconds: records of one second must still sort in the order they were made.
            "at": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        },
    }
    if uid:
        body["spec"]["rolloutUid"] = uid
    if decision is not None:
        body["spec"]["decision"] = decision
    if request_id is not None:
        body["spec"]["requestId"] = request_id
    return body


def record_rollout_uid(record: dict[str, Any]) -> str | None:
    """The uid of the rollout a record is about, wherever its version of the operator wrote it
    (earlier versions named it only in an ownerReference); None when it says none."""
    meta = record.get("metadata") or {}
    uid = (meta.get("labels") or {}).get(ROLLOUT_UID) or (record.get("spec") or {}).get("rolloutUid")
    if uid:
        return str(uid)
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "AgentRollout"]
    return str(refs[0]["uid"]) if refs and refs[0].get("uid") else None


def renamed_for_rollout(record: dict[str, Any]) -> dict[str, Any]:
    """The record under a name of its rollout's own, for when a record of an earlier rollout of
    the same name (deleted, then created again) holds the usual one: still deterministic, so a
    repeat after a restart is again a conflict, not a duplicate."""
    out = copy.deepcopy(record)
    spec = out["spec"]
    out["metadata"]["name"] = f"{spec['rollout']}-{spec['rolloutUid'][:8]}-{spec['id']}"[:253]
    return out
