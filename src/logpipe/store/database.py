"""PostgreSQL connections and the schema (`logpipe initdb`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from logpipe import __version__
from logpipe.messages import first_line
from logpipe.store import roles

_PACKAGED_SQL = Path(__file__).resolve().parents[1] / "sql"
_SOURCE_TREE_SQL = Path(__file__).resolve().parents[3] / "sql"
INITDB_LOCK = 0x6C6F6770  # advisory lock key: two initdb runs at once take turns


def sql_dir() -> Path:
    """The schema files: packaged with the wheel, or sql/ of a source checkout."""
    for candidate in (_PACKAGED_SQL, _SOURCE_TREE_SQL):
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    raise FileNotFoundError("logpipe's sql/ directory is missing from this installation")


# What every connection gets unless its DSN says otherwise. A database host that
# dies, or a NAT that forgets the connection, sends nothing back: without these, a
# query waits out TCP's retransmissions (about 15 minutes) and an idle connection
# waits forever. Reconnecting costs one batch, loaded again from the spool, so a
# link silent for 10 s is treated as dead. (README: Timeouts.)
LINK_DEFAULTS = {
    "connect_timeout": "5",  # seconds, per host address: then the next host of host=a,b
    "keepalives": "1",
    "keepalives_idle": "5",  # seconds idle before probing; also keeps NAT state alive
    "keepalives_interval": "5",
    "keepalives_count": "3",  # where there is no tcp_user_timeout (not Linux)
    "tcp_user_timeout": "10000",  # ms without an acknowledgement: the link is dead
}
# Defaults libpq takes from the environment when the DSN does not name them.
_ENVIRONMENT = {"connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}


def connection_params(dsn: str, application_name: str = "logpipe") -> dict[str, str]:
    """The DSN's parameters (key=value, or a postgresql:// URI; "" for libpq's
    environment) over logpipe's defaults: the DSN's own values win, and so does a
    PG* variable for a default libpq would read from it."""
    defaults = {**LINK_DEFAULTS, "application_name": application_name}
    chosen = {k: v for k, v in defaults.items() if not os.environ.get(_ENVIRONMENT.get(k, ""))}
    return {**chosen, **psycopg2.extensions.parse_dsn(dsn)}


def connect(dsn: str, application_name: str = "logpipe") -> psycopg2.extensions.connection:
    """Connect with connection_params(): an unreachable or silent server is noticed in
    seconds, and libpq tries the next host of a multi-host DSN."""
    params = connection_params(dsn, application_name)
    return psycopg2.connect(psycopg2.extensions.make_dsn(**params))


def describe_dsn(dsn: str) -> str:
    """A DSN for messages, with any password removed."""
    if not dsn:
        return "the default database (libpq environment)"
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "the given --dsn"
    parts.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in parts.items())


# Schema versions: the files in sql/ make the version of the last upgrade_NNN_*.sql. A
# database of an older one gets the upgrades it lacks first, each once, in order, and
# logpipe_schema_version records them. Version 1 is the schema from before that table.
_SCHEMA_FILE = re.compile(r"\d+_\w+\.sql")
_UPGRADE_FILE = re.compile(r"upgrade_(\d+)_\w+\.sql")


class NewerSchemaError(Exception):
    """The database's schema is of a version this logpipe does not know."""

    def __init__(self, version: int, known: int) -> None:
        super().__init__(f"schema version {version}, newer than {known}")
        self.version = version
        self.known = known


@dataclass(frozen=True)
class Schema:
    """What `initdb` found and left."""

    version_before: int  # 0: no schema yet; 1: one from before versions were recorded
    version: int
    granularity: str  # of new partitions of access_log
    partitions_made: list[str]
    role_concerns: list[str] = field(default_factory=list)  # why a role's grants are moot


def schema_files(directory: Path) -> list[Path]:
    """The files every `initdb` runs, in name order: idempotent, non-destructive."""
    return sorted(p for p in directory.glob("*.sql") if _SCHEMA_FILE.fullmatch(p.name))


def upgrade_files(directory: Path) -> list[tuple[int, Path]]:
    """(version, file) of each upgrade, in version order: run once, before the others."""
    found = ((_UPGRADE_FILE.fullmatch(p.name), p) for p in directory.glob("*.sql"))
    return sorted((int(m.group(1)), p) for m, p in found if m)


def schema_target(directory: Path) -> int:
    """The version the files in `directory` make."""
    return max([1, *(version for version, _ in upgrade_files(directory))])


def initdb(dsn: str, granularity: str | None = None, writer_role: str | None = None,
           reader_role: str | None = None) -> Schema:
    """Create the schema, or bring an older one up to date, in one transaction.

    Safe to re-run: what exists is left as it is, so operators' views and grants stay,
    and a re-run with nothing to do takes no lock that stops loaders. `granularity`
    (None: keep the database's, month for a new one) cuts access_log's new partitions.
    `writer_role` and `reader_role` are granted what a logger and what the reports need
    (store/roles.py); roles.MissingRoles, before any change, when one does not exist.
    """
    directory = sql_dir()
    target = schema_target(directory)
    conn = connect(dsn, "logpipe initdb")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (INITDB_LOCK,))
            roles.check_exist(cur, [r for r in (writer_role, reader_role) if r is not None])
            before = schema_version(cur)
            if before > target:
                raise NewerSchemaError(before, target)
            for version, path in upgrade_files(directory):
                if 0 < before < version:
                    cur.execute(path.read_text(encoding="utf-8"))
            for path in schema_files(directory):
                cur.execute(path.read_text(encoding="utf-8"))
            _record_versions(cur, before, target)
            if granularity is not None:
                cur.execute("UPDATE logpipe_partitioning SET granularity = %s", (granularity,))
            cur.execute("SELECT partition FROM logpipe_prepare_partitions()")
            made = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT granularity FROM logpipe_partitioning")
            (unit,) = cur.fetchone()
            concerns = _grant_roles(cur, writer_role, reader_role)
            # after the grants: a partition gets INSERT for those who may insert into
            # access_log (the writer COPYs live lines into a partition directly)
            cur.execute("SELECT logpipe_partitions_ready()")
    finally:
        conn.close()
    return Schema(before, target, unit, made, concerns)


def _grant_roles(cur: psycopg2.extensions.cursor, writer_role: str | None,
                 reader_role: str | None) -> list[str]:
    """Grant each role its part; what makes a role's grants moot (e.g. a superuser)."""
    if writer_role is not None:
        roles.grant(cur, writer_role, roles.WRITER_TABLES, roles.WRITER_FUNCTIONS)
    if reader_role is not None:
        roles.grant(cur, reader_role, roles.READER_TABLES, roles.READER_FUNCTIONS)
    named = [r for r in (writer_role, reader_role) if r is not None]
    return [said for role in dict.fromkeys(named) for said in roles.concerns(cur, role)]


def schema_version(cur: psycopg2.extensions.cursor) -> int:
    """The database's schema version: 0 for none, 1 for one from before the ledger."""
    cur.execute("SELECT to_regclass('logpipe_schema_version') IS NOT NULL,"
                " to_regclass('access_log') IS NOT NULL")
    ledger, tables = cur.fetchone()
    if ledger:
        cur.execute("SELECT max(version) FROM logpipe_schema_version")
        (recorded,) = cur.fetchone()
        if recorded is not None:
            return int(recorded)
    return 1 if tables else 0


def _record_versions(cur: psycopg2.extensions.cursor, before: int, target: int) -> None:
    if before == target:
        return
    rows: list[tuple[int, str | None, str]] = []
    if before == 0:
        rows.append((target, __version__, "created"))
    else:
        if before == 1:  # when and by which logpipe: unknown
            rows.append((1, None, "found in place, made before versions were recorded"))
        rows += [(v, __version__, f"upgraded from version {before}")
                 for v in range(before + 1, target + 1)]
    for version, made_by, how in rows:
        cur.execute(
            "INSERT INTO logpipe_schema_version (version, applied_at, logpipe_version, how)"
            " VALUES (%s, CASE WHEN %s THEN now() END, %s, %s) ON CONFLICT (version) DO NOTHING",
            (version, made_by is not None, made_by, how),
        )


def prepare_partitions(conn: psycopg2.extensions.connection) -> str | None:
    """Create access_log's partitions ahead, and give old dates that landed in its
    default partition (a backfill) partitions of their own (sql/005_partitions.sql).
    None, or why it could not (e.g. a schema from before partitions: `logpipe initdb`
    upgrades it; or no EXECUTE on the function): see run_apart()."""
    return run_apart(conn, "SELECT count(*) FROM logpipe_prepare_partitions()")


# The whole UTC days before today that the writer summarizes: yesterday, and the day
# before for a writer that was down across midnight. Older days are summarized by the
# first report that needs them (reports/queries/visitors.py, daily.py).
SUMMARIZED_DAYS = 2
SUMMARY_TIMEOUT_MS = 120_000  # a day of 10M rows takes ~30 s
SUMMARY_LOCK_WAIT_MS = 1000  # at most this long for a lock the summaries need


def summarize_visits(conn: psycopg2.extensions.connection) -> str | None:
    """Summarize the visitors, visits, countries and channels of the last whole days,
    and the whole hours of today not yet summarized, with the default visit gap
    (sql/030_visitors.sql), so that `logpipe report visitors` need not count them from
    access_log. None, or why it could not: see run_apart()."""
    return _summarize(conn, "SELECT logpipe_visits_refresh(lo => (now() AT TIME ZONE"
                            f" 'UTC')::date - {SUMMARIZED_DAYS}), logpipe_visits_refresh_hours()")


def summarize_days(conn: psycopg2.extensions.connection) -> str | None:
    """Summarize the requests of the last whole days and of today up to its last hour
    for broken-links, offenders, agents and referers (sql/050_daily_summaries.sql), so
    that they need not read those days' rows. None, or why it could not."""
    return _summarize(conn, "SELECT logpipe_daily_refresh((now() AT TIME ZONE 'UTC')"
                            f"::date - {SUMMARIZED_DAYS})")


def _summarize(conn: psycopg2.extensions.connection, statement: str) -> str | None:
    """A summary refresh the writer runs when idle: bounded in time, and given up at
    once when access_log is locked (a migration, another refresh): the reports count
    those days meanwhile, and the writer goes back to its lines instead of waiting."""
    problem = run_apart(conn, statement, SUMMARY_TIMEOUT_MS, SUMMARY_LOCK_WAIT_MS)
    return None if problem == BUSY else problem


def fold_rollups(conn: psycopg2.extensions.connection, timeout_ms: int | None = None,
                 lock_wait_ms: int | None = None) -> str | None:
    """Move the pending report counts into the rollups (sql/020_reports.sql). None, or
    why it could not (e.g. a schema from before the pending table: `logpipe initdb`
    upgrades it; a read-only user; or it would take longer than `timeout_ms`, or wait
    longer than `lock_wait_ms` for another fold or a change to logpipe_asset_patterns
    (then BUSY): the counts stay pending, nothing is lost): see run_apart()."""
    return run_apart(conn, "SELECT logpipe_rollup_fold()", timeout_ms, lock_wait_ms)


# What run_apart() returns when the statement waited longer than its lock_wait_ms.
BUSY = "busy: another session holds a lock it needs"


def run_apart(conn: psycopg2.extensions.connection, statement: str,
              timeout_ms: int | None = None, lock_wait_ms: int | None = None) -> str | None:
    """Run a maintenance statement in a transaction of its own, at most `timeout_ms`.

    Returns None, or the first line of an error the server reported on a live
    connection (a missing function, no privilege, the statement cancelled by a
    timeout): rows load whatever happens here, so the caller says it and goes on. A
    lost connection is raised: the caller has its own way of handling that."""
    try:
        with conn.cursor() as cur:
            if timeout_ms is not None:
                cur.execute("SET LOCAL statement_timeout = %s", (timeout_ms,))
            if lock_wait_ms is not None:
                cur.execute("SET LOCAL lock_timeout = %s", (lock_wait_ms,))
            cur.execute(statement)
        conn.commit()
    except psycopg2.errors.LockNotAvailable:
        conn.rollback()
        return BUSY
    except psycopg2.Error as exc:
        if connection_lost(conn, exc):
            raise
        conn.rollback()
        return first_line(exc)
    return None


def connection_lost(conn: psycopg2.extensions.connection, exc: psycopg2.Error) -> bool:
    """Did `exc` end the connection, rather than report an error on a live one?"""
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) \
        and (bool(conn.closed) or not getattr(exc, "pgcode", None))
