"""Turning single access-log field values into COPY-ready text.

Apache writes string fields through ap_escape_logitem(): `"` and `\\` get a
backslash, \\b \\n \\r \\t \\v are written as such, and every other control or
non-ASCII byte becomes \\xhh. unescape() undoes that; copy_text() then escapes
the result for PostgreSQL's COPY text format. Times are normalised to
"YYYY-MM-DD HH:MM:SS[.ffffff]+hh:mm", which PostgreSQL reads as timestamptz.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Optional

NULL = "\\N"  # COPY text-format NULL

BIGINT_MAX = 2**63 - 1

_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {'"': b'"', "\\": b"\\", "b": b"\b", "n": b"\n", "r": b"\r", "t": b"\t",
                   "v": b"\v"}


# A backslash followed by what no escape of Apache's starts with.
_OTHER_ESCAPE = re.compile(r'\\[^x"\\bnrtv]')


def unescape(value: str) -> str:
    """Undo Apache's log escaping; keep the text as logged if the bytes are not clean UTF-8."""
    if "\\" not in value:
        return value
    try:
        text = _unescaped_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return value
    return value if "\0" in text else text


def _unescaped_bytes(value: str) -> bytes:
    if _OTHER_ESCAPE.search(value) is None:
        # Only escapes that mean the same to Python as to Apache: decoded in C, where
        # the loop of _unescape_each costs ~1.7 us per escape (3.4 ms for 8 KB of \xhh).
        try:
            return value.encode("utf-8").decode("unicode_escape").encode("latin-1")
        except UnicodeDecodeError:  # a \x without two hex digits, a backslash at the end
            pass
    return _unescape_each(value)


def _unescape_each(value: str) -> bytes:
    """The bytes of value with each escape undone; any other backslash kept as is."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(value):
        out += value[pos:m.start()].encode("utf-8")
        hexpair, char = m.groups()
        if hexpair is not None:
            out.append(int(hexpair, 16))
        else:
            out += _SIMPLE_ESCAPES.get(char) or m.group(0).encode("utf-8")
        pos = m.end()
    out += value[pos:].encode("utf-8")
    return bytes(out)


def copy_text(value: str) -> str:
    """Escape a value for COPY text format (backslash, TAB, LF, CR)."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    return value


def copy_field(value: str) -> str:
    """An escaped log field as COPY-ready text: unescape, then COPY-escape."""
    return copy_text(unescape(value))


# -- request line ------------------------------------------------------------------

_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)

RequestParts = tuple[Optional[str], Optional[str], Optional[str], Optional[str], Optional[str]]


def split_request(raw: str) -> RequestParts:
    """Split a logged request line into (method, path, query, protocol, request).

    All plain text (not COPY-escaped), None for NULL. `request` is set only when
    the line is not "METHOD URI [PROTOCOL]"; "-" (e.g. a 408) gives all None.
    """
    if raw == "-":
        return None, None, None, None, None
    line = unescape(raw)
    sp = line.find(" ")
    method = line[:sp]
    rest = line[sp + 1:]
    if sp <= 0 or not rest or not _METHOD.fullmatch(method):
        return None, None, None, None, line or None
    protocol = None
    last = rest.rfind(" ")
    if last >= 0 and rest.startswith("HTTP/", last + 1):
        protocol = rest[last + 1:]
        rest = rest[:last]
        if not rest:
            return None, None, None, None, line
    path, question, query = rest.partition("?")
    return method, path, query if question else None, protocol, None


# -- numbers -----------------------------------------------------------------------

def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def status_value(value: str) -> str:
    """A status as COPY text; raises ValueError unless "-" or 100..999."""
    if value == "-":
        return NULL
    if _digits(value) and len(value) <= 6 and 100 <= int(value) <= 999:
        return value
    raise ValueError(f"status out of range: {value}")


def bigint_value(value: str, what: str, dash: str = NULL, scale: int = 1,
                 negative: bool = False) -> str:
    """A bigint as COPY text ("-" -> dash); raises ValueError if it does not fit."""
    if value == "-":
        return dash
    try:
        if "." in value:
            number = round(float(value) * scale)
        else:
            number = int(value) * scale
    except (ValueError, OverflowError):
        raise ValueError(f"{what} is not a number: {value}") from None
    if number > BIGINT_MAX or number < (-BIGINT_MAX if negative else 0):
        raise ValueError(f"{what} out of range: {value}")
    return value if scale == 1 and _digits(value) else str(number)


def extra_number(value: str) -> object:
    """A numeric directive's value for extra: an int when it is one, else the text."""
    if _digits(value) and len(value) < 19:
        return int(value)
    return unescape(value)


# -- times -------------------------------------------------------------------------

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CLF_TIME = re.compile(r"\[(\d\d)/([A-Z][a-z][a-z])/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\]")


def clf_time(value: str) -> str | None:
    """'[10/Oct/2000:13:55:36 -0700]' -> '2000-10-10 13:55:36-07:00'; None if invalid."""
    m = _CLF_TIME.fullmatch(value)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = MONTHS.get(mon)
    if (month is None or year == "0000" or not 1 <= int(day) <= _DAYS[month - 1]
            or hh > "23" or mm > "59" or ss > "60" or oh > "15" or om > "59"):
        return None
    if month == 2 and day == "29":
        y = int(year)
        if y % 4 or (y % 100 == 0 and y % 400):
            return None
    return f"{year}-{month:02d}-{day} {hh}:{mm}:{ss}{sign}{oh}:{om}"


def format_datetime(dt: datetime) -> str:
    """An aware datetime in the normalised form."""
    off = dt.utcoffset()
    if off is None:
        raise ValueError("naive datetime")
    secs = int(off.total_seconds())
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    offset = f"{sign}{secs // 3600:02d}:{secs % 3600 // 60:02d}"
    if secs % 60:
        offset += f":{secs % 60:02d}"
    frac = f".{dt.microsecond:06d}" if dt.microsecond else ""
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} "
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{frac}{offset}")


def epoch_time(value: str, digits: int) -> str | None:
    """Seconds (digits=0), milliseconds (3) or microseconds (6) since the epoch, as UTC."""
    if not _digits(value) or len(value) > 18:
        return None
    number = int(value)
    secs, frac = divmod(number, 10**digits) if digits else (number, 0)
    try:
        dt = datetime.fromtimestamp(secs, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    text = format_datetime(dt)
    if digits:
        text = f"{text[:19]}.{frac:0{digits}d}{text[19:]}"
    return text


# strftime codes Apache may use -> (regex for the value, code for datetime.strptime)
_STRFTIME = {
    "a": (r"[A-Za-z]+", "%a"), "A": (r"[A-Za-z]+", "%A"), "b": (r"[A-Za-z]+", "%b"),
    "h": (r"[A-Za-z]+", "%b"), "B": (r"[A-Za-z]+", "%B"), "d": (r"\d\d", "%d"),
    "e": (r"[ \d]\d", "%d"), "H": (r"\d\d", "%H"), "I": (r"\d\d", "%I"), "j": (r"\d{3}", "%j"),
    "m": (r"\d\d", "%m"), "M": (r"\d\d", "%M"), "p": (r"[AaPp][Mm]", "%p"), "S": (r"\d\d", "%S"),
    "y": (r"\d\d", "%y"), "Y": (r"\d{4}", "%Y"), "z": (r"[+-]\d{4}|Z", "%z"),
    "Z": (r"[A-Za-z]+", "%Z"), "T": (r"\d\d:\d\d:\d\d", "%H:%M:%S"), "R": (r"\d\d:\d\d", "%H:%M"),
    "D": (r"\d\d/\d\d/\d\d", "%m/%d/%y"), "F": (r"\d{4}-\d\d-\d\d", "%Y-%m-%d"),
    "u": (r"\d", "%u"), "w": (r"\d", "%w"), "%": ("%", "%%"),
}


def strftime_pattern(fmt: str) -> tuple[str, str]:
    """(regex, strptime format) for an Apache %{format}t; raises ValueError on unknown codes."""
    regex = []
    pyfmt = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            code = fmt[i + 1:i + 2]
            if code not in _STRFTIME:
                raise ValueError(f"unsupported strftime code %{code}")
            regex.append(_STRFTIME[code][0] if code != "%" else "%")
            pyfmt.append(_STRFTIME[code][1])
            i += 2
            continue
        regex.append(re.escape(c))
        pyfmt.append(c)
        i += 1
    return "(?:" + "".join(regex) + ")", "".join(pyfmt)


def strftime_time(value: str, pyfmt: str) -> str | None:
    """Parse a %{format}t value; without %z it is taken as this host's local time."""
    try:
        dt = datetime.strptime(value, pyfmt)
        if dt.tzinfo is None:
            dt = dt.astimezone()
        return format_datetime(dt)
    except (ValueError, OverflowError, OSError):
        return None
