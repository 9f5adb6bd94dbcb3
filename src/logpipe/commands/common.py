"""What several commands need from their parsed options: a checked DSN, a checked
LogFormat, the writer's settings."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable

from logpipe import config
from logpipe.messages import UsageError, say
from logpipe.options import spool_dir_of

if TYPE_CHECKING:
    from logpipe.ingest.writer import WriterSettings


def dsn_of(args: argparse.Namespace) -> str:
    """--dsn (or $LOGPIPE_DSN, or libpq's defaults), refused at once if malformed."""
    import psycopg2.extensions

    dsn = config.resolve_dsn(getattr(args, "dsn", None))
    try:
        psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise UsageError(f"--dsn is not a valid connection string: {exc}") from None
    return dsn


def connect_or_say(dsn: str, application: str) -> Any:
    """A connection for a command, or None once it is said why there is none."""
    import psycopg2

    from logpipe.messages import first_line
    from logpipe.store import database as db

    try:
        return db.connect(dsn, application)
    except psycopg2.OperationalError as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {first_line(exc)}; check --dsn")
        return None


def check_format(log_format: str) -> None:
    """An unusable --format is a usage error, before anything is started."""
    from logpipe.parse import FormatError, compile_format

    try:
        compile_format(log_format)
    except FormatError as exc:
        raise UsageError(f"--format: {exc}") from None


def warn_unused_proxies(log_format: str, trusted_proxies: list[str]) -> None:
    """Say once, at start, that --trusted-proxy cannot apply to this format."""
    from logpipe.parse.proxies import unused_warning

    warning = unused_warning(log_format, trusted_proxies)
    if warning is not None:
        say(f"warning: {warning}")


def segment_parsers(max_line_bytes: int | None) -> Callable[
        [str, str | None, int | None, tuple[str, ...], bool], Any]:
    """How the writer, replay and drain parse a segment: its header's format, source and
    trusted proxies, and the line cap the command was given, else the one its logger was
    given (in the header too), else the format's default."""
    from logpipe.parse import parser_marking_bots

    def make(log_format: str, source: str | None, header_cap: int | None,
             trusted_proxies: tuple[str, ...] = (), anonymize_ip: bool = False) -> Any:
        return parser_marking_bots(log_format, source, max_line_bytes or header_cap,
                                   trusted_proxies, anonymize_ip)

    return make


def writer_settings(args: argparse.Namespace, dsn: str) -> WriterSettings:
    # imported here: the logger's reader, which starts the writer, does not need the
    # writer's modules (~40 ms of imports before the writer is started)
    from logpipe.ingest.writer import WriterSettings

    return WriterSettings(
        spool_dir=spool_dir_of(args),
        dsn=dsn,
        flush_interval=getattr(args, "flush_interval", config.DEFAULT_FLUSH_INTERVAL),
        batch_lines=getattr(args, "batch_lines", config.DEFAULT_BATCH_LINES),
    )
