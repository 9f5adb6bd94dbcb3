"""The psql views of sql/020_reports.sql on reports.log, the same rows as `logpipe report`,
and the host functions the referer reports compare with.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest
from conftest import Database, query, scalar
from reports_support import (
    EVIL,
    EXPECTED,
    FEEDLY,
    GOOGLEBOT,
    H1,
    H2,
    S,
    W,
    loaded_fixture,  # noqa: F401 - the `loaded` fixture
    view,
)


def test_log_loaded_through_the_pipe(loaded: Database) -> None:
    assert loaded.rows() == 49
    assert loaded.rejects() == 0
    bots = dict(query(loaded.dsn, "SELECT user_agent, bool_and(is_bot) FROM access_log"
                      " WHERE user_agent IS NOT NULL GROUP BY 1"))
    assert bots == {H1: False, H2: False, GOOGLEBOT: True, "curl/8.5.0": True, FEEDLY: True}
    assert scalar(loaded.dsn, "SELECT referer FROM access_log WHERE referer LIKE %s",
                  ("https://evil%",)) == EVIL  # Apache's \x1b escape, unescaped


def test_view_referers(loaded: Database) -> None:
    assert view(loaded.dsn, "SELECT * FROM report_referers") == [
        (S, "/product/42", "https://www.example.com/blog/post-1", 2),
        (W, "/", "https://www.google.com/", 2),
        (W, "/blog/post-1", "https://news.ycombinator.com/item?id=1", 2),
        (S, "/", "https://www.example.com/", 1),
        (S, "/product/42", "https://www.google.com/", 1),
        (W, "/about", "https://duckduckgo.com/", 1),
        (W, "/about", "https://news.ycombinator.com/item?id=1", 1),
        (W, "/blog/post-1", EVIL, 1),
        (W, "/blog/post-1", "https://news.ycombinator.com/", 1),
        (W, "/blog/post-1", "https://t.co/abc", 1),
        (W, "/blog/post-1", "https://www.google.com/", 1),
    ]
    assert view(loaded.dsn, "SELECT referer, hits FROM report_referers"
                " WHERE vhost = 'www.example.com' AND path = '/' ") == [
        ("https://www.google.com/", 2)]


def test_view_pages(loaded: Database) -> None:
    assert view(loaded.dsn, "SELECT * FROM report_pages") == [
        (W, "/blog/post-1", 8, 7, 1, 65536),
        (S, "/product/42", 4, 2, 2, 24000),
        (W, "/", 4, 3, 1, 15360),
        (W, "/about", 4, 3, 1, 8192),
        (S, "/cart", 2, 2, 0, 3000),
        (W, "/blog/", 2, 1, 1, 8192),
        (S, "/", 1, 1, 0, 3000),
        (S, "/checkout", 1, 1, 0, 0),
        (S, "/checkout/done", 1, 1, 0, 900),
    ]  # /feed.xml and /robots.txt are in report_static


@pytest.mark.parametrize(("view_name", "name"), [
    ("report_status_daily", "status"),
    ("report_broken_links", "broken-links"),
    ("report_offenders", "offenders"),
    ("report_agents", "agents"),
    ("report_traffic_daily", "traffic"),
])
def test_views_same_as_cli(loaded: Database, view_name: str, name: str) -> None:
    columns, rows = EXPECTED[name]
    got = view(loaded.dsn, f"SELECT * FROM {view_name}")
    assert [d[0] for d in _description(loaded.dsn, view_name)] == columns
    assert got == rows


def _description(dsn: str, view_name: str) -> Any:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {view_name} LIMIT 0")
            return cur.description
    finally:
        conn.close()


def test_view_traffic_hourly(loaded: Database) -> None:
    rows = view(loaded.dsn, "SELECT * FROM report_traffic_hourly")
    assert len(rows) == 17
    assert rows[:3] == [
        ("2024-10-08T09:00:00+00:00", W, 5, 5, 0, 19968),
        ("2024-10-08T10:00:00+00:00", W, 3, 0, 3, 7232),
        ("2024-10-08T14:00:00+00:00", S, 5, 2, 3, 5350),
    ]
    assert rows[-1] == ("2024-10-10T23:00:00+00:00", W, 1, 0, 1, 0)
    assert sum(r[2] for r in rows) == 49


# -- SQL details on a fresh database ------------------------------------------------------------

def test_host_functions(database: Database) -> None:
    cases = {
        "https://WWW.Example.com.:8443/a?b": "www.example.com",
        "http://[2001:db8::1]:80/x": "[2001:db8::1]",
        "http://[::1]/": "[::1]",
        "android-app://com.google.android.gm/": "com.google.android.gm",
        "http://a.b/?x=http://c": "a.b",
        "https://x.com": "x.com",
        "junk": None,
        "": None,
    }
    for url, host in cases.items():
        assert scalar(database.dsn, "SELECT logpipe_url_host(%s)", (url,)) == host, url
    for vhost, host in {"Example.com:443": "example.com", "[::1]:80": "[::1]",
                        "example.com.": "example.com", "": None, None: None}.items():
        assert scalar(database.dsn, "SELECT logpipe_host(%s)", (vhost,)) == host
    assert scalar(database.dsn, "SELECT logpipe_same_site('https://example.com/x',"
                  " 'EXAMPLE.com:80')") is True
    assert scalar(database.dsn, "SELECT logpipe_same_site('https://example.com/x', NULL)") \
        is False
    assert scalar(database.dsn, "SELECT logpipe_same_site(NULL, 'example.com')") is False
    # the host functions are plain expressions PostgreSQL inlines: no call per row
    plan = "\n".join(r[0] for r in query(database.dsn, "EXPLAIN VERBOSE SELECT"
                                         " logpipe_url_host(referer) FROM access_log"))
    assert "logpipe_url_host" not in plan and "split_part" in plan
