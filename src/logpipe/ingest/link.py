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
# Makes this commit, and so every commit before it, durable: synchronous_commit on,
# or the level the server, database, role or DSN asks for unless that is off (a
# database or role set to off would otherwise make this commit as lax as the rest).
DURABLE_COMMIT_SQL = (
    "SELECT set_config('synchronous_commit',"
    " CASE reset_val WHEN 'off' THEN 'on' ELSE reset_val END, true)"
    " FROM pg_settings WHERE name = 'synchronous_commit'"
)
# Nothing the writer sends takes more than a few seconds (a COPY of one 4 MiB batch,
# a fold of the rollups): a statement still running after this waits on a lock or a
# stalled server. Cancelled, it is said once and retried; the lines stay in the spool.
STATEMENT_TIMEOUT = "60s"
# Session settings the DSN may override with options='-c name=value' (source 'client');
# a server without one of them (an older PostgreSQL) skips it.
APPLY_SETTINGS_SQL = """
SELECT set_config(wanted.name, wanted.value, false)
  FROM unnest(%s::text[], %s::text[]) AS wanted(name, value)
  JOIN pg_settings ON pg_settings.name = wanted.name
 WHERE pg_settings.source <> 'client'
"""
SETUP_RETRY_SECONDS = 5.0
APPLICATION_NAME = "logpipe writer"


def session_settings(params: dict[str, str]) -> dict[str, str]:
    """What the writer's session sets on the server, from its connection parameters.

    The server's end of the link gets the client's keepalives and user timeout: a
    writer that vanishes mid-transaction (its host died, the network went silent)
    would otherwise leave its backend, and the row lock on its segment, for the OS
    default of two hours, and no writer could load that segment meanwhile."""
    settings = {"statement_timeout": STATEMENT_TIMEOUT}
    server_side = {
        "tcp_keepalives_idle": "keepalives_idle",
        "tcp_keepalives_interval": "keepalives_interval",
        "tcp_keepalives_count": "keepalives_count",
        "tcp_user_timeout": "tcp_user_timeout",
    }
    keepalives = params.get("keepalives", "1") != "0"
    for setting, param in server_side.items():
        if params.get(param) and (keepalives or setting == "tcp_user_timeout"):
            settings[setting] = params[param]
    return settings


class DatabaseLink:
    def __init__(self, dsn: str, spool_dir: Path) -> None:
        self.dsn = dsn
        self.spool_dir = spool_dir  # named in messages: where the lines wait
        self._conn: psycopg2.extensions.connection | None = None
        self._outage_since: float | None = None
        self._setup_problem: str | None = None
        self._stalled_since: float | None = None

    def connection(self) -> psycopg2.extensions.connection | None:
        """The open connection, or a new one; None while the database is unreachable."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = db.connect(self.dsn, APPLICATION_NAME)
            settings = session_settings(db.connection_params(self.dsn, APPLICATION_NAME))
            with self._conn.cursor() as cur:
                cur.execute(SESSION_SQL)
                cur.execute(APPLY_SETTINGS_SQL, (list(settings), list(settings.values())))
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
        """The connection failed (closed here), or a statement was cancelled."""
        self.close()
        if isinstance(exc, psycopg2.extensions.QueryCanceledError):
            self._stalled(exc)
        elif self._outage_since is None:
            self._outage_since = time.monotonic()
            say(
                f"database unreachable ({first_line(exc)}); lines are kept in the spool "
                f"{self.spool_dir} and load automatically when it is back"
            )

    def _stalled(self, exc: BaseException) -> None:
        """Reachable, but a statement did not finish (statement_timeout, a cancel):
        said once; its end is said by usable(), when a pass goes through."""
        if self._stalled_since is None:
            self._stalled_since = time.monotonic()
            say(
                f"the database did not finish a statement ({first_line(exc)}); lines are "
                f"kept in the spool {self.spool_dir}. A lock on logpipe's tables, or a "
                "stalled server? See pg_stat_activity; retrying"
            )

    def setup_failed(self, problem: str) -> None:
        """Reachable but unusable (no tables, no privilege): say what to do, once."""
        self.close()
        if problem != self._setup_problem:
            self._setup_problem = problem
            say(
                f"cannot load into the database: {problem}; lines are kept in the spool "
                f"{self.spool_dir}. If the tables are missing or older than this logpipe, "
                f"run `logpipe initdb`; retrying every {SETUP_RETRY_SECONDS:g} s"
            )

    def usable(self) -> None:
        """A pass went through: a setup problem or a stall, if there was one, is over."""
        if self._setup_problem is not None:
            say("the database is usable again; loading the spooled lines")
            self._setup_problem = None
        if self._stalled_since is not None:
            took = time.monotonic() - self._stalled_since
            say(f"the database finishes statements again after {took:.1f} s; "
                "loading the spooled lines")
            self._stalled_since = None

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
