"""A report's rows as an aligned table, CSV or JSON (pure), with logged text made safe
for a terminal: the values come from requests, so an attacker chooses them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import unicodedata
from decimal import Decimal
from typing import Any

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else f"\\x{ord(char):02x}"


def safe_text(text: str) -> str:
    """Text an attacker may have logged, made harmless for a terminal.

    C0 and C1 control characters (ESC, CR, BEL, CSI...) become \\x1b-style escapes,
    a backslash becomes \\\\ so the escapes stay unambiguous, and invisible format
    characters (bidi overrides, zero-width, line separators) become \\u202e-style.
    """
    text = _UNSAFE.sub(_escape_char, text)
    if text.isascii():
        return text
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cf", "Zl", "Zp", "Co", "Cs", "Cn")
        else c
        for c in text
    )


def _width(text: str) -> int:
    if text.isascii():
        return len(text)
    total = 0
    for c in text:
        if unicodedata.combining(c):
            continue
        total += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return total


def _truncate(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = _width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def format_table(columns: list[str], rows: list[tuple], width: int) -> str:
    """Aligned columns that fit `width`: the widest text columns shrink, cut cells end in '…'.

    If even that does not fit (many numeric columns, a very narrow terminal), the lines
    are left longer than `width` rather than cutting numbers.
    """
    if not rows:
        return "(no rows)\n"
    # a vhost column with nothing in it (logs without %v) only takes room
    keep = [i for i, c in enumerate(columns) if c != "vhost" or any(r[i] for r in rows)]
    columns = [columns[i] for i in keep]
    rows = [tuple(r[i] for i in keep) for r in rows]
    cells = [[safe_text(_table_cell(v)) for v in r] for r in rows]
    kinds = [_kind([r[i] for r in rows]) for i in range(len(columns))]
    widths = [max([len(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)]
    gap = 2
    # numbers and times are never cut (a cut number misleads); text goes down to 5
    # characters ("abcd…"), header included
    floors = [min(w, 5) if k == "text" else w for w, k in zip(widths, kinds)]
    overflow = sum(widths) + gap * (len(widths) - 1) - width
    while overflow > 0:
        # one character at a time from the widest text column: long cells shrink evenly
        candidates = [i for i in range(len(widths)) if widths[i] > floors[i]]
        if not candidates:
            break  # nothing left to shrink: let the terminal wrap
        widest = max(candidates, key=lambda i: (widths[i], i))
        widths[widest] -= 1
        overflow -= 1

    def line(values: list[str]) -> str:
        out = []
        for i, v in enumerate(values):
            v = _truncate(v, widths[i])
            pad = " " * (widths[i] - _width(v))
            out.append(pad + v if kinds[i] == "number" else v + pad)
        return (" " * gap).join(out).rstrip()

    text = [line(list(columns)), line(["-" * w for w in widths])]
    text += [line(r) for r in cells]
    return "\n".join(text) + "\n"


def _kind(values: list[Any]) -> str:
    """'number' (right-aligned, never shrunk), 'time' (never shrunk) or 'text'."""
    present = [v for v in values if v is not None]
    if present and all(_is_number(v) for v in present):
        return "number"
    if present and all(isinstance(v, (dt.date, dt.datetime)) for v in present):
        return "time"
    return "text"


def _table_cell(value: Any) -> str:
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
        return re.sub(r"([+-]\d\d):00$", r"\1", text)  # +00:00 -> +00, as psql shows it
    return _cell(value)


def write_csv(columns: list[str], rows: list[tuple], out: Any, escape: bool = False) -> None:
    """CSV with a header row; `escape` (output to a terminal) applies safe_text."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        cells = [_cell(v) for v in r]
        writer.writerow([safe_text(c) for c in cells] if escape else cells)


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def format_json(columns: list[str], rows: list[tuple]) -> str:
    # ensure_ascii: control characters and everything non-ASCII as \u escapes, so the
    # output is safe on a terminal too
    objects = [{c: _json_value(v) for c, v in zip(columns, r)} for r in rows]
    return json.dumps(objects, indent=2) + "\n"
