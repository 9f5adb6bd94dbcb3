"""SQL of the reports on referers: external ones (referers) and the links on the site's
own pages that answer 4xx (broken-links)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from logpipe.reports.filters import Filters, all_of, conditions, limit_clause

# The referer's host is tested once per distinct (vhost, referer), after grouping: the
# LATERAL subquery with OFFSET 0 keeps PostgreSQL from pushing the test down to every
# row. Same test as logpipe_same_site() in sql/020_reports.sql.
SITE_HOST = "r.host = ANY (ARRAY(SELECT host FROM logpipe_site_hosts))"
SAME_SITE = f"coalesce(r.host = logpipe_host(g.vhost) OR {SITE_HOST}, false)"
REFERER_HOST = "CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r"
# For `referers`, whose rows g may say already whether the referer is external
# (g.external, from a hot path's counts, which keep the referer's host): the host of the
# others only, and the test.
UNKNOWN_HOST = ("CROSS JOIN LATERAL (SELECT CASE WHEN g.external IS NULL"
                " THEN logpipe_url_host(g.referer) END AS host OFFSET 0) r")
EXTERNAL = f"coalesce(g.external, NOT {SAME_SITE})"

# The conditions of the two report indexes (sql/010_indexes.sql), word for word, so that
# the planner sees each branch's index as usable: rows whose entry fits a btree entry
# are in access_log_path_referers, the others (a hostile client's 8 KB path or
# referer) in access_log_oversize_referers, keyed on left(path, 500).
ENTRY_BYTES = ("octet_length(coalesce(a.path, '')) + octet_length(coalesce(a.vhost, ''))"
               " + octet_length(a.referer)")
FITS = f"{ENTRY_BYTES} <= 2400"
OVERSIZE = f"{ENTRY_BYTES} > 2400"


def rows_with_referer(columns: str, where: list[str], path_given: bool) -> str:
    """access_log's rows AS a that have a referer and meet `where`, as `columns`: a
    UNION ALL over the two report indexes. `where` must include "a.referer IS NOT NULL";
    with `path_given` it compares a.path with %(path)s, which the oversize branch looks
    up by its index key first."""
    oversize = [*where, OVERSIZE]
    if path_given:
        oversize.append("left(a.path, 500) = left(%(path)s, 500)")
    return (f"SELECT {columns} FROM access_log a WHERE {all_of([*where, FITS])}"
            f" UNION ALL SELECT {columns} FROM access_log a WHERE {all_of(oversize)}")


HOUR = dt.timedelta(hours=1)


def hour_floor(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour `moment` falls in (logpipe_hour in sql/020_reports.sql)."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: dt.datetime) -> dt.datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def hot_path_window(f: Filters, params: dict[str, Any]) -> tuple[str | None, str | None]:
    """For a hot path and a time window: the condition on an hour `r.hour` of the whole
    hours inside the window (None for all time), and the condition on access_log AS a
    for the partial hour at either end (None when there is none)."""
    if f.since is None and f.until is None:
        return None, None
    first = None if f.since is None else hour_ceil(f.since)
    last = None if f.until is None else hour_floor(f.until)
    if first is not None and last is not None and first >= last:  # no whole hour inside
        return "false", "a.time >= %(since)s AND a.time < %(until)s"
    hours, edges = [], []
    if first is not None:
        hours.append("r.hour >= %(first_hour)s")
        params["first_hour"] = first
        if first != f.since:
            edges.append("a.time >= %(since)s AND a.time < %(first_hour)s")
    if last is not None:
        hours.append("r.hour < %(last_hour)s")
        params["last_hour"] = last
        if last != f.until:
            edges.append("a.time >= %(last_hour)s AND a.time < %(until)s")
    return all_of(hours), " OR ".join(f"({edge})" for edge in edges) or None


# Fewer hours inside the window than outside it (over the hours the path's hourly counts
# span): add up the hours inside, else take the hours outside from the all-time counts.
# A one-time filter: only one of the two is read.
INSIDE_IS_LESS = (
    "(SELECT coalesce(least(coalesce(%(last_hour)s::timestamptz, max(r.hour)), max(r.hour))"
    " - greatest(coalesce(%(first_hour)s::timestamptz, min(r.hour)), min(r.hour))"
    " <= (max(r.hour) - min(r.hour)) / 2, true)"
    " FROM logpipe_path_referers_hourly r WHERE r.path = %(path)s)"
)
# With whether the referer is external, from its stored host and own flag (NULL for a
# row from before those: tested as the report runs, like the other rows).
ROLLUP_COLUMNS = ("r.vhost, r.referer, r.hits, r.bot_hits,"
                  f" NOT (r.own OR coalesce({SITE_HOST}, false)) AS external")
# the same of rows grouped per (vhost, referer), added up, or taken away
SUMMED_COLUMNS = ("r.vhost, r.referer, sum(r.hits)::bigint AS hits,"
                  " sum(r.bot_hits)::bigint AS bot_hits, NULL::boolean AS external")
NEGATED_SUMS = ("r.vhost, r.referer, -sum(r.hits)::bigint AS hits,"
                " -sum(r.bot_hits)::bigint AS bot_hits, NULL::boolean AS external")


def hot_path_counts(where: str, inside: str | None) -> str:
    """The rows (vhost, referer, hits, bot_hits) of logpipe_path_referers* AS r and the
    pending counts, each meeting `where` (the path, the vhost), that add up to a hot
    path's referers over the whole hours `inside` (all time for None). The rows of the
    all-time counts are one per (vhost, referer) already; the hourly and pending ones,
    one per hour, are added up per (vhost, referer) here, so that no more rows than
    that go on to have their referer's host found."""
    pending = "logpipe_pending_referers r"
    if inside is None:
        return (f"SELECT {ROLLUP_COLUMNS} FROM logpipe_path_referers r WHERE {where}"
                f" UNION ALL SELECT {SUMMED_COLUMNS} FROM {pending} WHERE {where}"
                " GROUP BY 1, 2")
    hourly = "logpipe_path_referers_hourly r"
    # The hours inside are read or not by a LIMIT of none or 0, not by a one-time filter,
    # which the planner puts under a parallel scan's Gather: that would start its
    # workers (~10 ms) to find nothing to do.
    return (f"(SELECT {SUMMED_COLUMNS} FROM {hourly} WHERE {where} AND {inside}"
            f" GROUP BY 1, 2 LIMIT CASE WHEN {INSIDE_IS_LESS} THEN NULL ELSE 0 END)"
            f" UNION ALL SELECT {ROLLUP_COLUMNS} FROM logpipe_path_referers r"
            f" WHERE {where} AND NOT {INSIDE_IS_LESS}"
            f" UNION ALL SELECT {NEGATED_SUMS} FROM {hourly}"
            f" WHERE {where} AND NOT ({inside}) AND NOT {INSIDE_IS_LESS} GROUP BY 1, 2"
            f" UNION ALL SELECT {SUMMED_COLUMNS} FROM {pending} WHERE {where} AND {inside}"
            " GROUP BY 1, 2")


def query_referers(f: Filters) -> tuple[str, dict[str, Any]]:
    """Requests per (vhost, referer) from the report indexes, or, for a hot path, from
    its referer counts (sql/020_reports.sql: all-time and hourly, plus what is pending)
    and, for a time window, from access_log for the partial hour at either end; the
    EXISTS tests are one-time filters, so only one of the two is read."""
    params: dict[str, Any] = {}
    where = ["a.referer IS NOT NULL", "a.referer <> ''", *conditions(f, params)]
    hot_part = ""
    kept = f" WHERE {EXTERNAL} AND g.hits > 0 GROUP BY g.referer"
    # the referer rollup has no sources: --source reads access_log
    if f.path is not None and not f.sources:
        hot = "EXISTS (SELECT FROM logpipe_hot_paths WHERE path = %(path)s)"
        counted = {None: "r.hits", True: "r.bot_hits", False: "r.hits - r.bot_hits"}[f.bots]
        params.setdefault("first_hour", None)
        params.setdefault("last_hour", None)
        inside, edges = hot_path_window(f, params)
        rollup_where = [hot, "r.path = %(path)s"]
        if f.vhost is not None:
            rollup_where.append("r.vhost = %(vhost)s")
        if inside != "false":  # some whole hour inside the window, or all time
            counts = hot_path_counts(all_of(rollup_where), inside)
            hot_part = (f"SELECT nullif(r.vhost, '') AS vhost, r.referer, {counted} AS hits,"
                        f" r.external FROM ({counts}) r UNION ALL ")
        # Added up below only, per referer, not first per (vhost, referer) (25,000 rows
        # for the most requested page: ~20 ms); some rows are below zero (the hours
        # outside a window, rows deleted). A (vhost, referer)'s counts add up to its
        # requests, never below zero, so a referer's sum is above zero exactly when one
        # of its (vhost, referer)'s is.
        kept = f" WHERE {EXTERNAL} GROUP BY g.referer HAVING sum(g.hits) > 0"
        if edges is not None:
            # Through the time index alone: `path || ''` keeps the planner off the path
            # index, which holds every request of a hot path (hundreds of thousands).
            edge_where = ["a.referer IS NOT NULL", "a.referer <> ''", hot, f"({edges})",
                          *[c.replace("a.path =", "a.path || '' =")
                            for c in conditions(f, params, time=False)]]
            hot_part += (f"SELECT a.vhost, a.referer, count(*) AS hits, NULL::boolean AS external"
                         " FROM access_log a"
                         f" WHERE {all_of(edge_where)} GROUP BY a.vhost, a.referer UNION ALL ")
        where.append(f"NOT {hot}")
    rows = rows_with_referer("a.vhost, a.referer", where, f.path is not None)
    sql = (
        "SELECT g.referer, sum(g.hits)::bigint AS hits"
        f" FROM ({hot_part}SELECT a.vhost, a.referer, count(*) AS hits,"
        f" NULL::boolean AS external FROM ({rows}) a"
        f" GROUP BY a.vhost, a.referer) g {UNKNOWN_HOST}{kept}"
        " ORDER BY hits DESC, g.referer" + limit_clause(f, params)
    )
    return sql, params


def query_broken_links(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    where = ["a.status BETWEEN 400 AND 499", "a.referer IS NOT NULL", "a.referer <> ''",
             *conditions(f, params)]
    rows = rows_with_referer("a.vhost, a.referer, a.path, a.status, a.time", where,
                             f.path is not None)
    sql = (
        "SELECT g.vhost, g.referer, g.path, g.statuses, g.hits, g.last_seen"
        " FROM (SELECT a.vhost, a.referer, a.path,"
        " string_agg(DISTINCT a.status::text, ',' ORDER BY a.status::text) AS statuses,"
        f" count(*) AS hits, max(a.time) AS last_seen FROM ({rows}) a"
        f" GROUP BY a.vhost, a.referer, a.path) g {REFERER_HOST}"
        f" WHERE {SAME_SITE}"
        " ORDER BY g.hits DESC, g.vhost, g.referer, g.path" + limit_clause(f, params)
    )
    return sql, params
