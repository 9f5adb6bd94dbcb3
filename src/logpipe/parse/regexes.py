"""The regexes that match a format's lines: each field's value, then whole lines.

set_value_regexes() gives each field of a Plan its fast, quick and lenient
pattern, from its shape and the literal text around it; line_regexes() joins
them into the regexes LineParser runs over whole chunks and single lines.
"""

from __future__ import annotations

import re
import sys

from logpipe.parse.fields import Field, Plan, Shape, Target

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


def set_value_regexes(plan: Plan) -> None:
    """Set each field's fast and lenient regex from its shape and its neighbours.

    Every pattern stops at the first character of the literal text after it, so
    matching never backtracks more than a few steps (no blow-up on junk lines).
    """
    items = plan.items
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
        if f.shape == Shape.CLF_TIME:
            f.fast, f.lenient = _CLF_FAST, _CLF_LENIENT
        elif f.shape == Shape.FIXED:
            f.fast = f.lenient = f.pattern
        elif f.shape == Shape.NUMBER:
            fast = _FAST_NUMBER.get(f.column or "", r"\d{1,18}(?!\d)|-")
            f.fast = r"\d{1,18}(?!\d)" if f.target == Target.TIME else fast
            f.lenient = _NUM_LENIENT
        elif f.shape == Shape.DECIMAL:
            f.fast, f.lenient = r"\d{1,12}(?![\d.])|-", r"-?\d+(?:\.\d+)?|-"
        elif quoted:
            f.fast, f.lenient, f.escaped, f.quoted = _Q_FAST, _Q_LENIENT, True, True
            f.quick = _Q_QUICK
        elif after is None and f.shape == Shape.STRING:
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
    """(fast, quick, lenient) regexes for a whole line, once set_value_regexes(p) has run.

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
