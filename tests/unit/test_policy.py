"""Dispatch-time policy: the checklist's production-policy.yaml as a decision table, and bad bundles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from launchgate.core.policy import (
    NO_MATCH_REASON,
    JobDescription,
    PolicyError,
    bundle_hash,
    evaluate,
    load_bundle,
    parse_job,
    shadowed_rules,
    topic_matches,
)

ROOT = Path(__file__).resolve().parents[2]
# examples/production-policy.yaml is a ConfigMap; the bundle is its key policy.yaml.
SEED_TEXT = yaml.safe_load((ROOT / "examples" / "production-policy.yaml").read_text())["data"]["policy.yaml"]
SEED = load_bundle(SEED_TEXT)
EGRESS_CONSTRAINTS = {"allowed_hosts": ["api.github.com", "api.slack.com"], "timeout_ms": 15000}


def job(topic: str, labels: dict[str, str] | None = None, tags: list[str] | None = None) -> JobDescription:
    return JobDescription(topic=topic, labels=labels or {}, risk_tags=tags or [])


def test_seed_example_is_the_seeds_bundle() -> None:
    assert [r.id for r in SEED.rules] == [
        "deny-destructive-prod", "approval-prod-write", "constrain-external-egress", "allow-read-only"]
    assert [r.decision for r in SEED.rules] == ["DENY", "REQUIRE_APPROVAL", "ALLOW_WITH_CONSTRAINTS", "ALLOW"]


@pytest.mark.parametrize(
    ("topic", "labels", "tags", "rule_id", "decision"),
    [
        # deny-destructive-prod: both labels must match
        ("job.exec.shell", {"env": "prod", "command_class": "destructive"}, [], "deny-destructive-prod", "DENY"),
        ("job.exec.shell", {"env": "prod", "command_class": "destructive", "team": "x"}, ["egress"],
         "deny-destructive-prod", "DENY"),
        ("job.exec.shell", {"env": "prod", "command_class": "read"}, [], None, "DENY"),
        ("job.exec.shell", {"env": "staging", "command_class": "destructive"}, [], None, "DENY"),
        ("job.exec.shell", {"command_class": "destructive"}, [], None, "DENY"),
        # approval-prod-write: extra labels and tags on the job do not matter
        ("job.deploy.apply", {"env": "prod"}, [], "approval-prod-write", "REQUIRE_APPROVAL"),
        ("job.deploy.apply", {"env": "prod", "region": "eu"}, ["egress"], "approval-prod-write", "REQUIRE_APPROVAL"),
        ("job.deploy.apply", {"env": "staging"}, [], None, "DENY"),
        ("job.deploy.apply", {}, [], None, "DENY"),
        ("job.deploy.apply", {"env": "Prod"}, [], None, "DENY"),  # label values are case-sensitive
        # constrain-external-egress: the risk tag must be present
        ("job.integrations.call", {}, ["egress"], "constrain-external-egress", "ALLOW_WITH_CONSTRAINTS"),
        ("job.integrations.call", {"env": "prod"}, ["pii", "egress"], "constrain-external-egress",
         "ALLOW_WITH_CONSTRAINTS"),
        ("job.integrations.call", {}, [], None, "DENY"),
        ("job.integrations.call", {}, ["pii"], None, "DENY"),
        # allow-read-only: topic only, exact
        ("job.repo.read", {}, [], "allow-read-only", "ALLOW"),
        ("job.repo.read", {"env": "prod"}, ["egress"], "allow-read-only", "ALLOW"),
        ("job.repo.reader", {}, [], None, "DENY"),
        ("job.repo", {}, [], None, "DENY"),
        ("JOB.REPO.READ", {}, [], None, "DENY"),
        # fail closed: a topic nobody wrote a rule for
        ("job.payments.refund", {"env": "prod"}, ["financial"], None, "DENY"),
    ],
)
def test_seed_decision_table(topic: str, labels: dict[str, str], tags: list[str], rule_id: str | None,
                             decision: str) -> None:
    d = evaluate(SEED, job(topic, labels, tags))
    assert (d.rule_id, d.decision) == (rule_id, decision)
    if rule_id is None:
        assert d.reason == NO_MATCH_REASON and d.constraints == {}


def test_decision_details() -> None:
    d = evaluate(SEED, job("job.integrations.call", tags=["egress"]))
    assert d.constraints == EGRESS_CONSTRAINTS and d.allowed
    assert d.to_dict() == {"rule_id": "constrain-external-egress", "decision": "ALLOW_WITH_CONSTRAINTS",
                           "reason": "matched rule constrain-external-egress", "constraints": EGRESS_CONSTRAINTS}
    d = evaluate(SEED, job("job.deploy.apply", {"env": "prod"}))
    assert d.reason == "production deployment requires human approval" and not d.allowed
    # Mutating a returned decision's constraints must not change the bundle.
    d = evaluate(SEED, job("job.integrations.call", tags=["egress"]))
    d.constraints["timeout_ms"] = 1
    assert evaluate(SEED, job("job.integrations.call", tags=["egress"])).constraints == EGRESS_CONSTRAINTS


GLOBS = load_bundle({
    "rules": [
        {"id": "approve-deploys", "match": {"topic": "job.deploy.*"}, "decision": "REQUIRE_APPROVAL"},
        {"id": "allow-deploy-plan", "match": {"topic": "job.deploy.plan"}, "decision": "ALLOW"},
        {"id": "deny-egress-anywhere", "match": {"riskTags": ["egress"]}, "decision": "DENY",
         "reason": "no egress"},
        {"id": "allow-rest", "match": {"topic": "*"}, "decision": "ALLOW"},
    ]
})


@pytest.mark.parametrize(
    ("topic", "tags", "rule_id"),
    [
        ("job.deploy.apply", [], "approve-deploys"),
        ("job.deploy.plan", [], "approve-deploys"),  # first match decides, even when a later one is exact
        ("job.deploy.a.b", ["egress"], "approve-deploys"),
        ("job.deploy", ["egress"], "deny-egress-anywhere"),  # the dot belongs to the prefix
        ("job.deployment", [], "allow-rest"),
        ("anything", [], "allow-rest"),
    ],
)
def test_globs_and_order(topic: str, tags: list[str], rule_id: str) -> None:
    assert evaluate(GLOBS, job(topic, tags=tags)).rule_id == rule_id


def test_topic_matches() -> None:
    assert topic_matches(None, "x") and topic_matches("*", "") and topic_matches("a.*", "a.b")
    assert not topic_matches("a.*", "a") and not topic_matches("a", "a.b")


def test_shadowed_rules() -> None:
    assert shadowed_rules(SEED) == []
    assert shadowed_rules(GLOBS) == [
        "rules[1] (allow-deploy-plan) is unreachable: rules[0] (approve-deploys) matches every job it matches"]
    b = load_bundle({"rules": [
        {"id": "a", "match": {"labels": {"env": "prod"}}, "decision": "DENY"},
        {"id": "b", "match": {"topic": "x", "labels": {"env": "prod", "k": "v"}, "risk_tags": ["t"]},
         "decision": "ALLOW"},
        {"id": "c", "match": {"topic": "y", "labels": {"env": "dev"}}, "decision": "ALLOW"},
    ]})
    assert [w.split()[0] for w in shadowed_rules(b)] == ["rules[1]"]


def _mutate(edit: str, new: str) -> str:
    assert edit in SEED_TEXT
    return SEED_TEXT.replace(edit, new, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_mutate("decision: ALLOW_WITH_CONSTRAINTS", "decision: ALLOWED"),
         r"^rules\[2\] \(constrain-external-egress\)\.decision: .*DENY.*\(got 'ALLOWED'\)$"),
        (_mutate("  - id: approval-prod-write\n", "  - ident: approval-prod-write\n"),
         r"^rules\[1\]\.id: Field required"),
        (_mutate("      topic: \"job.deploy.apply\"\n", "      topic: \"job.deploy.apply\"\n      owner: x\n"),
         r"^rules\[1\] \(approval-prod-write\)\.match\.owner: Extra inputs are not permitted$"),
        (_mutate("version: v1\n", "version: v1\nowners: {}\n"), r"^owners: Extra inputs are not permitted$"),
        (_mutate("  - id: allow-read-only", "  - id: deny-destructive-prod"),
         r"^rules\[3\] \(deny-destructive-prod\)\.id: duplicate rule id, first used by rules\[0\]$"),
        (_mutate("  - id: allow-read-only", "  - id: Allow_Read"), r"^rules\[3\] \(Allow_Read\)\.id: String should"),
        (_mutate("        env: prod\n        command_class", "        env: 1\n        command_class"),
         r"^rules\[0\] \(deny-destructive-prod\)\.match\.labels\.env: Input should be a valid string"),
        (re.sub(r"    constraints:\n(      .*\n)+", "", SEED_TEXT),
         r"^rules\[2\] \(constrain-external-egress\)\.constraints: ALLOW_WITH_CONSTRAINTS needs"),
        (_mutate("    decision: ALLOW\n", "    decision: ALLOW\n    constraints: {timeout_ms: 1}\n"),
         r"^rules\[3\] \(allow-read-only\)\.constraints: constraints are only enforced"),
        (_mutate('topic: "job.repo.read"', 'topic: "job.*.read"'),
         r"^rules\[3\] \(allow-read-only\)\.match\.topic: only a trailing '\*' is supported"),
        ("version: v1\nrules: []\n", r"^rules: List should have at least 1 item"),
        ("version: v1\nrules: [\n", r"^invalid YAML at line 3, column 1: "),
        (_mutate("    decision: DENY\n", "    decision: DENY\n    decision: ALLOW\n"),
         r"^invalid YAML at line 13, column 5: duplicate key 'decision'$"),
        ("- id: x\n", r"^bundle: expected a mapping .*got list$"),
        ("", r"^bundle: expected a mapping .*got nothing$"),
    ],
)
def test_bad_bundles_name_rule_and_field(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_bundle(text)
    assert re.search(expected, info.value.problems[0]), info.value.problems


def test_every_problem_is_listed() -> None:
    text = _mutate("decision: ALLOW_WITH_CONSTRAINTS", "decision: ALLOWED").replace(
        "  - id: allow-read-only", "  - id: deny-destructive-prod")
    with pytest.raises(PolicyError) as info:
        load_bundle(text)
    assert len(info.value.problems) == 2
    assert str(info.value).endswith("(and 1 more)")
    assert any("duplicate rule id" in p for p in info.value.problems)


def test_load_bundle_accepts_text_mapping_and_model() -> None:
    as_dict = yaml.safe_load(SEED_TEXT)
    assert load_bundle(as_dict) == SEED
    assert load_bundle(SEED) == SEED
    assert load_bundle(SEED_TEXT.encode()) == SEED


def test_bundle_hash_is_canonical() -> None:
    h = bundle_hash(SEED)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    # Same meaning, different text: comments, key order, flow style, camelCase, explicit defaults.
    data = yaml.safe_load(SEED_TEXT)
    for r in data["rules"]:
        r["match"] = dict(reversed(list(r["match"].items())))
        if "risk_tags" in r["match"]:
            r["match"]["riskTags"] = r["match"].pop("risk_tags")
        r["match"].setdefault("labels", {})
    data = dict(reversed(list(data.items())))
    assert bundle_hash(load_bundle("# a comment\n" + yaml.safe_dump(data, default_flow_style=True))) == h
    # Different meaning: rule order, a constraint, a label.
    swapped = yaml.safe_load(SEED_TEXT)
    swapped["rules"][0], swapped["rules"][1] = swapped["rules"][1], swapped["rules"][0]
    assert bundle_hash(load_bundle(swapped)) != h
    assert bundle_hash(load_bundle(SEED_TEXT.replace("15000", "15001"))) != h
    assert bundle_hash(load_bundle(SEED_TEXT.replace("env: prod", "env: production", 1))) != h


def test_parse_job() -> None:
    assert parse_job('{"topic": "t", "riskTags": ["egress"]}') == job("t", tags=["egress"])
    assert parse_job({"topic": "t", "labels": {"env": "prod"}, "risk_tags": []}) == job("t", {"env": "prod"})
    for bad, expected in [
        ('{"topic": "t", "riskTag": ["egress"]}', "job.riskTag: Extra inputs are not permitted"),
        ('{"labels": {}}', "job.topic: Field required"),
        ('{"topic": ""}', "job.topic: String should have at least 1 character"),
        ('{"topic": "t", "labels": {"env": 1}}', "job.labels.env: Input should be a valid string"),
        ("[1]", "job: expected a JSON object, got list"),
        ("{", "job: invalid JSON"),
    ]:
        with pytest.raises(PolicyError) as info:
            parse_job(bad)
        assert str(info.value).startswith(expected), str(info.value)
