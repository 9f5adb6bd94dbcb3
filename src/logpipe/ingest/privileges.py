"""Dropping root (`--user`, `--group`): who to become, handing the spool over, becoming it."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass

from logpipe.messages import UsageError, say

# Opening a file only to fchown it: no link followed, no FIFO to block on, no terminal.
_ENTRY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class Account:
    """The user (and group) the logger runs as once root is dropped."""

    name: str
    uid: int
    gid: int
    home: str


def account_of(user: str | None, group: str | None) -> Account | None:
    """--user and --group checked; None without --user (then a root process says once
    that it keeps running as root). UsageError for an unknown user or group, or --user
    without root."""
    if user is None:
        if group is not None:
            raise UsageError("--group needs --user")
        if os.geteuid() == 0:
            say("running as root; pass --user www-data (or another user) to drop privileges")
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user") from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"--group {group}: no such group") from None
    if os.geteuid() not in (0, entry.pw_uid):
        raise UsageError(f"--user {user} needs root; run logpipe as root or drop --user")
    return Account(user, entry.pw_uid, gid, entry.pw_dir)


def hand_over(spool_fd: int, account: Account) -> None:
    """As root: the spool directory (an open descriptor) and the files root left in it
    belong to the account. Only through descriptors opened without following links,
    and only for files with a single link: whoever owns the spool could otherwise swap
    an entry for a link (symbolic or hard) to any file on the host and have root
    chown that file to them."""
    os.fchown(spool_fd, account.uid, account.gid)
    os.fchmod(spool_fd, 0o700)
    for name in os.listdir(spool_fd):
        try:
            if _roots_own_file(os.stat(name, dir_fd=spool_fd, follow_symlinks=False)):
                _chown_entry(spool_fd, name, account)
        except OSError:
            pass  # gone meanwhile, or not a plain file: the writer will not load it


def _roots_own_file(st: os.stat_result) -> bool:
    """A regular file of root's with no other name (what a logger running as root left)."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == 0


def _chown_entry(spool_fd: int, name: str, account: Account) -> None:
    fd = os.open(name, _ENTRY_FLAGS, dir_fd=spool_fd)
    try:
        if _roots_own_file(os.fstat(fd)):  # still, now that it is open: no race left
            os.fchown(fd, account.uid, account.gid)
    finally:
        os.close(fd)


def become(account: Account) -> None:
    """Drop root for good: no supplementary groups, the account's group, then its user."""
    if os.geteuid() != 0:
        return  # already that user (account_of allows nothing else)
    os.setgroups([])
    os.setgid(account.gid)
    os.setuid(account.uid)
    os.environ["HOME"] = account.home
    os.environ["USER"] = os.environ["LOGNAME"] = account.name
