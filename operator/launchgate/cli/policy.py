"""`launchgate policy`: ask the policy bundle about one job, or check a bundle before it ships.

    launchgate policy eval -f production-policy.yaml --topic job.deploy.apply --label env=prod
    echo '{"topic": "job.integrations.call", "risk_tags": ["egress"]}' \\
        | launchgate policy eval -f production-policy.yaml --job - -o json
    launchgate policy validate -f production-policy.yaml

Exit codes are the contract for an agent platform's dispatcher, which calls this before it
persists or routes a job (controls 1 and 2 of the AI Agent Production Deployment Checklist): 0 the
job may run (ALLOW, or ALLOW_WITH_CONSTRAINTS — enforce the printed constraints), 3 it needs a
human approval first, 1 it is denied, 2 the question could not be answered (bad bundle, bad job).
2 must be treated as a denial too: a dispatcher that cannot ask the policy must not dispatch.

`-f` takes the bundle itself, a ConfigMap holding it (key `policy.yaml`, or `--key`), or an
AgentRollout with an inline `spec.policy.bundle`, so the file the operator ships is the file
you test.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from launchgate.api import PolicyBundle
from launchgate.core.policy import (
    JobDescription,
    PolicyDecision,
    PolicyError,
    bundle_hash,
    evaluate,
    load_bundle,
    parse_job,
    shadowed_rules,
    strict_yaml_load_all,
    yaml_error_message,
)

EXIT_ALLOW, EXIT_DENY, EXIT_BAD_INPUT, EXIT_APPROVAL = 0, 1, 2, 3
EXIT_FOR_DECISION = {"ALLOW": EXIT_ALLOW, "ALLOW_WITH_CONSTRAINTS": EXIT_ALLOW,
                     "REQUIRE_APPROVAL": EXIT_APPROVAL, "DENY": EXIT_DENY}


# --------------------------------------------------------------------------- pure helpers


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _bundle_from_document(doc: Any, key: str, where: str) -> tuple[Any, str] | None:
    """The bundle part of one YAML document and an error prefix; None when it holds no bundle."""
    if not isinstance(doc, Mapping):
        return None
    kind = doc.get("kind")
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), Mapping) else "?"
    if kind == "ConfigMap":
        data = doc.get("data") or {}
        if not isinstance(data, Mapping) or key not in data:
            raise PolicyError([f"{where}ConfigMap {name} has no key {key!r} (use --key)"])
        return data[key], f"{where}ConfigMap {name} key {key}: "
    if kind == "AgentRollout":
        pol = ((doc.get("spec") or {}).get("policy") or {}) if isinstance(doc.get("spec"), Mapping) else {}
        if isinstance(pol, Mapping) and "bundle" in pol:
            return pol["bundle"], f"{where}AgentRollout {name} spec.policy.bundle: "
        if isinstance(pol, Mapping) and "configMapRef" in pol:
            ref = pol["configMapRef"]
            ref_name = ref.get("name", "?") if isinstance(ref, Mapping) else "?"
            raise PolicyError([f"{where}AgentRollout {name} takes its policy from ConfigMap {ref_name}; "
                               f"pass that ConfigMap's file"])
        return None
    if kind is None and "rules" in doc:
        return doc, where
    return None


def bundle_from_text(text: str, key: str = "policy.yaml") -> PolicyBundle:
    """The one policy bundle in a YAML text: bare, in a ConfigMap, or inline in an AgentRollout.

    PolicyError messages are prefixed with where the bundle sits, then name rule and field.
    """
    try:
        docs = [d for d in strict_yaml_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise PolicyError([yaml_error_message(e)]) from None
    if not docs:
        raise PolicyError(["the file is empty: expected a policy bundle"])
    found: list[tuple[Any, str]] = []
    for i, doc in enumerate(docs):
        got = _bundle_from_document(doc, key, f"document {i + 1}: " if len(docs) > 1 else "")
        if got is not None:
            found.append(got)
    if not found:
        if len(docs) == 1:
            return load_bundle(docs[0])  # its own errors say what is wrong with it
        raise PolicyError(["no policy bundle found (expected one with 'rules', a ConfigMap, or an AgentRollout)"])
    if len(found) > 1:
        raise PolicyError([f"{len(found)} policy bundles found; keep one per file"])
    raw, prefix = found[0]
    try:
        return load_bundle(raw)
    except PolicyError as e:
        raise PolicyError([prefix + p for p in e.problems]) from None


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """`--label env=prod` pairs; a repeated key is an error, not a silent overwrite."""
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise PolicyError([f"--label {item!r}: expected KEY=VALUE"])
        k = k.strip()
        if k in out:
            raise PolicyError([f"--label {k}: given more than once"])
        out[k] = v
    return out


def decision_json(bundle: PolicyBundle, job: JobDescription, decision: PolicyDecision) -> dict[str, Any]:
    """What `-o json` prints: the verdict, the rule (id and position) and the bundle it came from."""
    index = next((i for i, r in enumerate(bundle.rules) if r.id == decision.rule_id), None)
    return {
        **decision.to_dict(),
        "rule_index": index,
        "allowed": decision.allowed,
        "bundle_hash": bundle_hash(bundle),
        "job": job.model_dump(mode="json"),
    }


# --------------------------------------------------------------------------- commands


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise PolicyError([f"{path}: {e.strerror}"]) from None
    except UnicodeDecodeError:
        raise PolicyError([f"{path}: not a text file"]) from None


def _bad_input(e: PolicyError, output: str) -> NoReturn:
    if output == "json":
        click.echo(json.dumps({"error": str(e), "problems": e.problems, "allowed": False}, indent=2))
    for problem in e.problems:
        click.echo(f"launchgate policy: {_one_line(problem)}", err=True)
    sys.exit(EXIT_BAD_INPUT)


_FILE = click.option("-f", "--file", "path", required=True, type=click.Path(dir_okay=False, allow_dash=True),
                     help="Policy bundle YAML, a ConfigMap holding it, or an AgentRollout; - for stdin.")
_KEY = click.option("--key", default="policy.yaml", show_default=True, help="ConfigMap key of the bundle.")
_OUTPUT = click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)


@click.group("policy", context_settings={"help_option_names": ["-h", "--help"]})
def policy() -> None:
    """Dispatch-time policy: which rule decides a job, and whether a bundle is fit to ship."""


@policy.command("eval")
@_FILE
@_KEY
@click.option("--topic", default=None, help="The job's topic, e.g. job.deploy.apply.")
@click.option("--label", "label_items", multiple=True, metavar="KEY=VALUE", help="A job label (repeatable).")
@click.option("--risk-tag", "risk_tags", multiple=True, metavar="TAG", help="A job risk tag (repeatable).")
@click.option("--job", "job_path", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help='The job as JSON ({"topic", "labels", "risk_tags"}) from a file; - for stdin.')
@_OUTPUT
def eval_(path: str, key: str, topic: str | None, label_items: tuple[str, ...], risk_tags: tuple[str, ...],
          job_path: str | None, output: str) -> None:
    """Print which rule decides a job, and exit with the verdict.

    Exit status: 0 ALLOW or ALLOW_WITH_CONSTRAINTS (enforce the constraints), 3 REQUIRE_APPROVAL,
    1 DENY (also when no rule matches: the policy fails closed), 2 bad input — which a
    dispatcher must treat as a denial.
    """
    try:
        if job_path is not None and (topic is not None or label_items or risk_tags):
            raise PolicyError(["--job cannot be combined with --topic, --label or --risk-tag"])
        if job_path == "-" and path == "-":
            raise PolicyError(["-f - and --job - cannot both read stdin"])
        if job_path is not None:
            job = parse_job(_read(job_path))
        elif topic is None:
            raise PolicyError(["give the job with --topic (and --label, --risk-tag) or as JSON with --job"])
        else:
            job = parse_job({"topic": topic, "labels": parse_labels(label_items), "risk_tags": list(risk_tags)})
        bundle = bundle_from_text(_read(path), key)
    except PolicyError as e:
        _bad_input(e, output)
    decision = evaluate(bundle, job)
    doc = decision_json(bundle, job, decision)
    if output == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        by = (f"rule {decision.rule_id} (rules[{doc['rule_index']}])" if decision.rule_id
              else "default (no rule matched: fail closed)")
        click.echo(f"{decision.decision} by {by}: {decision.reason}")
        if decision.constraints:
            click.echo(f"constraints: {json.dumps(decision.constraints, sort_keys=True)}")
        click.echo(f"bundle: {doc['bundle_hash']}")
    sys.exit(EXIT_FOR_DECISION[decision.decision])


@policy.command("validate")
@_FILE
@_KEY
@click.option("--strict", is_flag=True, help="Exit 1 when a rule is unreachable (shadowed by an earlier one).")
@_OUTPUT
def validate(path: str, key: str, strict: bool, output: str) -> None:
    """Check a bundle: schema, unique rule ids, topic globs, constraints; warn on unreachable rules.

    Exit status: 0 valid, 2 invalid (every problem is listed, naming rule and field), 1 valid
    but with unreachable rules under --strict.
    """
    try:
        bundle = bundle_from_text(_read(path), key)
    except PolicyError as e:
        if output == "json":
            click.echo(json.dumps({"valid": False, "problems": e.problems}, indent=2))
            for problem in e.problems:
                click.echo(f"launchgate policy: {_one_line(problem)}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        _bad_input(e, output)
    warnings = shadowed_rules(bundle)
    if output == "json":
        click.echo(json.dumps({"valid": True, "version": bundle.version, "rules": len(bundle.rules),
                               "bundle_hash": bundle_hash(bundle), "warnings": warnings}, indent=2))
    else:
        click.echo(f"valid: {len(bundle.rules)} rules, version {bundle.version}, bundle {bundle_hash(bundle)}")
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
    sys.exit(EXIT_DENY if strict and warnings else EXIT_ALLOW)
