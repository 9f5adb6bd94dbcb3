"""Dropping root (`--user`, `--group`) once the spool directory is ready."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from logpipe.messages import UsageError, say


def drop_privileges(user: str | None, group: str | None, spool_dir: Path) -> None:
    """As root with --user: hand the spool to that user, then become it for good.

    Without --user, a root process says once that it keeps running as root.
    """
    if user is None:
        if group is not None:
            raise UsageError("--group needs --user")
        if os.geteuid() == 0:
            say("running as root; pass --user www-data (or another user) to drop privileges")
        return
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user") from None
    gid = account.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"--group {group}: no such group") from None
    uid = account.pw_uid
    if os.geteuid() != 0:
        if os.geteuid() == uid:
            return  # already that user
        raise UsageError(f"--user {user} needs root; run logpipe as root or drop --user")
    _hand_over(spool_dir, uid, gid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.environ["HOME"] = account.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = user


def _hand_over(spool_dir: Path, uid: int, gid: int) -> None:
    """The spool and every file in it belong to the user the logger will run as."""
    os.chown(spool_dir, uid, gid)
    os.chmod(spool_dir, 0o700)
    for entry in os.scandir(spool_dir):
        if entry.is_file(follow_symlinks=False):
            os.chown(entry.path, uid, gid)
