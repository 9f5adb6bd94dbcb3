"""A client's path and Referer as long as Apache takes them (8 KB of random bytes each,
logged 4 times longer as \\xhh) load as rows, and the referer reports count them exactly:
the report index holds only entries that fit a btree entry, a second index the others
(sql/010_indexes.sql), and every query reads both.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from conftest import COMMAND_TIMEOUT, Database, execute, query, scalar, start_logger
from partition_support import run_ok
from reports_support import as_json
from test_long_lines import LONGEST_FIELD, LONGEST_REQUEST_LINE, apache_escape

from logpipe.reports.filters import Filters
from logpipe.reports.queries.referers import query_broken_links, query_referers

HOSTILE = "203.0.113.66"
SITE = "www.example.com"
BY_PATH = "/blog/post-1"
rng = random.Random(8190)


def random_bytes(count: int) -> bytes:
    """Bytes Apache logs as \\xhh, in an order no compression shortens much."""
    return bytes(rng.randrange(0x80, 0x100) for _ in range(count))


# The longest path a request line takes, and a second one that shares its first 7 KB
# (so the same first 500 characters in access_log, the second index's key).
LONG_PATH = b"/" + random_bytes(LONGEST_REQUEST_LINE - len(b"GET / HTTP/1.1"))
TWIN_PATH = LONG_PATH[:7000] + random_bytes(len(LONG_PATH) - 7000)
LONG_REFERER = b"https://evil.example/" + random_bytes(
    LONGEST_FIELD - len(b"Referer: https://evil.example/"))
# a link from the site's own page to a missing one: a broken link
LONG_OWN_REFERER = f"https://{SITE}/".encode() + random_bytes(3000)


def line(host: str, path: bytes, status: int, referer: bytes, second: int) -> bytes:
    request = b"GET " + path + b" HTTP/1.1"
    assert len(request) <= LONGEST_REQUEST_LINE and len(b"Referer: " + referer) <= LONGEST_FIELD
    return (f'{host} - - [03/Dec/2026:12:00:{second:02d} +0000] "{apache_escape(request)}"'
            f' {status} 210 "{apache_escape(referer)}" "agent/1"\n').encode()


def traffic() -> list[bytes]:
    ordinary = [line(f"198.51.100.{i % 5 + 1}", BY_PATH.encode(), 200,
                     f"https://news{i % 3}.example/".encode(), i % 60) for i in range(30)]
    ordinary += [line("198.51.100.9", b"/missing", 404, f"https://{SITE}/blog/".encode(), 1)]
    hostile = [
        line(HOSTILE, LONG_PATH, 404, b"https://short.example/", 1),
        line(HOSTILE, LONG_PATH, 404, LONG_REFERER, 2),
        line(HOSTILE, LONG_PATH, 404, LONG_REFERER, 3),
        line(HOSTILE, TWIN_PATH, 404, LONG_REFERER, 4),
        line(HOSTILE, BY_PATH.encode(), 404, LONG_REFERER, 5),
        line(HOSTILE, BY_PATH.encode(), 404, LONG_REFERER, 6),
        line(HOSTILE, LONG_PATH, 404, LONG_OWN_REFERER, 7),
        line(HOSTILE, b"/missing", 404, LONG_OWN_REFERER, 8),
    ]
    return ordinary[:10] + hostile + ordinary[10:]


def stored_path(dsn: str, raw: bytes) -> str:
    """The path as access_log holds it: as logged (its bytes are not UTF-8)."""
    path = apache_escape(raw)
    assert scalar(dsn, "SELECT count(*) FROM access_log WHERE path = %s", (path,))
    return path


def referer_counts(dsn: str, path: str) -> list[dict[str, object]]:
    """External referers of the path, counted straight from the table (no vhost in the
    combined format: a referer is the site's own only if its host is a site host)."""
    rows = query(dsn, "SELECT referer, count(*) FROM access_log"
                      " WHERE path = %s AND referer <> '' AND NOT logpipe_same_site(referer, vhost)"
                      " GROUP BY referer ORDER BY 2 DESC, 1", (path,))
    return [{"referer": r, "hits": n} for r, n in rows]


def broken_link_counts(dsn: str, path: str) -> list[tuple[str, str, int]]:
    return query(dsn, "SELECT referer, path, count(*)::int FROM access_log"
                      " WHERE path = %s AND status BETWEEN 400 AND 499 AND referer <> ''"
                      " AND logpipe_same_site(referer, vhost) GROUP BY 1, 2 ORDER BY 3 DESC, 1",
                 (path,))


def insert_long_referer(dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO access_log (time, path, status, referer)"
                        " VALUES (now(), '/a', 404, %s)", (apache_escape(LONG_REFERER),))
    finally:
        conn.close()


def vacuum(dsn: str) -> None:
    """Mark the table's pages all-visible, as autovacuum would: index-only scans pay."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE access_log")
    finally:
        conn.close()


def plan(dsn: str, sql: str, params: dict[str, object] | None = None) -> str:
    """The plan PostgreSQL makes with a sequential or bitmap scan its last resort: a
    sequential scan in it means that no index can answer."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            cur.execute("EXPLAIN " + sql, params)
            return "\n".join(r[0] for r in cur.fetchall())
    finally:
        conn.close()


def test_longest_paths_and_referers_load_and_count_exactly(database: Database,
                                                          tmp_path: Path) -> None:
    dsn = database.dsn
    execute(dsn, f"INSERT INTO logpipe_site_hosts VALUES ('{SITE}')")
    lines = traffic()
    logger = start_logger(dsn, tmp_path / "spool")
    _, err = logger.communicate(b"".join(lines), timeout=COMMAND_TIMEOUT)
    assert logger.returncode == 0, err.decode()

    assert query(dsn, "SELECT reason FROM access_log_rejects") == []
    assert database.rows() == len(lines)
    long_path, twin_path = stored_path(dsn, LONG_PATH), stored_path(dsn, TWIN_PATH)
    assert len(long_path) > 32000 and long_path[:500] == twin_path[:500]
    assert scalar(dsn, "SELECT count(*) FROM access_log WHERE referer = %s",
                  (apache_escape(LONG_REFERER),)) == 5

    # referers --path: exact for an ordinary path and for each long one, from the CLI
    # and from the view alike
    for path in (BY_PATH, long_path, twin_path):
        expected = referer_counts(dsn, path)
        assert expected, path[:20]
        assert as_json(dsn, "referers", "--path", path, "--limit", "0") == expected
        assert as_json(dsn, "referers", "--path", path, "--since", "2026-01-01",
                       "--limit", "0") == expected
        assert [{"referer": r, "hits": n} for r, n in query(
            dsn, "SELECT referer, hits FROM report_referers WHERE path = %s"
                 " ORDER BY hits DESC, referer", (path,))] == expected
    assert {"referer": apache_escape(LONG_REFERER), "hits": 2} in \
        as_json(dsn, "referers", "--path", BY_PATH)
    everything = as_json(dsn, "referers", "--limit", "0")
    assert sum(r["hits"] for r in everything) == scalar(
        dsn, "SELECT count(*) FROM access_log WHERE referer <> ''"
             " AND NOT logpipe_same_site(referer, vhost)")

    # a path made hot counts its referers from both indexes, long ones too (their text
    # as the rollup keys it: logpipe_key in 020_reports.sql)
    execute(dsn, f"SELECT logpipe_promote_hot_paths(ARRAY['{BY_PATH}'])")
    hot = as_json(dsn, "referers", "--path", BY_PATH, "--limit", "0")
    assert sorted(r["hits"] for r in hot) == sorted(r["hits"] for r in referer_counts(dsn, BY_PATH))
    assert [r for r in hot if len(r["referer"]) < 100] == [
        r for r in referer_counts(dsn, BY_PATH) if len(r["referer"]) < 100]

    # broken links with a long path or a long referer of the site's own
    for path in ("/missing", long_path):
        expected_links = broken_link_counts(dsn, path)
        assert expected_links, path[:20]
        assert [(r["referer"], r["path"], r["hits"]) for r in as_json(
            dsn, "broken-links", "--path", path, "--limit", "0")] == expected_links
        assert query(dsn, "SELECT referer, path, hits::int FROM report_broken_links"
                          " WHERE path = %s ORDER BY hits DESC, referer", (path,)) == expected_links

    # the client that sent them is among the offenders, all its requests counted
    offenders = {r["remote_host"]: r for r in as_json(dsn, "offenders", "--limit", "0")}
    assert offenders[HOSTILE]["client_errors"] == 8
    assert offenders[HOSTILE]["requests"] == 8

    # an ordinary path's rows are found through the report index; the rows that
    # do not fit it from the second index; no branch reads the whole table
    vacuum(dsn)
    with_path = Filters(path=BY_PATH)
    in_view = {"path": BY_PATH}
    for sql, params in (query_referers(with_path), query_broken_links(with_path),
                        ("SELECT * FROM report_referers WHERE path = %(path)s", in_view),
                        ("SELECT * FROM report_broken_links WHERE path = %(path)s", in_view)):
        shown = plan(dsn, sql, params)
        assert "Seq Scan on access_log" not in shown, shown
        assert "_left_idx" in shown, shown  # access_log_oversize_referers' partitions
    for sql, params in (query_referers(with_path),
                        ("SELECT * FROM report_referers WHERE path = %(path)s", in_view)):
        shown = plan(dsn, sql, params)
        # access_log_path_referers' partitions: the path alone, no INCLUDE columns
        assert re.search(r"Index Scan (using|on) \S+_path_idx", shown), shown


def test_upgrade_replaces_the_index_that_refused_long_entries(database: Database) -> None:
    """A database of schema version 2 has the index that refused such rows: initdb
    replaces it (upgrade_003), after which they load."""
    dsn = database.dsn
    execute(dsn, """
        DROP INDEX access_log_path_referers, access_log_oversize_referers;
        CREATE INDEX access_log_path_referers ON access_log (path) INCLUDE (vhost, referer)
            WHERE referer IS NOT NULL;
        DELETE FROM logpipe_schema_version;
        INSERT INTO logpipe_schema_version VALUES (2, now(), '0.9', 'created')""")
    with pytest.raises(psycopg2.errors.ProgramLimitExceeded):
        insert_long_referer(dsn)

    result = run_ok("initdb", "--dsn", dsn)
    assert "version 4 (upgraded from version 2)" in result.stderr
    insert_long_referer(dsn)
    assert scalar(dsn, "SELECT count(*) FROM access_log WHERE referer LIKE 'https://evil%'") == 1
    assert query(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'access_log'"
                      " ORDER BY 1") == [("access_log_oversize_referers",),
                                         ("access_log_path_referers",),
                                         ("access_log_time_brin",)]
