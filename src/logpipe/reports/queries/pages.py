"""SQL of the `pages` report: whole UTC days from the daily rollup, or the all-time
totals minus the days outside the window, corrected from access_log for partial days;
from access_log alone for --source (the rollups have no sources)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from logpipe.reports.filters import (
    Filters,
    all_of,
    conditions,
    limit_clause,
    path_vhost_conditions,
)

# What RollupRange is read from (run.rollup_range runs it).
ROLLUP_RANGE_SQL = "SELECT min(day), max(day) FROM logpipe_rollup_daily"


@dataclass(frozen=True)
class RollupRange:
    """What `pages` needs beyond the rollup: read with ROLLUP_RANGE_SQL."""

    first_day: dt.date | None  # first and last day in logpipe_rollup_daily, None if empty
    last_day: dt.date | None


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def _split(moment: dt.datetime, pruned: bool = False
           ) -> tuple[dt.date, tuple[dt.datetime, dt.datetime] | None, int]:
    """A window bound as whole UTC days plus a correction from access_log.

    Rows before `moment` = rollup days before the returned day + sign * access_log rows
    in the returned time range: either the start of moment's day up to moment (sign +1),
    or moment up to the end of its day, taking in the whole day (sign -1), whichever
    range is shorter. No correction where access_log was `pruned`: the start of the day.
    """
    utc = moment.astimezone(dt.timezone.utc)
    day = utc.date()
    start = _utc_midnight(day)
    if utc == start or pruned:
        return day, None, 0
    end = start + dt.timedelta(days=1)
    if utc - start <= end - utc:
        return day, (start, utc), 1
    return day + dt.timedelta(days=1), (utc, end), -1


def query_pages(f: Filters, days: RollupRange) -> tuple[str, dict[str, Any]]:
    """Pages from the rollups, reading access_log only for partial days.

    Rows in [since, until) = rows before until - rows before since, each counted as
    whole rollup days plus part of a day from access_log (see _split). The whole days
    come from logpipe_rollup_daily, or, when fewer days lie outside the window than
    inside (e.g. --since 30d on 30 days of logs), from the all-time totals in
    logpipe_pages minus the days outside.
    """
    if f.per_source:
        return _pages_from_access_log(f)
    params: dict[str, Any] = {}
    if (f.since is not None and f.until is not None and not f.pruned(f.since)
            and f.until - f.since <= dt.timedelta(days=1)):
        return _pages_sql(f, params, [_raw_part(f, params)])
    page_filter = path_vhost_conditions(f, params, "p")  # on logpipe_pages AS p
    parts = []
    lo = hi = None
    if f.since is not None:
        lo, span, sign = _split(f.since, f.pruned(f.since))
        if span:
            parts.append(_raw_part(f, params, span, -sign, "lo"))
    if f.until is not None:
        hi, span, sign = _split(f.until, f.pruned(f.until))
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
                         f" WHERE {all_of(page_filter)})")
        return f"SELECT r.page_id, {counts('r', sign)} FROM logpipe_rollup_daily r" \
               f" WHERE {all_of(where)}"

    inside, outside = _days_inside_outside(days, lo, hi)
    if outside < inside:  # the totals minus the whole days outside the window
        parts.append(f"SELECT p.id, {counts('p', 1)} FROM logpipe_pages p"
                     f" WHERE {all_of(page_filter)}")
        if lo is not None:
            parts.append(rollup(["r.day < %(lo_day)s"], -1))
        if hi is not None:
            parts.append(rollup(["r.day >= %(hi_day)s"], -1))
    else:
        parts.append(rollup((["r.day >= %(lo_day)s"] if lo else [])
                            + (["r.day < %(hi_day)s"] if hi else []), 1))
    return _pages_sql(f, params, parts)


def _days_inside_outside(days: RollupRange, lo: dt.date | None,
                         hi: dt.date | None) -> tuple[int, int]:
    """Rollup days in [lo, hi) and outside it (None: unbounded)."""
    if days.first_day is None or days.last_day is None:  # an empty rollup
        return 0, 0
    first, end = days.first_day, days.last_day + dt.timedelta(days=1)
    start, stop = max(lo or first, first), min(hi or end, end)
    inside = max(0, (stop - start).days)
    return inside, (end - first).days - inside


# A row's page as the rollups key it (sql/020_reports.sql), so that the partial days
# read from access_log meet the rollup's whole days on the same page.
ROLLUP_VHOST = "logpipe_rollup_vhost(a.vhost)"
ROLLUP_PATH = "logpipe_rollup_path(a.path)"
ROLLUP_BYTES = "logpipe_rollup_bytes(a.bytes, a.bytes_out)"


def _raw_part(f: Filters, params: dict[str, Any],
              span: tuple[dt.datetime, dt.datetime] | None = None, sign: int = 1,
              name: str = "") -> str:
    """Pages counted in access_log, signed: within `span`, else within [since, until)."""
    where = ["a.status < 400", *conditions(f, params, time=span is None)]
    if span is not None:
        params[f"{name}_start"], params[f"{name}_end"] = span
        where.append(f"a.time >= %({name}_start)s AND a.time < %({name}_end)s")
    # grouped by name first, then numbered: cheaper than numbering every row
    return (
        f"SELECT p.id, {sign} * e.hits, {sign} * e.bytes FROM (SELECT {ROLLUP_VHOST}"
        f" AS vhost, {ROLLUP_PATH} AS path, count(*) AS hits,"
        f" coalesce(sum({ROLLUP_BYTES}), 0) AS bytes FROM access_log a"
        f" WHERE {all_of(where)} GROUP BY 1, 2) e"
        " JOIN logpipe_pages p ON p.vhost = e.vhost AND p.path = e.path"
    )


def _pages_from_access_log(f: Filters) -> tuple[str, dict[str, Any]]:
    """Pages counted in access_log alone, named as the rollups name them ('' for none)."""
    params: dict[str, Any] = {}
    where = ["a.status < 400", *conditions(f, params)]
    ranked = (
        "SELECT coalesce(a.vhost, '') AS vhost, coalesce(a.path, '') AS path,"
        " count(*) AS hits, coalesce(sum(coalesce(a.bytes, a.bytes_out)), 0)::bigint AS bytes"
        f" FROM access_log a WHERE {all_of(where)} GROUP BY 1, 2"
    )
    if f.limit:  # as in _pages_sql: the cut at --limit is exact and the order stable
        ranked += " ORDER BY hits DESC FETCH FIRST %(limit)s ROWS WITH TIES"
    sql = (
        "SELECT nullif(t.vhost, '') AS vhost, nullif(t.path, '') AS path, t.hits, t.bytes"
        f" FROM ({ranked}) t ORDER BY t.hits DESC, t.vhost, t.path" + limit_clause(f, params)
    )
    return sql, params


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
        " ORDER BY t.hits DESC, p.vhost, p.path" + limit_clause(f, params)
    )
    return sql, params
