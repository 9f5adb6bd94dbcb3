"""access_log's partitions (sql/005_partitions.sql) and the steps of `logpipe prune`.

Pruning a partition never holds up loggers: its rows go with a TRUNCATE, which locks
that partition alone (loggers write today's) and frees its disk space at once; the
empty table is then dropped, which needs a moment of ACCESS EXCLUSIVE lock on
access_log: asked for with a short lock_timeout, so a logger queued behind the request
waits that long at most, and retried. (DETACH PARTITION CONCURRENTLY would need no
such moment, but PostgreSQL refuses it on a table with a default partition, and the
default partition is what keeps any time from stopping a COPY.) A prune interrupted
between the two leaves an empty partition, which the next prune drops.

Neither a TRUNCATE of a partition nor a DROP fires access_log's triggers, so the
rollups keep the pruned days (logpipe_pruned says which).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

# How long a prune waits for a lock before it lets go and tries again later: loaders
# that need access_log queue behind a waiting ACCESS EXCLUSIVE request, so this is the
# longest they wait.
LOCK_WAIT_MS = 300
RETRY_SECONDS = (0.5, 1, 2, 4, 8)  # pauses between tries: about 15 s of a busy table

T = TypeVar("T")
Connection = psycopg2.extensions.connection


@dataclass(frozen=True)
class Partition:
    name: str
    range_from: dt.datetime | None  # None: from the beginning of time
    range_to: dt.datetime | None  # None: no end (the default partition)
    is_default: bool

    def describe(self) -> str:
        """Its range for people: '2024-01-01 to 2024-02-01', 'before 2026-12-04'."""
        if self.is_default:
            return "times no other partition covers"
        if self.range_from is None:
            return f"before {moment(self.range_to)}"
        return f"{moment(self.range_from)} to {moment(self.range_to)}"


class Busy(Exception):
    """A lock was not granted within the retries: someone holds the table for long."""


def moment(when: dt.datetime | None) -> str:
    """A partition bound: the date alone for a UTC midnight (they all are)."""
    if when is None:
        return "the end of time"
    utc = when.astimezone(dt.timezone.utc)
    if utc.time() == dt.time():
        return utc.date().isoformat()
    return utc.isoformat(sep=" ")


def utc_midnight_before(when: dt.datetime) -> dt.datetime:
    """The UTC midnight at or before `when`: prune removes whole UTC days, the grain of
    the daily rollup, so that a pruned day is counted whole by the rollups or not at all."""
    utc = when.astimezone(dt.timezone.utc)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


def partitions(cur: psycopg2.extensions.cursor) -> list[Partition]:
    cur.execute("SELECT partition::text, range_from, range_to, is_default"
                " FROM logpipe_partitions()")
    return [Partition(*row) for row in cur.fetchall()]


def expired(parts: list[Partition], before: dt.datetime) -> list[Partition]:
    """The partitions whose every row is older than `before`, oldest first."""
    old = [p for p in parts
           if not p.is_default and p.range_to is not None and p.range_to <= before]
    return sorted(old, key=lambda p: p.range_to or before)


def count_rows(cur: psycopg2.extensions.cursor, part: Partition) -> int:
    cur.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(part.name)))
    return int(cur.fetchone()[0])


def count_default_rows(cur: psycopg2.extensions.cursor, before: dt.datetime) -> int:
    cur.execute("SELECT count(*) FROM ONLY access_log_default WHERE time < %s", (before,))
    return int(cur.fetchone()[0])


def count_rejects(cur: psycopg2.extensions.cursor, before: dt.datetime) -> int:
    cur.execute("SELECT count(*) FROM access_log_rejects WHERE received_at < %s", (before,))
    return int(cur.fetchone()[0])


def empty_partition(conn: Connection, part: Partition) -> int:
    """Count and TRUNCATE the partition's rows, recorded in logpipe_pruned; returns how
    many. The SHARE lock lets reports read on while it counts; old-dated rows for the
    partition wait until it is done, so none goes uncounted."""

    def attempt() -> int:
        with conn.cursor() as cur:
            _lock_wait(cur)
            table = sql.Identifier(part.name)
            cur.execute(sql.SQL("LOCK TABLE ONLY {} IN SHARE MODE").format(table))
            rows = count_rows(cur, part)
            cur.execute(sql.SQL("TRUNCATE ONLY {}").format(table))
            if rows:
                _record(cur, part.name, part.range_from, part.range_to, rows)
        conn.commit()
        return rows

    return _retry(conn, attempt)


def drop_partition(conn: Connection, part: Partition) -> None:
    """DROP the (emptied) partition: a moment of ACCESS EXCLUSIVE lock on access_log."""

    def attempt() -> None:
        with conn.cursor() as cur:
            _lock_wait(cur)
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(part.name)))
        conn.commit()

    _retry(conn, attempt)


def delete_default_rows(conn: Connection, before: dt.datetime) -> int:
    """Delete the default partition's rows dated before `before` (times no partition
    covered, e.g. a clock in 1970), recorded in logpipe_pruned; returns how many."""

    def attempt() -> int:
        with conn.cursor() as cur:
            _lock_wait(cur)
            cur.execute("DELETE FROM ONLY access_log_default WHERE time < %s", (before,))
            rows = cur.rowcount
            if rows:
                _record(cur, "access_log_default", None, before, rows)
        conn.commit()
        return rows

    return _retry(conn, attempt)


def delete_rejects(conn: Connection, before: dt.datetime) -> int:
    def attempt() -> int:
        with conn.cursor() as cur:
            _lock_wait(cur)
            cur.execute("DELETE FROM access_log_rejects WHERE received_at < %s", (before,))
            rows = cur.rowcount
        conn.commit()
        return rows

    return _retry(conn, attempt)


def _lock_wait(cur: psycopg2.extensions.cursor) -> None:
    cur.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")


def _record(cur: psycopg2.extensions.cursor, relation: str, range_from: dt.datetime | None,
            range_to: dt.datetime | None, rows: int) -> None:
    cur.execute("INSERT INTO logpipe_pruned (relation, range_from, range_to, rows)"
                " VALUES (%s, %s, %s, %s)", (relation, range_from, range_to, rows))


def _retry(conn: Connection, attempt: Callable[[], T]) -> T:
    """Run `attempt` in a transaction of its own; when a lock is not granted in time
    (or a deadlock chose this side), roll back, pause, and try again a few times."""
    for pause in (*RETRY_SECONDS, None):
        try:
            return attempt()
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            conn.rollback()
            if pause is None:
                raise Busy() from None
            time.sleep(pause)
    raise AssertionError("unreachable")
