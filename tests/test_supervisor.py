"""Writer supervision: restart with backoff, but not a writer that cannot be configured."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import wait_for

from logpipe.ingest.supervisor import WriterSupervisor, wait_for_exit
from logpipe.messages import EXIT_WRITER_CONFIG, PrefixedStderr

RESTART_DELAY = re.compile(r"restarting it in ([\d.]+) s")


def supervisor_running(code: str) -> WriterSupervisor:
    sup = WriterSupervisor([], env={})
    sup.command = [sys.executable, "-c", code]
    return sup


def checked(sup: WriterSupervisor) -> WriterSupervisor:
    """sup after one check(), as the reader's loop makes them."""
    sup.check()
    return sup


def test_writer_with_configuration_error_is_not_respawned(
        capfd: pytest.CaptureFixture[str]) -> None:
    sup = supervisor_running(f"raise SystemExit({EXIT_WRITER_CONFIG})")
    sup.start()
    wait_for(lambda: checked(sup).gave_up, timeout=10, what="the supervisor to give up",
             interval=0.05)
    for _ in range(20):
        sup.check()
        time.sleep(0.02)  # time, past the first backoff (0.1 s), for a restart that must not come
    assert sup.proc is None  # never started again
    err = capfd.readouterr().err
    assert err.count("configuration error") == 1


def test_crashing_writer_is_restarted_with_growing_backoff(
        capfd: pytest.CaptureFixture[str]) -> None:
    sup = supervisor_running("raise SystemExit(1)")
    sup.start()
    err = ""

    def restarted_four_times() -> bool:
        nonlocal err
        sup.check()
        err += capfd.readouterr().err
        return len(RESTART_DELAY.findall(err)) >= 4

    wait_for(restarted_four_times, timeout=30, what=lambda: f"four restarts: {err!r}",
             interval=0.02)
    sup.stop(1)
    delays = [float(d) for d in RESTART_DELAY.findall(err)]
    assert delays[:4] == sorted(delays[:4]) and delays[1] > delays[0], delays


def test_writer_that_cannot_be_started_is_reported_and_retried(
        capfd: pytest.CaptureFixture[str]) -> None:
    """E.g. --user names a user who cannot run this interpreter: the reader goes on."""
    sup = supervisor_running("")
    sup.command = ["/nonexistent/python3"]
    sup.start()
    assert sup.proc is None
    for _ in range(5):
        sup.check()
    sup.stop(1)  # returns at once: there is no writer to wait for
    err = capfd.readouterr().err
    assert err.count("cannot start the writer") == 1
    assert "lines are kept in the spool" in err


def test_writer_stderr_prefixes_every_line_libraries_print() -> None:
    out = io.StringIO()
    err = PrefixedStderr(out)
    err.write(f"logpipe[{os.getpid()}]: ours\npsycopg2.errors.AdminShutdown: term")
    err.write("inating\n\nCONTEXT: x\n")
    lines = out.getvalue().splitlines()
    assert lines[0] == f"logpipe[{os.getpid()}]: ours"
    assert lines[1] == f"logpipe[{os.getpid()}]: psycopg2.errors.AdminShutdown: terminating"
    assert all(line.startswith("logpipe[") for line in lines) and len(lines) == 4


def test_waiting_for_the_writer_to_exit_gives_its_status_or_times_out() -> None:
    """stop() waits on the writer with wait_for_exit: its status once it exits, a
    TimeoutExpired (the writer is then killed) when it outlives the timeout, and the
    status of a writer already reaped."""
    quick = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(0.2); raise SystemExit(3)"])
    assert wait_for_exit(quick, 30.0) == 3
    assert wait_for_exit(quick, 30.0) == 3  # reaped already: no pidfd, Popen's status
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_for_exit(slow, 0.3)
        assert slow.poll() is None
    finally:
        slow.kill()
        slow.wait()


def test_stop_kills_a_writer_that_outlives_the_stop_timeout(
        capsys: pytest.CaptureFixture[str]) -> None:
    sup = supervisor_running("import time; time.sleep(60)")
    sup.start()
    assert sup.proc is not None
    proc = sup.proc
    sup.stop(timeout=0.5)
    assert proc.returncode is not None and proc.returncode < 0  # killed
    assert sup.proc is None
    assert "did not finish within 0.5 s" in capsys.readouterr().err
