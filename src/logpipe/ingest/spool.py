"""The on-disk spool: segment files of raw log lines, appended by the reader.

A segment is `seg-<time_ns>-<pid>-<random>.log`. Its appender holds an exclusive
flock on it for as long as it may append, so a segment that can be locked is
closed: nobody will ever append to it again. Appenders create a segment under a
hidden temporary name, lock it, then rename it, so a writer never sees an
unlocked segment that is about to grow. Segments only ever hold whole lines,
except that a closed segment may end with a final line that had no newline.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from pathlib import Path

SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".log"
HEADER_MAGIC = b"#logpipe "
MAX_HEADER_BYTES = 64 * 1024


def make_header(log_format: str, source: str | None) -> bytes:
    """A segment's first line: how its lines are to be parsed and labelled.

    It lets `replay` and the drain daemon load any segment without being told
    the format, and lets loggers with different formats share a spool.
    """
    meta = {"format": log_format, "source": source}
    return HEADER_MAGIC + json.dumps(meta, ensure_ascii=True).encode("ascii") + b"\n"


def read_header(path: Path) -> tuple[dict[str, str | None], int] | None:
    """(metadata, header length) of a segment, or None if the header is not there (yet)."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
    except FileNotFoundError:
        return None
    end = head.find(b"\n")
    if not head.startswith(HEADER_MAGIC) or end < 0:
        return None
    try:
        meta = json.loads(head[len(HEADER_MAGIC) : end])
    except ValueError:
        return None
    return meta, end + 1


def ensure_spool_dir(directory: Path) -> None:
    """Create the spool directory (mode 0700) if needed; raise OSError if unusable."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "spool directory is not writable", str(directory))


def list_segments(directory: Path) -> list[str]:
    """Segment file names in the order they were created."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(SEGMENT_PREFIX) and n.endswith(SEGMENT_SUFFIX))


def is_closed(path: Path) -> bool:
    """True when no appender holds the segment, so it can never grow again."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        # A shared lock: it fails only against the appender's exclusive one. (Two
        # writers probing at once with exclusive locks would each take the other's
        # probe for an appender, and both leave a closed segment behind.)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing also releases the probe lock
    return True


def spool_usage(directory: Path) -> int:
    """Bytes held by segments in the spool directory."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(SEGMENT_PREFIX) or entry.name.startswith(".tmp-"):
                    try:
                        total += entry.stat().st_size
                    except FileNotFoundError:
                        pass
    except FileNotFoundError:
        pass
    return total


def remove_stale_temporaries(directory: Path, older_than: float = 3600.0) -> None:
    """Remove `.tmp-` files an appender left if it died between create and rename.

    Such a file holds at most a header, never a log line."""
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(".tmp-"):
            try:
                if now - entry.stat().st_mtime > older_than and is_closed(Path(entry.path)):
                    os.unlink(entry.path)
            except OSError:
                pass
