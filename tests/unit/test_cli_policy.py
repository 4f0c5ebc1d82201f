"""`launchgate policy eval|validate` in a real process: exit codes, stdin JSON, errors naming rule and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launchgate.core.policy import bundle_hash, load_bundle

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "production-policy.yaml"  # a ConfigMap, key policy.yaml: the bundle
SEED_TEXT = yaml.safe_load(POLICY.read_text())["data"]["policy.yaml"]
SEED_HASH = bundle_hash(load_bundle(SEED_TEXT))


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from launchgate.cli.policy import policy; policy()", *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("args", "code", "first_line"),
    [
        (["--topic", "job.deploy.apply", "--label", "env=prod", "--risk-tag", "egress"], 3,
         "REQUIRE_APPROVAL by rule approval-prod-write (rules[1]): production deployment requires human approval"),
        (["--topic", "job.exec.shell", "--label", "env=prod", "--label", "command_class=destructive"], 1,
         "DENY by rule deny-destructive-prod (rules[0]): destructive production command blocked"),
        (["--topic", "job.integrations.call", "--risk-tag", "egress"], 0,
         "ALLOW_WITH_CONSTRAINTS by rule constrain-external-egress (rules[2]): matched rule constrain-external-egress"),
        (["--topic", "job.repo.read"], 0, "ALLOW by rule allow-read-only (rules[3]): matched rule allow-read-only"),
        (["--topic", "job.deploy.apply", "--label", "env=staging"], 1,
         "DENY by default (no rule matched: fail closed): no rule matched"),
    ],
)
def test_eval_exit_codes(args: list[str], code: int, first_line: str) -> None:
    p = run("eval", "-f", str(POLICY), *args)
    assert p.returncode == code, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == first_line
    assert lines[-1] == f"bundle: {SEED_HASH}"


def test_eval_text_prints_constraints() -> None:
    p = run("eval", "-f", str(POLICY), "--topic", "job.integrations.call", "--risk-tag", "egress")
    assert 'constraints: {"allowed_hosts": ["api.github.com", "api.slack.com"], "timeout_ms": 15000}' in p.stdout


def test_eval_job_json_on_stdin() -> None:
    job = {"topic": "job.integrations.call", "labels": {"env": "prod"}, "risk_tags": ["egress", "pii"]}
    p = run("eval", "-f", str(POLICY), "--job", "-", "-o", "json", stdin=json.dumps(job))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc == {
        "rule_id": "constrain-external-egress",
        "decision": "ALLOW_WITH_CONSTRAINTS",
        "reason": "matched rule constrain-external-egress",
        "constraints": {"allowed_hosts": ["api.github.com", "api.slack.com"], "timeout_ms": 15000},
        "rule_index": 2,
        "allowed": True,
        "bundle_hash": SEED_HASH,
        "job": job,
    }


def test_eval_job_from_file_and_no_match_json(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"topic": "job.payments.refund", "riskTags": ["financial"]}))
    p = run("eval", "-f", str(POLICY), "--job", str(path), "-o", "json")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert (doc["decision"], doc["rule_id"], doc["rule_index"], doc["allowed"]) == ("DENY", None, None, False)


def test_bundle_on_stdin() -> None:
    p = run("eval", "-f", "-", "--topic", "job.repo.read", stdin=SEED_TEXT)
    assert p.returncode == 0 and p.stdout.startswith("ALLOW by rule allow-read-only")


BAD = SEED_TEXT.replace("decision: ALLOW_WITH_CONSTRAINTS", "decision: ALLOWED")


def test_bad_bundle_exits_2_naming_rule_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    p = run("eval", "-f", str(path), "--topic", "job.repo.read")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("launchgate policy: rules[2] (constrain-external-egress).decision: must be one of DENY")
    p = run("eval", "-f", str(path), "--topic", "job.repo.read", "-o", "json")
    assert p.returncode == 2
    doc = json.loads(p.stdout)
    assert doc["allowed"] is False and doc["problems"][0].startswith("rules[2] (constrain-external-egress).decision")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--topic", "t", "--label", "env"], None, "--label 'env': expected KEY=VALUE"),
        (["--topic", "t", "--label", "a=1", "--label", "a=2"], None, "--label a: given more than once"),
        ([], None, "give the job with --topic"),
        (["--job", "-", "--topic", "t"], "{}", "--job cannot be combined"),
        (["--job", "-"], '{"topic": "t", "risk": ["egress"]}', "job.risk: Extra inputs are not permitted"),
        (["--job", "-"], "not json", "job: invalid JSON"),
    ],
)
def test_bad_job_exits_2(args: list[str], stdin: str | None, message: str) -> None:
    p = run("eval", "-f", str(POLICY), *args, stdin=stdin)
    assert p.returncode == 2
    assert message in p.stderr


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(SEED_TEXT.replace("    decision: DENY\n", "    decision: DENY\n    decision: ALLOW\n"))
    p = run("validate", "-f", str(path))
    assert p.returncode == 2
    assert p.stderr.strip() == "launchgate policy: invalid YAML at line 13, column 5: duplicate key 'decision'"


def test_missing_file_exits_2(tmp_path: Path) -> None:
    p = run("eval", "-f", str(tmp_path / "nope.yaml"), "--topic", "t")
    assert p.returncode == 2 and "No such file or directory" in p.stderr


def test_configmap_and_agentrollout_wrappers(tmp_path: Path) -> None:
    import yaml

    bundle = yaml.safe_load(SEED_TEXT)
    cm = tmp_path / "cm.yaml"
    cm.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "agent-policy"},
                                  "data": {"policy.yaml": SEED_TEXT}}))
    p = run("eval", "-f", str(cm), "--topic", "job.repo.read")
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == f"bundle: {SEED_HASH}"
    p = run("validate", "-f", str(cm), "--key", "other.yaml")
    assert p.returncode == 2 and "ConfigMap agent-policy has no key 'other.yaml'" in p.stderr

    ar = tmp_path / "rollout.yaml"
    broken = yaml.safe_load(BAD)
    ar.write_text(yaml.safe_dump_all([
        {"kind": "LaunchGate", "metadata": {"name": "g"}, "spec": {}},
        {"apiVersion": "launchgate.dev/v1alpha1", "kind": "AgentRollout", "metadata": {"name": "support-agent"},
         "spec": {"policy": {"bundle": broken}}},
    ]))
    p = run("validate", "-f", str(ar))
    assert p.returncode == 2
    assert ("document 2: AgentRollout support-agent spec.policy.bundle: rules[2] (constrain-external-egress)"
            ".decision") in p.stderr
    ar.write_text(yaml.safe_dump({"kind": "AgentRollout", "metadata": {"name": "a"}, "spec": {"policy": {"bundle": bundle}}}))
    p = run("eval", "-f", str(ar), "--topic", "job.deploy.apply", "--label", "env=prod")
    assert p.returncode == 3


def test_validate() -> None:
    p = run("validate", "-f", str(POLICY))
    assert p.returncode == 0 and p.stdout.strip() == f"valid: 4 rules, version v1, bundle {SEED_HASH}"
    p = run("validate", "-f", str(POLICY), "-o", "json")
    assert json.loads(p.stdout) == {"valid": True, "version": "v1", "rules": 4, "bundle_hash": SEED_HASH,
                                    "warnings": []}


def test_validate_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD.replace("  - id: allow-read-only", "  - id: deny-destructive-prod"))
    p = run("validate", "-f", str(path), "-o", "json")
    assert p.returncode == 2
    problems = json.loads(p.stdout)["problems"]
    assert len(problems) == 2 and "duplicate rule id" in problems[1]
    assert len(p.stderr.splitlines()) == 2


def test_validate_strict_fails_on_unreachable_rules(tmp_path: Path) -> None:
    path = tmp_path / "shadowed.yaml"
    path.write_text("rules:\n"
                    "  - {id: allow-all, match: {}, decision: ALLOW}\n"
                    "  - {id: deny-shell, match: {topic: job.exec.shell}, decision: DENY}\n")
    p = run("validate", "-f", str(path))
    assert p.returncode == 0
    assert "warning: rules[1] (deny-shell) is unreachable: rules[0] (allow-all)" in p.stderr
    assert run("validate", "-f", str(path), "--strict").returncode == 1
