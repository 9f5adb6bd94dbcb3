"""`logpipe report html -o FILE [filters]`: every report as one self-contained HTML page
(no network needed to view it), with the CLI's filters and the CLI's numbers."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from logpipe import config
from logpipe.messages import UsageError, say
from logpipe.reports.filters import Filters, resolve_times

HELP_OUTPUT = (
    "report html only: write the page to FILE ('-' for standard output). The page is "
    "one file with its charts and data inside: open it in a browser, mail it, put it "
    "on a web server; it fetches nothing. Example: logpipe report html --since 30d "
    "--vhost www.example.com -o /var/www/stats/index.html"
)
DESCRIPTION = """
  html          every report above on one page with charts, for a browser, in one
                file that fetches nothing: logpipe report html --since 30d -o FILE;
                the same filters apply, --limit is each table's length (default: the
                report's own).
                The same page live, refreshing itself: logpipe serve
"""


def extend_report_parser(parser: argparse.ArgumentParser) -> None:
    """Teach `logpipe report` the html page: -o FILE and a word in --help."""
    parser.description = (parser.description or "").replace(
        "\nThe same reports,", DESCRIPTION + "\nThe same reports,", 1)
    parser.add_argument("-o", "--output", metavar="FILE", help=HELP_OUTPUT)


def filters_of(args: argparse.Namespace) -> Filters:
    return Filters(path=args.path, vhost=args.vhost,
                   bots=True if args.bots else False if args.humans else None,
                   sources=tuple(dict.fromkeys(args.source or ())))


def describe(filters: Filters, time_zone: str, now: dt.datetime) -> str:
    """What the page counts, in one line under its title."""
    who = {None: "all requests", True: "bots only", False: "humans only"}[filters.bots]
    parts = [who]
    if filters.vhost is not None:
        parts.append(f"virtual host {filters.vhost}")
    if filters.path is not None:
        parts.append(f"path {filters.path}")
    if filters.sources:
        parts.append("source " + ", ".join(filters.sources))
    since = f"{filters.since:%Y-%m-%d %H:%M}" if filters.since else "the first row"
    until = f"{filters.until:%Y-%m-%d %H:%M}" if filters.until else "now"
    parts.append(f"from {since} to {until}")
    parts.append(f"times in {time_zone}")
    parts.append(f"made {now:%Y-%m-%d %H:%M:%S %Z}")
    return " · ".join(parts)


def fetch(cur: Any, filters: Filters, limit: int | None, since: Any = None,
          until: Any = None, helper: Any = None) -> dict[str, Any]:
    """The page's data over a read-only autocommit cursor (run.prepare_session done):
    times resolved as the CLI resolves them, then every panel (data.collect; `helper`
    a second such cursor, to run two panels at once)."""
    from logpipe.reports.html.data import collect
    from logpipe.reports.run import pruned_before

    filters.since, filters.until = resolve_times(cur, since, until)
    filters.pruned_before = pruned_before(cur)
    data = collect(cur, filters, limit, helper)
    cur.execute("SELECT now()")
    data["description"] = describe(filters, data["time_zone"], cur.fetchone()[0])
    data["filters"] = {"vhost": filters.vhost, "path": filters.path,
                       "sources": list(filters.sources), "bots": filters.bots,
                       "since": filters.since.isoformat() if filters.since else None,
                       "until": filters.until.isoformat() if filters.until else None}
    return data


def run_html(args: argparse.Namespace) -> int:
    if not args.output:
        raise UsageError("report html needs -o FILE (or -o - for standard output), e.g. "
                         "logpipe report html --since 30d -o report.html")
    if args.by_source:
        raise UsageError("--by-source splits the status and traffic tables, not the html "
                         "page; use --source NAME for one server's page")
    from logpipe.reports.run import connect

    dsn = config.resolve_dsn(args.dsn)
    limit = args.limit  # None: each table as long as its report's default
    conn = connect(dsn)
    if conn is None:
        return 1
    try:
        data = _fetch(conn, dsn, args, limit)
    finally:
        conn.close()
    if data is None:
        return 1
    from logpipe.reports.html.page import build_page

    page = build_page(data, title=page_title(args))
    return write(args.output, page.html)


def page_title(args: argparse.Namespace) -> str:
    return f"logpipe: {args.vhost}" if args.vhost else "logpipe: access log"


def _fetch(conn: Any, dsn: str, args: argparse.Namespace,
           limit: int | None) -> dict[str, Any] | None:
    """As reports.run._fetch: fold if allowed, read-only from then on; None once the
    reason is said."""
    import psycopg2
    import psycopg2.errors

    from logpipe.reports.queries.daily import refresh_days
    from logpipe.reports.queries.visitors import refresh_visits
    from logpipe.reports.run import may_fold, prepare_session
    from logpipe.store import database as db

    try:
        if may_fold(conn):
            db.fold_rollups(conn)
        # as `report visitors` does: store the summaries of whole days, where allowed
        refresh_visits(conn, args, filters_of(args))
        if not args.source:  # and the daily summaries of the tables (queries/daily.py)
            refresh_days(conn, args.since, args.until)
        conn.set_session(readonly=True, autocommit=True)
        second = _second_connection(dsn)
        try:
            with conn.cursor() as cur:
                prepare_session(cur)
                helper = None
                if second is not None:
                    helper = second.cursor()
                    prepare_session(helper)
                return fetch(cur, filters_of(args), limit, args.since, args.until, helper)
        finally:
            if second is not None:
                second.close()
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction) as exc:
        say(f"the reports are not installed in {db.describe_dsn(dsn)} "
            f"({str(exc).splitlines()[0]}); run `logpipe initdb` first")
    except psycopg2.OperationalError as exc:
        say(f"lost the connection to {db.describe_dsn(dsn)}: {str(exc).strip()}")
    except psycopg2.Error as exc:
        say(f"report html failed: {str(exc).strip()}")
    except (ValueError, OverflowError) as exc:
        say(f"report html failed: {exc}")
    return None


def _second_connection(dsn: str) -> Any:
    """A read-only autocommit connection for data.collect's helper, or None (the page is
    then made on one connection) when the server has no room for it or one CPU only."""
    import psycopg2

    from logpipe.store import database as db

    if (os.cpu_count() or 1) < 2:
        return None
    try:
        conn = db.connect(dsn, "logpipe report")
    except psycopg2.Error:
        return None
    conn.set_session(readonly=True, autocommit=True)
    return conn


def write(output: str, text: str) -> int:
    """The page to `output` ('-': stdout), whole or not at all: a reader of the file
    (a web server) never sees half a page."""
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    target = Path(output)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".logpipe-", suffix=".html", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        # the mode a plain open() would give (mkstemp's is 0600), e.g. for a web server
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        say(f"cannot write {output}: {exc.strerror or exc}; check the directory exists "
            "and is writable")
        return 1
    say(f"wrote {output} ({len(text.encode('utf-8')) // 1024} KiB)")
    return 0
