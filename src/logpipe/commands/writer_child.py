"""`logpipe _writer`: the writer child the piped logger starts (not for people)."""

from __future__ import annotations

import argparse
import os
import sys

from logpipe.messages import EXIT_WRITER_CONFIG, PrefixedStderr, UsageError, say


def run(args: argparse.Namespace) -> int:
    sys.stderr = PrefixedStderr(sys.stderr)  # type: ignore[assignment]
    try:
        os.nice(5)  # loading is less urgent than serving requests: Apache gets the CPU first
    except OSError:
        pass
    try:
        from logpipe.commands.common import dsn_of, segment_parsers, writer_settings
        from logpipe.ingest.writer import Writer

        dsn = dsn_of(args)  # _writer has no --dsn: the reader passes it in $LOGPIPE_DSN
        make_parser = segment_parsers(args.max_line_bytes)
        writer = Writer(writer_settings(args, dsn), make_parser)
    except (ImportError, UsageError) as exc:
        say(f"writer: {exc}")
        return EXIT_WRITER_CONFIG
    return writer.run(lifeline=args.lifeline)
