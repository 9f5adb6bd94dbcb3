"""`logpipe load` on a terminal shows progress (bytes of a total, lines, lines/s, time
left; per file and overall), by compressed bytes for a compressed file; and nothing
but its messages when stderr is not a terminal."""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import struct
import subprocess
import termios
import threading
from pathlib import Path
from typing import IO

from conftest import COMMAND_TIMEOUT, Database, combined_line, logpipe_cmd
from tqdm import tqdm

LINES = 20_000


def run_on_terminal(*args: str, stdin: int | IO[bytes] = subprocess.DEVNULL
                    ) -> tuple[int, str]:
    """Run logpipe with stderr on a pseudo-terminal 120 columns wide: (status, what the
    terminal received)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    received: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer of the terminal is gone
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(logpipe_cmd(*args), stdin=stdin,
                                stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        status = proc.wait(timeout=COMMAND_TIMEOUT)
        reader.join(COMMAND_TIMEOUT)
    finally:
        os.close(master)
    return status, b"".join(received).decode("utf-8", errors="replace")


def size_shown(size: int) -> str:
    """A byte count as the bars show it."""
    return f"{tqdm.format_sizeof(size, divisor=1000)}B"


def write_log(path: Path, prefix: str, compress: bool = False) -> bytes:
    data = b"".join(combined_line(i, prefix) for i in range(LINES))
    path.write_bytes(gzip.compress(data) if compress else data)
    return data


def test_progress_on_a_terminal(database: Database, tmp_path: Path) -> None:
    plain = tmp_path / "access.log.1"
    zipped = tmp_path / "access.log.2.gz"
    write_log(plain, "/plain")
    write_log(zipped, "/zipped", compress=True)
    status, screen = run_on_terminal("load", "--dsn", database.dsn, str(plain), str(zipped))
    assert status == 0, screen
    assert database.rows() == 2 * LINES
    plain_size, zipped_size = plain.stat().st_size, zipped.stat().st_size
    # each file's bar: its name, then bytes of its size on disk (the compressed size for
    # the .gz), lines and lines/s, and the time left
    for path, size in ((plain, plain_size), (zipped, zipped_size)):
        bar = re.search(rf"{re.escape(path.name)}: 100%\|[^|]*\| ({size_shown(size)})/"
                        rf"\1, {LINES:,} lines, [\d,]+ lines/s \[\d\d:\d\d<\d\d:\d\d\]",
                        screen)
        assert bar is not None, (path, screen)
    # the overall bar: both files
    total = size_shown(plain_size + zipped_size)
    assert re.search(rf"2 files: 100%\|[^|]*\| {total}/{total}, {2 * LINES:,} lines, "
                     r"[\d,]+ lines/s", screen), screen
    # the first pass (the fingerprint) is shown as such
    assert f"{plain.name} (checking)" in screen
    # messages are written above the bars, whole
    assert f"{plain}: loaded {LINES} rows, 0 rejects" in screen
    assert "Traceback" not in screen


def test_stdin_on_a_terminal_shows_bytes_and_lines(database: Database, tmp_path: Path) -> None:
    """Of stdin the size is unknown: no total and no time left, but bytes and lines."""
    log = tmp_path / "access.log"
    data = write_log(log, "/stdin")
    with open(log, "rb") as stdin:
        status, screen = run_on_terminal("load", "--dsn", database.dsn, "-", stdin=stdin)
    assert status == 0, screen
    assert re.search(rf"stdin: {size_shown(len(data))}, {LINES:,} lines, [\d,]+ lines/s "
                     r"\[\d\d:\d\d\]", screen), screen
    assert database.rows() == LINES


def test_nothing_but_messages_when_not_a_terminal(database: Database, tmp_path: Path) -> None:
    plain = tmp_path / "access.log.1"
    zipped = tmp_path / "access.log.2.gz"
    write_log(plain, "/plain")
    write_log(zipped, "/zipped", compress=True)
    done = subprocess.run(logpipe_cmd("load", "--dsn", database.dsn, str(plain), str(zipped)),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    assert database.rows() == 2 * LINES
    said = f"loaded {LINES} rows, 0 rejects (see access_log_rejects)"
    assert [line.split(": ", 1)[1] for line in done.stderr.splitlines()] == [
        f"{plain}: {said}", f"{zipped}: {said}"]
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
