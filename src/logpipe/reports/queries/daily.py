"""SQL of broken-links, offenders, agents and referers from the daily summaries of
sql/050_daily_summaries.sql for the whole UTC days of the window whose
summary is up to date, and from access_log for the rest of the window (the partial
days at either end, today, days loaded late or not summarized yet).

The rows equal those of the live queries (reports/queries/clients.py, referers.py),
which remain the definitions: --source, --path for offenders and agents, and
`referers --path` for a path with referer counts of its own (a hot path) run those, as
does a database or role without the summaries.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from logpipe.messages import say
from logpipe.reports.catalog import PAGE_REPORTS
from logpipe.reports.filters import (
    Filters,
    all_of,
    conditions,
    limit_clause,
    resolve_times,
)
from logpipe.reports.queries.referers import FITS, REFERER_HOST, SAME_SITE, rows_with_referer
from logpipe.reports.queries.visitors import day_bounds

SUMMARY_REPORTS = ("broken-links", "offenders", "agents", "referers")
UTC = dt.timezone.utc

FRESH_DAYS_SQL = ("SELECT day, upto FROM logpipe_daily_state(%s, %s) WHERE fresh"
                  " ORDER BY day")
# for `referers --path`: the days whose summary has the path referers too
FRESH_PATH_DAYS_SQL = ("SELECT s.day, s.upto FROM logpipe_daily_state(%s, %s) s"
                       " JOIN logpipe_daily_days d ON d.day = s.day"
                       " WHERE s.fresh AND d.path_referers ORDER BY s.day")
# `referers --path`: read from its rows alone for a path with counts of its own (hot),
# or with fewer rows than this through the report index: those answer faster than
# the window's days (whose freshness alone costs ~40 ms over 30 days of 10M rows).
FEW_PATH_ROWS = 2000
# (a hot path's index entries are not counted: CASE evaluates the branch it takes)
ROWS_ALONE_SQL = (
    "SELECT CASE WHEN EXISTS (SELECT FROM logpipe_hot_paths WHERE path = %(path)s)"
    " THEN true ELSE (SELECT count(*) FROM (SELECT FROM access_log a"
    f" WHERE a.path = %(path)s AND a.referer IS NOT NULL AND {FITS} LIMIT %(rows)s) x)"
    " < %(rows)s END"
)
MAY_REFRESH_SQL = ("SELECT coalesce(has_function_privilege(to_regprocedure("
                   "'logpipe_daily_refresh(date, date)'), 'EXECUTE'), false)")
# how many days logpipe_daily_refresh() is about to summarize
STALE_DAYS_SQL = "SELECT count(*) FROM logpipe_daily_due(%s, %s)"


# A summarized day: the day, and the end of what its summary counts (the day's end, or
# an hour of the current day).
Span = tuple[dt.date, dt.datetime]


@dataclass
class Window:
    """The days read from the summaries (each from its start to its summary's end), and
    the time ranges [lo, hi) read from access_log (None: no bound), which together make
    the report's window."""

    days: list[dt.date] = field(default_factory=list)
    live: list[tuple[dt.datetime | None, dt.datetime | None]] = field(default_factory=list)


def served(name: str, f: Filters) -> bool:
    """Whether the summaries keep what the report's filters need."""
    if name not in SUMMARY_REPORTS or f.sources:
        return False
    return f.path is None or name in ("broken-links", "referers")


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def split_window(f: Filters, fresh: list[Span]) -> Window:
    """The fresh summaries wholly inside the window and after what was pruned, and the
    rest of the window as ranges of time."""
    spans = [(d, upto) for d, upto in sorted(fresh)
             if (f.since is None or day_start(d) >= f.since)
             and (f.until is None or upto <= f.until)
             and (f.pruned_before is None or day_start(d) >= f.pruned_before)]
    window = Window(days=[d for d, _ in spans])
    lo = f.since
    for d, upto in spans:
        if lo is None or lo < day_start(d):
            window.live.append((lo, day_start(d)))
        lo = upto
    if f.until is None or lo is None or lo < f.until:
        window.live.append((lo, f.until))
    return window


def read_summaries(cur: Any, sql: str, params: Any) -> list[tuple] | None:
    """The rows of a query over the summaries, or None where they cannot be read (a
    schema from before them or their newer columns, a role not granted them)."""
    import psycopg2.errors

    try:
        cur.execute(sql, params)  # autocommit: a refusal spoils nothing
    except (psycopg2.errors.UndefinedFunction, psycopg2.errors.UndefinedTable,
            psycopg2.errors.UndefinedColumn, psycopg2.errors.InsufficientPrivilege):
        if not cur.connection.autocommit:
            cur.connection.rollback()
        return None
    return cur.fetchall()


def fresh_days(cur: Any, f: Filters, sql: str = FRESH_DAYS_SQL) -> list[Span] | None:
    """The up-to-date days the window touches, or None where the summaries cannot be
    read (read_summaries)."""
    rows = read_summaries(cur, sql, day_bounds(f))
    return None if rows is None else [(day, upto) for day, upto in rows]


def summary_days(cur: Any, name: str, f: Filters) -> list[Span] | None:
    """The up-to-date days the report can read from the summaries, or None where the
    live query must run (filters the summaries do not keep, the referers of a hot path
    or of one with few rows, no summaries to read)."""
    if not served(name, f):
        return None
    if name == "referers" and f.path is not None:
        return None if read_alone(cur, f) else fresh_days(cur, f, FRESH_PATH_DAYS_SQL)
    return fresh_days(cur, f)


def read_alone(cur: Any, f: Filters) -> bool:
    """Whether `referers --path` reads the path's rows alone: a hot path, or one with
    fewer than FEW_PATH_ROWS in the report index."""
    cur.execute(ROWS_ALONE_SQL, {"path": f.path, "rows": FEW_PATH_ROWS})
    return bool(cur.fetchone()[0])


def query_daily(cur: Any, name: str, f: Filters) -> tuple[str, dict[str, Any]] | None:
    """The report's SQL over the summaries and access_log, or None where the live query
    must run (summary_days)."""
    fresh = summary_days(cur, name, f)
    if fresh is None:
        return None
    return BUILDERS[name](f, split_window(f, fresh))


def live_condition(window: Window, params: dict[str, Any]) -> str:
    """access_log AS a within the window's live ranges."""
    ranges = []
    for i, (lo, hi) in enumerate(window.live):
        bounds = []
        if lo is not None:
            bounds.append(f"a.time >= %(live_lo_{i})s")
            params[f"live_lo_{i}"] = lo
        if hi is not None:
            bounds.append(f"a.time < %(live_hi_{i})s")
            params[f"live_hi_{i}"] = hi
        ranges.append(f"({all_of(bounds)})")
    return f"({' OR '.join(ranges)})" if ranges else "false"


def summary_conditions(f: Filters, window: Window, params: dict[str, Any],
                       bot: str = "s.bot") -> list[str]:
    """WHERE conditions on a summary table AS s: its days and the filters."""
    params["days"] = window.days
    where = ["s.day = ANY (%(days)s::date[])"]
    if f.vhost is not None:
        where.append("s.vhost = %(vhost)s")
        params["vhost"] = f.vhost
    if f.path is not None:
        where.append("s.path = %(path)s")
        params["path"] = f.path
    if f.bots is True:
        where.append(bot)
    elif f.bots is False:
        where.append(f"NOT {bot}")
    return where


def live_conditions(f: Filters, window: Window, params: dict[str, Any]) -> list[str]:
    return [live_condition(window, params), *conditions(f, params, time=False)]


def query_agents(f: Filters, window: Window) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    summary = all_of(summary_conditions(f, window, params,
                                        bot="coalesce(s.is_bot, s.user_agent IS NULL)"))
    live = all_of(live_conditions(f, window, params))
    sql = (
        "SELECT u.user_agent, u.is_bot, sum(u.hits)::bigint AS hits,"
        " max(u.last_seen) AS last_seen"
        " FROM (SELECT s.user_agent, s.is_bot, s.hits, s.last_seen"
        f" FROM logpipe_daily_agents s WHERE {summary}"
        " UNION ALL SELECT a.user_agent, a.is_bot, count(*), max(a.time)"
        f" FROM access_log a WHERE {live} GROUP BY 1, 2) u"
        " GROUP BY 1, 2 ORDER BY hits DESC, u.user_agent, u.is_bot" + limit_clause(f, params)
    )
    return sql, params


# A text as the summaries' indexes key it (no btree entry holds a hostile value): the
# clients table by the address, logpipe_daily_path_referers by the path; rows found by
# the hash are then compared whole.
TEXT_HASH = "hashtextextended(coalesce({}, ''), 0)"

# A summary row AS s of a referer whose host is one of logpipe_site_hosts (the vhost's
# own host is in the row's `own`, or was left out): SAME_SITE's second half.
SITE_HOST = "coalesce(s.host = ANY (ARRAY(SELECT host FROM logpipe_site_hosts)), false)"


def query_referers(f: Filters, window: Window) -> tuple[str, dict[str, Any]]:
    """The summary rows are external unless their host is a site host (those of the
    vhost's own host were left out); the live rows are grouped per (vhost, referer) and
    tested as the live query does. With --path, the path's rows of both: the summary's
    by its index on the path's hash, access_log's through the report indexes."""
    params: dict[str, Any] = {}
    where = [*summary_conditions(f, window, params), f"NOT {SITE_HOST}"]
    live = ["a.referer IS NOT NULL", "a.referer <> ''", *live_conditions(f, window, params)]
    if f.path is None:
        table = "logpipe_daily_referers"
        rows = f"SELECT a.vhost, a.referer FROM access_log a WHERE {all_of(live)}"
    else:
        table = "logpipe_daily_path_referers"
        where.append(f"{TEXT_HASH.format('s.path')} = {TEXT_HASH.format('%(path)s')}")
        rows = rows_with_referer("a.vhost, a.referer", live, path_given=True)
    sql = (
        "SELECT u.referer, sum(u.hits)::bigint AS hits"
        f" FROM (SELECT s.referer, s.hits FROM {table} s WHERE {all_of(where)}"
        " UNION ALL SELECT g.referer, g.hits FROM (SELECT a.vhost, a.referer,"
        f" count(*) AS hits FROM ({rows}) a GROUP BY 1, 2) g {REFERER_HOST}"
        f" WHERE NOT {SAME_SITE}) u"
        " GROUP BY u.referer ORDER BY hits DESC, u.referer" + limit_clause(f, params)
    )
    return sql, params


def query_broken_links(f: Filters, window: Window) -> tuple[str, dict[str, Any]]:
    """Rows of the site's own referers only (tested per summary row, from its `own` and
    `host`), grouped by hashing with the statuses as bits (an aggregate that orders
    would need a sort of every row): the list is written for the rows shown."""
    params: dict[str, Any] = {}
    summary = all_of([*summary_conditions(f, window, params), f"(s.own OR {SITE_HOST})"])
    live = all_of(["a.status BETWEEN 400 AND 499", "a.referer IS NOT NULL",
                   "a.referer <> ''", *live_conditions(f, window, params)])
    ranked = (
        "SELECT u.vhost, u.referer, u.path, bit_or(u.statuses) AS statuses,"
        " sum(u.hits)::bigint AS hits, max(u.last_seen) AS last_seen"
        " FROM (SELECT s.vhost, s.referer, s.path, s.statuses, s.hits, s.last_seen"
        f" FROM logpipe_daily_broken s WHERE {summary}"
        " UNION ALL SELECT g.vhost, g.referer, g.path, g.statuses, g.hits, g.last_seen"
        " FROM (SELECT a.vhost, a.referer, a.path,"
        " bit_or(logpipe_status_bit(a.status)) AS statuses, count(*) AS hits,"
        f" max(a.time) AS last_seen FROM access_log a WHERE {live} GROUP BY 1, 2, 3) g"
        f" {REFERER_HOST} WHERE {SAME_SITE}) u"
        " GROUP BY 1, 2, 3 ORDER BY hits DESC, u.vhost, u.referer, u.path"
        + limit_clause(f, params)
    )
    sql = (
        "SELECT g.vhost, g.referer, g.path, logpipe_status_list(g.statuses) AS statuses,"
        f" g.hits, g.last_seen FROM ({ranked}) g"
        " ORDER BY g.hits DESC, g.vhost, g.referer, g.path"
    )
    return sql, params


def query_offenders(f: Filters, window: Window) -> tuple[str, dict[str, Any]]:
    """The hosts with errors, ranked (and cut to --limit) from the days they erred on
    and the live rows; then their requests on the other days, looked up host by host
    in logpipe_daily_clients."""
    params: dict[str, Any] = {}
    summary = all_of(summary_conditions(f, window, params))
    live = all_of(live_conditions(f, window, params))
    if not f.limit:  # every host with errors: add up every row, no lookups
        sql = (
            "SELECT u.remote_host, sum(u.errors)::bigint AS errors,"
            " sum(u.client_errors)::bigint AS client_errors,"
            " sum(u.server_errors)::bigint AS server_errors,"
            " sum(u.requests)::bigint AS requests, max(u.last_seen) AS last_seen"
            " FROM (SELECT s.remote_host, s.errors, s.client_errors, s.server_errors,"
            f" s.requests, s.last_seen FROM logpipe_daily_offenders s WHERE {summary}"
            " UNION ALL SELECT s.remote_host, 0, 0, 0, s.requests, s.last_seen"
            f" FROM logpipe_daily_clients s WHERE {summary}"
            " UNION ALL SELECT a.remote_host, count(*) FILTER (WHERE a.status >= 400),"
            " count(*) FILTER (WHERE a.status BETWEEN 400 AND 499),"
            " count(*) FILTER (WHERE a.status >= 500), count(*), max(a.time)"
            f" FROM access_log a WHERE {live} GROUP BY a.remote_host) u"
            " GROUP BY u.remote_host HAVING sum(u.errors) > 0"
            " ORDER BY errors DESC, u.remote_host"
        )
        return sql, params
    sql = (
        "WITH live AS MATERIALIZED (SELECT a.remote_host,"
        " count(*) FILTER (WHERE a.status >= 400) AS errors,"
        " count(*) FILTER (WHERE a.status BETWEEN 400 AND 499) AS client_errors,"
        " count(*) FILTER (WHERE a.status >= 500) AS server_errors,"
        " count(*) AS requests, max(a.time) AS last_seen"
        f" FROM access_log a WHERE {live} GROUP BY a.remote_host),"
        " err AS MATERIALIZED (SELECT e.remote_host, sum(e.errors)::bigint AS errors,"
        " sum(e.client_errors)::bigint AS client_errors,"
        " sum(e.server_errors)::bigint AS server_errors, sum(e.requests) AS requests,"
        " max(e.last_seen) AS last_seen"
        " FROM (SELECT s.remote_host, s.errors, s.client_errors, s.server_errors,"
        f" s.requests, s.last_seen FROM logpipe_daily_offenders s WHERE {summary}"
        " UNION ALL SELECT * FROM live l WHERE l.errors > 0) e"
        " GROUP BY e.remote_host ORDER BY errors DESC, e.remote_host"
        + limit_clause(f, params) + "),"
        " rest AS (SELECT l.remote_host, l.requests, l.last_seen FROM live l"
        " JOIN err e ON (l.remote_host IS NULL) = (e.remote_host IS NULL)"
        " AND coalesce(l.remote_host, '') = coalesce(e.remote_host, '') WHERE l.errors = 0"
        " UNION ALL SELECT s.remote_host, s.requests, s.last_seen"
        f" FROM err e JOIN logpipe_daily_clients s ON {TEXT_HASH.format('s.remote_host')}"
        f" = {TEXT_HASH.format('e.remote_host')}"
        " AND s.remote_host IS NOT DISTINCT FROM e.remote_host"
        f" WHERE {summary})"
        " SELECT e.remote_host, e.errors, e.client_errors, e.server_errors,"
        " (e.requests + coalesce(x.requests, 0))::bigint AS requests,"
        " greatest(e.last_seen, x.last_seen) AS last_seen"
        " FROM err e LEFT JOIN (SELECT r.remote_host IS NULL AS unknown,"
        " coalesce(r.remote_host, '') AS host, sum(r.requests) AS requests,"
        " max(r.last_seen) AS last_seen FROM rest r GROUP BY 1, 2) x"
        " ON x.unknown = (e.remote_host IS NULL) AND x.host = coalesce(e.remote_host, '')"
        " ORDER BY e.errors DESC, e.remote_host"
    )
    return sql, params


BUILDERS = {
    "agents": query_agents,
    "referers": query_referers,
    "broken-links": query_broken_links,
    "offenders": query_offenders,
}


def refresh_days(conn: Any, since: Any, until: Any) -> None:
    """Summarize the whole past days of the window (--since/--until as given) that have
    no up-to-date summary (logpipe_daily_refresh), where this role may (the owner, or a
    role granted EXECUTE on it); a reader's report counts them from access_log instead."""
    with conn.cursor() as cur:
        cur.execute(MAY_REFRESH_SQL)
        if cur.fetchone()[0]:
            low, high = resolve_times(cur, since, until)
            first, end = day_bounds(Filters(since=low, until=high))
            cur.execute(STALE_DAYS_SQL, (first, end))
            stale = cur.fetchone()[0]
            if stale > 1:  # a wait worth explaining: ~9 s per million rows, once
                say(f"note: summarizing the requests of {stale} days, once; later reports "
                    "over them read the summaries")
            cur.execute("SELECT logpipe_daily_refresh(%s, %s)", (first, end))
    conn.commit()


def refresh_for(conn: Any, args: argparse.Namespace, filters: Filters) -> None:
    """refresh_days for a `logpipe report NAME` command line whose filters the summaries
    serve (not `referers --path` of a path read alone); for the page reports, the days
    their window takes part of (the page hours of logpipe_daily_page_hours: one day's
    summary ~3 s per 300,000 rows, once)."""
    if served(args.name, filters):
        if args.name == "referers" and filters.path is not None:
            with conn.cursor() as cur:
                if read_alone(cur, filters):  # the summaries would go unread
                    conn.commit()
                    return
        refresh_days(conn, args.since, args.until)
    elif args.name in PAGE_REPORTS and not filters.per_source:
        refresh_edges(conn, args.since, args.until)


def refresh_edges(conn: Any, since: Any, until: Any) -> None:
    """Summarize the past UTC days the window begins or ends within, where this role may
    and their summary is not up to date (logpipe_daily_refresh). Not today, which the
    writer summarizes hourly: a report would wait for it at every new hour."""
    today = dt.datetime.now(UTC).date()
    with conn.cursor() as cur:
        cur.execute(MAY_REFRESH_SQL)
        if cur.fetchone()[0]:
            for moment in resolve_times(cur, since, until):
                utc = None if moment is None else moment.astimezone(UTC)
                if utc is not None and utc.timetz() != dt.time(0, tzinfo=UTC) \
                        and utc.date() < today:
                    cur.execute("SELECT logpipe_daily_refresh(%s, %s)",
                                (utc.date(), utc.date() + dt.timedelta(days=1)))
    conn.commit()
