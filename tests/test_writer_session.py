"""The writer's database session, seen from inside its own transactions in real runs:
the commit before a segment file is deleted is synchronous whatever the database says,
the session carries a statement timeout and the server's end of the link keepalives,
and a statement the server does not finish is said once and retried.

A deferred trigger on logpipe_progress records the settings in force in each of the
writer's transactions, and the statement it ran in: COMMIT for the transaction that
finishes a segment whose lines were all loaded before it was closed (it copies no
rows, so nothing makes the trigger fire earlier), after the writer's last SET LOCAL.
"""

from __future__ import annotations

from pathlib import Path

import psycopg2
from conftest import Database, combined_line, execute, query, start_logger, wait_for
from pipe_support import StderrReader, assert_exactly_once, feed, finish

from logpipe.ingest import spool

SETTINGS = ("synchronous_commit", "statement_timeout", "tcp_keepalives_idle",
            "tcp_keepalives_interval", "tcp_user_timeout")
RECORD_SETTINGS_SQL = f"""
CREATE TABLE commit_settings (
    finished boolean, statement text, {", ".join(f"{s} text" for s in SETTINGS)});
CREATE FUNCTION record_commit_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_settings VALUES (NEW.finished, current_query(),
        {", ".join(f"current_setting('{s}')" for s in SETTINGS)});
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER record_commit_settings AFTER UPDATE ON logpipe_progress
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_commit_settings();
"""


def run_logger(dsn: str, database: Database, spool_dir: Path, lines: list[bytes]) -> None:
    """A logger that loads every line, then reaches end of file: its writer finishes
    the segment, now closed, in a transaction of its own."""
    expected = database.rows() + len(lines)
    proc = start_logger(dsn, spool_dir)
    feed(proc, lines)
    wait_for(lambda: database.rows() == expected, what="the lines loaded before EOF")
    finish(proc)
    assert spool.list_segments(spool_dir) == [], "the finished segment is deleted"


def commit_settings(database: Database, finished: bool) -> list[dict[str, str]]:
    columns = ("statement", *SETTINGS)
    rows = query(database.dsn, f"SELECT {', '.join(columns)} FROM commit_settings "
                 "WHERE finished = %s", (finished,))
    return [dict(zip(columns, row)) for row in rows]


def finishing_commits(database: Database) -> list[dict[str, str]]:
    """The settings at the COMMIT of the transactions that finished a segment."""
    finishing = commit_settings(database, finished=True)
    assert finishing, "no segment was finished"
    assert {c["statement"] for c in finishing} == {"COMMIT"}, finishing
    return finishing


def test_the_commit_before_a_segment_is_deleted_is_synchronous_even_where_the_database_says_off(
    database: Database, tmp_path: Path
) -> None:
    execute(database.dsn, RECORD_SETTINGS_SQL)
    execute(database.dsn, f"ALTER DATABASE {database.name} SET synchronous_commit = off")
    lines = [combined_line(i) for i in range(3_000)]
    run_logger(database.dsn, database, tmp_path / "off", lines)
    assert {c["synchronous_commit"] for c in finishing_commits(database)} == {"on"}
    # The batches before it still commit without waiting for the disk.
    batches = commit_settings(database, finished=False)
    assert batches and {c["synchronous_commit"] for c in batches} == {"off"}, batches

    # A level stronger than on, set for the database, is kept for that commit.
    execute(database.dsn, "TRUNCATE commit_settings")
    execute(database.dsn, f"ALTER DATABASE {database.name} SET synchronous_commit = remote_apply")
    more = [combined_line(i, "/more") for i in range(1_000)]
    run_logger(database.dsn, database, tmp_path / "remote_apply", more)
    assert {c["synchronous_commit"] for c in finishing_commits(database)} == {"remote_apply"}


def test_the_session_has_a_statement_timeout_and_server_side_keepalives(
    database: Database, tmp_path: Path
) -> None:
    execute(database.dsn, RECORD_SETTINGS_SQL)
    lines = [combined_line(i) for i in range(1_000)]
    # Over TCP: on a Unix socket the server has no keepalives to set.
    run_logger(f"host=127.0.0.1 dbname={database.name}", database, tmp_path, lines)
    seen = commit_settings(database, finished=True) + commit_settings(database, finished=False)
    assert seen
    for settings in seen:
        assert settings["statement_timeout"] == "1min", settings
        assert settings["tcp_keepalives_idle"] == "5", settings
        assert settings["tcp_keepalives_interval"] == "5", settings
        assert settings["tcp_user_timeout"] == "10000", settings


def waiting_writer_pids(database: Database) -> set[int]:
    """Backends of logpipe writers on this database that wait for a lock."""
    rows = query(database.dsn, "SELECT pid FROM pg_stat_activity WHERE datname = "
                 "current_database() AND application_name = 'logpipe writer' "
                 "AND wait_event_type = 'Lock'")
    return {row[0] for row in rows}


def test_a_statement_the_server_does_not_finish_is_said_once_and_retried(
    database: Database, tmp_path: Path
) -> None:
    # The DSN's own statement_timeout wins over the writer's 60 s.
    dsn = f"dbname={database.name} options='-c statement_timeout=1s'"
    lines = [combined_line(i) for i in range(2_000)]
    proc = start_logger(dsn, tmp_path)
    stderr = StderrReader(proc)
    feed(proc, lines[:1_000])
    wait_for(lambda: database.rows() == 1_000, what="the first rows")
    locker = psycopg2.connect(database.dsn)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE access_log IN ACCESS EXCLUSIVE MODE")
        feed(proc, lines[1_000:])
        wait_for(lambda: b"did not finish a statement" in stderr.text(),
                 what=lambda: f"the stall message; stderr: {stderr.text()!r}")
        # Retried in new sessions (the first one was closed before the message), each
        # cancelled after 1 s, without another message.
        retries: set[int] = set()

        def retried_twice() -> bool:
            retries.update(waiting_writer_pids(database))
            return len(retries) >= 2

        wait_for(retried_twice, what="the writer to retry twice")
    finally:
        locker.rollback()
        locker.close()
    wait_for(lambda: database.rows() == 2_000, what="every row once the lock is gone")
    err = finish(proc, stderr=stderr)
    assert err.count(b"did not finish a statement") == 1, err
    assert err.count(b"finishes statements again") == 1, err
    assert b"database unreachable" not in err, err
    assert_exactly_once(database, lines)
