"""The spool appender on its own: whole lines, rotation, locks, headers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from logpipe.ingest import spool
from logpipe.ingest.appender import MAX_PENDING_TAIL, SpoolAppender


def segments(directory: Path) -> list[bytes]:
    out = []
    for name in spool.list_segments(directory):
        path = directory / name
        header = spool.read_header(path)
        assert header is not None
        out.append(path.read_bytes()[header[1]:])
    return out


def test_segments_hold_whole_lines_and_rotate_between_lines(tmp_path: Path) -> None:
    appender = SpoolAppender(tmp_path, spool.make_header("combined", "web1"), 100)
    for chunk in (b"line one\nline t", b"wo\n", b"x" * 150 + b"\nlast"):
        appender.append(chunk)
    assert all(spool.is_closed(tmp_path / n) is False for n in spool.list_segments(tmp_path))
    appender.close()
    parts = segments(tmp_path)
    assert b"".join(parts) == b"line one\nline two\n" + b"x" * 150 + b"\nlast"
    assert all(p.endswith(b"\n") for p in parts[:-1])
    assert all(spool.is_closed(tmp_path / n) for n in spool.list_segments(tmp_path))
    meta, _ = spool.read_header(tmp_path / spool.list_segments(tmp_path)[0])
    assert meta == {"format": "combined", "source": "web1"}


def test_a_huge_line_is_never_split_across_segments(tmp_path: Path) -> None:
    appender = SpoolAppender(tmp_path, spool.make_header("combined", None), 1000)
    big = b"y" * (3 * MAX_PENDING_TAIL)
    for i in range(0, len(big), 64 * 1024):
        appender.append(big[i:i + 64 * 1024])
    appender.append(b"\nafter\n")
    appender.close()
    parts = segments(tmp_path)
    assert big + b"\n" in parts[0] or parts[0] == big + b"\n"
    assert b"".join(parts) == big + b"\nafter\n"


def test_spool_max_drops_and_counts(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    appender = SpoolAppender(tmp_path, spool.make_header("combined", None), 1 << 20,
                                   max_bytes=1000)
    for _ in range(100):
        appender.append(b"z" * 99 + b"\n")
    appender.close()
    kept = b"".join(segments(tmp_path)).count(b"\n")
    assert kept + appender.dropped_lines == 100
    assert appender.dropped_lines > 0
    err = capfd.readouterr().err
    assert err.count("cannot write to the spool") == 1
    assert f"{appender.dropped_lines} lines" in err


def test_a_closed_segment_looks_closed_to_two_writers_probing_at_once(tmp_path: Path) -> None:
    """Writers probe with a lock of their own; one writer's probe must not make the
    segment look live to another, or both leave it behind."""
    appender = SpoolAppender(tmp_path, spool.make_header("combined", None), 1 << 20)
    appender.append(b"a line\n")
    path = tmp_path / spool.list_segments(tmp_path)[0]
    assert not spool.is_closed(path)  # the appender's lock
    appender.close()
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another writer's probe, mid-way
        assert spool.is_closed(path)
    finally:
        os.close(fd)


def test_from_a_pipe_bytes_go_into_the_segment_without_passing_through_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader killed between reading bytes and writing them would lose them: from a
    pipe, the kernel moves them into the segment in one step (no os.read at all)."""
    read_end, write_end = os.pipe()
    lines = b"".join(b"line %d\n" % i for i in range(1000))
    os.write(write_end, lines)
    os.close(write_end)
    appender = SpoolAppender(tmp_path, spool.make_header("combined", None), 1 << 20)

    def no_read(fd: int, size: int) -> bytes:
        raise AssertionError("bytes from a pipe went through the reader's memory")

    monkeypatch.setattr(os, "read", no_read)
    assert appender.take_from(read_end, 1 << 20) == len(lines)
    assert segments(tmp_path) == [lines]  # in the file as soon as take_from returns
    monkeypatch.undo()
    assert appender.take_from(read_end, 1 << 20) == 0  # end of file
    appender.close()
    os.close(read_end)
    assert segments(tmp_path) == [lines]


def test_take_from_rotates_at_a_line_end_and_falls_back_to_reading(tmp_path: Path) -> None:
    """Spliced segments rotate only where a line ends; a partial line read into memory
    before goes first; a regular file (no splice) is read and appended."""
    appender = SpoolAppender(tmp_path, spool.make_header("combined", None), 20)
    read_end, write_end = os.pipe()
    for chunk in (b"first line is long", b"er than twenty\n", b"second\n"):
        os.write(write_end, chunk)
        appender.take_from(read_end, 1 << 16)
    appender.append(b"part")  # the read path keeps a partial line in memory
    os.write(write_end, b"ial third\n")
    appender.take_from(read_end, 1 << 16)
    os.close(write_end)
    os.close(read_end)
    log = tmp_path / "old.log"
    log.write_bytes(b"fourth\n")
    with open(log, "rb") as f:
        assert appender.take_from(f.fileno(), 1 << 16) == 7
        assert appender.take_from(f.fileno(), 1 << 16) == 0
    appender.close()
    parts = segments(tmp_path)
    assert b"".join(parts) == b"first line is longer than twenty\nsecond\npartial third\nfourth\n"
    assert all(p.endswith(b"\n") for p in parts)
    assert parts[0] == b"first line is longer than twenty\n"
