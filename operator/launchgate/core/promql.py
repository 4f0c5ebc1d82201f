"""Safe templating of PromQL: `$canary` in a gate must never be able to rewrite the gate.

Gate queries are written by one party (the platform team) and filled with values that come from
elsewhere (rollout names, version labels, a CI pipeline's `--var`). Plain string replacement would
let a value such as ``x"} or vector(1) #`` turn a blocker that should fail into one that always
passes. So `render` reads the query the way the PromQL lexer does and substitutes by context:

* inside a string literal ("...", '...' or `...`) the value is escaped as a PromQL (Go) string
  literal, so it can only ever be a label value;
* inside the regex of a `=~` / `!~` matcher (or label_replace's regex argument) regex
  metacharacters are escaped too, so `.*` matches the two characters ".*", not everything;
* inside label_replace's replacement argument `$` is doubled, so a value cannot reference groups;
* outside a literal (e.g. ``[$window]``) the value must look like a duration or a plain
  identifier, or rendering fails: there is no escaping that makes arbitrary text safe there.

A raw (backtick) literal cannot escape anything, so one that contains a variable is re-emitted as
an equivalent double-quoted literal. Comments are copied verbatim and never substituted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

# `policy` is the hash of the rollout's policy bundle (what an Approval is bound to), so a gate can
# check that the canary's pods run the policy that was approved.
KNOWN_VARIABLES = ("namespace", "rollout", "stable", "canary", "version", "window", "policy")

# PromQL's own duration syntax (range selectors accept d, w and y too).
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words that change an expression's structure if they appear where an identifier is expected.
_KEYWORDS = frozenset(
    "and or unless atan2 by without on ignoring group_left group_right offset bool start end inf nan".split()
)
# Go's regexp.QuoteMeta set: escaping exactly these makes RE2 match the text literally.
_REGEX_META = frozenset("\\.+*?()|[]{}^$")


class TemplateError(ValueError):
    """A query cannot be rendered safely; the message names the variable (or the position)."""


class UnboundVariable(TemplateError):
    """A known variable that the query uses has no value; `name` says which, so a caller that knows
    where the values come from can say exactly what to set."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def escape_string(value: str, quote: str = '"') -> str:
    """Escape `value` for the inside of a PromQL string literal delimited by `quote` (" or ').

    PromQL unquotes with Go's rules, where escaping the *other* quote is a syntax error, so only
    the delimiter and the backslash are escaped; control and other non-printable characters become
    \\x/\\u escapes because a raw newline ends the literal (and others are invisible in logs).
    """
    if quote not in ('"', "'"):
        raise ValueError("quote must be ' or \"")
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + quote)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0xD800 <= code <= 0xDFFF:
            raise TemplateError(f"value contains a lone surrogate U+{code:04X}, which is not valid UTF-8")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def escape_regex(value: str) -> str:
    """Go's regexp.QuoteMeta: the RE2 pattern that matches exactly `value`."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote(literal: str) -> str:
    """Decode a PromQL string literal (with its quotes), as Prometheus' strutil.Unquote does.

    Used by tests to prove that a rendered label value reads back as exactly the input value.
    """
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in "\"'`":
        raise ValueError(f"not a string literal: {literal!r}")
    quote, body = literal[0], literal[1:-1]
    if quote == "`":
        if "`" in body:
            raise ValueError("backtick inside a raw string")
        return body
    if "\n" in body:
        raise ValueError("newline inside a quoted string")
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            raise ValueError("unescaped quote inside the literal")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        decoded, i = _unescape(body, i, quote)
        out.append(decoded)
    return "".join(out)


def _unescape(body: str, i: int, quote: str) -> tuple[str, int]:
    """The character the escape at body[i] (a backslash) stands for, and the index after the escape."""
    esc = body[i + 1] if i + 1 < len(body) else ""
    if esc in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[esc], i + 2
    if esc == quote:
        return quote, i + 2
    if esc in ("x", "u", "U"):
        width = {"x": 2, "u": 4, "U": 8}[esc]
        digits = body[i + 2 : i + 2 + width]
        if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"bad \\{esc} escape")
        return chr(int(digits, 16)), i + 2 + width
    if esc in "01234567" and esc:
        digits = body[i + 1 : i + 4]
        if len(digits) != 3 or not all(c in "01234567" for c in digits):
            raise ValueError("bad octal escape")
        return chr(int(digits, 8)), i + 4
    raise ValueError(f"unknown escape \\{esc}")


@dataclass
class _Frame:
    """One open bracket; for calls, the function name and which argument we are in."""

    func: str | None
    arg: int = 0


def _string_context(stack: list[_Frame], significant: str) -> str:
    """What a string literal starting here means: 'regex', 'replacement' or plain 'string'."""
    if significant.endswith(("=~", "!~")):
        return "regex"
    if stack and stack[-1].func == "label_replace":
        if stack[-1].arg == 4:
            return "regex"
        if stack[-1].arg == 2:
            return "replacement"
    return "string"


# A compiled template: text, and slots that turn the variables into their escaped text (or raise).
_Part = str | Callable[[Mapping[str, str]], str]


def _checked(name: str, variables: Mapping[str, str]) -> str:
    """The value of `name`, or TemplateError saying why it cannot be used at all."""
    if name not in variables:
        if name == "version":
            raise UnboundVariable(
                name,
                "variable $version is used but not bound: it takes the canary's version (and the stable's "
                "for baselines), so set canary=... (and stable=...)",
            )
        if name in KNOWN_VARIABLES:
            raise UnboundVariable(name, f"variable ${name} is used but not bound (set {name}=...)")
        raise TemplateError(f"unknown variable ${name} (known: {', '.join(KNOWN_VARIABLES)})")
    value = variables[name]
    if not isinstance(value, str):
        raise TemplateError(f"variable ${name} must be a string, got {type(value).__name__}")
    if value == "":
        # version="" would match every series WITHOUT a version label: never what a gate means.
        raise TemplateError(f"variable ${name} is empty")
    if name == "window" and not _DURATION.fullmatch(value):
        raise TemplateError(f"variable $window must be a duration such as 10m, got {value!r}")
    return value


def _bare(name: str, value: str) -> str:
    """A value outside any literal: only durations and plain identifiers are safe there."""
    if _DURATION.fullmatch(value):
        return value
    if _IDENTIFIER.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    raise TemplateError(
        f"variable ${name} is used outside a string literal and its value {value!r} is not a "
        "duration or a plain identifier; quote it in the query (e.g. label=\"${" + name + "}\")"
    )


def _in_context(value: str, context: str) -> str:
    if context == "regex":
        return escape_regex(value)
    if context == "replacement":
        return value.replace("$", "$$")
    return value


def _bare_slot(name: str) -> _Part:
    return lambda variables: _bare(name, _checked(name, variables))


def _quoted_slot(name: str, quote: str, context: str) -> _Part:
    def slot(variables: Mapping[str, str]) -> str:
        value = _in_context(_checked(name, variables), context)
        try:
            return escape_string(value, quote)
        except TemplateError as e:
            raise TemplateError(f"variable ${name}: {e}") from None

    return slot


def _raw_slot(pieces: list[tuple[bool, str]], context: str) -> _Part:
    """A raw (backtick) literal that holds variables, emitted double-quoted: every value is looked
    up before any text is escaped, as one literal."""
    def slot(variables: Mapping[str, str]) -> str:
        texts = [(_in_context(_checked(text, variables), context) if is_value else text)
                 for is_value, text in pieces]
        return '"' + "".join(escape_string(text, '"') for text in texts) + '"'

    return slot


def _failing(error: TemplateError) -> _Part:
    """A template error found while reading the query, raised where the query has it, so a value
    error earlier in the query is still the one reported."""
    def slot(variables: Mapping[str, str]) -> str:
        raise TemplateError(str(error))

    return slot


def _check_first(pieces: list[tuple[bool, str]], out: list[_Part]) -> None:
    """Before an error in a raw literal: its values met so far are still looked up first."""
    names = [text for is_value, text in pieces if is_value]
    if names:
        out.append(lambda variables: "".join(_checked(n, variables) for n in names) and "")


class _Compiler:
    """Reads a query once, the way the PromQL lexer does, into text and slots. Where a value goes
    depends only on the query and on which variables are bound (label_replace's replacement), never
    on the values, so one compiled template serves every rollout."""

    def __init__(self, query: str, names: frozenset[str]) -> None:
        self.q = query
        self.names = names

    def _reference(self, i: int) -> tuple[str, int] | None:
        """The variable referenced at q[i] == '$' and the index after it, or None if not one."""
        q = self.q
        if q.startswith("${", i):
            m = _NAME.match(q, i + 2)
            if not m:
                return None  # e.g. Go's ${1} group reference in a label_replace replacement
            if not q.startswith("}", m.end()):
                raise TemplateError(f"unterminated ${{{m.group(0)} at offset {i}")
            return m.group(0), m.end() + 1
        m = _NAME.match(q, i + 1)
        if not m:
            return None  # a regex anchor such as "foo$", or $1 in a replacement
        return m.group(0), m.end()

    def _literal_reference(self, i: int, context: str, pieces: list[tuple[bool, str]],
                           out: list[_Part]) -> tuple[str, int] | None:
        """The variable referenced at q[i] == '$' inside a literal, or None if it is not ours."""
        try:
            ref = self._reference(i)
        except TemplateError:
            _check_first(pieces, out)
            raise
        if ref is not None and context == "replacement" and ref[0] not in self.names \
                and ref[0] not in KNOWN_VARIABLES:
            return None  # a named-group reference of label_replace, not ours
        return ref

    def _literal(self, start: int, context: str, out: list[_Part]) -> int:
        """Compile the literal starting at q[start] into `out`; return the index after it."""
        q = self.q
        quote = q[start]
        i = start + 1
        text: list[str] = [] if quote == "`" else [quote]  # quoted literals: text since the last slot
        pieces: list[tuple[bool, str]] = []  # raw literals: (is_value, name or text)
        has_vars = False
        while True:
            if i >= len(q) or (quote != "`" and q[i] == "\n"):
                _check_first(pieces, out)
                raise TemplateError(f"unterminated string literal starting at offset {start}")
            ch = q[i]
            if ch == quote:
                i += 1
                break
            if ch == "\\" and quote != "`":
                text.append(q[i : i + 2])
                i += 2
                continue
            if ch == "$":
                ref = self._literal_reference(i, context, pieces, out)
                if ref is not None:
                    name, after = ref
                    has_vars = True
                    if quote == "`":
                        pieces.append((True, name))
                    else:
                        if text:
                            out.append("".join(text))
                            text = []
                        out.append(_quoted_slot(name, quote, context))
                    i = after
                    continue
            if quote == "`":
                pieces.append((False, ch))
            else:
                text.append(ch)
            i += 1
        if quote != "`":
            out.append("".join(text) + quote)
        elif not has_vars:
            out.append(q[start:i])
        else:
            out.append(_raw_slot(pieces, context))
        return i

    def compile(self) -> tuple[_Part, ...]:
        out: list[_Part] = []
        try:
            self._walk(out)
        except TemplateError as e:
            out.append(_failing(e))
        # Adjacent text joined: fewer parts to go through at every render.
        joined: list[_Part] = []
        for part in out:
            if isinstance(part, str) and joined and isinstance(joined[-1], str):
                joined[-1] += part
            elif part != "":
                joined.append(part)
        return tuple(joined)

    def _bare_reference(self, i: int) -> tuple[str, int]:
        """The variable referenced at q[i] == '$' outside literals, where a '$' is nothing else."""
        ref = self._reference(i)
        if ref is None:
            raise TemplateError(f"stray '$' at offset {i}")
        return ref

    def _walk(self, out: list[_Part]) -> None:
        q = self.q
        stack: list[_Frame] = []
        significant = ""  # the last few non-space characters outside literals and comments
        last_ident: str | None = None  # identifier immediately before the current position
        i = 0
        while i < len(q):
            ch = q[i]
            if ch in "\"'`":
                i = self._literal(i, _string_context(stack, significant), out)
                significant, last_ident = (significant + ch)[-4:], None
                continue
            if ch == "#":
                end = q.find("\n", i)
                end = len(q) if end < 0 else end
                out.append(q[i:end])
                i = end
                continue
            if ch == "$":
                name, after = self._bare_reference(i)
                out.append(_bare_slot(name))
                significant, last_ident = (significant + "v")[-4:], None
                i = after
                continue
            m = _NAME.match(q, i) if (ch.isalpha() or ch == "_") else None
            if m:
                out.append(m.group(0))
                last_ident = m.group(0)
                significant = (significant + "a")[-4:]
                i = m.end()
                continue
            if ch == "(":
                stack.append(_Frame(last_ident))
            elif ch in "{[":
                stack.append(_Frame(None))
            elif ch in ")]}":
                if stack:
                    stack.pop()
            elif ch == "," and stack:
                stack[-1].arg += 1
            if not ch.isspace():
                significant = (significant + ch)[-4:]
                last_ident = None
            out.append(ch)
            i += 1
def render(query: str, variables: Mapping[str, str]) -> str:
    """Substitute `$name` / `${name}` in `query`, escaping each value for where it appears.

    Raises TemplateError (naming the variable) for unknown or unbound variables, empty values,
    a `$window` that is not a duration, or a value outside a literal that is not a duration or a
    plain identifier. The rendered query means what its author wrote, whatever the values are.
    """
    parts = _compiled(query, frozenset(variables))
    return "".join([part if type(part) is str else part(variables) for part in parts])  # type: ignore[operator]


@lru_cache(maxsize=1024)
def _compiled(query: str, names: frozenset[str]) -> tuple[_Part, ...]:
    """Reading the query character by character for every rollout at every pass would cost CPU in
    proportion to the fleet; queries are few, so each is read once."""
    return _Compiler(query, names).compile()

