"""Where each directive of a LogFormat goes: Field, Plan and plan().

plan() decides, for the whole format, which column or extra key every directive
fills (e.g. %s is the status only when there is no %>s, a second %t goes to
extra). Each Field's regexes are set afterwards by regexes.set_value_regexes().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from logpipe.parse import values
from logpipe.parse.directives import Directive, FormatError, Item


class Target:
    """Where a field's value goes (Field.target). One namespace, shared by plan(), the
    generated fast loop and the reference path (rows.RowBuilder)."""

    TIME = "time"          # the row's time: the first time directive
    FRAC = "frac"          # %{msec_frac}t / %{usec_frac}t completing the time (at most one)
    ZONE = "zone"          # %{%z}t completing a strftime time that has no %z (at most one)
    COL = "col"            # a text column as logged: remote_host, vhost, referer ...
    AGENT = "agent"        # user_agent, and is_bot
    REQUEST = "request"    # %r: method, path, query, protocol (or request, unsplit)
    FILL = "fill"          # %m %U %q %H: fill in what %r did not give
    STATUS = "status"
    INT = "int"            # a bigint column: bytes, bytes_in, duration_us ...
    EXTRA = "extra"        # a key of the extra JSON


class Shape:
    """How a field's value is matched (see regexes)."""

    TOKEN = "token"        # no spaces
    STRING = "string"      # may hold spaces and escapes
    NUMBER = "number"
    DECIMAL = "decimal"    # %T: a number that may have a fraction
    CLF_TIME = "clf_time"  # [10/Oct/2000:13:55:36 -0700]
    FIXED = "fixed"        # Field.pattern says it


_SIMPLE_EXTRA = {  # letter -> (extra key, shape, numeric)
    "A": ("local_addr", Shape.TOKEN, False), "l": ("remote_logname", Shape.TOKEN, False),
    "k": ("keepalive", Shape.NUMBER, True), "X": ("conn_status", Shape.TOKEN, False),
    "L": ("log_id", Shape.TOKEN, False), "R": ("handler", Shape.TOKEN, False),
    "f": ("filename", Shape.STRING, False), "S": ("bytes_combined", Shape.NUMBER, True),
    "^FB": ("request_time_first_byte", Shape.NUMBER, True),
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
    target: str                        # a Target
    shape: str                         # a Shape
    column: str | None = None          # COL / INT / FILL target column
    key: str | None = None             # EXTRA key
    numeric: bool = False              # EXTRA: store digits as a JSON number
    dash: str = values.NULL            # INT: what "-" means
    scale: int = 1                     # INT: multiply by this (durations)
    time_kind: str = "clf"             # TIME/FRAC: clf, epoch, strftime
    when: str = "begin"                # TIME/FRAC: begin or end of the request
    digits: int = 0                    # TIME epoch/FRAC digits
    pyfmt: str = ""                    # TIME strftime: format for strptime
    pattern: str = ""                  # FIXED shape / strftime: value regex
    # set by regexes.set_value_regexes():
    fast: str = ""
    lenient: str = ""
    escaped: bool = False              # fast value may contain backslash escapes
    quick: str = ""                    # the quick regex's pattern (see line_regexes)
    quoted: bool = False               # between literal quotes: [^"]* in the quick regex


@dataclass
class Plan:
    """A whole format: its literal text and fields in order. After plan() there is one
    TIME field, and a FRAC field only if it completes that time."""

    items: list[str | Field]            # literal text and fields, in format order
    fields: list[Field]                 # the fields alone


def _time_field(d: Directive) -> Field:
    arg = d.arg or ""
    when = "begin"
    for p in ("begin", "end"):
        if arg.startswith(p) and (len(arg) == len(p) or arg[len(p)] == ":"):
            when, arg = p, arg[len(p) + 1:]
    if not arg:
        return Field(d, Target.TIME, Shape.CLF_TIME, when=when)
    if arg in _TIME_EPOCH:
        return Field(d, Target.TIME, Shape.NUMBER, time_kind="epoch", digits=_TIME_EPOCH[arg],
                     when=when)
    if arg in _TIME_FRAC:
        digits = _TIME_FRAC[arg]
        return Field(d, Target.FRAC, Shape.FIXED, digits=digits,
                     pattern=rf"\d{{{digits}}}(?!\d)", when=when)
    try:
        pattern, pyfmt = values.strftime_pattern(arg)
    except ValueError as exc:
        raise FormatError(f"{exc} in LogFormat directive {d.text} at position {d.position}"
                          ) from None
    return Field(d, Target.TIME, Shape.FIXED, time_kind="strftime", pyfmt=pyfmt,
                 pattern=pattern, when=when)


def _field(d: Directive) -> Field:
    """What one directive fills, on its own (plan() settles clashes between them)."""
    x = d.letter
    arg = d.arg or ""
    if x == "t":
        return _time_field(d)
    if x in ("h", "a"):
        return Field(d, Target.COL, Shape.TOKEN, column="remote_host")
    if x in ("v", "V"):
        return Field(d, Target.COL, Shape.TOKEN, column="vhost")
    if x == "u":
        return Field(d, Target.COL, Shape.TOKEN, column="remote_user")
    if x == "r":
        return Field(d, Target.REQUEST, Shape.STRING)
    if x in ("m", "H"):
        return Field(d, Target.FILL, Shape.TOKEN, column="method" if x == "m" else "protocol")
    if x in ("U", "q"):
        return Field(d, Target.FILL, Shape.STRING, column="path" if x == "U" else "query")
    if x == "s":
        return Field(d, Target.STATUS, Shape.NUMBER, column="status")
    if x in ("b", "B"):
        return Field(d, Target.INT, Shape.NUMBER, column="bytes", dash="0")
    if x in ("I", "O"):
        return Field(d, Target.INT, Shape.NUMBER, column="bytes_in" if x == "I" else "bytes_out")
    if x == "D":
        return Field(d, Target.INT, Shape.NUMBER, column="duration_us")
    if x == "T":
        unit = arg.lower()
        if unit not in _T_UNITS:
            raise FormatError(f"unknown unit in LogFormat directive {d.text} at position "
                              f"{d.position} (use s, ms or us)")
        return Field(d, Target.INT, Shape.DECIMAL, column="duration_us", scale=_T_UNITS[unit])
    if x == "i" and arg.lower() == "referer":
        return Field(d, Target.COL, Shape.STRING, column="referer")
    if x == "i" and arg.lower() == "user-agent":
        return Field(d, Target.AGENT, Shape.STRING, column="user_agent")
    if x == "p":
        return Field(d, Target.EXTRA, Shape.NUMBER, key="port_" + arg.lower() if arg else "port",
                     numeric=True)
    if x == "P":
        key = arg.lower() if arg else "pid"
        if key == "hextid":
            return Field(d, Target.EXTRA, Shape.TOKEN, key=key)
        return Field(d, Target.EXTRA, Shape.NUMBER, key=key, numeric=True)
    if x in _PREFIXED_EXTRA:
        return Field(d, Target.EXTRA, Shape.STRING, key=_PREFIXED_EXTRA[x] + arg)
    key, shape, numeric = _SIMPLE_EXTRA[x]
    return Field(d, Target.EXTRA, shape, key=key, numeric=numeric)


# directive letter -> extra key when its column is already taken (see _choose; a second
# %t or %r has no column: plan() names its key)
_DISPLACED_KEYS = {
    "h": "remote_host", "a": "remote_addr", "V": "server_name", "v": "vhost",
    "u": "remote_user", "s": "original_status", "b": "bytes_clf", "B": "response_bytes",
    "I": "bytes_in", "O": "bytes_out", "D": "duration_us", "i": "in:",
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
    times = [f for f in fields if f.target == Target.TIME]
    if not times:
        raise FormatError("LogFormat has no time directive (%t): every row needs a time")
    main = times[0]
    for f in times[1:]:
        if (main.time_kind == "strftime" and "%z" not in main.pyfmt and f.pyfmt == "%z"
                and f.when == main.when):
            # "%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t": the zone comes apart
            f.target = Target.ZONE
            main.pyfmt += " %z"
        else:
            _to_extra(f, "time:" + (f.directive.arg or ""))
    for f in [f for f in fields if f.target == Target.REQUEST][1:]:
        _to_extra(f, "request_line")
    filled: set[str | None] = set()
    for f in fields:
        if f.target == Target.FILL:
            if f.column in filled:
                _to_extra(f, "fill:" + f.directive.letter)
            filled.add(f.column)
    combine_frac = False
    whole_seconds = main.time_kind != "epoch" or main.digits == 0
    for f in fields:
        if f.target == Target.FRAC:
            if whole_seconds and not combine_frac and f.when == main.when:
                combine_frac = True  # this one stays FRAC: it completes the time
            else:
                _to_extra(f, "time:" + (f.directive.arg or ""))
    _unique_keys(fields)
    it = iter(fields)
    return Plan([x if isinstance(x, str) else next(it) for x in items], fields)


def _choose(fields: list[Field], column: str, rank: Callable[[Field], object]) -> None:
    """Keep the best-ranked field for a column; the others go to extra."""
    candidates = [f for f in fields if f.column == column and f.target != Target.FILL]
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
    f.target = Target.EXTRA
    f.key = key
    f.numeric = f.shape in (Shape.NUMBER, Shape.DECIMAL)
    f.column = None


def _unique_keys(fields: list[Field]) -> None:
    """Number repeated extra keys: "in:X", "in:X_2" ..."""
    seen: dict[str, int] = {}
    for f in fields:
        if f.target == Target.EXTRA and f.key is not None:
            seen[f.key] = seen.get(f.key, 0) + 1
            if seen[f.key] > 1:
                f.key = f"{f.key}_{seen[f.key]}"
