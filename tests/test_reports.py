"""Reports: a hand-made log loaded through the real pipe, then every report's exact rows
in the psql views and through `logpipe report` as table, CSV and JSON.

tests/data/reports.log (vhost_combined, 49 lines, 8-10 Oct 2024 UTC) has two vhosts
(www.example.com, shop.example.com), external referers (Google, Hacker News, t.co,
one with a terminal escape), internal ones, links from the sites' own pages to
missing pages (404/410), a curl scanner, Googlebot, a feed reader, a request with no
User-Agent and one with no request line ("-", 408). Expected values were worked out
by hand from the log. Requires the writer to classify agents with
logpipe.agents.classify_agent (cli.make_parser_factory does).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import Database, execute, logpipe_cmd, query, scalar, start_logger, wait_for

from logpipe import cli
from logpipe.reports import command as report

DATA = Path(__file__).resolve().parent / "data"
H1 = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
H2 = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 "
      "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FEEDLY = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers)"
EVIL = "https://evil.example/\x1b[31mred\x1b[0m"
W, S = "www.example.com", "shop.example.com"

# -- expected rows: (columns, rows) as the CLI prints them, in order ---------------------

REFERERS = (["referer", "hits"], [
    ("https://www.google.com/", 4),
    ("https://news.ycombinator.com/item?id=1", 3),
    ("https://www.example.com/blog/post-1", 2),  # shop.example.com pages: external there
    ("https://duckduckgo.com/", 1),
    (EVIL, 1),
    ("https://news.ycombinator.com/", 1),
    ("https://t.co/abc", 1),
    ("https://www.example.com/", 1),
])
PAGES = (["vhost", "path", "hits", "bytes"], [
    (W, "/blog/post-1", 8, 65536),
    (S, "/product/42", 4, 24000),
    (W, "/", 4, 15360),
    (W, "/about", 4, 8192),
    (S, "/cart", 2, 3000),
    (W, "/blog/", 2, 8192),
    (W, "/feed.xml", 2, 10000),
    (S, "/", 1, 3000),
    (S, "/checkout", 1, 0),
    (S, "/checkout/done", 1, 900),
    (W, "/robots.txt", 1, 64),
])
STATUS = (["day", "vhost", "status", "hits"], [
    ("2024-10-08", S, 200, 2), ("2024-10-08", S, 403, 1), ("2024-10-08", S, 404, 2),
    ("2024-10-08", W, 200, 7), ("2024-10-08", W, 404, 1),
    ("2024-10-09", S, 200, 3), ("2024-10-09", S, 404, 1),
    ("2024-10-09", W, 200, 5), ("2024-10-09", W, 304, 1), ("2024-10-09", W, 404, 6),
    ("2024-10-09", W, 500, 2),
    ("2024-10-10", S, 200, 3), ("2024-10-10", S, 302, 1), ("2024-10-10", S, 404, 1),
    ("2024-10-10", W, 200, 7), ("2024-10-10", W, 304, 1), ("2024-10-10", W, 404, 3),
    ("2024-10-10", W, 408, 1), ("2024-10-10", W, 410, 1),
])
BROKEN = (["vhost", "referer", "path", "statuses", "hits", "last_seen"], [
    (S, "https://shop.example.com/product/42", "/product/43", "404", 2,
     "2024-10-10T21:00:00+00:00"),
    (W, "https://www.example.com/about", "/old-page", "404,410", 2, "2024-10-10T13:05:00+00:00"),
    (W, "https://www.example.com/blog/post-1", "/blog/post-2", "404", 2,
     "2024-10-09T08:30:00+00:00"),
    # same site: host compared without case and port
    (W, "https://WWW.Example.com:443/about", "/old-page", "404", 1, "2024-10-09T08:31:00+00:00"),
])
OFFENDERS = (["remote_host", "errors", "client_errors", "server_errors", "requests",
              "last_seen"], [
    ("198.51.100.7", 9, 8, 1, 9, "2024-10-10T02:00:02+00:00"),
    ("192.0.2.11", 3, 3, 0, 8, "2024-10-09T18:02:00+00:00"),
    ("192.0.2.12", 2, 2, 0, 5, "2024-10-10T13:05:00+00:00"),
    ("66.249.66.1", 2, 2, 0, 7, "2024-10-10T11:00:05+00:00"),
    ("192.0.2.10", 1, 1, 0, 12, "2024-10-10T16:02:00+00:00"),
    ("192.0.2.15", 1, 1, 0, 1, "2024-10-10T21:00:00+00:00"),
    ("203.0.113.5", 1, 0, 1, 1, "2024-10-09T12:00:00+00:00"),
])
AGENTS = (["user_agent", "is_bot", "hits", "last_seen"], [
    (H1, False, 19, "2024-10-10T21:00:00+00:00"),
    (H2, False, 10, "2024-10-10T07:31:00+00:00"),
    (GOOGLEBOT, True, 8, "2024-10-10T20:00:00+00:00"),
    ("curl/8.5.0", True, 8, "2024-10-10T02:00:01+00:00"),
    (FEEDLY, True, 2, "2024-10-10T23:00:00+00:00"),
    (None, None, 2, "2024-10-10T02:00:02+00:00"),  # no User-Agent: not classified
])
TRAFFIC = (["day", "vhost", "hits", "human_hits", "bot_hits", "bytes"], [
    ("2024-10-08", S, 5, 2, 3, 5350),
    ("2024-10-08", W, 8, 5, 3, 27200),
    ("2024-10-09", S, 4, 3, 1, 13900),
    ("2024-10-09", W, 14, 9, 5, 37764),
    ("2024-10-10", S, 5, 4, 1, 13300),
    ("2024-10-10", W, 13, 6, 7, 47152),  # no User-Agent counts as a bot
])
EXPECTED = {
    "referers": REFERERS, "pages": PAGES, "status": STATUS, "broken-links": BROKEN,
    "offenders": OFFENDERS, "agents": AGENTS, "traffic": TRAFFIC,
}


# -- fixtures and helpers -------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database with reports.log loaded through the real piped logger."""
    db = Database()
    try:
        db.initdb()
        spool = tmp_path_factory.mktemp("spool")
        with open(DATA / "reports.log", "rb") as log:
            proc = subprocess.run(
                logpipe_cmd("--dsn", db.dsn, "--spool-dir", str(spool),
                            "--format", "vhost_combined"),
                stdin=log, capture_output=True, timeout=120, check=False,
            )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        yield db
    finally:
        db.drop()


def utc(dsn: str) -> str:
    return f"{dsn} options='-c TimeZone=UTC'"


def plain(value: Any) -> Any:
    """SQL values as the JSON output shows them."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def view(dsn: str, sql: str) -> list[tuple]:
    return [tuple(plain(v) for v in row) for row in query(utc(dsn), sql)]


def run_report(dsn: str, *args: str, columns: int = 250) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PGTZ="UTC", COLUMNS=str(columns))
    env.pop("LOGPIPE_DSN", None)
    return subprocess.run(logpipe_cmd("report", *args, "--dsn", dsn), capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def report_ok(dsn: str, *args: str, columns: int = 250) -> str:
    proc = run_report(dsn, *args, columns=columns)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def as_json(dsn: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(report_ok(dsn, *args, "--format", "json"))


def as_csv(dsn: str, *args: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(report_ok(dsn, *args, "--format", "csv"))))


def dicts(expected: tuple[list[str], list[tuple]]) -> list[dict[str, Any]]:
    columns, rows = expected
    return [dict(zip(columns, r)) for r in rows]


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_cell(value: Any) -> str:
    text = csv_cell(value)
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", text):
        text = text.replace("T", " ")[:-3]  # 2024-10-10 21:00:00+00
    return text.replace("\x1b", "\\x1b")


def table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a table, cut at the column positions the rule line shows."""
    lines = text.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    assert lines[1] == "  ".join("-" * (b - a) for a, b in spans)

    def cut(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    return cut(lines[0]), [cut(line) for line in lines[2:]]


# -- the data went through the pipe -------------------------------------------------------


def test_log_loaded_through_the_pipe(loaded: Database) -> None:
    assert loaded.rows() == 49
    assert loaded.rejects() == 0
    bots = dict(query(loaded.dsn, "SELECT user_agent, bool_and(is_bot) FROM access_log"
                      " WHERE user_agent IS NOT NULL GROUP BY 1"))
    assert bots == {H1: False, H2: False, GOOGLEBOT: True, "curl/8.5.0": True, FEEDLY: True}
    assert scalar(loaded.dsn, "SELECT referer FROM access_log WHERE referer LIKE %s",
                  ("https://evil%",)) == EVIL  # Apache's \x1b escape, unescaped


ROLLUP = """
    SELECT r.day::text, p.vhost, p.path, r.hits, r.bot_hits, r.bytes, r.bot_bytes
      FROM logpipe_rollup_daily r JOIN logpipe_pages p ON p.id = r.page_id ORDER BY 1, 2, 3"""

PENDING = ("SELECT (SELECT count(*) FROM logpipe_pending_pages)"
           " + (SELECT count(*) FROM logpipe_pending_quarters)")

# What the daily rollup must hold, computed from access_log itself.
ROLLUP_FROM_ACCESS_LOG = """
        SELECT (time AT TIME ZONE 'UTC')::date::text, coalesce(vhost, ''), coalesce(path, ''),
               count(*), count(*) FILTER (WHERE coalesce(is_bot, user_agent IS NULL)),
               sum(coalesce(bytes, bytes_out)),
               coalesce(sum(coalesce(bytes, bytes_out))
                        FILTER (WHERE coalesce(is_bot, user_agent IS NULL)), 0)
          FROM access_log WHERE status < 400 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""


def test_rollup_matches_access_log(loaded: Database) -> None:
    direct = query(loaded.dsn, ROLLUP_FROM_ACCESS_LOG)
    assert query(loaded.dsn, ROLLUP) == direct
    assert len(direct) == 20  # distinct (day, vhost, path) of the 2xx/3xx requests
    totals = query(loaded.dsn, "SELECT vhost, path, hits, bot_hits, bytes, bot_bytes"
                   " FROM logpipe_pages ORDER BY 1, 2")
    assert totals == query(loaded.dsn, """
        SELECT p.vhost, p.path, sum(r.hits), sum(r.bot_hits), sum(r.bytes), sum(r.bot_bytes)
          FROM logpipe_rollup_daily r JOIN logpipe_pages p ON p.id = r.page_id
         GROUP BY 1, 2 ORDER BY 1, 2""")
    assert len(totals) == 11
    assert_quarters_match(loaded.dsn)
    # the logger folded what it loaded before it exited
    assert scalar(loaded.dsn, PENDING) == 0


def assert_quarters_match(dsn: str) -> None:
    """logpipe_quarters (rollup plus pending) counts what access_log holds, at any time."""
    assert query(dsn, """
        SELECT quarter, vhost, status, bot, sum(hits), sum(bytes) FROM logpipe_quarters
        GROUP BY 1, 2, 3, 4 HAVING sum(hits) <> 0 ORDER BY 1, 2, 3, 4""") == query(dsn, """
        SELECT logpipe_quarter(time), coalesce(vhost, ''), coalesce(status, 0),
               coalesce(is_bot, user_agent IS NULL), count(*),
               coalesce(sum(coalesce(bytes, bytes_out)), 0)
          FROM access_log GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""")


# -- views ------------------------------------------------------------------------------


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
        (W, "/feed.xml", 2, 0, 2, 10000),
        (S, "/", 1, 1, 0, 3000),
        (S, "/checkout", 1, 1, 0, 0),
        (S, "/checkout/done", 1, 1, 0, 900),
        (W, "/robots.txt", 1, 0, 1, 64),
    ]


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


# -- the CLI in three formats -------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cli_json(loaded: Database, name: str) -> None:
    assert as_json(loaded.dsn, name) == dicts(EXPECTED[name])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cli_csv(loaded: Database, name: str) -> None:
    columns, rows = EXPECTED[name]
    assert as_csv(loaded.dsn, name) == [columns] + [[csv_cell(v) for v in r] for r in rows]


def test_cli_csv_referers_exact_text(loaded: Database) -> None:
    out = report_ok(loaded.dsn, "referers", "--path", "/blog/post-1", "--format", "csv")
    assert out == (
        "referer,hits\n"
        "https://news.ycombinator.com/item?id=1,2\n"
        f"{EVIL},1\n"
        "https://news.ycombinator.com/,1\n"
        "https://t.co/abc,1\n"
        "https://www.google.com/,1\n"
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cli_table(loaded: Database, name: str) -> None:
    columns, rows = EXPECTED[name]
    header, cells = table_rows(report_ok(loaded.dsn, name))
    assert header == columns
    assert cells == [[table_cell(v) for v in r] for r in rows]


def test_cli_table_exact_text(loaded: Database) -> None:
    assert report_ok(loaded.dsn, "pages", "--vhost", S) == (
        "vhost             path            hits  bytes\n"
        "----------------  --------------  ----  -----\n"
        "shop.example.com  /product/42        4  24000\n"
        "shop.example.com  /cart              2   3000\n"
        "shop.example.com  /                  1   3000\n"
        "shop.example.com  /checkout          1      0\n"
        "shop.example.com  /checkout/done     1    900\n"
    )
    assert report_ok(loaded.dsn, "referers", "--path", "/about") == (
        "referer                                 hits\n"
        "--------------------------------------  ----\n"
        "https://duckduckgo.com/                    1\n"
        "https://news.ycombinator.com/item?id=1     1\n"
    )


def test_table_escapes_terminal_controls(loaded: Database) -> None:
    out = report_ok(loaded.dsn, "referers", "--path", "/blog/post-1")
    assert "\x1b" not in out
    assert "https://evil.example/\\x1b[31mred\\x1b[0m     1\n" in out
    # JSON escapes it too; CSV into a pipe keeps the exact value
    assert "\x1b" not in report_ok(loaded.dsn, "referers", "--format", "json")
    assert '"https://evil.example/\\u001b[31mred\\u001b[0m"' in report_ok(
        loaded.dsn, "referers", "--format", "json")


def test_table_fits_terminal_width(loaded: Database) -> None:
    for name, width in (("agents", 60), ("broken-links", 60), ("referers", 30)):
        out = report_ok(loaded.dsn, name, columns=width)
        lines = out.splitlines()
        assert all(len(line) <= width for line in lines), out
        assert any(line.rstrip().endswith("…") or "… " in line for line in lines), out
    header, cells = table_rows(report_ok(loaded.dsn, "agents", columns=60))
    assert header == ["user_agent", "is_bot", "hits", "last_seen"]
    assert cells[0][0].startswith("Mozilla/5.0 (X11;") and cells[0][0].endswith("…")
    assert cells[0][1:] == ["false", "19", "2024-10-10 21:00:00+00"]


# -- filters ----------------------------------------------------------------------------------


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
        {"vhost": W, "path": "/feed.xml", "hits": 2, "bytes": 10000},
        {"vhost": W, "path": "/", "hits": 1, "bytes": 5120},
        {"vhost": W, "path": "/about", "hits": 1, "bytes": 2048},
        {"vhost": W, "path": "/blog/", "hits": 1, "bytes": 4096},
        {"vhost": W, "path": "/blog/post-1", "hits": 1, "bytes": 8192},
        {"vhost": W, "path": "/robots.txt", "hits": 1, "bytes": 64},
    ]
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


def test_status_traffic_partial_quarters(loaded: Database) -> None:
    """Whole quarters of an hour from the rollup, the partial ones from access_log."""
    args = ("--since", "2024-10-09T08:20:30Z", "--until", "2024-10-09T12:40:00Z")
    assert as_json(loaded.dsn, "traffic", *args) == [
        {"day": "2024-10-09", "vhost": W, "hits": 9, "human_hits": 7, "bot_hits": 2,
         "bytes": 20580}]
    assert as_json(loaded.dsn, "status", *args) == [
        {"day": "2024-10-09", "vhost": W, "status": 200, "hits": 3},
        {"day": "2024-10-09", "vhost": W, "status": 304, "hits": 1},
        {"day": "2024-10-09", "vhost": W, "status": 404, "hits": 4},
        {"day": "2024-10-09", "vhost": W, "status": 500, "hits": 1},
    ]
    # within one quarter: all from access_log
    assert as_json(loaded.dsn, "traffic", "--since", "2024-10-09T08:20:30Z",
                   "--until", "2024-10-09T08:30:30Z", "--humans") == [
        {"day": "2024-10-09", "vhost": W, "hits": 3, "human_hits": 3, "bot_hits": 0,
         "bytes": 9216}]


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
    days = report.RollupRange(dt.date(2024, 10, 1), dt.date(2024, 10, 30))
    utc = dt.timezone.utc
    month = report.Filters(since=dt.datetime(2024, 10, 2, 6, tzinfo=utc))
    sql, _ = report.query_pages(month, days)
    assert "FROM logpipe_pages p WHERE" in sql and "r.day < %(lo_day)s" in sql
    week = report.Filters(since=dt.datetime(2024, 10, 20, 18, tzinfo=utc),
                          until=dt.datetime(2024, 10, 27, tzinfo=utc))
    sql, params = report.query_pages(week, days)
    assert "FROM logpipe_pages p WHERE" not in sql
    assert params["lo_day"] == dt.date(2024, 10, 21) and params["hi_day"] == dt.date(2024, 10, 27)
    assert params["lo_start"] == dt.datetime(2024, 10, 20, 18, tzinfo=utc)  # 6 h from access_log
    assert "hi_start" not in params  # until is midnight: no partial day
    assert "access_log" not in report.query_pages(report.Filters(), days)[0]  # all time


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
    assert len(as_json(loaded.dsn, "pages", "--limit", "0")) == 11
    assert len(as_json(loaded.dsn, "status")) == 19  # no default limit for time series


def test_traffic_by_hour(loaded: Database) -> None:
    rows = as_json(loaded.dsn, "traffic", "--by", "hour", "--vhost", S)
    assert rows == [
        {"hour": "2024-10-08T14:00:00+00:00", "vhost": S, "hits": 5, "human_hits": 2,
         "bot_hits": 3, "bytes": 5350},
        {"hour": "2024-10-09T18:00:00+00:00", "vhost": S, "hits": 4, "human_hits": 3,
         "bot_hits": 1, "bytes": 13900},
        {"hour": "2024-10-10T16:00:00+00:00", "vhost": S, "hits": 3, "human_hits": 3,
         "bot_hits": 0, "bytes": 6900},
        {"hour": "2024-10-10T20:00:00+00:00", "vhost": S, "hits": 1, "human_hits": 0,
         "bot_hits": 1, "bytes": 6000},
        {"hour": "2024-10-10T21:00:00+00:00", "vhost": S, "hits": 1, "human_hits": 1,
         "bot_hits": 0, "bytes": 400},
    ]
    assert as_json(loaded.dsn, "status", "--by", "hour", "--path", "/product/43") == [
        {"hour": "2024-10-09T18:00:00+00:00", "vhost": S, "status": 404, "hits": 1},
        {"hour": "2024-10-10T21:00:00+00:00", "vhost": S, "status": 404, "hits": 1},
    ]


def test_time_zone_of_days(loaded: Database) -> None:
    """Days follow the session time zone: PGTZ moves the 02:00 UTC requests a day back."""
    env = dict(os.environ, PGTZ="America/New_York")
    out = subprocess.run(logpipe_cmd("report", "traffic", "--vhost", W, "--format", "json",
                                     "--dsn", loaded.dsn),
                         capture_output=True, text=True, env=env, check=True).stdout
    assert [(r["day"], r["hits"]) for r in json.loads(out)] == [
        ("2024-10-08", 11), ("2024-10-09", 14), ("2024-10-10", 10)]


# -- help and errors ------------------------------------------------------------------------


def test_every_option_has_help() -> None:
    parser = cli.build_subcommand_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    report_parser = sub.choices["report"]
    for action in report_parser._actions:
        assert action.help and action.help.strip(), action.option_strings or action.dest
    names = {o for a in report_parser._actions for o in a.option_strings}
    assert {"--path", "--vhost", "--since", "--until", "--limit", "--humans", "--bots",
            "--format", "--by", "--dsn"} <= names
    proc = subprocess.run(logpipe_cmd("report", "--help"), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0
    for name in EXPECTED:
        assert f"  {name} " in proc.stdout, name
    for option in ("--path", "--vhost", "--since", "--until", "--limit", "--humans",
                   "--bots", "--format", "--dsn"):
        assert option in proc.stdout


def test_unknown_report(loaded: Database) -> None:
    proc = run_report(loaded.dsn, "visitors")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "unknown report 'visitors'" in proc.stderr
    assert "referers, pages, status, broken-links, offenders, agents, traffic" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_database_unreachable() -> None:
    proc = run_report("host=127.0.0.1 port=1 dbname=nothing connect_timeout=2", "pages")
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr and "PostgreSQL is running" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_missing(empty_database: Database) -> None:
    proc = run_report(empty_database.dsn, "referers")
    assert proc.returncode == 1
    assert "logpipe initdb" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["pages", "--since", "yesterday"], ["pages", "--limit", "-1"],
                                  ["pages", "--humans", "--bots"], ["pages", "--format", "xml"]])
def test_bad_options(args: list[str]) -> None:
    proc = run_report("dbname=unused", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr


def test_parse_time() -> None:
    assert report.parse_time("30d").ago == dt.timedelta(days=30)
    assert report.parse_time("12h").ago == dt.timedelta(hours=12)
    assert report.parse_time("15m").ago == dt.timedelta(minutes=15)
    assert report.parse_time("2w").ago == dt.timedelta(weeks=2)
    spec = report.parse_time("2024-10-01")
    assert (spec.iso, spec.date_only) == ("2024-10-01", True)
    assert report.parse_time("2024-10-01T13:00:00Z").iso == "2024-10-01T13:00:00+00:00"
    assert report.parse_time("2024-10-01 13:00").iso == "2024-10-01T13:00:00"


def test_safe_text() -> None:
    assert report.safe_text("a\x1b[2Jb\rc\x07\x9bd") == "a\\x1b[2Jb\\x0dc\\x07\\x9bd"
    assert report.safe_text("back\\slash") == "back\\\\slash"
    assert report.safe_text("abc\u202edcba\u200b") == "abc\\u202edcba\\u200b"
    assert report.safe_text("café 日本") == "café 日本"


# -- SQL details on a fresh database ------------------------------------------------------------


def insert(dsn: str, rows: list[tuple]) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO access_log (time, vhost, path, status, bytes, referer,"
                " user_agent, is_bot) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
    finally:
        conn.close()


def test_logs_without_vhost_and_site_hosts(database: Database) -> None:
    """combined format: no vhost, so every referer is external until the site's hosts are
    listed in logpipe_site_hosts; the table leaves out the empty vhost column."""
    t = "2024-10-10 10:00:00+00"
    insert(database.dsn, [
        (t, None, "/a", 200, 10, "https://blog.example.org/", "x", False),
        (t, None, "/a", 200, 10, "https://www.example.org/b", "x", False),
        (t, None, "/missing", 404, 10, "https://www.example.org/a", "x", False),
    ])
    assert as_json(database.dsn, "referers") == [
        {"referer": "https://blog.example.org/", "hits": 1},
        {"referer": "https://www.example.org/a", "hits": 1},  # linked to a 404: still counts
        {"referer": "https://www.example.org/b", "hits": 1}]
    assert as_json(database.dsn, "broken-links") == []
    assert report_ok(database.dsn, "pages").splitlines()[0].split() == ["path", "hits", "bytes"]
    conn = psycopg2.connect(database.dsn)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO logpipe_site_hosts VALUES ('www.example.org')")
    conn.close()
    assert as_json(database.dsn, "referers") == [
        {"referer": "https://blog.example.org/", "hits": 1}]
    assert view(database.dsn, "SELECT referer, path, hits FROM report_broken_links") == [
        ("https://www.example.org/a", "/missing", 1)]


def folded(dsn: str) -> list[tuple]:
    """The daily rollup after folding what is pending into it."""
    execute(dsn, "SELECT logpipe_rollup_fold()")
    assert scalar(dsn, PENDING) == 0
    return query(dsn, ROLLUP)


PAGES_VIEW = "SELECT vhost, path, hits, human_hits, bot_hits, bytes FROM report_pages"


def test_rollup_follows_deletes_updates_and_rebuilds(database: Database) -> None:
    insert(database.dsn, [
        ("2024-10-10 10:00:00+00", "v", "/a", 200, 10, None, "ua", False),
        ("2024-10-10 11:00:00+00", "v", "/a", 200, 5, None, "ua", False),
        ("2024-10-10 12:00:00+00", None, None, 304, None, None, None, None),
        ("2024-10-10 12:00:00+00", "v", "/a", 404, 1, None, "ua", False),
    ])
    # pending until folded, but the views count what is pending too
    assert query(database.dsn, ROLLUP) == []
    assert query(database.dsn, PAGES_VIEW) == [("v", "/a", 2, 2, 0, 15), (None, None, 1, 0, 1, 0)]
    assert_quarters_match(database.dsn)
    assert folded(database.dsn) == [("2024-10-10", "", "", 1, 1, 0, 0),
                                    ("2024-10-10", "v", "/a", 2, 0, 15, 0)]
    assert query(database.dsn, PAGES_VIEW) == [("v", "/a", 2, 2, 0, 15), (None, None, 1, 0, 1, 0)]
    conn = psycopg2.connect(database.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    assert_quarters_match(database.dsn)
    cur.execute("UPDATE access_log SET is_bot = true WHERE time = '2024-10-10 11:00:00+00'")
    assert query(database.dsn, PAGES_VIEW) == [("v", "/a", 2, 1, 1, 15), (None, None, 1, 0, 1, 0)]
    assert folded(database.dsn) == [("2024-10-10", "", "", 1, 1, 0, 0),
                                    ("2024-10-10", "v", "/a", 2, 1, 15, 5)]
    assert_quarters_match(database.dsn)
    cur.execute("DELETE FROM access_log WHERE path IS NULL OR time < '2024-10-10 11:00:00+00'")
    assert_quarters_match(database.dsn)
    assert query(database.dsn, PAGES_VIEW) == [("v", "/a", 1, 0, 1, 5)]
    assert folded(database.dsn) == [("2024-10-10", "v", "/a", 1, 1, 5, 5)]
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_rollup_quarter WHERE hits <= 0") == 0
    assert_quarters_match(database.dsn)
    # a bulk load with the triggers disabled: the next initdb rebuilds the rollup
    cur.execute("ALTER TABLE access_log DISABLE TRIGGER access_log_rollup_insert")
    cur.execute("INSERT INTO access_log (time, vhost, path, status) VALUES"
                " ('2024-10-11 00:00:00+00', 'v', '/b', 200)")
    conn.close()
    database.initdb()
    assert query(database.dsn, ROLLUP) == [("2024-10-10", "v", "/a", 1, 1, 5, 5),
                                           ("2024-10-11", "v", "/b", 1, 1, 0, 0)]
    assert_quarters_match(database.dsn)
    execute(database.dsn, "INSERT INTO access_log (time, vhost, path, status) VALUES"
                          " ('2024-10-12 00:00:00+00', 'v', '/c', 200)")  # left pending
    conn = psycopg2.connect(database.dsn)
    conn.autocommit = True
    conn.cursor().execute("TRUNCATE access_log")
    conn.close()
    assert query(database.dsn, ROLLUP) == []
    assert query(database.dsn, "SELECT * FROM report_pages") == []
    assert scalar(database.dsn, PENDING) == 0
    assert_quarters_match(database.dsn)


def test_report_folds_pending_counts_first(database: Database) -> None:
    """Rows nobody folded yet (here: inserted by hand) are in `logpipe report pages`,
    which reads the rollups only, because it folds first."""
    insert(database.dsn, [("2024-10-10 10:00:00+00", "v", "/a", 200, 10, None, "ua", False),
                          ("2024-10-10 10:00:00+00", "v", "/a", 200, 5, None, "ua", False)])
    assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_pending_quarters") == 2
    assert as_json(database.dsn, "pages") == [
        {"vhost": "v", "path": "/a", "hits": 2, "bytes": 15}]
    assert scalar(database.dsn, PENDING) == 0
    assert query(database.dsn, ROLLUP) == [("2024-10-10", "v", "/a", 2, 0, 15, 0)]


def test_writer_loads_when_the_rollups_cannot_be_folded(
        database: Database, tmp_path: Path) -> None:
    """A schema whose rollups cannot be folded (here: the function dropped) costs the
    reports, never the rows: the writer says so once and goes on loading."""
    execute(database.dsn, "DROP FUNCTION logpipe_rollup_fold(bigint)")
    proc = start_logger(database.dsn, tmp_path / "spool", stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    for i in range(3):
        proc.stdin.write(b"".join(
            f'192.0.2.1 - - [10/Oct/2024:10:00:0{i} +0000] "GET /p{n} HTTP/1.1" 200 1 "-" "b"\n'
            .encode() for n in range(100)))
        proc.stdin.flush()
        wait_for(lambda i=i: database.rows() == 100 * (i + 1), timeout=30)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    err = proc.stderr.read().decode()
    assert err.count("cannot update the report rollups") == 1, err
    assert "logpipe initdb" in err
    assert database.rows() == 300
    assert scalar(database.dsn, "SELECT sum(hits) FROM logpipe_pending_quarters") == 300
    database.initdb()  # restores the function; the counts were kept
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert query(database.dsn, "SELECT sum(hits)::int FROM logpipe_pages") == [(300,)]


def test_writer_folds_when_caught_up_or_every_fold_interval(
        database: Database, tmp_path: Path) -> None:
    """The writer's fold policy against a real database: nothing to fold, nothing done;
    while busy, a fold at most every FOLD_INTERVAL; once caught up, a fold at once."""
    import time

    from logpipe.ingest import writer as writer_module

    insert(database.dsn, [("2024-10-10 10:00:00+00", "v", "/a", 200, 10, None, "ua", False)])
    settings = writer_module.WriterSettings(spool_dir=tmp_path, dsn=database.dsn,
                                            flush_interval=0.2, batch_lines=100)
    writer = writer_module.Writer(settings, cli.make_parser_factory())
    conn = writer._connection()
    assert conn is not None
    try:
        writer._fold(conn, caught_up=True)  # nothing loaded by this writer yet
        assert scalar(database.dsn, PENDING) == 2
        writer._unfolded = True
        writer._fold(conn, caught_up=False)  # busy, and it folded just now
        assert scalar(database.dsn, PENDING) == 2
        writer._folded_at = time.monotonic() - writer_module.FOLD_INTERVAL
        writer._fold(conn, caught_up=False)  # busy for FOLD_INTERVAL: fold anyway
        assert scalar(database.dsn, PENDING) == 0
        assert not writer._unfolded
        insert(database.dsn, [("2024-10-10 11:00:00+00", "v", "/a", 200, 5, None, "ua", False)])
        writer._unfolded = True
        writer._fold(conn, caught_up=True)
        assert scalar(database.dsn, PENDING) == 0
        assert query(database.dsn, ROLLUP) == [("2024-10-10", "v", "/a", 2, 0, 15, 0)]
    finally:
        writer.close()


def referer_answers(dsn: str, paths: list[str], *extra: str) -> dict[tuple, Any]:
    """`referers --path P` for every path and filter, as the CLI prints them in JSON."""
    answers = {}
    for path in paths:
        for flags in ((), ("--humans",), ("--bots",), ("--vhost", W), ("--vhost", S)):
            answers[(path, *flags)] = as_json(dsn, "referers", "--path", path, *flags, *extra)
    return answers


def test_hot_paths_answer_referers_from_their_own_rollup(
        database: Database, tmp_path: Path) -> None:
    """A path with many requests gets referer counts of its own (logpipe_path_referers,
    kept through the pending table like the other rollups): `referers --path` then
    reads those, and answers exactly what the index answers, at every step."""
    def load(lines: bytes) -> None:
        proc = subprocess.run(
            logpipe_cmd("--dsn", database.dsn, "--spool-dir", str(tmp_path / "spool"),
                        "--format", "vhost_combined"),
            input=lines, capture_output=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")

    log = (DATA / "reports.log").read_bytes()
    load(log)
    paths = [p for (p,) in query(database.dsn, "SELECT DISTINCT path FROM access_log"
                                               " WHERE referer IS NOT NULL ORDER BY 1")]
    assert len(paths) >= 10
    from_index = referer_answers(database.dsn, paths)
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_hot_paths") == 0
    # a fold makes the paths it counts past the line hot...
    insert(database.dsn, [("2024-10-10 10:00:00+00", W, "/new", 200, 1, "https://a.example/",
                           "ua", False)])
    execute(database.dsn, "SELECT logpipe_rollup_fold(1)")
    assert query(database.dsn, "SELECT path FROM logpipe_hot_paths") == [("/new",)]
    assert as_json(database.dsn, "referers", "--path", "/new") == [
        {"referer": "https://a.example/", "hits": 1}]
    execute(database.dsn, "DELETE FROM access_log WHERE path = '/new'")
    # ...here every path that has served a request, its referers counted at once
    execute(database.dsn, "SELECT logpipe_promote_hot_paths(ARRAY("
                          "SELECT DISTINCT path FROM logpipe_pages WHERE hits > 0))")
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_hot_paths") == 11
    assert referer_answers(database.dsn, paths) == from_index
    # the CLI reads the rollup for a hot path (a count changed by hand shows)...
    execute(database.dsn, "UPDATE logpipe_path_referers SET hits = hits + 1000"
                          " WHERE path = '/' AND referer = 'https://www.google.com/'")
    google = next(r["hits"] for r in from_index[("/",)]
                  if r["referer"] == "https://www.google.com/")
    assert as_json(database.dsn, "referers", "--path", "/")[0] == {
        "referer": "https://www.google.com/", "hits": google + 1000}
    execute(database.dsn, "UPDATE logpipe_path_referers SET hits = hits - 1000"
                          " WHERE path = '/' AND referer = 'https://www.google.com/'")
    # ...but the index for a time window
    assert as_json(database.dsn, "referers", "--path", "/", "--since", "2000-01-01") == \
        from_index[("/",)]
    # more of the same lines go through the pending table: everything doubles
    load(log)
    doubled = {key: [{**row, "hits": 2 * row["hits"]} for row in rows]
               for key, rows in from_index.items()}
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_pending_referers") == 0
    assert referer_answers(database.dsn, paths) == doubled
    # deleted rows come off the counts; referers with none left are dropped
    execute(database.dsn, "DELETE FROM access_log WHERE loaded_at ="
                          " (SELECT max(loaded_at) FROM access_log)")
    execute(database.dsn, "DELETE FROM access_log WHERE referer = 'https://www.google.com/'")
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_path_referers"
                                " WHERE referer = 'https://www.google.com/'") == 0
    assert referer_answers(database.dsn, paths) == referer_answers(
        database.dsn, paths, "--since", "2000-01-01")
    # initdb rebuilding the rollups makes the same paths hot again
    execute(database.dsn, "COMMENT ON TABLE logpipe_rollup_daily IS NULL")
    database.initdb()
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_hot_paths") == 0  # 100,000 hits
    assert referer_answers(database.dsn, ["/", "/blog/post-1"]) == referer_answers(
        database.dsn, ["/", "/blog/post-1"], "--since", "2000-01-01")


def test_rollups_with_concurrent_writers(database: Database, tmp_path: Path) -> None:
    """Two loggers loading the same pages at once, in small batches: the rollups' row
    locks are taken in key order, so neither deadlocks, and the counts add up."""
    def lines(seed: int) -> bytes:
        out = []
        for i in range(3000):
            n = (i * 7 + seed) % 40
            agent = "curl/8.5.0" if i % 5 == 0 else H1
            out.append(f'192.0.2.{n} - - [10/Oct/2024:1{i % 10}:{i // 60 % 60:02d}:{i % 60:02d}'
                       f' +0000] "GET /p/{n} HTTP/1.1" {200 if n % 9 else 404} {n}'
                       f' "-" "{agent}"\n')
        return "".join(out).encode()

    procs = [start_logger(database.dsn, tmp_path / f"spool{k}", "--batch-lines", "50",
                          stdin=subprocess.PIPE) for k in (1, 2)]
    for k, proc in enumerate(procs):
        assert proc.stdin is not None
        proc.stdin.write(lines(k))
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=120) == 0
        assert proc.stderr is not None
        assert b"deadlock" not in proc.stderr.read()
    assert database.rows() == 6000
    assert database.rejects() == 0
    assert query(database.dsn, ROLLUP) == query(database.dsn, ROLLUP_FROM_ACCESS_LOG)
    assert_quarters_match(database.dsn)


def test_initdb_is_idempotent(database: Database) -> None:
    database.initdb()
    database.initdb()
    assert scalar(database.dsn, "SELECT count(*) FROM pg_indexes"
                  " WHERE tablename = 'access_log'") == 2  # BRIN (time), (path) INCLUDE (vhost, referer)
    assert scalar(database.dsn, "SELECT count(*) FROM pg_trigger WHERE tgrelid ="
                  " 'access_log'::regclass AND NOT tgisinternal") == 4


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
