"""Running logpipe as Apache's worker user (www-data) in tests, from a root test process.

A logger started with --user re-executes this interpreter as that user, who
must be able to exec it and import logpipe (`interpreter_reachable_by`) and to
connect to the test database as an existing role (`dsn_for_any_user`).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2

import logpipe

WORKER_USER = "www-data"


def blocked_ancestors(path: Path, user: str) -> list[Path]:
    """Directories above path that `user` cannot traverse (mode lacks the x bit for it)."""
    account = pwd.getpwnam(user)
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    blocked = []
    for directory in reversed(path.parents):
        st = directory.stat()
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            blocked.append(directory)
    return blocked


@contextlib.contextmanager
def interpreter_reachable_by(user: str) -> Iterator[None]:
    """Let `user` exec this interpreter while the block runs.

    A logger started with --user re-executes sys.executable as that user for
    its writer child. On a normal host the interpreter is /usr/bin/python3 and
    this does nothing; on a machine whose Python lives under /root (mode 0700,
    e.g. pyenv) it adds the search (x) bit for others to the directories in the
    way, and puts their modes back afterwards. Nothing becomes listable or
    readable that was not.
    """
    paths = {Path(sys.executable), Path(sys.executable).resolve(), Path(logpipe.__file__)}
    blocked = sorted({d for p in paths for d in blocked_ancestors(p, user)})
    modes = {d: stat.S_IMODE(d.stat().st_mode) for d in blocked}
    try:
        for d, mode in modes.items():
            os.chmod(d, mode | stat.S_IXOTH)
        probe = subprocess.run(
            ["runuser", "-u", user, "--", sys.executable, "-c", "import logpipe.cli, psycopg2"],
            check=False, capture_output=True, timeout=30,
        )
        assert probe.returncode == 0, (
            f"{user} cannot run {sys.executable} -m logpipe: {probe.stderr.decode()}"
        )
        yield
    finally:
        for d, mode in modes.items():
            os.chmod(d, mode)


def dsn_for_any_user(dsn: str) -> str:
    """The test DSN with an explicit role, for loggers that run as www-data (trust auth)."""
    if re.search(r"\buser=", dsn):
        return dsn
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            role = cur.fetchone()[0]
    finally:
        conn.close()
    return f"{dsn} user={role}"

