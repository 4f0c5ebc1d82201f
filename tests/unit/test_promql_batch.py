"""promql_batch: which templates become one query for every rollout, and which are left alone.

The rewrite is only allowed where it provably returns, for each rollout, what the rollout's own
query returns; everything else must answer None. So most of this file is tables: templates with
the exact batched query they must give, and a long list of templates that must be refused (with
why). The examples' and the benchmark's queries are in the first table, and a test keeps it that way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from launchgate.core.gates import from_prometheus
from launchgate.core.promql_batch import (
    IDENTITY_VARIABLES,
    Shape,
    batch_shape,
    split_matrix,
    split_vector,
    vector_selectors,
)
from launchgate_dev import bench

ROOT = Path(__file__).resolve().parents[2]
V = {"namespace": "agents", "rollout": "support-agent", "canary": "v2", "stable": "v1", "version": "v2",
     "window": "10m"}
NV = ("namespace", "version")
SEL = 'namespace="$namespace",version="$canary"'  # the usual identity matchers, for short templates

SUCCESS = ('sum(rate(agent_jobs_total{namespace="$namespace",version="$canary",outcome="success"}[$window]))'
           ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$canary"}[$window]))')
SUCCESS_BATCHED = ('sum by (namespace, version) (rate(agent_jobs_total{outcome="success"}[10m]))'
                   ' / sum by (namespace, version) (rate(agent_jobs_total[10m]))')
P95 = ('1000 * histogram_quantile(0.95, sum by (le) '
       '(rate(agent_job_seconds_bucket{namespace="$namespace",version="$version"}[$window])))')
COST = ('sum(rate(agent_cost_usd_total{namespace="$namespace",version="$version"}[$window]))'
        ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$version"}[$window]))')
TRIGGER = ('sum(rate(agent_jobs_total{namespace="$namespace",version="$version",outcome!="success"}[1m]))'
           ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$version"}[1m]))')


def _increase(metric: str, extra: str = "") -> str:
    return f'sum(increase({metric}{{namespace="$namespace",version="$canary"{extra}}}[$window]))'


def _increase_batched(metric: str, extra: str = "") -> str:
    return f"sum by (namespace, version) (increase({metric}{extra}[10m]))"


# (template, batched query, identity labels, the variable bound to each)
BATCHABLE = [
    # ---- examples/launchgates.yaml, examples/agentrollout.yaml, bench.py (see test_examples_are_in_the_table)
    pytest.param(_increase("agent_replay_critical_bypass_total"),
                 _increase_batched("agent_replay_critical_bypass_total"), NV, ("namespace", "canary"),
                 id="example-critical_bypasses"),
    pytest.param(_increase("agent_duplicate_side_effects_total"),
                 _increase_batched("agent_duplicate_side_effects_total"), NV, ("namespace", "canary"),
                 id="example-duplicate_side_effects"),
    pytest.param(SUCCESS, SUCCESS_BATCHED, NV, ("namespace", "canary"), id="example-workflow_success_rate"),
    pytest.param(P95, "1000 * histogram_quantile(0.95, sum by (le, namespace, version) "
                 "(rate(agent_job_seconds_bucket[10m])))", NV, ("namespace", "version"), id="example-p95_latency_ms"),
    pytest.param(_increase("agent_high_risk_actions_total", ',approved="false"'),
                 _increase_batched("agent_high_risk_actions_total", '{approved="false"}'), NV,
                 ("namespace", "canary"), id="example-unapproved_high_risk_actions"),
    pytest.param('histogram_quantile(0.5, sum by (le) (rate(agent_approval_wait_seconds_bucket'
                 '{namespace="$namespace",version="$canary"}[$window])))',
                 "histogram_quantile(0.5, sum by (le, namespace, version) "
                 "(rate(agent_approval_wait_seconds_bucket[10m])))", NV, ("namespace", "canary"),
                 id="example-approval_queue_median_sec"),
    pytest.param(COST, "sum by (namespace, version) (rate(agent_cost_usd_total[10m]))"
                 " / sum by (namespace, version) (rate(agent_jobs_total[10m]))", NV, ("namespace", "version"),
                 id="example-cost_per_job_usd"),
    pytest.param(_increase("agent_policy_bypass_total"), _increase_batched("agent_policy_bypass_total"), NV,
                 ("namespace", "canary"), id="example-policy_bypasses"),
    pytest.param(TRIGGER, 'sum by (namespace, version) (rate(agent_jobs_total{outcome!="success"}[1m]))'
                 " / sum by (namespace, version) (rate(agent_jobs_total[1m]))", NV, ("namespace", "version"),
                 id="example-trigger-error-rate-2x-baseline"),
    pytest.param('sum(agent_approval_backlog_over_sla{namespace="$namespace",version="$canary"})',
                 "sum by (namespace, version) (agent_approval_backlog_over_sla)", NV, ("namespace", "canary"),
                 id="example-trigger-approval-backlog-over-sla"),
    pytest.param(bench.SUCCESS_QUERY, SUCCESS_BATCHED, NV, ("namespace", "canary"), id="bench-SUCCESS_QUERY"),
    pytest.param(bench.ERROR_QUERY.format(w="$window"),
                 'sum by (namespace, version) (rate(agent_jobs_total{outcome="error"}[10m]))'
                 " / sum by (namespace, version) (rate(agent_jobs_total[10m]))", NV, ("namespace", "version"),
                 id="bench-ERROR_QUERY"),
    # ---- no aggregation: the series keep their identity labels anyway
    pytest.param(f"rate(x{{{SEL}}}[5m])", "rate(x[5m])", NV, ("namespace", "canary"), id="rate-not-aggregated"),
    pytest.param(f"histogram_quantile(0.9, rate(h_bucket{{{SEL}}}[5m]))", "histogram_quantile(0.9, rate(h_bucket[5m]))",
                 NV, ("namespace", "canary"), id="histogram_quantile-not-aggregated"),
    pytest.param(f'x{{{SEL},a="1"}} / y{{{SEL}}}', 'x{a="1"} / y', NV, ("namespace", "canary"),
                 id="vector-ratio-both-sides-keep-identity"),
    pytest.param(f"x{{{SEL}}} offset 5m", "x offset 5m", NV, ("namespace", "canary"), id="offset-on-selector"),
    # ---- grouping
    pytest.param(f"sum(rate(h_bucket{{{SEL}}}[5m])) by (le)", "sum by (le, namespace, version) (rate(h_bucket[5m]))",
                 NV, ("namespace", "canary"), id="postfix-by"),
    pytest.param(f"sum by (version, le) (x{{{SEL}}})", "sum by (version, le, namespace) (x)", NV,
                 ("namespace", "canary"), id="by-already-has-an-identity-label"),
    pytest.param(f"sum by () (x{{{SEL}}})", "sum by (namespace, version) (x)", NV, ("namespace", "canary"),
                 id="by-empty"),
    pytest.param(f"sum without (instance, job) (x{{{SEL}}})", "sum without (instance, job) (x)", NV,
                 ("namespace", "canary"), id="without-keeps-identity"),
    pytest.param(f"sum(x{{{SEL}}}) without (instance)", "sum without (instance) (x)", NV, ("namespace", "canary"),
                 id="postfix-without"),
    pytest.param(f"max(sum by (instance) (x{{{SEL}}}))", "max by (namespace, version) (sum by (instance, namespace, version) (x))",
                 NV, ("namespace", "canary"), id="nested-aggregations"),
    pytest.param(f"SUM BY (le) (x{{{SEL}}})", "sum by (le, namespace, version) (x)", NV, ("namespace", "canary"),
                 id="keywords-are-case-insensitive"),
    pytest.param(f"sum by (le,) (x{{{SEL},}})", "sum by (le, namespace, version) (x)", NV, ("namespace", "canary"),
                 id="trailing-commas"),
    # ---- operators and numbers
    pytest.param(f"1 - sum(a{{{SEL}}}) / sum(b{{{SEL}}})",
                 "1 - (sum by (namespace, version) (a) / sum by (namespace, version) (b))", NV,
                 ("namespace", "canary"), id="precedence-made-explicit"),
    pytest.param(f"sum(x{{{SEL}}}) > bool 0.5", "sum by (namespace, version) (x) > bool 0.5", NV,
                 ("namespace", "canary"), id="comparison-bool"),
    pytest.param(f"sum(x{{{SEL}}}) >= 1e3", "sum by (namespace, version) (x) >= 1e3", NV, ("namespace", "canary"),
                 id="comparison-filter"),
    pytest.param(f"-sum(x{{{SEL}}}) ^ 2 * .5", "(-(sum by (namespace, version) (x) ^ 2)) * .5", NV,
                 ("namespace", "canary"), id="unary-minus-binds-looser-than-pow"),
    pytest.param(f"2 ^ 3 ^ sum(x{{{SEL}}})", "2 ^ (3 ^ sum by (namespace, version) (x))", NV,
                 ("namespace", "canary"), id="pow-is-right-associative"),
    pytest.param(f"sum(a{{{SEL}}}) - sum(b{{{SEL}}}) - sum(c{{{SEL}}})",
                 "(sum by (namespace, version) (a) - sum by (namespace, version) (b)) - sum by (namespace, version) (c)",
                 NV, ("namespace", "canary"), id="minus-is-left-associative"),
    pytest.param(f"sum(a{{{SEL}}}) / count(b{{{SEL}}})",
                 "sum by (namespace, version) (a) / count by (namespace, version) (b)", NV, ("namespace", "canary"),
                 id="different-aggregations-both-sides"),
    # ---- functions
    pytest.param(f"quantile_over_time(0.9, x{{{SEL}}}[5m])", "quantile_over_time(0.9, x[5m])", NV,
                 ("namespace", "canary"), id="quantile_over_time"),
    pytest.param(f"clamp(sum(x{{{SEL}}}), 0, 1)", "clamp(sum by (namespace, version) (x), 0, 1)", NV,
                 ("namespace", "canary"), id="clamp"),
    pytest.param(f"clamp_min(x{{{SEL}}}, -1)", "clamp_min(x, -1)", NV, ("namespace", "canary"), id="clamp_min"),
    pytest.param(f"round(x{{{SEL}}}, 0.1)", "round(x, 0.1)", NV, ("namespace", "canary"), id="round-to-nearest"),
    pytest.param(f"round(abs(ln(x{{{SEL}}})))", "round(abs(ln(x)))", NV, ("namespace", "canary"), id="nested-functions"),
    pytest.param(f"rate(x{{{SEL}}}[5m] offset 1h)", "rate(x[5m] offset 1h)", NV, ("namespace", "canary"),
                 id="offset-on-range"),
    pytest.param(f"max_over_time(sum(rate(x{{{SEL}}}[1m]))[10m:1m])",
                 "max_over_time((sum by (namespace, version) (rate(x[1m])))[10m:1m])", NV, ("namespace", "canary"),
                 id="subquery"),
    pytest.param(f"min_over_time((sum(x{{{SEL}}}) > 0)[1h:] offset 5m)",
                 "min_over_time((sum by (namespace, version) (x) > 0)[1h:] offset 5m)", NV, ("namespace", "canary"),
                 id="subquery-default-step-and-offset"),
    pytest.param(f"rate(x{{{SEL}}}[1h30m])", "rate(x[1h30m])", NV, ("namespace", "canary"), id="compound-duration"),
    pytest.param(f"sum(x{{{SEL}}}) * time()", "sum by (namespace, version) (x) * time()", NV,
                 ("namespace", "canary"), id="time"),
    # the canary-freshness query (core/freshness.py): the age of each rollout's newest sample
    pytest.param(f'time() - max(timestamp(x{{{SEL},a="1"}}))',
                 'time() - max by (namespace, version) (timestamp(x{a="1"}))', NV, ("namespace", "canary"),
                 id="freshness-query"),
    # ---- identity spelling
    pytest.param("x{namespace='$namespace',version='${canary}'}", "x", NV, ("namespace", "canary"),
                 id="single-quotes-and-braced-variable"),
    pytest.param("x{namespace=`$namespace`,version=`$canary`}", "x", NV, ("namespace", "canary"), id="raw-strings"),
    pytest.param('x{rollout="$rollout"}', "x", ("rollout",), ("rollout",), id="rollout-identity"),
    pytest.param('x{version="$stable"}', "x", ("version",), ("stable",), id="stable-identity"),
    pytest.param('x{track="$canary",version="$canary"}', "x", ("track", "version"), ("canary", "canary"),
                 id="one-variable-two-labels"),
    pytest.param('x{version="$canary",version="$canary"}', "x", ("version",), ("canary",),
                 id="repeated-identity-matcher"),
    pytest.param('{__name__="x",version="$canary"}', '{__name__="x"}', ("version",), ("canary",),
                 id="name-as-matcher"),
    pytest.param('job:x:rate5m{version="$canary"}', "job:x:rate5m", ("version",), ("canary",),
                 id="recording-rule-name"),
    pytest.param(f'x{{{SEL},version!="v0",job=~"a|b",e=`\\d`}}', 'x{version!="v0",job=~"a|b",e=`\\d`}', NV,
                 ("namespace", "canary"), id="other-matchers-kept-verbatim"),
    pytest.param(f'x{{{SEL},v="$window"}}', 'x{v="10m"}', NV, ("namespace", "canary"),
                 id="non-identity-variable-in-literal"),
    pytest.param(f"# success rate, by $canary\nsum(x{{ # the metric\n{SEL}}})", "sum by (namespace, version) (x)",
                 NV, ("namespace", "canary"), id="comments-dropped"),
]


@pytest.mark.parametrize(("template", "query", "labels", "variables"), BATCHABLE)
def test_batchable(template: str, query: str, labels: tuple[str, ...], variables: tuple[str, ...]) -> None:
    shape = batch_shape(template, V)
    assert shape == Shape(query, labels, variables)
    assert "$" not in shape.query
    assert shape.key(V) == tuple(V[v] for v in variables)


NOT_BATCHABLE = [
    # ---- identity variables anywhere but a whole `label="$var"` value
    pytest.param('x{version=~"$canary"}', id="regex-matcher"),
    pytest.param('x{version!="$canary"}', id="not-equal-matcher"),
    pytest.param('x{version!~"$canary"}', id="negative-regex-matcher"),
    pytest.param('x{version="$canary-1"}', id="prefix-of-a-longer-string"),
    pytest.param('x{version="v-$canary"}', id="suffix-of-a-longer-string"),
    pytest.param('x{version="$namespace/$canary"}', id="two-variables-in-one-string"),
    pytest.param('sum by ($canary) (x{version="$canary"})', id="outside-a-literal"),
    pytest.param('label_replace(x{version="$canary"}, "v", "$canary", "a", "(.*)")', id="label_replace-argument"),
    # a range vector is not a gate value (from_prometheus refuses it); nothing to batch
    pytest.param('x{version="$canary"}[5m]', id="range-vector-result"),
    # ---- identity matchers must be the same everywhere
    pytest.param('sum(a{version="$canary"}) / sum(b{version="$version"})', id="one-label-two-variables"),
    pytest.param('x{version="$canary",version="$stable"}', id="one-label-two-variables-one-selector"),
    pytest.param('sum(a{version="$canary"}) / sum(b)', id="selector-without-identity"),
    pytest.param(f'sum(a{{{SEL}}}) / sum(b{{version="$canary"}})', id="different-identity-label-sets"),
    pytest.param('sum(a{version="$canary"}) / sum(b{track="$canary"})', id="same-variable-different-labels"),
    pytest.param("sum(rate(x[5m]))", id="no-identity-at-all"),
    pytest.param("1 + 1", id="no-selector"),
    pytest.param('{version="$canary"}', id="selector-empty-without-identity"),
    # Prometheus refuses a selector whose every matcher matches ""; regexes are not evaluated here
    pytest.param('{version="$canary",job=~".+"}', id="only-regex-left-not-evaluated"),
    pytest.param('{version="$canary",job=""}', id="only-empty-matcher-left"),
    # functions drop __name__ and histogram_quantile consumes le: the split could not find them
    pytest.param('{__name__="$rollout",job="a"}', id="metric-name-as-identity"),
    pytest.param('histogram_quantile(0.9, sum by (le) (rate(h{le="$canary"}[5m])))', id="le-as-identity"),
    # ---- operators outside the allow-list
    pytest.param(f"x{{{SEL}}} and y{{{SEL}}}", id="and"),
    pytest.param(f"x{{{SEL}}} or y{{{SEL}}}", id="or"),
    pytest.param(f"x{{{SEL}}} unless y{{{SEL}}}", id="unless"),
    pytest.param(f"x{{{SEL}}} / on (job) y{{{SEL}}}", id="on"),
    pytest.param(f"x{{{SEL}}} / ignoring (job) y{{{SEL}}}", id="ignoring"),
    pytest.param(f"x{{{SEL}}} / on (job) group_left y{{{SEL}}}", id="group_left"),
    pytest.param(f"x{{{SEL}}} / on (job) group_right y{{{SEL}}}", id="group_right"),
    pytest.param(f"x{{{SEL}}} > bool on (job) y{{{SEL}}}", id="bool-with-on"),
    pytest.param(f"x{{{SEL}}} atan2 y{{{SEL}}}", id="atan2"),
    pytest.param(f"sum(x{{{SEL}}}) + bool 1", id="bool-on-arithmetic"),
    pytest.param(f"sum(x{{{SEL}}}) * (1 > 0)", id="scalar-comparison-without-bool"),
    pytest.param(f"x{{{SEL}}} @ 1700000000", id="at-modifier"),
    pytest.param(f"x{{{SEL}}} @ end()", id="at-end"),
    pytest.param(f"x{{{SEL}}} offset -5m", id="negative-offset"),  # not needed by any gate; refused
    # ---- functions and aggregations outside the allow-list
    pytest.param(f"scalar(sum(x{{{SEL}}}))", id="scalar"),
    pytest.param(f"sum(x{{{SEL}}}) / vector(1)", id="vector"),
    pytest.param(f"absent(x{{{SEL}}})", id="absent"),
    pytest.param(f"absent_over_time(x{{{SEL}}}[5m])", id="absent_over_time"),
    pytest.param(f'label_join(x{{{SEL}}}, "a", ",", "b")', id="label_join"),
    pytest.param(f"topk(1, x{{{SEL}}})", id="topk"),
    pytest.param(f"bottomk(1, x{{{SEL}}})", id="bottomk"),
    pytest.param(f"quantile(0.9, x{{{SEL}}})", id="quantile"),
    pytest.param(f'count_values("v", x{{{SEL}}})', id="count_values"),
    pytest.param(f"limitk(1, x{{{SEL}}})", id="limitk"),
    # label-preserving, but not on the allow-list: the list is closed on purpose
    pytest.param(f"changes(x{{{SEL}}}[5m])", id="changes-not-on-the-list"),
    pytest.param(f"sort(x{{{SEL}}})", id="sort-not-on-the-list"),
    pytest.param(f"predict_linear(x{{{SEL}}}[5m], 60)", id="predict_linear-not-on-the-list"),
    pytest.param(f"my_function(x{{{SEL}}})", id="unknown-function"),
    pytest.param(f"Rate(x{{{SEL}}}[5m])", id="function-names-are-case-sensitive"),
    pytest.param(f"x (y{{{SEL}}})", id="metric-name-followed-by-paren-is-a-call"),
    # ---- grouping that would break the rewrite
    # `without (version)` would merge every rollout's series into one group
    pytest.param(f"sum without (version) (x{{{SEL}}})", id="without-an-identity-label"),
    # Per rollout the left side has the identity labels and the right side none, so they match
    # only on series without other labels; batched, both sides carry them. Refused, not risked.
    pytest.param(f"rate(x{{{SEL}}}[5m]) / sum(rate(x{{{SEL}}}[5m]))", id="matching-differs-after-batching"),
    # per rollout {namespace, version} never matches {} (empty result); batched it would match
    pytest.param(f"sum by (namespace, version) (x{{{SEL}}}) / sum(x{{{SEL}}})", id="by-identity-over-plain-sum"),
    pytest.param(f"sum by (version) (x{{{SEL}}}) / sum(y{{{SEL}}})", id="sides-keep-different-identity-labels"),
    pytest.param(f"sum by (a) (x{{{SEL}}}) by (b)", id="grouping-twice"),
    pytest.param(f"sum by (job:name) (x{{{SEL}}})", id="colon-in-grouping-label"),
    # ---- types and syntax the subset does not accept
    pytest.param(f"sum(x{{{SEL}}}[5m])", id="aggregation-of-a-range"),
    pytest.param(f"-x{{{SEL}}}[5m]", id="unary-minus-on-a-range"),
    pytest.param(f"sum(1, x{{{SEL}}})", id="aggregation-with-a-parameter"),
    pytest.param("sum(1)", id="aggregation-of-a-scalar"),
    pytest.param(f"rate(x{{{SEL}}})", id="rate-of-an-instant-vector"),
    pytest.param(f"rate(x{{{SEL}}}[5m], 1)", id="too-many-arguments"),
    pytest.param(f"clamp(x{{{SEL}}}, 1)", id="too-few-arguments"),
    pytest.param(f"quantile_over_time(x{{{SEL}}}, x{{{SEL}}}[5m])", id="vector-where-a-scalar-is-expected"),
    pytest.param(f"rate(x{{{SEL}}}[5m],)", id="trailing-comma-in-call"),
    pytest.param(f"(x{{{SEL}}})[5m]", id="range-of-a-parenthesised-selector"),
    pytest.param(f"rate(x{{{SEL}}} offset 5m [10m])", id="offset-before-range"),
    pytest.param(f"x{{{SEL}}} offset 5m offset 1m", id="two-offsets"),
    pytest.param(f"max_over_time(x{{{SEL}}}[5m][10m:1m])", id="subquery-of-a-range"),
    # syntax only newer Prometheus versions accept: refused rather than guessed at
    pytest.param(f"rate(x{{{SEL}}}[5m*2])", id="duration-arithmetic"),
    pytest.param(f"rate(x{{{SEL}}}[5m # why\n])", id="comment-inside-brackets"),
    pytest.param(f"rate(x{{{SEL}}}[5s5m])", id="duration-units-out-of-order"),
    pytest.param(f"sum(x{{{SEL}}}) * 5m", id="duration-as-number"),
    pytest.param(f"0x10 * sum(x{{{SEL}}})", id="hex-number"),
    pytest.param(f"1_000 * sum(x{{{SEL}}})", id="underscore-in-number"),
    pytest.param(f"clamp_max(x{{{SEL}}}, Inf)", id="inf"),
    pytest.param(f"sum(x{{{SEL}}}) > NaN", id="nan"),
    pytest.param(f"by{{{SEL}}}", id="keyword-as-metric-name"),
    pytest.param(f"offset{{{SEL}}}", id="offset-as-metric-name"),
    pytest.param(f'{{"x",{SEL}}}', id="quoted-metric-name"),
    pytest.param('x{"version"="$canary"}', id="quoted-label-name"),
    pytest.param(f"sum(x{{{SEL}}}", id="unclosed-paren"),
    pytest.param(f"x{{{SEL}", id="unclosed-brace"),
    pytest.param(f"sum(x{{{SEL}}}))", id="extra-paren"),
    pytest.param(f"x{{{SEL}}} y{{{SEL}}}", id="two-expressions"),
    pytest.param(f"x{{{SEL}}} / ", id="missing-operand"),
    pytest.param(f"x{{{SEL}}} == = 1", id="bad-operator"),
    pytest.param("(" * 2000 + f"x{{{SEL}}}" + ")" * 2000, id="too-deep"),  # recursion limit, not a crash
    # ---- templates the caller could not render either
    pytest.param(f"x{{{SEL},a=\"$foo\"}}", id="unknown-variable"),
    pytest.param('x{version="$version",namespace="$namespace",a="$nothing"}', id="unknown-variable-2"),
]


@pytest.mark.parametrize("template", NOT_BATCHABLE)
def test_not_batchable(template: str) -> None:
    assert batch_shape(template, V) is None


def test_unbound_and_empty_variables_are_not_batched() -> None:
    assert batch_shape('x{version="$stable"}', {"canary": "v2"}) is None
    assert batch_shape('x{version="$canary"}', {"canary": ""}) is None
    assert batch_shape('x{version="$version"}', {"canary": "v2"}) is None  # $version bound by the caller
    assert batch_shape('rate(x{version="$canary"}[$window])', {"canary": "v2", "window": "soon"}) is None


def _table_templates() -> set[str]:
    return {str(p.values[0]) for p in [*BATCHABLE, *NOT_BATCHABLE]}


def _example_queries() -> list[str]:
    out: list[str] = []
    for name in ("launchgates.yaml", "agentrollout.yaml"):
        for doc in yaml.safe_load_all((ROOT / "examples" / name).read_text()):
            spec = doc["spec"]
            out += [b[key] for b in spec.get("blockers", []) for key in ("query", "baselineQuery") if key in b]
            for phase in spec.get("phases", []):
                out += [t[key] for t in phase.get("rollbackTriggers", []) for key in ("query", "baselineQuery")
                        if key in t]
    return out + [bench.SUCCESS_QUERY, bench.ERROR_QUERY.format(w="$window")]


def test_examples_are_in_the_table_and_all_batchable() -> None:
    queries = _example_queries()
    assert len(queries) >= 12
    missing = [q for q in queries if q not in _table_templates()]
    assert missing == [], "add these to BATCHABLE or NOT_BATCHABLE"
    assert all(batch_shape(q, V) is not None for q in queries)


def test_every_identity_variable_can_be_an_identity() -> None:
    for name in IDENTITY_VARIABLES:
        shape = batch_shape(f'x{{l="${name}"}}', V)
        assert shape == Shape("x", ("l",), (name,))


# --------------------------------------------------------------------------- cache key and injection

PAYLOADS = [
    'x"} or vector(1) #',
    "x'} or vector(1) #",
    "x`} or vector(1) #",
    '"} or vector(1) or up{a="',
    "} or vector(1)",
    "\\",
    'x\\"',
    "a\nb",
    "\x00",
    "\u2028",
    "🚀",
    ".*",
    "$canary",
    "${stable}",
    "$1",
    "#",
    "v1.2.3",
    "sum by (x)",
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("quote", ['"', "'", "`"])
def test_identity_values_never_reach_the_query(payload: str, quote: str) -> None:
    template = SUCCESS.replace('"$canary"', f"{quote}$canary{quote}").replace('"$namespace"', f"{quote}$namespace{quote}")
    shape = batch_shape(template, {**V, "canary": payload, "namespace": payload + "ns"})
    assert shape == Shape(SUCCESS_BATCHED, NV, ("namespace", "canary"))
    assert shape.key({**V, "canary": payload, "namespace": "n"}) == ("n", payload)


@pytest.mark.parametrize("window", ['5m] or vector(1) #', "5m]) or vector(1", '"5m"', "5m 5m", "", "$canary"])
def test_non_identity_values_are_rendered_safely_or_refused(window: str) -> None:
    assert batch_shape(f"rate(x{{{SEL}}}[$window])", {**V, "window": window}) is None


def test_non_identity_value_in_a_literal_is_escaped_by_render() -> None:
    # $window is the only non-identity variable render knows, and must be a duration; inside a
    # literal it is escaped like any value (here a harmless duration, but the path is render's).
    shape = batch_shape(f'x{{{SEL},w="$window"}}', {**V, "window": "1h30m"})
    assert shape is not None and shape.query == 'x{w="1h30m"}'


def test_same_query_for_every_rollout_and_both_sides() -> None:
    rollouts = [
        {"namespace": "agents", "rollout": "a", "canary": "v2", "stable": "v1", "window": "10m"},
        {"namespace": "team-b", "rollout": "b", "canary": "2026.1", "stable": "2025.9", "window": "10m"},
    ]
    shapes = []
    for r in rollouts:
        for side in ("canary", "stable"):
            shapes.append(batch_shape(P95, {**r, "version": r[side]}))
    assert len(set(shapes)) == 1  # one query (and one Shape) for all four
    assert shapes[0] is not None
    keys = [shapes[0].key({**r, "version": r[side]}) for r in rollouts for side in ("canary", "stable")]
    assert keys == [("agents", "v2"), ("agents", "v1"), ("team-b", "2026.1"), ("team-b", "2025.9")]


def test_whitespace_comments_and_identity_quotes_do_not_change_the_query() -> None:
    a = batch_shape(SUCCESS, V)
    b = batch_shape(SUCCESS.replace('"$canary"', "'$canary'").replace(" / ", "\n/\n   ").replace("sum(", "sum (")
                    + "  # done", V)
    assert a is not None and a == b
    # other literals are copied as written (re-quoting could change what a \x escape means)
    c = batch_shape(SUCCESS.replace('"success"', "'success'"), V)
    assert c is not None and c.query == a.query.replace('"success"', "'success'")


def test_window_is_part_of_the_query() -> None:
    a, b = batch_shape(SUCCESS, V), batch_shape(SUCCESS, {**V, "window": "5m"})
    assert a is not None and b is not None and a.query != b.query


def test_key_needs_every_variable() -> None:
    shape = batch_shape(SUCCESS, V)
    assert shape is not None
    with pytest.raises(KeyError):
        shape.key({"namespace": "agents"})


# --------------------------------------------------------------------------- split_vector


def _series(value: float, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, repr(value)]}


def _vector(*series: dict[str, Any]) -> dict[str, Any]:
    return {"resultType": "vector", "result": list(series)}


SPLITS = [
    pytest.param(
        _vector(_series(0.99, namespace="agents", version="v1"), _series(0.5, namespace="agents", version="v2"),
                _series(0.7, namespace="other", version="v1")),
        NV,
        {("agents", "v1"): [0.99], ("agents", "v2"): [0.5], ("other", "v1"): [0.7]},
        id="one-series-per-identity",
    ),
    pytest.param(
        _vector(_series(1, namespace="a", version="v1", outcome="success"),
                _series(2, namespace="a", version="v1", outcome="error"), _series(3, namespace="a", version="v2")),
        NV,
        {("a", "v1"): [1, 2], ("a", "v2"): [3]},
        id="several-series-for-one-identity",
    ),
    pytest.param(
        _vector(_series(1, version="v1"), _series(2, namespace="a", version="v1"), _series(3, namespace="a")),
        NV,
        {("", "v1"): [1], ("a", "v1"): [2], ("a", ""): [3]},
        id="missing-label-is-empty",
    ),
    pytest.param(_vector({"value": [1.0, "4"]}), ("version",), {("",): [4]}, id="missing-metric"),
    pytest.param(_vector(), NV, {}, id="empty-result"),
    pytest.param(_vector(_series(1, version="v1")), (), {(): [1]}, id="no-labels"),
]


@pytest.mark.parametrize(("data", "labels", "expected"), SPLITS)
def test_split_vector(data: dict[str, Any], labels: tuple[str, ...], expected: dict[tuple[str, ...], list[float]]) -> None:
    split = split_vector(data, labels)
    assert split is not None
    assert {k: [float(s["value"][1]) for s in v["result"]] for k, v in split.items()} == expected
    assert all(v["resultType"] == "vector" for v in split.values())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"resultType": "scalar", "result": [1.0, "1"]}, id="scalar"),
        pytest.param({"resultType": "matrix", "result": []}, id="matrix"),
        pytest.param({"resultType": "string", "result": [1.0, "x"]}, id="string"),
        pytest.param({}, id="empty-data"),
        pytest.param({"resultType": "vector"}, id="no-result"),
        pytest.param({"resultType": "vector", "result": {"a": 1}}, id="result-not-a-list"),
        pytest.param({"resultType": "vector", "result": ["x"]}, id="series-not-an-object"),
        pytest.param({"resultType": "vector", "result": [{"metric": [], "value": [1, "1"]}]}, id="metric-not-an-object"),
        pytest.param({"resultType": "vector", "result": [{"metric": {"version": 1}, "value": [1, "1"]}]},
                     id="label-value-not-a-string"),
    ],
)
def test_split_vector_refuses_anything_but_a_vector(data: dict[str, Any]) -> None:
    assert split_vector(data, ("version",)) is None


def test_split_matrix() -> None:
    def series(version: str, *values: float, **labels: str) -> dict[str, Any]:
        return {"metric": {"namespace": "a", "version": version, **labels},
                "values": [[1700000000.0 + i, repr(v)] for i, v in enumerate(values)]}

    data = {"resultType": "matrix", "result": [series("v1", 1, 2), series("v2", 3, outcome="x"),
                                               series("v2", 4, outcome="y"), {"metric": {}, "values": []}]}
    split = split_matrix(data, NV)
    assert split is not None
    assert {k: [[float(x) for _, x in s["values"]] for s in v["result"]] for k, v in split.items()} == \
        {("a", "v1"): [[1, 2]], ("a", "v2"): [[3], [4]], ("", ""): [[]]}
    assert all(v["resultType"] == "matrix" for v in split.values())
    assert split_matrix({"resultType": "matrix", "result": []}, NV) == {}
    for bad in ({"resultType": "vector", "result": []}, {"resultType": "matrix", "result": ["x"]}, {}):
        assert split_matrix(bad, NV) is None


def test_split_feeds_from_prometheus_with_the_one_number_rule() -> None:
    data = _vector(_series(0.99, namespace="a", version="v1"), _series(1, namespace="a", version="v2", outcome="x"),
                   _series(2, namespace="a", version="v2", outcome="y"), _series(float("nan"), namespace="a", version="v3"))
    split = split_vector(data, NV)
    assert split is not None
    empty = {"resultType": "vector", "result": []}
    assert from_prometheus(split[("a", "v1")]).value == 0.99
    assert from_prometheus(split[("a", "v2")]).missing == "several series (2) where one was expected"
    assert from_prometheus(split[("a", "v3")]).missing == "NaN"
    assert from_prometheus(split.get(("a", "v4"), empty)).missing == "empty vector"


def test_split_keys_match_shape_keys() -> None:
    shape = batch_shape(SUCCESS, V)
    assert shape is not None
    split = split_vector(_vector(_series(0.9, namespace="agents", version="v2", job="j")), shape.labels)
    assert split is not None and list(split) == [shape.key(V)]



# --------------------------------------------------------------------------- vector_selectors


@pytest.mark.parametrize(("query", "selectors"), [
    pytest.param('sum(rate(a{x="1"}[5m] offset 1h)) / on() group_left b:c{y=~"2"} @ 100',
                 [('a{x="1"}', (("x", "=", '"1"'),)), ('b:c{y=~"2"}', (("y", "=~", '"2"'),))],
                 id="names-ranges-and-modifiers"),
    pytest.param('x and {__name__="y", z!~`q`}', [('{__name__="y", z!~`q`}', (("__name__", "=", '"y"'),
                                                                              ("z", "!~", "`q`")))],
                 id="keyword-is-no-name"),
    pytest.param('label_replace(x{a="1"}, "b", "$1", "c", "(.*)") # d{e="f"}',
                 [('x{a="1"}', (("a", "=", '"1"'),))], id="strings-and-comments-are-no-selectors"),
    pytest.param('x {\n  a = "1", # why\n}', [('x {\n  a = "1", # why\n}', (("a", "=", '"1"'),))],
                 id="spaces-and-comments-inside"),
    pytest.param("sum(rate(x[5m])) * 1e3", [], id="no-braces"),
])
def test_vector_selectors(query: str, selectors: list[tuple[str, tuple[tuple[str, str, str], ...]]]) -> None:
    found = vector_selectors(query)
    assert found is not None
    assert [(query[s.start:s.end], s.matchers) for s in found] == selectors


@pytest.mark.parametrize("query", ['x{a="1"', "x{a@1}", "x[5m"])
def test_vector_selectors_of_what_cannot_be_read(query: str) -> None:
    assert vector_selectors(query) is None
