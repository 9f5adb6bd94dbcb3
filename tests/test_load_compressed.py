"""`logpipe load` of gzip, bzip2 and xz files (recognised by content, not name): the
same rows as the plain file; a damaged one is a clear error and nothing of it loads,
once or twice."""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from conftest import COMMAND_TIMEOUT, Database, combined_line, logpipe_cmd, query

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
# every column but when it was loaded and the source the test names the file by
ROW = ("SELECT time, vhost, remote_host, remote_user, method, path, query, protocol, status, "
       "bytes, referer, user_agent, duration_us, bytes_in, bytes_out, is_bot, request, "
       "extra::text FROM access_log WHERE source = %s ORDER BY 1, 6, 7")
REJECTS = "SELECT line, reason FROM access_log_rejects ORDER BY line"
# a reject, and a last line without its newline
DATA = (b"".join(combined_line(i) for i in range(3_000)) + b"not a log line\n"
        + combined_line(3_000).rstrip(b"\n"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(logpipe_cmd(*args), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_file_loads_the_same_rows(database: Database, tmp_path: Path,
                                             kind: str) -> None:
    plain = tmp_path / "access.log.1"
    plain.write_bytes(DATA)
    packed = tmp_path / "access.log.2"  # no extension: the content says what it is
    packed.write_bytes(COMPRESS[kind](DATA))
    done = run("load", "--dsn", database.dsn, "--source", "plain", str(plain))
    assert done.returncode == 0, done.stderr
    # the same content: its fingerprint is that of the plain file
    again = run("load", "--dsn", database.dsn, "--source", "packed", str(packed))
    assert again.returncode == 0, again.stderr
    assert f"{packed}: already loaded (as {plain}" in again.stderr
    forced = run("load", "--dsn", database.dsn, "--source", "packed", "--force", str(packed))
    assert forced.returncode == 0, forced.stderr
    assert f"{packed}: loaded 3001 rows, 1 rejects" in forced.stderr
    plain_rows = query(database.dsn, ROW, ("plain",))
    assert len(plain_rows) == 3_001
    assert query(database.dsn, ROW, ("packed",)) == plain_rows
    rejects = [(bytes(line), reason) for line, reason in query(database.dsn, REJECTS)]
    reason = "line does not match the LogFormat: no %t after ' '"
    assert rejects == [(b"not a log line", reason)] * 2


def cut_short(data: bytes) -> bytes:
    return data[:len(data) // 2]


def flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x55 for b in data[middle:middle + 64]) + data[middle + 64:]


def garbage_after_header(data: bytes) -> bytes:
    return data[:10] + b"\xff" * 200  # for gzip: a deflate error (zlib.error)


@pytest.mark.parametrize("kind, damage, says", [
    ("xz", flipped, "xz data: Corrupt input data"),
    ("xz", cut_short, "xz data: Compressed file ended before the end-of-stream marker"),
    ("bz2", flipped, "bzip2 data: Invalid data stream"),
    ("gz", flipped, "gzip data: CRC check failed"),
    ("gz", garbage_after_header, "gzip data: Error -3 while decompressing data"),
])
def test_a_damaged_file_is_a_clear_error_and_loads_nothing(
        database: Database, tmp_path: Path, kind: str, damage: Callable[[bytes], bytes],
        says: str) -> None:
    bad = tmp_path / f"access.log.1.{kind}"
    bad.write_bytes(damage(COMPRESS[kind](DATA)))
    good = tmp_path / "access.log.2.xz"
    good.write_bytes(lzma.compress(b"".join(combined_line(i, "/good") for i in range(100))))
    for attempt in range(2):
        done = run("load", "--dsn", database.dsn, str(bad), str(good))
        assert done.returncode == 1, done.stderr
        assert f"{bad}: cannot read it ({says}" in done.stderr
        assert "skipped" in done.stderr and "Traceback" not in done.stderr
        if attempt:
            assert f"{good}: already loaded" in done.stderr
        assert database.rows() == 100  # the good file, once; nothing of the damaged one
    assert query(database.dsn, "SELECT count(*) FROM logpipe_loaded_files") == [(1,)]
