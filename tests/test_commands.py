"""initdb, load, status, drain and the help text of every command."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import (
    COMMAND_TIMEOUT,
    Database,
    combined_line,
    is_alive,
    logpipe_cmd,
    query,
    scalar,
    signal_dispositions,
    start_logger,
    wait_for,
)

from logpipe import cli
from logpipe.ingest import spool

SAMPLE = Path(__file__).resolve().parents[1] / "scripts" / "sample" / "access.log"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(logpipe_cmd(*args), input=stdin.decode(), capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT, check=False)


def leave_in_spool(database: Database, spool_dir: Path, count: int) -> None:
    """Lines a logger could not load (its database was down) left in the spool for later."""
    database.block()
    proc = start_logger(database.dsn, spool_dir, "--stop-timeout", "1")
    assert proc.stdin is not None
    proc.stdin.write(b"".join(combined_line(i) for i in range(count)))
    proc.stdin.close()
    assert proc.wait(timeout=COMMAND_TIMEOUT) == 0
    database.unblock()


def test_initdb_creates_schema_and_can_run_again(empty_database: Database) -> None:
    for _ in range(2):
        result = run("initdb", "--dsn", empty_database.dsn)
        assert result.returncode == 0, result.stderr
        assert "schema is up to date" in result.stderr
    columns = {r[0]: r[1] for r in query(
        empty_database.dsn,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'access_log'")}
    assert columns["time"] == "timestamp with time zone"
    assert columns["status"] == "smallint"
    assert columns["bytes"] == "bigint"
    assert columns["duration_us"] == "bigint"
    for name in ("vhost", "remote_host", "remote_user", "method", "path", "query", "protocol",
                 "referer", "user_agent", "source"):
        assert columns[name] == "text"
    nullable = scalar(empty_database.dsn,
                      "SELECT is_nullable FROM information_schema.columns "
                      "WHERE table_name = 'access_log' AND column_name = 'time'")
    assert nullable == "NO"


def test_initdb_unreachable_database_says_what_to_do() -> None:
    result = run("initdb", "--dsn", "host=127.0.0.1 port=1 dbname=nothing")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr and "createdb" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_dsn_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--dsn", "this is not a dsn", "--spool-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--dsn is not a valid connection string" in result.stderr


def test_load_plain_and_gzip_files_and_refuse_reloading(database: Database,
                                                        tmp_path: Path) -> None:
    plain = tmp_path / "access.log.1"
    plain.write_bytes(b"".join(combined_line(i) for i in range(1_000)))
    zipped = tmp_path / "access.log.2.gz"
    zipped.write_bytes(gzip.compress(b"".join(combined_line(i, "/gz") for i in range(500))
                                     + b"garbage\n"))
    result = run("load", "--dsn", database.dsn, str(plain), str(zipped))
    assert result.returncode == 0, result.stderr
    assert database.rows() == 1_500
    assert database.rejects() == 1
    again = run("load", "--dsn", database.dsn, str(plain))
    assert again.returncode == 0
    assert "already loaded" in again.stderr and "--force" in again.stderr
    assert database.rows() == 1_500
    forced = run("load", "--dsn", database.dsn, "--force", str(plain))
    assert forced.returncode == 0
    assert database.rows() == 2_500


def test_load_missing_file_fails_clearly(database: Database, tmp_path: Path) -> None:
    result = run("load", "--dsn", database.dsn, str(tmp_path / "nope.log"))
    assert result.returncode == 1
    assert "cannot read it" in result.stderr
    assert "Traceback" not in result.stderr


def test_load_without_schema_says_run_initdb(empty_database: Database, tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(combined_line(1))
    result = run("load", "--dsn", empty_database.dsn, str(log))
    assert result.returncode == 1
    assert "logpipe initdb" in result.stderr


def test_status_shows_spool_backlog_and_database(database: Database, tmp_path: Path) -> None:
    leave_in_spool(database, tmp_path, 100)
    result = run("status", "--dsn", database.dsn, "--spool-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert len(state["segments"]) == 1
    assert state["segments"][0]["live"] is False
    assert state["pending_bytes"] == sum(len(combined_line(i)) for i in range(100))
    text = run("status", "--dsn", database.dsn, "--spool-dir", str(tmp_path))
    assert "1 left by stopped loggers" in text.stdout and "logpipe replay" in text.stdout
    down = run("status", "--dsn", "host=127.0.0.1 port=1", "--spool-dir", str(tmp_path))
    assert down.returncode == 1 and "NOT USABLE" in down.stdout


def test_drain_daemon_detaches_loads_and_stops(database: Database, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    leave_in_spool(database, spool_dir, 300)
    started = run("drain", "--dsn", database.dsn, "--spool-dir", str(spool_dir))
    assert started.returncode == 0, started.stderr
    pidfile = spool_dir / "drain.pid"
    # the lock file is created first, its pid written just after
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), timeout=10,
             what="the pid in the pid file")
    pid = int(pidfile.read_text())
    assert pid != os.getpid()
    wait_for(lambda: database.rows() == 300, timeout=30, what="rows loaded by the daemon")
    # the segment is deleted just after the commit that makes its rows visible
    wait_for(lambda: spool.list_segments(spool_dir) == [], timeout=10,
             what="the loaded segment to be deleted")
    again = run("drain", "--dsn", database.dsn, "--spool-dir", str(spool_dir))
    assert again.returncode == 1 and "already runs" in again.stderr
    stopped = run("drain", "--stop", "--spool-dir", str(spool_dir))
    assert stopped.returncode == 0
    wait_for(lambda: not is_alive(pid), timeout=15, what="the daemon to exit")
    assert "drain daemon running" in (spool_dir / "drain.log").read_text()


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = {"logpipe": cli.build_pipe_parser()}
    top = cli.build_subcommand_parser()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.update({f"logpipe {n}": p for n, p in action.choices.items()
                            if not n.startswith("_")})
    return parsers


def test_every_command_and_option_has_help_text() -> None:
    parsers = _parsers()
    assert {"logpipe", "logpipe initdb", "logpipe load", "logpipe replay", "logpipe drain",
            "logpipe status"} <= set(parsers)
    for name, parser in parsers.items():
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and action.help != argparse.SUPPRESS, (
                    f"{name} {action.option_strings[0]} has no help text")
        result = run(*name.split()[1:], "--help")
        assert result.returncode == 0 and "usage: logpipe" in result.stdout


def test_sighup_is_ignored_and_sigterm_waits_for_eof(database: Database, tmp_path: Path) -> None:
    proc = start_logger(database.dsn, tmp_path)
    wait_for(lambda: signal_dispositions(proc.pid) == (True, True), timeout=10,
             what="the logger's signal handlers")
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # time for an exit that must not happen
    assert proc.poll() is None
    assert proc.stdin is not None
    proc.stdin.write(combined_line(1))
    proc.stdin.close()
    assert proc.wait(timeout=COMMAND_TIMEOUT) == 0
    assert database.rows() == 1


def test_module_and_console_script_are_the_same_program() -> None:
    module = subprocess.run([sys.executable, "-m", "logpipe", "--help"], capture_output=True,
                            text=True, check=True, timeout=COMMAND_TIMEOUT)
    script = subprocess.run(["logpipe", "--help"], capture_output=True, text=True, check=True,
                            timeout=COMMAND_TIMEOUT)
    assert module.stdout == script.stdout


def test_quickstart_sample_is_bundled() -> None:
    assert SAMPLE.exists() and SAMPLE.read_bytes().count(b"\n") == 44
