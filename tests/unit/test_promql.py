"""promql.render: values can only ever be values. Round-trip every payload through the literal."""

from __future__ import annotations

import ast
import re

import pytest

from launchgate.core.promql import (
    KNOWN_VARIABLES,
    TemplateError,
    escape_regex,
    escape_string,
    render,
    unquote,
)

BASE = {"namespace": "agents", "rollout": "support-agent", "stable": "v1", "canary": "v2", "window": "10m"}

# Attempts to break out of a literal, a regex or a replacement, plus characters that need escaping.
PAYLOADS = [
    'x"} or vector(1) #',
    "x'} or vector(1) #",
    "x`} or vector(1) #",
    '"} or vector(1) or up{a="',
    "} or vector(1)",
    "\\",
    'x\\"',
    "x\\",
    "a\\nb",
    "a\nb",
    "a\r\nb # comment",
    "\t",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u2028",
    "\u200b",
    "\ufeff",
    "ünïcødé",
    "日本語",
    "🚀",
    ".*",
    ".+|x",
    "^$",
    "(a|b)",
    "[a-z]+",
    "x{1,2}",
    "a\\.b",
    "$canary",
    "${canary}",
    "$1",
    "$$",
    "#",
    '"',
    "'",
    "`",
    " ",
    "v1.2.3",
    "a\"b'c`d",
    "\\x41",
    "\\u0041",
    "\\'",
]

_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`')


def literals(q: str) -> list[str]:
    return _LITERAL.findall(q)


def skeleton(q: str) -> str:
    """The query with every string literal replaced by S: its structure, independent of values."""
    return _LITERAL.sub("S", q)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("quote", ['"', "'", "`"])
def test_label_value_round_trips(payload: str, quote: str) -> None:
    template = f"sum(rate(agent_jobs_total{{namespace={quote}$namespace{quote},version={quote}$canary{quote}}}[$window]))"
    rendered = render(template, {**BASE, "canary": payload})
    assert skeleton(rendered) == skeleton(template.replace("$window", "10m"))
    lits = literals(rendered)
    assert len(lits) == 2
    assert unquote(lits[1]) == payload
    if lits[1][0] != "`":
        assert ast.literal_eval(lits[1]) == payload  # an independent decoder agrees
    assert rendered.endswith("[10m]))")


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("op", ["=~", "!~"])
def test_regex_value_matches_only_itself(payload: str, op: str) -> None:
    rendered = render(f'up{{version{op}"$canary"}}', {**BASE, "canary": payload})
    assert skeleton(rendered) == 'up{version' + op + "S}"
    regex = unquote(literals(rendered)[0])
    assert re.fullmatch(regex, payload, flags=re.S)
    for other in ("", "v2", payload + "x", "x" + payload, payload * 2):
        if other != payload:
            assert not re.fullmatch(regex, other, flags=re.S), other


def test_regex_keeps_the_authors_alternation() -> None:
    rendered = render('up{version=~"$canary|$stable"}', {**BASE, "canary": "a.b", "stable": "c*"})
    assert rendered == 'up{version=~"a\\\\.b|c\\\\*"}'
    regex = unquote(literals(rendered)[0])
    assert re.fullmatch(regex, "a.b") and re.fullmatch(regex, "c*")
    assert not re.fullmatch(regex, "axb") and not re.fullmatch(regex, "ccc")


def test_label_replace_regex_and_replacement_arguments() -> None:
    q = 'label_replace(up, "dst", "$1-$canary-${1}-$host", "src", "(.*)-$stable")'
    out = render(q, {**BASE, "canary": "$2", "stable": "v.1"})
    lits = [unquote(x) for x in literals(out)]
    assert lits[1] == "$1-$$2-${1}-$host"  # value's $ doubled; the author's group refs kept
    assert lits[3] == "(.*)-v\\.1"


def test_braced_form_and_adjacent_text() -> None:
    assert render('x{v="${canary}-suffix"}', BASE) == 'x{v="v2-suffix"}'
    assert render('x{v="$canary-suffix"}', BASE) == 'x{v="v2-suffix"}'


def test_raw_literal_with_variable_becomes_quoted_and_keeps_backslashes() -> None:
    out = render("x{v=~`\\d+-$canary`}", {**BASE, "canary": "a`b"})
    assert out == 'x{v=~"\\\\d+-a`b"}'
    assert unquote(literals(out)[0]) == "\\d+-a`b"


def test_raw_literal_without_variable_is_untouched() -> None:
    assert render("x{v=~`\\d+`}", BASE) == "x{v=~`\\d+`}"


def test_existing_escapes_in_template_are_kept() -> None:
    out = render('x{v="a\\"$canary"}', BASE)
    assert unquote(literals(out)[0]) == 'a"v2'


def test_comments_are_not_substituted() -> None:
    assert render("up # $nothing here\n+ 1", BASE) == "up # $nothing here\n+ 1"


def test_regex_anchor_dollar_is_not_a_variable() -> None:
    assert render('up{job=~"api$"}', BASE) == 'up{job=~"api$"}'


@pytest.mark.parametrize("window", ["10m", "30s", "1h30m", "250ms", "1d"])
def test_window_accepts_durations(window: str) -> None:
    assert render("rate(x[$window])", {**BASE, "window": window}) == f"rate(x[{window}])"


@pytest.mark.parametrize("window", ["10m]) or vector(1", "10", "", "10 m", "-5m", "5m\n", "x"])
def test_window_rejects_anything_else(window: str) -> None:
    with pytest.raises(TemplateError, match="window"):
        render("rate(x[$window])", {**BASE, "window": window})


def test_window_in_a_literal_must_still_be_a_duration() -> None:
    with pytest.raises(TemplateError, match=r"\$window"):
        render('x{w="$window"}', {**BASE, "window": '"}'})


@pytest.mark.parametrize("value", ["v2", "agent_jobs", "_x1", "5m"])
def test_bare_values_that_are_identifiers_or_durations(value: str) -> None:
    assert render("x_$canary", {**BASE, "canary": value}) == f"x_{value}"


@pytest.mark.parametrize("value", ["or", "OR", "unless", "offset", "v1.2", "a b", "x) or vector(1", "a-b", "1", "a:b"])
def test_bare_values_otherwise_rejected_naming_the_variable(value: str) -> None:
    with pytest.raises(TemplateError, match=r"\$canary"):
        render("x_$canary", {**BASE, "canary": value})


def test_unknown_variable() -> None:
    with pytest.raises(TemplateError, match=r"unknown variable \$cnary"):
        render('x{v="$cnary"}', BASE)


def test_known_but_unbound_variable() -> None:
    with pytest.raises(TemplateError, match=r"\$rollout is used but not bound \(set rollout=...\)"):
        render('x{v="$rollout"}', {"canary": "v2"})
    with pytest.raises(TemplateError, match=r"\$version is used but not bound: .* set canary="):
        render('x{v="$version"}', BASE)


def test_empty_value_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"\$canary is empty"):
        render('x{v="$canary"}', {**BASE, "canary": ""})


def test_non_string_value_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"\$canary must be a string"):
        render('x{v="$canary"}', {**BASE, "canary": 2})  # type: ignore[dict-item]


@pytest.mark.parametrize("query", ['x{v="$canary}', "x{v='abc\n'}", "x{v=`abc"])
def test_unterminated_literals(query: str) -> None:
    with pytest.raises(TemplateError, match="unterminated"):
        render(query, BASE)


def test_stray_dollar_outside_literal() -> None:
    with pytest.raises(TemplateError, match="stray"):
        render("x $ 1", BASE)


def test_unterminated_brace() -> None:
    with pytest.raises(TemplateError, match="unterminated"):
        render('x{v="${canary"}', BASE)


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(TemplateError, match="surrogate"):
        render('x{v="$canary"}', {**BASE, "canary": "a\udc80"})


def test_escape_helpers() -> None:
    assert escape_string('a"b\'c', '"') == 'a\\"b\'c'
    assert escape_string('a"b\'c', "'") == "a\"b\\'c"
    assert escape_string("\x01\u2028🚀") == "\\x01\\u2028🚀"
    assert escape_regex("a.b*c") == "a\\.b\\*c"
    with pytest.raises(ValueError):
        escape_string("x", "`")


def test_known_variables() -> None:
    assert set(KNOWN_VARIABLES) == {"namespace", "rollout", "stable", "canary", "version", "window", "policy"}


def test_query_without_variables_is_unchanged() -> None:
    q = 'sum by (le) (rate(x{a="b", c=~"d.*"}[5m])) / on() group_left sum(y) # "quoted"'
    assert render(q, {}) == q


# A query is read once and kept (promql._compiled); every render must still see only its own values.
def test_one_query_renders_each_callers_values_and_errors() -> None:
    q = 'a{v="$canary", w=~"$stable", x=`$canary`} / b[$window]'
    for canary, stable in (("v1", "a.b"), ('x"}', "c|d"), ("v2", "e")):
        out = render(q, {**BASE, "canary": canary, "stable": stable})
        assert out == (f'a{{v="{escape_string(canary)}", w=~"{escape_string(escape_regex(stable))}", '
                       f'x="{escape_string(canary)}"}} / b[10m]')
    with pytest.raises(TemplateError, match=r"\$canary is empty"):
        render(q, {**BASE, "canary": ""})
    assert render(q, BASE) == 'a{v="v2", w=~"v1", x="v2"} / b[10m]'


def test_which_variables_are_bound_changes_a_replacement_reference() -> None:
    q = 'label_replace(up, "d", "$team-$1", "s", "(.*)")'
    assert render(q, BASE) == q  # $team: a named group of label_replace, not ours
    # the same text with $team bound: a value of ours ($ doubled so it cannot name a group)
    assert render(q, {**BASE, "team": "x$2"}) == 'label_replace(up, "d", "x$$2-$1", "s", "(.*)")'


@pytest.mark.parametrize(("query", "error"), [
    ('x{a="$canary"} $ y', "empty"),               # a value error before a stray $
    ('x{a=`$canary ${stable`', "empty"),           # ... before an unterminated ${ in a raw literal
    ('x{a=`$canary', "empty"),                     # ... before an unterminated raw literal
    ('x $ y{a="$canary"}', "stray"),               # the structural error comes first here
])
def test_the_first_error_in_the_query_is_the_one_reported(query: str, error: str) -> None:
    with pytest.raises(TemplateError, match=error):
        render(query, {**BASE, "canary": ""})
