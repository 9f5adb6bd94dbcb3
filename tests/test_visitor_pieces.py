"""The pieces that keep the visitor reports fast agree with access_log: a day summarized
hour by hour (logpipe_visit_prefix, logpipe_visit_state: visits and visitors that cross
an hour, NULL and empty agents, a row loaded late), and the visitors of a day cut by
--since counted from their last request (logpipe_visit_lasts), also when a visitor's
country changes within the day. Each report is compared with itself restricted to the
rows' source, which reads access_log alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import Database, execute, fresh_database, query, scalar
from visitors_support import CHANNELS, COUNTRIES, DAY, SHOP, VISITORS, W, line, load

from logpipe.reports.filters import Filters
from logpipe.reports.run import prepare_session, run_report

UTC = dt.timezone.utc
DAY0 = dt.datetime(2026, 11, 20, tzinfo=UTC)
# visitors with no agent ('-': NULL) and an empty one, one address: two visitors, each
# with a visit across 11:00 and 12:00
EXTRA = "".join([
    line("20/Nov/2026:10:50:00", "192.0.2.9", "/n", "-", "-"),
    line("20/Nov/2026:11:10:00", "192.0.2.9", "/n2", "https://t.co/x", "-"),
    line("20/Nov/2026:11:55:00", "192.0.2.9", "/e", "https://www.bing.com/", ""),
    line("20/Nov/2026:12:20:00", "192.0.2.9", "/e2", "-", ""),
])
WINDOWS: list[dict[str, Any]] = [
    {}, {"since": DAY0}, {"bots": False}, {"bots": True}, {"vhost": W}, {"vhost": SHOP},
    {"since": DAY0, "until": DAY0 + dt.timedelta(hours=30)}, {"visit_gap": 1200},
]


def report(dsn: str, name: str, live: bool = False, **filters: Any) -> list[tuple]:
    """The report's rows as run_report() gives them (no summary made on the way); live:
    from access_log alone (only the rows of their one source)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            prepare_session(cur)
            if live:
                cur.execute("SELECT DISTINCT source FROM access_log")
                filters["sources"] = tuple(r[0] for r in cur.fetchall())
            return run_report(cur, name, Filters(**filters))[1]
    finally:
        conn.close()


def agree(dsn: str, **filters: Any) -> None:
    for name in ("visitors", "countries", "channels"):
        assert report(dsn, name, **filters) == report(dsn, name, live=True, **filters), \
            (name, filters)
    by_hour = dict(filters, by="hour")
    assert report(dsn, "visitors", **by_hour) == report(dsn, "visitors", live=True, **by_hour)


@pytest.fixture(scope="module", name="day")
def day_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("pieces") / "day.log"
    path.write_text(DAY + EXTRA)
    with fresh_database() as db:
        load(db.dsn, path)
        yield db


def hours(dsn: str, upto: dt.datetime) -> int:
    """logpipe_visits_refresh_hours(1800, upto), committed: the hours it summarized."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT logpipe_visits_refresh_hours(1800, %s)", (upto,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def forget(dsn: str) -> None:
    execute(dsn, "DELETE FROM logpipe_visit_prefix; DELETE FROM logpipe_visit_days")


def test_a_day_summarized_hour_by_hour_counts_as_access_log(day: Database) -> None:
    forget(day.dsn)
    for hour in range(1, 24):  # each hour added to those before
        assert hours(day.dsn, DAY0 + dt.timedelta(hours=hour, minutes=20)) == 1
        assert query(day.dsn, "SELECT upto FROM logpipe_visit_prefix_state(NULL, NULL, 1800)"
                     ) == [(DAY0 + dt.timedelta(hours=hour),)]
        for window in WINDOWS:
            agree(day.dsn, **window)
    # the hand-counted figures, and the summary read: a change to it shows
    assert report(day.dsn, "countries")[0] == ("NL", 3, 9)
    execute(day.dsn, "UPDATE logpipe_visit_countries SET hits = hits + 100 WHERE ctid ="
                     " (SELECT ctid FROM logpipe_visit_countries WHERE country = 'NL' LIMIT 1)")
    assert report(day.dsn, "countries")[0] == ("NL", 3, 109)
    forget(day.dsn)


def test_the_hand_counted_day_from_hourly_pieces(day: Database, tmp_path: Path) -> None:
    """DAY alone (tests/visitors_support.py), summarized to 10:00: A's first visit
    continues across it (10:09:58), D crosses midnight."""
    path = tmp_path / "day.log"
    path.write_text(DAY)
    with fresh_database() as db:
        load(db.dsn, path)
        assert hours(db.dsn, DAY0 + dt.timedelta(hours=10, minutes=5)) == 10
        assert hours(db.dsn, DAY0 + dt.timedelta(hours=10, minutes=59)) == 0  # done
        assert report(db.dsn, "visitors") == [
            (dt.date.fromisoformat(d), v, int(a), int(b), int(c)) for d, v, a, b, c in VISITORS[1:]]
        assert [(c or "", str(v), str(h)) for c, v, h in report(db.dsn, "countries")] == [
            tuple(r) for r in COUNTRIES[1:]]
        assert [[c, s or "", str(v), str(h)] for c, s, v, h in report(
            db.dsn, "channels")] == CHANNELS[1:]
        # the state: A's last request before 10:00 and its visit from Google
        assert query(db.dsn, "SELECT last_time, channel, source FROM logpipe_visit_state"
                     " WHERE user_agent = 'Firefox/120.0' AND vhost = %s", (W,)) == [
            (DAY0 + dt.timedelta(hours=9, minutes=39, seconds=59), "search", "Google")]
        # the whole day's summary replaces the hourly one
        execute(db.dsn, "SELECT logpipe_visits_refresh()")
        assert query(db.dsn, "SELECT (SELECT count(*) FROM logpipe_visit_prefix),"
                     " (SELECT count(*) FROM logpipe_visit_state)") == [(0, 0)]
        assert report(db.dsn, "channels") == report(db.dsn, "channels", live=True)


def test_a_row_loaded_late_into_a_summarized_hour(day: Database, tmp_path: Path) -> None:
    forget(day.dsn)
    hours(day.dsn, DAY0 + dt.timedelta(hours=13))
    late = tmp_path / "late.log"
    late.write_text(line("20/Nov/2026:09:45:00", "193.0.6.139", "/late", "-", "Chrome/119.0"))
    load(day.dsn, late)
    try:
        # the prefix is out of date: the day counts from access_log, then from scratch
        assert query(day.dsn, "SELECT * FROM logpipe_visit_prefix_state(NULL, NULL, 1800)") \
            == []
        agree(day.dsn)
        assert hours(day.dsn, DAY0 + dt.timedelta(hours=14)) == 14
        agree(day.dsn)
        assert report(day.dsn, "visitors", vhost=W)[0][4] == 13 + 4 + 1  # DAY, EXTRA, late
    finally:
        execute(day.dsn, "DELETE FROM access_log WHERE path = '/late'")
        forget(day.dsn)


def test_a_window_cut_inside_a_summarized_day(day: Database, tmp_path: Path) -> None:
    """Countries and visitors over a window that begins inside a whole day: its visitors
    from their last request (logpipe_visit_lasts), its whole hours from the summary, the
    hour cut and visits cut from access_log; a visitor whose country changes within the
    day sends that day back to access_log."""
    forget(day.dsn)
    execute(day.dsn, "SELECT logpipe_visits_refresh()")
    assert scalar(day.dsn, "SELECT count(*) FROM logpipe_visit_lasts WHERE varies") == 0
    cuts = [DAY0 + dt.timedelta(hours=h, minutes=m) for h, m in
            ((8, 0), (8, 1), (9, 5), (9, 39), (10, 44), (11, 0), (11, 5), (12, 30), (23, 49),
             (23, 51))]
    for since in cuts:
        for extra in ({}, {"bots": False}, {"bots": True}, {"vhost": W},
                      {"until": DAY0 + dt.timedelta(days=2)}, {"by": "hour"},
                      {"by": "hour", "bots": False, "vhost": W}):
            for name in ("countries", "visitors") if "by" not in extra else ("visitors",):
                assert report(day.dsn, name, since=since, **extra) == report(
                    day.dsn, name, live=True, since=since, **extra), (name, since, extra)
    moved = tmp_path / "moved.log"
    moved.write_text(line("20/Nov/2026:20:00:00", "8.8.8.8", "/m", "-", "Safari/17.0"))
    load(day.dsn, moved)
    try:
        execute(day.dsn, "UPDATE access_log SET country = 'CA' WHERE path = '/m'")
        execute(day.dsn, "SELECT logpipe_visits_refresh()")
        assert scalar(day.dsn, "SELECT count(*) FROM logpipe_visit_lasts WHERE varies") == 1
        for since in cuts:
            for name in ("countries", "visitors"):
                assert report(day.dsn, name, since=since) == report(
                    day.dsn, name, live=True, since=since)
        # C from 12:30:01 (US), then 20:00 (CA): a visitor of its first country in the window
        assert {("US", 1, 1), ("CA", 0, 1)} <= set(report(day.dsn, "countries", since=cuts[7]))
        assert ("CA", 1, 1) in report(day.dsn, "countries", since=DAY0 + dt.timedelta(hours=13))
    finally:
        execute(day.dsn, "DELETE FROM access_log WHERE path = '/m'")
        forget(day.dsn)


# A visit that lasts all afternoon (a request every 20 minutes, each from another
# referer; the one of 14:00:00 sharp), a bot's that crosses two hours, and a visitor
# with two visits in one hour.
LONG = "".join(
    line(f"20/Nov/2026:{13 + m // 60}:{m % 60:02d}:00", "192.0.2.20", f"/l{m}", referer,
         "Long/1.0")
    for m, referer in zip(range(0, 240, 20), [
        "https://www.google.com/search?q=long", f"https://{W}/", "https://news.example.org/",
        "https://t.co/x", f"https://{W}/l60", "-", "https://www.bing.com/", "-",
        f"https://{W}/", "https://news.example.org/b", "-", "https://t.co/y"])
) + "".join(line(f"20/Nov/2026:{t}", "192.0.2.21", "/b", "-", "Crawler/1.0 bot")
            for t in ("13:50:00", "14:15:00", "14:40:00", "15:05:00")) + "".join(
    # two visits in one hour, the second continuing across 14:00
    line(f"20/Nov/2026:{t}", "192.0.2.22", "/t", referer, "Twice/1.0") for t, referer in (
        ("13:05:00", "https://www.google.com/"), ("13:40:00", "https://t.co/z"),
        ("14:05:00", f"https://{W}/t"), ("14:20:00", f"https://{W}/t")))


def test_channels_of_a_window_cut_inside_a_summarized_day(day: Database,
                                                          tmp_path: Path) -> None:
    """Channels over a window that begins inside a whole day: the visits begun in its
    whole hours from logpipe_visit_channels_hourly, the hour cut from access_log, the
    visits continuing across the next hour from logpipe_visit_crossings; a gap over an
    hour, or a day summarized without them, counts from access_log."""
    long = tmp_path / "long.log"
    long.write_text(LONG)
    load(day.dsn, long)
    try:
        forget(day.dsn)
        execute(day.dsn, "SELECT logpipe_visits_refresh(1800), logpipe_visits_refresh(900),"
                         " logpipe_visits_refresh(5400)")
        # the long visit continues across 14:00, 15:00 and 16:00; its requests from then
        assert query(day.dsn, "SELECT hour, channel, source, hits FROM logpipe_visit_crossings"
                     " WHERE gap = 1800 AND user_agent = 'Long/1.0' ORDER BY hour") == [
            (14, "social", "X/Twitter", 9), (15, "search", "Bing", 6),
            (16, "website", "news.example.org", 3)]
        # with a gap over an hour they would miss visits: not made
        assert query(day.dsn, "SELECT DISTINCT gap FROM logpipe_visit_channels_hourly UNION"
                     " SELECT DISTINCT gap FROM logpipe_visit_crossings ORDER BY 1") == [
            (900,), (1800,)]
        cuts = [DAY0 + dt.timedelta(hours=h, minutes=m) for h, m in
                ((0, 0), (8, 0), (8, 1), (9, 5), (9, 39), (9, 45), (10, 5), (11, 0), (11, 30),
                 (11, 56), (13, 1), (13, 10), (13, 55), (14, 0), (14, 5), (14, 30), (15, 30), (16, 20),
                 (23, 49), (23, 51))]
        for since in cuts:
            for extra in ({}, {"bots": False}, {"bots": True}, {"vhost": W},
                          {"until": DAY0 + dt.timedelta(days=2)}, {"visit_gap": 900},
                          {"visit_gap": 5400}):
                assert report(day.dsn, "channels", since=since, **extra) == report(
                    day.dsn, "channels", live=True, since=since, **extra), (since, extra)
        # read from the pieces: a crossing's requests changed by hand show in the report
        # from its hour on, and only in the window that begins in the hour before it
        cut = DAY0 + dt.timedelta(hours=13, minutes=30)
        before = {(c, s): h for c, s, _, h in report(day.dsn, "channels", since=cut)}
        execute(day.dsn, "UPDATE logpipe_visit_crossings SET hits = hits + 100"
                         " WHERE gap = 1800 AND hour = 14 AND user_agent = 'Long/1.0'")
        after = {(c, s): h for c, s, _, h in report(day.dsn, "channels", since=cut)}
        assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
            ("website", "news.example.org"): 100}  # the visit's request of 13:40
        assert report(day.dsn, "channels", since=cut - dt.timedelta(hours=1)) == report(
            day.dsn, "channels", live=True, since=cut - dt.timedelta(hours=1))
        # a day summarized without them (an older version) counts from access_log
        execute(day.dsn, "DELETE FROM logpipe_visit_channels_hourly")
        assert report(day.dsn, "channels", since=cut) == report(
            day.dsn, "channels", live=True, since=cut)
    finally:
        execute(day.dsn, "DELETE FROM access_log WHERE user_agent IN ('Long/1.0',"
                         " 'Crawler/1.0 bot', 'Twice/1.0')")
        forget(day.dsn)
