"""The writer COPYs live lines straight into the partition of access_log that covers now
(src/logpipe/ingest/live_partition.py), which counts them for the rollups with a trigger
of its own: every row counted once, whichever table took it; lines of other times go
through access_log; a batch the partition refuses is loaded whole into access_log."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from conftest import COMMAND_TIMEOUT, Database, execute, query, scalar, start_logger
from partition_support import UTC, line_at
from reports_support import ROLLUP, ROLLUP_FROM_ACCESS_LOG, assert_quarters_match

from logpipe.commands.common import segment_parsers
from logpipe.ingest.live_partition import (
    RETRY_SECONDS,
    LivePartition,
    LiveTarget,
    first_and_last_times,
)
from logpipe.ingest.writer import Writer, WriterSettings
from logpipe.parse.parser import compile_format
from logpipe.store.copy import load_lines

NOW = dt.datetime.now(UTC)
# live lines are of the last minutes, all in this month's partition even just after midnight
SINCE = max(NOW - dt.timedelta(minutes=10), NOW.replace(day=1, hour=0, minute=0, second=0))
CURRENT = ("SELECT partition::text FROM logpipe_partitions()"
           " WHERE range_from <= now() AND range_to > now()")


def spooled(database: Database, spool: Path, lines: list[bytes]) -> None:
    """The lines left in a spool by a logger that could not reach the database."""
    database.block()
    proc = start_logger(database.dsn, spool, "--stop-timeout", "1")
    assert proc.stdin is not None
    proc.stdin.write(b"".join(lines))
    proc.stdin.close()
    assert proc.wait(timeout=COMMAND_TIMEOUT) == 0
    database.unblock()


@pytest.fixture
def writer(database: Database, tmp_path: Path) -> Iterator[Writer]:
    w = Writer(WriterSettings(spool_dir=tmp_path / "spool", dsn=database.dsn,
                              flush_interval=0.1, batch_lines=100), segment_parsers(None))
    yield w
    w.close()


def drained(writer: Writer) -> Writer:
    read_end, write_end = os.pipe()
    os.close(write_end)
    writer._lifeline = read_end
    try:
        assert writer.drain() == 0
    finally:
        os.close(read_end)
    return writer


def assert_counted_once(dsn: str) -> None:
    execute(dsn, "SELECT logpipe_rollup_fold()")
    assert query(dsn, ROLLUP) == query(dsn, ROLLUP_FROM_ACCESS_LOG)
    assert_quarters_match(dsn)
    assert scalar(dsn, "SELECT sum(hits) FROM logpipe_rollup_quarter") == \
        scalar(dsn, "SELECT count(*) FROM access_log")


def live_lines(count: int, path: str = "/live") -> list[bytes]:
    return [line_at(SINCE + (NOW - SINCE) * i / count, f"{path}/{i % 7}")
            for i in range(count)]


def test_live_lines_go_straight_into_their_partition_and_are_counted_once(
        database: Database, writer: Writer) -> None:
    spooled(database, writer.settings.spool_dir, live_lines(350))
    drained(writer)
    assert writer.totals.rows == 350
    assert writer.totals.into_partition == 350  # 4 batches, none through access_log
    current = scalar(database.dsn, CURRENT)
    assert query(database.dsn, "SELECT tableoid::regclass::text, count(*) FROM access_log"
                               " GROUP BY 1") == [(current, 350)]
    assert_counted_once(database.dsn)


def test_old_lines_go_through_access_log(database: Database, writer: Writer) -> None:
    """A backlog of days ago, a backfill: first or last line outside the partition."""
    old = [line_at(dt.datetime(2024, 5, 1, tzinfo=UTC) + dt.timedelta(minutes=i), "/old")
           for i in range(150)]
    spooled(database, writer.settings.spool_dir, old + live_lines(40))
    drained(writer)
    assert writer.totals.rows == 190
    # batches of 100: the first old, the second old then live; nothing refused
    assert writer.totals.into_partition == 0
    assert writer.live.table(compile_format("combined"), b"".join(live_lines(3))) \
        is not None, "the partition is still the one to use"
    assert_counted_once(database.dsn)


def test_a_batch_the_partition_refuses_loads_whole_through_access_log(
        database: Database, writer: Writer) -> None:
    """First and last lines now, one in between from last year: the partition refuses
    the batch, which loads into access_log from the rows already parsed; the partition
    is left alone for a while; nothing is lost, rejected or counted twice."""
    lines = live_lines(60)
    lines[30] = line_at(NOW - dt.timedelta(days=400), "/stray")
    spooled(database, writer.settings.spool_dir, lines + live_lines(100, "/after"))
    drained(writer)
    assert writer.totals.rows == 160
    assert writer.totals.rejects == 0
    assert writer.totals.into_partition == 0  # the next batch too, within the minute
    assert writer.live.table(compile_format("combined"), b"".join(live_lines(3))) is None
    assert scalar(database.dsn, "SELECT count(*) FROM access_log WHERE path = '/stray'") == 1
    assert_counted_once(database.dsn)


def test_a_partition_that_does_not_count_is_never_used(
        database: Database, writer: Writer) -> None:
    """A partition without the rollup trigger (attached by hand, say) or with it
    disabled: its rows would be missed by the rollups, so they go through access_log."""
    current = scalar(database.dsn, CURRENT)
    execute(database.dsn, f"ALTER TABLE {current} DISABLE TRIGGER logpipe_rollup_insert")
    spooled(database, writer.settings.spool_dir, live_lines(120))
    drained(writer)
    assert (writer.totals.rows, writer.totals.into_partition) == (120, 0)
    assert_counted_once(database.dsn)


def test_an_operators_statement_trigger_on_access_log_keeps_lines_going_through_it(
        database: Database, writer: Writer) -> None:
    """Such a trigger fires only for a statement that names access_log."""
    execute(database.dsn, """
        CREATE TABLE inserts_seen (n bigint);
        CREATE FUNCTION count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO inserts_seen SELECT count(*) FROM new_rows; RETURN NULL; END $$;
        CREATE TRIGGER operators_own AFTER INSERT ON access_log REFERENCING NEW TABLE AS
            new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_inserts();""")
    spooled(database, writer.settings.spool_dir, live_lines(120))
    drained(writer)
    assert (writer.totals.rows, writer.totals.into_partition) == (120, 0)
    assert scalar(database.dsn, "SELECT sum(n) FROM inserts_seen") == 120
    assert_counted_once(database.dsn)


def test_a_partition_that_fails_is_left_for_access_log(
        database: Database, writer: Writer) -> None:
    """The partition dropped, or the right to it revoked, while the writer holds it: the
    batch fails once (said, kept in the spool), then loads through access_log."""
    spooled(database, writer.settings.spool_dir, live_lines(50))
    month = LivePartition('"public"."access_log_gone"', SINCE.timestamp() - 1,
                          NOW.timestamp() + 3600)
    writer.live.partition, writer.live.look_after = month, float("inf")
    assert writer._pass(include_live=False) is None  # relation does not exist
    assert database.rows() == 0
    assert writer._pass(include_live=False) is True
    assert (writer.totals.rows, writer.totals.into_partition) == (50, 0)
    assert_counted_once(database.dsn)


def test_a_partition_refusal_reuses_the_parsed_rows(database: Database) -> None:
    """load_lines(into=...): the rows sent before the refusal are sent again as they
    were, not parsed a second time."""

    class Counting:
        def __init__(self) -> None:
            self.parser = compile_format("combined", source="t")
            self.lines = 0

        def parse(self, data: bytes):  # type: ignore[no-untyped-def]
            self.lines += data.count(b"\n")
            return self.parser.parse(data)

    lines = live_lines(3000)
    lines[-1] = line_at(NOW - dt.timedelta(days=400), "/stray")
    data = b"".join(lines)
    parser = Counting()
    conn = psycopg2.connect(database.dsn)
    try:
        with conn.cursor() as cur:
            loaded = load_lines(cur, parser, data, "t", into=scalar(database.dsn, CURRENT))
        conn.commit()
    finally:
        conn.close()
    assert loaded.partition_refused and not loaded.into_partition
    assert (loaded.rows, loaded.rejects) == (3000, 0)
    assert parser.lines == 3000  # each line parsed once
    assert database.rows() == 3000
    assert_counted_once(database.dsn)


def test_first_and_last_times_of_a_chunk() -> None:
    parser = compile_format("combined")
    first, last = NOW - dt.timedelta(seconds=9), NOW
    chunk = line_at(first) + line_at(NOW - dt.timedelta(seconds=5)) + line_at(last)
    assert first_and_last_times(parser, chunk) == (int(first.timestamp()),
                                                   int(last.timestamp()))
    assert first_and_last_times(parser, chunk + b"junk\n") is None  # a reject last
    assert first_and_last_times(parser, b"") is None


def test_the_target_is_looked_up_again_once_its_period_is_over(database: Database) -> None:
    wall, clock = [NOW.timestamp()], [0.0]
    target = LiveTarget(wall=lambda: wall[0], clock=lambda: clock[0])
    parser, chunk = compile_format("combined"), line_at(NOW)
    conn = psycopg2.connect(database.dsn)
    try:
        target.refresh(conn)
        assert target.table(parser, chunk) == f'"public"."{scalar(database.dsn, CURRENT)}"'
        assert target.partition is not None
        wall[0] = target.partition.ends + 1  # the period is over
        assert target.table(parser, chunk) is None
        target.refresh(conn)
        assert target.partition is None  # looked up a moment ago: not again yet
        wall[0], clock[0] = NOW.timestamp(), RETRY_SECONDS
        target.refresh(conn)
        assert target.table(parser, chunk) == f'"public"."{scalar(database.dsn, CURRENT)}"'
    finally:
        conn.close()
