"""Reading an Apache LogFormat string: directives, where each one goes, and its regex.

tokenize() follows mod_log_config's parser: literal text with \\t \\n (and the
\\" \\\\ of httpd.conf quoting), and directives `%[conditions][<>]{arg}X` whose
modifiers may come in any order. plan() decides, for the whole format, which
column or extra key every directive fills (e.g. %s is the status only when
there is no %>s), and which regex matches its value.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Union

from logpipe.parse import values


class FormatError(ValueError):
    """A LogFormat string that cannot be used; the message names the offending directive."""


@dataclass(frozen=True)
class Directive:
    letter: str                 # "h", "t", "i", "^ti", "^FB" ...
    arg: str | None             # the text inside {...}, if any
    final: bool | None          # True for "%>x", False for "%<x", None for neither
    text: str                   # as written, e.g. "%>s" or "%400,501{User-agent}i"
    position: int               # index of its "%" in the LogFormat string


Item = Union[str, Directive]

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


# -- where each directive goes ------------------------------------------------------

# targets
TIME, FRAC, ZONE, COL, AGENT, REQUEST, FILL, STATUS, INT, EXTRA = (
    "time", "frac", "zone", "col", "agent", "request", "fill", "status", "int", "extra")
# value shapes (how the regex matches a value)
TOKEN, STRING, NUMBER, DECIMAL, CLF_TIME, FIXED = (
    "token", "string", "number", "decimal", "clf_time", "fixed")

_SIMPLE_EXTRA = {  # letter -> (extra key, shape, numeric)
    "A": ("local_addr", TOKEN, False), "l": ("remote_logname", TOKEN, False),
    "k": ("keepalive", NUMBER, True), "X": ("conn_status", TOKEN, False),
    "L": ("log_id", TOKEN, False), "R": ("handler", TOKEN, False),
    "f": ("filename", STRING, False), "S": ("bytes_combined", NUMBER, True),
    "^FB": ("request_time_first_byte", NUMBER, True),
}
_PREFIXED_EXTRA = {"i": "in:", "o": "out:", "e": "env:", "C": "cookie:", "n": "note:",
                   "x": "x:", "c": "c:", "^ti": "trailer_in:", "^to": "trailer_out:"}
_T_UNITS = {"": 1_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}
_TIME_EPOCH = {"sec": 0, "msec": 3, "usec": 6}
_TIME_FRAC = {"msec_frac": 3, "usec_frac": 6}


@dataclass
class Field:
    """One directive of the format with what it fills and how its value is matched."""

    directive: Directive
    target: str
    shape: str
    column: str | None = None          # COL / INT / FILL target column
    key: str | None = None             # EXTRA key
    numeric: bool = False              # EXTRA: store digits as a JSON number
    dash: str = values.NULL         # INT: what "-" means
    scale: int = 1                     # INT: multiply by this (durations)
    time_kind: str = "clf"             # TIME/FRAC: clf, epoch, strftime
    when: str = "begin"                # TIME/FRAC: begin or end of the request
    digits: int = 0                    # TIME epoch/FRAC digits
    pyfmt: str = ""                    # TIME strftime: format for strptime
    pattern: str = ""                  # FIXED shape / strftime: value regex
    fast: str = ""                     # regexes, set by plan()
    lenient: str = ""
    escaped: bool = False              # fast value may contain backslash escapes
    quick: str = ""                    # the quick regex's pattern (see line_regexes)
    quoted: bool = False               # between literal quotes: [^"]* in the quick regex


@dataclass
class Plan:
    items: list[str | Field]            # literal text and fields, in format order
    fields: list[Field]                 # the fields alone
    combine_frac: bool                  # a %{msec_frac}t / %{usec_frac}t completes the time


def _time_field(d: Directive) -> Field:
    arg = d.arg or ""
    when = "begin"
    for p in ("begin", "end"):
        if arg.startswith(p) and (len(arg) == len(p) or arg[len(p)] == ":"):
            when, arg = p, arg[len(p) + 1:]
    if not arg:
        return Field(d, TIME, CLF_TIME, when=when)
    if arg in _TIME_EPOCH:
        return Field(d, TIME, NUMBER, time_kind="epoch", digits=_TIME_EPOCH[arg], when=when)
    if arg in _TIME_FRAC:
        digits = _TIME_FRAC[arg]
        return Field(d, FRAC, FIXED, digits=digits, pattern=rf"\d{{{digits}}}(?!\d)", when=when)
    try:
        pattern, pyfmt = values.strftime_pattern(arg)
    except ValueError as exc:
        raise FormatError(f"{exc} in LogFormat directive {d.text} at position {d.position}"
                          ) from None
    return Field(d, TIME, FIXED, time_kind="strftime", pyfmt=pyfmt, pattern=pattern, when=when)


def _field(d: Directive) -> Field:
    x = d.letter
    arg = d.arg or ""
    if x == "t":
        return _time_field(d)
    if x in ("h", "a"):
        return Field(d, COL, TOKEN, column="remote_host")
    if x in ("v", "V"):
        return Field(d, COL, TOKEN, column="vhost")
    if x == "u":
        return Field(d, COL, TOKEN, column="remote_user")
    if x == "r":
        return Field(d, REQUEST, STRING)
    if x in ("m", "H"):
        return Field(d, FILL, TOKEN, column="method" if x == "m" else "protocol")
    if x in ("U", "q"):
        return Field(d, FILL, STRING, column="path" if x == "U" else "query")
    if x == "s":
        return Field(d, STATUS, NUMBER, column="status")
    if x in ("b", "B"):
        return Field(d, INT, NUMBER, column="bytes", dash="0")
    if x in ("I", "O"):
        return Field(d, INT, NUMBER, column="bytes_in" if x == "I" else "bytes_out")
    if x == "D":
        return Field(d, INT, NUMBER, column="duration_us")
    if x == "T":
        unit = arg.lower()
        if unit not in _T_UNITS:
            raise FormatError(f"unknown unit in LogFormat directive {d.text} at position "
                              f"{d.position} (use s, ms or us)")
        return Field(d, INT, DECIMAL, column="duration_us", scale=_T_UNITS[unit])
    if x == "i" and arg.lower() == "referer":
        return Field(d, COL, STRING, column="referer")
    if x == "i" and arg.lower() == "user-agent":
        return Field(d, AGENT, STRING, column="user_agent")
    if x == "p":
        return Field(d, EXTRA, NUMBER, key="port_" + arg.lower() if arg else "port",
                     numeric=True)
    if x == "P":
        key = arg.lower() if arg else "pid"
        if key == "hextid":
            return Field(d, EXTRA, TOKEN, key=key)
        return Field(d, EXTRA, NUMBER, key=key, numeric=True)
    if x in _PREFIXED_EXTRA:
        return Field(d, EXTRA, STRING, key=_PREFIXED_EXTRA[x] + arg)
    key, shape, numeric = _SIMPLE_EXTRA[x]
    return Field(d, EXTRA, shape, key=key, numeric=numeric)


_DISPLACED_KEYS = {  # directive letter -> extra key when its column is already taken
    "h": "remote_host", "a": "remote_addr", "V": "server_name", "v": "vhost",
    "u": "remote_user", "s": "original_status", "b": "bytes_clf", "B": "response_bytes",
    "I": "bytes_in", "O": "bytes_out", "D": "duration_us", "i": "in:", "t": "time",
    "r": "request_line",
}


def plan(items: list[Item]) -> Plan:
    """Assign every directive of a tokenized format to a column or an extra key."""
    fields = [_field(d) for d in items if isinstance(d, Directive)]
    _choose(fields, "remote_host",
            lambda f: (f.directive.letter != "h", f.directive.arg is not None))
    _choose(fields, "vhost", lambda f: f.directive.letter != "v")
    _choose(fields, "status", lambda f: not f.directive.final)
    _choose(fields, "duration_us", lambda f: f.directive.letter != "D")
    for column in ("remote_user", "bytes", "bytes_in", "bytes_out", "referer", "user_agent"):
        _choose(fields, column, lambda f: 0)
    times = [f for f in fields if f.target == TIME]
    if not times:
        raise FormatError("LogFormat has no time directive (%t): every row needs a time")
    main = times[0]
    for f in times[1:]:
        if (main.time_kind == "strftime" and "%z" not in main.pyfmt and f.pyfmt == "%z"
                and f.when == main.when):
            f.target = ZONE  # "%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t": the zone comes apart
            main.pyfmt += " %z"
        else:
            _to_extra(f, "time:" + (f.directive.arg or ""))
    for f in [f for f in fields if f.target == REQUEST][1:]:
        _to_extra(f, "request_line")
    filled: set[str | None] = set()
    for f in fields:
        if f.target == FILL:
            if f.column in filled:
                _to_extra(f, "fill:" + f.directive.letter)
            filled.add(f.column)
    combine_frac = False
    whole_seconds = main.time_kind != "epoch" or main.digits == 0
    for f in fields:
        if f.target == FRAC:
            if whole_seconds and not combine_frac and f.when == main.when:
                combine_frac = True
            else:
                _to_extra(f, "time:" + (f.directive.arg or ""))
    _unique_keys(fields)
    it = iter(fields)
    result = Plan([x if isinstance(x, str) else next(it) for x in items], fields, combine_frac)
    _patterns(result.items)
    return result


def _choose(fields: list[Field], column: str, rank) -> None:
    """Keep the best-ranked field for a column; the others go to extra."""
    candidates = [f for f in fields if f.column == column and f.target != FILL]
    if len(candidates) < 2:
        return
    best = min(candidates, key=lambda f: (rank(f), fields.index(f)))
    for f in candidates:
        if f is not best:
            letter = f.directive.letter
            key = _DISPLACED_KEYS.get(letter, letter)
            if letter == "a" and f.directive.arg:
                key = "peer_addr"
            elif letter == "h" and f.directive.arg:
                key = "peer_host"
            elif letter == "i":
                key += f.directive.arg or ""
            elif letter == "T":
                key = "time_taken_" + (f.directive.arg or "s").lower()
            elif letter == "s" and f.directive.final:
                key = "final_status"
            _to_extra(f, key)


def _to_extra(f: Field, key: str) -> None:
    f.target = EXTRA
    f.key = key
    f.numeric = f.shape in (NUMBER, DECIMAL)
    f.column = None


def _unique_keys(fields: list[Field]) -> None:
    seen: dict[str, int] = {}
    for f in fields:
        if f.target == EXTRA and f.key is not None:
            seen[f.key] = seen.get(f.key, 0) + 1
            if seen[f.key] > 1:
                f.key = f"{f.key}_{seen[f.key]}"


# -- regexes ------------------------------------------------------------------------

# (no re.DOTALL: "." never matches a LF, so no match runs into the next line)
_Q_FAST = r'[^"\\\t\r\n]*(?:\\.[^"\\\t\r\n]*)*'  # inside quotes, Apache-escaped
_Q_LENIENT = r'[^"\\\n]*(?:\\.[^"\\\n]*)*'
_TO_END_FAST = r"[^\\\t\r\n]*(?:\\.[^\\\t\r\n]*)*"  # last in the format, unquoted
# [^"]* is several times faster in re than a class of several characters; the lookbehind
# goes on past an escaped quote, \", at the cost of a value ending in \\ (see line_regexes).
# The atomic group (Python 3.11+) keeps re from trying other ends of a value: no backtracking.
_Q_QUICK = r'(?>[^"]*(?:(?<=\\)"[^"]*)*)' if sys.version_info >= (3, 11) else ""
_NO_SPACE = r"\\ \t\n\r\f\v"  # for a class: no backslash, no whitespace (faster than \s)
_TO_END_LENIENT = r"[^\n]*?"
# %t with the time of day and offset in range (the date is checked once per day, on use)
_CLF_FAST = (r"\[\d\d/[A-Z][a-z][a-z]/\d{4}:(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60) "
             r"[+-](?:0\d|1[0-5])[0-5]\d\]")
_CLF_LENIENT = r"\[[^\]\n]*\]"
_NUM_LENIENT = r"-?\d+|-"
_FAST_NUMBER = {"status": r"[1-9]\d\d(?!\d)|-"}


def _patterns(items: list[str | Field]) -> None:
    """Set each field's fast and lenient regex from its shape and its neighbours.

    Every pattern stops at the first character of the literal text after it, so
    matching never backtracks more than a few steps (no blow-up on junk lines).
    """
    for i, f in enumerate(items):
        if isinstance(f, str):
            continue
        before = items[i - 1] if i > 0 else ""
        after = items[i + 1] if i + 1 < len(items) else None
        quoted = isinstance(before, str) and before.endswith('"') and \
            isinstance(after, str) and after.startswith('"')
        first = after[0] if isinstance(after, str) else ""
        stop = re.escape(first)
        letter = f.directive.letter
        if f.shape == CLF_TIME:
            f.fast, f.lenient = _CLF_FAST, _CLF_LENIENT
        elif f.shape == FIXED:
            f.fast = f.lenient = f.pattern
        elif f.shape == NUMBER:
            fast = _FAST_NUMBER.get(f.column or "", r"\d{1,18}(?!\d)|-")
            f.fast, f.lenient = r"\d{1,18}(?!\d)" if f.target == TIME else fast, _NUM_LENIENT
        elif f.shape == DECIMAL:
            f.fast, f.lenient = r"\d{1,12}(?![\d.])|-", r"-?\d+(?:\.\d+)?|-"
        elif quoted:
            f.fast, f.lenient, f.escaped, f.quoted = _Q_FAST, _Q_LENIENT, True, True
            f.quick = _Q_QUICK
        elif after is None and f.shape == STRING:
            f.fast, f.lenient, f.escaped = _TO_END_FAST, _TO_END_LENIENT, True
            f.quick = r"[^\n]*"
        elif letter == "q":
            f.fast, f.lenient = rf"(?:\?[^{_NO_SPACE}{stop}]*)?", rf"(?:\?[^\n{stop}]*)?"
        elif letter == "r" and first in ("", " "):
            f.fast = rf"[^{_NO_SPACE}]+(?: [^{_NO_SPACE}]+){{0,2}}"
            f.lenient = r"[^ \n]+(?: [^ \n]+){0,2}"
        elif letter == "U" and isinstance(after, Field) and after.directive.letter == "q":
            f.fast, f.lenient = rf"[^{_NO_SPACE}?]*", r"[^ ?\n]*"
        else:  # a value without spaces, up to the next literal text
            f.fast, f.lenient = rf"[^{_NO_SPACE}{stop}]*", rf"[^ \n{stop}]*"
        f.quick = f.quick or f.fast


def line_regexes(p: Plan) -> tuple[str, str | None, str]:
    """(fast, quick, lenient) regexes for a whole line.

    fast and quick are run with findall over many lines at once: each match is one
    line, either the format (groups: one per field, then the trailing text incl.
    any CR) or, when that fails, the raw line plus its LF as the last group.
    Every fast pattern excludes LF, TAB and CR, and backslashes except as escape
    pairs, so a value without a backslash needs no escaping at all.

    quick (None when it would equal fast) matches a quoted value with [^"]*,
    several times faster in re than a class of several characters. It is only
    right on text without TAB and CR, when it gives as many matches as lines (a
    value may run over a LF), and for quoted values that are well escaped (a value
    ending in \\ may run on past its closing quote): the loop checks those that
    hold a backslash, and gives the line to the reference path if one is not.

    lenient is for fullmatch on a single line without its LF.
    """
    fast, quick, lenient = [], [], []
    for x in p.items:
        if isinstance(x, str):
            fast.append(re.escape(x))
            quick.append(re.escape(x))
            lenient.append(re.escape(x))
        else:
            fast.append(f"({x.fast})")
            quick.append(f"({x.quick})")
            lenient.append(f"({x.lenient})")
    last = p.items[-1]
    # a format ending in an unquoted string: that value runs to the end of the line
    trailing = r"(\r?)" if isinstance(last, Field) and last.lenient == _TO_END_LENIENT \
        else r"([^\n]*)"
    fast_re = "(?:" + "".join(fast) + trailing + r"\n|([^\n]*\n))"
    quick_re = "(?:" + "".join(quick) + trailing + r"\n|([^\n]*\n))"
    return fast_re, None if quick_re == fast_re else quick_re, "".join(lenient) + trailing
