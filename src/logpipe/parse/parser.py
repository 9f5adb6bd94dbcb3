"""Compile an Apache LogFormat into a parser that turns raw log bytes into COPY rows.

    parser = compile_format("combined", source="web1")
    batch = parser.parse(data)      # whole lines; never raises
    batch.copy_data                 # COPY text rows, columns = ACCESS_LOG_COLUMNS
    batch.rejects                   # [(raw line, reason)] for lines that cannot load

parse() decodes the chunk once and runs one regex over all of it (fastloop);
lines that are too long (limits), hold NUL bytes or invalid UTF-8 are set aside first,
and a line the fast path cannot take goes through the reference path (rows).
Every line ends up as exactly one row or one reject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

from logpipe.parse import fastloop, fields, limits, regexes
from logpipe.parse.directives import NAMED_FORMATS, FormatError, tokenize
from logpipe.parse.fields import Field
from logpipe.parse.proxies import RealClient
from logpipe.parse.rows import Reject, RowBuilder

__all__ = ["NAMED_FORMATS", "Batch", "FormatError", "LineParser", "compile_format"]

@dataclass
class Batch:
    """The result of parsing a run of lines: every line is a row or a reject."""

    copy_data: str                  # COPY text rows, each ending "\n"
    row_count: int
    rejects: list[tuple[bytes, str]] = field(default_factory=list)  # (raw line, reason)


def compile_format(spec: str, source: str | None = None,
                   classify_agent: Callable[[str], bool] | None = None,
                   max_line_bytes: int | None = None,
                   trusted_proxies: Sequence[str] = (),
                   anonymize_ip: bool = False) -> LineParser:
    """A parser for a NAMED_FORMATS name or a LogFormat string; FormatError if unusable.

    Longer lines than max_line_bytes are rejects; by default, room for any line Apache
    writes in this format within its default request limits (limits.py).
    trusted_proxies: networks (CIDR text) whose X-Forwarded-For is believed (proxies.py);
    ValueError if one is not a network. anonymize_ip: store client addresses cut to /24
    or /48, after their country is looked up (geo.py)."""
    return LineParser(NAMED_FORMATS.get(spec, spec), source, classify_agent, max_line_bytes,
                      trusted_proxies, anonymize_ip)


class LineParser:
    """Parses runs of log lines in one LogFormat into COPY rows and rejects."""

    def __init__(self, format_string: str, source: str | None = None,
                 classify_agent: Callable[[str], bool] | None = None,
                 max_line_bytes: int | None = None,
                 trusted_proxies: Sequence[str] = (),
                 anonymize_ip: bool = False) -> None:
        if not isinstance(format_string, str):
            raise FormatError(f"LogFormat must be a string, not {type(format_string).__name__}")
        if max_line_bytes is not None and max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.format_string = format_string
        plan = fields.plan(tokenize(format_string))
        self.max_line_bytes = max_line_bytes or limits.default_max_line_bytes(plan)
        regexes.set_value_regexes(plan)  # before RowBuilder and the loop: they read Field.quoted
        fast, quick, lenient = regexes.line_regexes(plan)
        try:
            self._fast = re.compile(fast, re.ASCII).findall
            self._quick = None if quick is None else re.compile(quick, re.ASCII).findall
            self._lenient = re.compile(lenient, re.ASCII)
            self._builder = RowBuilder(plan, source, classify_agent,
                                       RealClient(trusted_proxies) if trusted_proxies else None,
                                       anonymize_ip)
            self._run, self.fast_source = fastloop.compile_run(plan, self._builder)
        except (re.error, SyntaxError) as exc:  # pragma: no cover - a bug, not the user's
            raise FormatError(f"cannot compile LogFormat {format_string!r}: {exc}") from exc
        self._items = plan.items
        self._prefixes: list[re.Pattern[str]] = []

    def parse(self, data: bytes) -> Batch:
        """Parse whole lines (the last may lack its LF). Never raises."""
        rows: list[str] = []
        rejects: list[tuple[bytes, str]] = []
        try:
            self._parse(bytes(data), rows, rejects)
        except Exception:  # noqa: BLE001 - a bug here must cost at most the lines it hits
            rows, rejects = [], []
            self._parse_line_by_line(bytes(data), rows, rejects)
        return Batch("".join(rows), len(rows), rejects)

    # -- chunk handling -------------------------------------------------------------------

    def _parse(self, data: bytes, rows: list[str], rejects: list[tuple[bytes, str]]) -> None:
        if not data:
            return
        limit = self.max_line_bytes
        if b"\0" in data or (len(data) > limit and _has_long_line(data, limit)):
            self._parse_lines(data, rows, rejects)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self._parse_lines(data, rows, rejects)
            return
        self._parse_text(text, rows, rejects)

    def _parse_lines(self, data: bytes, rows: list[str],
                     rejects: list[tuple[bytes, str]]) -> None:
        """Set aside lines that cannot be text; parse the runs of good lines between them."""
        good: list[str] = []
        for raw in _split_lines(data):
            text, reason = _decode_line(raw, self.max_line_bytes)
            if text is not None:
                good.append(text)
                continue
            if good:
                self._parse_text("\n".join(good) + "\n", rows, rejects)
                good = []
            rejects.append((raw, reason))
        if good:
            self._parse_text("\n".join(good) + "\n", rows, rejects)

    def _parse_text(self, text: str, rows: list[str], rejects: list[tuple[bytes, str]]) -> None:
        if not text.endswith("\n"):
            text += "\n"

        def slow(line: str) -> None:
            row, reason = self._parse_one(line)
            if row is None:
                rejects.append((line.encode("utf-8"), reason))
            else:
                rows.append(row)

        matches = None
        if self._quick is not None and "\t" not in text and "\r" not in text:
            matches = self._quick(text)
            if len(matches) != text.count("\n"):  # a value ran over a LF: not for quick
                matches = None
        if matches is None:
            matches = self._fast(text)
        self._run(matches, rows, slow)

    def _parse_line_by_line(self, data: bytes, rows: list[str],
                            rejects: list[tuple[bytes, str]]) -> None:
        """The careful fallback: each line on its own, any failure a reject."""
        for raw in _split_lines(data):
            try:
                text, reason = _decode_line(raw, self.max_line_bytes)
                if text is not None:
                    row, reason = self._parse_one(text)
                    if row is not None:
                        rows.append(row)
                        continue
            except Exception as exc:  # noqa: BLE001 - never raise, whatever the bytes
                reason = f"internal error: {exc!r}"
            rejects.append((raw, reason))

    # -- one line, the reference path ---------------------------------------------------

    def _parse_one(self, line: str) -> tuple[str | None, str]:
        """(row, "") or (None, reason) for one decoded line without its LF."""
        if line in ("", "\r"):
            return None, "empty line"
        m = self._lenient.fullmatch(line)
        if m is None:
            return None, self._mismatch(line)
        try:
            return self._builder.build(m.groups()), ""
        except Reject as exc:
            return None, str(exc)

    def _mismatch(self, line: str) -> str:
        """Say where a line stops matching the format."""
        if not self._prefixes:
            pattern = ""
            for item in self._items:
                pattern += re.escape(item) if isinstance(item, str) else f"(?:{item.lenient})"
                self._prefixes.append(re.compile(pattern, re.ASCII))
        after = "at the start"
        for item, prefix in zip(self._items, self._prefixes):
            if prefix.match(line) is None:
                if isinstance(item, Field):
                    return f"line does not match the LogFormat: no {item.directive.text} {after}"
                return f"line does not match the LogFormat: no {item!r} {after}"
            after = f"after {item.directive.text}" if isinstance(item, Field) else \
                f"after {item!r}"
        # Not reached while the lenient regex ends in a group that takes the rest of the
        # line; kept so that this never raises, whatever changes there.
        return "line does not match the LogFormat"


def _split_lines(data: bytes) -> list[bytes]:
    """The lines of data without their LF (the last line may lack one)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def _has_long_line(data: bytes, limit: int) -> bool:
    """True if some line (without its LF) is longer than limit bytes."""
    pos = 0
    end = len(data)
    while end - pos > limit:
        nl = data.rfind(b"\n", pos, pos + limit + 1)
        if nl < 0:
            return True
        pos = nl + 1
    return False


def _decode_line(raw: bytes, limit: int) -> tuple[str | None, str]:
    """(text, "") for a line that can be parsed as text, else (None, why not)."""
    if len(raw) > limit:
        return None, f"line longer than {limit} bytes (--max-line-bytes)"
    if b"\0" in raw:
        return None, "NUL byte in line"
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start}"
