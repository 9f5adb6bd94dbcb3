"""Defaults that depend on the environment: DSN, spool directory, source name."""

from __future__ import annotations

import os
import socket
from pathlib import Path

DEFAULT_FLUSH_INTERVAL = 0.5  # seconds: a row is visible within about a second at low traffic
DEFAULT_BATCH_LINES = 20_000
DEFAULT_STOP_TIMEOUT = 10.0  # seconds the writer gets to commit after EOF
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
ROOT_SPOOL_DIR = "/var/spool/logpipe"
# Line length cap (parse/limits.py): Apache's default LimitRequestLine and
# LimitRequestFieldSize, the least default cap, and the most --max-line-bytes takes
# (`logpipe load` reads a longer line in pieces).
APACHE_LIMIT_REQUEST = 8190
MIN_MAX_LINE_BYTES = 256 * 1024
LARGEST_MAX_LINE_BYTES = 16 * 1024 * 1024


def resolve_dsn(dsn: str | None) -> str:
    """--dsn, else $LOGPIPE_DSN, else "" which lets libpq use PGHOST, PGSERVICE etc."""
    if dsn:
        return dsn
    return os.environ.get("LOGPIPE_DSN", "")


def default_spool_dir() -> Path:
    """$LOGPIPE_SPOOL_DIR, else /var/spool/logpipe for root, else a per-user state dir."""
    env = os.environ.get("LOGPIPE_SPOOL_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path(ROOT_SPOOL_DIR)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "logpipe" / "spool"


def default_source() -> str:
    return socket.gethostname()
