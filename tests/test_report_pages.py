"""The `pages` report: rollup days added up or subtracted from the totals, partial days
corrected from access_log; every way gives the direct count.
"""

from __future__ import annotations

import datetime as dt

from conftest import Database
from reports_support import S, W, as_json, loaded_fixture  # noqa: F401 - the `loaded` fixture

from logpipe.reports.filters import Filters
from logpipe.reports.queries.pages import RollupRange, query_pages


def test_pages_windows(loaded: Database) -> None:
    """pages adds up rollup days, or subtracts them from the totals, and corrects the
    partial days at either end from access_log: every way gives the direct count."""
    # 20:00 on the 9th to 23:00 on the 10th: 4 h of the 9th and the 10th without its
    # last hour; fewer days inside than outside, so the days are added up
    assert as_json(loaded.dsn, "pages", "--since", "2024-10-09T20:00:00Z",
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
    assert as_json(loaded.dsn, "pages", "--since", "2024-10-08T09:05:30Z") == [
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
