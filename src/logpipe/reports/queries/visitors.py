"""SQL of the visitor reports: visitors (per day or hour), countries and channels.

Each reads the daily summaries of sql/030_visitors.sql for the whole UTC days whose
summary is up to date, and counts the rest from access_log as it runs (the days at
either end of --since/--until, days loaded late), through logpipe_visit_rows() and
logpipe_visit_starts(), the one definition of visitors and visits. Today (and a day
just ended) reads the summary of its whole hours and counts only the hours since, with
logpipe_visit_tail(); countries and visitors count the visitors of the day --since
cuts from their last request (logpipe_visit_lasts), its whole hours from its summary;
channels count the visits begun in its whole hours from theirs
(logpipe_visit_channels_hourly), the hour cut from access_log, with the visits that
continue across the next hour (logpipe_visit_crossings).
--path and --source count everything from access_log: the summaries keep neither.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from typing import Any

from logpipe.messages import say
from logpipe.reports.filters import Filters, limit_clause, resolve_times
from logpipe.reports.queries.visitor_cuts import cut_channels, cut_visitors

DEFAULT_GAP = 1800  # seconds: a visit ends after 30 minutes without a request
# the longest gap with which a visit continuing across an hour's start has a request in
# that hour: logpipe_visit_crossings holds all of them only then (and is made only then)
MAX_CROSSING_GAP = 3600
UTC = dt.timezone.utc

# the reports of this module: each one's summary table, columns and grouping
VISIT_REPORTS = ("visitors", "countries", "channels")


@dataclass(frozen=True)
class Shape:
    """One report: what it takes from its summary table (AS v) and from the rows (or
    visits) counted live (AS p, from `live`), grouped by its leading `keys` columns."""

    table: str
    live: str  # logpipe_visit_rows or logpipe_visit_starts
    from_summary: str
    from_pieces: str
    keys: int
    outer: str  # the select list over the union (AS u)
    order: str
    summary_group: str = ""  # GROUP BY of the summary's rows, before the union


def _visitors_shape(by: str) -> Shape:
    if by == "hour":
        period = "(u.day::timestamp AT TIME ZONE 'UTC') + u.hour * interval '1 hour' AS hour"
        return Shape(
            table="logpipe_visit_hourly",
            live="logpipe_visit_rows",
            from_summary="v.day, v.hour, v.vhost, v.visitors, v.visits, v.hits",
            from_pieces="p.day, p.hour, p.vhost,"
            " count(*) FILTER (WHERE p.first_of_hour) AS visitors,"
            " count(*) FILTER (WHERE p.visit_start) AS visits, count(*) AS hits",
            keys=3,
            outer=f"{period}, u.vhost, sum(u.visitors)::bigint AS visitors,"
            " sum(u.visits)::bigint AS visits, sum(u.hits)::bigint AS hits",
            order="1, 2",
        )
    return Shape(
        table="logpipe_visit_daily",
        live="logpipe_visit_rows",
        from_summary="v.day, v.vhost, v.visitors, v.visits, v.hits",
        from_pieces="p.day, p.vhost, count(*) FILTER (WHERE p.first_of_day) AS visitors,"
        " count(*) FILTER (WHERE p.visit_start) AS visits, count(*) AS hits",
        keys=2,
        outer="u.day, u.vhost, sum(u.visitors)::bigint AS visitors,"
        " sum(u.visits)::bigint AS visits, sum(u.hits)::bigint AS hits",
        order="1, 2",
    )


COUNTRIES = Shape(
    table="logpipe_visit_countries",
    live="logpipe_visit_rows",
    from_summary="v.country, v.visitors, v.hits",
    from_pieces="p.country, count(*) FILTER (WHERE p.first_of_day) AS visitors,"
    " count(*) AS hits",
    keys=1,
    outer="u.country, sum(u.visitors)::bigint AS visitors, sum(u.hits)::bigint AS hits",
    order="visitors DESC, hits DESC, country",
)

# Channels: the live part groups the visits by vhost and the host of their first
# referer, so that each distinct host is classified once (logpipe_host_channel).
CHANNELS = Shape(
    table="logpipe_visit_channels",
    live="logpipe_visit_starts",
    # a month holds ~300k (day, source) rows: summed apart, by hash, they cost half
    from_summary='v.channel COLLATE "C" AS channel, v.source COLLATE "C" AS source,'
    ' sum(v.visits) AS visits, sum(v.hits) AS hits',
    summary_group=" GROUP BY 1, 2",

    from_pieces="p.vhost, logpipe_url_host(p.referer) AS host, count(*) AS visits,"
    " sum(p.hits) AS hits",
    keys=2,
    # byte order ("C") groups the many sources (every referring host) fastest
    outer='u.channel COLLATE "C" AS channel, u.source COLLATE "C" AS source,'
    " sum(u.visits)::bigint AS visits, sum(u.hits)::bigint AS hits",
    order="visits DESC, hits DESC, channel, source",
)


MAY_REFRESH_SQL = ("SELECT coalesce(has_function_privilege(to_regprocedure("
                   "'logpipe_visits_refresh(integer, date, date)'), 'EXECUTE'), false),"
                   " coalesce(has_function_privilege(to_regprocedure("
                   "'logpipe_visits_refresh_hours(integer, timestamptz)'), 'EXECUTE'), false)")
# the past days logpipe_visits_refresh() would summarize
STALE_DAYS_SQL = ("SELECT count(*) FROM logpipe_visit_day_state(%s, %s, %s)"
                  " WHERE NOT fresh AND day < (now() AT TIME ZONE 'UTC')::date")
GAP_UNITS = {"s": 1, "m": 60, "h": 3600}


def visit_gap(text: str) -> int:
    """--visit-gap: 30m, 1h, 900s or 900 (seconds), from 1 second to a day."""
    value = text.strip().lower()
    unit = GAP_UNITS.get(value[-1:], 0)
    try:
        seconds = int(float(value[:-1] if unit else value) * (unit or 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use e.g. 30m, 1h or 900s)") from None
    if not 1 <= seconds <= 86_400:
        raise argparse.ArgumentTypeError(
            f"--visit-gap must be from 1s to 24h (a visit never spans two days): {text!r}")
    return seconds


def refresh_visits(conn: Any, args: argparse.Namespace, filters: Filters) -> None:
    """Summarize the whole past days of the report's window that have no up-to-date
    summary for its gap (logpipe_visits_refresh), where this role may (the owner, or a
    role granted EXECUTE on it); a reader's report counts them from access_log instead."""
    with conn.cursor() as cur:
        cur.execute(MAY_REFRESH_SQL)
        days, hours = cur.fetchone()
        if days:
            since, until = resolve_times(cur, args.since, args.until)
            first, end = day_bounds(Filters(since=since, until=until))
            cur.execute(STALE_DAYS_SQL, (first, end, gap_of(filters)))
            stale = cur.fetchone()[0]
            if stale > 1:  # a wait worth explaining: ~3 s per million rows, once
                say(f"note: summarizing the visits of {stale} days, once; later reports "
                    "over them read the summaries")
            cur.execute("SELECT logpipe_visits_refresh(%s, %s, %s)",
                        (gap_of(filters), first, end))
            today = dt.datetime.now(UTC).date()
            if hours and (end is None or end > today):  # today's hours (the writer's too)
                cur.execute("SELECT logpipe_visits_refresh_hours(%s)", (gap_of(filters),))
    conn.commit()


def query_visitors(f: Filters) -> tuple[str, dict[str, Any]]:
    return _query(_visitors_shape(f.by), f)


def query_countries(f: Filters) -> tuple[str, dict[str, Any]]:
    return _query(COUNTRIES, f)


def query_channels(f: Filters) -> tuple[str, dict[str, Any]]:
    return _query(CHANNELS, f)


def gap_of(f: Filters) -> int:
    return f.visit_gap or DEFAULT_GAP


def day_bounds(f: Filters) -> tuple[dt.date | None, dt.date | None]:
    """The UTC days the window touches: [first, end), None where it is open."""
    first = end = None
    if f.since is not None:
        first = f.since.astimezone(UTC).date()
    if f.until is not None:
        last = f.until.astimezone(UTC)
        end = last.date() + dt.timedelta(days=0 if last.timetz() == dt.time(0, tzinfo=UTC)
                                          else 1)
    return first, end


def _query(shape: Shape, f: Filters) -> tuple[str, dict[str, Any]]:
    """One report's query: per UTC day of the window, the summary (whole days, today's
    hours), the hours since from access_log, the day --since cuts (visitor_cuts.py) and
    the days counted live, as one UNION ALL. Long because those pieces share one `days`
    CTE and the same conditions (which day is whole, which cut), which must stay
    exclusive: built side by side, a day is never counted twice or not at all."""
    first, end = day_bounds(f)
    params: dict[str, Any] = {
        "gap": gap_of(f), "d0": first, "d1": end, "since": f.since, "until": f.until,
        "vhost": f.vhost, "sources": list(f.sources) or None, "path": f.path,
    }
    # the summaries keep no paths and no sources
    summary = f.path is None and not f.sources
    whole = ["s.fresh"]  # days counted from the summary: up to date, and whole in the window
    # today (or a day just ended): its summarized hours, then its rows from upto counted
    # with logpipe_visit_state (logpipe_visit_tail), when the window holds both whole
    pre = ["NOT s.fresh", "s.upto IS NOT NULL"]
    if f.since is not None:
        whole.append("s.day::timestamp AT TIME ZONE 'UTC' >= %(since)s")
        pre.append("s.day::timestamp AT TIME ZONE 'UTC' >= %(since)s")
    if f.until is not None:
        whole.append("(s.day + 1)::timestamp AT TIME ZONE 'UTC' <= %(until)s")
        pre.append("s.upto <= %(until)s")
    whole_sql = " AND ".join(whole) if summary else "false"
    pre_sql = " AND ".join(pre) if summary else "false"
    # the window's first day, cut by --since, from its summary: countries and visitors
    # with logpipe_visit_lasts, channels with logpipe_visit_crossings (only with a gap of
    # up to an hour, see sql/030_visitors.sql); otherwise from access_log
    cut_sql = "false"
    if summary and f.since is not None and (shape is not CHANNELS
                                            or gap_of(f) <= MAX_CROSSING_GAP):
        cut_sql = ("s.fresh AND s.cut_ready"
                   " AND s.day::timestamp AT TIME ZONE 'UTC' < %(since)s"
                   + ("" if f.until is None
                      else " AND (s.day + 1)::timestamp AT TIME ZONE 'UTC' <= %(until)s"))
    bot = {None: "true", True: "{a}.bot", False: "NOT {a}.bot"}[f.bots]
    row_bot = {None: "true", True: "", False: "NOT "}[f.bots]  # an access_log row's
    if f.bots is not None:
        row_bot += "coalesce(a.is_bot, a.user_agent IS NULL)"
    groups = ", ".join(str(i) for i in range(1, shape.keys + 1))
    day_end = "least((s.day + 1)::timestamp AT TIME ZONE 'UTC', %(until)s)"

    # cut_ready: the first day has the pieces its cut needs (a day summarized by an
    # older version lacks them)
    ready = " false"
    if cut_sql != "false" and shape is CHANNELS:
        ready = (" s.day = %(d0)s AND EXISTS (SELECT FROM logpipe_visit_channels_hourly c"
                 " WHERE c.gap = %(gap)s AND c.day = s.day)")
    elif cut_sql != "false":
        ready = (" EXISTS (SELECT FROM logpipe_visit_lasts l WHERE l.gap = %(gap)s"
                 " AND l.day = s.day) AND NOT EXISTS (SELECT FROM logpipe_visit_lasts l"
                 " WHERE l.gap = %(gap)s AND l.day = s.day AND l.varies"
                 " AND l.last_time >= %(since)s)")
    ctes = [
        (f"days AS MATERIALIZED (SELECT s.day, s.fresh, p.upto,{ready} AS cut_ready"
         " FROM logpipe_visit_day_state(%(d0)s, %(d1)s, %(gap)s) s"
         " LEFT JOIN logpipe_visit_prefix_state(%(d0)s, %(d1)s, %(gap)s) p ON p.day = s.day)")
    ]
    parts = []
    if summary:
        where = ["v.gap = %(gap)s", bot.format(a="v")]
        if f.vhost is not None:
            where.append("v.vhost = %(vhost)s")
        parts.append(f"SELECT {shape.from_summary} FROM {shape.table} v"
                     f" JOIN days s ON s.day = v.day AND (({whole_sql}) OR ({pre_sql}))"
                     f" WHERE {' AND '.join(where)}{shape.summary_group}")
    live = (
        f"SELECT {shape.from_pieces} FROM days s CROSS JOIN LATERAL {shape.live}("
        "greatest(s.day::timestamp AT TIME ZONE 'UTC', %(since)s),"
        f" {day_end}, %(gap)s, %(vhost)s, %(sources)s, %(path)s) p"
        f" WHERE NOT ({whole_sql}) AND NOT ({pre_sql}) AND NOT ({cut_sql})"
        f" AND {bot.format(a='p')} GROUP BY {groups}"
    )
    tail = (f"FROM days s CROSS JOIN LATERAL {{fn}}(s.day, s.upto, {day_end}, %(gap)s,"
            f" %(vhost)s) p WHERE ({pre_sql}) AND {bot.format(a='p')}")
    if shape is CHANNELS:
        live = ("SELECT c.channel, c.source, g.visits, g.hits"
                f" FROM ({live}) g CROSS JOIN LATERAL logpipe_host_channel(g.host,"
                " g.vhost) c")
        if summary:
            ctes.append("tail AS MATERIALIZED (SELECT p.* "
                        + tail.format(fn="logpipe_visit_tail_starts") + ")")
            # visits begun after upto, and the requests that continue one of the prefix
            parts.append("SELECT c.channel, c.source, g.visits, g.hits FROM ("
                         "SELECT p.vhost, logpipe_url_host(p.referer) AS host,"
                         " count(*) AS visits, sum(p.hits) AS hits FROM tail p"
                         " WHERE NOT p.continued GROUP BY 1, 2) g"
                         " CROSS JOIN LATERAL logpipe_host_channel(g.host, g.vhost) c")
            parts.append("SELECT p.channel, p.source, 0, sum(p.hits) FROM tail p"
                         " WHERE p.continued GROUP BY 1, 2")
    elif summary:
        parts.append(f"SELECT {shape.from_pieces} "
                     + tail.format(fn="logpipe_visit_tail") + f" GROUP BY {groups}")
    if cut_sql != "false" and shape is CHANNELS:
        cut_ctes, cut_parts = cut_channels(f, params, cut_sql, bot)
        ctes += cut_ctes
        parts += cut_parts
    elif cut_sql != "false" and shape is not COUNTRIES:
        parts += cut_visitors(shape.table == "logpipe_visit_hourly", f, params,
                              cut_sql, bot)
    elif cut_sql != "false":
        # visitors whose last request of the day is in the window; requests counted
        vhost_l = "" if f.vhost is None else " AND l.vhost = %(vhost)s"
        vhost_a = "" if f.vhost is None else " AND a.vhost = %(vhost)s"
        parts.append("SELECT l.country, count(*), 0 FROM days s JOIN logpipe_visit_lasts l"
                     " ON l.gap = %(gap)s AND l.day = s.day AND l.last_time >= %(since)s"
                     f"{vhost_l} WHERE {cut_sql} AND {bot.format(a='l')} GROUP BY 1")
        # its requests in the window: from access_log, or, when --since falls in the
        # first half of the day, the day's from its summary less those before --since
        assert f.since is not None
        since = f.since.astimezone(UTC)
        early = since - since.replace(hour=0, minute=0, second=0, microsecond=0) \
            <= dt.timedelta(hours=12)
        rows = ("a.time >= s.day::timestamp AT TIME ZONE 'UTC' AND a.time < %(since)s"
                if early else "a.time >= %(since)s AND a.time < (s.day + 1)::timestamp"
                " AT TIME ZONE 'UTC'")
        parts.append(f"SELECT x.country, 0, {'-' if early else ''}x.hits FROM days s"
                     " CROSS JOIN LATERAL (SELECT a.country, count(*) AS hits"
                     f" FROM access_log a WHERE {rows}{vhost_a} AND {row_bot} GROUP BY 1) x"
                     f" WHERE {cut_sql}")
        if early:
            parts.append("SELECT v.country, 0, v.hits FROM days s JOIN logpipe_visit_countries"
                         " v ON v.gap = %(gap)s AND v.day = s.day"
                         + ("" if f.vhost is None else " AND v.vhost = %(vhost)s")
                         + f" WHERE {cut_sql} AND {bot.format(a='v')}")
    parts.append(live)
    keys = groups
    if shape.table == "logpipe_visit_hourly":
        keys = "u.day, u.hour, u.vhost"
    sql = (
        f"WITH {', '.join(ctes)}"
        f" SELECT {shape.outer} FROM ({' UNION ALL '.join(parts)}) u"
        f" GROUP BY {keys} HAVING sum(u.hits) > 0 ORDER BY {shape.order}"
        + limit_clause(f, params)
    )
    return sql, params
