"""The on-disk spool: segment files of raw log lines, appended by the reader.

A segment is `seg-<time_ns>-<pid>-<random>.log`. Its appender holds an exclusive
flock on it for as long as it may append, so a segment that can be locked is
closed: nobody will ever append to it again. Appenders create a segment under a
hidden temporary name, lock it, then rename it, so a writer never sees an
unlocked segment that is about to grow. Segments only ever hold whole lines,
except that a closed segment may end with a final line that had no newline.

A segment is only ever read as a regular file owned by the spool directory's owner,
opened without following a symbolic link: whoever can write to the spool must not
get the writer (perhaps root, in `replay`) to read or block on anything else.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import stat
import time
from collections.abc import Sequence
from pathlib import Path

SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".log"
HEADER_MAGIC = b"#logpipe "
MAX_HEADER_BYTES = 64 * 1024
# O_NONBLOCK: a FIFO planted under a segment's name must not hang the writer in open().
_SEGMENT_READ_FLAGS = (
    os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
)


def make_header(log_format: str, source: str | None,
                max_line_bytes: int | None = None,
                trusted_proxies: Sequence[str] = (), anonymize_ip: bool = False) -> bytes:
    """A segment's first line: how its lines are to be parsed and labelled.

    It lets `replay` and the drain daemon load any segment without being told
    the format (or a --max-line-bytes or --trusted-proxy the logger was given), and
    lets loggers with different formats share a spool.
    """
    meta: dict[str, object] = {"format": log_format, "source": source}
    if max_line_bytes is not None:
        meta["max_line_bytes"] = max_line_bytes
    if trusted_proxies:  # whose X-Forwarded-For this logger believes: part of the parsing
        meta["trusted_proxies"] = list(trusted_proxies)
    if anonymize_ip:  # replay and drain cut the addresses of a left-over segment too
        meta["anonymize_ip"] = True
    return HEADER_MAGIC + json.dumps(meta, ensure_ascii=True).encode("ascii") + b"\n"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def shown(path: Path) -> str:
    """A path for a message: the spool's owner chooses its names, so control characters
    (a newline would forge a line in the ErrorLog) and non-ASCII bytes are escaped."""
    return ascii(str(path))[1:-1]


def segment_problem(st: os.stat_result, owner: int) -> str | None:
    """Why a spool entry (its lstat) is not read as a segment; None if it may be."""
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != owner:
        return (f"it belongs to {user_name(st.st_uid)}, not to {user_name(owner)}, "
                "who owns the spool")
    return None


def open_segment(path: Path) -> int:
    """A read-only descriptor of a segment; OSError if it is missing or is not one
    (a link, a FIFO, someone else's file: see segment_problem)."""
    fd = os.open(path, _SEGMENT_READ_FLAGS)  # ELOOP for a symbolic link
    try:
        problem = segment_problem(os.fstat(fd), os.stat(path.parent).st_uid)
        if problem is not None:
            raise PermissionError(errno.EPERM, f"not a spool segment: {problem}", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_header(path: Path) -> tuple[dict[str, str | None], int] | None:
    """(metadata, header length) of a segment, or None if the header is not there (yet)
    or the file cannot be read as a segment."""
    try:
        with open(open_segment(path), "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
    except OSError:
        return None
    end = head.find(b"\n")
    if not head.startswith(HEADER_MAGIC) or end < 0:
        return None
    try:
        meta = json.loads(head[len(HEADER_MAGIC) : end])
    except ValueError:
        return None
    return meta, end + 1


def make_spool_dir(directory: Path) -> None:
    """Create the spool directory (mode 0700) if it is missing, and any missing parent
    (mode 0755, so that the user the logger runs as can reach the spool)."""
    old_umask = os.umask(0o022)  # Path.mkdir makes parents 0777 less the umask
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    finally:
        os.umask(old_umask)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass


def ensure_spool_dir(directory: Path) -> None:
    """Create the spool directory if needed (make_spool_dir); raise OSError if unusable."""
    make_spool_dir(directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "spool directory is not writable", str(directory))


def scan_segments(directory: Path) -> tuple[list[str], dict[str, str]]:
    """(segment file names in the order they were created, {name: why it is refused}
    for the entries named like segments that are not regular files of the spool's owner)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return [], {}
    segments, refused = [], {}
    try:
        owner = os.fstat(dir_fd).st_uid
        for name in os.listdir(dir_fd):
            if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
                continue
            try:
                problem = segment_problem(
                    os.stat(name, dir_fd=dir_fd, follow_symlinks=False), owner)
            except FileNotFoundError:
                continue  # loaded and deleted meanwhile
            if problem is None:
                segments.append(name)
            else:
                refused[name] = problem
    finally:
        os.close(dir_fd)
    return sorted(segments), refused


def list_segments(directory: Path) -> list[str]:
    """Segment file names in the order they were created (only those that can be read
    as segments: see scan_segments)."""
    return scan_segments(directory)[0]


def is_closed(path: Path) -> bool:
    """True when no appender holds the segment, so it can never grow again.

    An entry that is not a segment (see open_segment) is never closed: nothing loads it."""
    try:
        fd = open_segment(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
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
                        total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        pass
    except OSError:
        pass  # the directory is gone or unreadable: writing will say so
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
                st = entry.stat(follow_symlinks=False)
                if now - st.st_mtime > older_than and is_closed(Path(entry.path)):
                    os.unlink(entry.path)
            except OSError:
                pass
