"""The command line of `logpipe report`: its argparse set-up and the --since/--until times."""

from __future__ import annotations

import argparse
from typing import Any

from logpipe.options import add_dsn, non_negative_int
from logpipe.reports.catalog import REPORTS
from logpipe.reports.queries.tree import DEFAULT_DEPTH, MAX_DEPTH
from logpipe.reports.queries.visitors import DEFAULT_GAP, visit_gap
from logpipe.reports.times import parse_time

DESCRIPTION = """\
Print a report on the loaded access log. Reports:

{reports}

The same reports, unfiltered, are views for psql: report_referers, report_pages,
report_static, report_status_daily, report_broken_links, report_offenders,
report_agents, report_traffic_hourly and report_traffic_daily; report_visitors_daily,
report_countries, report_channels and report_keyphrases (search words, where the
search engine still sends them).

Visitors, countries and channels: a visitor is one client address and User-Agent on
one UTC day, per vhost; a visit, its requests with no gap longer than --visit-gap
(30m); its channel comes from the referer of its first request. They count the rows
between --since and --until (the first visit of a window begins at its first row
there). Days are UTC days.

Pages are page views: GET and POST requests served for paths that are not static
assets (by extension: stylesheets, scripts, images, fonts, feeds...; the patterns
are in the table logpipe_asset_patterns, add your own with INSERT), '//' read as '/'.

Several servers can log into one database, each logger naming its own with
--source: --source here keeps one server's rows (or a few), and --by-source splits
status and traffic per server. Both read access_log itself, whose rollups keep no
source: on a large table, bound the time with --since.

A row counts as a bot when the logger classified its User-Agent as a bot, crawler,
tool or monitor, or when it had no User-Agent. Days and hours are in the database
session's time zone (set PGTZ, e.g. PGTZ=Europe/Paris, to choose another).
"""

EPILOG = """\
examples:
  logpipe report pages --since 7d --humans
  logpipe report static --since 7d
  logpipe report tree --depth 2 --format csv
  logpipe report referers --path /blog/post-1 --limit 50
  logpipe report broken-links --vhost www.example.com --format csv > broken.csv
  logpipe report traffic --by hour --since 2024-10-01 --until 2024-10-07 --format json
  logpipe report traffic --since 7d --by-source
  logpipe report pages --since 1d --source web1 --source web2

exit status: 0 report printed, 1 database problem (unreachable, schema missing: run
`logpipe initdb`), 2 bad option or unknown report.
"""


def add_parser(subparsers: Any) -> None:
    """Add `report` to the subcommands of `logpipe`."""
    width = max(len(n) for n in REPORTS)
    indent = " " * (width + 4)
    reports = "\n".join(
        f"  {name:<{width}}  {info.summary}\n{indent}columns: {info.columns}"
        for name, info in REPORTS.items()
    )
    p = subparsers.add_parser(
        "report",
        help="print a report: " + ", ".join(REPORTS),
        description=DESCRIPTION.format(reports=reports),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="the report: " + ", ".join(REPORTS))
    p.add_argument("--path", help="only requests for this path (URI before '?'), e.g. /about")
    p.add_argument("--vhost", help="only requests to this virtual host (%%v), e.g. example.com")
    p.add_argument(
        "--source", action="append", metavar="NAME",
        help="only requests logged with source NAME (the logger's --source, by default "
        "its host name); repeat it for several servers: --source web1 --source web2",
    )
    p.add_argument(
        "--since", type=parse_time, metavar="TIME",
        help="only requests at or after TIME: relative (30d, 12h, 15m, 90s, 2w: that long "
        "ago) or ISO (2024-10-01, 2024-10-01T13:00, 2024-10-01T13:00:00+02:00)",
    )
    p.add_argument(
        "--until", type=parse_time, metavar="TIME",
        help="only requests before TIME, same forms as --since; a date alone means the "
        "end of that day",
    )
    p.add_argument(
        "--limit", type=non_negative_int, metavar="N",
        help="at most N rows (default: 20 for referers, pages, static, broken-links, "
        "offenders and agents; all rows for status, traffic and tree, where N keeps the N "
        "directories with most hits); 0 means no limit",
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("--humans", action="store_true",
                     help="only requests from people's browsers (all but --bots)")
    who.add_argument("--bots", action="store_true",
                     help="only requests from bots, crawlers, tools and monitors, and "
                     "requests without a User-Agent")
    p.add_argument("--all", action="store_true",
                   help="pages: count every request served, whatever its method, static "
                   "assets too (without it: GET and POST requests for pages only)")
    p.add_argument("--depth", type=_depth, metavar="N",
                   help=f"tree: directories down to N levels (default {DEFAULT_DEPTH}): 1 is "
                   "'/' alone, 2 adds '/blog/', 3 adds '/blog/2026/'")
    p.add_argument("--by", choices=("day", "hour"), default="day",
                   help="status, traffic and visitors: one row per day (default) or per "
                   "hour")
    p.add_argument(
        "--visit-gap", type=visit_gap, metavar="DURATION", default=DEFAULT_GAP,
        help="visitors and channels: a visit ends after this long without a request from "
        "its visitor (30m, 45m, 1h, 900s; default 30m, as most analytics tools count). "
        "Each gap other than 30m is summarized apart, the first time it is asked for",
    )
    p.add_argument("--by-source", action="store_true",
                   help="status and traffic: one row per source (server) too, in a "
                   "source column after the day or hour")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default; fits the terminal), csv (with a header row) or "
                   "json (a list of objects)")
    add_dsn(p)
    p.set_defaults(func=_run)


def _depth(text: str) -> int:
    """--depth: a whole number of directory levels, 1 to MAX_DEPTH."""
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if not 1 <= depth <= MAX_DEPTH:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a depth; give a whole number from 1 ('/' alone) to {MAX_DEPTH}")
    return depth


def _run(args: argparse.Namespace) -> int:
    # imported when the report runs: building the parser for another command (or for
    # --help) need not load the queries and the output code
    if args.name == "html":  # every report on one page: logpipe.reports.html
        from logpipe.reports.html.command import run_html

        return run_html(args)
    from logpipe.reports.run import run

    return run(args)
