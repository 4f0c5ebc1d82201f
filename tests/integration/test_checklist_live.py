"""`launchgate checklist` against the real thing: synthetic agents exporting the agent metrics
contract, kube-state-metrics reading a real API server, one real Prometheus scraping both.

One set-up serves every test (module-scoped): a stable agent, a healthy canary, and one canary per
behaviour control broken by its knob; a healthy agent's Kubernetes objects, and one agent per
deployment control whose objects break it. Each test binds the checklist to one of them, so no test
waits for another's breakage to age out of the window.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import wait_for
from launchgate.core.hashing import policy_hash
from launchgate_dev import devenv
from launchgate_dev.synthetic import SyntheticAgent

REPO = Path(__file__).resolve().parents[2]
CHECKLIST = REPO / "examples" / "checklist" / "checklist.yaml"
WINDOW = "10s"
POLICY_TEXT = yaml.safe_load((REPO / "examples" / "production-policy.yaml").read_text())["data"]["policy.yaml"]
POLICY = policy_hash(POLICY_TEXT)  # what the agents report, and what the operator binds $policy to
CLASSES = "interactive,batch"

# The knob that breaks each behaviour control on a canary otherwise healthy.
BROKEN_AGENT: dict[int, dict[str, Any]] = {
    1: {"submit_policy_coverage": 0.5},
    2: {"dispatch_policy_coverage": 0.5},
    3: {"unapproved_rate": 0.5},
    4: {"policy_hash": "0ldb0ndle0"},
    5: {"unlinked_log_rate": 0.5},
    9: {"unvalidated_tool_call_rate": 0.5},
    10: {"output_safety_coverage": 0.5},
    11: {"terminal_retry_rate": 0.5},
    12: {"global_timeout": 1},
    14: {"requeue_ratio": 0.0},
    15: {"duplicate_rate": 0.5},
    16: {"p95_ms": 1500},
    17: {"success_rate": 0.98},
    18: {"cost_per_job": 0.2},
    20: {"drill_passed": 0},
}
# The deployment controls, each broken by what its agent's objects lack or share.
BROKEN_DEPLOYMENT = {6: "shared-sa", 7: "no-credential", 8: "no-egress", 13: "no-dlq-owner", 19: "no-runbook"}


def launchgate_script() -> str:
    script = shutil.which("launchgate", path=str(Path(sys.executable).parent))
    assert script, "the launchgate console script is not installed in this environment"
    return script


def objects(ns: str, agent: str, broken: str | None) -> list[dict[str, Any]]:
    """An agent's pods (two), ServiceAccount, credential Secret and egress NetworkPolicy."""
    sa = "shared" if broken == "shared-sa" else agent
    annotations = {"launchgate.dev/dlq-owner": "team-agents", "launchgate.dev/runbook": "https://runbooks/agents"}
    if broken == "no-dlq-owner":
        del annotations["launchgate.dev/dlq-owner"]
    if broken == "no-runbook":
        del annotations["launchgate.dev/runbook"]
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                                  "metadata": {"name": sa, "namespace": ns}}]
    for i in range(2):
        out.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{agent}-{i}", "namespace": ns, "labels": {"launchgate.dev/rollout": agent},
            "annotations": annotations},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "agent", "image": "agent:1"}]}})
    if broken != "no-credential":
        out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": f"{agent}-credentials", "namespace": ns, "labels": {"launchgate.dev/agent": agent}},
            "stringData": {"token": "t"}})
    if broken != "no-egress":
        out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {
            "name": f"{agent}-egress", "namespace": ns, "labels": {"launchgate.dev/agent": agent}},
            "spec": {"podSelector": {"matchLabels": {"launchgate.dev/rollout": agent}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "140.82.112.0/20"}}],
                                 "ports": [{"protocol": "TCP", "port": 443}]}]}})
    return out


@dataclass
class Setup:
    ns: str
    prometheus_url: str
    stable: str
    healthy: str
    broken_versions: dict[int, str]
    gate: Path

    def run(self, agent: str = "healthy", canary: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("--var", f"namespace={self.ns}", "--var", f"rollout={agent}",
                        "--var", f"canary={canary or self.healthy}", "--var", f"stable={self.stable}",
                        "--var", f"policy={POLICY}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [launchgate_script(), "checklist", "-f", str(self.gate), "--prometheus", self.prometheus_url,
             "--scrape-interval", "2s", "-o", "json", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def setup(control_plane: devenv.ControlPlane, prometheus: devenv.PrometheusServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    ns = f"checklist-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", ns)
    docs = objects(ns, "healthy", None) + objects(ns, "other-agent", None)
    docs = [d for d in docs if not (d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "other-agent")]
    for o in docs:  # the other agent runs as "shared", the ServiceAccount the shared-sa agent is given
        if o["kind"] == "Pod" and o["metadata"]["name"].startswith("other-agent"):
            o["spec"]["serviceAccountName"] = "shared"
    for broken in BROKEN_DEPLOYMENT.values():
        docs += [d for d in objects(ns, broken, broken)
                 if not (d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "shared")]
    docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shared", "namespace": ns}})
    # The healthy agent as an AgentRollout (no operator runs here: its status is written below as
    # the operator would have), with the checklist's policy bundle in a ConfigMap.
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "production-policy", "namespace": ns},
                 "data": {"policy.yaml": POLICY_TEXT}})
    docs.append({"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout",
                 "metadata": {"name": "healthy", "namespace": ns},
                 "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}},
                          "trafficRouting": {"replicaRatio": {}},
                          "policy": {"configMapRef": {"name": "production-policy"}}}})
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    control_plane.kubectl("patch", "agentrollout", "healthy", "-n", ns, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": {"stableRevision": "stable", "canaryRevision": "healthy"}}))

    workdir = tmp_path_factory.mktemp("ksm")
    ksm = devenv.KubeStateMetrics(control_plane.kubeconfig, workdir, namespaces=[ns]).start()
    agents: list[tuple[str, SyntheticAgent]] = []
    try:
        prometheus.add_target(f"ksm-{ns}", ksm.address)

        def start(version: str, **rates: Any) -> str:
            a = SyntheticAgent(version, namespace=ns, **{"job_classes": CLASSES, "policy_hash": POLICY, **rates}).start()
            target = f"{ns}-{version}"
            agents.append((target, a))
            prometheus.add_target(target, a.address)
            return version

        stable, healthy = start("stable"), start("healthy")
        broken_versions = {n: start(f"broken-{n}", **knobs) for n, knobs in BROKEN_AGENT.items()}
        gate = tmp_path_factory.mktemp("checklist") / "checklist.yaml"
        doc = yaml.safe_load(CHECKLIST.read_text())
        doc["spec"]["window"] = WINDOW  # seconds-scale, so the test needs seconds of history
        gate.write_text(yaml.safe_dump(doc))

        def history() -> bool:
            rows = prometheus.query(f'count_over_time(agent_jobs_total{{namespace="{ns}",outcome="success",'
                                    f'job_class="batch"}}[{WINDOW}])')
            return len(rows) == 2 + len(BROKEN_AGENT) and all(float(r["value"][1]) >= 6 for r in rows)

        def deployment_facts() -> bool:
            pods = prometheus.query(f'count by (label_launchgate_dev_rollout) '
                                    f'(kube_pod_labels{{namespace="{ns}"}})')
            return len(pods) == 2 + len(BROKEN_DEPLOYMENT) and bool(
                prometheus.query(f'kube_networkpolicy_spec_egress_rules{{namespace="{ns}"}}'))

        wait_for("every agent's series over a whole window", history, timeout=120)
        wait_for("kube-state-metrics' series of every agent's pods", deployment_facts, timeout=120)
        yield Setup(ns, prometheus.url, stable, healthy, broken_versions, gate)
    finally:
        for target, a in agents:
            prometheus.remove_target(target)
            a.stop()
        prometheus.remove_target(f"ksm-{ns}")
        ksm.stop()
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def verdict(r: subprocess.CompletedProcess[str]) -> tuple[int, list[int], dict[int, dict[str, Any]]] | None:
    if r.returncode not in (0, 1):
        raise AssertionError(f"exit {r.returncode}: {r.stderr}")
    doc = json.loads(r.stdout)
    rows = {row["control"]: row for row in doc["rows"]}
    return r.returncode, [n for n, row in rows.items() if row["result"] != "PASS"], rows


def test_a_healthy_agent_passes_all_20_rows(setup: Setup) -> None:
    def all_pass() -> Any:
        v = verdict(setup.run())
        return v if v is not None and v[1] == [] else None

    code, failing, rows = wait_for("all 20 rows to pass", all_pass, timeout=60)
    assert code == 0 and len(rows) == 20
    assert all(row["value"] is not None and row["owner"] for row in rows.values()), rows
    assert rows[6]["owner"] == "security-oncall" and rows[13]["owner"] == "sre-oncall"


def test_a_rollout_binds_the_checklist_to_its_revisions_and_policy(setup: Setup, kubeconfig: Path) -> None:
    """--rollout reads the AgentRollout from the API server: its namespace, name, revisions and the
    hash of its policy bundle, the one the agents report."""
    def all_pass() -> Any:
        v = verdict(setup.cli("--rollout", "healthy", "--var", f"namespace={setup.ns}", "--kubeconfig",
                              str(kubeconfig)))
        return v if v is not None and v[1] == [] else None

    code, _, rows = wait_for("all 20 rows to pass for the rollout", all_pass, timeout=60)
    assert code == 0 and rows[4]["value"] == 1
    missing = setup.cli("--rollout", "no-such-rollout", "--var", f"namespace={setup.ns}", "--kubeconfig",
                        str(kubeconfig))
    assert missing.returncode == 2 and "no-such-rollout" in missing.stderr and missing.stdout == "", missing.stderr


@pytest.mark.parametrize("control", sorted([*BROKEN_AGENT, *BROKEN_DEPLOYMENT]))
def test_breaking_one_control_blocks_exactly_its_row(setup: Setup, control: int) -> None:
    if control in BROKEN_AGENT:
        run = lambda: setup.run(canary=setup.broken_versions[control])  # noqa: E731
    else:
        run = lambda: setup.run(agent=BROKEN_DEPLOYMENT[control])  # noqa: E731
    last: list[Any] = []

    def only_this_row() -> bool:
        v = verdict(run())
        last[:] = [v]
        return v is not None and v[1] == [control]

    try:
        wait_for(f"row {control} alone to block", only_this_row, timeout=60)
    except AssertionError:
        raise AssertionError(f"failing rows: {last[0][1] if last else '?'}: "
                             f"{ {n: last[0][2][n]['reason'] for n in last[0][1]} if last else ''}") from None
    code, _, rows = last[0]
    launch_blocking = control in (1, 2, 3, 4, 5, 6, 10, 13, 16, 17)
    assert code == (1 if launch_blocking else 0)
    assert rows[control]["result"] == "BLOCK" and rows[control]["launchBlocking"] is launch_blocking
