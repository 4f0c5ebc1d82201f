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
from collections.abc import Mapping
from dataclasses import dataclass

KNOWN_VARIABLES = ("namespace", "rollout", "stable", "canary", "version", "window")

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
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc == quote:
            out.append(quote)
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"bad \\{esc} escape")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567" and esc:
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise ValueError("bad octal escape")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{esc}")
    return "".join(out)


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


class _Renderer:
    def __init__(self, query: str, variables: Mapping[str, str]) -> None:
        self.q = query
        self.vars = variables

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

    def _value(self, name: str) -> str:
        if name not in self.vars:
            if name == "version":
                raise TemplateError(
                    "variable $version is used but not bound: it takes the canary's version (and the stable's "
                    "for baselines), so set canary=... (and stable=...)"
                )
            if name in KNOWN_VARIABLES:
                raise TemplateError(f"variable ${name} is used but not bound (set {name}=...)")
            raise TemplateError(f"unknown variable ${name} (known: {', '.join(KNOWN_VARIABLES)})")
        value = self.vars[name]
        if not isinstance(value, str):
            raise TemplateError(f"variable ${name} must be a string, got {type(value).__name__}")
        if value == "":
            # version="" would match every series WITHOUT a version label: never what a gate means.
            raise TemplateError(f"variable ${name} is empty")
        if name == "window" and not _DURATION.fullmatch(value):
            raise TemplateError(f"variable $window must be a duration such as 10m, got {value!r}")
        return value

    def _bare(self, name: str, value: str) -> str:
        """A value outside any literal: only durations and plain identifiers are safe there."""
        if _DURATION.fullmatch(value):
            return value
        if _IDENTIFIER.fullmatch(value) and value.lower() not in _KEYWORDS:
            return value
        raise TemplateError(
            f"variable ${name} is used outside a string literal and its value {value!r} is not a "
            "duration or a plain identifier; quote it in the query (e.g. label=\"${" + name + "}\")"
        )

    def _literal(self, start: int, context: str) -> tuple[str, int]:
        """Render the literal starting at q[start]; return its text and the index after it."""
        q = self.q
        quote = q[start]
        i = start + 1
        parts: list[str] = []  # for quoted literals: already-escaped text
        raw_text: list[tuple[bool, str]] = []  # for raw literals: (is_value, unescaped text)
        has_vars = False
        while True:
            if i >= len(q) or (quote != "`" and q[i] == "\n"):
                raise TemplateError(f"unterminated string literal starting at offset {start}")
            ch = q[i]
            if ch == quote:
                i += 1
                break
            if ch == "\\" and quote != "`":
                parts.append(q[i : i + 2])
                i += 2
                continue
            if ch == "$":
                ref = self._reference(i)
                if ref is not None:
                    name, after = ref
                    if context == "replacement" and name not in self.vars and name not in KNOWN_VARIABLES:
                        ref = None  # a named-group reference of label_replace, not ours
                if ref is not None:
                    name, after = ref
                    value = self._value(name)
                    if context == "regex":
                        value = escape_regex(value)
                    elif context == "replacement":
                        value = value.replace("$", "$$")
                    has_vars = True
                    if quote == "`":
                        raw_text.append((True, value))
                    else:
                        try:
                            parts.append(escape_string(value, quote))
                        except TemplateError as e:
                            raise TemplateError(f"variable ${name}: {e}") from None
                    i = after
                    continue
            if quote == "`":
                raw_text.append((False, ch))
            else:
                parts.append(ch)
            i += 1
        if quote != "`":
            return quote + "".join(parts) + quote, i
        if not has_vars:
            return q[start:i], i
        # A raw literal cannot hold an escaped value: emit the same string double-quoted.
        return '"' + "".join(escape_string(text, '"') for _, text in raw_text) + '"', i

    def render(self) -> str:
        q = self.q
        out: list[str] = []
        stack: list[_Frame] = []
        significant = ""  # the last few non-space characters outside literals and comments
        last_ident: str | None = None  # identifier immediately before the current position
        i = 0
        while i < len(q):
            ch = q[i]
            if ch in "\"'`":
                text, i = self._literal(i, _string_context(stack, significant))
                out.append(text)
                significant, last_ident = (significant + ch)[-4:], None
                continue
            if ch == "#":
                end = q.find("\n", i)
                end = len(q) if end < 0 else end
                out.append(q[i:end])
                i = end
                continue
            if ch == "$":
                ref = self._reference(i)
                if ref is None:
                    raise TemplateError(f"stray '$' at offset {i}")
                name, after = ref
                out.append(self._bare(name, self._value(name)))
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
        return "".join(out)


def render(query: str, variables: Mapping[str, str]) -> str:
    """Substitute `$name` / `${name}` in `query`, escaping each value for where it appears.

    Raises TemplateError (naming the variable) for unknown or unbound variables, empty values,
    a `$window` that is not a duration, or a value outside a literal that is not a duration or a
    plain identifier. The rendered query means what its author wrote, whatever the values are.
    """
    return _Renderer(query, variables).render()

