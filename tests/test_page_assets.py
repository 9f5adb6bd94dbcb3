"""The page reports over the rollups read each page's static-asset flag
(logpipe_pages.asset) instead of matching paths against logpipe_asset_patterns as they
run: the flag follows every change to the patterns at once, the fold classifies the pages
it adds, initdb classifies every page again, and a page left unclassified is classified
by the report. Whatever the window, the rollups give what access_log alone gives."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from conftest import Database, execute, fresh_database, query, scalar
from reports_support import run_report

from logpipe.reports.filters import Filters
from logpipe.reports.run import prepare_session
from logpipe.reports.run import run_report as run_in_process

UTC = dt.timezone.utc
DAY = dt.datetime(2024, 10, 6, tzinfo=UTC)
SOURCE = "web1"
# pages, assets by extension and not, any case, '//' runs (alone, or beside the page
# they name), no path, a path outside the tree; two vhosts and none
PATHS = ["/", "//", "/x", "//x", "///y", "/x/", "/x//", "/blog/2026/post", "/blog//2026/post",
         "/s.css", "//s.css", "/IMG/Logo.PNG", "/robots.txt", "/docs/g.pdf", "/feed.xml",
         "/js/app.js", "*", None]
VHOSTS = [None, "a.example", "b.example"]
METHODS = ["GET", "GET", "GET", "POST", "HEAD", "OPTIONS", None]
STATUSES = [200, 200, 200, 304, 301, 404, 500]
# what the flag must be: lower-case path, '//' as '/', LIKE a pattern
CLASSIFY = ("SELECT count(*) FROM logpipe_pages WHERE asset IS DISTINCT FROM"
            " lower(logpipe_page_path(path)) LIKE ANY (ARRAY(SELECT pattern"
            " FROM logpipe_asset_patterns))")


def load_rows(dsn: str, count: int = 900, seed: int = 7) -> None:
    """`count` requests over five UTC days, with bots, bytes and every kind of path."""
    rng = random.Random(seed)
    rows = [(DAY + dt.timedelta(seconds=rng.randrange(5 * 86400)), rng.choice(VHOSTS),
             rng.choice(METHODS), rng.choice(PATHS), rng.choice(STATUSES),
             rng.randrange(100000), rng.random() < 0.3) for _ in range(count)]
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO access_log (time, vhost, method, path, status, bytes, is_bot,"
                " user_agent, source) VALUES (%s, %s, %s, %s, %s, %s, %s, 'agent', %s)",
                [(*row, SOURCE) for row in rows])
        with conn, conn.cursor() as cur:
            cur.execute("SELECT logpipe_rollup_fold()")
    finally:
        conn.close()


@pytest.fixture(scope="module", name="mixed_days")
def mixed_days_fixture() -> Iterator[Database]:
    with fresh_database() as db:
        load_rows(db.dsn)
        yield db


class Reports:
    """Reports run in-process, as `logpipe report` runs them once it has folded."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg2.connect(dsn)
        self.conn.set_session(readonly=True, autocommit=True)
        self.cur = self.conn.cursor()
        prepare_session(self.cur)

    def rows(self, name: str, everything: bool = False, **filters: Any) -> list[tuple]:
        f = Filters(**{"limit": 0, **filters})
        return run_in_process(self.cur, name, f, everything, 3)[1]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(name="reports")
def reports_fixture(mixed_days: Database) -> Iterator[Reports]:
    reports = Reports(mixed_days.dsn)
    yield reports
    reports.close()


def at(day: int, hour: int) -> dt.datetime:
    return DAY + dt.timedelta(days=day, hours=hour)


WINDOWS = [
    {},  # all time: the totals
    {"since": at(1, 7)},  # the totals minus a day, plus part of one
    {"since": at(0, 20), "until": at(4, 3)},  # the same, at both ends
    {"since": at(2, 0), "until": at(3, 0)},  # one whole day
    {"since": at(1, 18), "until": at(3, 5)},  # days, and partial days
    {"since": at(2, 9), "until": at(2, 17)},  # within a day: access_log alone
    {"until": at(2, 13)},
    {"since": at(9, 0)},  # after the last request: nothing
]
FILTERS = [{}, {"bots": True}, {"bots": False}, {"vhost": "a.example"}, {"path": "/x"},
           {"path": "/s.css"}]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(
    f"{k}={v:%dT%H}" for k, v in w.items()) or "all-time")
def test_the_rollups_give_what_access_log_gives(reports: Reports,
                                                window: dict[str, dt.datetime]) -> None:
    """--source reads access_log alone (the rollups keep no source): the same rows."""
    for extra in FILTERS:
        filters = {**window, **extra}
        for name, everything in [("pages", False), ("pages", True), ("static", False),
                                 ("tree", False)]:
            if name == "tree" and "path" in extra:
                continue  # tree takes no --path
            from_rollups = reports.rows(name, everything, **filters)
            from_rows = reports.rows(name, everything, sources=(SOURCE,), **filters)
            assert from_rollups == from_rows, (name, everything, filters)
            if not window and not extra:
                assert from_rollups, (name, filters)  # the cross-check compares something
    # --limit cuts both the same way, ties broken by vhost and path
    for limit in (1, 2, 5):
        assert reports.rows("pages", limit=limit, **window) == \
            reports.rows("pages", limit=limit, sources=(SOURCE,), **window)


def test_the_flag_follows_the_patterns_at_once(mixed_days: Database) -> None:
    dsn = mixed_days.dsn
    assert scalar(dsn, "SELECT count(*) FROM logpipe_pages WHERE asset IS NULL") == 0
    assert scalar(dsn, CLASSIFY) == 0
    assets = set(query(dsn, "SELECT path FROM logpipe_pages WHERE asset"))
    assert {("/s.css",), ("//s.css",), ("/IMG/Logo.PNG",), ("/robots.txt",)} <= assets
    assert ("/docs/g.pdf",) not in assets
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            changes = [
                ("INSERT INTO logpipe_asset_patterns VALUES ('%.pdf', 'document')",
                 "/docs/g.pdf", True),
                ("UPDATE logpipe_asset_patterns SET pattern = '/docs/%' WHERE pattern = '%.pdf'",
                 "/docs/g.pdf", True),
                ("DELETE FROM logpipe_asset_patterns WHERE pattern = '%.css'", "//s.css", False),
                ("TRUNCATE logpipe_asset_patterns", "/robots.txt", False),
            ]
            for statement, path, asset in changes:
                cur.execute(statement)
                # in the same transaction, before it commits: the trigger has run
                cur.execute("SELECT bool_and(asset) FROM logpipe_pages WHERE path = %s", (path,))
                assert cur.fetchone()[0] is asset, statement
                cur.execute(CLASSIFY)
                assert cur.fetchone()[0] == 0, statement
            cur.execute("SELECT count(*) FROM logpipe_pages WHERE asset")
            assert cur.fetchone()[0] == 0  # no pattern: no asset
        conn.rollback()
    finally:
        conn.close()
    assert set(query(dsn, "SELECT path FROM logpipe_pages WHERE asset")) == assets


def test_a_page_without_its_flag_is_classified_by_the_report(database: Database) -> None:
    """A flag gone (NULL) or wrong: the report classifies the first itself, and initdb
    classifies every page again."""
    dsn = database.dsn
    load_rows(dsn, count=300, seed=11)
    reports = Reports(dsn)
    try:
        expected = {name: reports.rows(name) for name in ("pages", "static", "tree")}
        assert expected["static"]
        execute(dsn, "UPDATE logpipe_pages SET asset = NULL")
        assert {name: reports.rows(name) for name in expected} == expected
        execute(dsn, "UPDATE logpipe_pages SET asset = NOT coalesce(asset, false)")
        assert reports.rows("static") != expected["static"]  # the flag is what counts
        database.initdb()
        assert scalar(dsn, CLASSIFY) == 0
        assert {name: reports.rows(name) for name in expected} == expected
    finally:
        reports.close()


def test_a_fold_waits_for_a_change_of_the_patterns(database: Database) -> None:
    """Pages the fold adds are classified by the patterns as they are once a change
    commits, never by the ones it replaces: the fold waits for it."""
    dsn = database.dsn
    operator, writer = psycopg2.connect(dsn), psycopg2.connect(dsn)
    try:
        with operator.cursor() as cur:  # left open: not committed yet
            cur.execute("INSERT INTO logpipe_asset_patterns VALUES ('%.pdf', 'document')")
        execute(dsn, "INSERT INTO access_log (time, method, path, status, bytes)"
                     " VALUES (now(), 'GET', '/new.pdf', 200, 5)")
        with writer.cursor() as cur:
            cur.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cur.execute("SELECT logpipe_rollup_fold()")
        writer.rollback()
        operator.commit()
        with writer.cursor() as cur:
            cur.execute("SELECT logpipe_rollup_fold()")
        writer.commit()
        assert query(dsn, "SELECT asset FROM logpipe_pages WHERE path = '/new.pdf'") == [(True,)]
    finally:
        operator.close()
        writer.close()


def test_initdb_adds_the_flag_to_a_database_without_it(database: Database) -> None:
    """A database from before the flag: initdb adds it (and its indexes), classifies
    every page, and the reports count as before."""
    dsn = database.dsn
    load_rows(dsn, count=300, seed=5)
    reports = Reports(dsn)
    try:
        expected = {name: reports.rows(name) for name in ("pages", "static", "tree")}
    finally:
        reports.close()
    execute(dsn, "DROP INDEX logpipe_pages_slashed;"
                 " ALTER TABLE logpipe_pages DROP COLUMN asset")
    proc = run_report(dsn, "pages")  # this logpipe on that schema: says what to do
    assert proc.returncode == 1 and "run `logpipe initdb` first" in proc.stderr
    assert "Traceback" not in proc.stderr
    database.initdb()
    assert scalar(dsn, CLASSIFY) == 0
    assert scalar(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname IN"
                       " ('logpipe_pages_slashed', 'logpipe_pages_unclassified')") == 2
    reports = Reports(dsn)
    try:
        assert {name: reports.rows(name) for name in expected} == expected
    finally:
        reports.close()
