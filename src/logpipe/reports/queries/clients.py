"""SQL of the reports on who sends the requests: remote hosts with the most errors
(offenders) and user agents (agents)."""

from __future__ import annotations

from typing import Any

from logpipe.reports.filters import Filters, all_of, conditions, limit_clause


def query_offenders(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    sql = (
        "SELECT a.remote_host,"
        " count(*) FILTER (WHERE a.status >= 400) AS errors,"
        " count(*) FILTER (WHERE a.status BETWEEN 400 AND 499) AS client_errors,"
        " count(*) FILTER (WHERE a.status >= 500) AS server_errors,"
        " count(*) AS requests, max(a.time) AS last_seen"
        f" FROM access_log a WHERE {all_of(conditions(f, params))}"
        " GROUP BY a.remote_host HAVING count(*) FILTER (WHERE a.status >= 400) > 0"
        " ORDER BY errors DESC, a.remote_host" + limit_clause(f, params)
    )
    return sql, params


def query_agents(f: Filters) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    sql = (
        "SELECT a.user_agent, a.is_bot, count(*) AS hits, max(a.time) AS last_seen"
        f" FROM access_log a WHERE {all_of(conditions(f, params))}"
        " GROUP BY 1, 2 ORDER BY hits DESC, a.user_agent, a.is_bot" + limit_clause(f, params)
    )
    return sql, params
