"""COPY parsed lines into PostgreSQL inside the caller's transaction.

Whose fault an error is decides what happens. It is read from the SQLSTATE, not
from psycopg2's class: psycopg2 files an index entry too big for its index under
OperationalError, and a trigger's RAISE under InternalError.
- the data's (is_data_fault): the batch is narrowed down to the rows PostgreSQL
  refuses (narrow.py); those become rejects and the rest load, never retried.
- the connection's (any other OperationalError, InterfaceError): raised to the
  caller, which keeps the lines in the spool and retries later.
- anything else (missing table, no privilege, read-only server): a setup problem,
  raised as SetupError so the caller can say what to do without rejecting good lines.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, NamedTuple, Protocol

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions

from logpipe.messages import first_line
from logpipe.parse.columns import ACCESS_LOG_COLUMNS
from logpipe.parse.values import copy_text
from logpipe.store.narrow import Refusal, narrow

COPY_INTO_SQL = f"COPY {{table}} ({', '.join(ACCESS_LOG_COLUMNS)}) FROM STDIN"
COPY_ROWS_SQL = COPY_INTO_SQL.format(table="access_log")
COPY_REJECTS_SQL = "COPY access_log_rejects (source, reason, line) FROM STDIN"
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# SQLSTATEs that blame the rows: cardinality (21: e.g. a trigger's ON CONFLICT meeting
# two rows), data exceptions (22), integrity constraints (23), a PL/pgSQL trigger's
# RAISE or ASSERT (P0), and a value too big for a row or an index entry (54000).
DATA_FAULT_CLASSES = ("21", "22", "23", "P0")
DATA_FAULT_CODES = ("54000",)
# Deferred constraints are otherwise checked at COMMIT, where no row can be blamed.
CHECK_DEFERRED_SQL = "SET CONSTRAINTS ALL IMMEDIATE"


class SetupError(Exception):
    """The database is reachable but not usable as is (e.g. run `logpipe initdb`)."""


class _Batch(Protocol):
    copy_data: str
    row_count: int
    rejects: list[tuple[bytes, str]]


class _Parser(Protocol):
    def parse(self, data: bytes) -> _Batch: ...


def is_data_fault(exc: BaseException) -> bool:
    """Did PostgreSQL refuse the rows themselves (as opposed to the connection or setup)?"""
    code = getattr(exc, "pgcode", None) or ""
    return code[:2] in DATA_FAULT_CLASSES or code in DATA_FAULT_CODES


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


class _Ahead(Protocol):
    """What the writer parses of its next batch while the server finishes this one."""

    def start(self) -> None: ...  # this batch's lines are all parsed: go ahead
    def wait(self) -> None: ...  # until it is done with the parser


class Loaded(NamedTuple):
    rows: int
    rejects: int
    into_partition: bool = False  # the rows went into `into`
    partition_refused: bool = False  # `into` refused a line outside it: all via access_log


def load_lines(
    cur: psycopg2.extensions.cursor, parser: _Parser, data: bytes, source: str | None,
    head: ParsedHead | None = None, ahead: _Ahead | None = None, into: str | None = None,
) -> Loaded:
    """Parse and COPY whole lines. Every line is a row or a reject.

    `head`: the start of `data` parsed already (parse_head). `ahead`: started once every
    line of `data` is parsed, so that it can parse with `parser` while the server
    finishes the COPY; waited for if `parser` is needed here again. The caller waits
    for it before using `parser` itself. `into`: a partition of access_log (quoted) to
    COPY into rather than access_log; if a line falls outside it, the batch is loaded
    into access_log instead, from the rows already parsed."""
    stream = ParsingStream(parser, data, head, None if ahead is None else ahead.start,
                           keep_sent=into is not None)
    refusal = copy_rows(cur, stream, keep=True, into=into) if stream.has_rows() else None
    refused_by_partition = refusal is PARTITION_REFUSED
    if refused_by_partition:
        refusal = copy_rows(cur, stream.again(), keep=True)
    if refusal is None:
        rows, rejects = stream.rows, stream.rejects
    else:
        if ahead is not None:
            ahead.wait()  # the parser is needed here again
        rows, rejects = _sift(cur, parser, data)  # re-parses, so parser rejects are included
    copy_rejects(cur, rejects, source)
    return Loaded(rows, len(rejects), into is not None and refusal is None
                  and not refused_by_partition, refused_by_partition)


# Small enough that a piece fits in the socket buffer: sending returns at once and
# PostgreSQL loads it while the next is parsed (a bigger piece waits for the server).
PARSE_PIECE_BYTES = 64 * 1024


def parse_piece(parser: _Parser, data: bytes, pos: int) -> tuple[_Batch, int]:
    """The lines of `data` from `pos` to the first line end PARSE_PIECE_BYTES on (or the
    end), parsed; and where the next piece starts."""
    end = data.find(b"\n", pos + PARSE_PIECE_BYTES) + 1 or len(data)
    return parser.parse(data[pos:end]), end


@dataclass
class ParsedHead:
    """The first pieces of a batch, parsed ahead of its COPY (parse_head)."""

    pieces: list[bytes]  # COPY input
    pos: int  # where the rest of the batch starts
    rows: int
    rejects: list[tuple[bytes, str]]


def parse_head(parser: _Parser, data: bytes, limit: int) -> ParsedHead:
    """Parse `data` piece by piece until at least `limit` bytes of it are done."""
    head = ParsedHead([], 0, 0, [])
    while head.pos < min(limit, len(data)):
        batch, head.pos = parse_piece(parser, data, head.pos)
        head.rows += batch.row_count
        head.rejects.extend(batch.rejects)
        if batch.copy_data:
            head.pieces.append(batch.copy_data.encode("utf-8"))
    return head


class ParsingStream:
    """COPY input parsed on demand, a piece of whole lines each time psycopg2 asks for
    more: the writer parses the next piece while PostgreSQL loads the one sent before,
    and only one piece's rows (and the head's, if parsed ahead) are in memory at a
    time. `on_parsed` is called once every line is parsed."""

    def __init__(self, parser: _Parser, data: bytes, head: ParsedHead | None = None,
                 on_parsed: Callable[[], None] | None = None, keep_sent: bool = False
                 ) -> None:
        self.parser = parser
        self.data = data
        self.on_parsed = on_parsed
        head = head or ParsedHead([], 0, 0, [])
        self._ready = list(reversed(head.pieces))  # popped from the end
        self.pos = head.pos
        self.rows = head.rows
        self.rejects = list(head.rejects)
        # what read() returned, for again(); None: not kept
        self._sent: list[bytes] | None = [] if keep_sent else None

    def again(self) -> ParsingStream:
        """The same rows from the start, for another COPY (needs keep_sent): what was
        sent, what is parsed and not sent yet, then the lines not parsed yet."""
        assert self._sent is not None
        head = ParsedHead([*self._sent, *reversed(self._ready)], self.pos, self.rows,
                          self.rejects)
        return ParsingStream(self.parser, self.data, head, self.on_parsed)

    def has_rows(self) -> bool:
        """Parse up to the first row: False when every line is a reject (no COPY needed)."""
        if not self._ready:
            piece = self._next_piece()
            if piece:
                self._ready.append(piece)
        return bool(self._ready)

    def read(self, size: int = -1) -> bytes:  # psycopg2's copy_expert; size is a hint
        """Every piece parsed ahead at once: psycopg2 sends them in one call, without the
        GIL, while the next batch is parsed ahead (read_ahead.py); then piece by piece."""
        if self._ready:
            ready, self._ready = self._ready, []
            if self.pos >= len(self.data):
                self._parsed()
            piece = b"".join(reversed(ready))
        else:
            piece = self._next_piece()
        if self._sent is not None and piece:
            self._sent.append(piece)
        return piece

    def _next_piece(self) -> bytes:
        data = self.data
        while self.pos < len(data):
            batch, self.pos = parse_piece(self.parser, data, self.pos)
            self.rows += batch.row_count
            self.rejects.extend(batch.rejects)
            if batch.copy_data:
                return batch.copy_data.encode("utf-8")
        self._parsed()
        return b""

    def _parsed(self) -> None:
        if self.on_parsed is not None:
            self.on_parsed, on_parsed = None, self.on_parsed
            on_parsed()


# In an error's context; first when COPY itself raised it, after the frames of a
# trigger function when one did. A partition's name begins with access_log_.
_COPY_LINE = re.compile(r"\bCOPY access_log\w*, line (\d+)")

# copy_rows(into=...): a line fell outside that partition
PARTITION_REFUSED = Refusal("a line outside the partition", None)


def copy_rows(
    cur: psycopg2.extensions.cursor, rows: str | ParsingStream, keep: bool,
    into: str | None = None,
) -> Refusal | None:
    """COPY rows inside a savepoint: None when PostgreSQL takes them (kept, or rolled
    back unless `keep`), the Refusal when it refuses them for what they hold (rolled
    back, the transaction stays usable); PARTITION_REFUSED when `into`, a partition of
    access_log, refused a line of another time. Other errors are raised."""
    stream = copy_stream(rows) if isinstance(rows, str) else rows
    cur.execute("SAVEPOINT logpipe_copy")
    try:
        cur.copy_expert(COPY_ROWS_SQL if into is None else COPY_INTO_SQL.format(table=into),
                        stream, size=COPY_READ_SIZE)
        cur.execute(CHECK_DEFERRED_SQL + ("; RELEASE SAVEPOINT logpipe_copy" if keep else
                                          "; ROLLBACK TO SAVEPOINT logpipe_copy"
                                          "; RELEASE SAVEPOINT logpipe_copy"))
    except psycopg2.Error as exc:
        if not is_data_fault(exc):
            if isinstance(exc, CONNECTION_ERRORS):
                raise
            raise SetupError(first_line(exc)) from exc
        cur.execute("ROLLBACK TO SAVEPOINT logpipe_copy; RELEASE SAVEPOINT logpipe_copy")
        if into is not None and _outside_partition(exc):
            return PARTITION_REFUSED
        return _refusal(exc)
    return None


def _outside_partition(exc: psycopg2.Error) -> bool:
    """A partition's own constraint refused a row: a check violation naming no
    constraint (a CHECK constraint an operator added has a name)."""
    diag = getattr(exc, "diag", None)
    return exc.pgcode == psycopg2.errorcodes.CHECK_VIOLATION and diag is not None \
        and diag.constraint_name is None


def _refusal(exc: psycopg2.Error) -> Refusal:
    context = getattr(getattr(exc, "diag", None), "context", None) or ""
    where = _COPY_LINE.search(context)
    return Refusal(first_line(exc), None if where is None else int(where.group(1)),
                   by_copy=where is not None and where.start() == 0)


_Row = tuple[bytes, str]  # (raw line, its COPY row)


def _sift(
    cur: psycopg2.extensions.cursor, parser: _Parser, data: bytes
) -> tuple[int, list[tuple[bytes, str]]]:
    """Load the lines PostgreSQL takes; the lines it refuses come back as rejects,
    with the parser's own."""
    pieces = data.split(b"\n")  # LF only: a CR inside a line must not split it
    lines = [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    rows: list[_Row] = []
    rejects: list[tuple[bytes, str]] = []
    for line in lines:
        batch = parser.parse(line)
        rejects.extend(batch.rejects)
        if batch.row_count:
            rows.append((line, batch.copy_data))

    def trial(some: Sequence[_Row]) -> Refusal | None:
        return copy_rows(cur, "".join(row for _, row in some), keep=False)

    def load(some: Sequence[_Row]) -> Refusal | None:
        return copy_rows(cur, "".join(row for _, row in some), keep=True)

    loaded, refused = narrow(rows, load, trial)
    rejects.extend((_without_lf(raw), reason) for (raw, _), reason in refused)
    return loaded, rejects


def _without_lf(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\n") else raw
