"""The piped logger's main process: read stdin into the spool, never wait on anything else.

Apache stalls every request once the 64 KiB pipe is full, so this loop only
reads and appends raw bytes. Parsing and loading happen in the writer child.
SIGTERM does not stop the reading: Apache sends it at every graceful restart
while old children still write, so the reader goes on until EOF.
"""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

from logpipe.spool import SpoolAppender, remove_stale_temporaries
from logpipe.supervisor import WriterSupervisor

READ_SIZE = 1024 * 1024  # larger than the pipe buffer: one read takes all that is waiting


def _keep_reading(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT: Apache's children still write after it; EOF is what ends us."""


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
    supervisor.start()
    try:
        while True:
            ready, _, _ = select.select([stdin_fd], [], [], 1.0)
            if ready:
                data = os.read(stdin_fd, READ_SIZE)
                if not data:
                    break
                appender.append(data)
            supervisor.check()
    finally:
        appender.close()  # releases the segment: the writer may now finish it
        supervisor.stop(stop_timeout)
    return 0
