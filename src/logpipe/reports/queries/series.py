"""SQL of the time-series reports, status and traffic: requests per day or hour, from the
quarter-hour rollup (access_log for partial quarters), or from access_log for --path,
--source and --by-source (the rollup has neither paths nor sources)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from logpipe.reports.filters import BOT, Filters, all_of, conditions, limit_clause

QUARTER = dt.timedelta(minutes=15)
# the columns of logpipe_quarters, as _quarters() selects them
QUARTER_COLUMNS = "u (quarter, vhost, status, bot, hits, bytes)"


@dataclass(frozen=True)
class Series:
    """A time-series report: its columns after the day or hour, computed either way."""

    from_rollup: str  # over QUARTER_COLUMNS
    from_access_log: str  # over access_log AS a
    keys: int  # how many leading columns group and order the rows, the day or hour first


STATUS = Series(
    from_rollup="nullif(u.vhost, '') AS vhost, nullif(u.status, 0) AS status,"
    " sum(u.hits)::bigint AS hits",
    from_access_log="nullif(a.vhost, '') AS vhost, a.status, count(*) AS hits",
    keys=3,
)
TRAFFIC = Series(
    from_rollup="nullif(u.vhost, '') AS vhost, sum(u.hits)::bigint AS hits,"
    " coalesce(sum(u.hits) FILTER (WHERE NOT u.bot), 0)::bigint AS human_hits,"
    " coalesce(sum(u.hits) FILTER (WHERE u.bot), 0)::bigint AS bot_hits,"
    " sum(u.bytes)::bigint AS bytes",
    from_access_log=f"nullif(a.vhost, '') AS vhost, count(*) AS hits,"
    f" count(*) FILTER (WHERE NOT {BOT}) AS human_hits,"
    f" count(*) FILTER (WHERE {BOT}) AS bot_hits,"
    " coalesce(sum(coalesce(a.bytes, a.bytes_out)), 0)::bigint AS bytes",
    keys=2,
)


def query_status(f: Filters) -> tuple[str, dict[str, Any]]:
    return query_series(STATUS, f)


def query_traffic(f: Filters) -> tuple[str, dict[str, Any]]:
    return query_series(TRAFFIC, f)


def query_series(series: Series, f: Filters) -> tuple[str, dict[str, Any]]:
    if f.path is not None or f.per_source:  # the rollup has no paths and no sources
        return from_access_log(series, f)
    source, params = _quarters(f)
    keys = _positions(series.keys)
    sql = (
        f"SELECT {_period('u.quarter', f.by)}, {series.from_rollup}"
        f" FROM ({source}) {QUARTER_COLUMNS}"
        f" GROUP BY {keys} HAVING sum(u.hits) > 0 ORDER BY {keys}"
        + limit_clause(f, params)
    )
    return sql, params


def from_access_log(series: Series, f: Filters) -> tuple[str, dict[str, Any]]:
    """The report from access_log alone (for --path, --source and --by-source;
    bench/reports_bench.py compares), with a source column after the period for
    --by-source."""
    params: dict[str, Any] = {}
    source = "a.source, " if f.by_source else ""
    keys = _positions(series.keys + 1 if f.by_source else series.keys)
    sql = (
        f"SELECT {_period('a.time', f.by)}, {source}{series.from_access_log}"
        f" FROM access_log a WHERE {all_of(conditions(f, params))}"
        f" GROUP BY {keys} ORDER BY {keys}" + limit_clause(f, params)
    )
    return sql, params


def _positions(count: int) -> str:
    """'1, 2, 3': the first `count` columns, for GROUP BY and ORDER BY."""
    return ", ".join(str(i) for i in range(1, count + 1))


def _period(column: str, by: str) -> str:
    """The select-list item that groups a time column by day or by hour."""
    if by == "day":
        return f"date_trunc('day', {column})::date AS day"
    return f"date_trunc('hour', {column}) AS hour"


def _quarter_floor(moment: dt.datetime) -> dt.datetime:
    utc = moment.astimezone(dt.timezone.utc)
    return utc - dt.timedelta(minutes=utc.minute % 15, seconds=utc.second,
                              microseconds=utc.microsecond)


def _quarters(f: Filters) -> tuple[str, dict[str, Any]]:
    """Requests per quarter of an hour, vhost ('' for none), status (0 for none) and bot
    flag, as (quarter, vhost, status, bot, hits, bytes): whole quarters from
    logpipe_quarters (rollup and pending), the partial ones at either end from access_log
    (or, where pruned, whole from the rollup: Filters.pruned)."""
    params: dict[str, Any] = {}
    lo = hi = None
    if f.since is not None:
        lo = _quarter_floor(f.since)
        lo = lo if lo == f.since or f.pruned(f.since) else lo + QUARTER
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
            if hi < f.until and not f.pruned(f.until):
                raw_spans.append("a.time >= %(hi)s AND a.time < %(until)s")
        if f.vhost is not None:
            where.append("q.vhost = %(vhost)s")
            params["vhost"] = f.vhost
        if f.bots is not None:
            where.append("q.bot" if f.bots else "NOT q.bot")
        rollup = ("SELECT q.quarter, q.vhost, q.status, q.bot, q.hits, q.bytes"
                  f" FROM logpipe_quarters q WHERE {all_of(where)}")
    params.update(lo=lo, hi=hi)
    parts = [rollup] if rollup else []
    if raw_spans:
        where = conditions(f, params, time=False)
        params.update(since=f.since, until=f.until)
        parts.append(
            "SELECT logpipe_quarter(a.time), coalesce(a.vhost, ''), coalesce(a.status, 0),"
            f" {BOT}, count(*), coalesce(sum(coalesce(a.bytes, a.bytes_out)), 0)"
            f" FROM access_log a WHERE {all_of(where)}"
            f" AND ({' OR '.join(f'({s})' for s in raw_spans)}) GROUP BY 1, 2, 3, 4"
        )
    return " UNION ALL ".join(parts), params
