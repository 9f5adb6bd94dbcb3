"""The dashboard's numbers: every panel from the same report queries as `logpipe report`
(reports.run.run_report), shaped as one JSON-ready dict that the page renders.

Logged text (paths, referers, user agents, hosts) goes out with control and invisible
characters escaped by output.safe_text, as the CLI's tables show it; the page then
only ever sets it as text, never as markup.
"""

from __future__ import annotations

import calendar
import concurrent.futures
import dataclasses
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from logpipe.reports.catalog import REPORTS
from logpipe.reports.filters import Filters
from logpipe.reports.output import safe_text
from logpipe.reports.run import run_report

# The table panels: report name -> the panel's key in the data.
TABLES = {
    "pages": "pages",
    "referers": "referers",
    "broken-links": "broken_links",
    "agents": "agents",
    "offenders": "offenders",
}
# The panels of visits (reports/queries/visitors.py), left out, with a note, where the
# schema predates them or the role may not read them.
VISIT_TABLES = {"channels": "channels", "countries": "countries"}
# Up to this many days in the window, the charts go by hour.
HOURLY_UP_TO_DAYS = 3
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


def plain(value: Any) -> Any:
    """A SQL value as JSON shows it (as `logpipe report --format json` does), logged
    text made visible (safe_text)."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str):
        return safe_text(value)
    return value


def wall_clock(period: Any) -> int:
    """A day or hour of the session's time zone as seconds since the epoch read as UTC,
    so that the page shows the same calendar day and hour as the CLI does."""
    return calendar.timegm(period.timetuple())


def collect(cur: Any, filters: Filters, limit: int | None,
            helper: Any = None) -> dict[str, Any]:
    """Every panel's numbers for `filters` (absolute times, as resolve_times makes
    them); `limit` rows per table (0: all; None: each report's CLI default).

    `helper`: a cursor on a second connection, set up as `cur` (read-only, autocommit,
    run.prepare_session), on which the visit panels run in a thread while `cur` runs
    the tables: two of the page's queries at once, for a server with two cores or
    more. Each query sees the rows committed when it starts, with or without it."""
    base = dataclasses.replace(filters, by_source=False, limit=None)
    cur.execute("SELECT current_setting('TimeZone'), now()")
    time_zone, now = cur.fetchone()
    _, days = run_report(cur, "traffic", dataclasses.replace(base, by="day"))
    if filters.since is not None:  # the window decides, whatever its rows
        window = (filters.until or now) - filters.since
        by = "hour" if window <= dt.timedelta(days=HOURLY_UP_TO_DAYS) else "day"
        span = (wall_clock(filters.since), wall_clock(filters.until or now))
    else:
        by = "hour" if len({r[0] for r in days}) <= HOURLY_UP_TO_DAYS else "day"
        span = None
    traffic = days
    if by == "hour":
        _, traffic = run_report(cur, "traffic", dataclasses.replace(base, by="hour"))
    _, status = run_report(cur, "status", dataclasses.replace(base, by=by))
    data: dict[str, Any] = {
        "time_zone": time_zone,
        "now": now.isoformat(),
        "by": by,
        "totals": totals(traffic),
        "traffic": traffic_series(traffic, by, span),
        "status": status_series(status, by, span),
        "status_codes": status_codes(status),
        "vhosts": sorted({r[1] for r in days if r[1] is not None}),
    }
    pool = concurrent.futures.ThreadPoolExecutor(1) if helper is not None else None
    later = pool.submit(visits, helper, base, by, span, limit) if pool is not None else None
    try:
        for report, key in TABLES.items():
            data[key] = table(cur, report, base, limit)
    finally:
        if pool is not None:
            pool.shutdown()  # the helper's query ends before its connection may close
    data["notes"] = []
    try:
        data.update(later.result() if later is not None
                    else visits(cur, base, by, span, limit))
    except VISIT_ERRORS as exc:
        data["notes"].append("no visitors, visits, channels or countries: "
                             f"{str(exc).splitlines()[0]} (run `logpipe initdb`, "
                             "or grant the reader role again)")
    return data


def table(cur: Any, report: str, base: Filters, limit: int | None) -> dict[str, Any]:
    """A table panel: the report's columns and rows, `limit` rows (None: its default)."""
    rows_wanted = REPORTS[report].default_limit if limit is None else limit
    columns, rows = run_report(cur, report, dataclasses.replace(base, limit=rows_wanted))
    return {"columns": columns, "rows": [[plain(v) for v in r] for r in rows]}


def _visit_errors() -> tuple[type[Exception], ...]:
    import psycopg2.errors

    return (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction,
            psycopg2.errors.InsufficientPrivilege)


VISIT_ERRORS = _visit_errors()


def visits(cur: Any, base: Filters, by: str, span: tuple[int, int] | None,
           limit: int | None) -> dict[str, Any]:
    """Visitors and visits (totals: per UTC day, added up, as `report visitors` prints
    them), visitors per day or hour, channels and countries. One visitors query when
    the chart is by day: it is the slowest of the page's queries."""
    _, days = run_report(cur, "visitors", dataclasses.replace(base, by="day"))
    rows = days
    if by == "hour":
        _, rows = run_report(cur, "visitors", dataclasses.replace(base, by="hour"))
    counts: dict[int, int] = defaultdict(int)
    for period, _vhost, visitors, _visits, _hits in rows:
        counts[wall_clock(period)] += int(visitors)
    times = _timeline(set(counts), by, span)
    found: dict[str, Any] = {
        "visit_totals": {"visitors": sum(int(r[2]) for r in days),
                         "visits": sum(int(r[3]) for r in days)},
        "visitors_series": {"t": times, "visitors": [counts.get(t, 0) for t in times]},
    }
    for report, key in VISIT_TABLES.items():
        found[key] = table(cur, report, base, limit)
    return found


def totals(traffic: list[tuple]) -> dict[str, Any]:
    """Requests, humans, bots and bytes of the whole window, from the traffic rows
    (period, vhost, hits, human_hits, bot_hits, bytes)."""
    requests = sum(int(r[2]) for r in traffic)
    bots = sum(int(r[4]) for r in traffic)
    return {
        "requests": requests,
        "human_requests": sum(int(r[3]) for r in traffic),
        "bot_requests": bots,
        "bytes": sum(int(r[5]) for r in traffic),
        "bot_share": bots / requests if requests else None,
    }


def _timeline(keys: set[int], by: str, span: tuple[int, int] | None) -> list[int]:
    """Every day or hour of the window `span` (wall clock, as keys), else from the first
    to the last key, so that quiet periods show as 0; two at least, so that a chart of
    one hour still has a width."""
    if not keys and span is None:
        return []
    step = 86400 if by == "day" else 3600
    first, last = (span[0] - span[0] % step, span[1]) if span else (min(keys), max(keys))
    return list(range(first, max(last, first + step) + 1, step))


def traffic_series(rows: list[tuple], by: str,
                   span: tuple[int, int] | None = None) -> dict[str, list[int]]:
    """Requests of humans and of bots per period, all vhosts added up."""
    humans: dict[int, int] = defaultdict(int)
    bots: dict[int, int] = defaultdict(int)
    for period, _vhost, _hits, human_hits, bot_hits, _bytes in rows:
        key = wall_clock(period)
        humans[key] += int(human_hits)
        bots[key] += int(bot_hits)
    times = _timeline(set(humans), by, span)
    return {"t": times, "humans": [humans.get(t, 0) for t in times],
            "bots": [bots.get(t, 0) for t in times]}


def status_class(status: int | None) -> str:
    if status is None or not 100 <= status <= 599:
        return "other"
    return f"{status // 100}xx"


def status_series(rows: list[tuple], by: str,
                  span: tuple[int, int] | None = None) -> dict[str, Any]:
    """Requests per period and class of status (2xx, 4xx...), the classes seen only."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for period, _vhost, status, hits in rows:
        counts[status_class(status)][wall_clock(period)] += int(hits)
    times = _timeline({t for c in counts.values() for t in c}, by, span)
    return {"t": times, "series": {c: [counts[c].get(t, 0) for t in times]
                                   for c in STATUS_CLASSES if c in counts}}


def status_codes(rows: list[tuple]) -> dict[str, Any]:
    """Requests per status code over the window, most first."""
    hits: dict[int | None, int] = defaultdict(int)
    for _period, _vhost, status, count in rows:
        hits[status] += int(count)
    ordered = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0] if kv[0] is not None else 0))
    return {"columns": ["status", "hits"], "rows": [[s, h] for s, h in ordered]}
