"""The CRDs on a real kube-apiserver: examples apply, columns print, bad input is refused by field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from kubectl_util import kubectl

ROOT = Path(__file__).resolve().parents[2]
NS = "crd-tests"


@pytest.fixture(scope="module")
def ns(kubeconfig: Path) -> str:
    kubectl(kubeconfig, "create", "namespace", NS)
    yield NS
    kubectl(kubeconfig, "delete", "namespace", NS, "--wait=false", check=False)


def _retarget(text: str) -> str:
    docs = list(yaml.safe_load_all(text))
    for d in docs:
        d["metadata"]["namespace"] = NS
    return yaml.safe_dump_all(docs)


def test_examples_apply_and_print_columns(kubeconfig: Path, ns: str) -> None:
    for name in ("launchgates.yaml", "agentrollout.yaml"):
        kubectl(kubeconfig, "apply", "-f", "-", stdin=_retarget((ROOT / "examples" / name).read_text()))
    gates = kubectl(kubeconfig, "get", "launchgates", "-n", ns).stdout
    header = gates.splitlines()[0].split()
    assert header == ["NAME", "DECISION", "PASSING", "WINDOW", "EVALUATED", "AGE"]
    assert "canary1" in gates and "10m" in gates
    rollouts = kubectl(kubeconfig, "get", "agentrollouts", "-n", ns).stdout
    assert rollouts.splitlines()[0].split() == ["NAME", "PHASE", "WEIGHT", "TRAFFIC", "DECISION", "REVISION", "AGE"]
    assert "support-agent" in rollouts
    # Short names, singular names and the category work as a person would type them: the
    # category is no resource's name, so `kubectl get launchgate NAME` means the kind.
    assert "canary1" in kubectl(kubeconfig, "get", "lg", "-n", ns).stdout
    assert "canary1" in kubectl(kubeconfig, "get", "launchgate", "canary1", "-n", ns).stdout
    assert "support-agent" in kubectl(kubeconfig, "get", "agentrollout", "support-agent", "-n", ns).stdout
    everything = kubectl(kubeconfig, "get", "launchgate-all", "-n", ns).stdout
    assert "support-agent" in everything and "canary1" in everything


GATE = {
    "apiVersion": "launchgate.dev/v1alpha1",
    "kind": "LaunchGate",
    "metadata": {"name": "bad", "namespace": NS},
    "spec": {"window": "10m", "blockers": [{"name": "b1", "query": "up", "target": {"gte": 0.99}}]},
}
ROLLOUT = yaml.safe_load((ROOT / "examples" / "agentrollout.yaml").read_text())
ROLLOUT["metadata"] = {"name": "bad", "namespace": NS}


def _gate(mutate) -> dict:
    obj = copy.deepcopy(GATE)
    mutate(obj["spec"])
    return obj


def _counts(mutate) -> dict:
    """A valid count blocker, then `mutate`d."""
    def change(spec: dict) -> None:
        b = spec["blockers"][0]
        b.pop("query")
        b.update(errors="sum(increase(errors_total[$window]))", total="sum(increase(requests_total[$window]))",
                 target={"lte": 0.01}, confidence=0.95, minSamples=100)
        mutate(b)
    return _gate(change)


def _counted(trigger: dict) -> dict:
    """A rollback trigger without its query, to be given counts."""
    trigger.pop("query")
    trigger.pop("baselineQuery", None)
    return trigger


def _rollout(mutate) -> dict:
    obj = copy.deepcopy(ROLLOUT)
    mutate(obj["spec"])
    return obj


INVALID = [
    ("two targets", _gate(lambda s: s["blockers"][0].update(target={"gte": 0.9, "lte": 2})),
     ["spec.blockers[0].target", "exactly one of"]),
    ("no target", _gate(lambda s: s["blockers"][0].update(target={})), ["spec.blockers[0].target"]),
    ("missing query", _gate(lambda s: s["blockers"][0].pop("query")), ["spec.blockers[0].query", "needs query"]),
    ("empty query", _gate(lambda s: s["blockers"][0].update(query="")), ["spec.blockers[0].query"]),
    ("malformed window", _gate(lambda s: s.update(window="ten minutes")), ["spec.window"]),
    ("zero window", _gate(lambda s: s.update(window="0s")), ["spec.window", "positive duration"]),
    ("bad missing-data policy", _gate(lambda s: s.update(onMissingData="promote")), ["spec.onMissingData"]),
    ("duplicate blockers", _gate(lambda s: s["blockers"].append(dict(s["blockers"][0]))),
     ["spec.blockers", "unique"]),
    # Evidence: counts, confidence, minSamples, the judge.
    ("count blocker without total", _counts(lambda b: b.pop("total")),
     ["spec.blockers[0].total", "needs total beside successes or errors"]),
    ("count blocker without events", _counts(lambda b: b.pop("errors")),
     ["spec.blockers[0].successes", "needs successes or errors beside total"]),
    ("successes and errors", _counts(lambda b: b.update(successes="sum(ok)")),
     ["spec.blockers[0].errors", "exactly one of successes, errors"]),
    ("query and counts", _counts(lambda b: b.update(query="up")), ["spec.blockers[0].query", "exclusive"]),
    ("confidence 1", _counts(lambda b: b.update(confidence=1)), ["spec.blockers[0].confidence", "less than 1"]),
    ("confidence 0", _counts(lambda b: b.update(confidence=0)), ["spec.blockers[0].confidence", "greater than 0"]),
    ("confidence 1.5", _counts(lambda b: b.update(confidence=1.5)), ["spec.blockers[0].confidence"]),
    ("minSamples 0", _counts(lambda b: b.update(minSamples=0)),
     ["spec.blockers[0].minSamples", "greater than or equal to 1"]),
    ("confidence on a plain query", _gate(lambda s: s["blockers"][0].update(confidence=0.95)),
     ["spec.blockers[0].confidence", "needs counts"]),
    ("confidence with eq", _counts(lambda b: b.update(target={"eq": 0.01})),
     ["spec.blockers[0].target", "compared with gte, lte"]),
    ("judge confidence 1", _gate(lambda s: s["blockers"][0].update(target={"judge": {"confidence": 1}})),
     ["spec.blockers[0].target.judge.confidence"]),
    ("judge bad direction", _gate(lambda s: s["blockers"][0].update(target={"judge": {"direction": "up"}})),
     ["spec.blockers[0].target.judge.direction"]),
    ("judge on counts", _counts(lambda b: b.update(target={"judge": {}})),
     ["spec.blockers[0].query", "a judge compares the samples of query"]),
    ("trigger counts without total", _rollout(lambda s: _counted(s["phases"][1]["rollbackTriggers"][0]).update(
        errors="sum(err)", confidence=0.95)),
     ["spec.phases[1].rollbackTriggers[0].total", "needs total"]),
    ("trigger confidence 1", _rollout(lambda s: _counted(s["phases"][1]["rollbackTriggers"][0]).update(
        errors="sum(err)", total="sum(all)", confidence=1)),
     ["spec.phases[1].rollbackTriggers[0].confidence"]),
    ("trigger threshold and judge", _rollout(lambda s: s["phases"][1]["rollbackTriggers"][0].update(judge={})),
     ["spec.phases[1].rollbackTriggers[0]", "exactly one of above, below, judge"]),
    ("weight 150", _rollout(lambda s: s["phases"][1].update(weight=150)), ["spec.phases[1].weight"]),
    ("decreasing weights", _rollout(lambda s: s["phases"][2].update(weight=3)),
     ["spec.phases", "must not decrease"]),
    ("decreasing steps", _rollout(lambda s: s["phases"][3].update(weights=[100, 50])),
     ["spec.phases[3].weights", "must not decrease"]),
    ("weight and weights", _rollout(lambda s: s["phases"][3].update(weight=50)),
     ["spec.phases[3]", "exactly one of weight, weights"]),
    ("malformed trigger duration", _rollout(lambda s: s["phases"][1]["rollbackTriggers"][0].update({"for": "10 min"})),
     ["spec.phases[1].rollbackTriggers[0].for"]),
    ("two routers", _rollout(lambda s: s["trafficRouting"].update(replicaRatio={})),
     ["spec.trafficRouting", "exactly one of"]),
    ("bad policy decision", _rollout(lambda s: s["policy"]["bundle"]["rules"][0].update(decision="MAYBE")),
     ["spec.policy.bundle.rules[0].decision"]),
    ("duplicate phase names", _rollout(lambda s: s["phases"].append(dict(s["phases"][3]))),
     ["spec.phases[4]", "Duplicate value"]),
]


@pytest.mark.parametrize("obj,expected", [(o, e) for _, o, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_api_server_refuses_invalid_objects_naming_the_field(kubeconfig: Path, ns: str, obj: dict,
                                                              expected: list[str]) -> None:
    proc = kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(obj), check=False)
    assert proc.returncode != 0, f"the API server accepted an invalid object: {proc.stdout}"
    for fragment in expected:
        assert fragment in proc.stderr, proc.stderr


def test_unknown_decision_in_status_is_refused(kubeconfig: Path, ns: str) -> None:
    obj = copy.deepcopy(GATE)
    obj["metadata"]["name"] = "status-check"
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(obj))
    ok = kubectl(kubeconfig, "patch", "launchgates", "status-check", "-n", ns, "--subresource=status",
                 "--type=merge", "-p", '{"status": {"decision": "hold"}}', check=False)
    assert ok.returncode == 0, ok.stderr
    bad = kubectl(kubeconfig, "patch", "launchgates", "status-check", "-n", ns, "--subresource=status",
                  "--type=merge", "-p", '{"status": {"decision": "yolo"}}', check=False)
    assert bad.returncode != 0 and "status.decision" in bad.stderr, bad.stderr


def test_timeline_records_and_approvals_are_immutable(kubeconfig: Path, ns: str) -> None:
    record = {
        "apiVersion": "launchgate.dev/v1alpha1", "kind": "DecisionRecord",
        "metadata": {"name": "rec-1", "namespace": ns},
        "spec": {"id": "rec-1", "rollout": "x", "kind": "decision", "decision": "hold", "phase": "Canary1",
                 "revision": "abc", "actor": "launchgate-operator", "at": "2026-01-01T00:00:00Z"},
    }
    kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(record))
    edit = kubectl(kubeconfig, "patch", "decisionrecord", "rec-1", "-n", ns, "--type=merge",
                   "-p", '{"spec": {"decision": "promote"}}', check=False)
    assert edit.returncode != 0 and "immutable" in edit.stderr, edit.stderr


def test_evidence_gates_and_triggers_are_accepted(kubeconfig: Path, ns: str) -> None:
    gate = _counts(lambda b: None)
    gate["metadata"]["name"] = "evidence"
    gate["spec"]["blockers"].append({"name": "latency", "query": "p95", "target": {"judge": {
        "direction": "higherIsBad", "confidence": 0.99, "tolerance": 50, "step": "30s", "minSamples": 10}}})
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(gate))
    rollout = _rollout(lambda s: s["phases"][1]["rollbackTriggers"].extend([
        {"name": "errors-significant", "errors": "sum(err)", "total": "sum(all)", "confidence": 0.95,
         "above": {"baselineRatio": 1}, "for": "2m"},
        {"name": "latency-judge", "query": "p95", "judge": {"direction": "higherIsBad"}, "for": "10m"}]))
    rollout["metadata"]["name"] = "evidence"
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(rollout))
