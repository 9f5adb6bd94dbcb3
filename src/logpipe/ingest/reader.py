"""The piped logger's main process: read stdin into the spool, never wait on anything else.

Apache stalls every request once the 64 KiB pipe is full, so this loop only
reads and appends raw bytes. Parsing and loading happen in the writer child.
SIGTERM does not stop the reading: Apache sends it at every graceful restart
while old children still write, so the reader goes on until EOF.
"""

from __future__ import annotations

import fcntl
import select
import signal
import time
from pathlib import Path

from logpipe.ingest.appender import SpoolAppender
from logpipe.ingest.spool import remove_stale_temporaries
from logpipe.ingest.supervisor import WriterSupervisor

READ_SIZE = 1024 * 1024  # larger than the pipe buffer: one read takes all that is waiting
PIPE_BYTES = 1024 * 1024  # the pipe buffer asked for: Linux's limit for unprivileged users
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Apache writes one line per request. Reading each as it comes costs a wakeup, a read
# and a write per line (~5 us of CPU each, taken from Apache at full load); after a
# small read, waiting a moment lets lines gather, so one read and one write take many.
# The 1 MiB pipe holds well over GATHER_SECONDS of even 100,000 requests/s.
GATHER_BELOW = 64 * 1024
GATHER_SECONDS = 0.005


def _keep_reading(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT: Apache's children still write after it; EOF is what ends us."""


def widen_pipe(fd: int) -> int | None:
    """Ask for a PIPE_BYTES pipe buffer: room for Apache's lines while this process
    waits or is slow. Returns the size granted, or None (not a pipe, not Linux, or over
    the per-user limit of pipe memory): the default 64 KiB then does."""
    try:
        return fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        return None


def hold_signals() -> None:
    """Ignore SIGHUP (prefork Apache sends it on restart); catch SIGTERM and SIGINT."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _keep_reading)
    signal.signal(signal.SIGINT, _keep_reading)


def run_reader(
    spool_dir: Path,
    header: bytes,
    segment_bytes: int,
    spool_max: int | None,
    supervisor: WriterSupervisor,
    stop_timeout: float,
    stdin_fd: int = 0,
) -> int:
    hold_signals()
    remove_stale_temporaries(spool_dir)
    appender = SpoolAppender(spool_dir, header, segment_bytes, spool_max)
    gather = widen_pipe(stdin_fd) is not None
    supervisor.start()
    try:
        while True:
            ready, _, _ = select.select([stdin_fd], [], [], 1.0)
            if ready:
                taken = appender.take_from(stdin_fd, READ_SIZE)
                if not taken:
                    break
                if gather and taken < GATHER_BELOW:
                    time.sleep(GATHER_SECONDS)
            supervisor.check()
    finally:
        appender.close()  # releases the segment: the writer may now finish it
        supervisor.stop(stop_timeout)
    return 0
