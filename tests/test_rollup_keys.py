"""Values no real request has (an 8 KB incompressible path, a bytes count near 2^63) are
counted by the report rollups like any other row: one of them in a fold must not fail
that fold and every fold after it."""

from __future__ import annotations

import json
import secrets

from conftest import Database, execute, query, scalar
from partition_support import run_ok

LONG_PATH = "/" + secrets.token_hex(4000)  # 8 KB that no compression shrinks
HUGE = 2**63 - 1  # fits access_log.bytes, overflows any sum with another row


def test_a_long_path_and_a_huge_size_fold_and_report(database: Database) -> None:
    dsn = database.dsn
    execute(dsn, f"INSERT INTO access_log (time, path, status, bytes) VALUES "
                 f"(now(), '{LONG_PATH}', 200, 5), (now(), '/big', 200, {HUGE})")
    execute(dsn, "INSERT INTO access_log (time, path, status, bytes) VALUES "
                 "(now(), '/big', 200, 10), (now(), '/plain', 200, 7)")
    execute(dsn, "SELECT logpipe_rollup_fold()")  # refused before, and every fold after
    assert scalar(dsn, "SELECT count(*) FROM logpipe_pending_pages") == 0
    pages = {r["path"]: r for r in json.loads(run_ok(
        "report", "pages", "--dsn", dsn, "--format", "json", "--limit", "0").stdout)}
    assert pages["/plain"]["hits"] == 1 and pages["/plain"]["bytes"] == 7
    assert pages["/big"]["hits"] == 2 and pages["/big"]["bytes"] == 10**15 + 10
    (long_key,) = [p for p in pages if p not in ("/plain", "/big")]
    assert long_key == LONG_PATH[:500] and pages[long_key]["hits"] == 1
    # the same day read from access_log (a partial day) meets the rollup's page
    today = run_ok("report", "pages", "--dsn", dsn, "--format", "json", "--limit", "0",
                   "--since", "1h").stdout
    assert {r["path"]: r["hits"] for r in json.loads(today)} == {
        "/plain": 1, "/big": 2, LONG_PATH[:500]: 1}
    # later rows still fold
    execute(dsn, "INSERT INTO access_log (time, path, status, bytes)"
                 " VALUES (now(), '/plain', 200, 1)")
    execute(dsn, "SELECT logpipe_rollup_fold()")
    assert query(dsn, "SELECT hits FROM logpipe_pages WHERE path = '/plain'") == [(2,)]


def test_a_cut_path_key_never_becomes_hot(database: Database) -> None:
    """A path longer than a rollup key is counted under its first 500 characters; that
    key must not become a hot path, or `referers --path` for a real path of those 500
    characters would count the long paths' referers too."""
    dsn = database.dsn
    long_path = "/" + "a" * 2999
    key = long_path[:500]
    execute(dsn, "INSERT INTO access_log (time, path, status, referer) VALUES "
                 f"(now(), '{long_path}', 200, 'https://long.example/'),"
                 f" (now(), '{key}', 200, 'https://key.example/'),"
                 " (now(), '/short', 200, 'https://short.example/')")
    execute(dsn, "SELECT logpipe_rollup_fold(1)")  # hot from the first request
    assert query(dsn, "SELECT path FROM logpipe_hot_paths") == [("/short",)]
    execute(dsn, "INSERT INTO access_log (time, path, status, referer) VALUES "
                 f"(now(), '{long_path}', 200, 'https://long.example/')")
    execute(dsn, "SELECT logpipe_rollup_fold(1)")
    answer = json.loads(run_ok("report", "referers", "--path", key, "--dsn", dsn,
                               "--format", "json").stdout)
    assert answer == [{"referer": "https://key.example/", "hits": 1}]


def test_initdb_unmakes_a_hot_cut_key(database: Database) -> None:
    """Promoted before the fold left such keys out: initdb makes it not hot again."""
    dsn = database.dsn
    key = "/" + "b" * 499
    execute(dsn, f"INSERT INTO access_log (time, path, status, referer) VALUES "
                 f"(now(), '{key}', 200, 'https://key.example/')")
    execute(dsn, f"SELECT logpipe_promote_hot_paths(ARRAY['{key}'])")
    assert scalar(dsn, "SELECT count(*) FROM logpipe_path_referers") == 1
    database.initdb()
    assert scalar(dsn, "SELECT count(*) FROM logpipe_hot_paths") == 0
    assert scalar(dsn, "SELECT count(*) FROM logpipe_path_referers") == 0
