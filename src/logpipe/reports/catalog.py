"""The reports `logpipe report` knows: name -> summary, columns and default row limit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportInfo:
    summary: str
    columns: str
    default_limit: int | None  # None: all rows


# The reports --by-source splits: a source column after the day or hour.
SPLIT_BY_SOURCE = ("status", "traffic")

REPORTS: dict[str, ReportInfo] = {
    "referers": ReportInfo("external referers (their host is not the site's own)",
                           "referer, hits", 20),
    "pages": ReportInfo("most requested pages (requests served: status below 400)",
                        "vhost, path, hits, bytes", 20),
    "status": ReportInfo("requests per day (or --by hour) and status code, per server "
                         "with --by-source",
                         "day, vhost, status, hits", None),
    "broken-links": ReportInfo("4xx answers to links on the site's own pages",
                               "vhost, referer, path, statuses, hits, last_seen", 20),
    "offenders": ReportInfo("remote hosts with the most 4xx and 5xx answers",
                            "remote_host, errors, client_errors, server_errors, requests, "
                            "last_seen", 20),
    "agents": ReportInfo("user agents, most requests first",
                         "user_agent, is_bot, hits, last_seen", 20),
    "traffic": ReportInfo("requests per day (or --by hour), per server with --by-source",
                          "day, vhost, hits, human_hits, bot_hits, bytes", None),
}
