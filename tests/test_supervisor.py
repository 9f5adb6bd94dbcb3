"""Writer supervision: restart with backoff, but not a writer that cannot be configured."""

from __future__ import annotations

import sys
import time

from logpipe.ingest.supervisor import WriterSupervisor
from logpipe.messages import EXIT_WRITER_CONFIG


def supervisor_running(code: str) -> WriterSupervisor:
    sup = WriterSupervisor([], env={})
    sup.command = [sys.executable, "-c", code]
    return sup


def test_writer_with_configuration_error_is_not_respawned(capfd) -> None:
    sup = supervisor_running(f"raise SystemExit({EXIT_WRITER_CONFIG})")
    sup.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not sup.gave_up:
        sup.check()
        time.sleep(0.05)
    assert sup.gave_up
    for _ in range(20):
        sup.check()
        time.sleep(0.02)
    assert sup.proc is None  # never started again
    err = capfd.readouterr().err
    assert err.count("configuration error") == 1


def test_crashing_writer_is_restarted_with_growing_backoff(capfd) -> None:
    sup = supervisor_running("raise SystemExit(1)")
    sup.start()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        sup.check()
        time.sleep(0.02)
    sup.stop(1)
    err = capfd.readouterr().err
    delays = [float(d) for d in
              __import__("re").findall(r"restarting it in ([\d.]+) s", err)]
    assert len(delays) >= 3
    assert delays[:4] == sorted(delays[:4]) and delays[1] > delays[0]


def test_writer_that_cannot_be_started_is_reported_and_retried(capfd) -> None:
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
    import io
    import os

    from logpipe.messages import PrefixedStderr

    out = io.StringIO()
    err = PrefixedStderr(out)
    err.write(f"logpipe[{os.getpid()}]: ours\npsycopg2.errors.AdminShutdown: term")
    err.write("inating\n\nCONTEXT: x\n")
    lines = out.getvalue().splitlines()
    assert lines[0] == f"logpipe[{os.getpid()}]: ours"
    assert lines[1] == f"logpipe[{os.getpid()}]: psycopg2.errors.AdminShutdown: terminating"
    assert all(line.startswith("logpipe[") for line in lines) and len(lines) == 4
