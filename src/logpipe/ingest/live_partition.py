"""Which table the writer COPYs a batch into: the partition of access_log that covers the
present, when it can, else access_log itself.

A live server's lines are seconds old, so they all belong to one partition. COPY into
that partition skips routing each row through access_log, and PostgreSQL then inserts
many rows at once, which it does not into a partitioned table whose rollup trigger keeps
a transition table: the server's CPU per row fell from 6.75 to 5.55 us
(bench/ingest_costs.py, 2026-12-04). The partition counts the rows for the rollups with
a trigger of its own (logpipe_partition_ready, sql/005_partitions.sql).

A batch goes to the partition when its first and last lines fall in it (a backlog of
hours of the same month does too); a backlog from the month before, a backfill, or a
batch across a month's end goes to access_log. A batch with a line
in between outside the partition (a request logged hours after it began) is refused as
a whole by the partition and loaded again into access_log (store/copy.py); the partition
is then not tried for a minute.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Callable

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from logpipe.store.database import connection_lost

# How long after a refused batch, or a look that found no partition, before looking again
RETRY_SECONDS = 60.0

# The partition covering now, if it counts its rows (its own rollup trigger, enabled)
# and this role may insert into it; its range in seconds since the epoch. None while
# access_log has a statement-level INSERT trigger of someone else's (an operator's):
# it fires only for a statement that names access_log. (Row-level ones are on every
# partition too.) tgtype: 1 a row trigger, 4 one on INSERT.
LIVE_PARTITION_SQL = """
SELECT n.nspname, c.relname, extract(epoch FROM p.range_from), extract(epoch FROM p.range_to)
  FROM logpipe_partitions() p
  JOIN pg_class c ON c.oid = p.partition
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT p.is_default AND p.range_from <= now() AND p.range_to > now()
   AND EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = p.partition
                  AND t.tgname = 'logpipe_rollup_insert' AND t.tgenabled <> 'D')
   AND has_table_privilege(p.partition, 'INSERT')
   AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = 'access_log'::regclass
                      AND NOT t.tgisinternal AND t.tgtype & 1 = 0 AND t.tgtype & 4 <> 0
                      AND t.tgname <> 'access_log_rollup_insert')
"""


@dataclass(frozen=True)
class LivePartition:
    table: str  # schema-qualified, quoted: ready for COPY
    starts: float  # seconds since the epoch
    ends: float


def find_live_partition(conn: psycopg2.extensions.connection) -> LivePartition | None:
    """The partition to COPY live lines into, or None (a schema without it, no right to
    it, none made yet). In a transaction of its own: a failure here changes nothing."""
    try:
        with conn.cursor() as cur:
            cur.execute(LIVE_PARTITION_SQL)
            found = cur.fetchone()
        conn.commit()
    except psycopg2.Error as exc:  # e.g. logpipe_partitions() missing: a schema before them
        if connection_lost(conn, exc):
            raise
        conn.rollback()
        return None
    if found is None:
        return None
    schema, name, starts, ends = found
    return LivePartition(sql.Identifier(schema, name).as_string(conn), float(starts),
                         float(ends))


def first_and_last_times(parser: Any, chunk: bytes) -> tuple[float, float] | None:
    """The times of a chunk's first and last lines (seconds since the epoch); None if
    either is not a row."""
    last_start = chunk.rfind(b"\n", 0, len(chunk) - 1) + 1
    times = []
    for line in (chunk[:chunk.find(b"\n") + 1 or len(chunk)], chunk[last_start:]):
        batch = parser.parse(line)
        if not batch.row_count:
            return None
        try:  # COPY text: the time column first, ISO 8601 with its offset
            times.append(dt.datetime.fromisoformat(batch.copy_data.split("\t", 1)[0])
                         .timestamp())
        except ValueError:
            return None
    return times[0], times[1]


class LiveTarget:
    """The writer's choice of COPY target, looked up at most every RETRY_SECONDS."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.clock = clock
        self.partition: LivePartition | None = None
        self.look_after = 0.0  # clock(): no look before this

    def refresh(self, conn: psycopg2.extensions.connection) -> None:
        """Look for the partition when the one known no longer covers now, if due."""
        now = self.wall()
        if self.partition is not None and self.partition.starts <= now < self.partition.ends:
            return
        self.partition = None
        if self.clock() < self.look_after:
            return
        self.look_after = self.clock() + RETRY_SECONDS
        self.partition = find_live_partition(conn)

    def table(self, parser: Any, chunk: bytes) -> str | None:
        """The partition to COPY `chunk` into, or None for access_log. Uses `parser`:
        only while no read-ahead parses with it."""
        part = self.partition
        if part is None or not part.starts <= self.wall() < part.ends:
            return None
        times = first_and_last_times(parser, chunk)
        if times is None or not all(part.starts <= t < part.ends for t in times):
            return None
        return part.table

    def refused(self) -> None:
        """A batch had lines outside the partition: access_log for a while."""
        self.partition = None
        self.look_after = self.clock() + RETRY_SECONDS
