"""`logpipe drain`: a detached daemon that keeps loading the spool (no systemd needed).

python-daemon is used here only: it detaches from the terminal and replaces
stdin with /dev/null, which is right for a daemon and wrong for the piped
logger itself.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from logpipe.commands.common import dsn_of, segment_parsers, writer_settings
from logpipe.ingest.segments import ParserFactory
from logpipe.ingest.writer import Writer, WriterSettings
from logpipe.messages import EXIT_FAILURE, EXIT_OK, say
from logpipe.options import spool_dir_of


def run(args: argparse.Namespace) -> int:
    spool_dir = spool_dir_of(args)
    pidfile = args.pidfile or spool_dir / "drain.pid"
    if args.stop:
        return stop_drain_daemon(pidfile)
    logfile = args.logfile or spool_dir / "drain.log"
    make_parser = segment_parsers(args.max_line_bytes)
    return run_drain_daemon(writer_settings(args, dsn_of(args)), make_parser, pidfile,
                            logfile, args.foreground)


def run_drain_daemon(
    settings: WriterSettings,
    make_parser: ParserFactory,
    pidfile: Path,
    logfile: Path,
    foreground: bool,
) -> int:
    from logpipe.ingest import spool

    try:
        spool.ensure_spool_dir(settings.spool_dir)
    except OSError as exc:
        say(f"cannot use the spool directory {settings.spool_dir}: {exc}")
        return EXIT_FAILURE
    running = _running_pid(pidfile)
    if running is not None:
        say(f"a drain daemon already runs (pid {running}, {pidfile}); `logpipe drain --stop` "
            "stops it")
        return EXIT_FAILURE
    writer = Writer(settings, make_parser)
    if foreground:
        return writer.run()

    import daemon
    import daemon.pidfile

    log = open(logfile, "a", buffering=1)  # noqa: SIM115 - kept open for the daemon's life
    say(f"drain daemon starting; messages go to {logfile}, pid in {pidfile}")
    context = daemon.DaemonContext(
        pidfile=daemon.pidfile.TimeoutPIDLockFile(str(pidfile), acquire_timeout=5),
        stdout=log,
        stderr=log,
        umask=0o077,
        working_directory="/",
        signal_map={signal.SIGTERM: writer.request_stop, signal.SIGHUP: signal.SIG_IGN},
    )
    with context:
        say(f"drain daemon running: loading {settings.spool_dir}")
        status = writer.run()
        say(f"drain daemon stopped ({writer.totals.rows} rows loaded)")
    return status


def stop_drain_daemon(pidfile: Path) -> int:
    pid = _running_pid(pidfile)
    if pid is None:
        say(f"no drain daemon is running (no live pid in {pidfile})")
        return EXIT_OK
    os.kill(pid, signal.SIGTERM)
    say(f"asked the drain daemon (pid {pid}) to stop; it loads what is closed, then exits")
    return EXIT_OK


def _running_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


