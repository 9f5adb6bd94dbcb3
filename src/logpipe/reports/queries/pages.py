"""SQL of the page reports, `pages` and `static` (and the counts `tree` groups): whole UTC
days from the daily rollup, or the all-time totals minus the days outside the window,
corrected from access_log for partial days; from access_log alone for --source (the
rollups have no sources). Paths are named with '//' as '/' and told apart as page or
static asset (logpipe_asset_patterns) when the report runs, once per distinct path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from logpipe.reports.filters import Filters, all_of, conditions, limit_clause

# What RollupRange is read from (run.rollup_range runs it).
ROLLUP_RANGE_SQL = "SELECT min(day), max(day) FROM logpipe_rollup_daily"

# Whether a path is a static asset is read at query time, so that a pattern an operator
# adds counts at once, for past requests too. Most patterns are '%.ext': those are
# matched as one hash lookup of the path's extension (what follows its last '.', which
# a match needs), not as one LIKE per pattern and path (~10 times slower); the others
# ('/robots.txt') by LIKE. ARRAY() of an uncorrelated subquery runs once per query.
_BY_EXTENSION = r"pattern ~ '^%%\.[^.%%_\\]+$'"
ASSET_EXTENSIONS = ("SELECT substr(pattern, 3) AS ext FROM logpipe_asset_patterns"
                    f" WHERE {_BY_EXTENSION}")
ASSET_OTHERS = f"ARRAY(SELECT pattern FROM logpipe_asset_patterns WHERE NOT {_BY_EXTENSION})"


def classified(table: str, path: str) -> str:
    """FROM items: `table`, its collapsed `path` as n.path, and n.asset."""
    return (
        f"{table} CROSS JOIN LATERAL (SELECT logpipe_page_path({path}) AS path) q"
        " CROSS JOIN LATERAL (SELECT lower(q.path) AS path) l"
        f" LEFT JOIN ({ASSET_EXTENSIONS}) x"
        " ON x.ext = reverse(split_part(reverse(l.path), '.', 1))"
        f" CROSS JOIN LATERAL (SELECT q.path, x.ext IS NOT NULL OR l.path LIKE ANY ({ASSET_OTHERS})"
        " AS asset) n"
    )


# The columns query_counts yields: vhost ('' for none), the collapsed path ('' for none;
# two rows may name the same one), whether it is an asset, page views (GET or POST
# served) and their bytes, all requests served and their bytes.
COUNTS = "(vhost, path, asset, views, view_bytes, hits, bytes)"


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


def page_path(path: str) -> str:
    """A path as the page reports name it (logpipe_page_path): '//' is '/'."""
    return re.sub("/{2,}", "/", path)


def query_pages(f: Filters, days: RollupRange, everything: bool = False
                ) -> tuple[str, dict[str, Any]]:
    """Most viewed pages: GET and POST requests served for paths that are not static
    assets; with `everything` (--all), every request served, assets too."""
    if everything:
        return _ranked(f, days, None, "hits", "bytes")
    return _ranked(f, days, False, "views", "view_bytes")


def query_static(f: Filters, days: RollupRange) -> tuple[str, dict[str, Any]]:
    """Most requested static assets: GET and POST requests served for asset paths."""
    return _ranked(f, days, True, "views", "view_bytes")


def _ranked(f: Filters, days: RollupRange, asset: bool | None, hits: str,
            bytes_: str) -> tuple[str, dict[str, Any]]:
    """Rows (vhost, path, hits, bytes) per collapsed path, most first, cut at --limit:
    assets only (`asset` True), pages only (False) or both (None)."""
    keep = {None: "", True: " WHERE c.asset", False: " WHERE NOT c.asset"}[asset]
    if f.per_source:  # few rows per path: grouped on the names
        source, params = _counts_from_access_log(f)
        sql = (
            "SELECT nullif(c.vhost, '') AS vhost, nullif(c.path, '') AS path,"
            f" sum(c.{hits})::bigint AS hits, sum(c.{bytes_})::bigint AS bytes"
            f" FROM ({source}) c{keep} GROUP BY c.vhost, c.path HAVING sum(c.{hits}) > 0"
            " ORDER BY hits DESC, c.vhost, c.path" + limit_clause(f, params)
        )
        return sql, params
    parts, params = _parts(f, days)
    # Added up per page on an integer, the pages that name one path ('/a', '//a') under
    # the first one's id, and named once ranked: text only for the rows shown.
    ranked = (
        f"SELECT m.canon, sum(u.{hits}) AS hits, sum(u.{bytes_}) AS bytes"
        f" FROM ({parts}) u JOIN ({_page_map(asset)}) m ON m.id = u.page_id"
        f" GROUP BY m.canon HAVING sum(u.{hits}) > 0"
    )
    if f.limit:  # WITH TIES, then names: the cut at --limit is exact and the order stable
        ranked += " ORDER BY hits DESC FETCH FIRST %(limit)s ROWS WITH TIES"
    sql = (
        "SELECT nullif(p.vhost, '') AS vhost, nullif(logpipe_page_path(p.path), '') AS path,"
        " t.hits::bigint AS hits, t.bytes::bigint AS bytes"
        f" FROM ({ranked}) t JOIN logpipe_pages p ON p.id = t.canon"
        " ORDER BY t.hits DESC, p.vhost, logpipe_page_path(p.path)" + limit_clause(f, params)
    )
    return sql, params


def _page_map(asset: bool | None) -> str:
    """Rows (id, canon) of logpipe_pages: canon is the id that stands for every page of
    the same vhost and collapsed path: the page named so if there is one, else the
    first of them. Only pages with '//' look it up. Assets only or none (`asset`)."""
    slashed = (
        "SELECT d.id, coalesce(e.id, min(d.id) OVER (PARTITION BY d.vhost, d.path)) AS canon"
        " FROM (SELECT id, vhost, logpipe_page_path(path) AS path FROM logpipe_pages"
        " WHERE strpos(path, '//') > 0) d"
        " LEFT JOIN logpipe_pages e ON e.vhost = d.vhost AND e.path = d.path"
    )
    table = f"logpipe_pages p LEFT JOIN ({slashed}) s ON s.id = p.id"
    keep = {None: "", True: " WHERE n.asset", False: " WHERE NOT n.asset"}[asset]
    if asset is None:  # nothing to classify
        return f"SELECT p.id, coalesce(s.canon, p.id) AS canon FROM {table}"
    return f"SELECT p.id, coalesce(s.canon, p.id) AS canon FROM {classified(table, 'p.path')}{keep}"


def query_counts(f: Filters, days: RollupRange) -> tuple[str, dict[str, Any]]:
    """Counts per page in the window, as COUNTS, for the rows of the filters but --limit."""
    if f.per_source:
        return _counts_from_access_log(f)
    parts, params = _parts(f, days)
    named = f"SELECT p.id, p.vhost, n.path, n.asset FROM {classified('logpipe_pages p', 'p.path')}"
    return ("SELECT m.vhost, m.path, m.asset, u.views, u.view_bytes, u.hits, u.bytes"
            f" FROM ({parts}) u JOIN ({named}) m ON m.id = u.page_id"), params


def _parts(f: Filters, days: RollupRange) -> tuple[str, dict[str, Any]]:
    """Signed counts per page id in the window, as rows u (page_id, views, view_bytes,
    hits, bytes) of several parts, for the filters but --limit and --source.

    Rows in [since, until) = rows before until - rows before since, each counted as
    whole rollup days plus part of a day from access_log (see _split). The whole days
    come from logpipe_rollup_daily, or, when fewer days lie outside the window than
    inside (e.g. --since 30d on 30 days of logs), from the all-time totals in
    logpipe_pages minus the days outside.
    """
    params: dict[str, Any] = {}
    if (f.since is not None and f.until is not None and not f.pruned(f.since)
            and f.until - f.since <= dt.timedelta(days=1)):
        return _union([_raw_part(f, params)]), params
    page_filter = _page_conditions(f, params, "p")  # on logpipe_pages AS p
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

    def rollup(day_conditions: list[str], sign: int) -> str:
        where = list(day_conditions)
        if page_filter:
            where.append("r.page_id IN (SELECT p.id FROM logpipe_pages p"
                         f" WHERE {all_of(page_filter)})")
        return f"SELECT r.page_id, {_measures(f, 'r', sign)} FROM logpipe_rollup_daily r" \
               f" WHERE {all_of(where)}"

    inside, outside = _days_inside_outside(days, lo, hi)
    if outside < inside:  # the totals minus the whole days outside the window
        parts.append(f"SELECT p.id, {_measures(f, 'p', 1)} FROM logpipe_pages p"
                     f" WHERE {all_of(page_filter)}")
        if lo is not None:
            parts.append(rollup(["r.day < %(lo_day)s"], -1))
        if hi is not None:
            parts.append(rollup(["r.day >= %(hi_day)s"], -1))
    else:
        parts.append(rollup((["r.day >= %(lo_day)s"] if lo else [])
                            + (["r.day < %(hi_day)s"] if hi else []), 1))
    return _union(parts), params


def _union(parts: list[str]) -> str:
    return (f"SELECT * FROM ({' UNION ALL '.join(parts)})"
            " v (page_id, views, view_bytes, hits, bytes)")


def _measures(f: Filters, alias: str, sign: int) -> str:
    """The signed COUNTS measures of a rollup row AS `alias`, for --humans/--bots.

    The daily rollup's views are NULL on days counted before logpipe counted views (kept
    only there once pruned): those days' requests served stand in for their views.
    """
    def column(name: str, fallback: str) -> str:
        if alias == "r":
            return f"coalesce(r.{name}, r.{fallback})"
        return f"{alias}.{name}"

    pairs = [(column("views", "hits"), column("bot_views", "bot_hits")),
             (column("view_bytes", "bytes"), column("bot_view_bytes", "bot_bytes")),
             (f"{alias}.hits", f"{alias}.bot_hits"), (f"{alias}.bytes", f"{alias}.bot_bytes")]
    picked = [{None: total, True: bot, False: f"{total} - {bot}"}[f.bots]
              for total, bot in pairs]
    return ", ".join(f"{sign} * ({m})" for m in picked)


def _page_conditions(f: Filters, params: dict[str, Any], alias: str) -> list[str]:
    """--path and --vhost on a table of rollup keys AS `alias`; --path names the
    collapsed path, so `--path /a` also counts requests for //a."""
    where = []
    if f.path is not None:
        where.append(f"logpipe_page_path({alias}.path) = %(page_path)s")
        params["page_path"] = page_path(f.path)
    if f.vhost is not None:
        where.append(f"{alias}.vhost = %(vhost)s")
        params["vhost"] = f.vhost
    return where


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
VIEW = "logpipe_is_view(a.method)"


def _raw_conditions(f: Filters, params: dict[str, Any], time: bool = True) -> list[str]:
    """Served rows of access_log AS a within the filters; --path as _page_conditions."""
    where = ["a.status < 400", *conditions(dataclasses.replace(f, path=None), params, time)]
    if f.path is not None:
        where.append("logpipe_page_path(a.path) = %(page_path)s")
        params["page_path"] = page_path(f.path)
    return where


def _raw_part(f: Filters, params: dict[str, Any],
              span: tuple[dt.datetime, dt.datetime] | None = None, sign: int = 1,
              name: str = "") -> str:
    """Pages counted in access_log, signed: within `span`, else within [since, until)."""
    where = _raw_conditions(f, params, time=span is None)
    if span is not None:
        params[f"{name}_start"], params[f"{name}_end"] = span
        where.append(f"a.time >= %({name}_start)s AND a.time < %({name}_end)s")
    # grouped by name first, then numbered: cheaper than numbering every row
    return (
        f"SELECT p.id, {sign} * e.views, {sign} * e.view_bytes, {sign} * e.hits,"
        f" {sign} * e.bytes FROM (SELECT {ROLLUP_VHOST} AS vhost, {ROLLUP_PATH} AS path,"
        f" count(*) FILTER (WHERE {VIEW}) AS views,"
        f" coalesce(sum({ROLLUP_BYTES}) FILTER (WHERE {VIEW}), 0) AS view_bytes,"
        f" count(*) AS hits, coalesce(sum({ROLLUP_BYTES}), 0) AS bytes FROM access_log a"
        f" WHERE {all_of(where)} GROUP BY 1, 2) e"
        " JOIN logpipe_pages p ON p.vhost = e.vhost AND p.path = e.path"
    )


def _counts_from_access_log(f: Filters) -> tuple[str, dict[str, Any]]:
    """Counts per page in access_log alone, named as the rollups name them ('' for none)."""
    params: dict[str, Any] = {}
    where = _raw_conditions(f, params)
    view_bytes = "coalesce(a.bytes, a.bytes_out)"
    counted = (
        "SELECT coalesce(a.vhost, '') AS vhost, coalesce(a.path, '') AS path,"
        f" count(*) FILTER (WHERE {VIEW}) AS views,"
        f" coalesce(sum({view_bytes}) FILTER (WHERE {VIEW}), 0)::bigint AS view_bytes,"
        f" count(*) AS hits, coalesce(sum({view_bytes}), 0)::bigint AS bytes"
        f" FROM access_log a WHERE {all_of(where)} GROUP BY 1, 2"
    )
    sql = ("SELECT k.vhost, n.path, n.asset, k.views, k.view_bytes, k.hits, k.bytes"
           f" FROM {classified(f'({counted}) k', 'k.path')}")
    return sql, params
