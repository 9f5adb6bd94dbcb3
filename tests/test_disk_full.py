"""When the spool cannot grow: its disk fills up while a logger runs and its writer
loads (a real, small tmpfs; space taken and given back by a filler file), or it is over
--spool-max. The reader keeps reading, drops and counts, and never stores a piece of a
line as a line of its own."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import subprocess
import tempfile
import termios
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, loaded_paths, start_logger, wait_for
from pipe_support import StderrReader, finish, joined

from logpipe.ingest import spool
from logpipe.ingest.appender import SpoolAppender

# tmpfs fills up a 4096-byte page at a time, a multiple of 128; the segment's header
# (50 bytes with --source web1) is not, so no line ends where a page does: the disk
# filling up always cuts a line in two.
LINE_BYTES = 128
FREE_BYTES = 96 * 1024  # room left for each episode's first lines


def line(i: int) -> bytes:
    """A valid combined line of exactly LINE_BYTES, told apart by its path /d/NNNNNNN."""
    head = (f'192.0.2.{i % 250 + 1} - - [10/Oct/2024:13:00:00 +0000] '
            f'"GET /d/{i:07d} HTTP/1.1" 200 5 "-" "')
    return (head + "a" * (LINE_BYTES - len(head) - 2) + '"\n').encode()


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MiB tmpfs (room for what the reader may hold when space comes back: up to
    one 1 MiB read), unmounted afterwards."""
    mount_point = Path(tempfile.mkdtemp(prefix="logpipe-disk-full-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs",
                    str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
        mount_point.rmdir()


def fill(disk: Path, leave: int) -> Path:
    """Take all of the disk's space but `leave` bytes, with a filler file."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with open(filler, "ab") as f:
        with contextlib.suppress(OSError):
            while True:
                os.write(f.fileno(), block)
        with contextlib.suppress(OSError):
            while True:  # the last part-block
                os.write(f.fileno(), block[:4096])
        size = f.seek(0, os.SEEK_END)
        f.truncate(max(size - leave, 0))
    probe = os.statvfs(disk)
    assert probe.f_bavail * probe.f_frsize <= leave + 4096, "the disk is not nearly full"
    return filler


def bytes_in_pipe(proc: subprocess.Popen[bytes]) -> int:
    """Bytes written to the logger's stdin that it has not read yet."""
    assert proc.stdin is not None
    buf = fcntl.ioctl(proc.stdin.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def feed_in_thread(proc: subprocess.Popen[bytes], lines: list[bytes]) -> threading.Thread:
    def run() -> None:
        assert proc.stdin is not None
        for start in range(0, len(lines), 200):
            proc.stdin.write(b"".join(lines[start:start + 200]))
        proc.stdin.flush()

    feeder = threading.Thread(target=run)
    feeder.start()
    return feeder


def test_disk_full_mid_stream_costs_dropped_lines_and_at_most_one_reject_per_episode(
        database: Database, small_disk: Path) -> None:
    """Each time the disk fills, the reader keeps reading Apache's pipe and drops what
    it cannot store; once there is room again the lines sent after load, every row is
    a line that was sent, none twice, and a line cut by the full disk is one reject."""
    spool_dir = small_disk / "spool"
    proc = start_logger(database.dsn, spool_dir, "--source", "web1")
    stderr = StderrReader(proc)
    sent: list[bytes] = []
    after_recovery: list[bytes] = []
    try:
        for episode in (1, 2):
            filler = fill(small_disk, leave=FREE_BYTES)
            # More than fits, and more than the 1 MiB pipe holds: written only if the
            # reader keeps reading with the disk full.
            batch = [line(len(sent) + i) for i in range(12_000)]
            sent += batch
            joined(feed_in_thread(proc, batch))
            wait_for(lambda n=episode: stderr.text().count(b"cannot write to the spool") >= n,
                     what="the reader to say that the disk is full")
            # Lines still in the pipe would be stored once there is room: let the reader
            # take (and drop) them first, so the room is there for the lines sent next.
            wait_for(lambda: bytes_in_pipe(proc) == 0, what="the reader to empty its pipe")
            filler.unlink()
            batch = [line(len(sent) + i) for i in range(500)]
            sent += batch
            after_recovery += batch
            joined(feed_in_thread(proc, batch))
            wait_loaded(database, batch, f"the lines sent after episode {episode}")
        err = finish(proc, stderr=stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    episodes = err.count(b"cannot write to the spool")
    assert episodes == 2, err
    assert err.count(b"spool has room again") == 2, err
    loaded = Counter(loaded_paths(database.dsn))
    assert max(loaded.values()) == 1, "a line loaded twice"
    assert set(loaded) <= set(paths(sent)), "a row that is no line that was sent"
    assert set(paths(after_recovery)) <= set(loaded)
    assert database.rejects() <= episodes
    dropped = re.search(rb"(\d+) lines \(\d+ bytes\) were dropped", err)
    assert dropped, err
    assert database.rows() + int(dropped.group(1)) == len(sent), "lines neither loaded nor counted"


def wait_loaded(db: Database, lines: list[bytes], what: str) -> None:
    expected = set(paths(lines))
    wait_for(lambda: expected <= set(loaded_paths(db.dsn)),
             what=lambda: f"{what} (got {db.rows()} rows, {db.rejects()} rejects)")


def paths(lines: list[bytes]) -> list[str]:
    return [re.search(rb'"GET (\S+) ', ln).group(1).decode() for ln in lines]



def test_over_spool_max_a_dropped_line_head_takes_the_rest_of_its_line_with_it(
        tmp_path: Path) -> None:
    """The reader holds a line's head in memory and the rest arrives later, with room
    for the rest but not for the head: storing the rest alone would make a line that
    was never logged (it could even parse as a row). Both parts are dropped."""
    header = spool.make_header("combined", None)
    appender = SpoolAppender(tmp_path, header, 1 << 20, max_bytes=len(header) + 100)
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x" * 50 + b"\n" + b"A" * 200)  # too much to splice: read
        appender.take_from(read_end, 1 << 16)  # the line is written, the head kept
        os.write(write_end, b"A" * 10 + b"\n" + b"y" * 20 + b"\n")  # fits, the head not
        appender.take_from(read_end, 1 << 16)
    finally:
        os.close(read_end)
        os.close(write_end)
    appender.close()
    (name,) = spool.list_segments(tmp_path)
    assert (tmp_path / name).read_bytes() == header + b"x" * 50 + b"\n" + b"y" * 20 + b"\n"
    assert appender.dropped_lines == 1
