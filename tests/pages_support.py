"""What the tests of `pages`, `static` and `tree` share: a mixed log (pages and assets;
GET, POST, HEAD, OPTIONS, PROPFIND; paths with '//'; errors; bots) loaded with the real
`logpipe load` (the `mixed` fixture), and the rows each report must show, counted by hand.

All on 2024-10-08 UTC, combined format (no vhost). Bytes are the %b of each line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, fresh_database
from partition_support import run_ok

H = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
G = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# (time of day, request line, status, bytes, agent)
LINES = [
    ("08:00:00", "GET / HTTP/1.1", 200, 1000, H),
    ("08:01:00", "GET // HTTP/1.1", 200, 1000, H),  # '/'
    ("08:02:00", "GET / HTTP/1.1", 304, 0, H),  # served: a view
    ("08:03:00", "HEAD / HTTP/1.1", 200, 0, H),  # a monitor: no view
    ("08:04:00", "OPTIONS /api/items HTTP/1.1", 204, 0, H),  # CORS preflight
    ("08:05:00", "PROPFIND /dav/notes/ HTTP/1.1", 207, 500, H),  # WebDAV
    ("08:06:00", "GET /blog//2026/hello HTTP/1.1", 200, 2000, H),  # '/blog/2026/hello'
    ("08:07:00", "GET /blog/2026/ HTTP/1.1", 200, 1500, H),
    ("08:08:00", "GET /blog/missing HTTP/1.1", 404, 100, H),  # not served
    ("08:09:00", "GET /static/site.css HTTP/1.1", 200, 5000, H),
    ("08:10:00", "HEAD /static/site.css HTTP/1.1", 200, 0, H),
    ("08:11:00", "GET /static/logo.png HTTP/1.1", 200, 8000, H),
    ("08:12:00", "GET /Static/Logo.PNG HTTP/1.1", 200, 8000, H),  # any case
    ("08:13:00", "GET /js/app.js HTTP/1.1", 200, 3000, H),
    ("08:14:00", "GET /js/app.js.map HTTP/1.1", 200, 9000, H),
    ("08:15:00", "GET /fonts/body.woff2 HTTP/1.1", 200, 20000, H),
    ("08:16:00", "GET /cgi-bin/boom HTTP/1.1", 500, 0, H),  # not served
    ("08:17:00", "OPTIONS * HTTP/1.1", 200, 0, H),  # path '*': in no directory
    ("08:18:00", "-", 408, 0, H),  # no request line
    # the afternoon: what `--since 2024-10-08T12:00:00Z` keeps
    ("14:00:00", "POST /contact HTTP/1.1", 200, 300, H),
    ("14:01:00", "GET /contact HTTP/1.1", 200, 700, G),
    ("14:02:00", "GET /blog/2026/hello?utm_source=x HTTP/1.1", 200, 2000, G),
    ("14:03:00", "GET /static/site.css HTTP/1.1", 200, 5000, G),
    ("14:04:00", "GET /favicon.ico HTTP/1.1", 200, 400, G),
    ("14:05:00", "GET /feed.xml HTTP/1.1", 200, 6000, G),
    ("14:06:00", "GET /robots.txt HTTP/1.1", 200, 60, G),
    ("14:07:00", "GET /docs/guide.pdf HTTP/1.1", 200, 50000, H),  # a page until '%.pdf'
]

# pages: GET and POST served, not assets, '//' as '/'; most hits first, then path
PAGES = [
    {"vhost": None, "path": "/", "hits": 3, "bytes": 2000},  # HEAD left out
    {"vhost": None, "path": "/blog/2026/hello", "hits": 2, "bytes": 4000},
    {"vhost": None, "path": "/contact", "hits": 2, "bytes": 1000},  # POST and GET
    {"vhost": None, "path": "/blog/2026/", "hits": 1, "bytes": 1500},
    {"vhost": None, "path": "/docs/guide.pdf", "hits": 1, "bytes": 50000},
]
PAGES_AFTERNOON = [
    {"vhost": None, "path": "/contact", "hits": 2, "bytes": 1000},
    {"vhost": None, "path": "/blog/2026/hello", "hits": 1, "bytes": 2000},
    {"vhost": None, "path": "/docs/guide.pdf", "hits": 1, "bytes": 50000},
]
PAGES_BOTS = [
    {"vhost": None, "path": "/blog/2026/hello", "hits": 1, "bytes": 2000},
    {"vhost": None, "path": "/contact", "hits": 1, "bytes": 700},
]
# static: the same count for asset paths; site.css first (two GETs, its HEAD left out)
STATIC_FIRST = {"vhost": None, "path": "/static/site.css", "hits": 2, "bytes": 10000}
STATIC_REST = {  # one GET each: their order among themselves is the collation's
    "/static/logo.png": 8000, "/Static/Logo.PNG": 8000, "/js/app.js": 3000,
    "/js/app.js.map": 9000, "/fonts/body.woff2": 20000, "/favicon.ico": 400,
    "/feed.xml": 6000, "/robots.txt": 60,
}
# pages --all: every request served, any method, assets too (24 of the 27 lines)
ALL = {
    "/": (4, 2000), "/blog/2026/hello": (2, 4000), "/contact": (2, 1000),
    "/blog/2026/": (1, 1500), "/docs/guide.pdf": (1, 50000), "/api/items": (1, 0),
    "/dav/notes/": (1, 500), "*": (1, 0), "/static/site.css": (3, 10000),
    **{path: (1, size) for path, size in STATIC_REST.items()},
}
# tree: (directory, pages, hits, bytes) in byte order; '*' is in no directory
TREE_3 = [
    ("/", 9, 23, 123460),
    ("/Static/", 0, 1, 8000),
    ("/api/", 0, 1, 0),
    ("/blog/", 3, 3, 5500),
    ("/blog/2026/", 3, 3, 5500),
    ("/dav/", 0, 1, 500),
    ("/dav/notes/", 0, 1, 500),
    ("/docs/", 1, 1, 50000),
    ("/fonts/", 0, 1, 20000),
    ("/js/", 0, 2, 12000),
    ("/static/", 0, 4, 18000),
]
TREE_2 = [row for row in TREE_3 if row[0].count("/") <= 2]
TREE_1 = TREE_3[:1]


def mixed_log(directory: Path) -> Path:
    """LINES as an access log in the combined format."""
    text = "".join(
        f'192.0.2.{9 if agent == G else 7} - - [08/Oct/2024:{at} +0000] "{request}" '
        f'{status} {size} "-" "{agent}"\n'
        for at, request, status, size, agent in LINES)
    path = directory / "mixed.log"
    path.write_text(text)
    return path


def load_mixed(db: Database, directory: Path) -> None:
    run_ok("load", "--dsn", db.dsn, str(mixed_log(directory)))


@pytest.fixture(scope="module", name="mixed")
def mixed_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database with the mixed log loaded by `logpipe load`, for reading only."""
    with fresh_database() as db:
        load_mixed(db, tmp_path_factory.mktemp("mixed"))
        yield db
