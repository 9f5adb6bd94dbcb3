"""`logpipe report static`: the static assets (stylesheets, scripts, source maps, images,
fonts, favicon, feeds, robots.txt) that `pages` leaves out, with its columns; the patterns
in logpipe_asset_patterns are read at query time, so one an operator adds counts at once."""

from __future__ import annotations

from pathlib import Path

import psycopg2.errors
import pytest
from conftest import Database, execute, query
from pages_support import PAGES, STATIC_FIRST, STATIC_REST, load_mixed
from partition_support import run
from reports_support import as_csv, as_json, view

BOT_ASSETS = {"/static/site.css": 5000, "/favicon.ico": 400, "/feed.xml": 6000,
              "/robots.txt": 60}


def static_rows(dsn: str, *args: str) -> list[dict]:
    return as_json(dsn, "static", "--limit", "0", *args)


def by_path(rows: list[dict]) -> dict[str, tuple[int, int]]:
    return {r["path"]: (r["hits"], r["bytes"]) for r in rows}


def test_static_lists_the_assets(database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    load_mixed(database, tmp_path)
    rows = static_rows(dsn)
    assert rows[0] == STATIC_FIRST  # two GETs; its HEAD fetched nothing
    assert by_path(rows[1:]) == {path: (1, size) for path, size in STATIC_REST.items()}
    assert all(r["vhost"] is None for r in rows)
    assert as_csv(dsn, "static", "--limit", "1") == [
        ["vhost", "path", "hits", "bytes"], ["", "/static/site.css", "2", "10000"]]
    assert by_path(static_rows(dsn, "--bots")) == {p: (1, b) for p, b in BOT_ASSETS.items()}
    # the afternoon, from the partial day in access_log: the bots' fetches
    assert by_path(static_rows(dsn, "--since", "2024-10-08T12:00:00Z")) == \
        by_path(static_rows(dsn, "--bots"))
    # the view for psql: hits, human_hits, bot_hits, bytes
    assert {r[1]: r[2:] for r in view(dsn, "SELECT * FROM report_static")} == {
        "/static/site.css": (2, 1, 1, 10000),
        **{path: (1, 0, 1, size) if path in BOT_ASSETS else (1, 1, 0, size)
           for path, size in STATIC_REST.items()}}


def test_an_added_pattern_counts_at_once(database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    load_mixed(database, tmp_path)
    assert as_json(dsn, "pages", "--limit", "0") == PAGES
    execute(dsn, "INSERT INTO logpipe_asset_patterns VALUES ('%.pdf', 'document')")
    # past requests too, without a rebuild: from the rollups and from access_log
    assert as_json(dsn, "pages", "--limit", "0") == PAGES[:-1]
    assert as_json(dsn, "pages", "--since", "2024-10-08T12:00:00Z") == [
        {"vhost": None, "path": "/contact", "hits": 2, "bytes": 1000},
        {"vhost": None, "path": "/blog/2026/hello", "hits": 1, "bytes": 2000}]
    assert by_path(static_rows(dsn))["/docs/guide.pdf"] == (1, 50000)
    assert view(dsn, "SELECT path FROM report_pages WHERE path LIKE '/docs/%'") == []
    assert view(dsn, "SELECT path, hits FROM report_static WHERE path LIKE '/docs/%'") == [
        ("/docs/guide.pdf", 1)]
    tree = as_csv(dsn, "tree", "--depth", "2")
    assert ["/", "8", "23", "123460"] in tree and ["/docs/", "0", "1", "50000"] in tree
    # one deleted counts as a page again: feeds, say
    execute(dsn, "DELETE FROM logpipe_asset_patterns WHERE pattern = '%.xml'")
    assert {"vhost": None, "path": "/feed.xml", "hits": 1, "bytes": 6000} in \
        as_json(dsn, "pages", "--limit", "0")
    assert "/feed.xml" not in by_path(static_rows(dsn))
    # a re-run of initdb keeps the operator's list as it is
    database.initdb()
    assert query(dsn, "SELECT pattern FROM logpipe_asset_patterns"
                      " WHERE pattern IN ('%.pdf', '%.xml')") == [("%.pdf",)]


def test_static_options_and_patterns_refused(database: Database) -> None:
    proc = run("report", "static", "--depth", "2", "--dsn", database.dsn)
    assert proc.returncode == 2 and "--depth is for `logpipe report tree`" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert as_json(database.dsn, "static") == []
    # paths are matched in lower case: an upper-case pattern could never match
    with pytest.raises(psycopg2.errors.CheckViolation):
        execute(database.dsn, "INSERT INTO logpipe_asset_patterns VALUES ('%.PDF')")
