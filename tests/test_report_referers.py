"""The referer reports on a fresh database: hot paths answered from their own rollup
exactly as from the index, and logs without a vhost with the site's hosts listed.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import Database, execute, logpipe_cmd, query, scalar
from reports_support import DATA, S, W, as_json, insert, report_ok, view

from logpipe.reports.filters import Filters
from logpipe.reports.run import prepare_session, run_report


def referer_answers(dsn: str, paths: list[str], *extra: str) -> dict[tuple, Any]:
    """`referers --path P` for every path and filter, as the CLI prints them in JSON."""
    answers = {}
    for path in paths:
        for flags in ((), ("--humans",), ("--bots",), ("--vhost", W), ("--vhost", S)):
            answers[(path, *flags)] = as_json(dsn, "referers", "--path", path, *flags, *extra)
    return answers


def unfolded_answers(dsn: str, paths: list[str], since: dt.datetime | None = None
                     ) -> dict[str, list[tuple]]:
    """`referers --path P` as run_report() answers it without the fold the CLI runs
    first (a reader role's report, or one that finds a fold busy): pending counts too."""
    answers = {}
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        prepare_session(cur)
        for path in paths:
            answers[path] = run_report(cur, "referers", Filters(path=path, since=since))[1]
    conn.close()
    return answers


# One long scenario rather than several tests: each step starts from the rollup state
# the one before left. ~150 `logpipe report` processes: 96-118 s on a slow 2-core VM.
@pytest.mark.timeout(300)
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
    # each key keeps its referer's host and whether it is the vhost's own...
    unknown = ("SELECT count(*) FROM logpipe_path_referers WHERE own IS NULL"
               " OR host IS DISTINCT FROM logpipe_url_host(referer)")
    assert scalar(database.dsn, unknown) == 0
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_path_referers WHERE own") > 0
    # ...keys counted before those columns are tested as the report runs...
    execute(database.dsn, "UPDATE logpipe_path_referers SET host = NULL, own = NULL"
                          " WHERE path = '/'")
    assert referer_answers(database.dsn, paths) == from_index
    # ...and initdb finds them once
    execute(database.dsn, "ALTER TABLE logpipe_path_referers DROP COLUMN host, DROP COLUMN own")
    database.initdb()
    assert scalar(database.dsn, unknown) == 0
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
    # before the fold the deletions wait in the pending counts, below zero, and the
    # all-time answer adds them to the rollup's
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_pending_referers"
                                " WHERE hits < 0") > 0
    assert unfolded_answers(database.dsn, paths) == unfolded_answers(
        database.dsn, paths, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
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
    # /a hot: its referers' hosts are kept, the site's hosts looked up as the report runs
    execute(database.dsn, "SELECT logpipe_promote_hot_paths(ARRAY['/a'])")
    assert as_json(database.dsn, "referers", "--path", "/a") == [
        {"referer": "https://blog.example.org/", "hits": 1},
        {"referer": "https://www.example.org/b", "hits": 1}]
    conn = psycopg2.connect(database.dsn)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO logpipe_site_hosts VALUES ('www.example.org')")
    conn.close()
    assert as_json(database.dsn, "referers") == [
        {"referer": "https://blog.example.org/", "hits": 1}]
    assert query(database.dsn, "SELECT path FROM logpipe_hot_paths") == [("/a",)]
    for since in ((), ("--since", "2024-10-10T09:30:00Z")):  # all time; hours and an edge
        assert as_json(database.dsn, "referers", "--path", "/a", *since) == [
            {"referer": "https://blog.example.org/", "hits": 1}]
    assert view(database.dsn, "SELECT referer, path, hits FROM report_broken_links") == [
        ("https://www.example.org/a", "/missing", 1)]


def test_hot_path_time_windows_add_whole_hours_and_read_the_edges(database: Database) -> None:
    """`referers --path P --since/--until` for a hot path: whole hours from the hourly
    referer counts (or, when the window holds most hours, the all-time counts less the
    hours outside it), the partial hour at either end from access_log; the same answers
    as the index gives for every window."""
    referers = ["https://a.example/", "https://b.example/x", "https://www.example.com/in"]
    rows = []
    for i in range(120):  # 10:00 .. 15:57 on one day, and a few the day after
        minute = 3 * i
        at = f"2024-10-10 {10 + minute // 60:02d}:{minute % 60:02d}:{i % 60:02d}+00"
        rows.append((at, W, "/hot", 200, 100, referers[i % 3], f"ua{i % 4}", i % 5 == 0))
    rows += [("2024-10-11 00:30:00+00", W, "/hot", 200, 1, referers[0], "ua", False),
             ("2024-10-11 01:00:00+00", S, "/hot", 404, 1, referers[1], None, None)]
    insert(database.dsn, rows)
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    windows = [
        ("--since", "2024-10-10T11:20:00Z"),  # most hours: all-time less the hours before
        ("--since", "2024-10-10T11:20:00Z", "--until", "2024-10-10T14:40:00Z"),
        ("--since", "2024-10-10T12:00:00Z", "--until", "2024-10-10T14:00:00Z"),  # whole hours
        ("--since", "2024-10-10T12:10:00Z", "--until", "2024-10-10T12:50:00Z"),  # inside one
        ("--since", "2024-10-10T12:10:00Z", "--until", "2024-10-10T13:50:00Z"),  # across one
        ("--until", "2024-10-10T13:15:30Z"),
        ("--since", "2024-10-10T15:59:00Z"),
        ("--since", "2024-10-09T00:00:00Z", "--until", "2024-10-12T00:00:00Z"),  # everything
    ]
    from_index = {w: referer_answers(database.dsn, ["/hot"], *w) for w in windows}
    assert all(from_index[w][("/hot",)] for w in windows)
    execute(database.dsn, "SELECT logpipe_promote_hot_paths(ARRAY['/hot'])")
    assert scalar(database.dsn,
                  "SELECT count(DISTINCT hour) FROM logpipe_path_referers_hourly") == 8
    for w in windows:
        assert referer_answers(database.dsn, ["/hot"], *w) == from_index[w], w
    # rows loaded after the promotion go through the pending counts, hour by hour
    insert(database.dsn, [r for r in rows if r[0] < "2024-10-10 13"])
    doubled = {w: referer_answers(database.dsn, ["/hot"], *w) for w in windows}
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_pending_referers") == 0
    for w in windows:
        assert referer_answers(database.dsn, ["/hot"], *w) == doubled[w], w
    assert doubled[windows[5]] != from_index[windows[5]]

    # what answers the whole hours (a count changed by hand shows where it is read)
    def a_hits(window: tuple[str, ...]) -> int:
        return next(r["hits"] for r in as_json(database.dsn, "referers", "--path", "/hot",
                                               *window) if r["referer"] == "https://a.example/")
    before = {w: a_hits(w) for w in windows[:5]}
    execute(database.dsn, "UPDATE logpipe_path_referers_hourly SET hits = hits + 1000"
                          " WHERE path = '/hot' AND referer = 'https://a.example/'"
                          " AND hour = '2024-10-10 12:00+00'")
    assert a_hits(windows[2]) == before[windows[2]] + 1000  # adds up the hours inside
    assert a_hits(windows[4]) == before[windows[4]]  # the hour is cut: from access_log
    assert a_hits(windows[0]) == before[windows[0]]  # the all-time counts less 10:00
    execute(database.dsn, "UPDATE logpipe_path_referers SET hits = hits + 1000"
                          " WHERE path = '/hot' AND referer = 'https://a.example/'")
    assert a_hits(windows[0]) == before[windows[0]] + 1000
