"""`logpipe report NAME` itself: connect, fold pending counts into the rollups, resolve
the times, run the report's query and print its rows. run_report() is the part that
bench/reports_bench.py times."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any, Callable

from logpipe import config
from logpipe.messages import UsageError, say
from logpipe.reports.catalog import PAGE_REPORTS, REPORTS, SPLIT_BY_SOURCE
from logpipe.reports.filters import PRUNED_BEFORE_SQL, Filters, resolve_times
from logpipe.reports.output import format_json, format_table, write_csv
from logpipe.reports.queries.clients import query_agents, query_offenders
from logpipe.reports.queries.daily import query_daily, refresh_for
from logpipe.reports.queries.domains import query_domains
from logpipe.reports.queries.pages import (
    ROLLUP_RANGE_SQL,
    RollupRange,
    query_pages,
    query_static,
    read_page_hours,
)
from logpipe.reports.queries.referers import query_broken_links, query_referers
from logpipe.reports.queries.series import query_status, query_traffic
from logpipe.reports.queries.tree import DEFAULT_DEPTH, query_tree
from logpipe.reports.queries.visitors import (
    VISIT_REPORTS,
    query_channels,
    query_countries,
    query_visitors,
    refresh_visits,
)

# The reports whose query needs only the filters; `pages` also needs the days its
# rollup holds (rollup_range), so run_report builds it apart.
QUERIES: dict[str, Callable[[Filters], tuple[str, dict[str, Any]]]] = {
    "referers": query_referers,
    "status": query_status,
    "broken-links": query_broken_links,
    "offenders": query_offenders,
    "agents": query_agents,
    "traffic": query_traffic,
    "domains": query_domains,
    "visitors": query_visitors,
    "countries": query_countries,
    "channels": query_channels,
}


MAY_FOLD_SQL = ("SELECT coalesce(has_function_privilege("
                "to_regprocedure('logpipe_rollup_fold(bigint)'), 'EXECUTE'), false)")


def prepare_session(cur: Any) -> None:
    """Room for the aggregations: the 4 MB default spills a month's rollup to disk. No
    JIT: compiling costs 100-200 ms, which the cost of a branch left unread (the one-time
    filters) often triggers, and saved no report time at 10M rows (bench/reports_bench.py)."""
    cur.execute("SET work_mem = '64MB'; SET jit = off")


def pruned_before(cur: Any) -> Any:
    """Filters.pruned_before, or None where logpipe_pruned cannot be read (a schema from
    before `logpipe prune`, a role not granted it): then nothing is known pruned."""
    import psycopg2.errors

    try:
        cur.execute(PRUNED_BEFORE_SQL)  # autocommit: a refusal spoils no transaction
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InsufficientPrivilege):
        return None
    return cur.fetchone()[0]


def may_fold(conn: Any) -> bool:
    """Whether this connection's role may run the fold (the owner, a writer role)."""
    with conn.cursor() as cur:
        cur.execute(MAY_FOLD_SQL)
        allowed = bool(cur.fetchone()[0])
    conn.rollback()
    return allowed


def rollup_range(cur: Any, f: Filters | None = None) -> RollupRange:
    """What the page reports read beyond the rollup, for the window of `f`."""
    cur.execute(ROLLUP_RANGE_SQL)
    first, last = cur.fetchone()
    return RollupRange(first, last, read_page_hours(cur, f) if f is not None else ())


def run_report(cur: Any, name: str, filters: Filters, everything: bool = False,
               depth: int = DEFAULT_DEPTH) -> tuple[list[str], list[tuple]]:
    """Run one report: (column names, rows). Also what bench/reports_bench.py times.
    `everything`: pages --all; `depth`: tree --depth."""
    if name == "pages":
        sql, params = query_pages(filters, rollup_range(cur, filters), everything)
    elif name == "static":
        sql, params = query_static(filters, rollup_range(cur, filters))
    elif name == "tree":
        sql, params = query_tree(filters, rollup_range(cur, filters), depth)
    else:
        # broken-links, offenders, agents, referers: from the daily summaries where served
        daily = query_daily(cur, name, filters)
        sql, params = daily if daily is not None else QUERIES[name](filters)
    cur.execute(sql, params)
    return [d[0] for d in cur.description], cur.fetchall()


def run(args: argparse.Namespace) -> int:
    if getattr(args, "output", None):
        raise UsageError("-o FILE is for `logpipe report html`; the other reports print "
                         "on standard output (redirect it: > FILE)")
    if args.name not in REPORTS:
        raise UsageError(f"unknown report {args.name!r}; the reports are: "
                         f"{', '.join(REPORTS)}")
    if args.by_source and args.name not in SPLIT_BY_SOURCE:
        raise UsageError(f"--by-source splits {' and '.join(SPLIT_BY_SOURCE)}, not "
                         f"{args.name}; use --source NAME to keep one server's rows")
    _check_page_options(args)
    dsn = config.resolve_dsn(args.dsn)
    limit = REPORTS[args.name].default_limit if args.limit is None else args.limit
    filters = Filters(path=args.path, vhost=args.vhost, limit=limit, by=args.by,
                      bots=True if args.bots else False if args.humans else None,
                      sources=tuple(dict.fromkeys(args.source or ())),
                      by_source=args.by_source)
    filters.visit_gap = args.visit_gap
    conn = connect(dsn)
    if conn is None:
        return 1
    try:
        result = _fetch(conn, dsn, args, filters)
    finally:
        conn.close()
    if result is None:
        return 1
    print_report(args.format, *result)
    return 0


def _check_page_options(args: argparse.Namespace) -> None:
    """--all is for pages, --depth for tree, which takes no --path."""
    if getattr(args, "all", False) and args.name != "pages":
        raise UsageError(f"--all is for `logpipe report pages`, not {args.name}")
    if getattr(args, "depth", None) is not None and args.name != "tree":
        raise UsageError(f"--depth is for `logpipe report tree`, not {args.name}")
    if args.name == "tree" and args.path is not None:
        raise UsageError("tree shows every directory; it takes no --path (use "
                         "`logpipe report pages --path P` for one page)")


def connect(dsn: str) -> Any:
    """A connection, or None once the reason is said."""
    import psycopg2

    from logpipe.store import database as db

    try:
        return db.connect(dsn, "logpipe report")
    except psycopg2.OperationalError as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {str(exc).strip()}")
        say("check --dsn (or $LOGPIPE_DSN) and that PostgreSQL is running and accepts "
            "connections")
    except psycopg2.Error as exc:  # e.g. a malformed --dsn
        say(f"cannot connect: {str(exc).strip()}")
    return None


def _fetch(conn: Any, dsn: str, args: argparse.Namespace,
           filters: Filters) -> tuple[list[str], list[tuple]] | None:
    """The report's columns and rows, or None once the reason is said."""
    import psycopg2
    import psycopg2.errors

    from logpipe.store import database as db

    try:
        # Counts the writer has not folded yet (it does within seconds): a user who may
        # only read gets the rollups as of the writer's last fold, without a refused
        # call in the server's log at every report.
        if may_fold(conn):
            db.fold_rollups(conn)
        if args.name in VISIT_REPORTS:  # store the summaries of days counted from scratch
            refresh_visits(conn, args, filters)
        refresh_for(conn, args, filters)  # the daily summaries, for the reports they serve
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            prepare_session(cur)
            filters.since, filters.until = resolve_times(cur, args.since, args.until)
            filters.pruned_before = pruned_before(cur)
            # static and tree read the rollups pages reads
            if filters.misses_pruned_rows("pages" if args.name in PAGE_REPORTS else args.name):
                say(f"note: rows before {filters.pruned_before:%Y-%m-%d %H:%M %Z} were pruned; "
                    f"this report counts only the rows kept (pages, status and traffic "
                    f"without --path or --source keep daily totals)")
            return run_report(cur, args.name, filters, getattr(args, "all", False),
                              getattr(args, "depth", None) or DEFAULT_DEPTH)
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction,
            psycopg2.errors.UndefinedColumn) as exc:  # e.g. logpipe_pages.asset
        say(f"the reports are not installed in {db.describe_dsn(dsn)} "
            f"({str(exc).splitlines()[0]}); run `logpipe initdb` first")
    except psycopg2.OperationalError as exc:
        say(f"lost the connection to {db.describe_dsn(dsn)}: {str(exc).strip()}")
    except psycopg2.Error as exc:
        say(f"report {args.name} failed: {str(exc).strip()}")
    except (ValueError, OverflowError) as exc:  # e.g. a time beyond what Python can hold
        say(f"report {args.name} failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, not a traceback
        say(f"report {args.name} failed, a bug in logpipe: {exc!r}")
    return None


def print_report(output_format: str, columns: list[str], rows: list[tuple]) -> None:
    """The rows on stdout as --format says; a reader that stops early is no error."""
    try:
        if output_format == "csv":
            write_csv(columns, rows, sys.stdout, escape=sys.stdout.isatty())
        elif output_format == "json":
            sys.stdout.write(format_json(columns, rows))
        else:
            sys.stdout.write(format_table(columns, rows, shutil.get_terminal_size().columns))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: the reader has all it wants
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - stops the flush at exit
        except OSError:
            pass
