"""access_log's partitions: made ahead by initdb and by the writer, made for old dates a
backfill loads, absurd times kept in the default partition without stopping a load, and
made by a writer role that does not own access_log."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import psycopg2
import pytest
from conftest import Database, execute, query, scalar, start_logger, wait_for
from partition_support import (
    UTC,
    line_at,
    partitions,
    query_committed,
    rows_per_partition,
    run_ok,
    temporary_role,
    write_log,
)


def covering(dsn: str, moment: str) -> list[str]:
    """The partitions (not the default one) whose range holds the SQL time `moment`."""
    return [r[0] for r in query(
        dsn, "SELECT partition::text FROM logpipe_partitions() WHERE NOT is_default"
             f" AND coalesce(range_from, '-infinity') <= {moment}"
             f" AND coalesce(range_to, 'infinity') > {moment}")]


def test_initdb_makes_monthly_partitions_ahead_and_a_default_one(database: Database) -> None:
    month = dt.datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    name = f"access_log_{month:%Y%m%d}_"
    assert [p.startswith(name) for p in covering(database.dsn, "now()")] == [True]
    assert len(covering(database.dsn, "now() + interval '1 month'")) == 1
    assert scalar(database.dsn, "SELECT relkind FROM pg_class WHERE relname = 'access_log'") == "p"
    assert query(database.dsn, "SELECT partition::text FROM logpipe_partitions()"
                               " WHERE is_default") == [("access_log_default",)]
    # a partition is a month of UTC time
    lo, hi = partitions(database.dsn)[covering(database.dsn, "now()")[0]]
    assert (lo, hi) == (month, (month + dt.timedelta(days=32)).replace(day=1))


def test_writer_makes_missing_partitions_and_moves_its_rows_into_them(
        database: Database, tmp_path: Path) -> None:
    """Partitions gone (nobody ran initdb for months), old rows waiting in the default
    partition: the writer's first pass makes the partitions before it loads, so its live
    rows go straight into theirs, and moves the old rows into partitions of their own."""
    for name in partitions(database.dsn):
        execute(database.dsn, f"DROP TABLE {name}")
    execute(database.dsn, "INSERT INTO access_log (time, path)"
                          " VALUES ('2019-03-05 10:00+00', '/waiting')")
    proc = start_logger(database.dsn, tmp_path / "spool")
    assert proc.stdin is not None and proc.stderr is not None
    now = dt.datetime.now(UTC)
    proc.stdin.write(b"".join(line_at(now, f"/live/{i}") for i in range(50)))
    proc.stdin.flush()
    current = wait_for(lambda: covering(database.dsn, "now()"), timeout=30,
                       what="the writer to make this month's partition")
    assert covering(database.dsn, "now() + interval '1 month'")
    wait_for(lambda: rows_per_partition(database.dsn) == {
        current[0]: 50, "access_log_20190301_20190401": 1}, timeout=30,
        what=lambda: f"rows in {current}: {rows_per_partition(database.dsn)}")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert b"partitions" not in proc.stderr.read()


def test_a_writer_on_its_way_out_leaves_old_rows_to_the_next_one(
        database: Database, tmp_path: Path) -> None:
    """Old lines piped to a logger that is told to stop land in the default partition and
    stay there while it exits (moving a backfill can take seconds, and Apache's restart
    would wait); the next logger's first pass moves them, before it loads anything."""
    march = dt.datetime(2019, 3, 1, tzinfo=UTC)
    old = b"".join(line_at(march + dt.timedelta(hours=i), f"/old/{i}") for i in range(30))
    proc = start_logger(database.dsn, tmp_path / "spool")
    assert proc.stdin is not None
    proc.stdin.write(old)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert database.rows() == 30
    assert rows_per_partition(database.dsn) == {"access_log_default": 30}

    proc = start_logger(database.dsn, tmp_path / "spool")
    assert proc.stdin is not None
    wait_for(lambda: rows_per_partition(database.dsn) == {"access_log_20190301_20190401": 30},
             timeout=30, what=lambda: f"rows moved: {rows_per_partition(database.dsn)}")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    # moving rows between partitions fires no trigger: the rollups counted them once
    assert scalar(database.dsn, "SELECT sum(hits)::int FROM logpipe_quarters") == 30


def test_absurd_times_load_into_the_default_partition(database: Database,
                                                      tmp_path: Path) -> None:
    """A clock in 1970 or 2100 stops nothing: every line is a row."""
    proc = start_logger(database.dsn, tmp_path / "spool")
    assert proc.stdin is not None
    now = dt.datetime.now(UTC)
    lines = [line_at(now, "/a"), line_at(dt.datetime(1970, 1, 1, tzinfo=UTC), "/epoch"),
             line_at(now, "/b"), line_at(dt.datetime(2100, 6, 1, tzinfo=UTC), "/future"),
             line_at(now, "/c")]
    proc.stdin.write(b"".join(lines))
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert database.rows() == 5 and database.rejects() == 0
    assert sorted(query(database.dsn, "SELECT path FROM access_log_default")) == [
        ("/epoch",), ("/future",)]
    # the writer's partition check leaves them there: no sane period to move them to
    execute(database.dsn, "SELECT * FROM logpipe_prepare_partitions()")
    assert rows_per_partition(database.dsn)["access_log_default"] == 2


def test_backfill_of_old_dates_ends_in_partitions_of_its_own(database: Database,
                                                             tmp_path: Path) -> None:
    march = dt.datetime(2019, 3, 1, tzinfo=UTC)
    log = write_log(tmp_path / "access.log.2019", [
        line_at(march + dt.timedelta(hours=7 * i), f"/old/{i}") for i in range(200)])
    result = run_ok("load", "--dsn", database.dsn, str(log))
    assert "partition" not in result.stderr
    assert rows_per_partition(database.dsn) == {
        "access_log_20190301_20190401": 107, "access_log_20190401_20190501": 93}
    assert scalar(database.dsn, "SELECT count(*) FROM access_log_default") == 0
    # moving rows between partitions fires no trigger: the rollups counted them once
    assert scalar(database.dsn, "SELECT sum(hits)::int FROM logpipe_quarters") == 200


def test_daily_partitions_and_a_change_of_granularity(empty_database: Database,
                                                      tmp_path: Path) -> None:
    dsn = empty_database.dsn
    result = run_ok("initdb", "--dsn", dsn, "--partition", "day")
    assert "partitioned by day" in result.stderr
    today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert sorted(partitions(dsn).values()) == [
        (today + dt.timedelta(days=d), today + dt.timedelta(days=d + 1)) for d in range(8)]
    log = write_log(tmp_path / "a.log", [line_at(dt.datetime(2019, 3, 5, 13, tzinfo=UTC))])
    run_ok("load", "--dsn", dsn, str(log))
    assert rows_per_partition(dsn) == {"access_log_20190305_20190306": 1}
    # re-run without --partition: the database's choice stays; with it, it changes, and
    # a new period next to existing partitions fills the gaps around them
    assert "partitioned by day" in run_ok("initdb", "--dsn", dsn).stderr
    assert "partitioned by month" in run_ok("initdb", "--dsn", dsn, "--partition",
                                            "month").stderr
    log = write_log(tmp_path / "b.log", [line_at(dt.datetime(2019, 3, 20, tzinfo=UTC))])
    run_ok("load", "--dsn", dsn, str(log))
    assert rows_per_partition(dsn) == {"access_log_20190305_20190306": 1,
                                       "access_log_20190306_20190401": 1}
    march = sorted(r for r in partitions(dsn).values() if r[0].year == 2019)
    assert [(lo.day, hi.day) for lo, hi in march] == [(1, 5), (5, 6), (6, 1)]  # the month, whole


def test_a_writer_role_that_does_not_own_access_log_makes_partitions(
        database: Database) -> None:
    """logpipe_prepare_partitions() is SECURITY DEFINER: a role that may only insert (and
    may create nothing) gets partitions made for it; a role not granted EXECUTE cannot."""
    with temporary_role(database.dsn) as writer, temporary_role(database.dsn) as other:
        execute(database.dsn, f"""
            GRANT INSERT ON access_log, logpipe_pending_pages, logpipe_pending_quarters,
                  logpipe_pending_referers TO {writer};
            GRANT SELECT ON logpipe_hot_paths TO {writer};
            GRANT EXECUTE ON FUNCTION logpipe_prepare_partitions() TO {writer}""")
        as_writer = f"{database.dsn} user={writer}"
        execute(as_writer, "INSERT INTO access_log (time, path) VALUES"
                           " ('2019-03-05 10:00+00', '/backfilled')")
        assert rows_per_partition(database.dsn) == {"access_log_default": 1}
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            execute(as_writer, "CREATE TABLE access_log_mine (LIKE access_log)")
        assert query_committed(as_writer, "SELECT partition, moved_rows FROM"
                                          " logpipe_prepare_partitions()") == [
            ("access_log_20190301_20190401", 1)]
        assert rows_per_partition(database.dsn) == {"access_log_20190301_20190401": 1}
        owner = scalar(database.dsn, "SELECT tableowner FROM pg_tables"
                                     " WHERE tablename = 'access_log_20190301_20190401'")
        assert owner == scalar(database.dsn, "SELECT current_user")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            execute(f"{database.dsn} user={other}",
                    "SELECT * FROM logpipe_prepare_partitions()")
    # it runs with its owner's rights on its own search_path only
    assert query(database.dsn, "SELECT prosecdef, proconfig @> ARRAY["
                               "'search_path=pg_catalog, public, pg_temp'] FROM pg_proc"
                               " WHERE proname = 'logpipe_prepare_partitions'") == [
        (True, True)]


def test_writer_says_once_when_it_cannot_make_partitions(database: Database,
                                                         tmp_path: Path) -> None:
    """Without the function (a schema from before partitions) rows still load."""
    execute(database.dsn, "DROP FUNCTION logpipe_prepare_partitions()")
    proc = start_logger(database.dsn, tmp_path / "spool", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(line_at(dt.datetime.now(UTC)))
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    err = proc.stderr.read().decode()
    assert err.count("cannot create partitions of access_log") == 1, err
    assert "logpipe initdb" in err
    assert database.rows() == 1
