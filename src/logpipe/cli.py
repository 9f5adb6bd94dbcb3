"""Command line: `logpipe [options]` is the piped logger; subcommands do the rest."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from logpipe import SUBCOMMANDS, config
from logpipe.messages import EXIT_USAGE, EXIT_WRITER_CONFIG, UsageError, say

PIPE_DESCRIPTION = """\
Read Apache access-log lines on stdin until EOF and load them into the
PostgreSQL table access_log. Lines go to a local spool first, so Apache never
waits and nothing is lost while the database is unreachable; a writer child
loads them in batches with COPY.

In Apache's configuration (a full path: Apache runs no shell and no PATH search):
  GlobalLog "|/usr/bin/python3 -m logpipe --dsn 'dbname=weblogs' --user www-data" combined

Other commands: logpipe {initdb,load,replay,drain,status,report} --help
"""

PIPE_EPILOG = """\
exit status: 0 at EOF (also after SIGTERM: reading goes on until EOF), 2 for a
usage or configuration error (bad option, unknown LogFormat directive,
unusable spool directory). SIGHUP is ignored.
"""

if TYPE_CHECKING:
    from logpipe.ingest.writer import WriterSettings



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


# -- shared options -------------------------------------------------------------


def add_dsn(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dsn",
        help="libpq connection string or URI, e.g. 'dbname=weblogs host=/run/postgresql'. "
        "Default: $LOGPIPE_DSN, else libpq's own defaults (PGHOST, PGDATABASE, PGSERVICE...)",
    )


def add_spool_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spool-dir",
        type=Path,
        help=f"spool directory. Default: $LOGPIPE_SPOOL_DIR, else {config.ROOT_SPOOL_DIR} "
        "for root, else $XDG_STATE_HOME/logpipe/spool (~/.local/state/logpipe/spool)",
    )


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        default="combined",
        help="common, combined (default), vhost_combined, combinedio, or a literal Apache "
        "LogFormat string such as '%%h %%l %%u %%t \"%%r\" %%>s %%b %%D'",
    )


def add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        help="value of the source column, naming the server or logger (default: host name)",
    )


def spool_dir_of(args: argparse.Namespace) -> Path:
    return args.spool_dir or config.default_spool_dir()


def parse_size(text: str) -> int:
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    value = text.strip().upper().removesuffix("B")
    number, unit = value, ""
    if value and value[-1] in units:
        number, unit = value[:-1], value[-1]
    try:
        size = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 500M or 2G)") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return size


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


# -- the piped logger -----------------------------------------------------------


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
    p.add_argument(
        "--flush-interval",
        type=positive_float,
        default=config.DEFAULT_FLUSH_INTERVAL,
        help="load pending lines at least this often, in seconds (default: %(default)s)",
    )
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
    p.set_defaults(func=run_pipe)
    return p


def run_pipe(args: argparse.Namespace) -> int:
    from logpipe.ingest import privileges, spool
    from logpipe.ingest.reader import run_reader
    from logpipe.ingest.supervisor import WriterSupervisor
    from logpipe.parse.parser import FormatError, compile_format

    try:
        compile_format(args.format)
    except FormatError as exc:
        raise UsageError(f"--format: {exc}") from None
    dsn = config.resolve_dsn(args.dsn)
    check_dsn(dsn)
    spool_dir = spool_dir_of(args)
    os.umask(0o077)
    try:
        spool.ensure_spool_dir(spool_dir)
    except OSError as exc:
        raise UsageError(
            f"cannot use the spool directory {spool_dir}: {exc.strerror or exc}; "
            "create it for the user logpipe runs as, or pass --spool-dir"
        ) from None
    privileges.drop_privileges(args.user, args.group, spool_dir)
    source = args.source or config.default_source()
    env = dict(os.environ, LOGPIPE_DSN=dsn)
    writer_args = [
        "--spool-dir", str(spool_dir),
        "--flush-interval", str(args.flush_interval),
        "--batch-lines", str(args.batch_lines),
    ]  # fmt: skip
    return run_reader(
        spool_dir=spool_dir,
        header=spool.make_header(args.format, source),
        segment_bytes=args.segment_size,
        spool_max=args.spool_max,
        supervisor=WriterSupervisor(writer_args, env),
        stop_timeout=args.stop_timeout,
    )


def check_dsn(dsn: str) -> None:
    import psycopg2.extensions

    try:
        psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise UsageError(f"--dsn is not a valid connection string: {exc}") from None


def make_parser_factory() -> Callable[[str, str | None], object]:
    """Parsers that also mark bots (is_bot), caching the answer per user agent."""
    from logpipe.parse.agents import classify_agent
    from logpipe.parse.parser import compile_format

    def make(log_format: str, source: str | None) -> object:
        return compile_format(log_format, source=source, classify_agent=classify_agent)

    return make


# -- subcommands ------------------------------------------------------------------


def build_subcommand_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logpipe", description=PIPE_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "initdb",
        help="create or upgrade the database schema",
        description="Create or upgrade the tables and views logpipe uses, from the files in "
        "sql/. Safe to run again at any time, e.g. after an upgrade.",
    )
    add_dsn(s)
    s.set_defaults(func=run_initdb)

    s = sub.add_parser(
        "load",
        help="load access-log files (old or rotated, .gz too)",
        description="Load access-log files into access_log, each file in one transaction. "
        "A file whose content was loaded before is skipped (use --force to load it again). "
        "Exit status: 0 all loaded or skipped, 1 some file failed, 2 usage error.",
    )
    add_dsn(s)
    add_format(s)
    add_source(s)
    s.add_argument("files", nargs="+", type=Path, metavar="FILE", help="log files; '-' is stdin")
    s.add_argument("--force", action="store_true", help="load files even if loaded before")
    s.set_defaults(func=run_load)

    s = sub.add_parser(
        "replay",
        help="load what loggers left in the spool, then exit",
        description="Load every closed spool segment (left by a logger that stopped or "
        "died) and exit. Safe while loggers run: segments they still write are theirs. "
        "Exit status: 0 the spool holds nothing loadable any more, 1 database unreachable.",
    )
    add_dsn(s)
    add_spool_dir(s)
    s.set_defaults(func=run_replay)

    s = sub.add_parser(
        "drain",
        help="a background daemon that keeps loading the spool (for hosts without systemd)",
        description="Keep loading the spool into the database, detached from the terminal "
        "(python-daemon). For hosts without systemd: start it from cron with @reboot. "
        "`logpipe drain --stop` stops it.",
    )
    add_dsn(s)
    add_spool_dir(s)
    s.add_argument("--foreground", action="store_true", help="do not detach")
    s.add_argument("--stop", action="store_true", help="stop the running drain daemon")
    s.add_argument("--pidfile", type=Path, help="default: SPOOL_DIR/drain.pid")
    s.add_argument("--logfile", type=Path, help="where messages go (default: SPOOL_DIR/drain.log)")
    s.add_argument(
        "--flush-interval", type=positive_float, default=config.DEFAULT_FLUSH_INTERVAL,
        help="seconds between looks at the spool (default: %(default)s)",
    )
    s.set_defaults(func=run_drain)

    s = sub.add_parser(
        "status",
        help="what the spool holds and whether the database is taking rows",
        description="Show spool segments (live or left behind), bytes not yet loaded, "
        "database reachability, and recent rows and rejects. Exit status 0 when the "
        "database is reachable, 1 when not.",
    )
    add_dsn(s)
    add_spool_dir(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=run_status)

    try:
        from logpipe.reports import command as report
    except ImportError:
        report = None  # type: ignore[assignment]
    if report is not None:
        report.add_parser(sub, add_dsn)

    s = sub.add_parser("_writer", help=argparse.SUPPRESS)
    add_spool_dir(s)
    s.add_argument("--flush-interval", type=float, default=config.DEFAULT_FLUSH_INTERVAL)
    s.add_argument("--batch-lines", type=int, default=config.DEFAULT_BATCH_LINES)
    s.add_argument("--lifeline", type=int, help="fd of the pipe whose EOF means stop")
    s.set_defaults(func=run_writer_child)
    return p


def run_initdb(args: argparse.Namespace) -> int:
    import psycopg2

    from logpipe.store import database as db

    dsn = config.resolve_dsn(args.dsn)
    check_dsn(dsn)
    try:
        applied = db.initdb(dsn)
    except psycopg2.OperationalError as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {str(exc).strip()}")
        say("check --dsn and that PostgreSQL is running; create the database with createdb")
        return 1
    except psycopg2.Error as exc:
        say(f"schema update failed, nothing was changed: {str(exc).strip()}")
        return 1
    say(f"schema is up to date in {db.describe_dsn(dsn)} ({len(applied)} files applied)")
    return 0


def writer_settings(args: argparse.Namespace, dsn: str) -> WriterSettings:
    from logpipe.ingest.writer import WriterSettings

    return WriterSettings(
        spool_dir=spool_dir_of(args),
        dsn=dsn,
        flush_interval=getattr(args, "flush_interval", config.DEFAULT_FLUSH_INTERVAL),
        batch_lines=getattr(args, "batch_lines", config.DEFAULT_BATCH_LINES),
    )


def run_writer_child(args: argparse.Namespace) -> int:
    from logpipe.messages import PrefixedStderr

    sys.stderr = PrefixedStderr(sys.stderr)  # type: ignore[assignment]
    try:
        os.nice(5)  # loading is less urgent than serving requests: Apache gets the CPU first
    except OSError:
        pass
    try:
        from logpipe.ingest.writer import Writer

        dsn = config.resolve_dsn(None)
        check_dsn(dsn)
        writer = Writer(writer_settings(args, dsn), make_parser_factory())
    except (ImportError, UsageError) as exc:
        say(f"writer: {exc}")
        return EXIT_WRITER_CONFIG
    return writer.run(lifeline=args.lifeline)


def run_replay(args: argparse.Namespace) -> int:
    from logpipe.commands.replay import replay

    dsn = config.resolve_dsn(args.dsn)
    check_dsn(dsn)
    return replay(writer_settings(args, dsn), make_parser_factory())


def run_drain(args: argparse.Namespace) -> int:
    from logpipe.commands.drain import run_drain_daemon, stop_drain_daemon

    spool_dir = spool_dir_of(args)
    pidfile = args.pidfile or spool_dir / "drain.pid"
    if args.stop:
        return stop_drain_daemon(pidfile)
    dsn = config.resolve_dsn(args.dsn)
    check_dsn(dsn)
    logfile = args.logfile or spool_dir / "drain.log"
    return run_drain_daemon(
        writer_settings(args, dsn), make_parser_factory(), pidfile, logfile, args.foreground
    )


def run_load(args: argparse.Namespace) -> int:
    from logpipe.commands.load import load_files
    from logpipe.parse.parser import FormatError, compile_format

    try:
        compile_format(args.format)
    except FormatError as exc:
        raise UsageError(f"--format: {exc}") from None
    dsn = config.resolve_dsn(args.dsn)
    check_dsn(dsn)
    source = args.source or config.default_source()
    parser = make_parser_factory()(args.format, source)
    return load_files(dsn, parser, source, args.files, force=args.force)


def run_status(args: argparse.Namespace) -> int:
    from logpipe.commands.status import show_status

    dsn = config.resolve_dsn(args.dsn)
    check_dsn(dsn)
    return show_status(dsn, spool_dir_of(args), as_json=args.json)
