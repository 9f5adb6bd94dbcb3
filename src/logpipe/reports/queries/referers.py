"""SQL of the reports on referers: external ones (referers) and the links on the site's
own pages that answer 4xx (broken-links)."""

from __future__ import annotations

from typing import Any

from logpipe.reports.filters import Filters, all_of, conditions, limit_clause

# The referer's host is tested once per distinct (vhost, referer), after grouping: the
# LATERAL subquery with OFFSET 0 keeps PostgreSQL from pushing the test down to every
# row. Same test as logpipe_same_site() in sql/020_reports.sql.
SAME_SITE = (
    "coalesce(r.host = logpipe_host(g.vhost)"
    " OR r.host = ANY (ARRAY(SELECT host FROM logpipe_site_hosts)), false)"
)
REFERER_HOST = "CROSS JOIN LATERAL (SELECT logpipe_url_host(g.referer) AS host OFFSET 0) r"

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


def query_referers(f: Filters) -> tuple[str, dict[str, Any]]:
    """Requests per (vhost, referer) from the report indexes, or, for a hot path over all
    time, from logpipe_path_referers plus what is pending (sql/020_reports.sql); the
    EXISTS tests are one-time filters, so only one of the two is read."""
    params: dict[str, Any] = {}
    where = ["a.referer IS NOT NULL", "a.referer <> ''", *conditions(f, params)]
    rollup = ""
    # the referer rollup has no sources: --source reads access_log
    if f.path is not None and f.since is None and f.until is None and not f.sources:
        hot = "EXISTS (SELECT FROM logpipe_hot_paths WHERE path = %(path)s)"
        counted = {None: "r.hits", True: "r.bot_hits", False: "r.hits - r.bot_hits"}[f.bots]
        rollup_where = [hot, "r.path = %(path)s"]
        if f.vhost is not None:
            rollup_where.append("r.vhost = %(vhost)s")
        rollup = (
            f"SELECT nullif(r.vhost, '') AS vhost, r.referer, sum({counted}) AS hits"
            " FROM (SELECT path, vhost, referer, hits, bot_hits FROM logpipe_path_referers"
            " UNION ALL SELECT path, vhost, referer, hits, bot_hits"
            f" FROM logpipe_pending_referers) r WHERE {all_of(rollup_where)}"
            " GROUP BY 1, 2 UNION ALL "
        )
        where.append(f"NOT {hot}")
    rows = rows_with_referer("a.vhost, a.referer", where, f.path is not None)
    sql = (
        "SELECT g.referer, sum(g.hits)::bigint AS hits"
        f" FROM ({rollup}SELECT a.vhost, a.referer, count(*) AS hits FROM ({rows}) a"
        f" GROUP BY a.vhost, a.referer) g {REFERER_HOST}"
        f" WHERE NOT {SAME_SITE} AND g.hits > 0"
        " GROUP BY g.referer ORDER BY hits DESC, g.referer" + limit_clause(f, params)
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
