"""`logpipe prune --archive DIR` and `logpipe archive`: what prune removes is written to
Parquet first, read back here by DuckDB and pandas and compared value for value with what
PostgreSQL held; a directory that cannot be written drops nothing; a prune killed with
its files in place, run again, leaves each row archived exactly once."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pytest
from conftest import ROOT, Database, execute, logpipe_cmd, query, scalar, wait_for
from partition_support import UTC, line_at, partitions, run, run_ok, write_log

from logpipe.store.parquet_copy import record_end

JAN = dt.datetime(2019, 1, 1, tzinfo=UTC)
OLD_PARTITIONS = ["access_log_20190101_20190201", "access_log_20190201_20190301",
                  "access_log_20190301_20190401"]
PATHS = ["/", "/a,b", r"/q\"uote", r"/caf\xc3\xa9", r"/new\x0aline", "/tab\tx", "/p?x=1&y="]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
          "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"]
# Rows with every column set (or NULL, or ''), which no log line makes all at once.
FULL_ROWS = """
INSERT INTO access_log (time, vhost, remote_host, remote_user, method, path, query, protocol,
    status, bytes, referer, user_agent, duration_us, bytes_in, bytes_out, is_bot, request,
    extra, source, loaded_at, country) VALUES
 ('2019-02-10 23:59:59.999999+00', 'www.example.com', '2001:db8::1', '', 'PROPFIND',
  '/dav/', '', 'HTTP/2.0', 207, 9223372036854775807, 'https://ref.example/"q",x',
  'curl/8.5', 1234567, 321, 654, false, NULL, '{"k": "v,\\"x\\"\\n", "n": [1, 2.5, null]}',
  'web1', '2019-02-11 00:00:01+00', 'DE'),
 ('2019-03-31 20:00:00-02', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 408, 0, NULL, NULL,
  NULL, NULL, NULL, NULL, E'\\x16\\x03 junk', NULL, NULL, '2019-04-01 00:00:00+00', NULL),
 ('1970-01-01 00:00:07+00', 'v', 'h', 'u', 'GET', '/epoch', 'a=1', 'HTTP/1.0', 200, 1,
  '-x', 'a', 1, 1, 1, true, NULL, '{}', 's', '1970-01-01 00:00:08+00', 'FR')
"""
REJECTS = """
INSERT INTO access_log_rejects (received_at, source, reason, line) VALUES
 ('2019-01-15 10:00:00+00', 'web1', 'NUL byte in line', '\\x00ff220a2c78'::bytea),
 ('2019-02-20 10:00:00+00', NULL, 'empty line', ''::bytea),
 (now(), 'web2', 'recent junk', 'recent'::bytea)
"""
COLUMNS = ("time, vhost, remote_host, remote_user, method, path, query, protocol, status,"
           " bytes, referer, user_agent, duration_us, bytes_in, bytes_out, is_bot, request,"
           " extra, source, loaded_at, country")
REJECT_COLUMNS = "id, received_at, source, reason, line"
OLD = "time < '2019-04-01'"  # every row prune removes here: three months and 1970


def old_traffic(tmp_path: Path) -> Path:
    """January to March 2019, a line every 7 hours, with awkward paths and a bot."""
    lines = [line_at(JAN + dt.timedelta(hours=7 * i), PATHS[i % len(PATHS)],
                     (200, 404, 500, 304)[i % 4], i % 5000, AGENTS[i % 2])
             for i in range(300)]
    lines += [line_at(dt.datetime.now(UTC), f"/today/{i}") for i in range(3)]
    return write_log(tmp_path / "access.log", lines)


def fill(database: Database, tmp_path: Path) -> None:
    run_ok("load", "--dsn", database.dsn, str(old_traffic(tmp_path)))
    execute(database.dsn, FULL_ROWS)
    execute(database.dsn, REJECTS)
    assert set(OLD_PARTITIONS) <= set(partitions(database.dsn))


def held_rows(dsn: str) -> list[tuple]:
    """What PostgreSQL holds of the rows prune removes, jsonb as its text."""
    return plain(query(dsn, f"SELECT {COLUMNS.replace('extra', 'extra::text')}"
                            f" FROM access_log WHERE {OLD}"))


def held_rejects(dsn: str) -> list[tuple]:
    return plain(query(dsn, f"SELECT {REJECT_COLUMNS} FROM access_log_rejects"
                            " WHERE received_at < '2019-04-01'"))


def archived(root: Path, tree: str, columns: str) -> list[tuple]:
    with duckdb.connect() as con:
        return plain(con.sql(f"SELECT {columns} FROM read_parquet("
                             f"'{root}/{tree}/**/*.parquet', hive_partitioning=true)")
                     .fetchall())


def plain(rows: list[tuple]) -> list[tuple]:
    """Values as both sides can compare them: times in UTC, bytes as bytes."""
    def value(v: object) -> object:
        if isinstance(v, dt.datetime):
            return v.astimezone(UTC)
        if isinstance(v, memoryview):
            return bytes(v)
        return v
    return [tuple(value(v) for v in row) for row in rows]


def readme_queries(root: Path) -> tuple[str, str]:
    """The DuckDB query and the pandas code of README's archive section, about `root`."""
    text = (ROOT / "README.md").read_text().replace("/var/archive/logpipe", str(root))
    start = text.index("    SELECT path, count(*) AS hits")
    duckdb_query = text[start:text.index(";", start)]
    start = text.index("    import pandas as pd")
    pandas_code = "\n".join(line.strip() for line in text[start:].split("\n\n")[0].splitlines())
    return duckdb_query, pandas_code


def column_checksums(rows: list[tuple]) -> list[str]:
    """A checksum of each column: its values, in an order both sides agree on."""
    return [hashlib.sha256("\n".join(sorted(repr(row[i]) for row in rows)).encode())
            .hexdigest() for i in range(len(rows[0]))]


def per_day_pg(dsn: str) -> dict[dt.date, int]:
    return dict(query(dsn, "SELECT (time AT TIME ZONE 'UTC')::date, count(*)::int"
                           f" FROM access_log WHERE {OLD} GROUP BY 1"))


def per_day_duckdb(root: Path) -> dict[dt.date, int]:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return dict(con.sql("SELECT CAST(time AS DATE), count(*) FROM read_parquet("
                            f"'{root}/access_log/**/*.parquet', hive_partitioning=true)"
                            " GROUP BY 1").fetchall())


def test_prune_archives_three_months_that_duckdb_and_pandas_read_back(
        database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    fill(database, tmp_path)
    rows, rejects, days = held_rows(dsn), held_rejects(dsn), per_day_pg(dsn)
    assert len(rows) == 300 + 3 and len(rejects) == 2 and len(days) > 80
    root = tmp_path / "archive"

    done = run_ok("prune", "--dsn", dsn, "--older-than", "90d", "--archive", str(root))

    # nothing of it is left in the database; the rest is untouched
    assert scalar(dsn, f"SELECT count(*) FROM access_log WHERE {OLD}") == 0
    assert not set(OLD_PARTITIONS) & set(partitions(dsn))
    assert database.rows() == 3 and database.rejects() == 1
    said = done.stdout.splitlines()
    assert [line.split(" to ")[0] for line in said if line.startswith("archived")] == [
        "archived 107 rows", "archived 97 rows", "archived 98 rows", "archived 1 row",
        "archived 1 reject", "archived 1 reject"]
    assert said[1] == "dropped access_log_20190101_20190201 (2019-01-01 to 2019-02-01): 107 rows"

    # the layout: Hive-style months, of time for rows and of received_at for rejects
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))
    assert [f.rsplit("-", 2)[0] for f in files] == [
        "access_log/month=1970-01/access_log_default",
        "access_log/month=2019-01/access_log_20190101_20190201",
        "access_log/month=2019-02/access_log_20190201_20190301",
        "access_log/month=2019-03/access_log_20190301_20190401",
        "access_log_rejects/month=2019-01/access_log_rejects",
        "access_log_rejects/month=2019-02/access_log_rejects"]
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]

    # every value, as PostgreSQL held it: rows, per-column checksums, rows per day
    back = archived(root, "access_log", COLUMNS)
    assert Counter(back) == Counter(rows)
    assert column_checksums(back) == column_checksums(rows)
    assert per_day_duckdb(root) == days
    assert Counter(archived(root, "access_log_rejects", REJECT_COLUMNS)) == Counter(rejects)
    with duckdb.connect() as con:
        types = {name: kind for name, kind, *_ in con.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{root}/access_log/**/*.parquet',"
            " hive_partitioning=true)").fetchall()}
        months = con.sql(f"SELECT month, strftime(time AT TIME ZONE 'UTC', '%Y-%m') m FROM "
                         f"read_parquet('{root}/access_log/**/*.parquet', "
                         "hive_partitioning=true) WHERE month <> m").fetchall()
    assert months == []
    assert list(types) == [*COLUMNS.split(", "), "month"]  # country, the newest, last
    assert (types["time"], types["loaded_at"], types["status"], types["bytes"],
            types["is_bot"], types["extra"]) == (
        "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE", "SMALLINT", "BIGINT",
        "BOOLEAN", "VARCHAR")

    # the README's queries, as written there (but for the directory)
    duckdb_query, pandas_code = readme_queries(root)
    with duckdb.connect() as con:
        top = con.sql(duckdb_query).fetchall()
    assert top[:3] == [("/", 43), ("/a,b", 43), ("/caf\u00e9", 43)] and len(top) == 9
    printed = subprocess.run([sys.executable, "-c", pandas_code], capture_output=True,
                             text=True, timeout=60, check=True).stdout
    assert dict(tuple(map(int, line.split())) for line in printed.splitlines()
                if re.fullmatch(r"\d+ +\d+", line)) == Counter(
        r[8] for r in rows if r[0].month == 2 and r[0].year == 2019)
    frame = pd.read_parquet(root / "access_log", filters=[("month", "=", "2019-02")])
    assert len(frame) == 97 and str(frame["time"].dtype) == "datetime64[us, UTC]"

    # again: nothing is left to archive, and what was archived stays
    again = run_ok("prune", "--dsn", dsn, "--older-than", "90d", "--archive", str(root))
    assert "nothing to prune" in again.stdout
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet")) == files


def test_archive_exports_without_removing_and_replaces_its_files(
        database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    fill(database, tmp_path)
    rows, rejects = held_rows(dsn), held_rejects(dsn)
    root = tmp_path / "export"
    for _ in range(2):  # a second export replaces the first one's files
        done = run_ok("archive", "--dsn", dsn, "--before", "2019-04-01", "--archive", str(root))
        assert len(done.stdout.splitlines()) == 6, done.stdout
        assert Counter(archived(root, "access_log", COLUMNS)) == Counter(rows)
        assert Counter(archived(root, "access_log_rejects", REJECT_COLUMNS)) == Counter(rejects)
    assert all(p.name.endswith("-export.parquet") for p in root.rglob("*.parquet"))
    assert held_rows(dsn) == rows and database.rejects() == 3
    # only what ends by the cutoff: February's partition is not over on 2019-02-15
    run_ok("archive", "--dsn", dsn, "--before", "2019-02-15", "--archive",
           str(tmp_path / "early"))
    assert sorted(p.parent.name for p in (tmp_path / "early").rglob("*.parquet")) == [
        "month=1970-01", "month=2019-01", "month=2019-01"]
    bad = run("archive", "--dsn", dsn, "--before", "last tuesday", "--archive", str(root))
    assert bad.returncode == 2 and "--before: not a date or an age" in bad.stderr


def test_a_directory_that_cannot_be_written_drops_nothing(
        database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    fill(database, tmp_path)
    rows, count = held_rows(dsn), database.rows()
    in_the_way = tmp_path / "a-file"
    in_the_way.write_bytes(b"")

    refused = run("prune", "--dsn", dsn, "--older-than", "90d",
                  "--archive", str(in_the_way / "archive"))
    assert refused.returncode == 2
    assert f"cannot write in the archive directory {in_the_way / 'archive'}: Not a directory;" \
           " nothing was pruned" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    assert held_rows(dsn) == rows and database.rejects() == 3

    # writing fails half-way (February's directory cannot be made): January is archived
    # and dropped, February and what follows stay whole, and no half-written file is left
    root = tmp_path / "archive"
    (root / "access_log").mkdir(parents=True)
    (root / "access_log" / "month=2019-02").write_bytes(b"")
    failed = run("prune", "--dsn", dsn, "--older-than", "90d", "--archive", str(root))
    assert failed.returncode == 1
    assert "cannot write the archive under" in failed.stderr
    assert "nothing more was pruned" in failed.stderr and "Traceback" not in failed.stderr
    assert [line.split(" to ")[0] for line in failed.stdout.splitlines()] == [
        "archived 107 rows", "dropped access_log_20190101_20190201 (2019-01-01"]
    assert set(OLD_PARTITIONS[1:]) <= set(partitions(dsn))
    assert database.rows() == count - 107 and database.rejects() == 3
    assert Counter(held_rows(dsn)) == Counter(r for r in rows if r[0] >= JAN.replace(month=2)
                                              or r[0].year == 1970)
    assert [p.name for p in root.rglob("*") if p.is_file() and p.suffix != ".parquet"] == [
        "month=2019-02"]


def test_without_pyarrow_prune_says_how_to_install_it_and_removes_nothing(
        database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    fill(database, tmp_path)
    count = database.rows()
    hide = tmp_path / "no-pyarrow" / "pyarrow"  # an installation where it fails to import
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    env = {**os.environ, "PYTHONPATH": str(hide.parent)}
    for command in (["prune", "--older-than", "90d"], ["archive", "--before", "90d"]):
        result = subprocess.run(logpipe_cmd(*command, "--dsn", dsn, "--archive",
                                            str(tmp_path / "archive")),
                                capture_output=True, text=True, env=env, timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert "pyarrow is not installed: install logpipe's archive extra (python3 -m pip " \
               "install 'apache-logpipe[archive]'" in result.stderr
        assert "Traceback" not in result.stderr
    assert database.rows() == count and set(OLD_PARTITIONS) <= set(partitions(dsn))
    assert not (tmp_path / "archive").exists()


def test_a_prune_killed_with_its_files_in_place_then_run_again_archives_each_row_once(
        database: Database, tmp_path: Path) -> None:
    """Killed (SIGKILL) twice, each time with its file renamed into place and its
    TRUNCATE or DELETE held up by another session's lock: first at February's
    partition, then at the rejects. The third run finishes."""
    dsn = database.dsn
    fill(database, tmp_path)
    rows, rejects = held_rows(dsn), held_rejects(dsn)
    root = tmp_path / "archive"

    kill_when_in_place(database, root, "access_log/month=2019-02",
                       "SELECT count(*) FROM access_log_20190201_20190301")
    assert database.rows() == len(rows) + 3 - 107  # January went, February is whole
    assert len(list(root.glob("access_log/month=2019-02/*.parquet"))) == 1  # left over

    kill_when_in_place(database, root, "access_log_rejects/month=2019-02",
                       "LOCK TABLE access_log_rejects IN SHARE MODE")
    assert database.rows() == 3 and database.rejects() == 3
    assert len(list(root.glob("access_log_rejects/month=*/*.parquet"))) == 2

    done = run_ok("prune", "--dsn", dsn, "--older-than", "90d", "--archive", str(root))
    assert done.stderr.count("a prune that did not finish wrote it") == 2
    assert database.rows() == 3 and database.rejects() == 1
    assert Counter(archived(root, "access_log", COLUMNS)) == Counter(rows)
    assert Counter(archived(root, "access_log_rejects", REJECT_COLUMNS)) == Counter(rejects)
    assert len(list(root.rglob("*.parquet"))) == 6


def kill_when_in_place(database: Database, root: Path, month_dir: str, hold: str) -> None:
    """Run prune --archive while another session holds `hold`'s lock; SIGKILL it once a
    file is in `month_dir`, then wait until the server has ended its session."""
    blocker = psycopg2.connect(database.dsn)
    try:
        blocker.cursor().execute(hold)
        proc = subprocess.Popen(logpipe_cmd("prune", "--dsn", database.dsn, "--older-than",
                                            "90d", "--archive", str(root)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: list((root / month_dir).glob("*.parquet")) or proc.poll(),
                     what=f"a file in {month_dir}")
            assert proc.poll() is None, "prune finished before it was killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
    finally:
        blocker.rollback()
        blocker.close()
    wait_for(lambda: scalar(database.dsn, "SELECT count(*) FROM pg_stat_activity"
                                          " WHERE application_name = 'logpipe prune'"
                                          " AND datname = current_database()") == 0,
             what="the killed prune's session to end")


@pytest.mark.parametrize(("data", "end"), [
    (b"", 0), (b"a,b", 0), (b"a,b\n", 4), (b'a,"x\ny"\nc', 8), (b'a,"x\ny', 0),
    (b'a,"x\ny""z"\n"q\n', 11), (b'1,""\n2,"\n', 5)])
def test_a_chunk_is_cut_after_a_whole_record(data: bytes, end: int) -> None:
    assert record_end(data) == end
