"""The writer's connection to PostgreSQL, and what it says when the database goes away
or cannot take rows: once when a problem starts, once when it ends, never per retry."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg2
import psycopg2.extensions

from logpipe.messages import first_line, say
from logpipe.store import database as db

# Batches commit without waiting for the WAL flush: PostgreSQL goes on loading the
# next batch instead of waiting for the disk. If the server crashes, the last batches
# roll back together with their progress rows, and the spool still holds those lines,
# so they are loaded again: nothing lost, nothing doubled. The commit after which a
# segment file is deleted waits for the flush (see DURABLE_COMMIT_SQL).
# work_mem: a batch's rows (the rollup triggers' transition table) fit in memory.
SESSION_SQL = "SET synchronous_commit = off; SET work_mem = '32MB'"
# Makes this commit, and so every commit before it, durable.
DURABLE_COMMIT_SQL = "SET LOCAL synchronous_commit TO DEFAULT"
SETUP_RETRY_SECONDS = 5.0


class DatabaseLink:
    def __init__(self, dsn: str, spool_dir: Path) -> None:
        self.dsn = dsn
        self.spool_dir = spool_dir  # named in messages: where the lines wait
        self._conn: psycopg2.extensions.connection | None = None
        self._outage_since: float | None = None
        self._setup_problem: str | None = None

    def connection(self) -> psycopg2.extensions.connection | None:
        """The open connection, or a new one; None while the database is unreachable."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = db.connect(self.dsn, "logpipe writer")
            with self._conn.cursor() as cur:
                cur.execute(SESSION_SQL)
            self._conn.commit()
        except psycopg2.OperationalError as exc:
            self.lost(exc)
            return None
        if self._outage_since is not None:
            took = time.monotonic() - self._outage_since
            say(f"database reachable again after {took:.1f} s; loading the spooled lines")
            self._outage_since = None
        return self._conn

    def lost(self, exc: BaseException) -> None:
        self.close()
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            say(
                f"database unreachable ({first_line(exc)}); lines are kept in the spool "
                f"{self.spool_dir} and load automatically when it is back"
            )

    def setup_failed(self, problem: str) -> None:
        """Reachable but unusable (no tables, no privilege): say what to do, once."""
        self.close()
        if problem != self._setup_problem:
            self._setup_problem = problem
            say(
                f"cannot load into the database: {problem}; lines are kept in the spool "
                f"{self.spool_dir}. If the tables are missing, run "
                f"`logpipe initdb`; retrying every {SETUP_RETRY_SECONDS:g} s"
            )

    def usable(self) -> None:
        """A pass went through: a setup problem, if there was one, is over."""
        if self._setup_problem is not None:
            say("the database is usable again; loading the spooled lines")
            self._setup_problem = None

    def retry_delay(self) -> float:
        """Backoff: grows with the outage, up to 5 s."""
        if self._setup_problem is not None:
            return SETUP_RETRY_SECONDS
        if self._outage_since is None:
            return 0.5
        down_for = time.monotonic() - self._outage_since
        return min(0.5 + down_for / 10, 5.0)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
