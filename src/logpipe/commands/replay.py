"""`logpipe replay`: load what stopped or dead loggers left in the spool."""

from __future__ import annotations

import argparse

from logpipe.commands.common import dsn_of, segment_parsers, writer_settings
from logpipe.ingest import spool
from logpipe.ingest.segments import ParserFactory
from logpipe.ingest.writer import Writer, WriterSettings
from logpipe.messages import EXIT_OK, say
from logpipe.store import database as db


def replay(settings: WriterSettings, make_parser: ParserFactory) -> int:
    if not settings.spool_dir.is_dir():
        say(f"no spool directory at {settings.spool_dir}; nothing to replay")
        return EXIT_OK
    writer = Writer(settings, make_parser)
    status = writer.drain()
    live = [n for n in spool.list_segments(settings.spool_dir)
            if not spool.is_closed(settings.spool_dir / n)]
    if status == EXIT_OK:
        say(
            f"replayed {writer.totals.rows} rows and {writer.totals.rejects} rejects "
            f"from {settings.spool_dir}"
            + (f"; {len(live)} segments belong to running loggers" if live else "")
        )
    else:
        say(
            f"stopped: {db.describe_dsn(settings.dsn)} is not usable (see above); "
            f"{writer.totals.rows} rows loaded, the rest stays in the spool. Run replay again "
            "once the database is back"
        )
    return status


def run(args: argparse.Namespace) -> int:
    make_parser = segment_parsers(args.max_line_bytes)
    return replay(writer_settings(args, dsn_of(args)), make_parser)
