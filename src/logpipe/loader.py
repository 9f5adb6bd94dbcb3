"""COPY parsed lines into PostgreSQL inside the caller's transaction.

Error classes decide what happens (psycopg2's own split):
- OperationalError / InterfaceError: the connection is gone. Raised to the
  caller, which keeps the lines in the spool and retries later.
- DataError / IntegrityError: this data is bad. The batch is bisected down to
  the lines PostgreSQL refuses, and those become rejects; never retried.
- anything else (missing table, no privilege): a setup problem, raised as
  SetupError so the caller can say what to do without rejecting good lines.
"""

from __future__ import annotations

import io
from typing import Protocol

import psycopg2
import psycopg2.extensions

from logpipe.columns import ACCESS_LOG_COLUMNS

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


def _copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def copy_rejects(
    cur: psycopg2.extensions.cursor, rejects: list[tuple[bytes, str]], source: str | None
) -> None:
    if not rejects:
        return
    src = "\\N" if source is None else _copy_text(source)
    text = "".join(f"{src}\t{_copy_text(reason)}\t\\\\x{raw.hex()}\n" for raw, reason in rejects)
    cur.copy_expert(COPY_REJECTS_SQL, copy_stream(text))


def load_lines(
    cur: psycopg2.extensions.cursor, parser: _Parser, data: bytes, source: str | None
) -> tuple[int, int]:
    """Parse and COPY whole lines; returns (rows, rejects). Every line is one or the other."""
    batch = parser.parse(data)
    try:
        _copy_rows_guarded(cur, batch.copy_data)
        rows, rejects = batch.row_count, list(batch.rejects)
    except DATA_ERRORS:
        rows, rejects = _bisect(cur, parser, data)  # re-parses, so parser rejects are included
    copy_rejects(cur, rejects, source)
    return rows, len(rejects)


def _copy_rows_guarded(cur: psycopg2.extensions.cursor, copy_data: str) -> None:
    """COPY rows inside a savepoint, so a data error leaves the transaction usable."""
    if not copy_data:
        return
    cur.execute("SAVEPOINT logpipe_copy")
    try:
        cur.copy_expert(COPY_ROWS_SQL, copy_stream(copy_data), size=COPY_READ_SIZE)
    except CONNECTION_ERRORS:
        raise
    except DATA_ERRORS:
        cur.execute("ROLLBACK TO SAVEPOINT logpipe_copy")
        raise
    except psycopg2.Error as exc:
        raise SetupError(first_line(exc)) from exc
    cur.execute("RELEASE SAVEPOINT logpipe_copy")


def _bisect(
    cur: psycopg2.extensions.cursor, parser: _Parser, data: bytes
) -> tuple[int, list[tuple[bytes, str]]]:
    """Load what PostgreSQL accepts; lines it refuses come back as rejects."""
    lines = data.splitlines(keepends=True)
    if len(lines) <= 1:
        batch = parser.parse(data)
        try:
            _copy_rows_guarded(cur, batch.copy_data)
        except DATA_ERRORS as exc:
            raw = data[:-1] if data.endswith(b"\n") else data
            return 0, [(raw, f"PostgreSQL refused the row: {first_line(exc)}")]
        return batch.row_count, list(batch.rejects)
    middle = len(lines) // 2
    rows = 0
    rejects: list[tuple[bytes, str]] = []
    for part in (b"".join(lines[:middle]), b"".join(lines[middle:])):
        batch = parser.parse(part)
        try:
            _copy_rows_guarded(cur, batch.copy_data)
        except DATA_ERRORS:
            part_rows, part_rejects = _bisect(cur, parser, part)
            rows += part_rows
            rejects.extend(part_rejects)
        else:
            rows += batch.row_count
            rejects.extend(batch.rejects)
    return rows, rejects


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
