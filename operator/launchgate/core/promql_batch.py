"""One Prometheus query per query *shape* instead of one per rollout.

Every rollout's gate sends the same template with only its identity filled in
(``namespace="$namespace", version="$canary"``). Dropping those identity matchers and grouping every
aggregation by the identity labels gives one query whose result holds every rollout's answer, each
under its own label values; `split_vector` then hands each rollout the series it would have got.

That rewrite is only sound for a small, closed part of PromQL, so `batch_shape` parses the query and
answers None ("query per rollout") for anything it cannot prove equivalent. The argument,
per node of the query: the batched result restricted to one identity's label values equals the
per-rollout result with the identity labels added. Selectors: an equality matcher on a non-empty
value is the same as that restriction. Label-preserving functions and arithmetic keep it.
Aggregations keep it once grouped by the identity labels too. A vector/vector operator matches
series on their labels, so both sides must agree on which identity labels the *per-rollout* series
still carry (``sum by (namespace, version) (x) / sum(x)`` never matches per rollout, but would after
batching); that is tracked per node and a disagreement is refused.

Variables other than the identity ones (in practice ``$window``) are substituted by
`promql.render` with its escaping rules, so the injection guarantees are exactly promql.render's;
identity values never reach the batched query at all (the query is the same for every rollout, which
is what makes it usable as a cache key).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from launchgate.core.promql import TemplateError, render, unquote

IDENTITY_VARIABLES = ("namespace", "rollout", "canary", "stable", "version")

# Aggregations whose result is a function of each group's samples only (no parameter, no
# cross-group ranking), so adding grouping labels only splits groups, never changes one.
_AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"})

# Functions by argument types; "s" is a scalar (a constant here), "v" an instant vector, "m" a
# range vector. All of them work series by series and keep every label but __name__ (and le for
# histogram_quantile, which groups buckets by all other labels). `timestamp` of a plain selector is
# its samples' own times, and a selector stays one in the batched query, so the special case
# Prometheus makes for it applies to both alike; `time()` takes no argument and is the same scalar
# in both (the canary-freshness queries, see core/freshness.py, are built of these two).
_RANGE_FUNCTIONS = (
    "rate irate increase delta idelta deriv avg_over_time min_over_time max_over_time sum_over_time "
    "count_over_time stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time"
).split()
_FUNCTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    **{name: (("m",),) for name in _RANGE_FUNCTIONS},
    "quantile_over_time": (("s", "m"),),
    "histogram_quantile": (("s", "v"),),
    "clamp": (("v", "s", "s"),),
    "clamp_min": (("v", "s"),),
    "clamp_max": (("v", "s"),),
    "round": (("v",), ("v", "s")),
    **{name: (("v",),) for name in "abs ceil floor exp ln log2 log10 sqrt timestamp".split()},
    "time": ((),),
}

# Every word Prometheus' lexer (any version we may meet) treats as a keyword, lower-cased as it
# does; none of them may be read as a metric name.
_KEYWORDS = frozenset(
    "and or unless atan2 sum avg count min max group stddev stdvar topk bottomk count_values quantile "
    "limitk limit_ratio offset smoothed anchored by without on ignoring group_left group_right fill "
    "fill_left fill_right bool start end step range inf nan".split()
)
_PRECEDENCE = {"==": 1, "!=": 1, "<=": 1, "<": 1, ">=": 1, ">": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3, "^": 4}
_COMPARISONS = frozenset({"==", "!=", "<=", "<", ">=", ">"})
_UNARY_OPERAND = 4  # a unary sign binds like `*`: only `^` is tighter

_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# model.ParseDuration: units in decreasing order, each at most once.
_DURATION = re.compile(
    r"(?=[0-9])(?:[0-9]+y)?(?:[0-9]+w)?(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?(?:[0-9]+ms)?"
)
_WORD = re.compile(r"[A-Za-z0-9_]*")
_METRIC = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "^", "(", ")", ",")
_BRACE_OPERATORS = ("=~", "!~", "!=", "=", ",")
# Identity labels the rewrite cannot carry: functions drop __name__, histogram_quantile eats le.
_RESERVED_LABELS = frozenset({"__name__", "le"})


class _Unbatchable(Exception):
    """The query is outside what can be proven equivalent; batch_shape answers None."""


@dataclass(frozen=True)
class Shape:
    """A batched query and how to find one rollout's series in its result.

    `query` does not depend on any identity value, so it is the same text for every rollout using
    the same template (and the same $window): use it as the cache key.
    """

    query: str
    labels: tuple[str, ...]
    variables: tuple[str, ...]

    def key(self, variables: Mapping[str, str]) -> tuple[str, ...]:
        """This caller's identity values in `labels` order: the key into `split_vector`'s result.

        `variables` must be bound as for rendering (with $version already set to the side's
        version); a missing identity variable raises KeyError.
        """
        return tuple(variables[v] for v in self.variables)


# --------------------------------------------------------------------------- lexing


@dataclass(frozen=True)
class _Token:
    kind: str  # "ident", "number", "duration", "string", "op", "eof"
    text: str
    pos: int


def _lex(q: str) -> list[_Token]:
    """Tokens of a rendered query, with Prometheus' context rules for braces and brackets.

    Stricter than Prometheus wherever versions differ or the subset does not need more: strings
    only as matcher values, durations only in brackets and after offset, no comments in brackets.
    """
    out: list[_Token] = []
    i, n = 0, len(q)
    brace = bracket = False
    while i < n:
        ch = q[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch == "#":
            i = _skip_comment(q, i, bracket)
            continue
        if brace:
            i, brace = _lex_in_braces(q, i, out)
            continue
        if bracket:
            i, bracket = _lex_in_brackets(q, i, out)
            continue
        if ch in "0123456789" or (ch == "." and q[i + 1 : i + 2] in tuple("0123456789")):
            i = _lex_number(q, i, out)
            continue
        if ch.isascii() and (ch.isalpha() or ch in "_:"):
            m = _METRIC.match(q, i)
            assert m is not None
            out.append(_Token("ident", m.group(0), i))
            i = m.end()
            continue
        if ch in "{[":
            brace, bracket = ch == "{", ch == "["
            out.append(_Token("op", ch, i))
            i += 1
            continue
        op = next((o for o in _OPERATORS if q.startswith(o, i)), None)
        if op is None:
            # strings outside braces (function arguments), '@', '=' and the like
            raise _Unbatchable(f"unexpected {ch!r} at offset {i}")
        out.append(_Token("op", op, i))
        i += len(op)
    if brace or bracket:
        raise _Unbatchable("unclosed brace or bracket")
    out.append(_Token("eof", "", n))
    return out


def _skip_comment(q: str, i: int, bracket: bool) -> int:
    """The index after the comment at q[i] (a '#' up to the end of its line)."""
    if bracket:
        raise _Unbatchable("comment inside brackets")
    while i < len(q) and q[i] not in "\r\n":
        i += 1
    return i


def _lex_in_braces(q: str, i: int, out: list[_Token]) -> tuple[int, bool]:
    """One token inside label matcher braces: (the index after it, still inside the braces)."""
    ch = q[i]
    if ch.isascii() and (ch.isalpha() or ch == "_"):
        m = _LABEL.match(q, i)
        assert m is not None
        out.append(_Token("ident", m.group(0), i))
        return m.end(), True
    if ch in "\"'`":
        end = _string_end(q, i)
        out.append(_Token("string", q[i:end], i))
        return end, True
    if ch == "}":
        out.append(_Token("op", "}", i))
        return i + 1, False
    op = next((o for o in _BRACE_OPERATORS if q.startswith(o, i)), None)
    if op is None:
        raise _Unbatchable(f"unexpected {ch!r} inside braces")
    out.append(_Token("op", op, i))
    return i + len(op), True


def _lex_in_brackets(q: str, i: int, out: list[_Token]) -> tuple[int, bool]:
    """One token inside a range or subquery's brackets: (the index after it, still inside them)."""
    ch = q[i]
    if ch == "]":
        out.append(_Token("op", "]", i))
        return i + 1, False
    if ch == ":":
        out.append(_Token("op", ":", i))
        return i + 1, True
    word = _WORD.match(q, i)
    assert word is not None
    if not _DURATION.fullmatch(word.group(0)):
        raise _Unbatchable(f"not a duration inside brackets at offset {i}")
    out.append(_Token("duration", word.group(0), i))
    return word.end(), True


def _lex_number(q: str, i: int, out: list[_Token]) -> int:
    """A number or a duration starting with a digit at q[i]; the index after it."""
    num = _NUMBER.match(q, i)
    assert num is not None
    after = q[num.end() : num.end() + 1]
    if after and (after.isalnum() or after in "_."):
        # a duration (5m, 1h30m) or something Prometheus versions disagree on (0x1f, 1_000)
        word = _WORD.match(q, i)
        assert word is not None
        if not (after.isalpha() and _DURATION.fullmatch(word.group(0))):
            raise _Unbatchable(f"bad number or duration at offset {i}")
        out.append(_Token("duration", word.group(0), i))
        return word.end()
    out.append(_Token("number", num.group(0), i))
    return num.end()


def _string_end(q: str, start: int) -> int:
    """Index after the string literal starting at q[start] (render has already validated it)."""
    quote = q[start]
    i = start + 1
    while i < len(q):
        ch = q[i]
        if ch == quote:
            return i + 1
        if quote != "`":
            if ch == "\n":
                break
            if ch == "\\":
                i += 2
                continue
        i += 1
    raise _Unbatchable(f"unterminated string at offset {start}")


# --------------------------------------------------------------------------- finding selectors


@dataclass(frozen=True)
class SelectorSpan:
    """One vector selector with braces in a rendered query: where it is, from its metric name (if it
    has one) through its closing brace (no range, offset or @), and its matchers as written."""

    start: int
    end: int
    matchers: tuple[tuple[str, str, str], ...]
    """(label, operator, literal with its quotes)"""


_NUMBER_LIKE = re.compile(r"[0-9.][0-9A-Za-z_.]*")


class _SelectorScan:
    """Reads any rendered query far enough to find its selectors: literals, comments, brackets,
    braces and names; functions, operators and modifiers in between are stepped over."""

    def __init__(self, q: str) -> None:
        self.q = q
        self.found: list[SelectorSpan] = []
        self.name_at: int | None = None
        """Where the name just before the current position begins, if it can name a metric."""

    def run(self) -> list[SelectorSpan]:
        i = 0
        while i < len(self.q):
            i = self.step(i)
        return self.found

    def step(self, i: int) -> int:
        q, ch = self.q, self.q[i]
        if ch in " \t\r\n":
            return i + 1
        if ch == "#":
            return _skip_comment(q, i, False)
        if ch == "{":
            return self.braces(i)
        self.name_at = None
        if ch in "\"'`":
            return _string_end(q, i)
        if ch == "[":
            end = q.find("]", i)
            if end < 0:
                raise _Unbatchable("unclosed bracket")
            return end + 1
        if ch.isascii() and (ch.isalpha() or ch in "_:"):
            m = _METRIC.match(q, i)
            assert m is not None
            if m.group(0).lower() not in _KEYWORDS:
                self.name_at = i
            return m.end()
        number = _NUMBER_LIKE.match(q, i)
        return number.end() if number else i + 1

    def braces(self, i: int) -> int:
        q = self.q
        start = i if self.name_at is None else self.name_at
        self.name_at = None
        tokens: list[_Token] = []
        j, inside = i + 1, True
        while inside:
            if j >= len(q):
                raise _Unbatchable("unclosed brace")
            if q[j] in " \t\r\n":
                j += 1
            elif q[j] == "#":
                j = _skip_comment(q, j, False)
            else:
                j, inside = _lex_in_braces(q, j, tokens)
        matchers = tuple((tokens[k - 1].text, tok.text, tokens[k + 1].text) for k, tok in enumerate(tokens)
                         if tok.kind == "op" and tok.text in ("=", "!=", "=~", "!~") and 0 < k < len(tokens) - 1
                         and tokens[k + 1].kind == "string")
        self.found.append(SelectorSpan(start, j, matchers))
        return j


def vector_selectors(query: str) -> list[SelectorSpan] | None:
    """Every vector selector with braces in a rendered query, in order; None when the query cannot
    be read that far (an unclosed brace, something no matcher list holds).

    Unlike `batch_shape` this reads any query, not an allow-listed part of PromQL: it finds the
    selectors whatever surrounds them, and says nothing about what the query computes."""
    try:
        return _SelectorScan(query).run()
    except _Unbatchable:
        return None


# --------------------------------------------------------------------------- syntax tree


@dataclass
class _Number:
    text: str


@dataclass
class _Paren:
    expr: _Node


@dataclass
class _Unary:
    op: str
    expr: _Node


@dataclass
class _Binary:
    op: str
    lhs: _Node
    rhs: _Node
    bool_modifier: bool


@dataclass
class _Call:
    func: str
    args: list[_Node]


@dataclass
class _Aggregation:
    op: str
    grouping: str | None  # "by", "without" or None
    labels: list[str]
    expr: _Node


@dataclass
class _Selector:
    name: str | None
    matchers: list[tuple[str, str, str]]  # (label, operator, literal as written), identity ones removed
    identity: frozenset[tuple[str, str]]  # (label, variable)
    offset: str | None = None


@dataclass
class _Range:
    selector: _Selector
    range: str
    offset: str | None = None


@dataclass
class _Subquery:
    expr: _Node
    range: str
    step: str | None
    offset: str | None = None


_Node = _Number | _Paren | _Unary | _Binary | _Call | _Aggregation | _Selector | _Range | _Subquery


@dataclass
class _Parser:
    """Recursive descent over the allow-listed subset, with Prometheus' precedences (a unary sign
    binds like `*`, `^` is right-associative); anything it does not know is refused, not skipped."""

    tokens: list[_Token]
    sentinels: Mapping[str, str]  # sentinel value -> identity variable
    nonce: str
    pos: int = 0
    identity_literals: int = 0
    selectors: list[_Selector] = field(default_factory=list)

    @property
    def tok(self) -> _Token:
        return self.tokens[min(self.pos, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        tok = self.tok
        self.pos += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text.lower() in words

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise _Unbatchable(f"expected {op!r} at offset {self.tok.pos}")
        self.advance()

    def parse(self) -> _Node:
        node = self.expr(1)
        if self.tok.kind != "eof":
            raise _Unbatchable(f"unexpected {self.tok.text!r} at offset {self.tok.pos}")
        return node

    def expr(self, min_prec: int) -> _Node:
        lhs = self.unary()
        while self.tok.kind == "op" and _PRECEDENCE.get(self.tok.text, 0) >= min_prec:
            op = self.advance().text
            bool_modifier = self.at_word("bool")
            if bool_modifier:
                if op not in _COMPARISONS:
                    raise _Unbatchable("bool on a non-comparison operator")
                self.advance()
            # on/ignoring/group_left/group_right are keywords, refused by primary()
            prec = _PRECEDENCE[op]
            rhs = self.expr(prec if op == "^" else prec + 1)
            lhs = _Binary(op, lhs, rhs, bool_modifier)
        return lhs

    def unary(self) -> _Node:
        if self.at_op("+", "-"):
            op = self.advance().text
            return _Unary(op, self.expr(_UNARY_OPERAND))
        return self.postfix(self.primary())

    def duration(self) -> str:
        if self.tok.kind != "duration":
            raise _Unbatchable(f"expected a duration at offset {self.tok.pos}")
        return self.advance().text

    def postfix(self, node: _Node) -> _Node:
        while True:
            if self.at_op("["):
                self.advance()
                rng = self.duration()
                if self.at_op(":"):
                    self.advance()
                    step = None if self.at_op("]") else self.duration()
                    self.expect_op("]")
                    if isinstance(node, _Range | _Subquery):
                        raise _Unbatchable("subquery of a range vector")
                    node = _Subquery(node, rng, step)
                else:
                    self.expect_op("]")
                    if not isinstance(node, _Selector) or node.offset is not None:
                        raise _Unbatchable("a range on something other than a plain vector selector")
                    node = _Range(node, rng)
            elif self.at_word("offset"):
                self.advance()
                if not isinstance(node, _Selector | _Range | _Subquery) or node.offset is not None:
                    raise _Unbatchable("offset on something other than a selector or subquery")
                node.offset = self.duration()
            else:
                return node

    def primary(self) -> _Node:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            return _Number(tok.text)
        if self.at_op("("):
            self.advance()
            inner = self.expr(1)
            self.expect_op(")")
            return _Paren(inner)
        if self.at_op("{"):
            return self.selector(None)
        if tok.kind != "ident":
            raise _Unbatchable(f"unexpected {tok.text!r} at offset {tok.pos}")
        word = tok.text.lower()
        if word in _AGGREGATIONS:
            return self.aggregation()
        if word in _KEYWORDS:
            raise _Unbatchable(f"{tok.text!r} is not supported here")
        self.advance()
        if self.at_op("("):
            return self.call(tok.text)
        return self.selector(tok.text)

    def call(self, name: str) -> _Node:
        if name not in _FUNCTIONS:
            raise _Unbatchable(f"function {name!r} is not on the allow-list")
        self.expect_op("(")
        args: list[_Node] = []
        if not self.at_op(")"):
            args.append(self.expr(1))
            while self.at_op(","):
                self.advance()
                args.append(self.expr(1))
        self.expect_op(")")
        return _Call(name, args)

    def grouping(self) -> tuple[str, list[str]]:
        kind = self.advance().text.lower()
        self.expect_op("(")
        labels: list[str] = []
        while not self.at_op(")"):
            if self.tok.kind != "ident" or not _LABEL.fullmatch(self.tok.text):
                raise _Unbatchable(f"expected a label name at offset {self.tok.pos}")
            labels.append(self.advance().text)
            if not self.at_op(")"):
                self.expect_op(",")
        self.advance()
        return kind, labels

    def aggregation(self) -> _Node:
        op = self.advance().text.lower()
        grouping: tuple[str, list[str]] | None = None
        if self.at_word("by", "without"):
            grouping = self.grouping()
        self.expect_op("(")
        inner = self.expr(1)
        self.expect_op(")")
        if self.at_word("by", "without"):
            if grouping is not None:
                raise _Unbatchable("grouping given twice")
            grouping = self.grouping()
        kind, labels = grouping if grouping is not None else (None, [])
        return _Aggregation(op, kind, labels, inner)

    def selector(self, name: str | None) -> _Selector:
        matchers: list[tuple[str, str, str]] = []
        identity: set[tuple[str, str]] = set()
        if self.at_op("{"):
            self.advance()
            while not self.at_op("}"):
                if self.tok.kind != "ident":
                    raise _Unbatchable(f"expected a label name at offset {self.tok.pos}")
                label = self.advance().text
                if not self.at_op("=", "!=", "=~", "!~"):
                    raise _Unbatchable(f"expected a matcher operator at offset {self.tok.pos}")
                op = self.advance().text
                if self.tok.kind != "string":
                    raise _Unbatchable(f"expected a string at offset {self.tok.pos}")
                literal = self.advance().text
                variable = self.identity_variable(literal) if self.nonce in literal else None
                if variable is not None and op == "=":
                    self.identity_literals += 1
                    identity.add((label, variable))
                else:
                    if variable is not None or self.nonce in literal:
                        raise _Unbatchable(f"identity variable in a {op!r} matcher or inside a longer string")
                    matchers.append((label, op, literal))
                if not self.at_op("}"):
                    self.expect_op(",")
            self.advance()
        sel = _Selector(name, matchers, frozenset(identity))
        self.selectors.append(sel)
        return sel

    def identity_variable(self, literal: str) -> str | None:
        try:
            value = unquote(literal)
        except ValueError:
            return None
        return self.sentinels.get(value)


# --------------------------------------------------------------------------- checking


def _check(node: _Node, labels: frozenset[str]) -> tuple[str, frozenset[str]]:
    """(type, identity labels the per-rollout series carry) of a node; raises if unprovable.

    Type "s" is a constant scalar, "v" an instant vector, "m" a range vector. For vectors, the
    second item is which identity labels every per-rollout series of this node has (the others it
    has none of): selectors carry them all, `by` keeps only the grouped ones.
    """
    if isinstance(node, _Number):
        return "s", frozenset()
    if isinstance(node, _Paren):
        return _check(node.expr, labels)
    if isinstance(node, _Unary):
        kind, kept = _check(node.expr, labels)
        if kind == "m":
            raise _Unbatchable("unary operator on a range vector")
        return kind, kept
    if isinstance(node, _Selector):
        return "v", labels
    if isinstance(node, _Range):
        return "m", labels
    if isinstance(node, _Subquery):
        kind, kept = _check(node.expr, labels)
        if kind != "v":
            raise _Unbatchable("subquery of something other than an instant vector")
        return "m", kept
    if isinstance(node, _Call):
        return _check_call(node, labels)
    if isinstance(node, _Aggregation):
        return _check_aggregation(node, labels)
    assert isinstance(node, _Binary)
    return _check_binary(node, labels)


def _check_call(node: _Call, labels: frozenset[str]) -> tuple[str, frozenset[str]]:
    checked = [_check(arg, labels) for arg in node.args]
    kinds = tuple(kind for kind, _ in checked)
    if kinds not in _FUNCTIONS[node.func]:
        raise _Unbatchable(f"{node.func} called with arguments of types {kinds}")
    if not checked:
        return "s", frozenset()  # time()
    return "v", next(kept for kind, kept in checked if kind in "vm")


def _check_aggregation(node: _Aggregation, labels: frozenset[str]) -> tuple[str, frozenset[str]]:
    kind, kept = _check(node.expr, labels)
    if kind != "v":
        raise _Unbatchable(f"{node.op} of something other than an instant vector")
    if node.grouping == "without":
        if labels & set(node.labels):
            raise _Unbatchable(f"{node.op} without an identity label")
        return "v", kept
    return "v", kept & frozenset(node.labels)


def _check_binary(node: _Binary, labels: frozenset[str]) -> tuple[str, frozenset[str]]:
    lhs, lkept = _check(node.lhs, labels)
    rhs, rkept = _check(node.rhs, labels)
    if "m" in (lhs, rhs):
        raise _Unbatchable("binary operator on a range vector")
    if lhs == rhs == "s":
        if node.op in _COMPARISONS and not node.bool_modifier:
            raise _Unbatchable("comparison of two scalars without bool")
        return "s", frozenset()
    if lhs == rhs == "v" and lkept != rkept:
        # Per rollout, series match on all their labels: if only one side still carries (some of)
        # the identity labels the sides never match, but after batching both carry them and would.
        raise _Unbatchable("the two sides of a vector operator carry different identity labels")
    return "v", lkept if lhs == "v" else rkept


# --------------------------------------------------------------------------- printing


def _emit(node: _Node, labels: Sequence[str]) -> str:
    """The batched query: identity matchers dropped, identity labels added to every `by`."""
    if isinstance(node, _Number):
        return node.text
    if isinstance(node, _Paren):
        return f"({_emit(node.expr, labels)})"
    if isinstance(node, _Unary):
        return node.op + _operand(node.expr, labels)
    if isinstance(node, _Binary):
        op = f"{node.op} bool" if node.bool_modifier else node.op
        return f"{_operand(node.lhs, labels)} {op} {_operand(node.rhs, labels)}"
    if isinstance(node, _Call):
        return f"{node.func}({', '.join(_emit(arg, labels) for arg in node.args)})"
    if isinstance(node, _Aggregation):
        if node.grouping == "without":
            grouping = f"without ({', '.join(node.labels)})"
        else:
            grouped = list(dict.fromkeys(node.labels))
            grouped += [label for label in labels if label not in grouped]
            grouping = f"by ({', '.join(grouped)})"
        return f"{node.op} {grouping} ({_emit(node.expr, labels)})"
    if isinstance(node, _Selector):
        text = node.name or ""
        if node.matchers or not node.name:
            text += "{" + ",".join(f"{label}{op}{literal}" for label, op, literal in node.matchers) + "}"
        return text + _offset(node.offset)
    if isinstance(node, _Range):
        return f"{_emit(node.selector, labels)}[{node.range}]{_offset(node.offset)}"
    inner = node.expr if isinstance(node.expr, _Paren) else _Paren(node.expr)
    return f"{_emit(inner, labels)}[{node.range}:{node.step or ''}]{_offset(node.offset)}"


def _operand(node: _Node, labels: Sequence[str]) -> str:
    """Operators are re-parenthesised explicitly so printing can never change precedence."""
    text = _emit(node, labels)
    return f"({text})" if isinstance(node, _Binary | _Unary) else text


def _offset(offset: str | None) -> str:
    return f" offset {offset}" if offset else ""


def _has_nonempty_matcher(sel: _Selector) -> bool:
    """Prometheus refuses a selector whose every matcher matches the empty string; without its
    identity matchers a selector must still be valid. Regexes are not evaluated: refused."""
    if sel.name:
        return True
    for _, op, literal in sel.matchers:
        try:
            value = unquote(literal)
        except ValueError:
            continue
        if (op == "=" and value != "") or (op == "!=" and value == ""):
            return True
    return False


# --------------------------------------------------------------------------- public API


def batch_shape(template: str, variables: Mapping[str, str]) -> Shape | None:
    """None when the template is not provably batchable; then the caller queries per rollout.

    `variables` are the caller's own, bound as for `promql.render` (identity values included: a
    template this caller could not render is not batched either).
    """
    try:
        render(template, variables)
    except TemplateError:
        return None
    nonce = secrets.token_hex(8)
    sentinels = {f"\x00{nonce}.{name}\x00": name for name in IDENTITY_VARIABLES if name in variables}
    try:
        # Identity values are replaced by unguessable placeholders, so every place they end up in
        # is visible in the rendered text; anything but a whole `label="..."` value is refused.
        rendered = render(template, {**variables, **{v: k for k, v in sentinels.items()}})
        parser = _Parser(_lex(rendered), sentinels, nonce)
        tree = parser.parse()
        if parser.identity_literals != rendered.count(nonce):
            raise _Unbatchable("identity variable outside an equality matcher")
        identities = {sel.identity for sel in parser.selectors}
        if len(identities) != 1:
            raise _Unbatchable("selectors with different identity matchers (or none)")
        (identity,) = identities
        labels = sorted({label for label, _ in identity})
        if not labels or len(labels) != len(identity):
            raise _Unbatchable("no identity matcher, or one label bound to two variables")
        if _RESERVED_LABELS & set(labels):
            raise _Unbatchable("identity label that functions drop")
        if not all(_has_nonempty_matcher(sel) for sel in parser.selectors):
            raise _Unbatchable("a selector would match everything without its identity matchers")
        kind, _ = _check(tree, frozenset(labels))
        if kind != "v":
            raise _Unbatchable("the query is not an instant vector")
        query = _emit(tree, labels)
    except (_Unbatchable, TemplateError, RecursionError):
        return None
    bound = dict(identity)
    return Shape(query, tuple(labels), tuple(bound[label] for label in labels))


def group_series(data: Any, labels: Sequence[str], kind: str) -> dict[tuple[str, ...], list[Any]] | None:
    """The series of a batched query's answer `data`, by identity tuple (each identity's series in
    the order Prometheus gave them). None unless `data` is a `kind` ("vector" or "matrix") result,
    a list of series with string labels. A missing label counts as "" (Prometheus does not
    distinguish the two either).

    Runs over every series of a fleet-wide answer (20,000 at 10,000 rollouts) several times a
    window: plain dicts skip the slower ABC checks, the usual one- and two-label keys are built
    without a loop, and no per-identity wrapper is made until a rollout asks for its part.
    """
    if not isinstance(data, Mapping) or data.get("resultType") != kind:
        return None
    result = data.get("result")
    if not isinstance(result, list):
        return None
    out: dict[tuple[str, ...], list[Any]] = {}
    get = out.get
    n = len(labels)
    first, second = (labels[0] if n else ""), (labels[1] if n > 1 else "")
    for series in result:
        if type(series) is not dict and not isinstance(series, Mapping):
            return None
        metric = series.get("metric", {})
        if type(metric) is not dict and not isinstance(metric, Mapping):
            return None
        if n == 2:
            key: tuple[str, ...] = (metric.get(first, ""), metric.get(second, ""))
        elif n == 1:
            key = (metric.get(first, ""),)
        else:
            key = tuple([metric.get(label, "") for label in labels])
        for value in key:
            if type(value) is not str:
                return None
        part = get(key)
        if part is None:
            out[key] = [series]
        else:
            part.append(series)
    return out


def split_vector(data: Mapping[str, Any], labels: Sequence[str]) -> dict[tuple[str, ...], dict[str, Any]] | None:
    """Prometheus instant-query `data` of the batched query → per identity tuple a `data` dict
    {"resultType": "vector", "result": [its series]} that `gates.from_prometheus` accepts.

    None if not a (well-formed) vector. An identity with no series has no entry: treat it as
    {"resultType": "vector", "result": []}, which is what its own query would have returned.
    (The operator itself uses `group_series` and wraps only the parts it is asked for.)
    """
    return _split(data, labels, "vector")


def split_matrix(data: Mapping[str, Any], labels: Sequence[str]) -> dict[tuple[str, ...], dict[str, Any]] | None:
    """`split_vector` for a range query's `data`: per identity tuple {"resultType": "matrix",
    "result": [its series]}. None if not a (well-formed) matrix; the samples are not looked at.

    A range query of the batched query evaluates it at every step, so each identity's series are
    those its own query would have returned at the same steps, as with split_vector.
    """
    return _split(data, labels, "matrix")


def _split(data: Mapping[str, Any], labels: Sequence[str], kind: str) -> dict[tuple[str, ...], dict[str, Any]] | None:
    groups = group_series(data, labels, kind)
    if groups is None:
        return None
    return {key: {"resultType": kind, "result": part} for key, part in groups.items()}


__all__ = ["IDENTITY_VARIABLES", "SelectorSpan", "Shape", "batch_shape", "group_series", "split_matrix", "split_vector",
           "vector_selectors"]
