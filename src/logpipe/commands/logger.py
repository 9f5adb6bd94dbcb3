"""`logpipe [options]`, the piped logger Apache starts: prepare the spool, drop root,
then read stdin into the spool while a writer child loads it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from logpipe import config
from logpipe.commands.common import check_format, dsn_of, warn_unused_proxies
from logpipe.ingest import privileges, spool, spool_guard
from logpipe.ingest.reader import run_reader
from logpipe.ingest.supervisor import WriterSupervisor
from logpipe.messages import PrefixedStderr
from logpipe.options import spool_dir_of


def run(args: argparse.Namespace) -> int:
    if not isinstance(sys.stderr, PrefixedStderr):  # `logpipe` rather than `python -m logpipe`
        sys.stderr = PrefixedStderr(sys.stderr)  # type: ignore[assignment]
    check_format(args.format)
    warn_unused_proxies(args.format, args.trusted_proxy)
    dsn = dsn_of(args)
    spool_dir = spool_dir_of(args)
    os.umask(0o077)
    prepare_spool(spool_dir, privileges.account_of(args.user, args.group))
    source = args.source or config.default_source()
    # The writer child takes the DSN from its environment, not its command line,
    # where any local user could read it (ps).
    env = dict(os.environ, LOGPIPE_DSN=dsn)
    writer_args = [
        "--spool-dir", str(spool_dir),
        "--flush-interval", str(args.flush_interval),
        "--batch-lines", str(args.batch_lines),
    ]  # fmt: skip
    if args.max_line_bytes is not None:
        writer_args += ["--max-line-bytes", str(args.max_line_bytes)]
    return run_reader(
        spool_dir=spool_dir,
        # --trusted-proxy travels in the header (not to the writer alone), so that replay
        # and drain parse a left-over segment the way its logger meant
        header=spool.make_header(args.format, source, args.max_line_bytes, args.trusted_proxy,
                                 args.anonymize_ip),
        segment_bytes=args.segment_size,
        spool_max=args.spool_max,
        supervisor=WriterSupervisor(writer_args, env),
        stop_timeout=args.stop_timeout,
    )


def prepare_spool(spool_dir: Path, account: privileges.Account | None) -> None:
    """Create and check the spool directory, hand it to --user and become that user,
    then check it again as that user: what is unusable is a UsageError before a line
    is read, not a traceback after."""
    runs_as = os.geteuid() if account is None else account.uid
    spool_fd = spool_guard.open_spool_dir(spool_dir, runs_as)
    try:
        if account is not None and os.geteuid() == 0:
            privileges.hand_over(spool_fd, account)
    except OSError as exc:
        raise spool_guard.unusable(
            spool_dir, f"cannot give it to {account.name}: {exc.strerror or exc}") from None
    finally:
        os.close(spool_fd)
    if account is not None:
        privileges.become(account)
    spool_guard.check_usable(spool_dir, runs_as)
