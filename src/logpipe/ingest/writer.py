"""The writer: tails spool segments and loads them into PostgreSQL exactly once.

Each transaction claims the segment's row in logpipe_progress (progress.py), reads
the segment from the committed offset (segments.py), COPYs the lines and advances
the offset, then commits. Rows and progress commit together, so a crash at any
point neither loses nor repeats a line, and two writers on one spool directory
never load the same bytes. link.py keeps the connection and says when the database
goes away; folding.py decides when the report rollups are brought up to date.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions

from logpipe.durable import fsync_directory
from logpipe.ingest import progress, spool
from logpipe.ingest.folding import FoldPolicy
from logpipe.ingest.link import DURABLE_COMMIT_SQL, DatabaseLink
from logpipe.ingest.live_partition import LiveTarget
from logpipe.ingest.read_ahead import ReadAhead
from logpipe.ingest.segments import ParserFactory, SegmentCatalog, read_chunk
from logpipe.messages import EXIT_FAILURE, EXIT_OK, first_line
from logpipe.store.copy import CONNECTION_ERRORS, SetupError, load_lines

GIL_SWITCH_SECONDS = 0.0005


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
class Totals:
    rows: int = 0
    rejects: int = 0
    into_partition: int = 0  # rows COPY'd into the live partition (live_partition.py)


class Writer:
    """Loads spool segments; `run()` until stopped, or `drain()` what is closed and return."""

    def __init__(self, settings: WriterSettings, make_parser: ParserFactory):
        # The read-ahead thread parses while this one waits for the server; after each
        # reply (~6 a batch) this one waits for the GIL up to the switch interval (5 ms
        # by default, a server idle that long each time).
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        self.settings = settings
        self.catalog = SegmentCatalog(make_parser)
        self.link = DatabaseLink(settings.dsn, settings.spool_dir)
        self.folds = FoldPolicy()
        self.totals = Totals()
        self.live = LiveTarget()
        self.stop_requested = False
        self._deleted: list[str] = []  # segments unlinked whose progress rows remain
        self._lifeline: int | None = None
        self._contended = False  # a pass skipped a segment another writer had locked

    # -- entry points ---------------------------------------------------------

    def run(self, lifeline: int | None = None) -> int:
        """Load continuously until stopped, then drain what is closed and return.

        Stops when `lifeline` (the read end of a pipe whose write end the reader
        holds) reaches EOF: the reader closed it at the end of its input, or died.
        A pipe cannot be missed the way a signal sent before the handler is
        installed can. Without a lifeline (replay, drain), on SIGTERM/SIGINT.
        """
        self._lifeline = lifeline
        # A writer with a lifeline stops when its reader says so, not on SIGTERM: prefork
        # Apache's stop signals the whole process group, and a writer that stopped then
        # would miss the lines its reader spools until end of file.
        stop_signal = signal.SIG_IGN if lifeline is not None else self.request_stop
        signal.signal(signal.SIGTERM, stop_signal)
        signal.signal(signal.SIGINT, stop_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while True:
            self._sleep(0)  # notices a closed lifeline without waiting
            if self.stop_requested:
                break
            progressed = self._pass(include_live=True)
            if progressed is None:
                self._sleep(self.link.retry_delay())
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
            progressed = self._pass(include_live=False, fold=False)
            if progressed is None:
                return EXIT_FAILURE
            if not progressed and not self._contended:
                self.folds.last_fold(self.link.connection())
                self.close()
                return EXIT_OK
            if not progressed:
                time.sleep(0.1)

    def close(self) -> None:
        self.link.close()

    def request_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    # -- one pass over the spool ---------------------------------------------

    def _pass(self, include_live: bool, fold: bool = True) -> bool | None:
        """Load what is pending; True if anything moved, None if the database is unusable."""
        conn = self.link.connection()
        if conn is None:
            return None
        progressed = False
        try:
            # before loading, so that this pass's rows go into their partitions rather
            # than into the default one, to be moved later
            self.folds.maybe_prepare_partitions(conn, leaving=self.stop_requested)
            self.live.refresh(conn)
            for name in self.catalog.segment_names(self.settings.spool_dir):
                path = self.settings.spool_dir / name
                closed = spool.is_closed(path)
                if closed or include_live:
                    progressed |= self._load_segment(conn, name, path, closed)
            # told to stop while loading: drain()'s last fold, cut at a second, folds
            # instead of one that has no bound (Apache's restart would wait for it)
            self._sleep(0)
            if fold and not self.stop_requested:
                self.folds.maybe_fold(conn, caught_up=not progressed)
                if not progressed:  # upkeep while idle, never on the way out
                    self.folds.maybe_summarize_visits(conn)
            self._forget_deleted(conn)
        except CONNECTION_ERRORS as exc:
            self.link.lost(exc)
            return None
        except SetupError as exc:
            self.live.refused()  # maybe the partition's fault (dropped, no right): not again
            self.link.setup_failed(str(exc))
            return None
        except psycopg2.Error as exc:  # e.g. logpipe_progress missing: initdb not run
            self.live.refused()
            self.link.setup_failed(first_line(exc))
            return None
        except SystemError as exc:
            # psycopg2 can surface a server that cut the connection mid-COPY as
            # SystemError; treat it as a lost connection, not a crash.
            self.link.lost(exc)
            return None
        self.link.usable()
        return progressed

    def _load_segment(
        self, conn: psycopg2.extensions.connection, name: str, path: Path, closed: bool
    ) -> bool:
        """Load a segment batch by batch, one transaction each; True if any committed."""
        progressed = False
        ahead: ReadAhead | None = None
        try:
            while True:
                if self.stop_requested and not closed:
                    return progressed  # stopping: leave live segments to their own logger
                batch = self._load_batch(conn, name, path, closed, ahead)
                if batch is None:
                    return progressed
                at_end, ahead = batch
                progressed = True
                if at_end:
                    self._forget_segment(name, path)
                    return progressed
        finally:
            if ahead is not None:
                ahead.wait()  # its parser may be used by the next segment

    def _load_batch(self, conn: psycopg2.extensions.connection, name: str, path: Path,
                    closed: bool, ahead: ReadAhead | None) -> tuple[bool, ReadAhead | None] | None:
        """One transaction: the next lines of the segment loaded and its progress
        advanced. None when there was nothing to load; else whether the segment is
        done, and what is being read ahead of the next batch."""
        with conn.cursor() as cur:
            claim = progress.claim(cur, name)
            if claim is None:  # another writer holds it right now
                conn.rollback()
                self._contended = True
                return None
            offset, finished = claim
            meta = None if finished else self.catalog.meta(name, path, closed)
            if meta is None:  # finished, or a live segment whose header is not written yet
                conn.rollback()
                if finished:
                    self._forget_segment(name, path)
                return None
            offset = max(offset, meta.header_len)
            taken = None if ahead is None else ahead.take(offset, meta.parser)
            if taken is None:
                chunk, at_end = read_chunk(path, offset, closed, self.settings.batch_lines,
                                           self.settings.batch_bytes)
                head = None
            else:
                chunk, at_end, head = taken
            if not chunk and not at_end:
                conn.rollback()
                return None
            next_ahead = None if at_end else ReadAhead(
                meta.parser, path, offset + len(chunk), closed, self.settings.batch_lines,
                self.settings.batch_bytes)
            try:
                loaded = load_lines(cur, meta.parser, chunk, meta.source, head, next_ahead,
                                    into=self.live.table(meta.parser, chunk))
            except BaseException:
                if next_ahead is not None:
                    next_ahead.wait()  # its parser may be used again after this
                raise
            rows, rejects = loaded.rows, loaded.rejects
            if loaded.partition_refused:
                self.live.refused()
            progress.advance(cur, name, offset + len(chunk), rows + rejects, at_end)
            if at_end:  # the segment is deleted next: this commit must be durable
                cur.execute(DURABLE_COMMIT_SQL)
        conn.commit()
        if rows:
            self.folds.rows_committed(rows)
        self.totals.rows += rows
        self.totals.rejects += rejects
        self.totals.into_partition += rows if loaded.into_partition else 0
        return at_end, next_ahead

    def _forget_segment(self, name: str, path: Path) -> None:
        self.catalog.forget(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self._deleted.append(name)

    def _forget_deleted(self, conn: psycopg2.extensions.connection) -> None:
        """Drop the progress rows of the segments this writer deleted, once the deletions
        are on disk: a file that came back after a crash without its row would load again."""
        if not self._deleted:
            return
        try:
            fsync_directory(self.settings.spool_dir)
        except OSError:
            return  # kept rows only cost space; the next pass tries again
        progress.forget(conn, self._deleted)
        self._deleted = []

    def _sleep(self, seconds: float) -> None:
        """Wait, returning early when asked to stop (a signal, or the lifeline's EOF)."""
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

