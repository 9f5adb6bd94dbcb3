"""Command line: `logpipe [options]` is the piped logger; subcommands do the rest.

Argument parsing and dispatch only: each command's work is in logpipe.commands,
imported when that command runs, so the piped logger starts without loading them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable

from logpipe import SUBCOMMANDS, config
from logpipe.messages import EXIT_USAGE, UsageError, say
from logpipe.options import (
    add_anonymize_ip,
    add_dsn,
    add_flush_interval,
    add_format,
    add_json,
    add_max_line_bytes,
    add_source,
    add_spool_dir,
    add_trusted_proxy,
    parse_size,
    positive_float,
    positive_int,
)

PIPE_DESCRIPTION = """\
Read Apache access-log lines on stdin until EOF and load them into the
PostgreSQL table access_log. Lines go to a local spool first, so Apache never
waits and nothing is lost while the database is unreachable; a writer child
loads them in batches with COPY.

In Apache's configuration (a full path: Apache runs no shell and no PATH search):
  GlobalLog "|/usr/bin/python3 -m logpipe --dsn 'dbname=weblogs' --user www-data" combined

Other commands: logpipe {initdb,load,replay,drain,status,report,prune,archive,resolve,digest} --help
"""

PIPE_EPILOG = """\
exit status: 0 at EOF (also after SIGTERM: reading goes on until EOF), 2 for a
usage or configuration error (bad option, unknown LogFormat directive,
unusable spool directory). SIGHUP is ignored.
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        parser = build_subcommand_parser()
    else:
        from logpipe.ingest.reader import hold_signals

        hold_signals()  # at once: Apache may signal a logger it has only just started
        parser = build_pipe_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        say(f"error: {exc}")
        return EXIT_USAGE


def command(module: str) -> Callable[[argparse.Namespace], int]:
    """The `run(args)` of a module in logpipe.commands, imported when it is called."""

    def run(args: argparse.Namespace) -> int:
        return int(importlib.import_module(f"logpipe.commands.{module}").run(args))

    return run


def build_pipe_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="logpipe",
        description=PIPE_DESCRIPTION,
        epilog=PIPE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dsn(p)
    add_format(p)
    add_spool_dir(p)
    add_source(p)
    p.add_argument("--user", help="when started as root: run as this user once the spool is ready")
    p.add_argument("--group", help="with --user: run as this group (default: the user's group)")
    p.add_argument(
        "--spool-max",
        type=parse_size,
        help="largest size of the spool, e.g. 2G; beyond it lines are dropped and counted "
        "(default: no limit but the disk)",
    )
    p.add_argument(
        "--segment-size",
        type=parse_size,
        default=config.DEFAULT_SEGMENT_BYTES,
        help="start a new spool segment after this many bytes (default: 64M)",
    )
    add_flush_interval(p, "load pending lines at least this often, in seconds (default: %(default)s)")
    add_max_line_bytes(p)
    add_trusted_proxy(p)
    add_anonymize_ip(p)
    p.add_argument(
        "--batch-lines",
        type=positive_int,
        default=config.DEFAULT_BATCH_LINES,
        help="at most this many lines per COPY transaction (default: %(default)s)",
    )
    p.add_argument(
        "--stop-timeout",
        type=positive_float,
        default=config.DEFAULT_STOP_TIMEOUT,
        help="after EOF, seconds the writer gets to load what is left; the rest stays "
        "in the spool (default: %(default)s)",
    )
    p.set_defaults(func=command("logger"))
    return p


def subcommand(sub: argparse._SubParsersAction, name: str,
               *options: Callable[[argparse.ArgumentParser], None],
               **texts: str) -> argparse.ArgumentParser:
    """A subcommand that runs logpipe.commands.NAME, with the shared options given."""
    s = sub.add_parser(name, **texts)
    for add_option in options:
        add_option(s)
    s.set_defaults(func=command(name))
    return s


def build_subcommand_parser() -> argparse.ArgumentParser:
    """Every command's arguments and --help text. Long because it is one flat list
    of argparse registrations, one block per command, in the order --help shows them;
    each block is plain data, and splitting it would only scatter the commands."""
    p = argparse.ArgumentParser(prog="logpipe", description=PIPE_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = subcommand(
        sub, "initdb", add_dsn,
        help="create or upgrade the database schema",
        description="Create the tables and views logpipe uses, or upgrade older ones in "
        "place (run it after every upgrade of logpipe). Safe to run again at any time: "
        "what exists is kept, your own views and grants on logpipe's too, and a run with "
        "nothing to change does not hold up running loggers.",
    )
    s.add_argument(
        "--partition", choices=("month", "week", "day"),
        help="how much time each partition of access_log holds: `logpipe prune` drops "
        "whole partitions, so smaller ones free space sooner, but keep their number in "
        "the hundreds (default: month, or what the database uses already; a change "
        "applies to new partitions)",
    )
    s.add_argument(
        "--writer-role", metavar="ROLE",
        help="grant ROLE what a logger (and load, replay, drain) needs and no more: it "
        "adds rows, makes partitions and folds the report rollups, but cannot delete, "
        "change or drop rows. The role must exist (CREATE ROLE name LOGIN PASSWORD "
        "'...'); the logger connects with user=ROLE in --dsn",
    )
    s.add_argument(
        "--reader-role", metavar="ROLE",
        help="grant ROLE read access to what `logpipe report`, `logpipe status` and the "
        "report_* views read; it can write nothing",
    )

    s = subcommand(
        sub, "load", add_dsn, add_format, add_source, add_max_line_bytes, add_trusted_proxy,
        add_anonymize_ip,
        help="load access-log files (old or rotated; .gz, .bz2 and .xz too)",
        description="Load access-log files into access_log, each file in one transaction. "
        "A file whose content was loaded before is skipped (use --force to load it again). "
        "Compressed files (gzip, bzip2, xz) are recognised by their content. On a "
        "terminal, progress bars show bytes and lines done, lines/s and time left, per "
        "file and overall. "
        "Exit status: 0 all loaded or skipped, 1 some file failed, 2 usage error.",
    )
    s.add_argument("files", nargs="+", type=Path, metavar="FILE", help="log files; '-' is stdin")
    s.add_argument("--force", action="store_true", help="load files even if loaded before")

    subcommand(
        sub, "replay", add_dsn, add_spool_dir, add_max_line_bytes,
        help="load what loggers left in the spool, then exit",
        description="Load every closed spool segment (left by a logger that stopped or "
        "died) and exit. Safe while loggers run: segments they still write are theirs. "
        "Exit status: 0 the spool holds nothing loadable any more, 1 database unreachable.",
    )

    s = subcommand(
        sub, "drain", add_dsn, add_spool_dir, add_max_line_bytes,
        help="a background daemon that keeps loading the spool (for hosts without systemd)",
        description="Keep loading the spool into the database, detached from the terminal "
        "(python-daemon). For hosts without systemd: start it from cron with @reboot. "
        "`logpipe drain --stop` stops it.",
    )
    s.add_argument("--foreground", action="store_true", help="do not detach")
    s.add_argument("--stop", action="store_true", help="stop the running drain daemon")
    s.add_argument("--pidfile", type=Path, help="default: SPOOL_DIR/drain.pid")
    s.add_argument("--logfile", type=Path, help="where messages go (default: SPOOL_DIR/drain.log)")
    add_flush_interval(s, "seconds between looks at the spool (default: %(default)s)")

    s = subcommand(
        sub, "prune", add_dsn,
        help="drop rows older than a cutoff; daily report totals stay",
        description="Free disk space: drop the partitions of access_log whose rows are "
        "all older than AGE, rows older than that which no partition covered (times such "
        "as 1970), and rejects received before then. Running loggers go on loading. The "
        "totals behind `logpipe report traffic`, `status` and `pages` stay, so those "
        "reports still show the pruned days. A partition goes once all of it is older "
        "than AGE (see initdb --partition). For cron, daily: "
        "logpipe prune --older-than 90d --dsn 'dbname=weblogs' >/dev/null. "
        "Exit status: 0 done, 1 database unreachable or busy (run it again), 2 usage error.",
    )
    s.add_argument("--older-than", required=True, metavar="AGE",
                   help="what to remove: older than this many days (90d) or weeks (12w)")
    s.add_argument("--dry-run", action="store_true",
                   help="say what would be removed, and remove nothing")
    s.add_argument(
        "--archive", type=Path, metavar="DIR",
        help="first write what is removed to Parquet files under DIR (created if missing): "
        "DIR/access_log/month=YYYY-MM/*.parquet and DIR/access_log_rejects/month=YYYY-MM/"
        "*.parquet, which DuckDB, pandas and Spark read as one table each. If writing fails, "
        "nothing more is removed; a prune that dies half-way, run again, leaves each row "
        "archived once. Needs the archive extra (pip install 'apache-logpipe[archive]')",
    )

    s = subcommand(
        sub, "archive", add_dsn,
        help="export what prune would remove to Parquet files, removing nothing",
        description="Write the rows that `logpipe prune` would remove for a cutoff (the "
        "partitions of access_log that end by DATE, older rows no partition covered, and "
        "rejects received before DATE) to Parquet files under DIR, in the layout of prune "
        "--archive, and keep them in the database. Files are named ...-export.parquet: "
        "running it again replaces them, so export into a directory of its own, not the "
        "one prune archives into. Needs the archive extra (pip install "
        "'apache-logpipe[archive]'). Exit status: 0 done, 1 database unreachable or "
        "writing failed, 2 usage error.",
    )
    s.add_argument("--before", required=True, metavar="DATE",
                   help="the cutoff: a UTC date (2024-01-01, midnight UTC) or an age "
                   "like prune's --older-than (90d, 12w: that many days before now, "
                   "back to the UTC midnight before)")
    s.add_argument("--archive", required=True, type=Path, metavar="DIR",
                   help="the directory the files go under (created if missing)")

    subcommand(
        sub, "status", add_dsn, add_spool_dir, add_json,
        help="what the spool holds and whether the database is taking rows",
        description="Show spool segments (live or left behind), bytes not yet loaded, "
        "database reachability, and recent rows and rejects. Exit status 0 when the "
        "database is reachable, 1 when not.",
    )

    from logpipe.reports import options as report

    report.add_parser(sub)
    from logpipe.reports.html.command import extend_report_parser

    extend_report_parser(sub.choices["report"])
    from logpipe.commands import serve_args

    serve_args.add_parser(sub, command)

    from logpipe.commands import names_args

    names_args.add_parsers(sub, command)

    add_writer_child_parser(sub)
    return p


def add_writer_child_parser(sub: argparse._SubParsersAction) -> None:
    """`_writer`: started by the piped logger with its own settings, not by people."""
    s = sub.add_parser("_writer", help=argparse.SUPPRESS)
    add_spool_dir(s)
    s.add_argument("--flush-interval", type=float, default=config.DEFAULT_FLUSH_INTERVAL)
    s.add_argument("--batch-lines", type=int, default=config.DEFAULT_BATCH_LINES)
    s.add_argument("--lifeline", type=int, help="fd of the pipe whose EOF means stop")
    s.add_argument("--max-line-bytes", type=int)
    s.set_defaults(func=command("writer_child"))
