"""`logpipe prune --older-than 90d [--dry-run] [--archive DIR]`: free the disk space of old rows.

Drops the partitions of access_log whose rows are all older than the cutoff, deletes
older rows of the default partition (times no partition covers) and rejects received
before the cutoff; says what it removed, a line each, on stdout. Whole UTC days only:
the cutoff is moved back to the midnight before it, for rows. The rollups keep their
counts, so `logpipe report traffic`, `status` and `pages` still show the pruned days.
How it avoids holding up loggers: logpipe.store.partitions. With --archive, what it
removes is first written to Parquet files under DIR: logpipe.store.archive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

import psycopg2

from logpipe.commands.common import connect_or_say, dsn_of
from logpipe.messages import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, first_line, say
from logpipe.store import archive as arch
from logpipe.store import partitions as parts
from logpipe.store.parquet_copy import require_pyarrow

_AGE = re.compile(r"(\d+)\s*([dw])", re.IGNORECASE)


def parse_age(text: str) -> dt.timedelta:
    """--older-than: whole days (90d) or weeks (12w), at least a day."""
    match = _AGE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--older-than: not an age: {text!r} (use e.g. 90d or 12w)")
    days = int(match.group(1)) * (7 if match.group(2).lower() == "w" else 1)
    if not 1 <= days <= 365_000:
        raise UsageError(f"--older-than: {text!r} is out of range: from 1d up (e.g. 90d)")
    return dt.timedelta(days=days)


def run(args: argparse.Namespace) -> int:
    age = parse_age(args.older_than)
    dsn = dsn_of(args)
    archive_dir: Path | None = getattr(args, "archive", None)
    if archive_dir is not None and not args.dry_run:
        require_pyarrow()  # pyarrow is the archive extra: say so before anything is done
        try:
            arch.check_directory(archive_dir)
        except arch.ArchiveError as exc:
            say(f"{exc}; nothing was pruned. Fix it (or name another --archive) and run "
                "prune again")
            return EXIT_USAGE
    conn = connect_or_say(dsn, "logpipe prune")
    if conn is None:
        return EXIT_FAILURE
    try:
        return prune(conn, age, args.dry_run, None if args.dry_run else archive_dir)
    except parts.Busy:
        say("access_log stayed locked by another session (a long report, load or "
            "VACUUM FULL?); what is said above is done. Run prune again later")
    except psycopg2.errors.InsufficientPrivilege as exc:
        conn.rollback()
        say(f"not allowed to prune ({first_line(exc)}): connect as the owner of "
            "access_log, the role that ran `logpipe initdb`")
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction) as exc:
        conn.rollback()
        say(f"the schema is older than prune needs ({first_line(exc)}): run `logpipe initdb`")
    except psycopg2.OperationalError as exc:
        say(f"lost the database ({first_line(exc)}); what is said above is done. "
            "Run prune again")
    except psycopg2.Error as exc:
        conn.rollback()
        say(f"prune failed: {first_line(exc)}")
    except arch.ArchiveError as exc:
        say(f"cannot write the archive under {archive_dir}: {exc}. The rows being archived "
            "stay in the database and nothing more was pruned (what is said above is "
            "done); fix it and run prune again")
    finally:
        conn.close()
    return EXIT_FAILURE


def prune(conn: Any, age: dt.timedelta, dry_run: bool, archive_dir: Path | None = None) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtext('logpipe prune'))")
        if not cur.fetchone()[0]:  # held until this connection closes
            conn.rollback()
            say("another `logpipe prune` is running on this database; nothing was done")
            return EXIT_FAILURE
        cur.execute("SELECT now() - %s", (age,))
        cutoff = cur.fetchone()[0]
        before = parts.utc_midnight_before(cutoff)
        old = parts.expired(parts.partitions(cur), before)
    conn.commit()
    archive = _open_archive(conn, archive_dir) if archive_dir is not None else None
    can_drop = True  # until access_log stays busy: then empty the rest, drop them next time
    for part in old:
        if dry_run:
            with conn.cursor() as cur:
                rows = parts.count_rows(cur, part)
            conn.commit()
            print(f"would drop {part.name} ({part.describe()}): {_many(rows, 'row')}",
                  flush=True)
            continue
        rows = _empty(conn, part, archive)
        try:
            if can_drop:
                parts.drop_partition(conn, part)
                print(f"dropped {part.name} ({part.describe()}): {_many(rows, 'row')}",
                      flush=True)
                continue
        except parts.Busy:
            can_drop = False
        print(f"emptied {part.name} ({part.describe()}): {_many(rows, 'row')}; "
              "access_log stayed busy, so the next prune drops the empty table", flush=True)
    if dry_run:
        with conn.cursor() as cur:
            rows = parts.count_default_rows(cur, before)
            rejects = parts.count_rejects(cur, cutoff)
        conn.commit()
    elif archive is not None:
        rows = arch.archive_and_delete_default(conn, archive, before)
        _say_archived(archive)
        rejects = arch.archive_and_delete_rejects(conn, archive, cutoff)
        _say_archived(archive, "reject")
    else:
        rows = parts.delete_default_rows(conn, before)
        rejects = parts.delete_rejects(conn, cutoff)
    verb = "would delete" if dry_run else "deleted"
    if rows:
        print(f"{verb} {_many(rows, 'row')} dated before {parts.moment(before)} from "
              "access_log_default (times no partition covered)", flush=True)
    if rejects:
        print(f"{verb} {_many(rejects, 'reject')} received before {_when(cutoff)}",
              flush=True)
    if not (old or rows or rejects):
        print(f"nothing to prune: no partition ends by {parts.moment(before)}, and no "
              f"reject was received before {_when(cutoff)}", flush=True)
    return EXIT_OK


def _open_archive(conn: Any, root: Path) -> arch.Archive:
    """The archive under `root`, rid of what runs that died before their commit left."""
    archive = arch.open_archive(conn, root)
    for path in arch.remove_leftovers(conn, archive):
        say(f"removed {path}: a prune that did not finish wrote it, and its rows are "
            "still in the database (they are archived again now)")
    return archive


def _empty(conn: Any, part: parts.Partition, archive: arch.Archive | None) -> int:
    if archive is None:
        return parts.empty_partition(conn, part)
    rows = arch.archive_and_empty(conn, archive, part)
    _say_archived(archive)
    return rows


def _say_archived(archive: arch.Archive, noun: str = "row") -> None:
    for path, rows in archive.written:
        print(f"archived {_many(rows, noun)} to {path}", flush=True)


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _when(moment: dt.datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")
