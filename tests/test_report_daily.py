"""broken-links, offenders, agents and referers from the daily summaries
(sql/050_daily_summaries.sql, reports/queries/daily.py) equal the live queries over
access_log alone (reports/queries/clients.py, referers.py): for windows with partial
days at either end and every filter; after a row is loaded late into a summarized day
or deleted from one; with a site host added; and after `logpipe prune`."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import Database, execute, fresh_database, query, scalar, start_logger, wait_for
from partition_support import run_ok, temporary_role
from pipe_support import StderrReader, feed, finish
from reports_support import as_csv
from visitors_support import load

from logpipe.reports.filters import Filters
from logpipe.reports.queries import daily
from logpipe.reports.queries.daily import (
    SUMMARY_REPORTS,
    refresh_days,
    refresh_for,
    split_window,
    summary_days,
)
from logpipe.reports.queries.referers import FITS
from logpipe.reports.run import QUERIES, prepare_session, pruned_before, run_report

W, S = "www.example.com", "shop.example.com"
UTC = dt.timezone.utc
DAYS = [dt.date(2024, 9, 29) + dt.timedelta(days=n) for n in range(4)]  # Sep 29 - Oct 2
HUMAN = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HOSTILE = "https://evil.example/" + "\\x1b[31m" + "x" * 3000  # a referer no btree entry holds
REFERERS = ["-", f"https://{W}/", f"https://{W}/blog/", f"https://{S}/cart",
            "https://www.google.com/", "https://news.ycombinator.com/item?id=1",
            "https://alias.example.com/a", "junk", HOSTILE, f"https://{W.upper()}:443/x"]
AGENTS = [HUMAN, HUMAN, "Chrome/119.0", BOT, "-", "curl/8.5.0"]
PATHS = ["/", "/blog/", "/missing", "/old-page", "/cart", "/x" * 40]
STATUSES = [200, 200, 200, 304, 404, 404, 410, 403, 500, 503]


def line(time: dt.datetime, vhost: str, host: str, path: str, status: int, referer: str,
         agent: str) -> str:
    return (f'{vhost}:443 {host} - - [{time:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" '
            f'{status} 10 "{referer}" "{agent}"\n')


def traffic(seed: int, count: int) -> str:
    """`count` requests spread over DAYS, reproducibly."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 9, 29, tzinfo=UTC)
    lines = []
    for _ in range(count):
        time = start + dt.timedelta(seconds=rng.randrange(4 * 86400))
        lines.append(line(time, rng.choice([W, W, S]), f"192.0.2.{rng.randrange(30)}",
                          rng.choice(PATHS), rng.choice(STATUSES), rng.choice(REFERERS),
                          rng.choice(AGENTS)))
    return "".join(lines)


@pytest.fixture(autouse=True)
def every_path_from_its_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """`referers --path` of a path with few rows reads them alone (FEW_PATH_ROWS): these
    tests' paths all have few, and are to be read from the summaries."""
    monkeypatch.setattr(daily, "FEW_PATH_ROWS", 0)


@pytest.fixture(scope="module", name="site")
def site_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("daily") / "days.log"
    path.write_text(traffic(14, 1500))
    with fresh_database() as db:
        load(db.dsn, path)
        with psycopg2.connect(db.dsn) as conn:
            refresh_days(conn, None, None)
        yield db


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


WINDOWS: list[tuple[dt.datetime | None, dt.datetime | None]] = [
    (None, None),
    (at("2024-09-29T13:30:00"), at("2024-10-02T06:15:00")),  # partial days at both ends
    (at("2024-09-30T00:00:00"), at("2024-10-02T00:00:00")),  # whole days only
    (at("2024-09-30T08:00:00"), None),
    (None, at("2024-10-01T12:00:00")),
    (at("2024-09-30T10:00:00"), at("2024-09-30T11:00:00")),  # within one day
]
FILTERS: list[dict[str, Any]] = [
    {}, {"bots": True}, {"bots": False}, {"vhost": W}, {"vhost": S, "bots": False},
    {"limit": 3}, {"limit": 0}, {"vhost": "nowhere.example"},
    # referers and broken-links keep paths: the long one has no btree entry of its own
    {"path": "/"}, {"path": "/x" * 40, "bots": False}, {"path": "/cart", "vhost": W},
    {"path": "/nowhere"},
]


def both(dsn: str, name: str, f: Filters) -> tuple[list[tuple], list[tuple], int]:
    """The report's rows as `logpipe report` gets them, the live query's, and how many
    summarized days the first one read."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            prepare_session(cur)
            f.pruned_before = pruned_before(cur)
            fresh = summary_days(cur, name, f)
            days = len(split_window(f, fresh).days) if fresh is not None else 0
            _, reported = run_report(cur, name, f)
            sql, params = QUERIES[name](f)
            cur.execute(sql, params)
            return reported, cur.fetchall(), days
    finally:
        conn.close()


def check_all(dsn: str, names: tuple[str, ...] = SUMMARY_REPORTS) -> int:
    """Every report, window and filter agrees with the live query; returns how many
    summarized days were read in all."""
    read = 0
    for name in names:
        for since, until in WINDOWS:
            for extra in FILTERS:
                f = dataclasses.replace(Filters(since=since, until=until, limit=20), **extra)
                reported, live, days = both(dsn, name, f)
                assert reported == live, (name, since, until, extra)
                read += days
    return read


def test_summaries_and_live_pieces_equal_the_live_query(site: Database) -> None:
    assert query(site.dsn, "SELECT day FROM logpipe_daily_days ORDER BY 1") == [
        (d,) for d in DAYS]
    assert check_all(site.dsn) > 0
    # the whole window from the summaries alone: every day whole and fresh
    _, _, days = both(site.dsn, "agents", Filters())
    assert days == 4


def test_filters_the_summaries_do_not_keep_read_access_log(site: Database) -> None:
    """--path (broken-links and referers keep paths), --source: the same rows as the
    live query."""
    source = str(scalar(site.dsn, "SELECT min(source) FROM access_log"))
    for name in SUMMARY_REPORTS:
        for extra in ({"path": "/missing"}, {"path": "/nowhere"}, {"sources": (source,)},
                      {"sources": ("other",)}):
            f = dataclasses.replace(Filters(since=at("2024-09-29T13:30:00"), limit=20),
                                    **extra)
            reported, live, days = both(site.dsn, name, f)
            assert reported == live, (name, extra)
            assert days == (3 if name in ("broken-links", "referers") and "path" in extra
                            else 0)
    reported, _, _ = both(site.dsn, "broken-links", Filters(path="/missing"))
    assert reported and {r[2] for r in reported} == {"/missing"}


def test_a_site_host_counts_at_once(site: Database) -> None:
    before, _, _ = both(site.dsn, "referers", Filters(limit=0))
    assert "https://alias.example.com/a" in {r[0] for r in before}
    execute(site.dsn, "INSERT INTO logpipe_site_hosts VALUES ('alias.example.com')")
    try:
        after, _, _ = both(site.dsn, "referers", Filters(limit=0))
        assert "https://alias.example.com/a" not in {r[0] for r in after}
        assert check_all(site.dsn, ("referers", "broken-links")) > 0
        broken, _, _ = both(site.dsn, "broken-links", Filters(limit=0))
        assert "https://alias.example.com/a" in {r[1] for r in broken}
    finally:
        execute(site.dsn, "DELETE FROM logpipe_site_hosts")


def test_rows_loaded_late_or_deleted_are_counted(site: Database, tmp_path: Path) -> None:
    """A row loaded into a summarized day makes that day count from access_log until it
    is summarized again; so does a deleted row."""
    late = tmp_path / "late.log"
    when = dt.datetime(2024, 9, 30, 18, 0, tzinfo=UTC)
    late.write_text(line(when, W, "198.51.100.7", "/gone", 404, f"https://{W}/blog/", HUMAN)
                    * 50)
    load(site.dsn, late)
    state = "SELECT fresh FROM logpipe_daily_state('2024-09-30', '2024-10-01')"
    assert scalar(site.dsn, state) is False
    offenders, live, _ = both(site.dsn, "offenders", Filters(limit=1))
    assert offenders == live and offenders[0][:2] == ("198.51.100.7", 50)
    broken, live, _ = both(site.dsn, "broken-links", Filters(limit=1))
    assert broken == live and broken[0][:5] == (W, f"https://{W}/blog/", "/gone", "404", 50)
    assert check_all(site.dsn, ("offenders", "agents")) > 0
    with psycopg2.connect(site.dsn) as conn:
        refresh_days(conn, None, None)
    assert scalar(site.dsn, state) is True
    assert both(site.dsn, "offenders", Filters(limit=1))[0] == offenders
    execute(site.dsn, "DELETE FROM access_log WHERE remote_host = '198.51.100.7'")
    assert scalar(site.dsn, state) is False
    assert check_all(site.dsn, ("offenders", "broken-links")) > 0
    assert "198.51.100.7" not in {r[0] for r in both(site.dsn, "offenders", Filters())[0]}


def test_the_first_report_summarizes_and_a_reader_reads(database: Database,
                                                        tmp_path: Path) -> None:
    """The owner's first report stores the summaries of its window's past days (said
    once); a reader's report, which may not, counts from access_log the same."""
    path = tmp_path / "days.log"
    path.write_text(traffic(7, 300))
    load(database.dsn, path)
    with temporary_role(database.dsn) as reader:
        run_ok("initdb", "--dsn", database.dsn, "--reader-role", reader)
        as_reader = f"{database.dsn} user={reader}"
        expected = as_csv(as_reader, "offenders")
        assert scalar(database.dsn, "SELECT count(*) FROM logpipe_daily_days") == 0
        first = run_ok("report", "offenders", "--dsn", database.dsn, "--format", "csv")
        assert list(csv.reader(io.StringIO(first.stdout))) == expected
        # the days logpipe_daily_due() gives, which the refresh then summarizes
        assert "summarizing the requests of 4 days, once" in first.stderr
        assert scalar(database.dsn, "SELECT count(*) FROM logpipe_daily_days") == 4
        again = run_ok("report", "offenders", "--dsn", database.dsn, "--format", "csv")
        assert "summarizing" not in again.stderr
        assert as_csv(as_reader, "offenders") == expected  # from the summaries
        assert as_csv(as_reader, "referers", "--since", "2024-09-30T12:00:00Z") == \
            as_csv(database.dsn, "referers", "--since", "2024-09-30T12:00:00Z", "--source",
                   str(scalar(database.dsn, "SELECT min(source) FROM access_log")))


def test_pruned_days_are_never_read_from_the_summaries(database: Database,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "days.log"
    path.write_text(traffic(21, 400))
    load(database.dsn, path)
    with psycopg2.connect(database.dsn) as conn:
        refresh_days(conn, None, None)
    # the cutoff falls on 2024-10-02: September's partition goes, October's stays
    age = (dt.datetime.now(UTC).date() - dt.date(2024, 10, 2)).days
    run_ok("prune", "--dsn", database.dsn, "--older-than", f"{age}d")
    assert scalar(database.dsn, "SELECT min(time) FROM access_log") >= at("2024-10-01T00:00:00")
    assert check_all(database.dsn) > 0
    with psycopg2.connect(database.dsn) as conn:
        refresh_days(conn, None, None)
    assert query(database.dsn, "SELECT day FROM logpipe_daily_days ORDER BY 1") == [
        (d,) for d in DAYS[2:]]
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_daily_offenders"
                                " WHERE day < '2024-10-01'") == 0


def test_the_writer_summarizes_the_last_whole_days(database: Database, tmp_path: Path) -> None:
    """The logger's writer keeps the summaries of yesterday and the day before (when it
    is first idle, then hourly); older days are left to the reports that need them."""
    today = dt.datetime.now(UTC).date()
    days = [today - dt.timedelta(days=n) for n in (3, 2, 1)]
    lines = [line(dt.datetime(d.year, d.month, d.day, h, tzinfo=UTC), W, "192.0.2.9", "/gone",
                  404, f"https://{W}/", HUMAN).encode() for d in days for h in (1, 13)]
    proc = start_logger(database.dsn, tmp_path / "spool", "--format", "vhost_combined")
    stderr = StderrReader(proc)
    feed(proc, lines)
    wait_for(lambda: len(query(database.dsn, "SELECT day FROM logpipe_daily_days")) == 2,
             timeout=30, what=lambda: f"two days summarized; stderr {stderr.text()[-600:]!r}")
    finish(proc, stderr=stderr)
    assert query(database.dsn, "SELECT day, hits FROM logpipe_daily_days ORDER BY day") == [
        (days[1], 2), (days[2], 2)]
    assert query(database.dsn, "SELECT day, hits FROM logpipe_daily_broken ORDER BY day") == [
        (days[1], 2), (days[2], 2)]
    reported, live, read = both(database.dsn, "broken-links", Filters())
    assert reported == live and reported[0][4] == 6 and read == 2


def test_the_current_day_is_summarized_up_to_its_last_settled_hour(database: Database,
                                                                    tmp_path: Path) -> None:
    """Today's rows up to the last whole hour (ended 5 minutes ago or more) are read from
    its summary, the rest from access_log; a row loaded late into that part is counted
    at once."""
    now = dt.datetime.now(UTC)
    settled = (now - dt.timedelta(minutes=5)).replace(minute=0, second=0, microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if settled <= midnight:  # 00:00-01:05 UTC: what the summaries must do then
        _today_before_its_first_settled_hour(database, tmp_path, midnight, now)
        return
    _load_and_summarize_today(database, tmp_path, [
        midnight, midnight + (settled - midnight) / 2, settled - dt.timedelta(seconds=1),
        settled, now - dt.timedelta(seconds=30)])
    assert query(database.dsn, "SELECT day, upto, hits FROM logpipe_daily_days") == [
        (midnight.date(), settled, 3)]
    for name in SUMMARY_REPORTS:
        for f in (Filters(), Filters(since=midnight), Filters(since=midnight, until=settled),
                  Filters(until=settled - dt.timedelta(minutes=1))):
            reported, live, _ = both(database.dsn, name, f)
            assert reported == live, (name, f)
    assert both(database.dsn, "broken-links", Filters())[0][0][4] == 5
    assert both(database.dsn, "agents", Filters())[2] == 1  # read from the summary
    late = tmp_path / "late.log"
    late.write_text(line(midnight + dt.timedelta(seconds=5), W, "192.0.2.99", "/gone", 410,
                         f"https://{W}/", HUMAN))
    load(database.dsn, late)
    reported, live, read = both(database.dsn, "broken-links", Filters())
    assert reported == live and reported[0][3:5] == ("404,410", 6) and read == 0


def _today_before_its_first_settled_hour(database: Database, tmp_path: Path,
                                         midnight: dt.datetime, now: dt.datetime) -> None:
    """Before today's first whole hour has settled, today has no summary: every report
    counts it from access_log, exactly."""
    _load_and_summarize_today(database, tmp_path, [
        midnight, midnight + (now - midnight) / 2, now - dt.timedelta(seconds=30)])
    assert query(database.dsn, "SELECT day FROM logpipe_daily_days") == []
    for name in SUMMARY_REPORTS:
        for f in (Filters(), Filters(since=midnight)):
            reported, live, read = both(database.dsn, name, f)
            assert reported == live and read == 0, (name, f)
    assert both(database.dsn, "broken-links", Filters())[0][0][4] == 3


def _load_and_summarize_today(database: Database, tmp_path: Path,
                              times: list[dt.datetime]) -> None:
    """A broken link followed at each of `times` (one client each), loaded, then the
    summaries refreshed as a report by the owner would."""
    path = tmp_path / "today.log"
    path.write_text("".join(line(t, W, f"192.0.2.{i}", "/gone", 404, f"https://{W}/", HUMAN)
                            for i, t in enumerate(times)))
    load(database.dsn, path)
    with psycopg2.connect(database.dsn) as conn:
        refresh_days(conn, None, None)


def test_referers_of_a_path_read_its_days_unless_it_has_counts_of_its_own(
        database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`referers --path` reads a path's summarized days, but a hot path's own referer
    counts (logpipe_hot_paths), and a path with few rows its rows; days summarized
    before the path referers are read from access_log until the next refresh redoes
    them."""
    path = tmp_path / "days.log"
    path.write_text(traffic(5, 600))
    load(database.dsn, path)
    with psycopg2.connect(database.dsn) as conn:
        refresh_days(conn, None, None)
    some = Filters(path="/cart", since=at("2024-09-29T13:30:00"))
    reported, live, days = both(database.dsn, "referers", some)
    assert reported == live and reported and days == 3
    # its entries in the report index (a hostile referer's rows are in the other one)
    rows = scalar(database.dsn, "SELECT count(*) FROM access_log a WHERE path = '/cart'"
                                f" AND referer IS NOT NULL AND {FITS}")
    monkeypatch.setattr(daily, "FEW_PATH_ROWS", rows + 1)
    assert both(database.dsn, "referers", some) == (reported, live, 0)
    monkeypatch.setattr(daily, "FEW_PATH_ROWS", rows)
    assert both(database.dsn, "referers", some) == (reported, live, 3)
    execute(database.dsn, "SELECT logpipe_promote_hot_paths(ARRAY['/cart'])")
    reported, live, days = both(database.dsn, "referers", some)
    assert reported == live and days == 0
    execute(database.dsn, "DELETE FROM logpipe_hot_paths")
    execute(database.dsn, "UPDATE logpipe_daily_days SET path_referers = false;"
                          " DELETE FROM logpipe_daily_path_referers")
    reported, live, days = both(database.dsn, "referers", some)
    assert reported == live and days == 0
    with psycopg2.connect(database.dsn) as conn:
        refresh_days(conn, None, None)
    reported, live, days = both(database.dsn, "referers", some)
    assert reported == live and days == 3
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_daily_path_referers") > 0


def test_referers_of_a_path_read_alone_summarize_no_days(database: Database, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner's `referers --path` summarizes its window's days only when it reads them:
    not for a path read from its rows alone."""
    path = tmp_path / "days.log"
    path.write_text(traffic(9, 300))
    load(database.dsn, path)
    args = argparse.Namespace(name="referers", since=None, until=None)
    monkeypatch.setattr(daily, "FEW_PATH_ROWS", 10**6)
    with psycopg2.connect(database.dsn) as conn:
        refresh_for(conn, args, Filters(path="/cart"))
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_daily_days") == 0
    monkeypatch.setattr(daily, "FEW_PATH_ROWS", 0)
    with psycopg2.connect(database.dsn) as conn:
        refresh_for(conn, args, Filters(path="/cart"))
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_daily_days") == 4
