"""`logpipe report tree`: the site's directories to --depth levels with their page views
(as `pages` counts them), requests served and bytes, in tree order, with the filters."""

from __future__ import annotations

from conftest import Database, query
from pages_support import TREE_1, TREE_2, TREE_3, mixed_fixture  # noqa: F401 - `mixed`
from partition_support import run
from reports_support import as_csv, as_json, report_ok, table_rows


def tree_csv(dsn: str, *args: str) -> list[list[str]]:
    return as_csv(dsn, "tree", *args)


def csv_of(rows: list[tuple]) -> list[list[str]]:
    return [["directory", "pages", "hits", "bytes"], *([str(v) for v in r] for r in rows)]


def test_tree_at_depths_one_to_three(mixed: Database) -> None:
    assert tree_csv(mixed.dsn) == csv_of(TREE_3)  # depth 3 by default
    assert tree_csv(mixed.dsn, "--depth", "3") == csv_of(TREE_3)
    assert tree_csv(mixed.dsn, "--depth", "2") == csv_of(TREE_2)
    assert tree_csv(mixed.dsn, "--depth", "1") == csv_of(TREE_1)
    # deeper than any path: the same directories as 3
    assert tree_csv(mixed.dsn, "--depth", "9") == csv_of(TREE_3)
    assert as_json(mixed.dsn, "tree", "--depth", "1") == [
        {"directory": "/", "pages": 9, "hits": 23, "bytes": 123460}]
    header, cells = table_rows(report_ok(mixed.dsn, "tree", "--depth", "2"))
    assert header == ["directory", "pages", "hits", "bytes"]
    assert [c[0] for c in cells] == [r[0] for r in TREE_2]


def test_tree_filters(mixed: Database) -> None:
    # bots: GET /contact, /blog/2026/hello?..., /static/site.css, /favicon.ico,
    # /feed.xml, /robots.txt
    assert tree_csv(mixed.dsn, "--bots") == csv_of([
        ("/", 2, 6, 14160), ("/blog/", 1, 1, 2000), ("/blog/2026/", 1, 1, 2000),
        ("/static/", 0, 1, 5000)])
    # the same afternoon from access_log (a partial day) and from the rollup minus it
    assert tree_csv(mixed.dsn, "--since", "2024-10-08T12:00:00Z") == csv_of([
        ("/", 4, 8, 64460), ("/blog/", 1, 1, 2000), ("/blog/2026/", 1, 1, 2000),
        ("/docs/", 1, 1, 50000), ("/static/", 0, 1, 5000)])
    assert tree_csv(mixed.dsn, "--until", "2024-10-08T12:00:00Z", "--humans") == csv_of([
        ("/", 5, 15, 59000), ("/Static/", 0, 1, 8000), ("/api/", 0, 1, 0),
        ("/blog/", 2, 2, 3500), ("/blog/2026/", 2, 2, 3500), ("/dav/", 0, 1, 500),
        ("/dav/notes/", 0, 1, 500), ("/fonts/", 0, 1, 20000), ("/js/", 0, 2, 12000),
        ("/static/", 0, 3, 13000)])
    # --limit: the busiest directories, still in tree order (a tie at 3 goes by name)
    assert tree_csv(mixed.dsn, "--limit", "3") == csv_of([
        ("/", 9, 23, 123460), ("/blog/", 3, 3, 5500), ("/static/", 0, 4, 18000)])
    assert tree_csv(mixed.dsn, "--vhost", "www.example.com") == csv_of([])
    assert tree_csv(mixed.dsn, "--source", "no-such-server") == csv_of([])


def test_tree_from_access_log_for_a_source(mixed: Database) -> None:
    (source,) = query(mixed.dsn, "SELECT DISTINCT source FROM access_log")[0]
    assert tree_csv(mixed.dsn, "--source", source) == csv_of(TREE_3)
    assert tree_csv(mixed.dsn, "--source", source, "--depth", "1", "--bots") == csv_of([
        ("/", 2, 6, 14160)])


def test_tree_refuses_what_it_cannot_do(mixed: Database) -> None:
    for args, said in [(["--depth", "0"], "not a depth"), (["--depth", "two"], "not a depth"),
                       (["--path", "/blog/"], "takes no --path"),
                       (["--all"], "--all is for `logpipe report pages`")]:
        proc = run("report", "tree", *args, "--dsn", mixed.dsn)
        assert proc.returncode == 2, args
        assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
