"""Lines as long as Apache writes them load as rows; a line over --max-line-bytes is a reject.

Apache accepts a request line and header fields of up to about 8 KB each
(LimitRequestLine, LimitRequestFieldSize) and logs every non-ASCII byte as \\xhh, so
one request can make a line of ~100 KB: more than the 64 KB logpipe once took.
"""

from __future__ import annotations

import random
import socket
import subprocess
from pathlib import Path

import pytest
from apache_fixture import ApacheServer
from conftest import (
    COMMAND_TIMEOUT,
    Database,
    combined_line,
    logpipe_cmd,
    query,
    start_logger,
    wait_for,
)

from logpipe.ingest import spool
from logpipe.parse import compile_format

# What Apache accepts (measured with Debian's 2.4 at its defaults): a request line of
# 8191 bytes, and a header field of 8191 bytes, its name and ": " included.
LONGEST_REQUEST_LINE = 8191
LONGEST_FIELD = 8191
OLD_CAP = 65536


def apache_escape(data: bytes) -> str:
    """A value as Apache logs it (ap_escape_logitem): \\" and \\\\, \\b \\n \\r \\t \\v,
    and \\xhh for any other control byte and every byte >= 0x80."""
    named = {ord("\b"): "\\b", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
             ord("\v"): "\\v", ord('"'): '\\"', ord("\\"): "\\\\"}
    return "".join(named.get(b) or (f"\\x{b:02x}" if b < 0x20 or b >= 0x7f else chr(b))
                   for b in data)


def as_stored(data: bytes) -> str:
    """What access_log holds for a logged value: its text if its bytes are UTF-8, else
    the value as logged."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return apache_escape(data)


class LongestRequest:
    """A request at Apache's limits whose every field is non-ASCII, so logged 4x longer:
    a NOP sled in the path, random bytes in the query and the User-Agent, and a referer
    of (UTF-8) Cyrillic text. The path and the referer repeat themselves: the report
    index of access_log holds both, and PostgreSQL refuses an index entry of over
    2,704 bytes once compressed (that row would be a reject, `PostgreSQL refused the
    row: index row size ...`)."""

    def __init__(self, seed: int = 5) -> None:
        rng = random.Random(seed)
        self.path = b"/" + b"\x90" * 300
        room = LONGEST_REQUEST_LINE - len(b"GET ?q= HTTP/1.1") - len(self.path)
        self.query = b"q=" + bytes(rng.randrange(0x80, 0x100) for _ in range(room))
        self.request = b"GET " + self.path + b"?" + self.query + b" HTTP/1.1"
        self.agent = bytes(rng.randrange(0x80, 0x100)
                           for _ in range(LONGEST_FIELD - len(b"User-Agent: ")))
        referer = (b"https://ref.example/" + "жизнь ".encode() * 1000)[: LONGEST_FIELD - 9]
        # whole characters, no trailing space (Apache drops it from a field)
        self.referer = referer.decode("utf-8", "ignore").rstrip().encode()
        assert len(self.request) == LONGEST_REQUEST_LINE

    def http(self) -> bytes:
        return (self.request + b"\r\nHost: 127.0.0.1\r\nUser-Agent: " + self.agent +
                b"\r\nReferer: " + self.referer + b"\r\nConnection: close\r\n\r\n")

    def log_line(self) -> bytes:
        """The line Apache's combined format writes for it."""
        return (f'192.0.2.7 - - [03/Dec/2026:12:00:00 +0000] "{apache_escape(self.request)}" '
                f'404 210 "{apache_escape(self.referer)}" "{apache_escape(self.agent)}"\n'
                ).encode()

    def row(self) -> tuple[str, str, str, str, str, str]:
        """(method, path, query, protocol, referer, user_agent) as access_log holds them."""
        request = as_stored(self.request)  # the request line is unescaped as a whole
        path, _, rest = request.removeprefix("GET ").partition("?")
        return ("GET", path, rest.removesuffix(" HTTP/1.1"), "HTTP/1.1",
                as_stored(self.referer), as_stored(self.agent))


ROW_SQL = "SELECT method, path, query, protocol, referer, user_agent FROM access_log"


def send(port: int, request: bytes) -> bytes:
    """Send raw bytes as one HTTP request; the response's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    return response.split(b"\r\n", 1)[0]


def rejects(dsn: str) -> list[tuple[str, bytes]]:
    return [(reason, bytes(line)) for reason, line in
            query(dsn, "SELECT reason, line FROM access_log_rejects ORDER BY id")]


def test_request_at_apaches_limits_loads_as_one_row(database: Database) -> None:
    longest = LongestRequest()
    apache = ApacheServer(database.dsn)
    try:
        apache.start()
        status = send(apache.port, longest.http()).split()[1]
        assert status not in (b"400", b"414"), "Apache refused the request as too long"
        wait_for(lambda: database.rows() + database.rejects(), 30, "the line to be loaded")
        [line] = apache.ground_truth()
    finally:
        apache.close()
    assert len(line) > OLD_CAP
    for value in (longest.request, longest.referer, longest.agent):  # escaped as modelled here
        assert f'"{apache_escape(value)}"'.encode() in line
    assert rejects(database.dsn) == []
    assert query(database.dsn, ROW_SQL) == [longest.row()]


def test_line_over_max_line_bytes_is_a_reject_with_its_reason(database: Database,
                                                              tmp_path: Path) -> None:
    long_line = LongestRequest().log_line()
    assert len(long_line) > OLD_CAP
    logger = start_logger(database.dsn, tmp_path / "spool", "--max-line-bytes", "64k")
    _, err = logger.communicate(combined_line(1) + long_line + combined_line(2),
                                timeout=COMMAND_TIMEOUT)
    assert logger.returncode == 0, err.decode()
    assert database.rows() == 2
    assert rejects(database.dsn) == [("line longer than 65536 bytes (--max-line-bytes)",
                                      long_line.rstrip(b"\n"))]


def write_segment(spool_dir: Path, data: bytes) -> None:
    """A closed segment, as a logger that stopped leaves it for `logpipe replay`."""
    spool_dir.mkdir(mode=0o700)
    segment = spool_dir / "seg-00000000000000000001-1-aaaaaaaaaaaa.log"
    segment.write_bytes(spool.make_header("combined", None) + data)


@pytest.mark.parametrize("command", ["load", "replay"])
@pytest.mark.parametrize("cap", [None, "64K"])
def test_load_and_replay_take_max_line_bytes(database: Database, tmp_path: Path,
                                             command: str, cap: str | None) -> None:
    line = LongestRequest().log_line()
    if command == "load":
        (tmp_path / "access.log").write_bytes(line)
        args = ["load", "--dsn", database.dsn, str(tmp_path / "access.log")]
    else:
        write_segment(tmp_path / "spool", line)
        args = ["replay", "--dsn", database.dsn, "--spool-dir", str(tmp_path / "spool")]
    done = subprocess.run(logpipe_cmd(*args, *(["--max-line-bytes", cap] if cap else [])),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    if cap is None:
        assert query(database.dsn, ROW_SQL) == [LongestRequest().row()]
    else:
        assert rejects(database.dsn) == [("line longer than 65536 bytes (--max-line-bytes)",
                                          line.rstrip(b"\n"))]


@pytest.mark.parametrize("value, says", [
    ("0", "size must be positive"),
    ("lots", "not a size"),
    ("17M", "at most 16M"),
])
def test_bad_max_line_bytes_is_a_usage_error(value: str, says: str, tmp_path: Path) -> None:
    done = subprocess.run(logpipe_cmd("--spool-dir", str(tmp_path), "--max-line-bytes", value),
                          input="", capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                          check=False)
    assert done.returncode == 2
    assert says in done.stderr and "--max-line-bytes" in done.stderr


def test_default_cap_fits_every_line_apache_writes_within_its_limits() -> None:
    """32,760 bytes (8190 escaped) per text field of the format, at least 256 KiB."""
    assert compile_format("combined").max_line_bytes == 256 * 1024
    assert compile_format("common").max_line_bytes == 256 * 1024
    headers = " ".join(f'"%{{X-Header-{i}}}i"' for i in range(12))
    wide = compile_format(f"%h %t {headers}")
    assert wide.max_line_bytes >= 13 * 8190 * 4
    values = " ".join(f'"{apache_escape(bytes([0x80 + i]) * 8190)}"' for i in range(12))
    line = f"192.0.2.1 [03/Dec/2026:12:00:00 +0000] {values}\n".encode()
    assert len(line) > 256 * 1024
    assert wide.parse(line).row_count == 1
    assert compile_format("combined", max_line_bytes=100).max_line_bytes == 100


def long_query_line(size: int) -> bytes:
    """A combined line whose query string makes it `size` bytes or so: a row, whatever
    its length, once the cap allows it."""
    return (f'192.0.2.9 - - [03/Dec/2026:10:00:00 +0000] "GET /search?q={"a" * size}'
            ' HTTP/1.1" 200 5 "-" "curl/8.5.0"\n').encode()


@pytest.mark.parametrize("option, loaded", [(None, True), ("64K", False)])
def test_replay_takes_the_cap_its_logger_was_given(database: Database, tmp_path: Path,
                                                   option: str | None, loaded: bool) -> None:
    """A logger given --max-line-bytes 1M writes it into its segments' header, so that
    `replay` (or drain) of what it left loads the same lines without being told; an
    explicit --max-line-bytes still wins."""
    line = long_query_line(300_000)  # over combined's default cap of 256 KiB
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    (spool_dir / "seg-00000000000000000001-1-aaaaaaaaaaaa.log").write_bytes(
        spool.make_header("combined", None, 1 << 20) + line)
    args = ["replay", "--dsn", database.dsn, "--spool-dir", str(spool_dir)]
    done = subprocess.run(logpipe_cmd(*args, *(["--max-line-bytes", option] if option else [])),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    assert (database.rows(), database.rejects()) == ((1, 0) if loaded else (0, 1))


def test_the_logger_records_its_cap_in_the_segment_header(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    proc = start_logger("dbname=logpipe_no_such_database_here", spool_dir,
                        "--max-line-bytes", "1M", "--stop-timeout", "1")
    assert proc.stdin is not None
    proc.stdin.write(combined_line(1))
    proc.stdin.flush()
    wait_for(lambda: spool.list_segments(spool_dir) != [], what="a segment")
    (name,) = spool.list_segments(spool_dir)
    header = spool.read_header(spool_dir / name)
    assert header is not None and header[0]["max_line_bytes"] == 1 << 20
    proc.stdin.close()
    proc.wait(timeout=COMMAND_TIMEOUT)
