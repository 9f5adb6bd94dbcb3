"""Re-running `logpipe initdb` is safe: the operator's views on logpipe's views and on
access_log, and grants, stay; a run with nothing to change does not stop loaders;
the schema version is recorded once, and a newer schema is refused."""

from __future__ import annotations

import os
import subprocess

import psycopg2
from conftest import COMMAND_TIMEOUT, Database, execute, logpipe_cmd, query, scalar
from partition_support import run, run_ok, temporary_role


def test_operator_views_and_grants_survive_a_rerun(database: Database) -> None:
    dsn = database.dsn
    with temporary_role(dsn) as analyst:
        execute(dsn, f"""
            CREATE VIEW weekly_pages AS SELECT path, hits FROM report_pages WHERE hits > 1;
            CREATE VIEW traffic_totals AS SELECT sum(hits) AS hits FROM report_traffic_daily;
            CREATE VIEW recent_paths AS SELECT time, path FROM access_log;
            GRANT SELECT ON weekly_pages, traffic_totals, recent_paths, report_referers,
                  access_log TO {analyst}""")
        result = run("initdb", "--dsn", dsn)
        assert result.returncode == 0, result.stderr
        assert "version 4 (checked)" in result.stderr
        for view in ("weekly_pages", "traffic_totals", "recent_paths", "report_referers",
                     "access_log"):
            assert scalar(dsn, "SELECT has_table_privilege(%s, %s, 'SELECT')",
                          (analyst, view)) is True, view
        execute(dsn, "INSERT INTO access_log (time, path, status) VALUES (now(), '/x', 200)")
        assert query(f"{dsn} user={analyst}", "SELECT path FROM recent_paths") == [("/x",)]
        assert query(f"{dsn} user={analyst}", "SELECT hits FROM traffic_totals") == [(1,)]


def test_a_rerun_does_not_stop_loaders(database: Database) -> None:
    """While a loader's transaction holds access_log (ROW EXCLUSIVE, as COPY does), a
    re-run completes at once: it asks for no lock that would wait for it, or make later
    loaders wait behind it."""
    loader = psycopg2.connect(database.dsn)
    try:
        with loader.cursor() as cur:
            cur.execute("LOCK TABLE access_log IN ROW EXCLUSIVE MODE")
            cur.execute("INSERT INTO access_log (time, path) VALUES (now(), '/loading')")
        result = subprocess.run(
            logpipe_cmd("initdb", "--dsn", database.dsn), capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT, check=False,
            env={**os.environ, "PGOPTIONS": "-c lock_timeout=3s"})
        assert result.returncode == 0, result.stderr
        loader.commit()
    finally:
        loader.close()
    assert database.rows() == 1


def test_schema_versions_are_recorded_once(database: Database) -> None:
    run_ok("initdb", "--dsn", database.dsn)
    assert query(database.dsn, "SELECT version, how FROM logpipe_schema_version") == [
        (4, "created")]


def test_a_newer_schema_is_refused(database: Database) -> None:
    execute(database.dsn, "INSERT INTO logpipe_schema_version (version, applied_at,"
                          " logpipe_version, how) VALUES (5, now(), '9.0', 'created')")
    execute(database.dsn, "ALTER TABLE access_log DISABLE TRIGGER access_log_rollup_insert")
    result = run("initdb", "--dsn", database.dsn)
    assert result.returncode == 1
    assert "version 5, newer than this logpipe knows (version 4)" in result.stderr
    assert "Upgrade logpipe" in result.stderr
    # nothing was changed: the trigger is still as the operator left it
    assert scalar(database.dsn, "SELECT tgenabled FROM pg_trigger"
                                " WHERE tgname = 'access_log_rollup_insert'") == "D"


def test_version_3_gets_the_path_index_without_include_columns(database: Database) -> None:
    """Schema version 3's report index carried vhost and referer (INCLUDE): initdb
    rebuilds it on the path alone (upgrade_004), which loads rows cheaper, and the
    operator's view on access_log stays."""
    dsn = database.dsn
    definition = ("SELECT pg_get_indexdef('access_log_path_referers'::regclass)")
    execute(dsn, """
        DROP INDEX access_log_path_referers;
        CREATE INDEX access_log_path_referers ON access_log (path) INCLUDE (vhost, referer)
         WHERE referer IS NOT NULL
           AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))
               + octet_length(referer) <= 2400;
        CREATE VIEW my_referers AS SELECT path, referer FROM access_log;
        DELETE FROM logpipe_schema_version;
        INSERT INTO logpipe_schema_version VALUES (3, now(), '0.9', 'created')""")
    assert "INCLUDE" in str(scalar(dsn, definition))
    result = run_ok("initdb", "--dsn", dsn)
    assert "version 4 (upgraded from version 3)" in result.stderr
    assert "INCLUDE" not in str(scalar(dsn, definition))
    assert "(path)" in str(scalar(dsn, definition))
    assert scalar(dsn, "SELECT count(*) FROM my_referers") == 0
