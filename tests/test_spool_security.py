"""What root refuses about the spool, and what nobody can make it do through the spool.

The logger starts as root; the spool belongs to --user afterwards, so whoever runs as
that user (e.g. code in a compromised web application) may plant anything there. Root
must never follow a link there, nor chown, read or block on anything planted, and
must refuse a spool directory that anyone but root or --user could change.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from apache_user import dsn_for_any_user, interpreter_reachable_by
from conftest import (
    COMMAND_TIMEOUT,
    Database,
    combined_line,
    logpipe_cmd,
    query,
    start_logger,
    wait_for,
)
from pipe_support import PREFIX, StderrReader, assert_exactly_once, feed, finish

from logpipe.ingest import spool

USER = "nobody"  # the --user of these tests: owns nothing on the host
OTHER = "www-data"
UNUSED_DSN = "dbname=logpipe_never_connected"  # for loggers that must stop before connecting
SECRET = b'203.0.113.9 - - [10/Oct/2024:13:00:00 +0000] "GET /secret HTTP/1.1" 200 1 "-" "-"\n'


def uid_gid(user: str) -> tuple[int, int]:
    account = pwd.getpwnam(user)
    return account.pw_uid, account.pw_gid


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory under /tmp that any user can traverse (pytest's tmp_path is root's 0700)."""
    base = Path(tempfile.mkdtemp(prefix="logpipe-spool-security-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_logger(spool_dir: Path, *args: str, dsn: str = UNUSED_DSN,
               stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        logpipe_cmd("--dsn", dsn, "--spool-dir", str(spool_dir), "--stop-timeout", "1", *args),
        input=stdin, capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[bytes], *words: bytes) -> None:
    """Exit status 2 and one prefixed line saying what is wrong and what to do."""
    err = result.stderr
    assert result.returncode == 2, err
    lines = err.splitlines()
    assert all(PREFIX.match(line) for line in lines), err
    assert b"Traceback" not in err
    refusal = [line for line in lines if b"cannot use the spool directory" in line]
    assert len(refusal) == 1, err
    for word in words:
        assert word in refusal[0], (word, err)


# -- the spool directory itself ------------------------------------------------------


def test_a_spool_dir_that_is_a_symlink_is_refused_and_its_target_left_alone(
        open_dir: Path) -> None:
    target = open_dir / "etc-like"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    (target / "config").write_bytes(b"root's\n")
    link = open_dir / "spool"
    link.symlink_to(target)
    result = run_logger(link, "--user", USER)
    assert_refused(result, b"symbolic link", b"--spool-dir")
    assert owner_and_mode(target) == (0, 0, 0o755)
    assert owner_and_mode(target / "config")[:2] == (0, 0)
    assert sorted(os.listdir(target)) == ["config"]


@pytest.mark.parametrize("args", [(), ("--user", USER)], ids=["as-root", "with-user"])
def test_a_spool_dir_owned_by_another_user_is_refused(open_dir: Path, args: tuple[str, ...]
                                                      ) -> None:
    spool_dir = open_dir / "spool"
    spool_dir.mkdir(mode=0o700)
    os.chown(spool_dir, *uid_gid(OTHER))
    result = run_logger(spool_dir, *args)
    assert_refused(result, b"belongs to " + OTHER.encode(), b"chown ")
    assert owner_and_mode(spool_dir) == (*uid_gid(OTHER), 0o700)


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o1777], ids=["0770", "0777", "1777"])
def test_a_group_or_world_writable_spool_dir_is_refused(open_dir: Path, mode: int) -> None:
    spool_dir = open_dir / "spool"
    spool_dir.mkdir()
    os.chmod(spool_dir, mode)
    result = run_logger(spool_dir)
    assert_refused(result, b"can write to it", b"chmod 700 " + str(spool_dir).encode())
    assert owner_and_mode(spool_dir) == (0, 0, mode)


def test_root_chowns_its_own_segments_but_nothing_planted_in_the_spool(open_dir: Path) -> None:
    """After a first start the spool belongs to --user, who may plant a hard or symbolic
    link to any file under a segment's name; at the next start root hands the spool
    over again and must chown only what a logger running as root left there."""
    spool_dir = open_dir / "spool"
    spool_dir.mkdir(mode=0o700)
    os.chown(spool_dir, *uid_gid(USER))
    precious = open_dir / "precious"  # stands for /etc/shadow (same file system: a hard link)
    precious.write_bytes(b"root's secret\n")
    os.chmod(precious, 0o600)
    os.link(precious, spool_dir / "seg-00000000000000000001-1-aaaaaaaaaaaa.log")
    (spool_dir / "seg-00000000000000000002-1-bbbbbbbbbbbb.log").symlink_to(precious)
    left_by_root = spool_dir / "seg-00000000000000000003-1-cccccccccccc.log"
    left_by_root.write_bytes(spool.make_header("combined", None))
    result = run_logger(spool_dir, "--user", USER)
    assert result.returncode == 0, result.stderr
    assert owner_and_mode(precious) == (0, 0, 0o600)
    assert owner_and_mode(left_by_root)[:2] == uid_gid(USER)
    assert owner_and_mode(spool_dir) == (*uid_gid(USER), 0o700)


def test_missing_parents_are_created_reachable_and_the_user_loads_lines(
        database: Database, open_dir: Path) -> None:
    """--spool-dir /x/a/b/c/spool with --user: parents 0755 (root's), the spool 0700
    (the user's), and the logger running as that user loads every line."""
    spool_dir = open_dir / "a" / "b" / "c" / "spool"
    lines = [combined_line(i) for i in range(200)]
    with interpreter_reachable_by(USER):
        proc = start_logger(dsn_for_any_user(database.dsn), spool_dir, "--user", USER)
        feed(proc, lines)
        finish(proc)
    for parent in (open_dir / "a", open_dir / "a" / "b", open_dir / "a" / "b" / "c"):
        assert owner_and_mode(parent) == (0, 0, 0o755), parent
    assert owner_and_mode(spool_dir) == (*uid_gid(USER), 0o700)
    assert_exactly_once(database, lines)


def test_a_spool_the_user_cannot_reach_is_refused_before_a_line_is_read(
        open_dir: Path) -> None:
    """A spool under a directory of root's that the user may not enter."""
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    result = run_logger(private / "spool", "--user", USER, stdin=combined_line(1))
    assert_refused(result, f"{USER} cannot reach it".encode(),
                   f"chmod o+x {private},".encode())


# -- what the writer reads -----------------------------------------------------------


def plant_strangers(spool_dir: Path, secret: Path) -> list[str]:
    """Entries named like segments that are not the logger's: a link to a file the
    logger's user cannot read, a FIFO (opening it would block), another user's file."""
    names = [f"seg-0000000000000000000{i}-1-{c * 12}.log" for i, c in enumerate("abc", 1)]
    (spool_dir / names[0]).symlink_to(secret)
    os.mkfifo(spool_dir / names[1])
    foreign = spool_dir / names[2]
    foreign.write_bytes(spool.make_header("combined", None) + SECRET)
    os.chown(foreign, *uid_gid(OTHER))
    return names


def test_planted_entries_are_skipped_said_once_and_the_logger_lines_load(
        database: Database, open_dir: Path) -> None:
    spool_dir = open_dir / "spool"
    spool_dir.mkdir(mode=0o700)
    os.chown(spool_dir, *uid_gid(USER))  # as after a first start with --user
    secret = open_dir / "secret.log"
    secret.write_bytes(spool.make_header("combined", None) + SECRET)
    os.chmod(secret, 0o600)
    names = plant_strangers(spool_dir, secret)
    lines = [combined_line(i) for i in range(300)]
    with interpreter_reachable_by(USER):
        proc = start_logger(dsn_for_any_user(database.dsn), spool_dir, "--user", USER)
        stderr = StderrReader(proc)
        feed(proc, lines[:100])
        wait_for(lambda: database.rows() == 100, what="the first lines, past the planted entries")
        feed(proc, lines[100:])  # more passes over the spool: still said only once
        wait_for(lambda: database.rows() == 300, what="the other lines")
        err = finish(proc, stderr=stderr)
    assert_exactly_once(database, lines)
    assert database.rejects() == 0
    for name in names:
        assert err.count(f"ignoring {spool_dir / name} in the spool".encode()) == 1, err
    assert b"Traceback" not in err and b"the writer exited" not in err, err


def test_replay_as_root_reads_no_planted_entry(database: Database, open_dir: Path) -> None:
    """`logpipe replay`, run by root on the user's spool, must not read what the user
    linked there (root can read the link's target: the lines would land in the table)."""
    spool_dir = open_dir / "spool"
    spool_dir.mkdir(mode=0o700)
    os.chown(spool_dir, *uid_gid(USER))
    secret = open_dir / "secret.log"
    secret.write_bytes(spool.make_header("combined", None) + SECRET)
    os.chmod(secret, 0o600)
    plant_strangers(spool_dir, secret)
    left = spool_dir / "seg-00000000000000000009-1-dddddddddddd.log"
    left.write_bytes(spool.make_header("combined", None) + combined_line(1))
    os.chown(left, *uid_gid(USER))  # a segment the logger left
    replay = subprocess.run(
        logpipe_cmd("replay", "--dsn", database.dsn, "--spool-dir", str(spool_dir)),
        capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
    )
    assert replay.returncode == 0, replay.stderr
    assert database.rows() == 1 and database.rejects() == 0
    assert query(database.dsn, "SELECT path FROM access_log") == [("/page/1",)]
    assert len(re.findall(rb"ignoring \S+ in the spool: ", replay.stderr)) == 3, replay.stderr


# -- tracebacks in the ErrorLog --------------------------------------------------------


@pytest.mark.parametrize("program", ["module", "console-script"])
def test_a_reader_traceback_is_prefixed_on_every_line(tmp_path: Path, program: str) -> None:
    """An uncaught exception in the reader (here: Apache gave it no stdin at all) reaches
    the ErrorLog with logpipe[PID]: on every line, as `python -m logpipe` or `logpipe`."""
    command = logpipe_cmd()
    if program == "console-script":
        script = shutil.which("logpipe", path=str(Path(sys.executable).parent))
        assert script is not None, "the logpipe console script is not installed beside python"
        command = [script]
    result = subprocess.run(
        [*command, "--dsn", UNUSED_DSN, "--spool-dir", str(tmp_path / "spool")],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
        preexec_fn=lambda: os.close(0),
    )
    err = result.stderr
    assert result.returncode != 0 and b"Traceback" in err, err
    for line in err.splitlines():
        assert PREFIX.match(line), (line, err)


def test_a_writer_child_usage_error_is_prefixed_on_every_line(tmp_path: Path) -> None:
    """The writer child's stderr is the ErrorLog too, from its first line on."""
    result = subprocess.run(
        logpipe_cmd("_writer", "--spool-dir", str(tmp_path), "--lifeline", "not-a-number"),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
        env=dict(os.environ, LOGPIPE_DSN=UNUSED_DSN),
    )
    err = result.stderr
    assert result.returncode == 2 and b"--lifeline" in err, err
    for line in err.splitlines():
        assert PREFIX.match(line), (line, err)
