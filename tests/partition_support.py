"""What the tests of partitions, prune, upgrades and initdb re-runs share: log lines at
any time, `logpipe` commands, where rows are, and throwaway roles."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
from conftest import COMMAND_TIMEOUT, admin_execute, execute, logpipe_cmd, query

UTC = dt.timezone.utc


def line_at(moment: dt.datetime, path: str = "/", status: int = 200, size: int = 100,
            agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0") -> bytes:
    """A combined-format line of a request at `moment`."""
    stamp = moment.astimezone(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (f'192.0.2.7 - - [{stamp}] "GET {path} HTTP/1.1" {status} {size} "-" "{agent}"\n'
            .encode())


def write_log(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(logpipe_cmd(*args), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)


def run_ok(*args: str) -> subprocess.CompletedProcess[str]:
    result = run(*args)
    assert result.returncode == 0, f"logpipe {' '.join(args)}: {result.stderr}"
    return result


def query_committed(dsn: str, sql: str) -> list[tuple]:
    """The rows of a statement that changes things, committed."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def rows_per_partition(dsn: str) -> dict[str, int]:
    return dict(query(dsn, "SELECT tableoid::regclass::text, count(*)::int FROM access_log"
                           " GROUP BY 1"))


def partitions(dsn: str) -> dict[str, tuple[dt.datetime | None, dt.datetime | None]]:
    """name -> (from, to) of every partition but the default one."""
    return {name: (lo, hi) for name, lo, hi in query(
        dsn, "SELECT partition::text, range_from, range_to FROM logpipe_partitions()"
             " WHERE NOT is_default")}


@contextlib.contextmanager
def temporary_role(dsn: str) -> Iterator[str]:
    """A login role for the test, dropped afterwards with what it was granted in `dsn`."""
    name = f"logpipe_test_{uuid.uuid4().hex[:10]}"
    admin_execute(f"CREATE ROLE {name} LOGIN")
    try:
        yield name
    finally:
        execute(dsn, f"DROP OWNED BY {name}")
        admin_execute(f"DROP ROLE {name}")
