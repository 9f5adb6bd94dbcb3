"""What was written, made to survive a crash: fsync of a file's data, or of a
directory's entries (a file created, renamed or removed in it)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    _fsync(path, os.O_RDONLY)


def fsync_directory(directory: Path) -> None:
    _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
