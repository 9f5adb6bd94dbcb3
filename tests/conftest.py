"""Shared test helpers: throwaway PostgreSQL databases, logpipe processes, waiting, /proc.

Every helper the test modules share lives here, once: import it with
`from conftest import ...` rather than writing another copy.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Callable, TypeVar

import psycopg2
import pytest

from logpipe.parse.columns import ACCESS_LOG_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("LOGPIPE_TEST_ADMIN_DSN", "dbname=postgres")
# A logpipe command that does not finish in this long is hung (each takes a few seconds at most).
COMMAND_TIMEOUT = 60.0

T = TypeVar("T")


# -- waiting --------------------------------------------------------------------


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    what: str | Callable[[], str] = "",
    interval: float = 0.1,
) -> T:
    """Poll `condition` until it returns something true, and return that.

    Fails with an AssertionError naming `what` (a callable is called then, to say
    what the state was at the end) once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)  # polling interval, not a guess at how long anything takes
    said = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout} s waiting for {said or condition}")


# -- the database -----------------------------------------------------------------


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


class Database:
    """A throwaway database, with logpipe's schema after initdb(); can be blocked and unblocked."""

    def __init__(self) -> None:
        self.name = f"logpipe_test_{uuid.uuid4().hex[:12]}"
        self.dsn = f"dbname={self.name}"
        admin_execute(f"CREATE DATABASE {self.name}")

    def initdb(self) -> None:
        result = subprocess.run(
            logpipe_cmd("initdb", "--dsn", self.dsn),
            check=False, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
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
        count = scalar(self.dsn, "SELECT count(*) FROM access_log_rejects")
        return int(count)  # type: ignore[arg-type]

    def drop(self) -> None:
        self.unblock()
        admin_execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


@contextlib.contextmanager
def fresh_database(schema: bool = True) -> Iterator[Database]:
    """A new Database (with logpipe's schema unless schema=False), dropped afterwards.

    The one way to get a database: the fixtures below use it, and so can a fixture
    of another scope (e.g. one database for a whole module).
    """
    db = Database()
    try:
        if schema:
            db.initdb()
        yield db
    finally:
        db.drop()


@pytest.fixture
def database() -> Iterator[Database]:
    with fresh_database() as db:
        yield db


@pytest.fixture
def empty_database() -> Iterator[Database]:
    with fresh_database(schema=False) as db:
        yield db


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


# -- logpipe processes --------------------------------------------------------------


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


def combined_line(i: int, path_prefix: str = "/page") -> bytes:
    """A unique, valid combined-format line."""
    return (
        f'192.0.2.{i % 250 + 1} - - [10/Oct/2024:13:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
        f'"GET {path_prefix}/{i}?q={i} HTTP/1.1" 200 {i % 5000} '
        f'"https://ref.example/{i % 7}" "agent/{i % 11}"\n'
    ).encode()


# -- processes, seen through /proc ----------------------------------------------------


def writer_pids(reader_pid: int) -> list[int]:
    """The writer children of a reader process."""
    try:
        text = Path(f"/proc/{reader_pid}/task/{reader_pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def cmdline(pid: int) -> list[str]:
    """argv of a live process; [] for a zombie or a process that is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def pids_matching(*needles: str) -> list[int]:
    """Live processes whose argv, joined by spaces, contains every needle."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        line = " ".join(cmdline(int(name)))
        if line and all(n in line for n in needles):
            found.append(int(name))
    return sorted(found)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, ppid, ...); None when it is gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat_line.rsplit(")", 1)[1].split()


def is_alive(pid: int) -> bool:
    """Running, not a zombie (PID 1 here may never reap what it inherits)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (Uid, Gid, Groups, SigIgn, SigCgt ...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _in_mask(mask: str, signum: int) -> bool:
    return bool(int(mask, 16) & 1 << (signum - 1))


def signal_dispositions(pid: int) -> tuple[bool, bool]:
    """(SIGHUP ignored, SIGTERM caught) for a process; (False, False) once it is gone.

    logpipe's reader ignores SIGHUP and installs its SIGTERM handler in its read loop,
    so (True, True) means it is ready for Apache's signals.
    """
    try:
        status = proc_status(pid)
    except (FileNotFoundError, ProcessLookupError):
        return (False, False)
    return (_in_mask(status["SigIgn"], signal.SIGHUP), _in_mask(status["SigCgt"], signal.SIGTERM))


def handles_sigterm(pid: int) -> bool:
    """The process has installed a SIGTERM handler (logpipe's reader does so in its loop)."""
    return signal_dispositions(pid)[1]


def kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
