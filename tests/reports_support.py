"""What the report tests share: tests/data/reports.log loaded through the real pipe
(the `loaded` fixture), every report's expected rows, and ways to run `logpipe report`.

tests/data/reports.log (vhost_combined, 49 lines, 8-10 Oct 2024 UTC) has two vhosts
(www.example.com, shop.example.com), external referers (Google, Hacker News, t.co,
one with a terminal escape), internal ones, links from the sites' own pages to
missing pages (404/410), a curl scanner, Googlebot, a feed reader, a request with no
User-Agent and one with no request line ("-", 408). Expected values were worked out
by hand from the log. Requires the writer to classify agents with
logpipe.parse.agents.classify_agent (logpipe.parse.parser_marking_bots does).

A test module uses `loaded` by importing its function (`from reports_support import
loaded_fixture`); pytest then loads the log once for that module.
"""

from __future__ import annotations

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
from conftest import Database, fresh_database, logpipe_cmd, query

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
    (S, "/", 1, 3000),
    (S, "/checkout", 1, 0),
    (S, "/checkout/done", 1, 900),
])  # /feed.xml and /robots.txt are static assets: `report static`
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

@pytest.fixture(scope="module", name="loaded")
def loaded_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database with reports.log loaded through the real piped logger."""
    with fresh_database() as db:
        spool = tmp_path_factory.mktemp("spool")
        with open(DATA / "reports.log", "rb") as log:
            proc = subprocess.run(
                logpipe_cmd("--dsn", db.dsn, "--spool-dir", str(spool),
                            "--format", "vhost_combined"),
                stdin=log, capture_output=True, timeout=120, check=False,
            )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        yield db


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


def insert(dsn: str, rows: list[tuple]) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO access_log (time, vhost, path, status, bytes, referer,"
                " user_agent, is_bot) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
    finally:
        conn.close()


# -- the rollups ------------------------------------------------------------------------

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


def assert_quarters_match(dsn: str) -> None:
    """logpipe_quarters (rollup plus pending) counts what access_log holds, at any time."""
    assert query(dsn, """
        SELECT quarter, vhost, status, bot, sum(hits), sum(bytes) FROM logpipe_quarters
        GROUP BY 1, 2, 3, 4 HAVING sum(hits) <> 0 ORDER BY 1, 2, 3, 4""") == query(dsn, """
        SELECT logpipe_quarter(time), coalesce(vhost, ''), coalesce(status, 0),
               coalesce(is_bot, user_agent IS NULL), count(*),
               coalesce(sum(coalesce(bytes, bytes_out)), 0)
          FROM access_log GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""")
