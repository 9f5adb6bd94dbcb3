"""The spool directory the logger is given: created if missing, refused if it is a
symbolic link or anyone but root and the user the logger runs as could change it.

The logger starts as root. Whoever can write to the spool directory (or swap it for
a link) could otherwise have root follow a link of theirs and hand them any file on
the host. So the directory is opened once, without following a link, and root's
changes to it go through that descriptor (see privileges.hand_over), as ssh refuses
a key file that others could have written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from logpipe.ingest.spool import make_spool_dir, shown, user_name
from logpipe.messages import UsageError

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def directory_problem(path: Path, st: os.stat_result, runs_as: int) -> str | None:
    """What is wrong with a spool directory (from its lstat) and how to fix it, or None.

    Only root or `runs_as`, the user the logger runs as, may own it; nobody else may
    write to it.
    """
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link; pass the directory itself as --spool-dir"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory; pass a directory as --spool-dir"
    if st.st_uid not in (0, runs_as):
        owner = user_name(st.st_uid)
        allowed = " or ".join(dict.fromkeys(user_name(uid) for uid in (0, runs_as)))
        fix = f"chown {user_name(runs_as)} {shown(path)}, or pass another --spool-dir"
        if runs_as == 0:
            fix = f"pass --user {owner} to run as its owner, or chown root {shown(path)}"
        return f"it belongs to {owner}, and only {allowed} may own it; {fix}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "anyone" if st.st_mode & stat.S_IWOTH else "its group"
        return (f"{who} can write to it (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"chmod 700 {shown(path)}")
    return None


def unusable(path: Path, why: str) -> UsageError:
    return UsageError(f"cannot use the spool directory {shown(path)}: {why}")


def open_spool_dir(path: Path, runs_as: int) -> int:
    """The spool directory, created if missing, opened without following a link and
    checked (directory_problem); UsageError saying what to do if it cannot be used."""
    try:
        make_spool_dir(path)
    except OSError as exc:
        raise unusable(path, f"cannot create it: {exc.strerror or exc}; create it, or pass "
                             "another --spool-dir") from None
    try:
        fd = os.open(path, _DIRECTORY_FLAGS)
    except OSError as exc:
        try:
            problem = directory_problem(path, os.lstat(path), runs_as)
        except OSError:
            problem = None
        raise unusable(path, problem or f"{exc.strerror or exc}") from None
    try:
        problem = directory_problem(path, os.fstat(fd), runs_as)
        if problem is not None:
            raise unusable(path, problem)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_usable(path: Path, runs_as: int) -> None:
    """As the user the logger runs as: the spool can be reached, is safe and is writable,
    before a line is read; UsageError saying what to do if not."""
    me = user_name(os.geteuid())
    blocked = first_unsearchable(path)
    if blocked is not None:
        raise unusable(path, f"{me} cannot reach it: {shown(blocked)} is not searchable by "
                             f"{me}; chmod o+x {shown(blocked)}, or pass another --spool-dir")
    fd = open_spool_dir(path, runs_as)
    try:
        writable = os.access(path, os.W_OK | os.X_OK, follow_symlinks=False)
    finally:
        os.close(fd)
    if not writable:
        raise unusable(path, f"{me} cannot write to it; chown {me} {shown(path)}, or pass "
                             "another --spool-dir")


def first_unsearchable(path: Path) -> Path | None:
    """The first directory above path that this process may not search (x), if any."""
    for directory in reversed(path.absolute().parents):
        if not os.access(directory, os.X_OK):
            return directory
    return None
