"""The writer and the report rollups: it loads when they cannot be folded, and folds
when caught up or every FOLD_INTERVAL (logpipe.ingest.folding.FoldPolicy driven directly).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2
from conftest import (
    COMMAND_TIMEOUT,
    Database,
    combined_line,
    execute,
    query,
    scalar,
    start_logger,
    wait_for,
)
from reports_support import PENDING, ROLLUP, insert

from logpipe.commands.common import segment_parsers
from logpipe.ingest.folding import FOLD_INTERVAL, LAST_FOLD_ROWS, FoldPolicy
from logpipe.ingest.writer import Writer, WriterSettings


def test_writer_loads_when_the_rollups_cannot_be_folded(
        database: Database, tmp_path: Path) -> None:
    """A schema whose rollups cannot be folded (here: the function dropped) costs the
    reports, never the rows: the writer says so once and goes on loading."""
    execute(database.dsn, "DROP FUNCTION logpipe_rollup_fold(bigint)")
    proc = start_logger(database.dsn, tmp_path / "spool", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    for i in range(3):
        proc.stdin.write(b"".join(
            f'192.0.2.1 - - [10/Oct/2024:10:00:0{i} +0000] "GET /p{n} HTTP/1.1" 200 1 "-" "b"\n'
            .encode() for n in range(100)))
        proc.stdin.flush()
        wait_for(lambda i=i: database.rows() == 100 * (i + 1), timeout=30)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    err = proc.stderr.read().decode()
    assert err.count("cannot update the report rollups") == 1, err
    assert "logpipe initdb" in err
    assert database.rows() == 300
    assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_pending_quarters") == 300
    database.initdb()  # restores the function; the counts were kept
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert query(database.dsn, "SELECT sum(hits)::int FROM logpipe_pages") == [(300,)]


def test_writer_folds_when_caught_up_or_every_fold_interval(database: Database) -> None:
    """The writer's fold policy against a real database: nothing to fold, nothing done;
    while busy, a fold at most every FOLD_INTERVAL; once caught up, a fold at once."""
    insert(database.dsn, [("2024-10-10 10:00:00+00", "v", "/a", 200, 10, None, "ua", False)])
    now = [1000.0]
    policy = FoldPolicy(clock=lambda: now[0])
    conn = psycopg2.connect(database.dsn)
    try:
        policy.maybe_fold(conn, caught_up=True)  # nothing loaded by this writer yet
        assert scalar(database.dsn, PENDING) == 2
        policy.rows_committed(1)
        now[0] += FOLD_INTERVAL / 2
        policy.maybe_fold(conn, caught_up=False)  # busy, and it folded not long ago
        assert scalar(database.dsn, PENDING) == 2
        now[0] += FOLD_INTERVAL / 2
        policy.maybe_fold(conn, caught_up=False)  # busy for FOLD_INTERVAL: fold anyway
        assert scalar(database.dsn, PENDING) == 0
        assert not policy.unfolded
        insert(database.dsn, [("2024-10-10 11:00:00+00", "v", "/a", 200, 5, None, "ua", False)])
        policy.rows_committed(1)
        policy.maybe_fold(conn, caught_up=True)  # caught up: at once
        assert scalar(database.dsn, PENDING) == 0
        assert query(database.dsn, ROLLUP) == [("2024-10-10", "v", "/a", 2, 0, 15, 0)]
    finally:
        conn.close()


def test_the_last_fold_is_left_to_the_next_writer_after_a_burst(database: Database) -> None:
    """On the way out the writer folds what it loaded since its last fold, unless that
    is more than LAST_FOLD_ROWS rows (a fold that may take seconds, or be cut at
    LAST_FOLD_MS and thrown away): then the counts stay pending, still counted by the
    report views, for the next writer or report to fold."""
    insert(database.dsn, [("2024-10-10 10:00:00+00", "v", "/a", 200, 10, None, "ua", False),
                          ("2024-10-10 10:00:01+00", "v", "/a", 200, 5, None, "ua", False)])
    conn = psycopg2.connect(database.dsn)
    try:
        burst = FoldPolicy()
        burst.rows_committed(LAST_FOLD_ROWS - 1)
        burst.rows_committed(2)  # one more than LAST_FOLD_ROWS in all
        burst.last_fold(conn)
        assert scalar(database.dsn, PENDING) == 4  # a page and a quarter, for each row
        assert query(database.dsn, ROLLUP) == []
        assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_quarters") == 2
        steady = FoldPolicy()
        steady.rows_committed(LAST_FOLD_ROWS)
        steady.last_fold(conn)
        assert scalar(database.dsn, PENDING) == 0
        assert query(database.dsn, ROLLUP) == [("2024-10-10", "v", "/a", 2, 0, 15, 0)]
    finally:
        conn.close()


def test_a_fold_starts_the_count_of_rows_to_fold_again(database: Database) -> None:
    """Rows folded under load do not count towards LAST_FOLD_ROWS: a long-running writer
    that folds every FOLD_INTERVAL still folds on its way out."""
    insert(database.dsn, [("2024-10-10 10:00:00+00", "v", "/a", 200, 10, None, "ua", False)])
    now = [1000.0]
    policy = FoldPolicy(clock=lambda: now[0])
    conn = psycopg2.connect(database.dsn)
    try:
        policy.rows_committed(LAST_FOLD_ROWS * 3)
        policy.maybe_fold(conn, caught_up=True)
        assert scalar(database.dsn, PENDING) == 0
        insert(database.dsn, [("2024-10-10 10:00:01+00", "v", "/a", 200, 5, None, "ua", False)])
        policy.rows_committed(1)
        policy.last_fold(conn)
        assert scalar(database.dsn, PENDING) == 0
        assert query(database.dsn, ROLLUP) == [("2024-10-10", "v", "/a", 2, 0, 15, 0)]
    finally:
        conn.close()


def test_a_logger_stopping_after_a_burst_leaves_its_fold_to_the_next(
        database: Database, tmp_path: Path) -> None:
    """A file of more than LAST_FOLD_ROWS lines ends before the writer has loaded it:
    the logger exits after its last commit without folding, the counts pending (the
    views count them), and the next fold moves them into the rollups."""
    lines = LAST_FOLD_ROWS + 10_000
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(
        f'192.0.2.1 - - [10/Oct/2024:10:{n % 60:02d}:00 +0000] "GET /p{n % 100} HTTP/1.1" '
        f'200 1 "-" "b"\n'.encode() for n in range(lines)))
    with open(log, "rb") as stdin:
        proc = start_logger(database.dsn, tmp_path / "spool", stdin=stdin)
        assert proc.wait(timeout=COMMAND_TIMEOUT) == 0
    assert database.rows() == lines
    assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_pending_quarters") == lines
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_rollup_quarter") == 0
    assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_quarters") == lines
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert query(database.dsn, "SELECT sum(hits)::int FROM logpipe_pages") == [(lines,)]


def test_the_logger_exits_without_waiting_for_a_slow_fold(
        database: Database, tmp_path: Path) -> None:
    """A fold on the way out is given about a second (folding.LAST_FOLD_MS): here the
    rollups are locked, as by a long fold or an operator's transaction, and the logger
    still exits at once after its last commit; the counts wait, pending, for a later
    fold."""
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(
        f'192.0.2.1 - - [10/Oct/2024:10:00:00 +0000] "GET /p{n} HTTP/1.1" 200 1 "-" "b"\n'
        .encode() for n in range(500)))
    holder = psycopg2.connect(database.dsn)
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK logpipe_pages IN ACCESS EXCLUSIVE MODE")
        with open(log, "rb") as stdin:
            proc = start_logger(database.dsn, tmp_path / "spool", "--stop-timeout", "30",
                                stdin=stdin)
            assert proc.wait(timeout=10) == 0  # before: waited for the lock
        assert proc.stderr is not None
        assert b"did not finish" not in proc.stderr.read()
        assert database.rows() == 500
        assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_pending_quarters") == 500
    finally:
        holder.close()
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert query(database.dsn, "SELECT sum(hits)::int FROM logpipe_pages") == [(500,)]


def test_writer_loads_while_a_change_to_the_asset_patterns_holds_the_fold_back(
        database: Database, tmp_path: Path) -> None:
    """A transaction left open after changing logpipe_asset_patterns makes folds wait
    (the two take turns): the writer's fold gives up after a second and the writer goes
    on loading, silently; once the change commits, a later fold counts everything."""
    held = psycopg2.connect(database.dsn)
    try:
        with held.cursor() as cur:
            cur.execute("INSERT INTO logpipe_asset_patterns VALUES ('%.pdf', 'documents')")
        proc = start_logger(database.dsn, tmp_path / "spool", stdin=subprocess.PIPE)
        assert proc.stdin is not None and proc.stderr is not None
        for i in range(3):
            proc.stdin.write(b"".join(
                f'192.0.2.1 - - [10/Oct/2024:10:00:0{i} +0000] "GET /p{n} HTTP/1.1" 200 1 '
                f'"-" "b"\n'.encode() for n in range(100)))
            proc.stdin.flush()
            wait_for(lambda i=i: database.rows() == 100 * (i + 1), timeout=30)
        assert scalar(database.dsn, "SELECT coalesce(sum(hits), 0) FROM logpipe_pages") == 0
        held.commit()
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read().decode()
        assert "cannot update the report rollups" not in err, err
    finally:
        held.close()
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert query(database.dsn, "SELECT sum(hits)::int FROM logpipe_pages") == [(300,)]


def test_a_writer_told_to_stop_while_it_loads_leaves_the_fold_to_its_last(
        database: Database, tmp_path: Path) -> None:
    """A stop (the reader's lifeline closed) that comes while a pass loads a backlog: the
    pass does not start a fold that has fallen due (it has no time bound, and a fold
    after a burst can take seconds, which Apache's restart would wait for); drain()'s
    last fold, cut at a second, folds what it can."""
    spool = tmp_path / "spool"
    database.block()  # a backlog: lines a logger could not load, left in the spool
    proc = start_logger(database.dsn, spool, "--stop-timeout", "1")
    assert proc.stdin is not None
    proc.stdin.write(b"".join(combined_line(i) for i in range(300)))
    proc.stdin.close()
    assert proc.wait(timeout=COMMAND_TIMEOUT) == 0
    database.unblock()
    writer = Writer(WriterSettings(spool_dir=spool, dsn=database.dsn, flush_interval=0.1,
                                   batch_lines=100), segment_parsers(None))
    read_end, write_end = os.pipe()
    os.close(write_end)  # the reader is gone; the writer has not looked yet
    writer._lifeline = read_end
    writer.folds.folded_at -= FOLD_INTERVAL  # a fold is due
    try:
        assert writer._pass(include_live=True) is True
        assert writer.stop_requested
        assert database.rows() == 300
        assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_pending_quarters") == 300
        assert writer.drain() == 0  # its last fold
        assert scalar(database.dsn, "SELECT count(*) FROM logpipe_pending_quarters") == 0
        assert query(database.dsn, "SELECT sum(hits)::int FROM logpipe_pages") == [(300,)]
    finally:
        writer.close()
        os.close(read_end)
