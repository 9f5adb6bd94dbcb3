"""The `pages` report: rollup days added up or subtracted from the totals, partial days
corrected from access_log; every way gives the direct count. Page views only (GET and
POST, not static assets, '//' as '/'), every request served with --all; pruned days and
days counted before views were still counted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg2
from conftest import Database, execute, fresh_database, query
from pages_support import (
    ALL,
    PAGES,
    PAGES_AFTERNOON,
    PAGES_BOTS,
    load_mixed,
    mixed_fixture,  # noqa: F401 - the `mixed` fixture
)
from partition_support import run, run_ok
from reports_support import S, W, as_json, loaded_fixture  # noqa: F401 - the `loaded` fixture
from reports_support import view as view_rows

from logpipe.reports.filters import Filters
from logpipe.reports.queries.pages import RollupRange, candidates, query_pages
from logpipe.reports.run import prepare_session, run_report


def test_pages_windows(loaded: Database) -> None:
    """pages adds up rollup days, or subtracts them from the totals, and corrects the
    partial days at either end from access_log: every way gives the direct count."""
    # 20:00 on the 9th to 23:00 on the 10th: 4 h of the 9th and the 10th without its
    # last hour; fewer days inside than outside, so the days are added up
    # (--all: every request served, assets too, as the rollup's hits count them)
    assert as_json(loaded.dsn, "pages", "--all", "--since", "2024-10-09T20:00:00Z",
                   "--until", "2024-10-10T23:00:00Z") == [
        {"vhost": W, "path": "/blog/post-1", "hits": 3, "bytes": 24576},
        {"vhost": S, "path": "/product/42", "hits": 2, "bytes": 12000},
        {"vhost": S, "path": "/checkout", "hits": 1, "bytes": 0},
        {"vhost": S, "path": "/checkout/done", "hits": 1, "bytes": 900},
        {"vhost": W, "path": "/", "hits": 1, "bytes": 5120},
        {"vhost": W, "path": "/about", "hits": 1, "bytes": 2048},
        {"vhost": W, "path": "/blog/", "hits": 1, "bytes": 4096},
        {"vhost": W, "path": "/feed.xml", "hits": 1, "bytes": 10000},
    ]
    # from 09:05:30 on the first day: the totals minus the early morning of the 8th
    assert as_json(loaded.dsn, "pages", "--all", "--since", "2024-10-08T09:05:30Z") == [
        {"vhost": W, "path": "/blog/post-1", "hits": 8, "bytes": 65536},
        {"vhost": S, "path": "/product/42", "hits": 4, "bytes": 24000},
        {"vhost": W, "path": "/about", "hits": 4, "bytes": 8192},
        {"vhost": W, "path": "/", "hits": 3, "bytes": 10240},
        {"vhost": S, "path": "/cart", "hits": 2, "bytes": 3000},
        {"vhost": W, "path": "/blog/", "hits": 2, "bytes": 8192},
        {"vhost": W, "path": "/feed.xml", "hits": 2, "bytes": 10000},
        {"vhost": S, "path": "/", "hits": 1, "bytes": 3000},
        {"vhost": S, "path": "/checkout", "hits": 1, "bytes": 0},
        {"vhost": S, "path": "/checkout/done", "hits": 1, "bytes": 900},
        {"vhost": W, "path": "/robots.txt", "hits": 1, "bytes": 64},
    ]


def test_pages_plan_choice() -> None:
    """Which rollup `pages` reads: the days, or the totals minus the days outside."""
    days = RollupRange(dt.date(2024, 10, 1), dt.date(2024, 10, 30))
    utc = dt.timezone.utc
    month = Filters(since=dt.datetime(2024, 10, 2, 6, tzinfo=utc))
    sql, _ = query_pages(month, days)
    assert "FROM logpipe_pages p WHERE" in sql and "r.day < %(lo_day)s" in sql
    week = Filters(since=dt.datetime(2024, 10, 20, 18, tzinfo=utc),
                   until=dt.datetime(2024, 10, 27, tzinfo=utc))
    sql, params = query_pages(week, days)
    assert "FROM logpipe_pages p WHERE" not in sql
    assert params["lo_day"] == dt.date(2024, 10, 21) and params["hi_day"] == dt.date(2024, 10, 27)
    assert params["lo_start"] == dt.datetime(2024, 10, 20, 18, tzinfo=utc)  # 6 h from access_log
    assert "hi_start" not in params  # until is midnight: no partial day
    assert "access_log" not in query_pages(Filters(), days)[0]  # all time


def all_rows(dsn: str, *args: str) -> dict[str, tuple[int, int]]:
    """pages --all as path -> (hits, bytes), with no limit."""
    return {r["path"]: (r["hits"], r["bytes"])
            for r in as_json(dsn, "pages", "--all", "--limit", "0", *args)}


def test_pages_are_page_views(mixed: Database) -> None:
    """GET and POST requests served, for paths that are not assets, '//' read as '/':
    HEAD, OPTIONS, PROPFIND, stylesheets, images, fonts, feeds and errors are not pages."""
    assert as_json(mixed.dsn, "pages") == PAGES
    assert as_json(mixed.dsn, "pages", "--limit", "2") == PAGES[:2]
    # from the partial day (access_log) as from whole days (the rollup)
    assert as_json(mixed.dsn, "pages", "--since", "2024-10-08T12:00:00Z") == PAGES_AFTERNOON
    assert as_json(mixed.dsn, "pages", "--since", "2024-10-08T12:00:00Z",
                   "--until", "2024-10-08T18:00:00Z") == PAGES_AFTERNOON
    assert as_json(mixed.dsn, "pages", "--bots") == PAGES_BOTS
    assert as_json(mixed.dsn, "pages", "--humans") == [
        {"vhost": None, "path": "/", "hits": 3, "bytes": 2000},
        {"vhost": None, "path": "/blog/2026/", "hits": 1, "bytes": 1500},
        {"vhost": None, "path": "/blog/2026/hello", "hits": 1, "bytes": 2000},
        {"vhost": None, "path": "/contact", "hits": 1, "bytes": 300},
        {"vhost": None, "path": "/docs/guide.pdf", "hits": 1, "bytes": 50000}]
    # --source reads access_log alone: the same counts
    assert as_json(mixed.dsn, "pages", "--source", "no-such-server") == []
    source = query(mixed.dsn, "SELECT DISTINCT source FROM access_log")[0][0]
    assert as_json(mixed.dsn, "pages", "--source", source) == PAGES
    # --path names the page as the report does: '//' in it or in the requests is '/'
    for path in ("/", "//"):
        assert as_json(mixed.dsn, "pages", "--path", path) == PAGES[:1]
        assert as_json(mixed.dsn, "pages", "--path", path, "--since",
                       "2024-10-08T06:00:00Z", "--until", "2024-10-08T09:00:00Z") == PAGES[:1]
    # the view for psql: the same rows, with the split by bots
    assert view_rows(mixed.dsn, "SELECT * FROM report_pages") == [
        (None, "/", 3, 3, 0, 2000), (None, "/blog/2026/hello", 2, 1, 1, 4000),
        (None, "/contact", 2, 1, 1, 1000), (None, "/blog/2026/", 1, 1, 0, 1500),
        (None, "/docs/guide.pdf", 1, 1, 0, 50000)]


def test_pages_all_counts_every_request_served(mixed: Database) -> None:
    assert all_rows(mixed.dsn) == ALL
    assert sum(hits for hits, _ in ALL.values()) == 24  # 27 lines, 3 not served
    assert as_json(mixed.dsn, "pages", "--all", "--limit", "1") == [
        {"vhost": None, "path": "/", "hits": 4, "bytes": 2000}]
    source = query(mixed.dsn, "SELECT DISTINCT source FROM access_log")[0][0]
    assert all_rows(mixed.dsn, "--source", source) == ALL
    # --all is for pages; the other reports say so
    refused = run("report", "static", "--all", "--dsn", mixed.dsn)
    assert refused.returncode == 2 and "--all is for `logpipe report pages`" in refused.stderr


def test_pages_over_pruned_days(database: Database, tmp_path: Path) -> None:
    """Pruned days are counted by the rollups alone: pages, static and --all read the
    same after `logpipe prune` and after a rebuild of the rollups; days pruned before
    the rollups counted views (an upgraded database) count their requests served as
    views, assets still told apart by path."""
    dsn = database.dsn
    load_mixed(database, tmp_path)
    reports = [("pages",), ("pages", "--all"), ("static",),
               ("pages", "--since", "2024-10-08", "--until", "2024-10-08"),
               ("pages", "--since", "2024-10-09")]  # nothing
    before = {args: as_json(dsn, *args, "--limit", "0") for args in reports}
    assert before[("pages",)] == PAGES

    run_ok("prune", "--dsn", dsn, "--older-than", "90d")
    assert query(dsn, "SELECT count(*) FROM access_log") == [(0,)]
    assert {args: as_json(dsn, *args, "--limit", "0") for args in reports} == before
    execute(dsn, "COMMENT ON TABLE logpipe_rollup_daily IS 'rebuild'")
    database.initdb()
    assert {args: as_json(dsn, *args, "--limit", "0") for args in reports} == before

    # a database whose rollups had no views when these days were pruned
    execute(dsn, """
        ALTER TABLE logpipe_rollup_daily DROP COLUMN views CASCADE,
            DROP COLUMN bot_views, DROP COLUMN view_bytes, DROP COLUMN bot_view_bytes;
        ALTER TABLE logpipe_pages DROP COLUMN views CASCADE, DROP COLUMN bot_views,
            DROP COLUMN view_bytes, DROP COLUMN bot_view_bytes;
        ALTER TABLE logpipe_pending_pages DROP COLUMN views CASCADE,
            DROP COLUMN bot_views, DROP COLUMN view_bytes, DROP COLUMN bot_view_bytes;
        COMMENT ON TABLE logpipe_rollup_daily IS 'logpipe rollup v4'""")
    database.initdb()
    assert query(dsn, "SELECT count(*) FROM logpipe_rollup_daily WHERE views IS NULL") == [
        (query(dsn, "SELECT count(*) FROM logpipe_rollup_daily")[0][0],)]
    # requests served stand in for views: HEAD, OPTIONS and PROPFIND count now
    assert {r["path"]: (r["hits"], r["bytes"]) for r in as_json(dsn, "pages", "--limit", "0")} \
        == {path: ALL[path] for path in ("/", "/blog/2026/hello", "/contact", "/blog/2026/",
                                         "/docs/guide.pdf", "/api/items", "/dav/notes/", "*")}
    assert as_json(dsn, "pages", "--all", "--limit", "0") == before[("pages", "--all")]
    # and new requests add to those days' counts as views
    execute(dsn, "INSERT INTO access_log (time, method, path, status, bytes, user_agent)"
                 " VALUES ('2024-10-08T20:00:00Z', 'HEAD', '/', 200, 0, 'x'),"
                 " ('2024-10-08T20:00:00Z', 'GET', '/', 200, 5, 'x')")
    assert as_json(dsn, "pages", "--limit", "1") == [
        {"vhost": None, "path": "/", "hits": 5, "bytes": 2005}]


def test_pages_after_an_upgrade_from_version_1(empty_database: Database) -> None:
    """A database of schema version 1 (rollups without views, rows in them) gets the
    views columns from initdb and counts its rows' views: the same as a new one."""
    dsn = empty_database.dsn
    for path in sorted((Path(__file__).parent / "data" / "schema_v1").glob("*.sql")):
        execute(dsn, path.read_text())
    rows = ("INSERT INTO access_log (time, method, path, status, bytes, user_agent) VALUES"
            " ('2024-10-08T10:00Z', 'GET', '/a', 200, 10, 'x'),"
            " ('2024-10-08T10:00Z', 'HEAD', '/a', 200, 0, 'x'),"
            " ('2024-10-08T11:00Z', 'GET', '/s.css', 200, 5, 'x'),"
            " ('2024-10-09T10:00Z', 'POST', '//a', 200, 7, 'x')")
    execute(dsn, rows)
    empty_database.initdb()
    assert query(dsn, "SELECT count(*) FROM logpipe_rollup_daily WHERE views IS NULL") == [(0,)]
    expected = {("pages",): [{"vhost": None, "path": "/a", "hits": 2, "bytes": 17}],
                ("static",): [{"vhost": None, "path": "/s.css", "hits": 1, "bytes": 5}],
                ("pages", "--all"): [{"vhost": None, "path": "/a", "hits": 3, "bytes": 17},
                                     {"vhost": None, "path": "/s.css", "hits": 1, "bytes": 5}]}
    assert {args: as_json(dsn, *args) for args in expected} == expected
    with fresh_database() as new:  # the same rows in a new database
        execute(new.dsn, rows)
        assert {args: as_json(new.dsn, *args) for args in expected} == expected
    empty_database.initdb()  # again: nothing to add
    assert {args: as_json(dsn, *args) for args in expected} == expected


def test_slashes_make_one_page(database: Database) -> None:
    """Paths that differ only in runs of '/' are one page, whether or not a request
    named it with single slashes, in every way the report counts."""
    dsn = database.dsn
    execute(dsn, "INSERT INTO access_log (time, method, path, status, bytes, user_agent,"
                 " source) SELECT now() - interval '1 hour', 'GET', p, 200, 1, 'x', 'web1'"
                 " FROM unnest(ARRAY['//x', '///x', '//x', '/y', '//y//', '/y/',"
                 " '//s.css', '/s.css']) AS p")
    expected = [{"vhost": None, "path": "/x", "hits": 3, "bytes": 3},
                {"vhost": None, "path": "/y/", "hits": 2, "bytes": 2},
                {"vhost": None, "path": "/y", "hits": 1, "bytes": 1}]
    for args in [(), ("--since", "2h"), ("--source", "web1")]:  # rollups, partial day, rows
        assert as_json(dsn, "pages", *args) == expected, args
    assert as_json(dsn, "pages", "--limit", "1") == expected[:1]
    assert as_json(dsn, "static") == [{"vhost": None, "path": "/s.css", "hits": 2, "bytes": 2}]
    assert view_rows(dsn, "SELECT path, hits FROM report_pages") == [
        ("/x", 3), ("/y/", 2), ("/y", 1)]


# Pages of two vhosts, GET 200: a.test's most requested of all time are the window's too;
# b.test's pages were requested most long ago, and /late, new, is first in the window.
SETTLED, UNSETTLED = "a.test", "b.test"
WINDOW = "2024-09-25T06:00:00Z"  # 16 of the rollup's 40 days: a long window


def _requests(vhost: str, path: str, day: str, count: int) -> str:
    return ("INSERT INTO access_log (time, vhost, method, path, status, bytes, user_agent)"
            f" SELECT '{day}T12:00:00Z'::timestamptz + i * interval '1 second', '{vhost}',"
            f" 'GET', '{path}', 200, 10, 'x' FROM generate_series(1, {count}) i;")


def _direct(dsn: str, limit: int, vhost: str | None = None, since: str = WINDOW
            ) -> list[dict]:
    """pages since WINDOW counted in access_log itself, as the report ranks them."""
    rows = query(dsn, "SELECT vhost, path, count(*), sum(bytes) FROM access_log"
                      " WHERE time >= %s AND coalesce(vhost = %s, true)"
                      " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT %s", (since, vhost, limit))
    return [{"vhost": v, "path": p, "hits": h, "bytes": b} for v, p, h, b in rows]


def _everyone_counted(dsn: str, f: Filters) -> bool:
    """Whether pages' query for `f` counted every page (its one-time filter let that
    branch run), from the plan of a run of it."""
    days = RollupRange(*query(dsn, "SELECT min(day), max(day) FROM logpipe_rollup_daily")[0])
    sql, params = query_pages(f, days)
    assert "verdict" in sql  # the query that can settle on a few pages
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cur.fetchone()[0][0]["Plan"]
    finally:
        conn.close()

    def gated(node: dict) -> list[dict]:  # the node(s) under the NOT verdict filter
        found = [node] if node.get("One-Time Filter", "").startswith("(NOT") else []
        return found + [n for child in node.get("Plans", []) for n in gated(child)]

    [gate] = gated(plan)
    [branch] = [n for n in gate["Plans"] if n["Parent Relationship"] == "Outer"]
    return branch["Actual Loops"] > 0


def test_pages_settled_by_the_pages_most_requested_of_all_time(database: Database) -> None:
    """A long window is counted for the pages with the most requests of all time first
    (candidates()); when their counts settle the top --limit, no other page is counted,
    else every page is. Either way the rows are the direct count's."""
    dsn = database.dsn
    statements = []
    for i in range(70):
        path = f"/p{i:02d}"
        statements.append(_requests(SETTLED, path, "2024-09-01", 70 - i))  # outside
        statements.append(_requests(SETTLED, path, "2024-10-10", 10 * (70 - i)))  # inside
        statements.append(_requests(UNSETTLED, path, "2024-09-01", 1000 - 10 * i))
        statements.append(_requests(UNSETTLED, path, "2024-10-09", 70 - i))
    statements.append(_requests(UNSETTLED, "/late", "2024-10-09", 500))
    execute(dsn, "".join(statements))
    limit = 3
    assert candidates(limit) < 70  # /late is no candidate on b.test
    for vhost in (SETTLED, UNSETTLED, None):
        args = ["--vhost", vhost] if vhost else []
        for n in (limit, 20):
            assert as_json(dsn, "pages", "--since", WINDOW, "--limit", str(n), *args) \
                == _direct(dsn, n, vhost)
    assert as_json(dsn, "pages", "--since", WINDOW, "--vhost", UNSETTLED, "--limit", "1") \
        == [{"vhost": UNSETTLED, "path": "/late", "hits": 500, "bytes": 5000}]
    since = dt.datetime(2024, 9, 25, 6, tzinfo=dt.timezone.utc)
    assert not _everyone_counted(dsn, Filters(since=since, vhost=SETTLED, limit=limit))
    assert _everyone_counted(dsn, Filters(since=since, vhost=UNSETTLED, limit=limit))

    # Rows not folded yet, of the partial day the window adds from access_log: /burst,
    # no candidate (1 request of all time, folded), has 800 more from 20:00 that only
    # access_log holds; a report that cannot fold must count every page to find it.
    execute(dsn, _requests(SETTLED, "/burst", "2024-09-01", 1))
    as_json(dsn, "pages", "--limit", "1")  # folds
    execute(dsn, _requests(SETTLED, "/burst", "2024-09-25", 800).replace("12:00", "20:00"))
    assert query(dsn, "SELECT count(*) FROM logpipe_pending_pages WHERE path = '/burst'") \
        == [(1,)]
    late = "2024-09-25T18:00:00Z"  # the rest of that day is read from access_log
    unfolded = Filters(since=dt.datetime(2024, 9, 25, 18, tzinfo=dt.timezone.utc),
                       vhost=SETTLED, limit=limit)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        prepare_session(cur)
        rows = run_report(cur, "pages", unfolded)[1]
    conn.close()
    assert [{"vhost": v, "path": p, "hits": h, "bytes": b} for v, p, h, b in rows] \
        == _direct(dsn, limit, SETTLED, late)
    assert rows[0][1:3] == ("/burst", 800)

    # The same, with the unfolded rows in the day's last quarter hour and the session
    # 14 hours ahead of UTC: pending counts are found by the UTC day of their quarter
    # (logpipe_pending_quarters stands for logpipe_pending_pages there).
    execute(dsn, _requests(SETTLED, "/late-night", "2024-09-01", 1))
    as_json(dsn, "pages", "--limit", "1")  # folds /burst and that first request
    execute(dsn, _requests(SETTLED, "/late-night", "2024-09-25", 900)
            .replace("12:00", "23:45"))  # 23:45:01 to 00:00:00 UTC
    execute(dsn, "DELETE FROM access_log WHERE time >= '2024-09-26T00:00:00Z'"
                 " AND path = '/late-night'")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        prepare_session(cur)
        cur.execute("SET TimeZone = 'Pacific/Kiritimati'")
        rows = run_report(cur, "pages", unfolded)[1]
    conn.close()
    assert [{"vhost": v, "path": p, "hits": h, "bytes": b} for v, p, h, b in rows] \
        == _direct(dsn, limit, SETTLED, late)
    assert rows[0][1:3] == ("/late-night", 899)
