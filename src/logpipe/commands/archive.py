"""`logpipe archive --before DATE --archive DIR`: export what prune would remove, as
Parquet, removing nothing.

The same rows and layout as `logpipe prune --archive DIR` (logpipe.store.archive), read
in one snapshot; files named ...-export.parquet, replaced when it runs again.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import psycopg2

from logpipe.commands.common import connect_or_say, dsn_of
from logpipe.commands.prune import parse_age
from logpipe.messages import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, first_line, say
from logpipe.store import archive as arch
from logpipe.store import partitions as parts
from logpipe.store.parquet_copy import require_pyarrow


def parse_before(text: str, now: dt.datetime) -> dt.datetime:
    """--before: a UTC date (2024-01-01) or an age (90d), as the UTC midnight at or before."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        try:
            age = parse_age(text)
        except UsageError:
            raise UsageError(f"--before: not a date or an age: {text!r} "
                             "(use e.g. 2024-01-01 or 90d)") from None
        return parts.utc_midnight_before(now - age)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def run(args: argparse.Namespace) -> int:
    before = parse_before(args.before, dt.datetime.now(dt.timezone.utc))
    dsn = dsn_of(args)
    root: Path = args.archive
    require_pyarrow()
    try:
        arch.check_directory(root)
    except arch.ArchiveError as exc:
        say(f"{exc}; fix it or name another --archive")
        return EXIT_USAGE
    conn = connect_or_say(dsn, "logpipe archive")
    if conn is None:
        return EXIT_FAILURE
    try:
        files = arch.export_before(conn, arch.open_archive(conn, root), before)
    except arch.ArchiveError as exc:
        say(f"cannot write the archive under {root}: {exc}; fix it and run archive again")
        return EXIT_FAILURE
    except psycopg2.errors.InsufficientPrivilege as exc:
        say(f"not allowed to read what prune would remove ({first_line(exc)}): connect "
            "as the owner of access_log")
        return EXIT_FAILURE
    except psycopg2.Error as exc:
        say(f"archive failed: {first_line(exc)}")
        return EXIT_FAILURE
    finally:
        conn.close()
    for path, rows in files:
        print(f"exported {rows} row{'' if rows == 1 else 's'} to {path}", flush=True)
    if not files:
        print(f"nothing to export: no partition ends by {parts.moment(before)}, and no "
              "older row or reject is left", flush=True)
    return EXIT_OK
