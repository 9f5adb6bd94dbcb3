"""The report rollups (daily pages, quarter hours, pending counts): they match access_log
after loads, deletes, updates, rebuilds and concurrent writers; reports fold first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg2
from conftest import Database, execute, query, scalar, start_logger
from reports_support import (
    H1,
    PENDING,
    ROLLUP,
    ROLLUP_FROM_ACCESS_LOG,
    as_json,
    assert_quarters_match,
    insert,
    loaded_fixture,  # noqa: F401 - the `loaded` fixture
)


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
    # BRIN (time), (path) INCLUDE (vhost, referer), (left(path, 500)) for oversize rows
    assert scalar(database.dsn, "SELECT count(*) FROM pg_indexes"
                  " WHERE tablename = 'access_log'") == 3
    assert scalar(database.dsn, "SELECT count(*) FROM pg_trigger WHERE tgrelid ="
                  " 'access_log'::regclass AND NOT tgisinternal") == 4
