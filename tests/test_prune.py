"""`logpipe prune`: old partitions, old rows of the default partition and old rejects go;
the days they held stay in the traffic, status and pages reports (and through a rebuild
of the rollups); loggers keep loading while it runs, even when access_log is busy."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
from conftest import Database, execute, query, scalar, start_logger
from partition_support import UTC, line_at, partitions, run, run_ok, write_log

MARCH = dt.datetime(2019, 3, 1, tzinfo=UTC)
REPORTS = [  # reports that must read the same before and after a prune
    ("traffic",), ("status",), ("pages",), ("traffic", "--by", "hour"),
    ("pages", "--since", "2019-03-02", "--until", "2019-03-02"),  # one pruned day
    ("pages", "--since", "2019-03-02T00:00:00Z", "--until", "2019-04-10T00:00:00Z"),
    ("status", "--since", "2019-03-03T06:00:00Z", "--until", "2019-04-02T00:00:00Z"),
    ("traffic", "--by", "hour", "--since", "2019-04-01T02:00:00Z",
     "--until", "2019-04-01T05:00:00Z"),
]


def report(dsn: str, *args: str) -> list[dict]:
    return json.loads(run_ok("report", *args, "--dsn", dsn, "--format", "json",
                             "--limit", "0").stdout)


def old_and_new_traffic(tmp_path: Path) -> Path:
    """March and April 2019 (two partitions), requests every 5 hours at :00 (on a quarter
    hour, so windows bounded there count the same from the rollups), statuses 200, 404
    and 500, a 1970 clock, and today."""
    lines = [line_at(MARCH + dt.timedelta(hours=5 * i), f"/p/{i % 4}", (200, 404, 500)[i % 3])
             for i in range(250)]
    lines.append(line_at(dt.datetime(1970, 1, 1, tzinfo=UTC), "/epoch"))
    lines += [line_at(dt.datetime.now(UTC), f"/today/{i}") for i in range(5)]
    return write_log(tmp_path / "access.log", [*lines, b"not a log line\n"])


def test_prune_drops_old_partitions_and_the_reports_keep_their_days(
        database: Database, tmp_path: Path) -> None:
    dsn = database.dsn
    run_ok("load", "--dsn", dsn, str(old_and_new_traffic(tmp_path)))
    execute(dsn, "INSERT INTO access_log_rejects (received_at, reason, line)"
                 " VALUES ('2019-05-01', 'old junk', '\\x6a756e6b')")
    before = {args: report(dsn, *args) for args in REPORTS}
    assert before[REPORTS[4]] == [{"vhost": None, "path": "/p/1", "hits": 1, "bytes": 100},
                                  {"vhost": None, "path": "/p/2", "hits": 1, "bytes": 100}]
    old = ["access_log_20190301_20190401", "access_log_20190401_20190501"]
    assert set(old) <= set(partitions(dsn))

    dry = run_ok("prune", "--dsn", dsn, "--older-than", "90d", "--dry-run")
    assert dry.stdout.splitlines() == [
        "would drop access_log_20190301_20190401 (2019-03-01 to 2019-04-01): 149 rows",
        "would drop access_log_20190401_20190501 (2019-04-01 to 2019-05-01): 101 rows",
        (f"would delete 1 row dated before {cutoff_day(90)} from access_log_default"
         " (times no partition covered)"),
        dry.stdout.splitlines()[3],
    ]
    assert dry.stdout.splitlines()[3].startswith("would delete 1 reject received before")
    assert database.rows() == 256 and set(old) <= set(partitions(dsn))

    done = run_ok("prune", "--dsn", dsn, "--older-than", "90d")
    assert done.stdout.splitlines()[:2] == [
        "dropped access_log_20190301_20190401 (2019-03-01 to 2019-04-01): 149 rows",
        "dropped access_log_20190401_20190501 (2019-04-01 to 2019-05-01): 101 rows"]
    assert len(done.stdout.splitlines()) == 4
    assert not set(old) & set(partitions(dsn))
    assert scalar(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'access_log_2019%'") == 0
    assert sorted(r[0] for r in query(dsn, "SELECT path FROM access_log")) == [
        f"/today/{i}" for i in range(5)]
    assert query(dsn, "SELECT convert_from(line, 'UTF8') FROM access_log_rejects") == [
        ("not a log line",)]
    assert query(dsn, "SELECT relation, rows FROM logpipe_pruned ORDER BY range_to") == [
        ("access_log_20190301_20190401", 149), ("access_log_20190401_20190501", 101),
        ("access_log_default", 1)]
    # the days are gone from access_log, not from the reports
    assert {args: report(dsn, *args) for args in REPORTS} == before
    # reports of raw rows say that they no longer see the pruned days; rollups need not
    for args, noted in [(("offenders",), True), (("traffic", "--source", "x"), True),
                        (("traffic",), False), (("pages",), False),
                        (("agents", "--since", "1d"), False)]:
        stderr = run_ok("report", *args, "--dsn", dsn).stderr
        assert ("were pruned; this report counts only the rows kept" in stderr) == noted, args
    # a bound inside a pruned quarter of an hour counts that quarter whole (00:00 is in)
    assert report(dsn, "traffic", "--by", "hour", "--since", "2019-03-01T00:07:00Z",
                  "--until", "2019-03-01T06:00:00Z") == [
        {"hour": "2019-03-01T00:00:00+00:00", "vhost": None, "hits": 1, "human_hits": 1,
         "bot_hits": 0, "bytes": 100},
        {"hour": "2019-03-01T05:00:00+00:00", "vhost": None, "hits": 1, "human_hits": 1,
         "bot_hits": 0, "bytes": 100}]
    assert "nothing to prune" in run_ok("prune", "--dsn", dsn, "--older-than", "90d").stdout

    # a rebuild of the rollups (their triggers were disabled for a bulk load) keeps them
    execute(dsn, "ALTER TABLE access_log DISABLE TRIGGER access_log_rollup_insert")
    execute(dsn, "INSERT INTO access_log (time, path, status) VALUES (now(), '/bulk', 200)")
    database.initdb()
    after = {args: report(dsn, *args) for args in REPORTS}
    assert after[REPORTS[4]] == before[REPORTS[4]]
    assert sum(r["hits"] for r in after[("traffic",)]) == 1 + sum(
        r["hits"] for r in before[("traffic",)])


def cutoff_day(days: int) -> str:
    return str((dt.datetime.now(UTC) - dt.timedelta(days=days)).date())


def test_prune_lets_a_logger_load_while_access_log_is_busy(database: Database,
                                                           tmp_path: Path) -> None:
    """Another session holds access_log the whole time (a long `logpipe load`): prune
    empties the old partition at once, asks for the lock to drop it for a moment at a
    time, so the logger it queues behind never waits a second, then leaves the empty
    table to the next prune. No line is lost."""
    dsn = database.dsn
    log = write_log(tmp_path / "old.log", [line_at(MARCH + dt.timedelta(hours=i), "/old")
                                           for i in range(100)])
    run_ok("load", "--dsn", dsn, str(log))
    proc = start_logger(dsn, tmp_path / "spool")
    assert proc.stdin is not None
    blocker = psycopg2.connect(dsn)
    blocker.cursor().execute("INSERT INTO access_log (time, path) VALUES (now(), '/long')")
    waits = LockWaits(dsn)
    waits.start()
    sent = 0
    results: list[subprocess.CompletedProcess[str]] = []
    pruning = threading.Thread(target=lambda: results.append(
        run("prune", "--dsn", dsn, "--older-than", "90d")))
    try:
        pruning.start()
        while pruning.is_alive():
            proc.stdin.write(line_at(dt.datetime.now(UTC), f"/live/{sent}"))
            proc.stdin.flush()
            sent += 1
            time.sleep(0.05)  # a steady trickle of requests, not a wait for anything
        pruning.join()
    finally:
        waits.stop()
        blocker.rollback()
        blocker.close()
    (first,) = results
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        ("emptied access_log_20190301_20190401 (2019-03-01 to 2019-04-01): 100 rows;"
         " access_log stayed busy, so the next prune drops the empty table")]
    assert waits.samples > 20
    assert waits.longest < 1.0, (
        f"the logger waited {waits.longest:.2f} s for a lock: {waits.what}")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert scalar(dsn, "SELECT count(*) FROM access_log WHERE path LIKE '/live/%'") == sent
    again = run_ok("prune", "--dsn", dsn, "--older-than", "90d")
    assert again.stdout.splitlines()[0] == (
        "dropped access_log_20190301_20190401 (2019-03-01 to 2019-04-01): 0 rows")
    assert "access_log_20190301_20190401" not in partitions(dsn)


WAITING_WRITER_SQL = """
SELECT w.query, array_agg(b.application_name || ': ' || b.query)
  FROM pg_stat_activity w LEFT JOIN pg_stat_activity b ON b.pid = ANY (pg_blocking_pids(w.pid))
 WHERE w.application_name = 'logpipe writer' AND w.wait_event_type = 'Lock'
 GROUP BY w.pid, w.query LIMIT 1
"""


class LockWaits(threading.Thread):
    """Samples the logger's writer session: its longest unbroken wait for a lock."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.done = threading.Event()
        self.samples = 0
        self.longest = 0.0
        self.what: tuple | None = None  # at the longest wait: the writer's statement and
        # those of the sessions it waited for, so that a failure says who held it up

    def run(self) -> None:
        waiting_since = None
        with self.conn.cursor() as cur:
            while not self.done.is_set():
                cur.execute(WAITING_WRITER_SQL)
                now = time.monotonic()
                waiting = cur.fetchone()
                if waiting is not None:
                    waiting_since = waiting_since or now
                    if now - waiting_since >= self.longest:
                        self.longest, self.what = now - waiting_since, waiting
                else:
                    waiting_since = None
                self.samples += 1
                self.done.wait(0.02)  # the sampling period

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)
        self.conn.close()


def test_prune_refuses_an_unclear_age(database: Database) -> None:
    for age in ("0d", "soon", "90", "3m"):
        result = run("prune", "--dsn", database.dsn, "--older-than", age)
        assert result.returncode == 2, (age, result.stderr)
        assert "--older-than" in result.stderr and "90d" in result.stderr
