"""`logpipe [options]`, the piped logger Apache starts: prepare the spool, drop root,
then read stdin into the spool while a writer child loads it."""

from __future__ import annotations

import argparse
import os

from logpipe import config
from logpipe.commands.common import check_format, dsn_of
from logpipe.ingest import privileges, spool
from logpipe.ingest.reader import run_reader
from logpipe.ingest.supervisor import WriterSupervisor
from logpipe.messages import UsageError
from logpipe.options import spool_dir_of


def run(args: argparse.Namespace) -> int:
    check_format(args.format)
    dsn = dsn_of(args)
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
    # The writer child takes the DSN from its environment, not its command line,
    # where any local user could read it (ps).
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
