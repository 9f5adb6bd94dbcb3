"""`logpipe initdb` on a database of schema version 1 (tests/data/schema_v1: the schema
before versions were recorded, with a plain access_log): upgraded in place, every row,
reject, progress mark and count kept, and what the operator built on it carried over."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg2
from conftest import Database, execute, query, scalar
from partition_support import UTC, line_at, rows_per_partition, run_ok, temporary_role, write_log

SCHEMA_V1 = Path(__file__).resolve().parent / "data" / "schema_v1"
V1_COLUMNS = ("time", "vhost", "remote_host", "remote_user", "method", "path", "query",
              "protocol", "status", "bytes", "referer", "user_agent", "duration_us", "bytes_in",
              "bytes_out", "is_bot", "request", "extra", "source", "loaded_at")
SNAPSHOT = {
    # Version 1's columns; later ones (country) are new, filled or NULL.
    "rows": "SELECT " + ", ".join(V1_COLUMNS) + " FROM access_log ORDER BY time, path, loaded_at",
    "rejects": "SELECT id, received_at, source, reason, line::text FROM access_log_rejects"
               " ORDER BY id",
    "progress": "SELECT * FROM logpipe_progress ORDER BY segment",
    "loaded files": "SELECT * FROM logpipe_loaded_files ORDER BY fingerprint",
    # Version 1's columns; later ones (views) are new
    "daily": "SELECT day, page_id, hits, bot_hits, bytes, bot_bytes FROM logpipe_rollup_daily"
             " ORDER BY day, page_id",
    "quarters": "SELECT * FROM logpipe_rollup_quarter ORDER BY 1, 2, 3, 4",
    "pages": "SELECT id, vhost, path, hits, bot_hits, bytes, bot_bytes FROM logpipe_pages"
             " ORDER BY id",
    "traffic": "SELECT * FROM report_traffic_daily",
    "status": "SELECT * FROM report_status_daily",
    "referers": "SELECT * FROM report_referers",
}


def create_schema_v1(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        for path in sorted(SCHEMA_V1.glob("*.sql")):
            with conn, conn.cursor() as cur:
                cur.execute(path.read_text())
    finally:
        conn.close()


def snapshot(dsn: str) -> dict[str, list[tuple]]:
    return {name: query(dsn, sql) for name, sql in SNAPSHOT.items()}


def test_upgrade_from_version_1_keeps_everything(empty_database: Database,
                                                  tmp_path: Path) -> None:
    dsn = empty_database.dsn
    create_schema_v1(dsn)
    start = dt.datetime(2024, 9, 28, 22, tzinfo=UTC)
    lines = [line_at(start + dt.timedelta(minutes=37 * i), f"/p/{i % 9}", (200, 301, 404)[i % 3])
             for i in range(400)]
    lines += [line_at(dt.datetime(1970, 1, 1, tzinfo=UTC), "/epoch"),
              line_at(dt.datetime(2100, 1, 1, tzinfo=UTC), "/future"), b"junk\n"]
    # this logpipe fills access_log.country as it loads, which version 1 did not have:
    # a column for the load to fill, dropped again, leaves version 1's rows
    execute(dsn, "ALTER TABLE access_log ADD COLUMN country text")
    run_ok("load", "--dsn", dsn, str(write_log(tmp_path / "old.log", lines)))
    execute(dsn, "ALTER TABLE access_log DROP COLUMN country")
    execute(dsn, "INSERT INTO logpipe_progress VALUES ('seg-1', 4096, 31, false, now())")
    with temporary_role(dsn) as reader:
        execute(dsn, f"""
            CREATE VIEW my_paths AS SELECT path, count(*) AS hits FROM access_log GROUP BY path;
            CREATE VIEW my_days AS SELECT day, hits FROM report_traffic_daily;
            CREATE INDEX my_remote_hosts ON access_log (remote_host);
            COMMENT ON TABLE access_log IS 'our web logs';
            GRANT SELECT ON access_log, my_paths, my_days TO {reader}""")
        was = snapshot(dsn)
        assert len(was["rows"]) == 402 and len(was["rejects"]) == 1 and was["daily"]

        result = run_ok("initdb", "--dsn", dsn)
        assert "version 4 (upgraded from version 1)" in result.stderr

        assert snapshot(dsn) == was
        assert scalar(dsn, "SELECT relkind FROM pg_class WHERE relname = 'access_log'") == "p"
        assert rows_per_partition(dsn) == {"access_log_legacy": 401, "access_log_default": 1}
        assert query(dsn, "SELECT path FROM access_log_default") == [("/future",)]
        assert query(dsn, "SELECT version, logpipe_version IS NOT NULL, how"
                          " FROM logpipe_schema_version ORDER BY 1") == [
            (1, False, "found in place, made before versions were recorded"),
            (2, True, "upgraded from version 1"), (3, True, "upgraded from version 1"),
            (4, True, "upgraded from version 1")]
        # the old table's triggers, indexes, comment and grants are the new one's
        assert scalar(dsn, "SELECT count(*) FROM pg_trigger WHERE tgrelid ="
                           " 'access_log'::regclass AND NOT tgisinternal") == 4
        # ... and the legacy partition counts rows inserted into it directly
        assert query(dsn, "SELECT tgname FROM pg_trigger WHERE tgrelid ="
                          " 'access_log_legacy'::regclass AND NOT tgisinternal") == [
            ("logpipe_rollup_insert",)]
        assert sorted(r[0] for r in query(dsn, "SELECT indexname FROM pg_indexes"
                                               " WHERE tablename = 'access_log'")) == [
            "access_log_oversize_referers", "access_log_path_referers", "access_log_time_brin",
            "my_remote_hosts"]
        assert scalar(dsn, "SELECT obj_description('access_log'::regclass)") == "our web logs"
        for table in ("access_log", "my_paths", "my_days"):
            assert scalar(dsn, "SELECT has_table_privilege(%s, %s, 'SELECT')",
                          (reader, table)) is True

        # rows after the legacy partition's end (tomorrow): in a new partition, seen by
        # the operator's view, counted by the rollups
        later = dt.datetime.now(UTC) + dt.timedelta(days=2)
        run_ok("load", "--dsn", dsn, str(write_log(tmp_path / "new.log",
                                                   [line_at(later, "/p/1")] * 3)))
        (partition,) = set(rows_per_partition(dsn)) - {"access_log_legacy", "access_log_default"}
        assert rows_per_partition(dsn)[partition] == 3
        hits = dict(query(dsn, "SELECT path, hits FROM my_paths"))
        assert hits["/p/1"] == 3 + sum(1 for row in was["rows"] if row[5] == "/p/1")
        assert scalar(dsn, "SELECT sum(hits)::int FROM logpipe_quarters") == 405
        assert query(dsn, f"SELECT day, hits FROM my_days WHERE day = '{later:%Y-%m-%d}'") == [
            (later.date(), 3)]

        again = run_ok("initdb", "--dsn", dsn)
        assert "version 4 (checked)" in again.stderr
        assert rows_per_partition(dsn)["access_log_legacy"] == 401
