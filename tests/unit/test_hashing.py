"""The hashes held by the API server keep their values: an Approval given before an upgrade must
still match, and a policy ConfigMap keep its name. Known inputs, the values they have always had."""

from __future__ import annotations

from launchgate.core import hashing

TEMPLATE = {"metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "agent", "image": "agent:1.2", "env": [{"name": "MODEL", "value": "m-ü"}]}]}}
POLICY = "version: v1\nrules: []\n"
GATES = {"canary1": {"window": "5m", "blockers": [{"name": "b", "query": "q", "target": {"gte": 0.99}}]},
         "a-gate": {"window": "10m", "blockers": []}}


def test_policy_hash() -> None:
    assert hashing.policy_hash(POLICY) == "5d10000673"
    assert hashing.policy_hash("rule: ü €\n") == "f1cfdf28c6"


def test_revision_hash() -> None:
    assert hashing.revision_hash(TEMPLATE, "none") == "f9add274d3"
    assert hashing.revision_hash(TEMPLATE, hashing.policy_hash(POLICY)) == "bcc5903341"


def test_gates_hash_over_the_specs_found_or_else_the_names() -> None:
    assert hashing.gates_hash(GATES, ["ignored"], "none") == "b2877bd7d3"
    assert hashing.gates_hash(dict(reversed(GATES.items())), ["ignored"], "none") == "b2877bd7d3"
    assert hashing.gates_hash({}, ["canary1", "canary2"], "abc") == "8800023788"
    assert hashing.gates_hash({}, [], "none") == "7a66b6e949"


def test_each_is_the_approval_hash_of_its_parts() -> None:
    assert hashing.approval_hash(POLICY) == hashing.policy_hash(POLICY)
    assert hashing.approval_hash(TEMPLATE, "none") == hashing.revision_hash(TEMPLATE, "none")
    assert hashing.approval_hash(["canary1", "canary2"], "abc") == "8800023788"


def test_short_hash() -> None:
    assert hashing.short_hash("a", None, 3, n=14) == "15c6e625882cb3"
    assert hashing.short_hash("rev", "gh", "General", "2026-01-01T00:00:00+00:00") == "9e1ab4100287"
