"""`logpipe report NAME`: the reports of sql/020_reports.sql, filtered, as text, CSV or JSON.

The views in sql/020_reports.sql aggregate over all time, for psql. This module runs
the same queries with filters (--path, --vhost, --since, --until, --humans/--bots)
as parameterised SQL, so PostgreSQL can use the path index (with vhost, referer), the
BRIN index on time, and the daily rollup behind `pages`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import shutil
import sys
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from logpipe import config
from logpipe.messages import say

# A row is a bot when classified as one, or when unclassified and without a User-Agent.
BOT = "coalesce(a.is_bot, a.user_agent IS NULL)"


@dataclass(frozen=True)
class ReportInfo:
    summary: str
    columns: str
    default_limit: int | None  # None: all rows


REPORTS: dict[str, ReportInfo] = {
    "referers": ReportInfo("external referers (their host is not the site's own)",
                           "referer, hits", 20),
    "pages": ReportInfo("most requested pages (requests served: status below 400)",
                        "vhost, path, hits, bytes", 20),
    "status": ReportInfo("requests per day (or --by hour) and status code",
                         "day, vhost, status, hits", None),
    "broken-links": ReportInfo("4xx answers to links on the site's own pages",
                               "vhost, referer, path, statuses, hits, last_seen", 20),
    "offenders": ReportInfo("remote hosts with the most 4xx and 5xx answers",
                            "remote_host, errors, client_errors, server_errors, requests, "
                            "last_seen", 20),
    "agents": ReportInfo("user agents, most requests first",
                         "user_agent, is_bot, hits, last_seen", 20),
    "traffic": ReportInfo("requests per day (or --by hour)",
                          "day, vhost, hits, human_hits, bot_hits, bytes", None),
}

DESCRIPTION = """\
Print a report on the loaded access log. Reports:

{reports}

The same reports, unfiltered, are views for psql: report_referers, report_pages,
report_status_daily, report_broken_links, report_offenders, report_agents,
report_traffic_hourly and report_traffic_daily.

A row counts as a bot when the logger classified its User-Agent as a bot, crawler,
tool or monitor, or when it had no User-Agent. Days and hours are in the database
session's time zone (set PGTZ, e.g. PGTZ=Europe/Paris, to choose another).
"""

EPILOG = """\
examples:
  logpipe report pages --since 7d --humans
  logpipe report referers --path /blog/post-1 --limit 50
  logpipe report broken-links --vhost www.example.com --format csv > broken.csv
  logpipe report traffic --by hour --since 2024-10-01 --until 2024-10-07 --format json

exit status: 0 report printed, 1 unknown report or database problem (unreachable,
schema missing: run `logpipe initdb`), 2 bad option.
"""


# -- options ----------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSpec:
    """--since/--until: relative (`30d` = that long before now) or an ISO date/time."""

    text: str
    ago: dt.timedelta | None = None  # relative
    iso: str | None = None  # absolute, as PostgreSQL should read it (session time zone)
    date_only: bool = False


_RELATIVE = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str) -> TimeSpec:
    value = text.strip()
    match = _RELATIVE.fullmatch(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            return TimeSpec(text, ago=dt.timedelta(**{_UNITS[unit]: amount}))
        except OverflowError:
            raise argparse.ArgumentTypeError(f"too long ago: {text!r}") from None
    try:
        return TimeSpec(text, iso=dt.date.fromisoformat(value).isoformat(), date_only=True)
    except ValueError:
        pass
    try:
        # Python 3.9's fromisoformat knows neither "Z" nor a space before the offset
        moment = dt.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use e.g. 30d, 12h, 15m, 2024-10-01 or "
            "2024-10-01T13:00:00+02:00)"
        ) from None
    return TimeSpec(text, iso=moment.isoformat())


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def add_parser(subparsers: Any, add_dsn: Callable[[argparse.ArgumentParser], None]) -> None:
    width = max(len(n) for n in REPORTS)
    indent = " " * (width + 4)
    reports = "\n".join(
        f"  {name:<{width}}  {info.summary}\n{indent}columns: {info.columns}"
        for name, info in REPORTS.items()
    )
    p = subparsers.add_parser(
        "report",
        help="print a report: referers, pages, status, broken-links, offenders, agents, traffic",
        description=DESCRIPTION.format(reports=reports),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="the report: " + ", ".join(REPORTS))
    p.add_argument("--path", help="only requests for this path (URI before '?'), e.g. /about")
    p.add_argument("--vhost", help="only requests to this virtual host (%%v), e.g. example.com")
    p.add_argument(
        "--since", type=parse_time, metavar="TIME",
        help="only requests at or after TIME: relative (30d, 12h, 15m, 90s, 2w: that long "
        "ago) or ISO (2024-10-01, 2024-10-01T13:00, 2024-10-01T13:00:00+02:00)",
    )
    p.add_argument(
        "--until", type=parse_time, metavar="TIME",
        help="only requests before TIME, same forms as --since; a date alone means the "
        "end of that day",
    )
    p.add_argument(
        "--limit", type=non_negative_int, metavar="N",
        help="at most N rows (default: 20 for referers, pages, broken-links, offenders and "
        "agents; all rows for status and traffic); 0 means no limit",
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("--humans", action="store_true",
                     help="only requests from people's browsers (all but --bots)")
    who.add_argument("--bots", action="store_true",
                     help="only requests from bots, crawlers, tools and monitors, and "
                     "requests without a User-Agent")
    p.add_argument("--by", choices=("day", "hour"), default="day",
                   help="status and traffic: one row per day (default) or per hour")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default; fits the terminal), csv (with a header row) or "
                   "json (a list of objects)")
    add_dsn(p)
    p.set_defaults(func=run)


# -- queries ----------------------------------------------------------------------


@dataclass
class Filters:
    path: str | None = None
    vhost: str | None = None
    since: dt.datetime | None = None  # absolute, resolved with resolve_times()
    until: dt.datetime | None = None
    bots: bool | None = None  # True: only bots, False: only humans, None: all
    limit: int | None = None  # None or 0: no limit
    by: str = "day"


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


def _conditions(f: Filters, params: dict[str, Any], time: bool = True) -> list[str]:
    """WHERE conditions on access_log AS a for the filters (without --since/--until if
    not `time`)."""
    where = []
    if f.path is not None:
        where.append("a.path = %(path)s")
        params["path"] = f.path
    if f.vhost is not None:
        where.append("a.vhost = %(vhost)s")
        params["vhost"] = f.vhost
    if time and f.since is not None:
        where.append("a.time >= %(since)s")
        params["since"] = f.since
    if time and f.until is not None:
        where.append("a.time < %(until)s")
        params["until"] = f.until
    if f.bots is True:
        where.append(BOT)
    elif f.bots is False:
        where.append(f"NOT {BOT}")
    return where


def _and(conditions: list[str]) -> str:
    return " AND ".join(conditions) if conditions else "true"


def _limit(f: Filters, params: dict[str, Any]) -> str:
    if not f.limit:
        return ""
    params["limit"] = f.limit
    return " LIMIT %(limit)s"


# The referer's host is tested once per distinct (vhost, referer), after grouping: the
# LATERAL subquery with OFFSET 0 keeps PostgreSQL from pushing the test down to every
# row. Same test as logpipe_same_site() in sql/020_reports.sql.
SAME_SITE = (
    "coalesce(r.host = logpipe_host(g.vhost)"
    " OR r.host = ANY (ARRAY(SELECT host FROM logpipe_site_hosts)), false)"
)
REFERER_HOST = "CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r"


def query_referers(f: Filters) -> tuple[str, dict[str, Any]]:
    """Requests per (vhost, referer) from the path index, or, for a hot path over all
    time, from logpipe_path_referers plus what is pending (sql/020_reports.sql); the
    EXISTS tests are one-time filters, so only one of the two is read."""
    params: dict[str, Any] = {}
    where = ["a.referer IS NOT NULL", "a.referer <> ''", *_conditions(f, params)]
    rollup = ""
    if f.path is not None and f.since is None and f.until is None:
        hot = "EXISTS (SELECT FROM logpipe_hot_paths WHERE path = %(path)s)"
        counted = {None: "r.hits", True: "r.bot_hits", False: "r.hits - r.bot_hits"}[f.bots]
        rollup_where = [hot, "r.path = %(path)s"]
        if f.vhost is not None:
            rollup_where.append("r.vhost = %(vhost)s")
        rollup = (
            f"SELECT nullif(r.vhost, '') AS vhost, r.referer, sum({counted}) AS hits"
            " FROM (SELECT path, vhost, referer, hits, bot_hits FROM logpipe_path_referers"
            " UNION ALL SELECT path, vhost, referer, hits, bot_hits"
            f" FROM logpipe_pending_referers) r WHERE {_and(rollup_where)}"
            " GROUP BY 1, 2 UNION ALL "
        )
        where.append(f"NOT {hot}")
    sql = (
        "SELECT g.referer, sum(g.hits)::bigint AS hits"
        f" FROM ({rollup}SELECT a.vhost, a.referer, count(*) AS hits FROM access_log a"
        f" WHERE {_and(where)} GROUP BY a.vhost, a.referer) g {REFERER_HOST}"
        f" WHERE NOT {SAME_SITE} AND g.hits > 0"
        " GROUP BY g.referer ORDER BY hits DESC, g.referer" + _limit(f, params)
    )
    return sql, params


@dataclass(frozen=True)
class RollupRange:
    """What `pages` needs beyond the rollup: set by rollup_range() from the database."""

    first_day: dt.date | None  # first and last day in logpipe_rollup_daily, None if empty
    last_day: dt.date | None


def rollup_range(cur: Any) -> RollupRange:
    cur.execute("SELECT min(day), max(day) FROM logpipe_rollup_daily")
    first, last = cur.fetchone()
    return RollupRange(first, last)


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def _split(moment: dt.datetime) -> tuple[dt.date, tuple[dt.datetime, dt.datetime] | None, int]:
    """A window bound as whole UTC days plus a correction from access_log.

    Rows before `moment` = rollup days before the returned day + sign * access_log rows
    in the returned time range: either the start of moment's day up to moment (sign +1),
    or moment up to the end of its day, taking in the whole day (sign -1), whichever
    range is shorter.
    """
    utc = moment.astimezone(dt.timezone.utc)
    day = utc.date()
    start = _utc_midnight(day)
    if utc == start:
        return day, None, 0
    end = start + dt.timedelta(days=1)
    if utc - start <= end - utc:
        return day, (start, utc), 1
    return day + dt.timedelta(days=1), (utc, end), -1


def query_pages(f: Filters, days: RollupRange | None = None) -> tuple[str, dict[str, Any]]:
    """Pages from the rollups, reading access_log only for partial days.

    Rows in [since, until) = rows before until - rows before since, each counted as
    whole rollup days plus part of a day from access_log (see _split). The whole days
    come from logpipe_rollup_daily, or, when fewer days lie outside the window than
    inside (e.g. --since 30d on 30 days of logs), from the all-time totals in
    logpipe_pages minus the days outside. `days` is rollup_range(); without it the
    days are always added up.
    """
    params: dict[str, Any] = {}
    if f.since is not None and f.until is not None and f.until - f.since <= dt.timedelta(days=1):
        return _pages_sql(f, params, [_raw_part(f, params)])
    page_filter = []
    if f.path is not None:
        page_filter.append("p.path = %(path)s")
        params["path"] = f.path
    if f.vhost is not None:
        page_filter.append("p.vhost = %(vhost)s")
        params["vhost"] = f.vhost
    parts = []
    lo = hi = None
    if f.since is not None:
        lo, span, sign = _split(f.since)
        if span:
            parts.append(_raw_part(f, params, span, -sign, "lo"))
    if f.until is not None:
        hi, span, sign = _split(f.until)
        if span:
            parts.append(_raw_part(f, params, span, sign, "hi"))
    params["lo_day"], params["hi_day"] = lo, hi

    def counts(alias: str, sign: int) -> str:
        hits, bytes_ = {None: ("{a}.hits", "{a}.bytes"),
                        True: ("{a}.bot_hits", "{a}.bot_bytes"),
                        False: ("{a}.hits - {a}.bot_hits", "{a}.bytes - {a}.bot_bytes")}[f.bots]
        return f"{sign} * ({hits.format(a=alias)}), {sign} * ({bytes_.format(a=alias)})"

    def rollup(day_conditions: list[str], sign: int) -> str:
        where = list(day_conditions)
        if page_filter:
            where.append("r.page_id IN (SELECT p.id FROM logpipe_pages p"
                         f" WHERE {_and(page_filter)})")
        return f"SELECT r.page_id, {counts('r', sign)} FROM logpipe_rollup_daily r" \
               f" WHERE {_and(where)}"

    inside, outside = _days_inside_outside(days, lo, hi)
    if outside < inside:  # the totals minus the whole days outside the window
        parts.append(f"SELECT p.id, {counts('p', 1)} FROM logpipe_pages p"
                     f" WHERE {_and(page_filter)}")
        if lo is not None:
            parts.append(rollup(["r.day < %(lo_day)s"], -1))
        if hi is not None:
            parts.append(rollup(["r.day >= %(hi_day)s"], -1))
    else:
        parts.append(rollup((["r.day >= %(lo_day)s"] if lo else [])
                            + (["r.day < %(hi_day)s"] if hi else []), 1))
    return _pages_sql(f, params, parts)


def _days_inside_outside(days: RollupRange | None, lo: dt.date | None,
                         hi: dt.date | None) -> tuple[int, int]:
    """Rollup days in [lo, hi) and outside it (None: unbounded)."""
    if days is None or days.first_day is None or days.last_day is None:
        return 0, 0
    first, end = days.first_day, days.last_day + dt.timedelta(days=1)
    start, stop = max(lo or first, first), min(hi or end, end)
    inside = max(0, (stop - start).days)
    return inside, (end - first).days - inside


def _raw_part(f: Filters, params: dict[str, Any],
              span: tuple[dt.datetime, dt.datetime] | None = None, sign: int = 1,
              name: str = "") -> str:
    """Pages counted in access_log, signed: within `span`, else within [since, until)."""
    where = ["a.status < 400", *_conditions(f, params, time=span is None)]
    if span is not None:
        params[f"{name}_start"], params[f"{name}_end"] = span
        where.append(f"a.time >= %({name}_start)s AND a.time < %({name}_end)s")
    # grouped by name first, then numbered: cheaper than numbering every row
    return (
        f"SELECT p.id, {sign} * e.hits, {sign} * e.bytes FROM (SELECT coalesce(a.vhost, '')"
        " AS vhost, coalesce(a.path, '') AS path, count(*) AS hits,"
        " coalesce(sum(coalesce(a.bytes, a.bytes_out)), 0) AS bytes FROM access_log a"
        f" WHERE {_and(where)} GROUP BY 1, 2) e"
        " JOIN logpipe_pages p ON p.vhost = e.vhost AND p.path = e.path"
    )


def _pages_sql(f: Filters, params: dict[str, Any], parts: list[str]) -> tuple[str, dict[str, Any]]:
    # WITH TIES, then names: the cut at --limit is exact and the order stable
    ranked = (
        "SELECT u.page_id, sum(u.hits)::bigint AS hits, sum(u.bytes)::bigint AS bytes"
        f" FROM ({' UNION ALL '.join(parts)}) u (page_id, hits, bytes)"
        " GROUP BY u.page_id HAVING sum(u.hits) > 0"
    )
    if f.limit:
        ranked += " ORDER BY hits DESC FETCH FIRST %(limit)s ROWS WITH TIES"
    sql = (
        "SELECT nullif(p.vhost, '') AS vhost, nullif(p.path, '') AS path, t.hits, t.bytes"
        f" FROM ({ranked}) t JOIN logpipe_pages p ON p.id = t.page_id"
        " ORDER BY t.hits DESC, p.vhost, p.path" + _limit(f, params)
    )
    return sql, params


def query_broken_links(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    where = ["a.status BETWEEN 400 AND 499", "a.referer IS NOT NULL", "a.referer <> ''",
             *_conditions(f, params)]
    sql = (
        "SELECT g.vhost, g.referer, g.path, g.statuses, g.hits, g.last_seen"
        " FROM (SELECT a.vhost, a.referer, a.path,"
        " string_agg(DISTINCT a.status::text, ',' ORDER BY a.status::text) AS statuses,"
        " count(*) AS hits, max(a.time) AS last_seen FROM access_log a"
        f" WHERE {_and(where)} GROUP BY a.vhost, a.referer, a.path) g {REFERER_HOST}"
        f" WHERE {SAME_SITE}"
        " ORDER BY g.hits DESC, g.vhost, g.referer, g.path" + _limit(f, params)
    )
    return sql, params


def query_offenders(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    sql = (
        "SELECT a.remote_host,"
        " count(*) FILTER (WHERE a.status >= 400) AS errors,"
        " count(*) FILTER (WHERE a.status BETWEEN 400 AND 499) AS client_errors,"
        " count(*) FILTER (WHERE a.status >= 500) AS server_errors,"
        " count(*) AS requests, max(a.time) AS last_seen"
        f" FROM access_log a WHERE {_and(_conditions(f, params))}"
        " GROUP BY a.remote_host HAVING count(*) FILTER (WHERE a.status >= 400) > 0"
        " ORDER BY errors DESC, a.remote_host" + _limit(f, params)
    )
    return sql, params


def query_agents(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    sql = (
        "SELECT a.user_agent, a.is_bot, count(*) AS hits, max(a.time) AS last_seen"
        f" FROM access_log a WHERE {_and(_conditions(f, params))}"
        " GROUP BY 1, 2 ORDER BY hits DESC, a.user_agent, a.is_bot" + _limit(f, params)
    )
    return sql, params


QUARTER = dt.timedelta(minutes=15)


def _quarter_floor(moment: dt.datetime) -> dt.datetime:
    utc = moment.astimezone(dt.timezone.utc)
    return utc - dt.timedelta(minutes=utc.minute % 15, seconds=utc.second,
                              microseconds=utc.microsecond)


def _quarters(f: Filters) -> tuple[str, dict[str, Any]]:
    """Requests per quarter of an hour, vhost ('' for none), status (0 for none) and bot
    flag, as (quarter, vhost, status, bot, hits, bytes): whole quarters from
    logpipe_quarters (rollup and pending), the partial ones at either end from access_log."""
    params: dict[str, Any] = {}
    lo = hi = None
    if f.since is not None:
        lo = _quarter_floor(f.since)
        lo = lo if lo == f.since else lo + QUARTER
    if f.until is not None:
        hi = _quarter_floor(f.until)
    raw_spans = []
    if lo is not None and hi is not None and lo >= hi:
        raw_spans.append("a.time >= %(since)s AND a.time < %(until)s")
        rollup = None
    else:
        where = []
        if lo is not None:
            where.append("q.quarter >= %(lo)s")
            if f.since < lo:
                raw_spans.append("a.time >= %(since)s AND a.time < %(lo)s")
        if hi is not None:
            where.append("q.quarter < %(hi)s")
            if hi < f.until:
                raw_spans.append("a.time >= %(hi)s AND a.time < %(until)s")
        if f.vhost is not None:
            where.append("q.vhost = %(vhost)s")
            params["vhost"] = f.vhost
        if f.bots is not None:
            where.append("q.bot" if f.bots else "NOT q.bot")
        rollup = ("SELECT q.quarter, q.vhost, q.status, q.bot, q.hits, q.bytes"
                  f" FROM logpipe_quarters q WHERE {_and(where)}")
    params.update(lo=lo, hi=hi)
    parts = [rollup] if rollup else []
    if raw_spans:
        where = _conditions(f, params, time=False)
        params.update(since=f.since, until=f.until)
        parts.append(
            "SELECT logpipe_quarter(a.time), coalesce(a.vhost, ''), coalesce(a.status, 0),"
            f" {BOT}, count(*), coalesce(sum(coalesce(a.bytes, a.bytes_out)), 0)"
            f" FROM access_log a WHERE {_and(where)}"
            f" AND ({' OR '.join(f'({s})' for s in raw_spans)}) GROUP BY 1, 2, 3, 4"
        )
    return " UNION ALL ".join(parts), params


def _period(column: str, by: str) -> str:
    """The select-list item that groups a time column by day or by hour."""
    if by == "day":
        return f"date_trunc('day', {column})::date AS day"
    return f"date_trunc('hour', {column}) AS hour"


def query_status(f: Filters) -> tuple[str, dict[str, Any]]:
    if f.path is not None:  # the rollup has no paths
        return _query_status_raw(f)
    source, params = _quarters(f)
    period = _period("u.quarter", f.by)
    sql = (
        f"SELECT {period}, nullif(u.vhost, '') AS vhost, nullif(u.status, 0) AS status,"
        f" sum(u.hits)::bigint AS hits FROM ({source})"
        " u (quarter, vhost, status, bot, hits, bytes)"
        " GROUP BY 1, 2, 3 HAVING sum(u.hits) > 0 ORDER BY 1, 2, 3" + _limit(f, params)
    )
    return sql, params


def query_traffic(f: Filters) -> tuple[str, dict[str, Any]]:
    if f.path is not None:  # the rollup has no paths
        return _query_traffic_raw(f)
    source, params = _quarters(f)
    period = _period("u.quarter", f.by)
    sql = (
        f"SELECT {period}, nullif(u.vhost, '') AS vhost, sum(u.hits)::bigint AS hits,"
        " coalesce(sum(u.hits) FILTER (WHERE NOT u.bot), 0)::bigint AS human_hits,"
        " coalesce(sum(u.hits) FILTER (WHERE u.bot), 0)::bigint AS bot_hits,"
        f" sum(u.bytes)::bigint AS bytes FROM ({source})"
        " u (quarter, vhost, status, bot, hits, bytes)"
        " GROUP BY 1, 2 HAVING sum(u.hits) > 0 ORDER BY 1, 2" + _limit(f, params)
    )
    return sql, params


def _query_status_raw(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    period = _period("a.time", f.by)
    sql = (
        f"SELECT {period}, a.vhost, a.status, count(*) AS hits FROM access_log a"
        f" WHERE {_and(_conditions(f, params))}"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3" + _limit(f, params)
    )
    return sql, params


def _query_traffic_raw(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    period = _period("a.time", f.by)
    sql = (
        f"SELECT {period}, a.vhost, count(*) AS hits,"
        f" count(*) FILTER (WHERE NOT {BOT}) AS human_hits,"
        f" count(*) FILTER (WHERE {BOT}) AS bot_hits,"
        " coalesce(sum(coalesce(a.bytes, a.bytes_out)), 0)::bigint AS bytes"
        f" FROM access_log a WHERE {_and(_conditions(f, params))}"
        " GROUP BY 1, 2 ORDER BY 1, 2" + _limit(f, params)
    )
    return sql, params


QUERIES: dict[str, Callable[[Filters], tuple[str, dict[str, Any]]]] = {
    "referers": query_referers,
    "pages": query_pages,
    "status": query_status,
    "broken-links": query_broken_links,
    "offenders": query_offenders,
    "agents": query_agents,
    "traffic": query_traffic,
}


def prepare_session(cur: Any) -> None:
    """Room for the aggregations: the 4 MB default spills a month's rollup to disk."""
    cur.execute("SET work_mem = '64MB'")


def run_report(cur: Any, name: str, filters: Filters) -> tuple[list[str], list[tuple]]:
    """Run one report: (column names, rows). Also what bench/reports_bench.py times."""
    if name == "pages":
        sql, params = query_pages(filters, rollup_range(cur))
    else:
        sql, params = QUERIES[name](filters)
    cur.execute(sql, params)
    return [d[0] for d in cur.description], cur.fetchall()


# -- output -----------------------------------------------------------------------

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else f"\\x{ord(char):02x}"


def safe_text(text: str) -> str:
    """Text an attacker may have logged, made harmless for a terminal.

    C0 and C1 control characters (ESC, CR, BEL, CSI...) become \\x1b-style escapes,
    a backslash becomes \\\\ so the escapes stay unambiguous, and invisible format
    characters (bidi overrides, zero-width, line separators) become \\u202e-style.
    """
    text = _UNSAFE.sub(_escape_char, text)
    if text.isascii():
        return text
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cf", "Zl", "Zp", "Co", "Cs", "Cn")
        else c
        for c in text
    )


def _width(text: str) -> int:
    if text.isascii():
        return len(text)
    total = 0
    for c in text:
        if unicodedata.combining(c):
            continue
        total += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return total


def _truncate(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = _width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _cell(value: Any, sep: str = " ") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=sep)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def format_table(columns: list[str], rows: list[tuple], width: int) -> str:
    """Aligned columns that fit `width`: the widest text columns shrink, cut cells end in '…'.

    If even that does not fit (many numeric columns, a very narrow terminal), the lines
    are left longer than `width` rather than cutting numbers.
    """
    if not rows:
        return "(no rows)\n"
    # a vhost column with nothing in it (logs without %v) only takes room
    keep = [i for i, c in enumerate(columns) if c != "vhost" or any(r[i] for r in rows)]
    columns = [columns[i] for i in keep]
    rows = [tuple(r[i] for i in keep) for r in rows]
    cells = [[safe_text(_table_cell(v)) for v in r] for r in rows]
    kinds = [_kind([r[i] for r in rows]) for i in range(len(columns))]
    widths = [max([len(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)]
    gap = 2
    # numbers and times are never cut (a cut number misleads); text goes down to 5
    # characters ("abcd…"), header included
    floors = [min(w, 5) if k == "text" else w for w, k in zip(widths, kinds)]
    overflow = sum(widths) + gap * (len(widths) - 1) - width
    while overflow > 0:
        # one character at a time from the widest text column: long cells shrink evenly
        candidates = [i for i in range(len(widths)) if widths[i] > floors[i]]
        if not candidates:
            break  # nothing left to shrink: let the terminal wrap
        widest = max(candidates, key=lambda i: (widths[i], i))
        widths[widest] -= 1
        overflow -= 1

    def line(values: list[str]) -> str:
        out = []
        for i, v in enumerate(values):
            v = _truncate(v, widths[i])
            pad = " " * (widths[i] - _width(v))
            out.append(pad + v if kinds[i] == "number" else v + pad)
        return (" " * gap).join(out).rstrip()

    text = [line(list(columns)), line(["-" * w for w in widths])]
    text += [line(r) for r in cells]
    return "\n".join(text) + "\n"


def _kind(values: list[Any]) -> str:
    """'number' (right-aligned, never shrunk), 'time' (never shrunk) or 'text'."""
    present = [v for v in values if v is not None]
    if present and all(_is_number(v) for v in present):
        return "number"
    if present and all(isinstance(v, (dt.date, dt.datetime)) for v in present):
        return "time"
    return "text"


def _table_cell(value: Any) -> str:
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
        return re.sub(r"([+-]\d\d):00$", r"\1", text)  # +00:00 -> +00, as psql shows it
    return _cell(value)


def write_csv(columns: list[str], rows: list[tuple], out: Any, escape: bool = False) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        cells = [_cell(v, "T") for v in r]
        writer.writerow([safe_text(c) for c in cells] if escape else cells)


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def format_json(columns: list[str], rows: list[tuple]) -> str:
    # ensure_ascii: control characters and everything non-ASCII as \u escapes, so the
    # output is safe on a terminal too
    objects = [{c: _json_value(v) for c, v in zip(columns, r)} for r in rows]
    return json.dumps(objects, indent=2) + "\n"


# -- the command --------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import psycopg2
    import psycopg2.errors

    from logpipe.store import database as db

    if args.name not in REPORTS:
        say(f"unknown report {args.name!r}; the reports are: {', '.join(REPORTS)}")
        return 1
    dsn = config.resolve_dsn(args.dsn)
    limit = REPORTS[args.name].default_limit if args.limit is None else args.limit
    filters = Filters(path=args.path, vhost=args.vhost, limit=limit, by=args.by,
                      bots=True if args.bots else False if args.humans else None)
    try:
        conn = db.connect(dsn, "logpipe report")
    except psycopg2.OperationalError as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {str(exc).strip()}")
        say("check --dsn (or $LOGPIPE_DSN) and that PostgreSQL is running and accepts "
            "connections")
        return 1
    except psycopg2.Error as exc:  # e.g. a malformed --dsn
        say(f"cannot connect: {str(exc).strip()}")
        return 1
    try:
        # Counts the writer has not folded yet (it does within seconds): a user who may
        # only read gets the rollups as of the writer's last fold.
        db.fold_rollups(conn)
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            prepare_session(cur)
            filters.since, filters.until = resolve_times(cur, args.since, args.until)
            columns, rows = run_report(cur, args.name, filters)
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction) as exc:
        say(f"the reports are not installed in {db.describe_dsn(dsn)} "
            f"({str(exc).splitlines()[0]}); run `logpipe initdb` first")
        return 1
    except psycopg2.OperationalError as exc:
        say(f"lost the connection to {db.describe_dsn(dsn)}: {str(exc).strip()}")
        return 1
    except psycopg2.Error as exc:
        say(f"report {args.name} failed: {str(exc).strip()}")
        return 1
    except (ValueError, OverflowError) as exc:  # e.g. a time beyond what Python can hold
        say(f"report {args.name} failed: {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, not a traceback
        say(f"report {args.name} failed, a bug in logpipe: {exc!r}")
        return 1
    finally:
        conn.close()
    try:
        if args.format == "csv":
            write_csv(columns, rows, sys.stdout, escape=sys.stdout.isatty())
        elif args.format == "json":
            sys.stdout.write(format_json(columns, rows))
        else:
            sys.stdout.write(format_table(columns, rows, shutil.get_terminal_size().columns))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: the reader has all it wants
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - stops the flush at exit
        except OSError:
            pass
    return 0
