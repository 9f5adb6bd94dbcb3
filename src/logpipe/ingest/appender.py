"""Appending what the reader takes from Apache's pipe to the spool: into the current
segment, a new segment every --segment-size (at a line's end), dropped and counted when
there is no room.

From a pipe, the kernel moves the bytes straight into the segment (splice): no byte
that left Apache's pipe is ever only in the reader's memory, so a reader killed at
any moment (kill -9, the OOM killer) loses nothing. Where that cannot be done (stdin
not a pipe, Python without os.splice, no room), bytes are read and written; complete
lines are written at once and a partial line waits in memory for its end.

When the disk fills up, what cannot be written is dropped and counted, and reading goes
on. A segment's end never moves back (a writer may have loaded up to it already), so a
line cut by the full disk stays cut: once there is room, CUT_MARK ends it, which makes it
exactly one reject, and the rest of that line is dropped rather than stored as a line of
its own. So each episode costs at most one reject besides the lines dropped."""

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
# Ends a line whose rest could not be stored. The NUL byte (never in a line Apache writes:
# it escapes control bytes) makes the parser reject the line whatever the LogFormat, so a
# cut line cannot load as a row with a shortened value.
CUT_MARK = b"\0 [logpipe: the rest of this line was lost: the spool could not grow]\n"
_SPACE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# splice cannot be used here at all (stdin is a file, or the spool's file system does
# not support it): stop trying, rather than fail a system call before every read.
_NO_SPLICE_ERRORS = {errno.EINVAL, errno.ESPIPE, errno.ENOSYS}
# Read and write: the last byte is read back before rotating. Not O_APPEND, which
# splice refuses; this appender is the segment's only writer.
# O_EXCL: a name that exists, even as a symbolic link, is never opened.
_SEGMENT_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _why(exc: OSError) -> str:
    return "the disk is full" if exc.errno in _SPACE_ERRORS else str(exc)


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
        self._cut_line = False  # the segment ends with the head of a line whose rest is lost
        self._skip_rest = False  # a line's head was dropped: drop the rest as it comes
        self._usage = 0
        self._can_splice = hasattr(os, "splice")
        self._usage_checked = 0.0

    # -- public ---------------------------------------------------------------

    def take_from(self, fd: int, size: int) -> int:
        """Move up to `size` bytes waiting on `fd` into the spool; 0 at end of file."""
        moved = self._try_splice(fd, size) if self._can_splice else None
        if moved is not None:
            return moved
        data = os.read(fd, size)
        self.append(data)
        return len(data)

    def append(self, data: bytes) -> None:
        """Take bytes read from the pipe; write every complete line to the spool."""
        if self._skip_rest:
            data = self._skip_to_next_line(data)
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
        if self._cut_line:
            try:
                self._end_cut_line()
            except OSError:
                pass  # still no room: the closed segment ends with the cut line's head
        self._close_segment()
        if self.dropped_lines:
            say(
                f"{self.dropped_lines} lines ({self.dropped_bytes} bytes) were dropped "
                f"because the spool {self.directory} was full"
            )

    # -- internals ------------------------------------------------------------

    def _try_splice(self, fd: int, size: int) -> int | None:
        """Bytes spliced from fd into the segment, or None when they are to be read
        instead: nothing waiting, no room, the rest of a dropped line to drop too, or
        splice not possible here."""
        if self._skip_rest:
            return None
        waiting = _bytes_waiting(fd)
        if not waiting or self._over_limit(waiting):
            return None
        if self._tail:  # a partial line read before: it goes first
            tail, self._tail = self._tail, b""
            self._write(tail)
            if self._skip_rest:
                return None  # it was dropped: the rest of its line is read and dropped
        try:
            return self._splice(fd, size)
        except OSError as exc:
            if exc.errno in _NO_SPLICE_ERRORS:
                self._can_splice = False  # not a pipe, or a file system without it: read
            return None  # no room, or the segment cannot be opened: read below, where
            # what cannot be stored is dropped and counted

    def _splice(self, fd: int, size: int) -> int:
        self._ready_segment()
        assert self._fd is not None
        moved = os.splice(fd, self._fd, size)
        self._segment_size += moved
        self._usage += moved
        self._room_again()
        return moved

    def _ready_segment(self) -> None:
        """A segment to write to: a cut line ended first; a new segment once this one is
        full and ends with a whole line (a line is never split between segments; one
        with no line yet is kept). OSError when there is no room for that."""
        if self._cut_line:
            self._end_cut_line()
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
        """Write bytes that follow on from what the segment holds; what does not fit
        is dropped and counted."""
        if self._over_limit(len(chunk)):
            self._drop(chunk, "the spool is over --spool-max")
            return
        try:
            self._ready_segment()
        except OSError as exc:
            self._drop(chunk, _why(exc))
            return
        start = self._segment_size
        try:
            self._write_all(chunk)
        except OSError as exc:
            written = self._segment_size - start  # stays: the segment never shrinks
            self._usage += written
            self._drop(chunk[written:], _why(exc))
            return
        self._usage += len(chunk)
        self._room_again()

    def _write_all(self, chunk: bytes) -> None:
        """Write all of chunk; on OSError, _segment_size counts the part that was."""
        assert self._fd is not None
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._segment_size += written

    def _end_cut_line(self) -> None:
        """End the cut line the segment ends with (CUT_MARK); OSError if there is no room
        yet. A mark only partly written is written again in full: still one line."""
        self._write_all(CUT_MARK)
        self._cut_line = False

    def _ends_mid_line(self) -> bool:
        if self._fd is None or self._segment_size == 0:
            return False
        try:
            return os.pread(self._fd, 1, self._segment_size - 1) != b"\n"
        except OSError:
            return True  # cannot tell: a mark too many costs a reject, a missing one a row

    def _over_limit(self, size: int) -> bool:
        if self.max_bytes is None:
            return False
        now = time.monotonic()
        if now - self._usage_checked > 1.0:
            self._usage = spool_usage(self.directory)
            self._usage_checked = now
        return self._usage + size > self.max_bytes

    def _drop(self, chunk: bytes, reason: str) -> None:
        """Bytes that follow on from the segment's end are lost: if that end is mid-line,
        the line is cut (marked once there is room); if the bytes end mid-line, the rest
        of that line is dropped too when it comes. No piece of a line is ever stored as a
        line of its own (it could parse as a row that was never logged)."""
        if not chunk:
            return
        if self._ends_mid_line():
            self._cut_line = True
        if not chunk.endswith(b"\n"):
            self._skip_rest = True
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

    def _skip_to_next_line(self, data: bytes) -> bytes:
        """What follows the end of the line whose head was dropped (counted with it)."""
        end = data.find(b"\n") + 1
        if not end:
            self.dropped_bytes += len(data)
            return b""
        self.dropped_bytes += end
        self._skip_rest = False
        return data[end:]

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
            if os.write(fd, self.header) != len(self.header):
                raise OSError(errno.ENOSPC, "no room for a segment's header", str(tmp))
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
