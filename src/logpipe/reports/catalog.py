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

# The reports over the page rollups (reports/queries/pages.py), which keep pruned days.
PAGE_REPORTS = ("pages", "static", "tree")

REPORTS: dict[str, ReportInfo] = {
    "referers": ReportInfo("external referers (their host is not the site's own)",
                           "referer, hits", 20),
    "pages": ReportInfo("most viewed pages: GET and POST requests served (status below "
                        "400), static assets left out; --all: every request served",
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
    "static": ReportInfo("most requested static assets (stylesheets, scripts, images, "
                         "fonts, feeds...: logpipe_asset_patterns), counted as pages are",
                         "vhost, path, hits, bytes", 20),
    "tree": ReportInfo("directories to --depth levels (3): page views, requests served "
                       "and bytes under each, in tree order",
                       "directory, pages, hits, bytes", None),
    "domains": ReportInfo("clients by the registrable domain of their name (cached by "
                          "`logpipe resolve`), else by country, else 'unresolved'; a "
                          "visitor is one address and user agent on one UTC day and vhost",
                          "domain, visitors, hits", 20),
    "visitors": ReportInfo("visitors (one address and user agent on one UTC day), visits "
                           "(no gap over --visit-gap) and requests per UTC day (or --by "
                           "hour) and vhost",
                           "day, vhost, visitors, visits, hits", None),
    "countries": ReportInfo("visitors and requests per country of the client address "
                            "(ISO 3166 code, empty when private or unknown)",
                            "country, visitors, hits", None),
    "channels": ReportInfo("visits by where their first request came from: direct, "
                           "search, social, webmail, website or internal, and source",
                           "channel, source, visits, hits", 20),
}
