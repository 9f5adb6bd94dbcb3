"""Driving a piped logger in tests: feeding its stdin, reading its stderr, waiting for
it to finish, and checking that access_log holds every line exactly once."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from conftest import COMMAND_TIMEOUT, Database, loaded_paths

from logpipe.ingest import spool

PREFIX = re.compile(rb"^logpipe\[\d+\]: ")


def feed(proc: subprocess.Popen[bytes], lines: list[bytes], pause_every: int = 0,
         pause: float = 0.0) -> None:
    """Write lines to the logger's stdin; with pause_every, trickle them like a web server."""
    assert proc.stdin is not None
    for n, line in enumerate(lines, 1):
        proc.stdin.write(line)
        if pause_every and n % pause_every == 0:
            proc.stdin.flush()
            time.sleep(pause)  # pacing the input, not waiting for anything
    proc.stdin.flush()


class StderrReader:
    """Reads a logger's stderr in a thread, so a test can wait for a message."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        self._stream = proc.stderr
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for chunk in iter(lambda: self._stream.read1(65536), b""):  # type: ignore[attr-defined]
            self._chunks.append(chunk)

    def text(self) -> bytes:
        return b"".join(self._chunks)

    def until_eof(self, timeout: float) -> bytes:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stderr still open"
        return self.text()


def finish(proc: subprocess.Popen[bytes], timeout: float = COMMAND_TIMEOUT,
           stderr: StderrReader | None = None) -> bytes:
    """Close stdin (EOF, as Apache does) and return stderr after exit status 0."""
    assert proc.stdin is not None
    try:
        if stderr is None:
            err = proc.communicate(timeout=timeout)[1]  # closes stdin first
        else:
            proc.stdin.close()
            proc.wait(timeout=timeout)
            err = stderr.until_eof(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # do not leave a hung logger behind for the next tests
        raise
    assert proc.returncode == 0, err.decode(errors="replace")
    for line in err.splitlines():
        assert PREFIX.match(line), (
            f"stderr line without the logpipe[PID]: prefix: {line!r} in {err!r}")
    return err


def joined(feeder: threading.Thread, timeout: float = COMMAND_TIMEOUT) -> None:
    """Wait for a feed() thread; it only blocks for long if the logger stopped reading."""
    feeder.join(timeout)
    assert not feeder.is_alive(), "feeding the logger hung: it stopped reading stdin"


def assert_exactly_once(db: Database, lines: list[bytes]) -> None:
    expected = Counter(re.search(rb'"GET (\S+?)\?', ln).group(1).decode() for ln in lines)
    got = Counter(loaded_paths(db.dsn))
    assert sum(got.values()) == len(lines), f"{sum(got.values())} rows for {len(lines)} lines"
    assert got == expected


def spooled_line_count(spool_dir: Path) -> int:
    total = 0
    for name in spool.list_segments(spool_dir):
        data = (spool_dir / name).read_bytes()
        header = spool.read_header(spool_dir / name)
        total += data[header[1] if header else 0:].count(b"\n")
    return total
