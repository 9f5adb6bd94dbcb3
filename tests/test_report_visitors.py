"""`logpipe report visitors` and report_visitors_daily on a day of traffic counted by hand
(tests/visitors_support.py): visitors, visits split by a gap just over 30 minutes and
kept whole by gaps just under, rows across midnight, filters, and the daily summaries
agreeing with access_log at every step."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from conftest import Database, execute, query, scalar, start_logger, wait_for
from partition_support import run_ok, temporary_role
from pipe_support import StderrReader, feed, finish
from reports_support import as_csv, as_json, run_report, view
from visitors_support import DAY, SHOP, VISITORS, W, day_fixture, line, load  # noqa: F401

SUMMARIZED = "SELECT day::text, gap, hits FROM logpipe_visit_days ORDER BY 1, 2"


def test_hand_counted_day(day: Database) -> None:
    first = run_report(day.dsn, "visitors", "--format", "csv")
    assert first.returncode == 0
    assert "note: summarizing the visits of 2 days, once" in first.stderr
    assert as_csv(day.dsn, "visitors") == VISITORS
    assert run_report(day.dsn, "visitors").stderr == ""  # summarized: nothing to say


def test_summaries_are_made_once_and_agree_with_access_log(day: Database) -> None:
    as_csv(day.dsn, "visitors")
    assert query(day.dsn, SUMMARIZED) == [("2026-11-20", 1800, 14), ("2026-11-21", 1800, 1)]
    # --source reads access_log alone, the view the summaries of up-to-date days
    assert as_csv(day.dsn, "visitors", "--source", "other") == VISITORS[:1]
    source = scalar(day.dsn, "SELECT DISTINCT source FROM access_log")
    assert as_csv(day.dsn, "visitors", "--source", str(source)) == VISITORS
    assert view(day.dsn, "SELECT * FROM report_visitors_daily") == [
        (d, v, int(a), int(b), int(c)) for d, v, a, b, c in VISITORS[1:]]


def test_by_hour(day: Database) -> None:
    rows = as_csv(day.dsn, "visitors", "--by", "hour", "--vhost", W)
    assert rows == [
        ["hour", "vhost", "visitors", "visits", "hits"],
        ["2026-11-20T08:00:00+00:00", W, "1", "1", "2"],   # E
        ["2026-11-20T09:00:00+00:00", W, "2", "2", "5"],   # A (3 hits), B (2)
        ["2026-11-20T10:00:00+00:00", W, "1", "1", "3"],   # A: its second visit begins
        ["2026-11-20T12:00:00+00:00", W, "1", "2", "2"],   # C: two visits, one visitor
        ["2026-11-20T23:00:00+00:00", W, "1", "1", "1"],   # D
        ["2026-11-21T00:00:00+00:00", W, "1", "1", "1"],   # D the next day
    ]


def test_humans_bots_vhost(day: Database) -> None:
    assert as_json(day.dsn, "visitors", "--humans", "--vhost", W) == [
        {"day": "2026-11-20", "vhost": W, "visitors": 4, "visits": 6, "hits": 11},
        {"day": "2026-11-21", "vhost": W, "visitors": 1, "visits": 1, "hits": 1}]
    assert as_json(day.dsn, "visitors", "--bots") == [
        {"day": "2026-11-20", "vhost": W, "visitors": 1, "visits": 1, "hits": 2}]
    assert as_json(day.dsn, "visitors", "--vhost", SHOP) == [
        {"day": "2026-11-20", "vhost": SHOP, "visitors": 1, "visits": 1, "hits": 1}]
    assert as_csv(day.dsn, "visitors", "--limit", "1") == VISITORS[:2]


def test_window_counts_the_rows_inside_it(day: Database) -> None:
    """Partial days are counted from the rows in the window: A from 09:39:59 (its first
    visit's last two requests, then its second visit), C, and D before midnight."""
    assert as_csv(day.dsn, "visitors", "--vhost", W, "--since", "2026-11-20T09:30:00Z",
                  "--until", "2026-11-21T00:05:00Z") == [
        VISITORS[0], ["2026-11-20", W, "3", "5", "7"]]
    # whole days from the summary, the day after midnight from access_log
    assert as_csv(day.dsn, "visitors", "--since", "2026-11-20", "--until",
                  "2026-11-21T12:00:00Z") == VISITORS


def test_visit_gap(day: Database) -> None:
    """With 20 minutes, A's 29:59 gaps split its first visit in three."""
    assert as_csv(day.dsn, "visitors", "--visit-gap", "20m", "--vhost", W) == [
        VISITORS[0], ["2026-11-20", W, "5", "9", "13"], VISITORS[3]]
    assert ("2026-11-20", 1200, 14) in query(day.dsn, SUMMARIZED)
    proc = run_report(day.dsn, "visitors", "--visit-gap", "soon")
    assert proc.returncode == 2
    assert "--visit-gap: not a duration: 'soon' (use e.g. 30m, 1h or 900s)" in proc.stderr
    proc = run_report(day.dsn, "visitors", "--visit-gap", "25h")
    assert proc.returncode == 2 and "from 1s to 24h" in proc.stderr


def test_a_late_row_makes_its_day_count_again(day: Database, tmp_path: Path) -> None:
    """A row loaded after its day was summarized is counted at once, from access_log,
    and the day summarized again; a deleted row too."""
    as_csv(day.dsn, "visitors")
    late = tmp_path / "late.log"
    late.write_text(line("20/Nov/2026:18:00:00", "192.0.2.44", "/late", "-", "Opera/1.0"))
    load(day.dsn, late)
    reader_view = view(day.dsn, "SELECT * FROM report_visitors_daily WHERE vhost = "
                       f"'{W}' AND day = '2026-11-20'")
    assert reader_view == [("2026-11-20", W, 6, 8, 14)]  # the view, before any refresh
    assert as_csv(day.dsn, "visitors", "--vhost", W)[1] == ["2026-11-20", W, "6", "8", "14"]
    assert ("2026-11-20", 1800, 15) in query(day.dsn, SUMMARIZED)
    execute(day.dsn, "DELETE FROM access_log WHERE path = '/late'")
    assert as_csv(day.dsn, "visitors") == VISITORS


def test_a_reader_gets_the_same_counts_without_summaries(database: Database,
                                                         tmp_path: Path) -> None:
    """A role that may only read (initdb --reader-role) cannot store summaries: its
    reports count every day from access_log, with the same result."""
    path = tmp_path / "day.log"
    path.write_text(DAY)
    load(database.dsn, path)
    with temporary_role(database.dsn) as reader:
        run_ok("initdb", "--dsn", database.dsn, "--reader-role", reader)
        as_reader = f"{database.dsn} user={reader}"
        assert as_csv(as_reader, "visitors") == VISITORS
        assert scalar(database.dsn, "SELECT count(*) FROM logpipe_visit_days") == 0


def test_the_writer_summarizes_the_last_whole_days(database: Database, tmp_path: Path) -> None:
    """The logger's writer keeps the summaries of yesterday and the day before (when it
    is first idle, then hourly), so that no report has to count them from access_log;
    those of older days are left to the reports that need them."""
    today = dt.datetime.now(dt.timezone.utc).date()
    days = [today - dt.timedelta(days=n) for n in (3, 2, 1)]
    lines = "".join(DAY.replace("20/Nov/2026", f"{d:%d}/{d:%b}/{d:%Y}") for d in days)
    proc = start_logger(database.dsn, tmp_path / "spool", "--format", "vhost_combined")
    stderr = StderrReader(proc)
    feed(proc, [lines.encode()])
    wait_for(lambda: len(query(database.dsn, "SELECT day FROM logpipe_visit_days")) == 2,
             timeout=30, what=lambda: f"two days summarized; stderr {stderr.text()[-600:]!r}")
    finish(proc, stderr=stderr)
    assert query(database.dsn, "SELECT day, gap FROM logpipe_visit_days ORDER BY day") == [
        (days[1], 1800), (days[2], 1800)]
    # the summarized days count as the one counted from access_log: the same traffic
    rows = as_csv(database.dsn, "visitors")[1:]
    by_day = [sorted(r[1:] for r in rows if r[0] == str(d)) for d in days]
    assert by_day[0] and by_day[0] == by_day[1] == by_day[2]
