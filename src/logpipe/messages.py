"""Messages on stderr and the exit statuses that are part of logpipe's contract.

Under Apache, stderr is the main ErrorLog and stdout is /dev/null, so every
message goes to stderr, prefixed `logpipe[PID]:` so operators can grep for it.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

EXIT_OK = 0
EXIT_FAILURE = 1  # the work could not be done now (e.g. database unreachable); retry later
EXIT_USAGE = 2  # bad option, bad LogFormat, unusable spool directory: fix the command line
EXIT_WRITER_CONFIG = 78  # writer child only: a configuration error, do not respawn it


def say(message: str) -> None:
    """Write one line to stderr, prefixed with the program name and PID."""
    line = f"logpipe[{os.getpid()}]: {message}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed: nothing sensible left to do with the message


class PrefixedStderr:
    """stderr for the writer child: lines that libraries print themselves (psycopg2
    does on some server errors) get the `logpipe[PID]:` prefix too."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            prefix = "" if line.startswith("logpipe[") else f"logpipe[{os.getpid()}]: "
            self.stream.write(f"{prefix}{line}\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def first_line(exc: BaseException) -> str:
    """An exception as one line for a message (database errors run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UsageError(Exception):
    """A problem the operator must fix in the command line or environment (exit 2)."""
