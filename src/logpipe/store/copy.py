"""COPY parsed lines into PostgreSQL inside the caller's transaction.

Error classes decide what happens (psycopg2's own split):
- OperationalError / InterfaceError: the connection is gone. Raised to the
  caller, which keeps the lines in the spool and retries later.
- DataError / IntegrityError: this data is bad. The batch is sifted down to
  the lines PostgreSQL refuses (sifted out one by one), which become
  rejects; never retried.
- anything else (missing table, no privilege): a setup problem, raised as
  SetupError so the caller can say what to do without rejecting good lines.
"""

from __future__ import annotations

import io
import re
from typing import Protocol

import psycopg2
import psycopg2.extensions

from logpipe.messages import first_line
from logpipe.parse.columns import ACCESS_LOG_COLUMNS
from logpipe.parse.values import copy_text

COPY_ROWS_SQL = f"COPY access_log ({', '.join(ACCESS_LOG_COLUMNS)}) FROM STDIN"
COPY_REJECTS_SQL = "COPY access_log_rejects (source, reason, line) FROM STDIN"
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
DATA_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError)


class SetupError(Exception):
    """The database is reachable but not usable as is (e.g. run `logpipe initdb`)."""


class _Batch(Protocol):
    copy_data: str
    row_count: int
    rejects: list[tuple[bytes, str]]


class _Parser(Protocol):
    def parse(self, data: bytes) -> _Batch: ...


COPY_READ_SIZE = 256 * 1024


def copy_stream(text: str) -> io.BytesIO:
    """COPY input as bytes: BytesIO shares the encoded buffer, where StringIO would
    hold 4 bytes per character."""
    return io.BytesIO(text.encode("utf-8"))


def copy_rejects(
    cur: psycopg2.extensions.cursor, rejects: list[tuple[bytes, str]], source: str | None
) -> None:
    if not rejects:
        return
    src = "\\N" if source is None else copy_text(source)
    text = "".join(f"{src}\t{copy_text(reason)}\t\\\\x{raw.hex()}\n" for raw, reason in rejects)
    cur.copy_expert(COPY_REJECTS_SQL, copy_stream(text))


def load_lines(
    cur: psycopg2.extensions.cursor, parser: _Parser, data: bytes, source: str | None
) -> tuple[int, int]:
    """Parse and COPY whole lines; returns (rows, rejects). Every line is one or the other."""
    stream = ParsingStream(parser, data)
    try:
        if stream.has_rows():
            _copy_rows_guarded(cur, stream)
        rows, rejects = stream.rows, stream.rejects
    except DATA_ERRORS:
        rows, rejects = _sift(cur, parser, data)  # re-parses, so parser rejects are included
    copy_rejects(cur, rejects, source)
    return rows, len(rejects)


# Small enough that a piece fits in the socket buffer: sending returns at once and
# PostgreSQL loads it while the next is parsed (a bigger piece waits for the server).
PARSE_PIECE_BYTES = 64 * 1024


class ParsingStream:
    """COPY input parsed on demand, a piece of whole lines each time psycopg2 asks for
    more: the writer parses the next piece while PostgreSQL loads the one sent before,
    and only one piece's rows are in memory at a time."""

    def __init__(self, parser: _Parser, data: bytes) -> None:
        self.parser = parser
        self.data = data
        self.pos = 0
        self.rows = 0
        self.rejects: list[tuple[bytes, str]] = []
        self._pending = b""

    def has_rows(self) -> bool:
        """Parse up to the first row: False when every line is a reject (no COPY needed)."""
        if not self._pending:
            self._pending = self._next_piece()
        return bool(self._pending)

    def read(self, size: int = -1) -> bytes:  # psycopg2's copy_expert; size is a hint
        if self._pending:
            piece, self._pending = self._pending, b""
            return piece
        return self._next_piece()

    def _next_piece(self) -> bytes:
        data = self.data
        while self.pos < len(data):
            end = data.find(b"\n", self.pos + PARSE_PIECE_BYTES) + 1 or len(data)
            batch = self.parser.parse(data[self.pos : end])
            self.pos = end
            self.rows += batch.row_count
            self.rejects.extend(batch.rejects)
            if batch.copy_data:
                return batch.copy_data.encode("utf-8")
        return b""


def _copy_rows_guarded(cur: psycopg2.extensions.cursor, rows: str | ParsingStream) -> None:
    """COPY rows inside a savepoint, so a data error leaves the transaction usable."""
    if not rows:
        return
    stream = copy_stream(rows) if isinstance(rows, str) else rows
    cur.execute("SAVEPOINT logpipe_copy")
    try:
        cur.copy_expert(COPY_ROWS_SQL, stream, size=COPY_READ_SIZE)
    except CONNECTION_ERRORS:
        raise
    except DATA_ERRORS:
        cur.execute("ROLLBACK TO SAVEPOINT logpipe_copy")
        raise
    except psycopg2.Error as exc:
        raise SetupError(first_line(exc)) from exc
    cur.execute("RELEASE SAVEPOINT logpipe_copy")


_COPY_LINE = re.compile(r"\bCOPY \w+, line (\d+)")
_Row = tuple[bytes, str]  # (raw line, its COPY row)
SIFT_WINDOW = 1000


def _sift(
    cur: psycopg2.extensions.cursor, parser: _Parser, data: bytes
) -> tuple[int, list[tuple[bytes, str]]]:
    """Load what PostgreSQL accepts; lines it refuses come back as rejects.

    PostgreSQL names the COPY line it refused: the rows before it are fine, so
    each refused line costs one trial COPY of what follows it. Trial COPYs are
    always rolled back (a released savepoint per piece would hold a lock each
    until commit and exhaust the lock table); one COPY then loads what passed.
    Where the error names no line (e.g. a statement trigger), bisect instead.
    """
    pieces = data.split(b"\n")  # LF only: a CR inside a line must not split it
    lines = [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    rows: list[_Row] = []
    rejects: list[tuple[bytes, str]] = []
    for line in lines:
        batch = parser.parse(line)
        rejects.extend(batch.rejects)
        if batch.row_count:
            rows.append((line, batch.copy_data))
    accepted: list[_Row] = []
    start = 0
    while start < len(rows):
        window = rows[start : start + SIFT_WINDOW]  # libpq sends all of a COPY, even after an error
        error = _trial_copy(cur, window)
        if error is None:
            accepted.extend(window)
            start += len(window)
            continue
        where = _COPY_LINE.search(getattr(getattr(error, "diag", None), "context", None) or "")
        if where is None or not 0 < int(where.group(1)) <= len(window):
            _bisect(cur, window, accepted, rejects)
            start += len(window)
            continue
        bad = int(where.group(1)) - 1
        accepted.extend(window[:bad])
        rejects.append(_refused(window[bad], error))
        start += bad + 1
    _copy_rows_guarded(cur, "".join(row for _, row in accepted))
    return len(accepted), rejects


def _bisect(
    cur: psycopg2.extensions.cursor,
    rows: list[_Row],
    accepted: list[_Row],
    refused: list[tuple[bytes, str]],
) -> None:
    error = _trial_copy(cur, rows)
    if error is None:
        accepted.extend(rows)
    elif len(rows) == 1:
        refused.append(_refused(rows[0], error))
    else:
        middle = len(rows) // 2
        _bisect(cur, rows[:middle], accepted, refused)
        _bisect(cur, rows[middle:], accepted, refused)


def _refused(row: _Row, error: Exception) -> tuple[bytes, str]:
    raw = row[0][:-1] if row[0].endswith(b"\n") else row[0]
    return raw, f"PostgreSQL refused the row: {first_line(error)}"


def _trial_copy(cur: psycopg2.extensions.cursor, rows: list[_Row]) -> Exception | None:
    """COPY in a savepoint that is always rolled back: the data error, or None."""
    cur.execute("SAVEPOINT logpipe_trial")
    error: Exception | None = None
    try:
        copy_data = "".join(row for _, row in rows)
        cur.copy_expert(COPY_ROWS_SQL, copy_stream(copy_data), size=COPY_READ_SIZE)
    except CONNECTION_ERRORS:
        raise
    except DATA_ERRORS as exc:
        error = exc
    except psycopg2.Error as exc:
        raise SetupError(first_line(exc)) from exc
    cur.execute("ROLLBACK TO SAVEPOINT logpipe_trial")
    cur.execute("RELEASE SAVEPOINT logpipe_trial")
    return error
