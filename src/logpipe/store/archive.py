"""Archive what `logpipe prune` removes as Parquet files, and nothing is lost or doubled.

Layout (Hive style, so DuckDB, pandas and Spark read a tree as one table with `month`
as a column), by UTC month of `time` and of `received_at`:

    DIR/access_log/month=YYYY-MM/<partition>-<db>-x<xid>.parquet
    DIR/access_log/month=YYYY-MM/access_log_default-<db>-x<xid>.parquet
    DIR/access_log_rejects/month=YYYY-MM/access_log_rejects-<db>-x<xid>.parquet

Each set of rows is written inside the transaction that then removes it (TRUNCATE of
a partition, held in SHARE mode meanwhile so that no row slips in unarchived; DELETE of
the default partition's old rows and of old rejects, in a REPEATABLE READ snapshot, so
the DELETE removes exactly the rows that were written), fsync'ed and renamed into place
before that removal; the file's name carries the transaction's id (<xid>). A run that
dies before its commit leaves its rows in the database and its file behind: the next
run finds that transaction aborted (txid_status) and removes the file before it writes
the rows again. A committed file stays, whatever runs after it. <db> marks the database
(its cluster's system identifier and its oid), so that several databases may archive
into one DIR and each run removes only its own leftovers.

`logpipe archive` (export_before) writes the same rows without removing them, under
names ending `-export`: running it again replaces its files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from logpipe.durable import fsync_directory
from logpipe.store import partitions as parts
from logpipe.store.parquet_copy import columns_of, copy_to_parquet, make_dirs, select_list

Connection = psycopg2.extensions.connection
Cursor = psycopg2.extensions.cursor
ROWS_TREE = "access_log"
REJECTS_TREE = "access_log_rejects"
_PRUNED_FILE = re.compile(r"(?P<stem>.+)-(?P<db>[0-9a-f]{8})-x(?P<xid>\d+)\.parquet")


class ArchiveError(Exception):
    """Writing the archive failed (disk full, no permission, a value Parquet cannot
    take): the rows it was writing stay in the database."""


@dataclass
class Archive:
    root: Path
    db: str  # this database's mark in file names
    written: list[tuple[Path, int]] = field(default_factory=list)  # by the current step


@dataclass(frozen=True)
class _Rows:
    """One set of rows to archive: a table, the column that dates a row, a condition."""

    table: str
    tree: str
    stem: str
    dated_by: str
    where: sql.Composable = field(default_factory=lambda: sql.SQL("true"))
    params: tuple = ()


def check_directory(root: Path) -> None:
    """Create DIR if needed and prove that files can be made in it, before anything is
    removed. Raises ArchiveError saying why not."""
    try:
        make_dirs(root)
        probe = root / f".logpipe-probe-{os.getpid()}"
        with open(probe, "wb") as out:
            out.write(b"probe")
            os.fsync(out.fileno())
        probe.unlink()
    except OSError as exc:
        raise ArchiveError(f"cannot write in the archive directory {root}: "
                           f"{exc.strerror or exc}") from None


def open_archive(conn: Connection, root: Path) -> Archive:
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT system_identifier FROM pg_control_system()),"
                    " (SELECT oid FROM pg_database WHERE datname = current_database())")
        system, oid = cur.fetchone()
    conn.commit()
    return Archive(root, hashlib.sha256(f"{system}/{oid}".encode()).hexdigest()[:8])


def remove_leftovers(conn: Connection, archive: Archive) -> list[Path]:
    """Remove the files of this database's runs that died before their commit (their
    rows are still in the database), and half-written files; returns what went. Call it
    holding prune's lock, before writing anything."""
    found: dict[int, list[Path]] = {}
    gone = []
    for tree in (ROWS_TREE, REJECTS_TREE):
        for path in sorted((archive.root / tree).glob("month=*/*")):
            name = path.name
            half = _PRUNED_FILE.fullmatch(name[1:-4]) if name.startswith(".") and \
                name.endswith(".parquet.tmp") else None
            if half and half["db"] == archive.db:
                gone.append(path)
                continue
            match = _PRUNED_FILE.fullmatch(name)
            if match and match["db"] == archive.db:
                found.setdefault(int(match["xid"]), []).append(path)
    if found:
        with conn.cursor() as cur:
            cur.execute("SELECT x, txid_status(x) FROM unnest(%s::bigint[]) x", (list(found),))
            statuses = dict(cur.fetchall())
        conn.commit()
        gone += [p for xid, paths in found.items() if statuses[xid] == "aborted"
                 for p in paths]
    for path in gone:
        path.unlink(missing_ok=True)
        fsync_directory(path.parent)
    return gone


def archive_and_empty(conn: Connection, archive: Archive, part: parts.Partition) -> int:
    """Write the partition's rows to the archive, then TRUNCATE it, recorded in
    logpipe_pruned, in one transaction; returns how many rows."""
    rows = _Rows(ROWS_TREE, ROWS_TREE, part.name, "time")

    def attempt() -> int:
        with conn.cursor() as cur:
            _begin(cur, repeatable=False)
            table = sql.Identifier(part.name)
            cur.execute(sql.SQL("LOCK TABLE ONLY {} IN SHARE MODE").format(table))
            xid = _xid(cur)
            count = _write(cur, archive, rows, _months_of_partition(cur, part), f"x{xid}",
                           source=part.name)
            _remove(cur, sql.SQL("TRUNCATE ONLY {}").format(table))
            if count:
                _record(cur, part.name, part.range_from, part.range_to, count)
        conn.commit()
        return count

    return _in_transaction(conn, archive, lambda: parts._retry(conn, attempt))


def archive_and_delete_default(conn: Connection, archive: Archive, before: dt.datetime) -> int:
    """Write the default partition's rows dated before `before`, then delete them,
    recorded in logpipe_pruned; returns how many."""
    rows = _Rows("access_log_default", ROWS_TREE, "access_log_default", "time",
                 sql.SQL("time < %s"), (before,))

    def attempt() -> int:
        with conn.cursor() as cur:
            _begin(cur, repeatable=True)
            xid = _xid(cur)
            count = _write(cur, archive, rows, _months_of_rows(cur, rows), f"x{xid}")
            if count:
                deleted = _remove(cur, sql.SQL(
                    "DELETE FROM ONLY access_log_default WHERE time < %s"), (before,))
                _same(count, deleted)
                _record(cur, "access_log_default", None, before, deleted)
        conn.commit()
        return count

    return _in_transaction(conn, archive, attempt)


def archive_and_delete_rejects(conn: Connection, archive: Archive, before: dt.datetime) -> int:
    """Write the rejects received before `before`, then delete them; returns how many."""
    rows = _rejects(before)

    def attempt() -> int:
        with conn.cursor() as cur:
            _begin(cur, repeatable=True)
            xid = _xid(cur)
            count = _write(cur, archive, rows, _months_of_rows(cur, rows), f"x{xid}")
            if count:
                _same(count, _remove(cur, sql.SQL(
                    "DELETE FROM access_log_rejects WHERE received_at < %s"), (before,)))
        conn.commit()
        return count

    return _in_transaction(conn, archive, attempt)


def export_before(conn: Connection, archive: Archive,
                  before: dt.datetime) -> list[tuple[Path, int]]:
    """What a prune with this cutoff would archive, written and left in the database:
    one snapshot (REPEATABLE READ, read only) for all of it. Returns the files."""

    def attempt() -> list[tuple[Path, int]]:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            _settings(cur)
            for part in parts.expired(parts.partitions(cur), before):
                _write(cur, archive, _Rows(ROWS_TREE, ROWS_TREE, part.name, "time"),
                       _months_of_partition(cur, part), "export", source=part.name)
            default = _Rows("access_log_default", ROWS_TREE, "access_log_default", "time",
                            sql.SQL("time < %s"), (before,))
            _write(cur, archive, default, _months_of_rows(cur, default), "export")
            rejects = _rejects(before)
            _write(cur, archive, rejects, _months_of_rows(cur, rejects), "export")
        conn.commit()
        return list(archive.written)

    try:
        return _in_transaction(conn, archive, attempt)
    finally:
        archive.written.clear()


def _rejects(before: dt.datetime) -> _Rows:
    return _Rows(REJECTS_TREE, REJECTS_TREE, REJECTS_TREE, "received_at",
                 sql.SQL("received_at < %s"), (before,))


def _in_transaction(conn: Connection, archive: Archive, attempt: Any) -> Any:
    """Run a step; if it fails before its commit, roll back and remove the files it
    wrote (their rows stay in the database), and say why as an ArchiveError."""
    import pyarrow as pa

    archive.written.clear()
    try:
        return attempt()
    except (OSError, pa.ArrowException) as exc:
        _abandon(conn, archive)
        raise ArchiveError(_why(exc)) from None
    except BaseException:
        _abandon(conn, archive)
        raise


def _abandon(conn: Connection, archive: Archive) -> None:
    if not conn.closed:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass  # the connection is gone: so is the transaction
    for path, _ in archive.written:
        path.unlink(missing_ok=True)  # best effort: a leftover is removed by the next run
    archive.written.clear()


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _begin(cur: Cursor, repeatable: bool) -> None:
    if repeatable:  # the DELETE then removes exactly the rows the COPY wrote
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    _settings(cur)
    parts._lock_wait(cur)


def _settings(cur: Cursor) -> None:
    # COPY's text of a value is what the Parquet reader parses: pin its formats, and let
    # a long partition take its time.
    cur.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO';"
                " SET LOCAL bytea_output = 'hex'; SET LOCAL statement_timeout = 0")


def _xid(cur: Cursor) -> int:
    cur.execute("SELECT txid_current()")
    return int(cur.fetchone()[0])


def _month_start(when: dt.datetime) -> dt.datetime:
    utc = when.astimezone(dt.timezone.utc)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(month: dt.datetime) -> dt.datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _months_of_partition(cur: Cursor, part: parts.Partition) -> list[dt.datetime]:
    """The UTC months a partition's range covers; from its first row for an open start
    (access_log_legacy)."""
    start = part.range_from
    if start is None:
        _check_dates(cur, _Rows(part.name, ROWS_TREE, part.name, "time"))
        cur.execute(sql.SQL("SELECT min(time) FROM ONLY {}").format(sql.Identifier(part.name)))
        start = cur.fetchone()[0]
        if start is None:
            return []
    months, month = [], _month_start(start)
    while part.range_to is None or month < part.range_to:
        months.append(month)
        month = _next_month(month)
        if part.range_to is None:
            break  # not an expired partition: never asked for
    return months


def _months_of_rows(cur: Cursor, rows: _Rows) -> list[dt.datetime]:
    _check_dates(cur, rows)
    cur.execute(sql.SQL("SELECT DISTINCT date_trunc('month', {col}) FROM ONLY {table}"
                        " WHERE {where} ORDER BY 1").format(
        col=sql.Identifier(rows.dated_by), table=sql.Identifier(rows.table), where=rows.where),
        rows.params)
    return [month for (month,) in cur.fetchall()]  # UTC: the session's TimeZone


def _check_dates(cur: Cursor, rows: _Rows) -> None:
    """Refuse rows that no Parquet timestamp (nor Python) holds: years before 1 or after
    9999, and infinity, which no log line makes but a hand-made row may hold."""
    col, table = sql.Identifier(rows.dated_by), sql.Identifier(rows.table)
    cur.execute(sql.SQL("SELECT count(*) FROM ONLY {table} WHERE {where} AND NOT ({col} >="
                        " '0001-01-01 00:00+00' AND {col} < '10000-01-01 00:00+00')").format(
        table=table, where=rows.where, col=col), rows.params)
    (count,) = cur.fetchone()
    if count:
        raise ArchiveError(
            f"{count} row{'s' if count > 1 else ''} of {rows.table} to archive "
            f"{'are' if count > 1 else 'is'} dated outside the years 1 to 9999 (infinity, "
            "BC), which the archive cannot hold; look at them with SELECT * FROM ONLY "
            f"{rows.table} WHERE NOT ({rows.dated_by} >= '0001-01-01' AND {rows.dated_by} "
            "< '10000-01-01') and delete or correct them")


def _write(cur: Cursor, archive: Archive, rows: _Rows, months: list[dt.datetime],
           suffix: str, source: str | None = None) -> int:
    """Each month's rows of `rows` (read from `source`, default rows.table) to a file of
    its own; returns how many rows in all."""
    columns = columns_of(cur, rows.table)
    table = sql.Identifier(source or rows.table)
    col = sql.Identifier(rows.dated_by)
    total = 0
    for month in months:
        directory = archive.root / rows.tree / f"month={month:%Y-%m}"
        make_dirs(directory)
        stem = re.sub(r"[^\w.-]", "_", rows.stem)  # a partition's name, made by hand maybe
        path = directory / f"{stem}-{archive.db}-{suffix}.parquet"
        query = sql.SQL("SELECT {cols} FROM ONLY {table} WHERE {col} >= %s AND {col} < %s"
                        " AND {where}").format(cols=select_list(columns), table=table, col=col,
                                               where=rows.where)
        count = copy_to_parquet(cur, query, (month, _next_month(month), *rows.params),
                                columns, path)
        if count:
            archive.written.append((path, count))
            total += count
    return total


def _remove(cur: Cursor, statement: sql.Composable, params: tuple = ()) -> int:
    """The statement that removes archived rows, once the files are in place: its lock
    asked for a moment at a time, as prune does, within this transaction (a rollback
    would throw away what was written). Returns the rows it removed."""
    for pause in (*parts.RETRY_SECONDS, None):
        cur.execute("SAVEPOINT logpipe_archive")
        try:
            cur.execute(statement, params or None)
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            cur.execute("ROLLBACK TO SAVEPOINT logpipe_archive")
            if pause is None:
                raise parts.Busy() from None
            time.sleep(pause)
            continue
        removed = cur.rowcount
        cur.execute("RELEASE SAVEPOINT logpipe_archive")
        return removed
    raise AssertionError("unreachable")


def _same(written: int, removed: int) -> None:
    """The snapshot makes them equal; if they ever differ, remove nothing."""
    if written != removed:
        raise ArchiveError(f"{written} rows were archived but {removed} matched their "
                           "DELETE; nothing was removed")


def _record(cur: Cursor, relation: str, range_from: dt.datetime | None,
            range_to: dt.datetime | None, rows: int) -> None:
    cur.execute("INSERT INTO logpipe_pruned (relation, range_from, range_to, rows)"
                " VALUES (%s, %s, %s, %s)", (relation, range_from, range_to, rows))
