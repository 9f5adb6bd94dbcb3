"""Filters of a report (--path, --vhost, --source, times, --humans/--bots, --limit, --by,
--by-source): their absolute time bounds, and the WHERE conditions and LIMIT clause every
query shares."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logpipe.reports.times import TimeSpec

# A row is a bot when classified as one, or when unclassified and without a User-Agent.
BOT = "coalesce(a.is_bot, a.user_agent IS NULL)"
# Filters.pruned_before: the end of what `logpipe prune` removed (sql/005_partitions.sql)
PRUNED_BEFORE_SQL = "SELECT max(range_to) FROM logpipe_pruned"


@dataclass
class Filters:
    path: str | None = None
    vhost: str | None = None
    since: dt.datetime | None = None  # absolute, resolved with resolve_times()
    until: dt.datetime | None = None
    bots: bool | None = None  # True: only bots, False: only humans, None: all
    limit: int | None = None  # None or 0: no limit
    by: str = "day"
    sources: tuple[str, ...] = ()  # only rows of these sources (servers); () for all
    by_source: bool = False  # status and traffic: one row per source too
    # `logpipe prune` removed access_log's rows before this (PRUNED_BEFORE_SQL): only the
    # rollups count them, by quarter of an hour and by UTC day
    pruned_before: dt.datetime | None = None
    visit_gap: int = 1800  # visitors, channels: seconds without a request that end a visit

    def pruned(self, moment: dt.datetime) -> bool:
        """access_log no longer holds the rows of `moment`: a bound there is counted to
        the start of its quarter (status, traffic) or UTC day (pages), from the rollups."""
        return self.pruned_before is not None and moment < self.pruned_before

    def misses_pruned_rows(self, report: str) -> bool:
        """The report reads access_log alone over a window reaching into pruned days,
        whose rows only the daily and quarter-hour rollups still count."""
        from_rollups = report in ("status", "traffic") and self.path is None \
            or report == "pages"
        if self.pruned_before is None or (from_rollups and not self.per_source):
            return False
        return self.since is None or self.since < self.pruned_before

    @property
    def per_source(self) -> bool:
        """The report needs access_log.source, which the rollups do not keep."""
        return bool(self.sources) or self.by_source


def resolve_times(cur: Any, since: TimeSpec | None,
                  until: TimeSpec | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Absolute bounds, read by PostgreSQL: relative to its now(), ISO in its time zone."""
    if since is None and until is None:
        return None, None

    def expr(spec: TimeSpec | None, end_of_day: bool) -> tuple[str, list[Any]]:
        if spec is None:
            return "NULL::timestamptz", []
        if spec.ago is not None:
            return "now() - %s * interval '1 second'", [spec.ago.total_seconds()]
        if spec.date_only and end_of_day:
            return "(%s::date + 1)::timestamptz", [spec.iso]
        return "%s::timestamptz", [spec.iso]

    since_sql, since_args = expr(since, False)
    until_sql, until_args = expr(until, True)
    cur.execute(f"SELECT {since_sql}, {until_sql}", since_args + until_args)
    row = cur.fetchone()
    return row[0], row[1]


def path_vhost_conditions(f: Filters, params: dict[str, Any], alias: str) -> list[str]:
    """WHERE conditions for --path and --vhost on a table with those columns AS `alias`."""
    where = []
    if f.path is not None:
        where.append(f"{alias}.path = %(path)s")
        params["path"] = f.path
    if f.vhost is not None:
        where.append(f"{alias}.vhost = %(vhost)s")
        params["vhost"] = f.vhost
    return where


def conditions(f: Filters, params: dict[str, Any], time: bool = True) -> list[str]:
    """WHERE conditions on access_log AS a for the filters (without --since/--until if
    not `time`)."""
    where = path_vhost_conditions(f, params, "a")
    if time and f.since is not None:
        where.append("a.time >= %(since)s")
        params["since"] = f.since
    if time and f.until is not None:
        where.append("a.time < %(until)s")
        params["until"] = f.until
    if f.sources:
        where.append("a.source = ANY (%(sources)s)")
        params["sources"] = list(f.sources)
    if f.bots is True:
        where.append(BOT)
    elif f.bots is False:
        where.append(f"NOT {BOT}")
    return where


def all_of(where: list[str]) -> str:
    """The conditions ANDed, for after WHERE (`true` for none)."""
    return " AND ".join(where) if where else "true"


def limit_clause(f: Filters, params: dict[str, Any]) -> str:
    """` LIMIT %(limit)s` for --limit, or nothing for no limit."""
    if not f.limit:
        return ""
    params["limit"] = f.limit
    return " LIMIT %(limit)s"
