"""`logpipe report` filters: --humans/--bots, --path, --vhost, --since/--until (ISO and
relative) and --limit.
"""

from __future__ import annotations

from conftest import Database
from reports_support import (
    AGENTS,
    BROKEN,
    EVIL,
    EXPECTED,
    FEEDLY,
    H1,
    OFFENDERS,
    PAGES,
    STATUS,
    TRAFFIC,
    S,
    W,
    as_json,
    dicts,
    loaded_fixture,  # noqa: F401 - the `loaded` fixture
)


def test_humans_and_bots(loaded: Database) -> None:
    assert as_json(loaded.dsn, "referers", "--humans") == [
        {"referer": "https://news.ycombinator.com/item?id=1", "hits": 3},
        {"referer": "https://www.google.com/", "hits": 3},
        {"referer": "https://www.example.com/blog/post-1", "hits": 2},
        {"referer": "https://duckduckgo.com/", "hits": 1},
        {"referer": EVIL, "hits": 1},
        {"referer": "https://news.ycombinator.com/", "hits": 1},
        {"referer": "https://t.co/abc", "hits": 1},
        {"referer": "https://www.example.com/", "hits": 1},
    ]
    # the one bot with a referer: a request without User-Agent
    assert as_json(loaded.dsn, "referers", "--bots") == [
        {"referer": "https://www.google.com/", "hits": 1}]
    assert as_json(loaded.dsn, "pages", "--bots", "--vhost", W) == [
        {"vhost": W, "path": "/", "hits": 1, "bytes": 5120},
        {"vhost": W, "path": "/about", "hits": 1, "bytes": 2048},
        {"vhost": W, "path": "/blog/", "hits": 1, "bytes": 4096},
        {"vhost": W, "path": "/blog/post-1", "hits": 1, "bytes": 8192},
    ]  # and the assets /feed.xml and /robots.txt: `report static`
    assert as_json(loaded.dsn, "agents", "--humans") == dicts(AGENTS)[:2]
    assert [r["hits"] for r in as_json(loaded.dsn, "traffic", "--humans")] == \
        [r[3] for r in TRAFFIC[1]]
    assert as_json(loaded.dsn, "offenders", "--bots", "--limit", "2") == \
        dicts(OFFENDERS)[:1] + [dicts(OFFENDERS)[3]]


def test_path_filter(loaded: Database) -> None:
    assert as_json(loaded.dsn, "referers", "--path", "/blog/post-1") == [
        {"referer": "https://news.ycombinator.com/item?id=1", "hits": 2},
        {"referer": EVIL, "hits": 1},
        {"referer": "https://news.ycombinator.com/", "hits": 1},
        {"referer": "https://t.co/abc", "hits": 1},
        {"referer": "https://www.google.com/", "hits": 1},
    ]
    assert as_json(loaded.dsn, "referers", "--path", "/product/42") == [
        {"referer": "https://www.example.com/blog/post-1", "hits": 2},
        {"referer": "https://www.google.com/", "hits": 1},
    ]
    assert as_json(loaded.dsn, "referers", "--path", "/nowhere") == []
    assert as_json(loaded.dsn, "broken-links", "--path", "/old-page") == \
        [dicts(BROKEN)[1], dicts(BROKEN)[3]]
    assert as_json(loaded.dsn, "status", "--path", "/old-page") == [
        {"day": "2024-10-08", "vhost": W, "status": 404, "hits": 1},
        {"day": "2024-10-09", "vhost": W, "status": 404, "hits": 2},
        {"day": "2024-10-10", "vhost": W, "status": 410, "hits": 1},
    ]


def test_vhost_filter(loaded: Database) -> None:
    assert as_json(loaded.dsn, "referers", "--vhost", S) == [
        {"referer": "https://www.example.com/blog/post-1", "hits": 2},
        {"referer": "https://www.example.com/", "hits": 1},
        {"referer": "https://www.google.com/", "hits": 1},
    ]
    assert as_json(loaded.dsn, "pages", "--vhost", S) == \
        [r for r in dicts(PAGES) if r["vhost"] == S]
    assert as_json(loaded.dsn, "broken-links", "--vhost", S) == dicts(BROKEN)[:1]
    assert as_json(loaded.dsn, "offenders", "--vhost", S) == [
        {"remote_host": "198.51.100.7", "errors": 3, "client_errors": 3, "server_errors": 0,
         "requests": 3, "last_seen": "2024-10-08T14:30:02+00:00"},
        {"remote_host": "192.0.2.11", "errors": 1, "client_errors": 1, "server_errors": 0,
         "requests": 3, "last_seen": "2024-10-09T18:02:00+00:00"},
        {"remote_host": "192.0.2.15", "errors": 1, "client_errors": 1, "server_errors": 0,
         "requests": 1, "last_seen": "2024-10-10T21:00:00+00:00"},
    ]
    assert as_json(loaded.dsn, "traffic", "--vhost", "nowhere.example") == []


def test_since_until(loaded: Database) -> None:
    # a partial first day and a partial last day around one whole day: pages reads the
    # whole day from the rollup and the partial ones from access_log
    args = ("--since", "2024-10-08T12:00:00Z", "--until", "2024-10-10T12:00:00+00:00")
    assert as_json(loaded.dsn, "pages", *args) == [
        {"vhost": W, "path": "/blog/post-1", "hits": 7, "bytes": 57344},
        {"vhost": S, "path": "/cart", "hits": 2, "bytes": 3000},
        {"vhost": S, "path": "/product/42", "hits": 2, "bytes": 12000},
        {"vhost": W, "path": "/", "hits": 2, "bytes": 5120},
        {"vhost": S, "path": "/", "hits": 1, "bytes": 3000},
        {"vhost": W, "path": "/about", "hits": 1, "bytes": 2048},
        {"vhost": W, "path": "/blog/", "hits": 1, "bytes": 4096},
    ]
    assert as_json(loaded.dsn, "traffic", *args) == [
        {"day": "2024-10-08", "vhost": S, "hits": 5, "human_hits": 2, "bot_hits": 3,
         "bytes": 5350},
        {"day": "2024-10-09", "vhost": S, "hits": 4, "human_hits": 3, "bot_hits": 1,
         "bytes": 13900},
        {"day": "2024-10-09", "vhost": W, "hits": 14, "human_hits": 9, "bot_hits": 5,
         "bytes": 37764},
        {"day": "2024-10-10", "vhost": W, "hits": 9, "human_hits": 4, "bot_hits": 5,
         "bytes": 34904},
    ]
    # --since is inclusive, --until exclusive
    assert as_json(loaded.dsn, "agents", "--since", "2024-10-10T23:00:00Z") == [
        {"user_agent": FEEDLY, "is_bot": True, "hits": 1,
         "last_seen": "2024-10-10T23:00:00+00:00"}]
    assert as_json(loaded.dsn, "agents", "--until", "2024-10-08T09:05:30Z") == [
        {"user_agent": H1, "is_bot": False, "hits": 1,
         "last_seen": "2024-10-08T09:05:00+00:00"}]
    # a date alone as --until means the end of that day
    assert [r["day"] for r in as_json(loaded.dsn, "traffic", "--until", "2024-10-09")] == \
        ["2024-10-08", "2024-10-08", "2024-10-09", "2024-10-09"]
    assert as_json(loaded.dsn, "pages", "--since", "2024-10-10", "--until", "2024-10-10",
                   "--limit", "1") == [
        {"vhost": W, "path": "/blog/post-1", "hits": 3, "bytes": 24576}]


def test_relative_times(loaded: Database) -> None:
    # the log is from October 2024: 100000 days back covers it, 12h back does not
    for name, expected in EXPECTED.items():
        assert as_json(loaded.dsn, name, "--since", "100000d") == dicts(expected)
        assert as_json(loaded.dsn, name, "--since", "12h") == []
    assert as_json(loaded.dsn, "pages", "--until", "15m") == dicts(PAGES)


def test_limit(loaded: Database) -> None:
    assert as_json(loaded.dsn, "pages", "--limit", "2") == dicts(PAGES)[:2]
    assert as_json(loaded.dsn, "pages", "--limit", "3") == dicts(PAGES)[:3]  # cut in a tie
    assert as_json(loaded.dsn, "status", "--limit", "3") == dicts(STATUS)[:3]
    assert len(as_json(loaded.dsn, "pages", "--limit", "0")) == 9
    assert len(as_json(loaded.dsn, "status")) == 19  # no default limit for time series
