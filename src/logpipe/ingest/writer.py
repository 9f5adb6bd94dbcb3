"""The writer: tails spool segments and loads them into PostgreSQL exactly once.

Each transaction locks the segment's row in logpipe_progress, reads the
segment from the committed offset, COPYs the lines and advances the offset,
then commits. Rows and progress commit together, so a crash at any point
neither loses nor repeats a line, and two writers on one spool directory
never load the same bytes (the row lock is taken with SKIP LOCKED).
"""

from __future__ import annotations

import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psycopg2
import psycopg2.extensions

from logpipe.ingest import spool
from logpipe.messages import EXIT_FAILURE, EXIT_OK, first_line, say
from logpipe.store import database as db
from logpipe.store.copy import CONNECTION_ERRORS, SetupError, load_lines

CLAIM_SQL = """
INSERT INTO logpipe_progress (segment) VALUES (%s) ON CONFLICT (segment) DO NOTHING;
SELECT byte_offset, finished FROM logpipe_progress WHERE segment = %s FOR UPDATE SKIP LOCKED
"""
ADVANCE_SQL = """
UPDATE logpipe_progress
   SET byte_offset = %s, lines = lines + %s, finished = %s, updated_at = now()
 WHERE segment = %s
"""
MAX_LINE_READ = 64 * 1024 * 1024
# Batches commit without waiting for the WAL flush: PostgreSQL goes on loading the
# next batch instead of waiting for the disk. If the server crashes, the last batches
# roll back together with their progress rows, and the spool still holds those lines,
# so they are loaded again: nothing lost, nothing doubled. The commit after which a
# segment file is deleted waits for the flush (the server's own setting), and so
# makes every commit before it durable too.
# work_mem: a batch's rows (the rollup triggers' transition table) fit in memory.
SESSION_SQL = "SET synchronous_commit = off; SET work_mem = '32MB'"
DURABLE_COMMIT_SQL = "SET LOCAL synchronous_commit TO DEFAULT"
FOLD_INTERVAL = 10.0  # seconds: how long report rollups may lag under sustained load
FORGET_OLD_SQL = (
    "DELETE FROM logpipe_progress WHERE finished AND updated_at < now() - interval '7 days'"
)


@dataclass
class WriterSettings:
    spool_dir: Path
    dsn: str
    flush_interval: float
    batch_lines: int
    # Bigger transactions cost PostgreSQL less per row (fewer commits, fewer rollup
    # updates); parsing streams, so memory does not grow with this.
    batch_bytes: int = 4 * 1024 * 1024


@dataclass
class SegmentMeta:
    parser: Any
    source: str | None
    header_len: int


@dataclass
class Totals:
    rows: int = 0
    rejects: int = 0


class Writer:
    """Loads spool segments; `run()` until stopped, or `drain()` what is closed and return."""

    def __init__(self, settings: WriterSettings, make_parser: Callable[[str, str | None], Any]):
        self.settings = settings
        self.make_parser = make_parser  # (format, source) -> parser; may raise FormatError
        self._parsers: dict[tuple[str, str | None], Any] = {}
        self._segments: dict[str, SegmentMeta] = {}
        self._unreadable: set[str] = set()
        self.totals = Totals()
        self.stop_requested = False
        self._conn: psycopg2.extensions.connection | None = None
        self._outage_since: float | None = None
        self._setup_problem: str | None = None
        self._forgot_at = 0.0
        self._lifeline: int | None = None
        self._contended = False  # a pass skipped a segment another writer had locked
        self._unfolded = False  # rows committed since the rollups were last folded
        self._folded_at = time.monotonic()
        self._fold_problem: str | None = None

    # -- entry points ---------------------------------------------------------

    def run(self, lifeline: int | None = None) -> int:
        """Load continuously until stopped, then drain what is closed and return.

        Stops on SIGTERM/SIGINT, or when `lifeline` (the read end of a pipe whose
        write end the reader holds) reaches EOF: the reader closed it at the end
        of its input, or died. A pipe cannot be missed the way a signal sent
        before the handler is installed can.
        """
        self._lifeline = lifeline
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while True:
            self._sleep(0)  # notices a closed lifeline without waiting
            if self.stop_requested:
                break
            progressed = self._pass(include_live=True)
            if progressed is None:
                self._sleep(self._retry_delay())
            elif not progressed:
                self._sleep(self.settings.flush_interval)
        return self.drain()

    def drain(self) -> int:
        """Load every closed segment, then return an exit status.

        A closed segment whose progress row is locked is being loaded by another
        writer, or was by one that just died and whose transaction the server
        has yet to abort: wait for it rather than leave its lines behind.
        """
        while True:
            self._contended = False
            progressed = self._pass(include_live=False)
            if progressed is None:
                return EXIT_FAILURE
            if not progressed and not self._contended:
                self.close()
                return EXIT_OK
            if not progressed:
                time.sleep(0.1)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # -- one pass over the spool ---------------------------------------------

    def _pass(self, include_live: bool) -> bool | None:
        """Load what is pending; True if anything moved, None if the database is unusable."""
        conn = self._connection()
        if conn is None:
            return None
        progressed = False
        try:
            for name in spool.list_segments(self.settings.spool_dir):
                path = self.settings.spool_dir / name
                closed = spool.is_closed(path)
                if closed or include_live:
                    progressed |= self._load_segment(conn, name, path, closed)
            self._fold(conn, caught_up=not progressed)
            self._forget_old_progress(conn)
        except CONNECTION_ERRORS as exc:
            self._lost(exc)
            return None
        except SetupError as exc:
            self._setup_failed(str(exc))
            return None
        except psycopg2.Error as exc:  # e.g. logpipe_progress missing: initdb not run
            self._setup_failed(first_line(exc))
            return None
        except SystemError as exc:
            # psycopg2 can surface a server that cut the connection mid-COPY as
            # SystemError; treat it as a lost connection, not a crash.
            self._lost(exc)
            return None
        if self._setup_problem is not None:
            say("the database is usable again; loading the spooled lines")
            self._setup_problem = None
        return progressed

    def _load_segment(
        self, conn: psycopg2.extensions.connection, name: str, path: Path, closed: bool
    ) -> bool:
        progressed = False
        while True:
            if self.stop_requested and not closed:
                return progressed  # stopping: leave live segments to their own logger
            with conn.cursor() as cur:
                cur.execute(CLAIM_SQL, (name, name))
                claim = cur.fetchone()
                if claim is None:  # another writer holds it right now
                    conn.rollback()
                    self._contended = True
                    return progressed
                offset, finished = claim
                meta = None if finished else self._segment_meta(name, path, closed)
                if meta is None:  # finished, or a live segment whose header is not written yet
                    conn.rollback()
                    if finished:
                        self._forget_segment(name, path)
                    return progressed
                offset = max(offset, meta.header_len)
                chunk, at_end = self._read_chunk(path, offset, closed)
                if not chunk and not at_end:
                    conn.rollback()
                    return progressed
                rows, rejects = load_lines(cur, meta.parser, chunk, meta.source)
                cur.execute(
                    ADVANCE_SQL, (offset + len(chunk), rows + rejects, at_end, name)
                )
                if at_end:  # the segment is deleted next: this commit must be durable
                    cur.execute(DURABLE_COMMIT_SQL)
            conn.commit()
            self._unfolded |= rows > 0
            self.totals.rows += rows
            self.totals.rejects += rejects
            progressed = True
            if at_end:
                self._forget_segment(name, path)
                return progressed

    def _segment_meta(self, name: str, path: Path, closed: bool) -> SegmentMeta | None:
        meta = self._segments.get(name)
        if meta is not None:
            return meta
        header = spool.read_header(path)
        if header is None:
            if not closed:
                return None
            # Closed without a header: not written by logpipe; read it as combined.
            header = ({"format": "combined", "source": None}, 0)
        info, header_len = header
        log_format = str(info.get("format") or "combined")
        source = info.get("source")
        key = (log_format, source)
        if key not in self._parsers:
            try:
                self._parsers[key] = self.make_parser(log_format, source)
            except ValueError as exc:  # FormatError: a segment this version cannot read
                if name not in self._unreadable:
                    self._unreadable.add(name)
                    say(f"skipping spool segment {path}: {exc}; it is kept as it is")
                return None
        meta = SegmentMeta(self._parsers[key], source, header_len)
        self._segments[name] = meta
        return meta

    def _forget_segment(self, name: str, path: Path) -> None:
        self._segments.pop(name, None)
        _unlink(path)

    def _read_chunk(self, path: Path, offset: int, closed: bool) -> tuple[bytes, bool]:
        """Whole lines from offset, at most batch_lines / batch_bytes; at_end when all is read.

        A single line longer than batch_bytes is read to its end (up to
        MAX_LINE_READ), so even a megabyte line becomes exactly one reject.
        """
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(self.settings.batch_bytes)
                while b"\n" not in data and len(data) < MAX_LINE_READ:
                    more = f.read(self.settings.batch_bytes)
                    if not more:
                        break
                    data += more
                at_eof = not f.read(1)
        except FileNotFoundError:
            return b"", False
        cut = _nth_line_end(data, self.settings.batch_lines)
        if cut is not None:
            return data[:cut], False
        if closed and at_eof:
            return data, True  # a closed segment may end with a final unterminated line
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) >= MAX_LINE_READ:
            return data, False  # a line longer than MAX_LINE_READ: rejected in pieces
        return data[:end], False

    # -- connection and outage handling ---------------------------------------

    def _connection(self) -> psycopg2.extensions.connection | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = db.connect(self.settings.dsn, "logpipe writer")
            with self._conn.cursor() as cur:
                cur.execute(SESSION_SQL)
            self._conn.commit()
        except psycopg2.OperationalError as exc:
            self._lost(exc)
            return None
        if self._outage_since is not None:
            took = time.monotonic() - self._outage_since
            say(f"database reachable again after {took:.1f} s; loading the spooled lines")
            self._outage_since = None
        return self._conn

    def _lost(self, exc: BaseException) -> None:
        self.close()
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            say(
                f"database unreachable ({first_line(exc)}); lines are kept in the spool "
                f"{self.settings.spool_dir} and load automatically when it is back"
            )

    def _setup_failed(self, problem: str) -> None:
        self.close()
        if problem != self._setup_problem:
            self._setup_problem = problem
            say(
                f"cannot load into the database: {problem}; lines are kept in the spool "
                f"{self.settings.spool_dir}. If the tables are missing, run "
                f"`logpipe initdb`; retrying every 5 s"
            )

    def _retry_delay(self) -> float:
        if self._setup_problem is not None:
            return 5.0
        if self._outage_since is None:
            return 0.5
        down_for = time.monotonic() - self._outage_since
        return min(0.5 + down_for / 10, 5.0)

    def _fold(self, conn: psycopg2.extensions.connection, caught_up: bool) -> None:
        """Fold the report rollups once the spool is caught up, or every FOLD_INTERVAL:
        folding many batches at once costs PostgreSQL far less than folding each."""
        now = time.monotonic()
        if not self._unfolded or not (caught_up or now - self._folded_at >= FOLD_INTERVAL):
            return
        problem = db.fold_rollups(conn)
        self._unfolded, self._folded_at = False, now
        if problem is not None and problem != self._fold_problem:
            say(f"cannot update the report rollups ({problem}); rows still load. "
                "Run `logpipe initdb` to upgrade the schema")
        self._fold_problem = problem

    def _forget_old_progress(self, conn: psycopg2.extensions.connection) -> None:
        now = time.monotonic()
        if now - self._forgot_at < 3600:
            return
        self._forgot_at = now
        with conn.cursor() as cur:
            cur.execute(FORGET_OLD_SQL)
        conn.commit()

    # -- signals --------------------------------------------------------------

    def request_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def _sleep(self, seconds: float) -> None:
        """Wait, returning early when asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested:
            left = max(deadline - time.monotonic(), 0.0)
            if self._lifeline is None:
                if left <= 0:
                    return
                time.sleep(min(left, 0.05))
                continue
            ready, _, _ = select.select([self._lifeline], [], [], left)
            if ready and not os.read(self._lifeline, 512):
                self.stop_requested = True
            if left <= 0 or not ready:
                return


def _nth_line_end(data: bytes, n: int) -> int | None:
    """Offset just past the n-th newline in data, or None if there are fewer than n+1 lines."""
    if data.count(b"\n") <= n:
        return None
    pos = -1
    for _ in range(n):
        pos = data.find(b"\n", pos + 1)
    return pos + 1


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
