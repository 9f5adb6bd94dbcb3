"""A day of traffic counted by hand, for the visitors, countries and channels reports:
its lines, a module fixture that loads them with the real `logpipe load`, and what each
report must say about them.

Visitors on 2026-11-20 (UTC), www.example.com unless said, visit gap 30 minutes:
  A  193.0.6.139 (RIPE: NL) Firefox  09:00 from Google with "apache piped logs", then
     internal clicks 09:10, 09:39:59, 10:09:58 (gaps of 29:59: one visit, 4 hits);
     10:40:00 from t.co (a gap of 30:02: visit 2), 10:45 internal (2 hits)
  B  193.0.6.139 Chrome: the same address as A, another agent: another visitor.
     09:05 direct, 09:06 internal (1 visit, 2 hits)
  C  8.8.8.8 (ARIN: US) Safari  12:00 from Gmail, 12:30:01 from news.example.org (a gap
     of 30:01: 2 visits of 1 hit)
  D  200.160.2.3 (LACNIC: BR) Edge  23:50 from Bing with "piped logger" (1 visit), and
     00:10 on 2026-11-21 from the site itself: 20 minutes later, but another day, so
     another visitor, whose visit is internal
  E  10.0.0.5 (private: no country) Googlebot  08:00, 08:01 (a bot: 1 visit, 2 hits)
  F  193.0.6.139 Firefox on shop.example.com, 15:00, direct: A's address and agent on
     another vhost, another visitor
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import COMMAND_TIMEOUT, Database, fresh_database, logpipe_cmd

W = "www.example.com"
SHOP = "shop.example.com"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def line(time: str, host: str, path: str, referer: str, agent: str, vhost: str = W) -> str:
    return (f'{vhost}:443 {host} - - [{time} +0000] "GET {path} HTTP/1.1" 200 10 '
            f'"{referer}" "{agent}"\n')


DAY = "".join([
    line("20/Nov/2026:08:00:00", "10.0.0.5", "/robots.txt", "-", BOT),
    line("20/Nov/2026:08:01:00", "10.0.0.5", "/", "-", BOT),
    line("20/Nov/2026:09:00:00", "193.0.6.139", "/blog/",
         "https://www.google.com/search?q=Apache+piped+logs&ie=UTF-8", "Firefox/120.0"),
    line("20/Nov/2026:09:05:00", "193.0.6.139", "/", "-", "Chrome/119.0"),
    line("20/Nov/2026:09:06:00", "193.0.6.139", "/about", f"https://{W}/", "Chrome/119.0"),
    line("20/Nov/2026:09:10:00", "193.0.6.139", "/blog/a", f"https://{W}/blog/", "Firefox/120.0"),
    line("20/Nov/2026:09:39:59", "193.0.6.139", "/blog/b", f"https://{W}/blog/a",
         "Firefox/120.0"),
    line("20/Nov/2026:10:09:58", "193.0.6.139", "/blog/c", f"https://{W}/blog/b",
         "Firefox/120.0"),
    line("20/Nov/2026:10:40:00", "193.0.6.139", "/blog/c", "https://t.co/AbC123",
         "Firefox/120.0"),
    line("20/Nov/2026:10:45:00", "193.0.6.139", "/blog/d", f"https://{W}/blog/c",
         "Firefox/120.0"),
    line("20/Nov/2026:12:00:00", "8.8.8.8", "/news", "https://mail.google.com/", "Safari/17.0"),
    line("20/Nov/2026:12:30:01", "8.8.8.8", "/news", "https://news.example.org/post/1",
         "Safari/17.0"),
    line("20/Nov/2026:15:00:00", "193.0.6.139", "/cart", "-", "Firefox/120.0", vhost=SHOP),
    line("20/Nov/2026:23:50:00", "200.160.2.3", "/", "https://www.bing.com/search?q=piped+logger",
         "Edge/120.0"),
    line("21/Nov/2026:00:10:00", "200.160.2.3", "/x", f"https://{W}/", "Edge/120.0"),
])

# day, vhost, visitors, visits, hits
VISITORS = [
    ["day", "vhost", "visitors", "visits", "hits"],
    ["2026-11-20", SHOP, "1", "1", "1"],
    ["2026-11-20", W, "5", "7", "13"],
    ["2026-11-21", W, "1", "1", "1"],
]
COUNTRIES = [
    ["country", "visitors", "hits"],
    ["NL", "3", "9"],   # A, B, F
    ["BR", "2", "2"],   # D on each day
    ["US", "1", "2"],   # C
    ["", "1", "2"],     # E: a private address
]
CHANNELS = [
    ["channel", "source", "visits", "hits"],
    ["direct", "", "3", "5"],           # B, E, F
    ["search", "Google", "1", "4"],     # A's first visit, internal clicks included
    ["social", "X/Twitter", "1", "2"],  # A's second visit
    ["internal", W, "1", "1"],          # D on 2026-11-21
    ["search", "Bing", "1", "1"],
    ["webmail", "Gmail", "1", "1"],
    ["website", "news.example.org", "1", "1"],
]


def load(dsn: str, path: Path, *args: str) -> str:
    """`logpipe load` of a vhost_combined file; its stderr."""
    proc = subprocess.run(logpipe_cmd("load", "--dsn", dsn, "--format", "vhost_combined",
                                      *args, str(path)),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module", name="day")
def day_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A database holding DAY, loaded by `logpipe load`."""
    path = tmp_path_factory.mktemp("visitors") / "day.log"
    path.write_text(DAY)
    with fresh_database() as db:
        load(db.dsn, path)
        yield db
