"""When the writer folds the report rollups: once the spool is caught up, or every
FOLD_INTERVAL under sustained load. Folding many batches at once costs PostgreSQL
far less than folding each. Also when it makes sure access_log has partitions ahead:
at the start of its first pass, then hourly, never on the way out; and when it
summarizes the visits of the last whole days: when it is first idle, then hourly."""

from __future__ import annotations

import time
from typing import Any, Callable

import psycopg2

from logpipe.messages import say
from logpipe.store import database as db

FOLD_INTERVAL = 10.0  # seconds: how long report rollups may lag under sustained load
LAST_FOLD_MS = 1000  # at most this long for the fold before the writer exits
# More rows than this since the last fold, and the writer leaves without folding: a fold
# costs ~0.5 us a row loaded over a site's pages, ~19 us where every path is new
# (bench/run.py), so a burst this big may not fold within LAST_FOLD_MS, and a fold cut
# at the limit is work thrown away. Sustained load folds every FOLD_INTERVAL, so the
# writer of a live server (under 5,000 lines/s) always folds on its way out.
LAST_FOLD_ROWS = 50_000
# How long the writer's fold waits for another fold, or for a transaction that changed
# logpipe_asset_patterns (the two take turns), before it leaves the counts pending and
# goes back to loading lines; it tries again FOLD_INTERVAL later.
FOLD_LOCK_WAIT_MS = 1000
# seconds between checks of access_log's partitions, and between summaries of the last
# whole days' visits
UPKEEP_INTERVAL = 3600.0


class FoldPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.unfolded_rows = 0  # rows committed since the rollups were last folded
        self.folded_at = clock()
        self.busy_until = 0.0  # a fold found the rollups busy: not again before this
        self._problem: str | None = None
        self.partitions = Hourly(  # asked at every pass
            db.prepare_partitions,
            "cannot create partitions of access_log ({problem}); rows still load, into its "
            "default partition. Run `logpipe initdb` to upgrade the schema, or grant the "
            "writer's role EXECUTE on logpipe_prepare_partitions()")
        self.summaries = Hourly(  # asked when the writer is idle
            db.summarize_visits,
            "cannot summarize the visits of the last days ({problem}); rows still load, "
            "and `logpipe report visitors` counts those days from access_log. Run "
            "`logpipe initdb` to upgrade the schema, or grant the writer's role EXECUTE on "
            "logpipe_visits_refresh(integer, date, date)",
            wall=time.time)  # and each new UTC hour: today's summary grows by the hour
        self.days = Hourly(  # asked with the visits' summaries
            db.summarize_days,
            "cannot summarize the requests of the last days ({problem}); rows still load, "
            "and `logpipe report broken-links`, `offenders`, `agents` and `referers` count "
            "those days from access_log. Run `logpipe initdb` to upgrade the schema, or "
            "grant the writer's role EXECUTE on logpipe_daily_refresh(date, date)",
            wall=time.time)  # today's summary too grows by the hour

    @property
    def unfolded(self) -> bool:
        return self.unfolded_rows > 0

    def rows_committed(self, rows: int) -> None:
        self.unfolded_rows += rows

    def maybe_fold(self, conn: Any, caught_up: bool) -> None:
        """Fold if due. A failed fold never stops loading: it is said once, and the
        `report_*` views stay exact from the pending tables meanwhile."""
        now = self.clock()
        if not self.unfolded or now < self.busy_until \
                or not (caught_up or now - self.folded_at >= FOLD_INTERVAL):
            return
        problem = db.fold_rollups(conn, lock_wait_ms=FOLD_LOCK_WAIT_MS)
        if problem == db.BUSY:  # still unfolded; lines load meanwhile
            self.busy_until = now + FOLD_INTERVAL
            return
        self.unfolded_rows, self.folded_at = 0, now
        if problem is not None and problem != self._problem:
            say(f"cannot update the report rollups ({problem}); rows still load. "
                "Run `logpipe initdb` to upgrade the schema")
        self._problem = problem

    def last_fold(self, conn: Any) -> None:
        """On the way out, fold what this writer loaded, if that is quick: not after
        a burst (LAST_FOLD_ROWS), and cut at LAST_FOLD_MS (a fold can take many
        seconds after a burst of new pages); the logger must not keep Apache's restart
        waiting for it. The counts wait safely: the report views add them, and the next
        writer or report folds them."""
        if conn is None or not self.unfolded or self.unfolded_rows > LAST_FOLD_ROWS:
            return
        try:
            db.fold_rollups(conn, timeout_ms=LAST_FOLD_MS)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            return  # leaving anyway: a lost connection changes nothing
        self.unfolded_rows = 0

    def maybe_prepare_partitions(self, conn: Any, leaving: bool = False) -> None:
        """Partitions ahead, and for old dates loaded into the default partition
        (sql/005_partitions.sql). Rows load whatever happens here: said once.

        Not on the way out, unless this writer never checked: moving a backfill's rows
        out of the default partition can take seconds (~3 s for 440,000 rows), and
        Apache's restart would wait for it. The next writer's first pass moves them."""
        if leaving and self.partitions.ran_at is not None:
            return
        self.partitions.maybe_run(conn, self.clock())

    def maybe_summarize_visits(self, conn: Any) -> None:
        """The visit summaries of the last whole days, hourly (database.summarize_visits):
        a day is summarized soon after it ends, not by the first report that reads it.
        Rows load whatever happens here: said once. Then the daily summaries of
        sql/050_daily_summaries.sql, likewise (database.summarize_days)."""
        self.summaries.maybe_run(conn, self.clock())
        self.days.maybe_run(conn, self.clock())


class Hourly:
    """Upkeep the writer runs at most once an hour, the first time when first asked; a
    problem it meets is said once (again only if it changes), and rows load anyway."""

    def __init__(self, run: Callable[[Any], str | None], advice: str,
                 wall: Callable[[], float] | None = None) -> None:
        self.run = run  # returns None, or the problem
        self.advice = advice  # what to say of a problem: a format with {problem}
        self.ran_at: float | None = None
        self.problem: str | None = None
        self.wall = wall  # given: also run when the UTC hour of this clock changed
        self.hour: int | None = None

    def maybe_run(self, conn: Any, now: float) -> None:
        hour = None if self.wall is None else int(self.wall() // 3600)
        if self.ran_at is not None and now - self.ran_at < UPKEEP_INTERVAL \
                and hour == self.hour:
            return
        self.ran_at, self.hour = now, hour
        problem = self.run(conn)
        if problem is not None and problem != self.problem:
            say(self.advice.format(problem=problem))
        self.problem = problem
