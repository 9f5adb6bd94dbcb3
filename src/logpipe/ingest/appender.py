"""Appending what the reader takes from Apache's pipe to the spool: into the current
segment, a new segment every --segment-size (at a line's end), dropped and counted when
there is no room.

From a pipe, the kernel moves the bytes straight into the segment (splice): no byte
that left Apache's pipe is ever only in the reader's memory, so a reader killed at
any moment (kill -9, the OOM killer) loses nothing. Where that cannot be done (stdin
not a pipe, Python without os.splice, no room), bytes are read and written; complete
lines are written at once and a partial line waits in memory for its end."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import struct
import termios
import time
from pathlib import Path

from logpipe.ingest.spool import (
    SEGMENT_PREFIX,
    SEGMENT_SUFFIX,
    ensure_spool_dir,
    spool_usage,
)
from logpipe.messages import say

MAX_PENDING_TAIL = 1024 * 1024  # an unterminated line longer than this is written out as is
_SPACE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# Read and write: the last byte is read back before rotating. Not O_APPEND, which
# splice refuses; this appender is the segment's only writer.
_SEGMENT_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL


def _bytes_waiting(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD); 0 at end of file or if it cannot tell."""
    try:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", buf)[0])


class SpoolAppender:
    """Appends raw lines to the current segment; never blocks on anything but the disk.

    When the spool cannot grow (disk full, quota, or over max_bytes) lines are
    dropped and counted, with one message when dropping starts and one when
    it stops, so the reader can go on draining Apache's pipe.
    """

    def __init__(
        self, directory: Path, header: bytes, segment_bytes: int, max_bytes: int | None = None
    ) -> None:
        self.directory = directory
        self.header = header
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self._dropping_since: int | None = None  # dropped_lines when the episode began
        self._fd: int | None = None
        self._segment_size = 0
        self._tail = b""
        self._usage = 0
        self._can_splice = hasattr(os, "splice")
        self._usage_checked = 0.0

    # -- public ---------------------------------------------------------------

    def take_from(self, fd: int, size: int) -> int:
        """Move up to `size` bytes waiting on `fd` into the spool; 0 at end of file."""
        if self._can_splice:
            waiting = _bytes_waiting(fd)
            if waiting and not self._over_limit(waiting):
                try:
                    return self._splice(fd, size)
                except OSError as exc:
                    if exc.errno not in _SPACE_ERRORS:
                        self._can_splice = hasattr(os, "splice")  # not a pipe, or a file system without it
                    # no room: read it below, where it is dropped and counted
        data = os.read(fd, size)
        self.append(data)
        return len(data)

    def append(self, data: bytes) -> None:
        """Take bytes read from the pipe; write every complete line to the spool."""
        if self._tail:
            data = self._tail + data
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        if cut:
            self._write(data[:cut])
        if len(self._tail) > MAX_PENDING_TAIL:
            # A huge unterminated line: keep memory bounded; it will be rejected as too long.
            tail, self._tail = self._tail, b""
            self._write(tail)

    def close(self) -> None:
        """Write the final unterminated line, if any, and release the segment."""
        if self._tail:
            tail, self._tail = self._tail, b""
            self._write(tail)
        self._close_segment()
        if self.dropped_lines:
            say(
                f"{self.dropped_lines} lines ({self.dropped_bytes} bytes) were dropped "
                f"because the spool {self.directory} was full"
            )

    # -- internals ------------------------------------------------------------

    def _splice(self, fd: int, size: int) -> int:
        if self._tail:  # a partial line read before: it goes first
            tail, self._tail = self._tail, b""
            self._write(tail)
        self._open_or_rotate()
        assert self._fd is not None
        moved = os.splice(fd, self._fd, size)
        self._segment_size += moved
        self._usage += moved
        self._room_again()
        return moved

    def _open_or_rotate(self) -> None:
        """A segment to write to; a new one once this one is full and ends with a whole
        line (a line is never split between segments; one with no line yet is kept)."""
        if (self._fd is not None and self._segment_size >= self.segment_bytes
                and self._segment_size > len(self.header)
                and os.pread(self._fd, 1, self._segment_size - 1) == b"\n"):
            self._close_segment()
        if self._fd is None:
            self._open_segment()

    def _room_again(self) -> None:
        if self._dropping_since is not None:
            lost = self.dropped_lines - self._dropping_since
            say(f"spool has room again; {lost} lines were dropped while it was full")
            self._dropping_since = None

    def _write(self, chunk: bytes) -> None:
        if self._over_limit(len(chunk)):
            self._drop(chunk, "the spool is over --spool-max")
            return
        try:
            self._open_or_rotate()
            self._write_all(chunk)
        except OSError as exc:
            reason = "the disk is full" if exc.errno in _SPACE_ERRORS else str(exc)
            self._drop(chunk, reason)
            return
        self._usage += len(chunk)
        self._room_again()

    def _write_all(self, chunk: bytes) -> None:
        assert self._fd is not None
        start = self._segment_size
        view = memoryview(chunk)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._segment_size += written
        except OSError:
            # Never leave half a chunk behind: a partial line would become a reject.
            try:
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
            except OSError:
                pass
            self._segment_size = start
            raise

    def _over_limit(self, size: int) -> bool:
        if self.max_bytes is None:
            return False
        now = time.monotonic()
        if now - self._usage_checked > 1.0:
            self._usage = spool_usage(self.directory)
            self._usage_checked = now
        return self._usage + size > self.max_bytes

    def _drop(self, chunk: bytes, reason: str) -> None:
        lines = chunk.count(b"\n") or 1
        if self._dropping_since is None:
            self._dropping_since = self.dropped_lines
            say(
                f"cannot write to the spool {self.directory}: {reason}; dropping lines "
                f"until there is room (free disk space, raise --spool-max, "
                f"or check that the database is reachable so the spool drains)"
            )
        self.dropped_lines += lines
        self.dropped_bytes += len(chunk)

    def _open_segment(self) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(6)}{SEGMENT_SUFFIX}"
        tmp = self.directory / f".tmp-{name}"
        try:
            fd = os.open(tmp, _SEGMENT_FLAGS, 0o600)
        except FileNotFoundError:
            ensure_spool_dir(self.directory)  # someone removed it; recreate and retry once
            fd = os.open(tmp, _SEGMENT_FLAGS, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, self.header)
            os.rename(tmp, self.directory / f"{SEGMENT_PREFIX}{name}")
        except OSError:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._fd = fd
        self._segment_size = len(self.header)

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._segment_size = 0
