"""PostgreSQL connections and the schema (`logpipe initdb`)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import psycopg2.extensions

from logpipe.messages import first_line

_PACKAGED_SQL = Path(__file__).resolve().parents[1] / "sql"
_SOURCE_TREE_SQL = Path(__file__).resolve().parents[3] / "sql"
INITDB_LOCK = 0x6C6F6770  # advisory lock key: two initdb runs at once take turns


def sql_dir() -> Path:
    """The schema files: packaged with the wheel, or sql/ of a source checkout."""
    for candidate in (_PACKAGED_SQL, _SOURCE_TREE_SQL):
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    raise FileNotFoundError("logpipe's sql/ directory is missing from this installation")


def connect(dsn: str, application_name: str = "logpipe") -> psycopg2.extensions.connection:
    """Connect with a short timeout so an unreachable server is noticed quickly."""
    return psycopg2.connect(
        dsn, connect_timeout=5, application_name=application_name
    )


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


def initdb(dsn: str) -> list[str]:
    """Create or upgrade the schema from every file in sql/, in one transaction.

    Every file is idempotent, so this is safe to re-run; returns the files applied.
    """
    files = sorted(sql_dir().glob("*.sql"))
    conn = connect(dsn, "logpipe initdb")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (INITDB_LOCK,))
            for path in files:
                cur.execute(path.read_text(encoding="utf-8"))
    finally:
        conn.close()
    return [p.name for p in files]


def fold_rollups(conn: psycopg2.extensions.connection) -> str | None:
    """Move the pending report counts into the rollups (sql/020_reports.sql), in a
    transaction of its own. Returns None, or why it could not (e.g. a schema from
    before the pending table: `logpipe initdb` upgrades it; or a read-only user).
    A lost connection is raised: the caller has its own way of handling that."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT logpipe_rollup_fold()")
        conn.commit()
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        raise
    except psycopg2.Error as exc:
        conn.rollback()
        return first_line(exc)
    return None
