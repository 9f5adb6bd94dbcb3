"""Shared fixtures: a fresh real PostgreSQL database per test, and logpipe processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import psycopg2
import pytest

from logpipe.parse.columns import ACCESS_LOG_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("LOGPIPE_TEST_ADMIN_DSN", "dbname=postgres")


def admin_execute(sql: str) -> None:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or None)  # no params: a literal % stays as is
            return cur.fetchall()
    finally:
        conn.close()


def execute(dsn: str, sql: str) -> None:
    """Run a statement and commit it."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def scalar(dsn: str, sql: str, params: tuple = ()) -> object:
    return query(dsn, sql, params)[0][0]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


class Database:
    """A throwaway database with logpipe's schema; can be blocked and unblocked."""

    def __init__(self) -> None:
        self.name = f"logpipe_test_{uuid.uuid4().hex[:12]}"
        self.dsn = f"dbname={self.name}"
        admin_execute(f"CREATE DATABASE {self.name}")

    def initdb(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "logpipe", "initdb", "--dsn", self.dsn],
            check=False, capture_output=True, text=True,
        )
        assert result.returncode == 0, f"logpipe initdb failed: {result.stderr}"

    def block(self) -> None:
        """Refuse new connections and cut existing ones: the database is 'down'."""
        admin_execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        admin_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )

    def unblock(self) -> None:
        admin_execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")

    def rows(self) -> int:
        return int(scalar(self.dsn, "SELECT count(*) FROM access_log"))  # type: ignore[arg-type]

    def rejects(self) -> int:
        return int(scalar(self.dsn, "SELECT count(*) FROM access_log_rejects"))  # type: ignore[arg-type]

    def drop(self) -> None:
        self.unblock()
        admin_execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


@pytest.fixture
def database() -> Iterator[Database]:
    db = Database()
    db.initdb()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def empty_database() -> Iterator[Database]:
    db = Database()
    try:
        yield db
    finally:
        db.drop()


def logpipe_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "logpipe", *args]


def start_logger(
    dsn: str, spool_dir: Path, *args: str, stdin: int | None = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """A piped logger as Apache would start it: stdin a pipe, stderr captured."""
    return subprocess.Popen(
        logpipe_cmd("--dsn", dsn, "--spool-dir", str(spool_dir), "--flush-interval", "0.2",
                    *args),
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def writer_pids(reader_pid: int) -> list[int]:
    """The writer children of a reader process."""
    try:
        text = Path(f"/proc/{reader_pid}/task/{reader_pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def combined_line(i: int, path_prefix: str = "/page") -> bytes:
    """A unique, valid combined-format line."""
    return (
        f'192.0.2.{i % 250 + 1} - - [10/Oct/2024:13:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
        f'"GET {path_prefix}/{i}?q={i} HTTP/1.1" 200 {i % 5000} '
        f'"https://ref.example/{i % 7}" "agent/{i % 11}"\n'
    ).encode()


def loaded_paths(dsn: str) -> list[str]:
    return [r[0] for r in query(dsn, "SELECT path FROM access_log")]


def rows_of(copy_data: str) -> list[dict[str, object]]:
    """COPY text rows back to dicts of plain values (None for NULL)."""
    out = []
    for line in copy_data.split("\n")[:-1]:
        cells = line.split("\t")
        assert len(cells) == len(ACCESS_LOG_COLUMNS), line
        out.append({col: None if c == "\\N" else re.sub(
            r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), c)
            for col, c in zip(ACCESS_LOG_COLUMNS, cells)})
    return out
