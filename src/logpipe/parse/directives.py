"""Reading a LogFormat string: literal text and Directives, or FormatError.

tokenize() follows mod_log_config's parser: literal text with \\t \\n (and the
\\" \\\\ of httpd.conf quoting), and directives `%[conditions][<>]{arg}X` whose
modifiers may come in any order. What each directive fills is decided later
(fields.plan()).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# Apache's stock formats (httpd.conf; vhost_combined as Debian ships it).
NAMED_FORMATS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combinedio": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %I %O',
}


class FormatError(ValueError):
    """A LogFormat string that cannot be used; the message names the offending directive."""


@dataclass(frozen=True)
class Directive:
    """One %-directive of a LogFormat, as written."""

    letter: str                 # "h", "t", "i", "^ti", "^FB" ...
    arg: str | None             # the text inside {...}, if any
    final: bool | None          # True for "%>x", False for "%<x", None for neither
    text: str                   # as written, e.g. "%>s" or "%400,501{User-agent}i"
    position: int               # index of its "%" in the LogFormat string


Item = Union[str, Directive]  # Union, not "|": this alias is evaluated at run time (3.9)

_NEEDS_ARG = {"i", "o", "e", "C", "n", "x", "c", "^ti", "^to"}
_LETTERS = set("aAbBCDefhHiIklLmnopPqrRsStTuUvVXOx") | {"c", "^ti", "^to", "^FB"}


def tokenize(spec: str) -> list[Item]:
    """Split a LogFormat string into literal strings and Directives."""
    original = spec
    offset = 0
    if (len(spec) > 1 and spec[0] == '"' and spec[-1] == '"' and '\\"' in spec
            and not spec.endswith('\\"')):
        spec = spec[1:-1]  # pasted with httpd.conf's outer quotes
        offset = 1
    items: list[Item] = []
    literal: list[str] = []
    i, n = 0, len(spec)
    while i < n:
        c = spec[i]
        if c == "\\" and i + 1 < n and spec[i + 1] in '"\\tn':
            literal.append({"t": "\t", "n": "\n"}.get(spec[i + 1], spec[i + 1]))
            i += 2
        elif c != "%":
            literal.append(c)
            i += 1
        elif spec[i + 1:i + 2] == "%":
            literal.append("%")
            i += 2
        else:
            directive, i = _directive(spec, i, offset, original)
            if literal:
                items.append("".join(literal))
                literal = []
            items.append(directive)
    if literal:
        items.append("".join(literal))
    for item in items:
        if isinstance(item, str) and "\n" in item:
            raise FormatError(
                f"a newline in LogFormat {original!r} splits each entry over two lines")
    return items


def _directive(spec: str, start: int, offset: int, original: str) -> tuple[Directive, int]:
    """The directive whose "%" is at spec[start], and the index just after it."""
    i = start + 1
    arg: str | None = None
    final: bool | None = None
    where = f"at position {start + offset} in {original!r}"
    while i < len(spec):
        c = spec[i]
        if c == "{":
            end = spec.find("}", i)
            if end < 0:
                raise FormatError(f"unterminated %{{ {where}")
            arg = spec[i + 1:end]
            if "\n" in arg:
                raise FormatError(f"a newline in LogFormat directive argument {where}")
            i = end + 1
            continue
        if c in "<>":
            final = c == ">"
        elif not (c == "!" or c == "," or c.isdigit()):
            letter = spec[i:i + 3] if c == "^" else c
            text = spec[start:i + len(letter)]
            if letter not in _LETTERS:
                raise FormatError(f"unknown LogFormat directive {text} {where}")
            if letter in _NEEDS_ARG and not arg:
                raise FormatError(f"LogFormat directive {text} needs a {{name}} {where}")
            return Directive(letter, arg, final, text, start + offset), i + len(letter)
        i += 1
    raise FormatError(f"incomplete LogFormat directive {spec[start:]} {where}")
