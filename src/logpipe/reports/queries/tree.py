"""SQL of the `tree` report: the site's directories to --depth levels, each with the page
views, requests served and bytes of every path under it, from the counts `pages` reads."""

from __future__ import annotations

from typing import Any

from logpipe.reports.filters import Filters
from logpipe.reports.queries.pages import RollupRange, query_counts

DEFAULT_DEPTH = 3
MAX_DEPTH = 64  # deeper than any site's directories; bounds the rows a path can make


def query_tree(f: Filters, days: RollupRange, depth: int = DEFAULT_DEPTH
               ) -> tuple[str, dict[str, Any]]:
    """Rows (directory, pages, hits, bytes) in tree order: '/', '/blog/', '/blog/2026/'.

    A directory is a prefix of a (collapsed) path ending in '/', at depth 1 ('/') to
    `depth`; a request counts in every directory above its path, so '/' holds them all.
    pages: page views (GET or POST, not a static asset), hits: requests served (any
    method, assets too), bytes: theirs. Paths that do not start with '/' ('*', a proxy
    request's full URL, none at all) are in no directory. With --limit N: the N
    directories with most hits (a directory has at least its subdirectories' hits, so
    they make a tree from '/'), still in tree order.
    """
    source, params = query_counts(f, days)
    params["depth"] = depth
    ranked = (
        "SELECT d.directory, coalesce(sum(c.views) FILTER (WHERE NOT c.asset), 0)::bigint"
        " AS pages, sum(c.hits)::bigint AS hits, sum(c.bytes)::bigint AS bytes"
        " FROM (SELECT k.views, k.hits, k.bytes, k.asset,"
        " string_to_array(k.path, '/') AS parts"
        f" FROM ({source}) k WHERE k.path LIKE '/%%') c"
        " CROSS JOIN LATERAL generate_series(1, least(%(depth)s, cardinality(c.parts) - 1))"
        " AS g (level)"
        " CROSS JOIN LATERAL (SELECT array_to_string(c.parts[1:g.level], '/') || '/'"
        " AS directory) d"
        " GROUP BY d.directory HAVING sum(c.hits) > 0"
    )
    if f.limit:
        params["limit"] = f.limit
        ranked += " ORDER BY hits DESC, d.directory COLLATE \"C\" LIMIT %(limit)s"
    # byte order keeps each directory's subtree right below it ('/a-b/' sorts before '/a/')
    sql = f"SELECT t.directory, t.pages, t.hits, t.bytes FROM ({ranked}) t" \
          " ORDER BY t.directory COLLATE \"C\""
    return sql, params
