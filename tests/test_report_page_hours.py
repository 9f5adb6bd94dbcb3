"""`pages`, `static` and `tree` read the whole hours of a window's partial first or last
day from logpipe_daily_page_hours (sql/050_daily_summaries.sql) and only the partial
hour from access_log: the same rows as reading that part of the day from access_log,
for every filter; never a summary that is out of date or lacks a page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg2
from conftest import Database, execute, query
from reports_support import as_json

from logpipe.reports.filters import Filters
from logpipe.reports.queries.pages import RollupRange, query_pages, query_static
from logpipe.reports.queries.tree import query_tree
from logpipe.reports.run import prepare_session, rollup_range

UTC = dt.timezone.utc

# 2024-09-01 00:00 to 09-03 ~12:00 UTC, a row every 73 s: two vhosts, 17 paths (two of
# them one page with '//'), assets, GET/HEAD/POST, 200/304/404/500, bots, no user agent,
# %O without %b
ROWS = """
INSERT INTO access_log (time, vhost, method, path, status, bytes, bytes_out, user_agent,
                        is_bot)
SELECT timestamptz '2024-09-01T00:00:00Z' + i * interval '73 seconds',
       CASE WHEN i % 3 = 0 THEN 'a.test' ELSE 'b.test' END,
       (ARRAY['GET', 'GET', 'HEAD', 'POST', 'GET'])[1 + i % 5],
       CASE WHEN i % 17 = 0 THEN '/docs//guide' WHEN i % 17 = 1 THEN '/docs/guide'
            WHEN i % 11 = 0 THEN '/static/site.css' ELSE '/p' || (i % 13) END,
       (ARRAY[200, 200, 304, 200, 404, 200, 500])[1 + i % 7],
       CASE WHEN i % 6 = 0 THEN NULL ELSE i % 5000 END,
       CASE WHEN i % 6 = 0 THEN 777 END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE 'agent' END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE i % 4 = 0 END
  FROM generate_series(1, 3000) i
"""

# The part of a day a bound cuts is its shorter side (pages._split): whole hours of
# the summary, and at the hour cut either that part of it from access_log (05:17:23:
# 05:00-05:17:23; 18:42: 18:42-19:00; 02:10:05; 20:50), or the summary's whole hour
# less the rest of it from access_log (09:45: less 09:45-10:00; 15:30: less
# 15:00-15:30); 13:00: whole hours alone.
SINCE = [dt.datetime(2024, 9, 1, 5, 17, 23, tzinfo=UTC),
         dt.datetime(2024, 9, 1, 9, 45, tzinfo=UTC),
         dt.datetime(2024, 9, 1, 13, 0, tzinfo=UTC),
         dt.datetime(2024, 9, 1, 18, 42, tzinfo=UTC)]
UNTIL = [None, dt.datetime(2024, 9, 2, 2, 10, 5, tzinfo=UTC),
         dt.datetime(2024, 9, 2, 15, 30, tzinfo=UTC),
         dt.datetime(2024, 9, 2, 20, 50, tzinfo=UTC)]
FILTERS: list[dict[str, Any]] = [{}, {"bots": False}, {"bots": True}, {"vhost": "a.test"},
                                 {"path": "/docs/guide"}]


def _rows(cur: Any, name: str, f: Filters, days: RollupRange) -> list[tuple]:
    if name == "pages":
        sql, params = query_pages(f, days)
    elif name == "all":
        sql, params = query_pages(f, days, everything=True)
    elif name == "static":
        sql, params = query_static(f, days)
    else:
        sql, params = query_tree(f, days, 3)
    cur.execute(sql, params)
    return cur.fetchall()


def _compare(dsn: str, expect_hours: bool) -> int:
    """Each report, window and filter with the page hours and without (access_log for
    the partial days): the same rows. Returns how many reports read page hours."""
    read = 0
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        prepare_session(cur)
        for since in SINCE:
            for until in UNTIL:
                for more in FILTERS:
                    f = Filters(since=since, until=until, limit=5, **more)
                    days = rollup_range(cur, f)
                    assert bool(days.page_hours) == expect_hours, (f, days)
                    plain = RollupRange(days.first_day, days.last_day)
                    for name in ("pages", "all", "static", "tree"):
                        if name == "tree" and f.path is not None:
                            continue
                        assert _rows(cur, name, f, days) == _rows(cur, name, f, plain), \
                            (name, f)
                    sql, _ = query_pages(f, days)
                    read += "logpipe_daily_page_hours" in sql
    conn.close()
    return read


def _page_hours_days(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT day, page_hours FROM logpipe_daily_days ORDER BY day")


def test_partial_days_from_page_hours(database: Database) -> None:
    dsn = database.dsn
    execute(dsn, ROWS)
    execute(dsn, "SELECT logpipe_rollup_fold(); SELECT logpipe_daily_refresh()")
    assert _page_hours_days(dsn) == [(dt.date(2024, 9, d), True) for d in (1, 2, 3)]
    # per hour: every row served counted once
    assert query(dsn, "SELECT sum(hits) FROM logpipe_daily_page_hours") \
        == query(dsn, "SELECT count(*) FROM access_log WHERE status < 400")
    assert _compare(dsn, expect_hours=True) > 0

    # A row loaded late into an hour summarized: the day is read from access_log again
    # (its summary no longer matches the quarter-hour rollup) until it is summarized anew.
    execute(dsn, "INSERT INTO access_log (time, vhost, method, path, status, bytes)"
                 " VALUES ('2024-09-01T20:30:00Z', 'a.test', 'GET', '/late', 200, 5),"
                 "        ('2024-09-02T01:30:00Z', 'a.test', 'GET', '/late', 200, 5);"
                 " SELECT logpipe_rollup_fold()")
    assert _compare(dsn, expect_hours=False) == 0
    execute(dsn, "SELECT logpipe_daily_refresh()")
    assert _compare(dsn, expect_hours=True) > 0


def test_no_page_hours_for_a_page_without_its_id(database: Database) -> None:
    """Rows of a page the fold has not numbered yet: the day's hours are not read (they
    would miss that page) until a refresh after the fold."""
    dsn = database.dsn
    execute(dsn, ROWS)
    execute(dsn, "SELECT logpipe_rollup_fold()")
    execute(dsn, "INSERT INTO access_log (time, vhost, method, path, status, bytes)"
                 " VALUES ('2024-09-01T20:30:00Z', 'a.test', 'GET', '/new', 200, 5)")
    execute(dsn, "SELECT logpipe_daily_refresh()")
    assert _page_hours_days(dsn) == [(dt.date(2024, 9, 1), False),
                                     (dt.date(2024, 9, 2), True),
                                     (dt.date(2024, 9, 3), True)]
    execute(dsn, "SELECT logpipe_rollup_fold(); SELECT logpipe_daily_refresh()")
    assert _page_hours_days(dsn) == [(dt.date(2024, 9, d), True) for d in (1, 2, 3)]
    assert _compare(dsn, expect_hours=True) > 0


def test_a_summary_from_before_the_page_hours_is_made_again(database: Database) -> None:
    """Days summarized before the page hours existed (page_hours false after the upgrade
    adds the column) are summarized again, and a page report summarizes the days its
    window takes part of, as the owner."""
    dsn = database.dsn
    execute(dsn, ROWS)
    execute(dsn, "SELECT logpipe_rollup_fold(); SELECT logpipe_daily_refresh();"
                 " UPDATE logpipe_daily_days SET page_hours = false;"
                 " TRUNCATE logpipe_daily_page_hours")
    execute(dsn, "SELECT logpipe_daily_refresh('2024-09-02', '2024-09-03')")
    assert _page_hours_days(dsn) == [(dt.date(2024, 9, 1), False),
                                     (dt.date(2024, 9, 2), True),
                                     (dt.date(2024, 9, 3), False)]
    as_json(dsn, "pages", "--since", "2024-09-01T05:17:23Z", "--until", "2024-09-03T02:00Z")
    assert _page_hours_days(dsn) == [(dt.date(2024, 9, d), True) for d in (1, 2, 3)]
