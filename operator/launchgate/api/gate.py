"""LaunchGate: the launch-gate contract (blockers over PromQL, targets, owners, missing data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from launchgate.api.meta import (
    _CONDITIONS,
    NAME_PATTERN,
    Condition,
    GateDecision,
    MissingDataPolicy,
    OwnerRole,
    Owners,
    _duration,
    _Spec,
    _Status,
    exactly_one,
)

# --------------------------------------------------------------------------- LaunchGate


JudgeDirection = Literal["higherIsBad", "lowerIsBad", "either"]


class Judge(_Spec):
    """Compare the canary's and the stable's samples over the window (Kayenta-style): the query is
    asked as a range query at every `step` for each version ($version bound to each), and a
    Mann-Whitney U test at `confidence` with a Hodges-Lehmann shift beyond `tolerance` says
    pass, high, low, or nodata (never a pass)."""

    direction: JudgeDirection = Field(
        default="higherIsBad", description="Which way is bad: higherIsBad (latency, errors), lowerIsBad "
        "(success rate, throughput) or either.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Confidence level of the test, in (0, 1).")
    tolerance: float = Field(
        default=0.0, ge=0, description="A shift (canary - stable, in the query's unit) no larger than this "
        "is a pass even when significant.")
    step: str = _duration("Time between two samples of each version.", default="15s")
    min_samples: int = Field(
        default=5, ge=1, le=1000,
        description="Samples each version needs before the test counts; fewer is not enough evidence (hold).")


class Target(_Spec):
    """Exactly one comparison. Ratios compare the canary's value to the stable baseline's; the
    judge compares their samples."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.eq), has(self.gte), has(self.lte), has(self.lteBaselineRatio),"
                    " has(self.gteBaselineRatio), has(self.judge)].filter(x, x).size() == 1",
                    "message": "exactly one of eq, gte, lte, lteBaselineRatio, gteBaselineRatio, judge must be set",
                }
            ]
        }
    )

    eq: float | None = None
    gte: float | None = None
    lte: float | None = None
    lte_baseline_ratio: float | None = Field(default=None, gt=0)
    gte_baseline_ratio: float | None = Field(default=None, gt=0)
    judge: Judge | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        exactly_one(self, "eq", "gte", "lte", "lte_baseline_ratio", "gte_baseline_ratio", "judge")
        return self

    def set_fields(self) -> list[str]:
        return [k for k, v in self.model_dump(by_alias=True).items() if v is not None]


_COUNT_QUERY = ("PromQL giving a count over the window (e.g. sum(increase(...[$window]))), with $version bound "
                "to each version as for `query`.")


def _blocker_rules() -> list[dict[str, str]]:
    """What a blocker must say about its queries, in CEL, each naming the field at fault."""
    counts = "(has(self.successes) || has(self.errors))"
    return [
        {"rule": "has(self.query) || has(self.successes) || has(self.errors) || has(self.total)",
         "message": "a blocker needs query, or counts: successes or errors, and total", "fieldPath": ".query"},
        {"rule": "!has(self.query) || !(has(self.successes) || has(self.errors) || has(self.total))",
         "message": "query and counts (successes, errors, total) are exclusive", "fieldPath": ".query"},
        {"rule": "!(has(self.successes) && has(self.errors))",
         "message": "exactly one of successes, errors may be set", "fieldPath": ".errors"},
        {"rule": f"!{counts} || has(self.total)",
         "message": "a count blocker needs total beside successes or errors", "fieldPath": ".total"},
        {"rule": f"!has(self.total) || {counts}",
         "message": "a count blocker needs successes or errors beside total", "fieldPath": ".successes"},
        {"rule": "!has(self.confidence) || has(self.total)",
         "message": "confidence needs counts (successes or errors, and total); a judge has its own",
         "fieldPath": ".confidence"},
        {"rule": "!has(self.minSamples) || has(self.total)",
         "message": "minSamples needs counts (successes or errors, and total); a judge has its own",
         "fieldPath": ".minSamples"},
        {"rule": "!has(self.confidence) || !has(self.target.eq)",
         "message": "a proportion with confidence is compared with gte, lte, lteBaselineRatio or gteBaselineRatio",
         "fieldPath": ".target"},
        {"rule": "!has(self.target.judge) || has(self.query)",
         "message": "a judge compares the samples of query: set query", "fieldPath": ".query"},
        {"rule": "!has(self.baselineQuery) || has(self.query)",
         "message": "baselineQuery goes with query; count queries bind $version to the stable version instead",
         "fieldPath": ".baselineQuery"},
    ]


def count_problems(model: Any) -> str | None:
    """The rules of `_blocker_rules` in Python (for files the CLI reads), first broken or None.
    Shared with rollback triggers, which take counts the same way."""
    counts = model.successes is not None or model.errors is not None
    if model.query is None and not counts and model.total is None:
        return "query: a blocker needs query, or counts: successes or errors, and total"
    if model.query is not None and (counts or model.total is not None):
        return "query: query and counts (successes, errors, total) are exclusive"
    if model.successes is not None and model.errors is not None:
        return "errors: exactly one of successes, errors may be set"
    if counts and model.total is None:
        return "total: a count blocker needs total beside successes or errors"
    if model.total is not None and not counts:
        return "successes: a count blocker needs successes or errors beside total"
    if model.confidence is not None and model.total is None:
        return "confidence: confidence needs counts (successes or errors, and total); a judge has its own"
    if model.min_samples is not None and model.total is None:
        return "minSamples: minSamples needs counts (successes or errors, and total); a judge has its own"
    return None


class Blocker(_Spec):
    """One launch-blocking row of the AI Agent Production Deployment Checklist, made executable.

    Either one `query` giving the value, or counts giving a proportion with its evidence: `successes`
    (or `errors`) and `total` over the window. With `confidence` a count blocker passes only when
    the interval's bound on the safe side meets the target, blocks only when the bound on the other
    side misses it, and otherwise holds: not enough evidence."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _blocker_rules()})  # type: ignore[dict-item]

    name: str = Field(max_length=63, pattern=NAME_PATTERN)
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        description="PromQL. $namespace, $rollout, $stable, $canary, $version and $window are substituted; "
        "label values are escaped as PromQL string literals. Or counts instead: successes or errors, and total.",
    )
    successes: str | None = Field(default=None, min_length=1, max_length=8192,
                                  description="Successful requests in the window. " + _COUNT_QUERY)
    errors: str | None = Field(default=None, min_length=1, max_length=8192,
                               description="Failed requests in the window. " + _COUNT_QUERY)
    total: str | None = Field(default=None, min_length=1, max_length=8192,
                              description="All requests in the window. " + _COUNT_QUERY)
    confidence: float | None = Field(
        default=None, gt=0, lt=1,
        description="For counts: the confidence level (e.g. 0.95) of the Wilson interval the target is judged "
        "on. Without it the proportion is compared as a plain value.")
    min_samples: int | None = Field(
        default=None, ge=1, description="For counts: hold (not enough evidence) until total reaches this.")
    baseline_query: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        description="For a baseline ratio: the stable query. Defaults to `query` with $version bound to stable.",
    )
    target: Target
    on_missing_data: MissingDataPolicy | None = Field(
        default=None, description="hold (never promote, keep waiting) or fail (block). Defaults to the gate's."
    )
    owner: OwnerRole | None = Field(default=None, description="Which owner to escalate to when this fails.")
    description: str | None = Field(default=None, max_length=1024)
    control: int | None = Field(
        default=None, ge=1, le=20,
        description="The row of the AI Agent Production Deployment Checklist this blocker judges (1-20): "
        "`launchgate checklist` prints the gate as the checklist's table.")
    freshness: str | None = _duration(
        "How recent the newest sample of the canary's series in `query` must be for its value to count; "
        "older (the canary stopped reporting) is missing data. Defaults to the gate's.", default=None)

    @model_validator(mode="after")
    def _queries(self) -> Blocker:
        problem = count_problems(self)
        if problem is None and self.confidence is not None and self.target.eq is not None:
            problem = "target: a proportion with confidence is compared with gte, lte, lteBaselineRatio or gteBaselineRatio"
        if problem is None and self.target.judge is not None and self.query is None:
            problem = "query: a judge compares the samples of query: set query"
        if problem is None and self.baseline_query is not None and self.query is None:
            problem = "baselineQuery: baselineQuery goes with query"
        if problem is not None:
            raise ValueError(problem)
        return self

    def count_queries(self) -> tuple[str, str] | None:
        """(events, total) templates of a count blocker; None for a query blocker."""
        events = self.successes if self.successes is not None else self.errors
        return (events, self.total) if events is not None and self.total is not None else None

    def templates(self) -> list[str]:
        """Every query template the blocker asks with its canary's variables."""
        counts = self.count_queries()
        return list(counts) if counts is not None else [self.query or ""]


class LaunchGateSpec(_Spec):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.blockers.all(b, self.blockers.exists_one(c, c.name == b.name))",
                    "message": "blocker names must be unique",
                    "fieldPath": ".blockers",
                }
            ]
        }
    )

    window: str = _duration("Evaluation window, substituted for $window in queries.", default="10m")
    interval: str | None = _duration(
        "How often the gate is evaluated; defaults to the operator's setting.", default=None
    )
    owners: Owners = Field(default_factory=Owners)
    on_missing_data: MissingDataPolicy = Field(default="hold")
    freshness: str | None = _duration(
        "How recent the newest sample of a blocker's canary series (the selectors of its query that match "
        "$canary, or $version) must be: a canary that stopped reporting is missing data however long the "
        "query's range. Defaults to twice the operator's scrape interval (LAUNCHGATE_SCRAPE_INTERVAL, 30s).",
        default=None)
    blockers: list[Blocker] = Field(min_length=1, max_length=32)
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Values for $stable, $canary, $version when the gate is evaluated on its own; "
        "a rollout using the gate supplies its own.",
        json_schema_extra={"maxProperties": 16},
    )


class BlockerStatus(_Status):
    name: str = Field(max_length=63)
    target: str = Field(max_length=128, description="Human-readable target, e.g. 'gte 0.99'.")
    value: float | None = Field(default=None, json_schema_extra={"nullable": True})
    baseline_value: float | None = Field(default=None, json_schema_extra={"nullable": True})
    passed: bool = Field(alias="pass")
    reason: str = Field(default="", max_length=1024)
    owner: str | None = Field(default=None, max_length=253)
    # Not `n`: YAML 1.1 readers (the API server's among them) take a key `n` for false.
    samples: float | None = Field(
        default=None, json_schema_extra={"nullable": True},
        description="n, the evidence: the canary's requests (counts) or samples (judge) in the window.")
    baseline_samples: float | None = Field(default=None, json_schema_extra={"nullable": True},
                                           description="The same of the stable version, when compared with it.")
    interval: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="[lower, upper] the verdict was read from: of the proportion, of canary - R x stable for "
        "a baseline ratio, of the shift for a judge.")
    judge: str | None = Field(default=None, max_length=16, description="A judge's result: pass, high, low, nodata.")


class LaunchGateStatus(_Status):
    decision: GateDecision | None = None
    passing: str | None = Field(default=None, max_length=16, description="Passing blockers, e.g. 4/5.")
    window: str | None = Field(default=None, max_length=32)
    evaluated_at: datetime | None = None
    observed_generation: int | None = None
    owners: Owners | None = None
    blockers: list[BlockerStatus] = Field(default_factory=list, max_length=32)
    message: str | None = Field(default=None, max_length=4096)
    conditions: list[Condition] = _CONDITIONS
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


