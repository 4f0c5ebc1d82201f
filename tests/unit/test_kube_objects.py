"""The Kubernetes objects the operator asks for: each builder's output for known inputs.

The expected bodies are what the operator sends today, so a change to any of them is a change to
what lands in the cluster and shows up here first."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from launchgate.adapters import kube_objects as objects
from launchgate.api import AgentRolloutSpec, AgentRolloutStatus

OBJ = {"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout",
       "metadata": {"name": "r", "uid": "u-1", "namespace": "ns"}}
TEMPLATE = {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "agent", "image": "agent:1", "env": [{"name": "X", "value": "1"}]},
                                    {"name": "side", "image": "s:1"}]}}
SPEC = AgentRolloutSpec.model_validate({
    "template": TEMPLATE, "trafficRouting": {"gatewayAPI": {"httpRoute": "route", "port": 8080}},
    "phases": [{"name": "p", "weight": 10, "replay": {
        "template": {"spec": {"containers": [{"name": "replay", "image": "replay:1"}]}},
        "backoffLimit": 2, "activeDeadline": "5m"}}]})

OWNER = {'apiVersion': 'launchgate.dev/v1alpha1',
 'kind': 'AgentRollout',
 'name': 'r',
 'uid': 'u-1',
 'controller': True,
 'blockOwnerDeletion': True}

SERVICE = {'apiVersion': 'v1',
 'kind': 'Service',
 'metadata': {'name': 'r-canary',
              'labels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/role': 'canary'},
              'ownerReferences': [{'apiVersion': 'launchgate.dev/v1alpha1',
                                   'kind': 'AgentRollout',
                                   'name': 'r',
                                   'uid': 'u-1',
                                   'controller': True,
                                   'blockOwnerDeletion': True}]},
 'spec': {'selector': {'launchgate.dev/rollout': 'r', 'launchgate.dev/role': 'canary'},
          'ports': [{'name': 'http', 'port': 8080, 'targetPort': 'http'}]}}

POLICY_CM = {'apiVersion': 'v1',
 'kind': 'ConfigMap',
 'metadata': {'name': 'r-policy-abc123',
              'labels': {'launchgate.dev/rollout': 'r'},
              'ownerReferences': [{'apiVersion': 'launchgate.dev/v1alpha1',
                                   'kind': 'AgentRollout',
                                   'name': 'r',
                                   'uid': 'u-1',
                                   'controller': True,
                                   'blockOwnerDeletion': True}]},
 'data': {'policy.yaml': 'rules: []\n'},
 'immutable': True}

DEPLOYMENT_POLICY = {'apiVersion': 'apps/v1',
 'kind': 'Deployment',
 'metadata': {'name': 'r-stable',
              'labels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/role': 'stable'},
              'annotations': {'launchgate.dev/revision': 'rev1'},
              'ownerReferences': [{'apiVersion': 'launchgate.dev/v1alpha1',
                                   'kind': 'AgentRollout',
                                   'name': 'r',
                                   'uid': 'u-1',
                                   'controller': True,
                                   'blockOwnerDeletion': True}]},
 'spec': {'replicas': 3,
          'selector': {'matchLabels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/role': 'stable'}},
          'template': {'metadata': {'labels': {'app': 'a',
                                               'launchgate.dev/rollout': 'r',
                                               'launchgate.dev/role': 'stable',
                                               'launchgate.dev/revision': 'rev1'}},
                       'spec': {'containers': [{'name': 'agent',
                                                'image': 'agent:1',
                                                'env': [{'name': 'X', 'value': '1'},
                                                        {'name': 'LAUNCHGATE_REVISION', 'value': 'rev1'},
                                                        {'name': 'LAUNCHGATE_ROLE', 'value': 'stable'}],
                                                'volumeMounts': [{'name': 'launchgate-policy',
                                                                  'mountPath': '/etc/launchgate',
                                                                  'readOnly': True}]},
                                               {'name': 'side',
                                                'image': 's:1',
                                                'env': [{'name': 'LAUNCHGATE_REVISION', 'value': 'rev1'},
                                                        {'name': 'LAUNCHGATE_ROLE', 'value': 'stable'}],
                                                'volumeMounts': [{'name': 'launchgate-policy',
                                                                  'mountPath': '/etc/launchgate',
                                                                  'readOnly': True}]}],
                                'volumes': [{'name': 'launchgate-policy',
                                             'configMap': {'name': 'r-policy-abc123'}}]}}}}

DEPLOYMENT_NOPOLICY = {'apiVersion': 'apps/v1',
 'kind': 'Deployment',
 'metadata': {'name': 'r-canary',
              'labels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/role': 'canary'},
              'annotations': {'launchgate.dev/revision': 'rev2'},
              'ownerReferences': [{'apiVersion': 'launchgate.dev/v1alpha1',
                                   'kind': 'AgentRollout',
                                   'name': 'r',
                                   'uid': 'u-1',
                                   'controller': True,
                                   'blockOwnerDeletion': True}]},
 'spec': {'replicas': 1,
          'selector': {'matchLabels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/role': 'canary'}},
          'template': {'metadata': {'labels': {'app': 'a',
                                               'launchgate.dev/rollout': 'r',
                                               'launchgate.dev/role': 'canary',
                                               'launchgate.dev/revision': 'rev2'}},
                       'spec': {'containers': [{'name': 'agent',
                                                'image': 'agent:1',
                                                'env': [{'name': 'X', 'value': '1'},
                                                        {'name': 'LAUNCHGATE_REVISION', 'value': 'rev2'},
                                                        {'name': 'LAUNCHGATE_ROLE', 'value': 'canary'}]},
                                               {'name': 'side',
                                                'image': 's:1',
                                                'env': [{'name': 'LAUNCHGATE_REVISION', 'value': 'rev2'},
                                                        {'name': 'LAUNCHGATE_ROLE', 'value': 'canary'}]}]}}}}

STABLE_TEMPLATE = {'apiVersion': 'v1',
 'kind': 'ConfigMap',
 'metadata': {'name': 'r-stable-template',
              'labels': {'launchgate.dev/rollout': 'r'},
              'annotations': {'launchgate.dev/revision': 'rev1'},
              'ownerReferences': [{'apiVersion': 'launchgate.dev/v1alpha1',
                                   'kind': 'AgentRollout',
                                   'name': 'r',
                                   'uid': 'u-1',
                                   'controller': True,
                                   'blockOwnerDeletion': True}]},
 'data': {'revision': 'rev1',
          'deployment.json': '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"annotations": '
                             '{"launchgate.dev/revision": "rev1"}, "labels": {"launchgate.dev/role": '
                             '"stable", "launchgate.dev/rollout": "r"}, "name": "r-stable", '
                             '"ownerReferences": [{"apiVersion": "launchgate.dev/v1alpha1", '
                             '"blockOwnerDeletion": true, "controller": true, "kind": "AgentRollout", '
                             '"name": "r", "uid": "u-1"}]}, "spec": {"replicas": 3, "selector": '
                             '{"matchLabels": {"launchgate.dev/role": "stable", "launchgate.dev/rollout": '
                             '"r"}}, "template": {"metadata": {"labels": {"app": "a", '
                             '"launchgate.dev/revision": "rev1", "launchgate.dev/role": "stable", '
                             '"launchgate.dev/rollout": "r"}}, "spec": {"containers": [{"env": [{"name": '
                             '"X", "value": "1"}, {"name": "LAUNCHGATE_REVISION", "value": "rev1"}, {"name": '
                             '"LAUNCHGATE_ROLE", "value": "stable"}], "image": "agent:1", "name": "agent", '
                             '"volumeMounts": [{"mountPath": "/etc/launchgate", "name": "launchgate-policy", '
                             '"readOnly": true}]}, {"env": [{"name": "LAUNCHGATE_REVISION", "value": '
                             '"rev1"}, {"name": "LAUNCHGATE_ROLE", "value": "stable"}], "image": "s:1", '
                             '"name": "side", "volumeMounts": [{"mountPath": "/etc/launchgate", "name": '
                             '"launchgate-policy", "readOnly": true}]}], "volumes": [{"configMap": {"name": '
                             '"r-policy-abc123"}, "name": "launchgate-policy"}]}}}}'}}

REPLAY_JOB = {'apiVersion': 'batch/v1',
 'kind': 'Job',
 'metadata': {'name': 'r-replay-rev2',
              'labels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/revision': 'rev2'},
              'ownerReferences': [{'apiVersion': 'launchgate.dev/v1alpha1',
                                   'kind': 'AgentRollout',
                                   'name': 'r',
                                   'uid': 'u-1',
                                   'controller': True,
                                   'blockOwnerDeletion': True}]},
 'spec': {'backoffLimit': 2,
          'activeDeadlineSeconds': 300,
          'template': {'spec': {'containers': [{'name': 'replay',
                                                'image': 'replay:1',
                                                'env': [{'name': 'LAUNCHGATE_TARGET',
                                                         'value': 'http://r-canary:8080'},
                                                        {'name': 'LAUNCHGATE_REVISION', 'value': 'rev2'}]}],
                                'restartPolicy': 'Never'},
                       'metadata': {'labels': {'launchgate.dev/rollout': 'r',
                                               'launchgate.dev/revision': 'rev2'}}}}}

RECORD_0 = {'apiVersion': 'launchgate.dev/v1alpha1',
 'kind': 'DecisionRecord',
 'metadata': {'name': 'r-d-abc',
              'namespace': 'ns',
              'labels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/rollout-uid': 'u-1'}},
 'spec': {'id': 'd-abc',
          'rollout': 'r',
          'rolloutUid': 'u-1',
          'kind': 'decision',
          'phase': 'Canary1',
          'revision': 'rev2',
          'actor': 'op',
          'reason': 'x' * 4096,
          'outcome': 'Progressing',
          'values': {'a': 1.5},
          'at': '2026-12-07T18:17:11.871973Z',
          'decision': 'promote',
          'requestId': 'req-1'}}

RECORD_1 = {'apiVersion': 'launchgate.dev/v1alpha1',
 'kind': 'DecisionRecord',
 'metadata': {'name': 'r-v-xyz',
              'namespace': 'ns',
              'labels': {'launchgate.dev/rollout': 'r', 'launchgate.dev/rollout-uid': 'u-1'}},
 'spec': {'id': 'v-xyz',
          'rollout': 'r',
          'rolloutUid': 'u-1',
          'kind': 'approval',
          'phase': '',
          'revision': 'rev1',
          'actor': 'alice',
          'reason': 'approve on req-1',
          'outcome': '',
          'values': {},
          'at': '2026-12-07T18:17:11.872122Z'}}


def test_owner_reference() -> None:
    assert objects.owner_reference(OBJ) == OWNER


def test_service() -> None:
    assert objects.service("r-canary", "r", "canary", 8080, OWNER) == SERVICE


def test_policy_configmap() -> None:
    assert objects.policy_configmap("r", "rules: []\n", "abc123", OWNER) == POLICY_CM


def test_deployment_with_and_without_a_policy_leaves_the_template_alone() -> None:
    before = copy.deepcopy(TEMPLATE)
    assert objects.deployment("r-stable", "r", "stable", "rev1", TEMPLATE, 3, OWNER, "abc123") == DEPLOYMENT_POLICY
    assert objects.deployment("r-canary", "r", "canary", "rev2", TEMPLATE, 1, OWNER, None) == DEPLOYMENT_NOPOLICY
    assert TEMPLATE == before


def test_stable_template() -> None:
    assert objects.stable_template("r", "rev1", DEPLOYMENT_POLICY, OWNER) == STABLE_TEMPLATE


def test_replay_job() -> None:
    replay = SPEC.effective_phases()[0].replay
    assert replay is not None
    assert objects.replay_job("r-replay-rev2", "r", "rev2", replay, SPEC, OWNER) == REPLAY_JOB


def _without_at(body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    del out["spec"]["at"]
    return out


def test_decision_records() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)
    st = AgentRolloutStatus(phase="Canary1", canary_revision="rev2", stable_revision="rev1", state="Progressing")
    first = objects.decision_record(OBJ, "d-abc", "decision", "op", "x" * 5000, st, "promote", "req-1",
                                    {"a": 1.5, "b": None, "c": float("nan"), "d": float("inf")}, at)
    assert _without_at(first) == _without_at(RECORD_0)
    assert first["spec"]["at"] == "2026-01-02T03:04:05.000600Z"
    second = objects.decision_record(OBJ, "v-xyz", "approval", "alice", "approve on req-1",
                                     AgentRolloutStatus(stable_revision="rev1"), None, None, {}, at)
    assert _without_at(second) == _without_at(RECORD_1)


def test_a_record_names_its_rollout_by_uid_and_has_no_owner() -> None:
    """No ownerReference: the garbage collector would delete the timeline with its rollout."""
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    record = objects.decision_record(OBJ, "d-abc", "decision", "op", "", AgentRolloutStatus(), None, None, {}, at)
    assert "ownerReferences" not in record["metadata"]
    assert objects.record_rollout_uid(record) == "u-1"
    # Records written before the uid was in labels and spec name it only as their owner.
    older = {"metadata": {"ownerReferences": [OWNER | {"controller": False}]}, "spec": {"id": "d-abc"}}
    assert objects.record_rollout_uid(older) == "u-1"
    assert objects.record_rollout_uid({"metadata": {}, "spec": {}}) is None


def test_a_record_of_a_re_created_rollout_gets_a_name_of_its_own() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    again = {**OBJ, "metadata": {**OBJ["metadata"], "uid": "0a1b2c3d-9999"}}
    record = objects.decision_record(again, "d-abc", "decision", "op", "", AgentRolloutStatus(), None, None, {}, at)
    renamed = objects.renamed_for_rollout(record)
    assert renamed["metadata"]["name"] == "r-0a1b2c3d-d-abc" and record["metadata"]["name"] == "r-d-abc"
    assert renamed["spec"] == record["spec"] and renamed["metadata"]["labels"] == record["metadata"]["labels"]
