"""`logpipe initdb --writer-role W --reader-role R`: a logger connected as W loads
lines, makes partitions and keeps every rollup exact, but cannot delete, change or
drop what it loaded; R runs every report and `logpipe status` and can write nothing."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from conftest import (
    Database,
    execute,
    fresh_database,
    logpipe_cmd,
    query,
    scalar,
    start_logger,
)
from partition_support import UTC, run, run_ok, temporary_role, write_log
from psycopg2 import sql
from reports_support import (
    GOOGLEBOT,
    H1,
    PENDING,
    ROLLUP,
    ROLLUP_FROM_ACCESS_LOG,
    assert_quarters_match,
    run_report,
)

from logpipe.ingest import spool
from logpipe.reports.catalog import REPORTS
from logpipe.store import roles

DAY = dt.datetime(2024, 10, 10, tzinfo=UTC)
BACKFILL = dt.datetime(2019, 3, 5, tzinfo=UTC)  # a month no partition covers yet
BACKFILL_PARTITION = "access_log_20190301_20190401"
SITE = "https://www.example.com"  # in logpipe_site_hosts


def line(at: dt.datetime, path: str, status: int = 200, referer: str = "-",
         agent: str = H1) -> bytes:
    stamp = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (f'192.0.2.{at.minute % 9 + 1} - - [{stamp}] "GET {path} HTTP/1.1" {status} '
            f'{100 + at.second} "{referer}" "{agent}"\n').encode()


def traffic(start: dt.datetime, count: int) -> list[bytes]:
    """Pages served and not, an image, humans and bots, referers on /hot; a junk line
    per 50."""
    out = []
    for i in range(count):
        at = start + dt.timedelta(minutes=7 * i, seconds=i % 60)
        path = "/hot" if i % 3 == 0 else f"/page/{i % 4}" + (".png" if i % 4 == 3 else "")
        broken = i % 10 == 9  # a link on the site's own page (SITE) to a missing one
        referer = SITE + "/links" if broken else f"https://ref.example/{i % 5}" if i % 2 else "-"
        out.append(line(at, path, status=404 if broken else 200, referer=referer,
                        agent=GOOGLEBOT if i % 7 == 0 else H1))
        if i % 50 == 49:
            out.append(b"\x16\x03\x01 not a request at all\n")
    return out


def as_role(dsn: str, role: str) -> str:
    return f"{dsn} user={role}"


def load_through_logger(dsn: str, spool_dir: Path, lines: list[bytes]) -> str:
    """Lines through a real piped logger until EOF; its stderr."""
    proc = start_logger(dsn, spool_dir)
    _, err = proc.communicate(b"".join(lines), timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    return err.decode(errors="replace")


def refusal(dsn: str, statement: str) -> str | None:
    """None when PostgreSQL refuses `statement` for want of a privilege (rolled back);
    otherwise what happened instead."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        return "allowed"
    except psycopg2.errors.InsufficientPrivilege:
        return None
    except psycopg2.Error as exc:
        return f"{exc.pgcode}: {str(exc).strip()}"
    finally:
        conn.rollback()
        conn.close()


@dataclass
class Setup:
    db: Database
    writer: str
    reader: str
    initdb_said: str
    logger_said: str
    load_said: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A database set up by its owner with a writer and a reader role, loaded by a
    logger, `logpipe load` and a fold that promotes a hot path, all as the writer."""
    tmp = tmp_path_factory.mktemp("roles")
    with fresh_database(schema=False) as db, temporary_role(db.dsn) as writer, \
            temporary_role(db.dsn) as reader:
        initdb = run_ok("initdb", "--dsn", db.dsn, "--writer-role", writer,
                        "--reader-role", reader)
        execute(db.dsn, "INSERT INTO logpipe_site_hosts VALUES ('www.example.com')")
        as_writer = as_role(db.dsn, writer)
        said = load_through_logger(as_writer, tmp / "spool", traffic(DAY, 120))
        # /hot has over 5 requests: a fold with that threshold promotes it (which locks
        # access_log IN SHARE MODE, a right the writer has only through the function)
        execute(as_writer, f"INSERT INTO access_log (time, path, status, referer)"
                           f" VALUES ('{DAY.isoformat()}', '/hot', 200, 'https://ref.example/9')")
        execute(as_writer, "SELECT logpipe_rollup_fold(hot_hits => 5)")
        # straight into a partition, as the writer loads live lines: counted there
        current = scalar(db.dsn, "SELECT partition::text FROM logpipe_partitions()"
                                 " WHERE range_from <= now() AND range_to > now()")
        execute(as_writer, f"INSERT INTO {current} (time, path, status, bytes)"
                           " VALUES (now(), '/x', 200, 10)")
        said += load_through_logger(as_writer, tmp / "spool",
                                    traffic(DAY + dt.timedelta(hours=20), 60))
        backfill = write_log(tmp / "old.log", traffic(BACKFILL, 30))
        loads = [run_ok("load", "--dsn", as_writer, str(backfill)).stderr,
                 run_ok("load", "--dsn", as_writer, str(backfill)).stderr,  # skipped
                 run_ok("load", "--dsn", as_writer, "--force", str(backfill)).stderr]
        yield Setup(db, writer, reader, initdb.stderr, said, "".join(loads))


def test_writer_loads_makes_partitions_and_keeps_the_rollups_exact(setup: Setup) -> None:
    dsn = setup.db.dsn
    assert f"role {setup.writer} may load lines" in setup.initdb_said
    assert f"role {setup.reader} may read the reports" in setup.initdb_said
    assert "warning" not in setup.initdb_said
    for problem in ("cannot", "denied", "not updated", "not prepared"):
        assert problem not in setup.logger_said + setup.load_said
    assert setup.load_said.count("already loaded") == 1
    assert setup.db.rows() == 120 + 60 + 2 + 2 * 30
    assert setup.db.rejects() == 3  # a junk line in every 50
    assert scalar(dsn, "SELECT count(*) FROM logpipe_loaded_files") == 1
    assert scalar(dsn, "SELECT count(*) FROM logpipe_progress") == 0  # finished, forgotten
    # the backfill got a partition of its own, made (and owned) by the function's owner
    assert query(dsn, "SELECT count(*), min(tableoid::regclass::text) FROM access_log"
                      " WHERE time < '2020-01-01'") == [(60, BACKFILL_PARTITION)]
    assert scalar(dsn, "SELECT tableowner FROM pg_tables WHERE tablename = %s",
                  (BACKFILL_PARTITION,)) == scalar(dsn, "SELECT current_user")
    # ... ready for the writer to COPY into directly: it counts its rows, the writer
    # may insert (and only insert)
    assert query(dsn, "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass",
                 (BACKFILL_PARTITION,)) == [("logpipe_rollup_insert",)]
    assert query(dsn, "SELECT privilege_type FROM information_schema.table_privileges"
                      " WHERE table_name = %s AND grantee = %s",
                 (BACKFILL_PARTITION, setup.writer)) == [("INSERT",)]
    # every rollup counts what access_log holds, nothing left pending
    assert scalar(dsn, PENDING) == 0
    assert query(dsn, ROLLUP) == query(dsn, ROLLUP_FROM_ACCESS_LOG)
    assert_quarters_match(dsn)
    assert query(dsn, "SELECT vhost, path, hits, bot_hits, bytes, bot_bytes FROM logpipe_pages"
                      " WHERE hits <> 0 ORDER BY 1, 2") == query(dsn, """
        SELECT coalesce(vhost, ''), coalesce(path, ''), count(*),
               count(*) FILTER (WHERE coalesce(is_bot, user_agent IS NULL)),
               sum(coalesce(bytes, bytes_out)),
               coalesce(sum(coalesce(bytes, bytes_out))
                        FILTER (WHERE coalesce(is_bot, user_agent IS NULL)), 0)
          FROM access_log WHERE status < 400 GROUP BY 1, 2 ORDER BY 1, 2""")
    # /hot was promoted, and its referers are counted since, through the pending table
    assert query(dsn, "SELECT path FROM logpipe_hot_paths") == [("/hot",)]
    assert query(dsn, "SELECT path, vhost, referer, hits, bot_hits FROM logpipe_path_referers"
                      " ORDER BY 1, 2, 3") == query(dsn, """
        SELECT path, coalesce(vhost, ''), referer, count(*),
               count(*) FILTER (WHERE coalesce(is_bot, user_agent IS NULL))
          FROM access_log WHERE path = '/hot' AND referer <> ''
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")
    assert scalar(dsn, "SELECT sum(hits) FROM logpipe_path_referers") > 20


def test_writer_can_delete_change_or_drop_nothing(setup: Setup) -> None:
    dsn = setup.db.dsn
    current = scalar(dsn, "SELECT partition::text FROM logpipe_partitions()"
                          " WHERE range_from <= now() AND range_to > now()")
    rows, rejects = setup.db.rows(), setup.db.rejects()
    rollup = query(dsn, ROLLUP)
    statements = [
        f"{verb} {table}"
        for table in ("access_log", BACKFILL_PARTITION, current, "access_log_default",
                      "access_log_rejects")
        for verb in ("DELETE FROM", "TRUNCATE", "DROP TABLE")
    ] + [
        f"UPDATE {table} SET time = time"
        for table in ("access_log", BACKFILL_PARTITION, current, "access_log_default")
    ] + [
        "UPDATE access_log_rejects SET reason = 'x'",
        f"ALTER TABLE access_log DETACH PARTITION {BACKFILL_PARTITION}",
        "ALTER TABLE access_log DISABLE TRIGGER access_log_rollup_insert",
        # the rollups change only through logpipe_rollup_fold()
        "UPDATE logpipe_rollup_daily SET hits = 0",
        "DELETE FROM logpipe_rollup_daily",
        "INSERT INTO logpipe_rollup_daily VALUES ('2024-10-10', 1, 1, 0, 0, 0)",
        "UPDATE logpipe_pages SET hits = 0",
        "UPDATE logpipe_rollup_quarter SET hits = 0",
        "DELETE FROM logpipe_path_referers",
        "DELETE FROM logpipe_hot_paths",
        "DELETE FROM logpipe_pending_pages",
        # the triggers count rows in their owner's name: no made-up counts
        "INSERT INTO logpipe_pending_pages VALUES ('2024-10-10', '', '/x', -5, 0, 0, 0)",
        "INSERT INTO logpipe_pending_quarters VALUES (now(), '', 200, false, -5, 0)",
        "INSERT INTO logpipe_pending_referers VALUES ('/hot', '', 'http://x/', -5, 0)",
        "SELECT logpipe_promote_hot_paths(ARRAY['/page/1'])",
        "SELECT count(*) FROM access_log",  # it writes; reading is the reader's
        "CREATE TABLE access_log_mine (LIKE access_log)",
    ]
    as_writer = as_role(dsn, setup.writer)
    allowed = {s: r for s in statements if (r := refusal(as_writer, s)) is not None}
    assert allowed == {}
    assert (setup.db.rows(), setup.db.rejects(), query(dsn, ROLLUP)) == (rows, rejects, rollup)


def report_runs() -> list[list[str]]:
    """Every report of the catalog, and the variants that read other tables."""
    return [[name] for name in REPORTS] + [
        ["referers", "--path", "/hot"],  # a hot path: its own counts
        ["referers", "--path", "/page/1"],
        ["pages", "--since", "2024-10-10T12:00", "--until", "2024-10-11T06:00"],
        ["status", "--by", "hour", "--by-source"],
        ["traffic", "--since", "2024-10-10T12:00", "--humans"],
        ["agents", "--format", "json", "--limit", "0"],
    ]


@pytest.mark.parametrize("args", report_runs(), ids=" ".join)
def test_reader_runs_every_report_as_the_owner_sees_it(setup: Setup, args: list[str]) -> None:
    as_reader = run_report(as_role(setup.db.dsn, setup.reader), *args)
    as_owner = run_report(setup.db.dsn, *args)
    assert (as_reader.returncode, as_reader.stderr) == (0, "")
    assert as_owner.returncode == 0, as_owner.stderr
    assert as_reader.stdout == as_owner.stdout
    assert len(as_reader.stdout.splitlines()) > 2  # a header and rows


def test_only_a_role_that_may_fold_tries_to(setup: Setup) -> None:
    """A reader's report does not call the fold only to be refused (a server-log line
    at every report); the owner and the writer fold before reporting."""
    from logpipe.reports.run import may_fold

    def allowed(dsn: str) -> bool:
        conn = psycopg2.connect(dsn)
        try:
            return may_fold(conn)
        finally:
            conn.close()

    assert allowed(setup.db.dsn)
    assert allowed(as_role(setup.db.dsn, setup.writer))
    assert not allowed(as_role(setup.db.dsn, setup.reader))


def as_text(dsn: str, statements: list[sql.Composable]) -> list[str]:
    conn = psycopg2.connect(dsn)
    try:
        return [s.as_string(conn) for s in statements]
    finally:
        conn.close()


def test_reader_reads_the_views_and_status(setup: Setup, tmp_path: Path) -> None:
    dsn, as_reader = setup.db.dsn, as_role(setup.db.dsn, setup.reader)
    views = [r[0] for r in query(dsn, "SELECT viewname FROM pg_views"
                                      " WHERE viewname LIKE 'report\\_%' ORDER BY 1")]
    assert len(views) >= 8  # each one, however many there are, is read below
    for statement in as_text(dsn, [sql.SQL("SELECT * FROM {}").format(sql.Identifier(v))
                                   for v in views]):
        assert query(as_reader, statement) == query(dsn, statement), statement
    # a segment waiting in the spool: status looks up its progress
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    segment = spool_dir / "seg-20241010T000000-1-1.log"
    segment.write_bytes(spool.make_header("combined", None) + line(DAY, "/"))
    segment.chmod(0o600)
    status = subprocess.run(logpipe_cmd("status", "--dsn", as_reader, "--spool-dir",
                                        str(spool_dir), "--json"),
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    state = json.loads(status.stdout)
    assert "database_error" not in state
    assert [s["segment"] for s in state["segments"]] == [segment.name]
    assert state["rejects_last_day"] == 3


def test_reader_can_write_nothing(setup: Setup) -> None:
    dsn = setup.db.dsn
    # every table of the schema and every partition, with a column that may be set
    tables = query(dsn, """
        SELECT c.relname, (SELECT a.attname FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                              AND a.attidentity = '' ORDER BY a.attnum LIMIT 1)
          FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY 1""")
    assert len(tables) >= 20
    statements: list[sql.Composable] = [sql.SQL("SELECT logpipe_rollup_fold()"),
                                        sql.SQL("SELECT * FROM logpipe_prepare_partitions()")]
    for table, column in tables:
        t, c = sql.Identifier(table), sql.Identifier(column)
        statements += [sql.SQL("INSERT INTO {} DEFAULT VALUES").format(t),
                       sql.SQL("UPDATE {} SET {} = {}").format(t, c, c),
                       sql.SQL("DELETE FROM {}").format(t),
                       sql.SQL("TRUNCATE {}").format(t)]
    as_reader = as_role(dsn, setup.reader)
    allowed = {s: r for s in as_text(dsn, statements)
               if (r := refusal(as_reader, s)) is not None}
    assert allowed == {}


def test_every_table_and_view_is_given_to_a_role_or_kept_by_the_owner(setup: Setup) -> None:
    """A table added to sql/ without a decision on who may use it fails here: left out,
    loggers or reports running as these roles would fail on it."""
    relations = {r[0] for r in query(setup.db.dsn, """
        SELECT relname FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v')
           AND NOT relispartition""")}
    decided = {*roles.WRITER_TABLES, *roles.READER_TABLES, *roles.OWNER_ONLY}
    assert relations == decided


def test_a_rerun_grants_nothing_twice(setup: Setup) -> None:
    """The roles have what they need: a re-run rewrites no table's catalog row (a GRANT
    would, even of a privilege held already), so running loggers are not disturbed."""
    dsn = setup.db.dsn
    # (every initdb replaces the views, so their rows change; their grants stay)
    catalog = ("SELECT relname, relacl::text, CASE WHEN relkind <> 'v' THEN xmin::text END"
               "  FROM pg_class WHERE relnamespace = 'public'::regnamespace"
               "   AND relkind IN ('r', 'p', 'v') ORDER BY 1")
    functions = "SELECT proname, proacl::text FROM pg_proc WHERE proacl IS NOT NULL ORDER BY 1"
    before = query(dsn, catalog), query(dsn, functions)
    rerun = run_ok("initdb", "--dsn", dsn, "--writer-role", setup.writer,
                   "--reader-role", setup.reader)
    assert "(checked)" in rerun.stderr
    assert (query(dsn, catalog), query(dsn, functions)) == before


def test_a_missing_role_is_named_with_what_to_run(empty_database: Database) -> None:
    with temporary_role(empty_database.dsn) as reader:
        result = run("initdb", "--dsn", empty_database.dsn, "--writer-role", "Web Writer",
                     "--reader-role", reader)
    assert result.returncode == 2, result.stderr
    (said,) = result.stderr.splitlines()
    assert said.startswith("logpipe[") and "no such role: Web Writer" in said
    assert "nothing was changed" in said
    assert """CREATE ROLE "Web Writer" LOGIN PASSWORD""" in said
    assert scalar(empty_database.dsn, "SELECT to_regclass('access_log')") is None


def test_initdb_warns_when_a_role_could_do_more(database: Database) -> None:
    """A superuser or the tables' owner as the writer, or a role that may create objects
    where logpipe's functions look: the grants are done, and initdb says why they are
    not enough."""
    owner = str(scalar(database.dsn, "SELECT current_user"))
    with temporary_role(database.dsn) as reader:
        execute(database.dsn, f"GRANT CREATE ON SCHEMA public TO {reader}")
        result = run_ok("initdb", "--dsn", database.dsn, "--writer-role", owner,
                        "--reader-role", reader)
        assert scalar(database.dsn, "SELECT has_table_privilege(%s, 'access_log', 'SELECT')",
                      (reader,)) is True
        execute(database.dsn, f"REVOKE CREATE ON SCHEMA public FROM {reader}")
    warnings = [ln for ln in result.stderr.splitlines() if "warning:" in ln]
    assert len(warnings) == 2, result.stderr
    assert "is a superuser" in warnings[0] or "owns logpipe's tables" in warnings[0]
    assert f"role {reader} may create objects in schema public" in warnings[1]
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC" in warnings[1]
