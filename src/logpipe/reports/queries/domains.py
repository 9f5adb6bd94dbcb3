"""SQL of the report on where clients come from (domains): requests and visitors per
registrable domain of the client's name, as `logpipe resolve` cached it
(logpipe_dns_names, sql/040_names.sql); clients without a name under their country, or
'unresolved'. Same query as the report_domains view, with the filters."""

from __future__ import annotations

from typing import Any

from logpipe.reports.filters import Filters, all_of, conditions, limit_clause

# A visitor is one client address and User-Agent on one UTC day, on one vhost
# (sql/030_visitors.sql).
DOMAIN = "coalesce(n.domain, n.name, upper(a.country), 'unresolved')"
VISITORS = ("count(DISTINCT (a.vhost, a.remote_host, a.user_agent,"
            " (a.time AT TIME ZONE 'UTC')::date))")


def query_domains(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    sql = (
        f"SELECT {DOMAIN} AS domain, {VISITORS} AS visitors, count(*) AS hits"
        " FROM access_log a LEFT JOIN logpipe_dns_names n ON n.address = a.remote_host"
        f" WHERE {all_of(conditions(f, params))}"
        " GROUP BY 1 ORDER BY visitors DESC, hits DESC, domain" + limit_clause(f, params)
    )
    return sql, params
