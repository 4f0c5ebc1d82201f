"""Dispatch-time policy: controls 1 and 2 of the AI Agent Production Deployment Checklist, "policy
before dispatch", as a pure function.

An agent platform asks, for every job it is about to persist or route to a worker, "may this run?".
The answer comes from the rollout's policy bundle (the checklist's `production-policy.yaml`): rules are
checked in order and the first whose `match` fits the job decides — DENY, REQUIRE_APPROVAL,
ALLOW_WITH_CONSTRAINTS (with the constraints the worker must enforce) or ALLOW.

Nothing here does I/O, so the same code answers the CLI (`launchgate policy eval`), the operator
(validating a bundle before a rollout may ship it) and tests, and all three agree by construction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from launchgate.api import PolicyBundle, PolicyRule, PolicyRuleMatch, field_path

Decision = Literal["DENY", "REQUIRE_APPROVAL", "ALLOW_WITH_CONSTRAINTS", "ALLOW"]
NO_MATCH_REASON = "no rule matched"


class PolicyError(ValueError):
    """A bundle that must not be used. `problems` lists every finding; str() is the first one.

    Each problem names the rule by index and id and the field, e.g.
    ``rules[2] (constrain-external-egress).decision: Input should be 'DENY', ...``, because the
    person fixing a 200-rule bundle needs to find the line, not re-read the schema.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems) or ["invalid policy bundle"]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(self.problems[0] + more)


class JobDescription(BaseModel):
    """What a job declares about itself at dispatch time: all the policy may look at.

    Unknown fields are refused so that a platform sending `riskTag` instead of `risk_tags` gets an
    error instead of a job that silently carries no risk tags (and may match a laxer rule).
    `riskTags` is accepted as well as `risk_tags`, as in the CRD's spelling of the bundle.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1, max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)
    risk_tags: list[str] = Field(default_factory=list, validation_alias=AliasChoices("risk_tags", "riskTags"))


@dataclass(frozen=True)
class PolicyDecision:
    """The verdict for one job and the rule that gave it (None when no rule matched)."""

    rule_id: str | None
    decision: Decision
    reason: str
    constraints: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        """True when the job may run now (possibly under constraints) without a human."""
        return self.decision in ("ALLOW", "ALLOW_WITH_CONSTRAINTS")

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "decision": self.decision, "reason": self.reason,
                "constraints": dict(self.constraints)}


# --------------------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML keeps the last one silently, so a rule with
    `decision: DENY` and, lower down, `decision: ALLOW` would quietly allow."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def strict_yaml_load(text: str | bytes) -> Any:
    """yaml.safe_load, except that a duplicate mapping key is an error (see _StrictLoader)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def strict_yaml_load_all(text: str | bytes) -> list[Any]:
    """Every document of a YAML stream, duplicate keys refused."""
    return list(yaml.load_all(text, Loader=_StrictLoader))  # noqa: S506


def yaml_error_message(e: yaml.YAMLError) -> str:
    """`invalid YAML at line 5, column 5: duplicate key 'decision'` rather than PyYAML's multi-line dump."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is not None and problem:
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {' '.join(str(e).split())}"



def _rule_label(raw_rules: Any, index: int) -> str:
    """`rules[2] (constrain-external-egress)`, or just `rules[2]` when the rule has no usable id."""
    rid = None
    if isinstance(raw_rules, list) and 0 <= index < len(raw_rules) and isinstance(raw_rules[index], Mapping):
        candidate = raw_rules[index].get("id")
        if isinstance(candidate, str) and candidate:
            rid = candidate
    return f"rules[{index}] ({rid})" if rid else f"rules[{index}]"


def _where(raw: Mapping[str, Any], loc: Sequence[Any]) -> str:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        head = _rule_label(raw.get("rules"), loc[1])
        rest = field_path(loc[2:])
        if not rest:
            return head
        return head + (rest if rest.startswith("[") else "." + rest)
    return field_path(loc) or "bundle"


def _msg(text: str) -> str:
    """Pydantic's message without its 'Value error, ' prefix, which tells a bundle author nothing."""
    return text.removeprefix("Value error, ")


def _got(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 80:
        return f" (got {value!r})"
    return ""


def _semantic_problems(bundle: PolicyBundle) -> list[str]:
    """What the schema cannot say: globs well-formed, constraints only where they are enforced."""
    problems: list[str] = []
    for i, rule in enumerate(bundle.rules):
        where = f"rules[{i}] ({rule.id})"
        topic = rule.match.topic
        if topic is not None and ("*" in topic[:-1] or topic == ""):
            problems.append(f"{where}.match.topic: only a trailing '*' is supported (e.g. 'job.deploy.*'), "
                            f"got {topic!r}")
        if rule.decision == "ALLOW_WITH_CONSTRAINTS" and not rule.constraints:
            # An empty constraint set is an ALLOW in disguise; the author meant to constrain something.
            problems.append(f"{where}.constraints: ALLOW_WITH_CONSTRAINTS needs at least one constraint")
        if rule.decision in ("ALLOW", "DENY") and rule.constraints:
            # Constraints on ALLOW would be silently unenforced; say so instead of shipping the surprise.
            problems.append(f"{where}.constraints: constraints are only enforced with ALLOW_WITH_CONSTRAINTS "
                            f"or REQUIRE_APPROVAL, not {rule.decision}")
    return problems


def _duplicate_ids(raw_rules: Any) -> list[str]:
    """Checked on the raw rules so that a duplicate is reported together with schema errors."""
    problems: list[str] = []
    first_use: dict[str, int] = {}
    for i, rule in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        rid = rule.get("id") if isinstance(rule, Mapping) else None
        if not isinstance(rid, str) or not rid:
            continue
        if rid in first_use:
            problems.append(f"rules[{i}] ({rid}).id: duplicate rule id, first used by rules[{first_use[rid]}]")
        else:
            first_use[rid] = i
    return problems


def load_bundle(source: str | bytes | Mapping[str, Any] | PolicyBundle) -> PolicyBundle:
    """Parse and check a policy bundle (YAML/JSON text or an already-parsed mapping).

    Raises PolicyError listing every problem — schema errors (wrong decision, unknown fields, bad
    ids), duplicate rule ids, malformed topic globs, missing or meaningless constraints — because
    a bundle that is half-understood must never reach a dispatcher: a misspelled field silently
    ignored would widen what a rule allows.
    """
    if isinstance(source, PolicyBundle):
        raw: Any = source.model_dump(mode="json", by_alias=True, exclude_none=True)
    elif isinstance(source, (str, bytes)):
        try:
            raw = strict_yaml_load(source)
        except yaml.YAMLError as e:
            raise PolicyError([yaml_error_message(e)]) from None
    else:
        raw = source
    if not isinstance(raw, Mapping):
        got = "nothing" if raw is None else type(raw).__name__
        raise PolicyError([f"bundle: expected a mapping with 'version' and 'rules', got {got}"])
    duplicates = _duplicate_ids(raw.get("rules"))
    try:
        bundle = PolicyBundle.model_validate(dict(raw))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            got = "" if err["type"] in ("missing", "extra_forbidden") else _got(err.get("input"))
            problems.append(f"{_where(raw, err['loc'])}: {_msg(err['msg'])}{got}")
        raise PolicyError(problems + duplicates) from None
    problems = duplicates + _semantic_problems(bundle)
    if problems:
        raise PolicyError(problems)
    return bundle


def parse_job(source: str | bytes | Mapping[str, Any]) -> JobDescription:
    """A job from JSON text or a mapping (what `--job -` reads); PolicyError names the field."""
    if isinstance(source, (str, bytes)):
        try:
            raw = json.loads(source)
        except json.JSONDecodeError as e:
            raise PolicyError([f"job: invalid JSON: {e}"]) from None
    else:
        raw = source
    if not isinstance(raw, Mapping):
        raise PolicyError([f"job: expected a JSON object, got {type(raw).__name__}"])
    try:
        return JobDescription.model_validate(dict(raw))
    except ValidationError as e:
        raise PolicyError([f"job.{field_path(err['loc'])}: {_msg(err['msg'])}{_got(err.get('input'))}"
                           for err in e.errors()]) from None


# --------------------------------------------------------------------------- evaluation


def topic_matches(pattern: str | None, topic: str) -> bool:
    """Exact topic, or a prefix when the pattern ends in `*`: `job.deploy.*` matches
    `job.deploy.apply` but not `job.deploy` (the dot is part of the prefix). No topic: any."""
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return topic.startswith(pattern[:-1])
    return topic == pattern


def rule_matches(match: PolicyRuleMatch, job: JobDescription) -> bool:
    """Every condition a rule states must hold; conditions it does not state are not checked."""
    if not topic_matches(match.topic, job.topic):
        return False
    if any(job.labels.get(k) != v for k, v in match.labels.items()):
        return False
    tags = set(job.risk_tags)
    return all(t in tags for t in match.risk_tags)


def evaluate(bundle: PolicyBundle, job: JobDescription) -> PolicyDecision:
    """The first rule that matches decides; when none does, the job is denied.

    Failing closed is the point of a dispatch-time control: a new job type or a typo in a topic
    must not quietly run with no policy at all. Whoever wants a permissive default writes it as
    an explicit last rule (e.g. `match: {}` with `decision: ALLOW`), where a reviewer can see it.
    """
    for rule in bundle.rules:
        if rule_matches(rule.match, job):
            return _decision(rule)
    return PolicyDecision(rule_id=None, decision="DENY", reason=NO_MATCH_REASON, constraints={})


def _decision(rule: PolicyRule) -> PolicyDecision:
    return PolicyDecision(
        rule_id=rule.id,
        decision=cast(Decision, rule.decision),  # the model's validator admits only these four
        reason=rule.reason or f"matched rule {rule.id}",
        constraints=dict(rule.constraints or {}),
    )


def _covers(outer: PolicyRuleMatch, inner: PolicyRuleMatch) -> bool:
    """True when every job `inner` matches is also matched by `outer`."""
    if outer.topic is not None:
        if inner.topic is None:
            return False
        if outer.topic.endswith("*"):
            # inner's topics all start with inner's prefix (or are inner.topic exactly).
            inner_prefix = inner.topic[:-1] if inner.topic.endswith("*") else inner.topic
            if not inner_prefix.startswith(outer.topic[:-1]):
                return False
        elif inner.topic != outer.topic:
            return False
    if any(inner.labels.get(k) != v for k, v in outer.labels.items()):
        return False
    return set(outer.risk_tags) <= set(inner.risk_tags)


def shadowed_rules(bundle: PolicyBundle) -> list[str]:
    """Rules no job can ever reach because an earlier rule matches everything they match.

    Not an error (a bundle may keep a rule while a broader one is tried), but almost always a
    mistake in ordering, so `launchgate policy validate` reports it.
    """
    out: list[str] = []
    for j, later in enumerate(bundle.rules):
        for i in range(j):
            if _covers(bundle.rules[i].match, later.match):
                out.append(f"rules[{j}] ({later.id}) is unreachable: rules[{i}] ({bundle.rules[i].id}) "
                           f"matches every job it matches")
                break
    return out


def bundle_hash(bundle: PolicyBundle) -> str:
    """12 hex chars of sha256 over a canonical JSON form of the bundle.

    Canonical (camelCase keys, defaults filled in, keys sorted, no whitespace) so that comments,
    key order, quoting or `risk_tags` vs `riskTags` do not change the hash while any change to a
    rule, or to rule order (which changes meaning), does. It names what a bundle means for the
    people reading `launchgate policy` output. Approvals are not bound to it but to
    `hashing.approval_hash` of the policy text the operator mounts (see `hashing.policy_hash`).
    """
    data = bundle.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
