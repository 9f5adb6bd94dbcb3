"""SQL of the visitor reports for the day --since cuts inside a summarized day: only the
hour --since falls in is read from access_log (sql/030_visitors.sql)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from logpipe.reports.filters import Filters

UTC = dt.timezone.utc


def cut_visitors(by_hour: bool, f: Filters, params: dict[str, Any], cut_sql: str,
                 bot: str) -> list[str]:
    """visitors (by day or hour) on the day --since cuts, with a summary: its visitors
    from their last request (logpipe_visit_lasts; by hour, those of its whole hours
    from the summary); the visits that began in its whole hours, and their requests,
    from the summary; from access_log only the rows of the hour --since falls in (and
    a gap before: a visit it cuts begins at its first request in the window)."""
    cut_hour(f, params)
    vhost_v = "" if f.vhost is None else " AND v.vhost = %(vhost)s"
    parts = [
        "SELECT v.day," + (" v.hour," if by_hour else "") + " v.vhost,"
        + (" v.visitors," if by_hour else " 0,") + " v.visits, v.hits"
        " FROM days s JOIN logpipe_visit_hourly v ON v.gap = %(gap)s AND v.day = s.day"
        f" AND v.hour >= %(cut_h)s{vhost_v} WHERE {cut_sql} AND {bot.format(a='v')}",
    ]
    if not by_hour:
        parts.append("SELECT l.day, l.vhost, count(*), 0, 0 FROM days s"
                     " JOIN logpipe_visit_lasts l ON l.gap = %(gap)s AND l.day = s.day"
                     " AND l.last_time >= %(since)s"
                     + ("" if f.vhost is None else " AND l.vhost = %(vhost)s")
                     + f" WHERE {cut_sql} AND {bot.format(a='l')} GROUP BY 1, 2")
    # k: the row's place among its visitor's rows in the window
    rows = (
        "SELECT p.*, count(*) FILTER (WHERE p.time >= %(since)s) OVER (PARTITION BY"
        ' p.visitor, p.vhost COLLATE "C", p.remote_host COLLATE "C",'
        ' p.user_agent COLLATE "C" ORDER BY p.time, p.referer COLLATE "C"'
        " ROWS UNBOUNDED PRECEDING) AS k"
        " FROM days s CROSS JOIN LATERAL logpipe_visit_rows("
        "%(since)s - %(gap)s * interval '1 second', least((s.day + 1)::timestamp"
        " AT TIME ZONE 'UTC', greatest(%(cut_hour)s, %(since)s + %(gap)s"
        " * interval '1 second')), %(gap)s, %(vhost)s) p"
        f" WHERE {cut_sql}"
    )
    # a visit begins in the window at its first request there; those of the whole
    # hours that begin a visit of the day are in the summary
    parts.append(
        "SELECT p.day," + (" p.hour," if by_hour else "") + " p.vhost,"
        + (" count(*) FILTER (WHERE p.k = 1 AND p.time < %(cut_hour)s),"
           if by_hour else " 0,")
        + " count(*) FILTER (WHERE CASE WHEN p.time < %(cut_hour)s"
        " THEN p.visit_start OR p.k = 1 ELSE p.k = 1 AND NOT p.visit_start END),"
        " count(*) FILTER (WHERE p.time < %(cut_hour)s)"
        f" FROM ({rows}) p WHERE p.time >= %(since)s AND {bot.format(a='p')}"
        " GROUP BY " + ("1, 2, 3" if by_hour else "1, 2"))
    return parts


def cut_hour(f: Filters, params: dict[str, Any]) -> None:
    """cut_hour: the first whole hour in the window on the day --since cuts (its end
    when none), cut_h: its place in the day (0-24)."""
    assert f.since is not None
    since = f.since.astimezone(UTC)
    hour = since.replace(minute=0, second=0, microsecond=0)
    whole_from = hour if hour == since else hour + dt.timedelta(hours=1)
    params["cut_hour"] = whole_from
    params["cut_h"] = (whole_from - since.replace(hour=0, minute=0, second=0,
                                                   microsecond=0)) // dt.timedelta(hours=1)


def cut_channels(f: Filters, params: dict[str, Any], cut_sql: str,
                  bot: str) -> tuple[list[str], list[str]]:
    """channels on the day --since cuts, with a summary: the visits begun in its whole
    hours from logpipe_visit_channels_hourly; from access_log only the rows of the hour
    --since falls in (a visit it cuts begins at its first request in the window), the
    last visit of each of their visitors taking the requests with which it continues
    across the next hour (logpipe_visit_crossings); a visit that continues across that
    hour without a request in the cut one begins at the hour, as its crossing says."""
    cut_hour(f, params)
    vhost = "" if f.vhost is None else " AND {a}.vhost = %(vhost)s"
    # a crossing x of the visitor of a row p (the hash first: NULL and '' stay apart)
    same_visitor = ("x.visitor = p.visitor AND x.vhost IS NOT DISTINCT FROM p.vhost"
                    " AND x.remote_host IS NOT DISTINCT FROM p.remote_host"
                    " AND x.user_agent IS NOT DISTINCT FROM p.user_agent")
    ctes = [
        ("cut_rows AS MATERIALIZED (SELECT p.* FROM days s CROSS JOIN LATERAL"
         " logpipe_visit_rows(%(since)s, %(cut_hour)s, %(gap)s, %(vhost)s) p"
         f" WHERE {cut_sql})"),
        ("crossing AS MATERIALIZED (SELECT x.* FROM days s JOIN logpipe_visit_crossings x"
         " ON x.gap = %(gap)s AND x.day = s.day AND x.hour = %(cut_h)s"
         f"{vhost.format(a='x')} WHERE {cut_sql})"),
    ]
    starts = (
        "SELECT p.*, coalesce(lead(p.rn) OVER w, p.n + 1) - p.rn AS hits,"
        " lead(p.rn) OVER w IS NULL AS last FROM cut_rows p WHERE p.visit_start"
        ' WINDOW w AS (PARTITION BY p.visitor, p.vhost COLLATE "C",'
        ' p.remote_host COLLATE "C", p.user_agent COLLATE "C" ORDER BY p.rn)'
    )
    parts = [
        ('SELECT v.channel COLLATE "C", v.source COLLATE "C", sum(v.visits), sum(v.hits)'
         " FROM days s JOIN logpipe_visit_channels_hourly v ON v.gap = %(gap)s"
         f" AND v.day = s.day AND v.hour >= %(cut_h)s{vhost.format(a='v')}"
         f" WHERE {cut_sql} AND {bot.format(a='v')} GROUP BY 1, 2"),
        "SELECT c.channel, c.source, g.visits, g.hits FROM ("
        "SELECT p.vhost, logpipe_url_host(p.referer) AS host, count(*) AS visits,"
        " sum(p.hits + coalesce(x.hits, 0)) AS hits"
        f" FROM ({starts}) p LEFT JOIN crossing x ON p.last AND "
        + same_visitor
        + f" WHERE {bot.format(a='p')} GROUP BY 1, 2) g"
        " CROSS JOIN LATERAL logpipe_host_channel(g.host, g.vhost) c",
        "SELECT x.channel, x.source, count(*), sum(x.hits) FROM crossing x"
        " WHERE NOT EXISTS (SELECT FROM cut_rows p WHERE "
        + same_visitor + f") AND {bot.format(a='x')} GROUP BY 1, 2",
    ]
    return ctes, parts
