"""The kwok stages (hack/testenv/kwok/) and the annotations devenv names for them are one contract:
a test that sets devenv.UNREADY must reach a stage that reads it."""

from __future__ import annotations

import re

import yaml

from launchgate_dev import devenv


def _stages() -> dict[str, dict]:
    stages: dict[str, dict] = {}
    for path in sorted(devenv.KWOK_STAGES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] == "kwok.x-k8s.io/v1alpha1" and doc["kind"] == "Stage", path
            stages[doc["metadata"]["name"]] = doc
    return stages


def test_every_pod_annotation_devenv_names_is_read_by_a_stage_and_no_other() -> None:
    pod_stages = [s for s in _stages().values() if s["spec"]["resourceRef"]["kind"] == "Pod"]
    read = {key for s in pod_stages for key in re.findall(r'annotations\["([^"]+)"\]', yaml.safe_dump(s))}
    named = {devenv.READY_AFTER, devenv.UNREADY, devenv.EXIT_CODE, devenv.RUN_FOR}
    assert read == named


def test_nodes_become_ready_and_pods_start_become_ready_finish_and_go() -> None:
    stages = _stages()
    assert {"node-initialize", "node-heartbeat"} <= set(stages)
    assert {"pod-start", "pod-ready", "pod-unready", "job-pod-succeed", "job-pod-fail", "pod-delete"} <= set(stages)
    # A readiness flip in both directions: the same annotation gates pod-ready and triggers pod-unready.
    ready = yaml.safe_dump(stages["pod-ready"]["spec"]["selector"])
    unready = yaml.safe_dump(stages["pod-unready"]["spec"]["selector"])
    assert devenv.UNREADY in ready and devenv.UNREADY in unready
    assert stages["pod-delete"]["spec"]["next"]["delete"] is True
