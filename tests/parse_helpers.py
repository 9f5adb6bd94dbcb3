"""Helpers shared by the parser tests (test_parse_*.py): parse and check a batch, build lines."""

from __future__ import annotations

import random

from conftest import rows_of

from logpipe.parse import Batch, compile_format
from logpipe.parse.columns import ACCESS_LOG_COLUMNS


def parse(data: bytes, fmt: str = "combined", **kw: object) -> Batch:
    batch = compile_format(fmt, **kw).parse(data)  # type: ignore[arg-type]
    check_batch(data, batch)
    return batch


def check_batch(data: bytes, batch: Batch) -> None:
    """The contract every batch keeps: one row or one reject per line, well-formed rows."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    assert batch.row_count + len(batch.rejects) == len(lines)
    assert batch.copy_data.count("\n") == batch.row_count
    assert batch.copy_data == "" or batch.copy_data.endswith("\n")
    for row in batch.copy_data.split("\n")[:-1]:
        assert row.count("\t") == len(ACCESS_LOG_COLUMNS) - 1
        assert "\r" not in row and "\0" not in row
    pos = 0
    for raw, reason in batch.rejects:  # exact raw lines, in input order
        assert isinstance(raw, bytes) and isinstance(reason, str) and reason
        pos = lines.index(raw, pos) + 1


def one(line: bytes, fmt: str = "combined", **kw: object) -> dict[str, object]:
    batch = parse(line, fmt, **kw)
    assert batch.rejects == [], batch.rejects
    return rows_of(batch.copy_data)[0]


def reject_reason(line: bytes, fmt: str = "combined", **kw: object) -> str:
    batch = parse(line, fmt, **kw)
    assert batch.row_count == 0 and len(batch.rejects) == 1, batch
    raw, reason = batch.rejects[0]
    assert raw == line.rstrip(b"\n") if line.endswith(b"\n") else raw == line
    return reason


def combined(request: str = "GET /index.html HTTP/1.1", *, host: str = "192.0.2.1",
             user: str = "-", time: str = "10/Oct/2000:13:55:36 -0700", status: str = "200",
             size: str = "1234", referer: str = "-", agent: str = "Mozilla/5.0",
             tail: str = "") -> bytes:
    return (f'{host} - {user} [{time}] "{request}" {status} {size} "{referer}" "{agent}"{tail}\n'
            ).encode()


BASE = {
    "time": "2000-10-10 13:55:36-07:00", "vhost": None, "remote_host": "192.0.2.1",
    "remote_user": None, "method": "GET", "path": "/index.html", "query": None,
    "protocol": "HTTP/1.1", "status": "200", "bytes": "1234", "referer": None,
    "user_agent": "Mozilla/5.0", "duration_us": None, "bytes_in": None, "bytes_out": None,
    "is_bot": None, "request": None, "extra": None, "source": None,
    "country": None,  # 192.0.2.1 is a documentation address: no country
}


def sample_lines(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    agents = ["Mozilla/5.0", r"A \"q\" \\ \xc3\xa9", "-", r"\xff\x00", "Googlebot/2.1"]
    requests = ["GET / HTTP/1.1", "-", "MKCOL /d HTTP/1.1", r"\x16\x03", "GET /a?b HTTP/2.0",
                "GET /x", "POST /p?q=1&r=2 HTTP/1.0"]
    offsets = ["+0000", "+0330", "-0330", "+0545", "-0700"]
    return [combined(rnd.choice(requests), host=rnd.choice(["::1", "192.0.2.7", "h.example"]),
                     time=f"{rnd.randint(1, 28):02d}/Mar/2024:{rnd.randint(0, 23):02d}:"
                          f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d} "
                          f"{rnd.choice(offsets)}",
                     status=rnd.choice(["200", "404", "-", "301"]),
                     size=rnd.choice(["0", "-", str(rnd.randint(0, 10**9))]),
                     referer=rnd.choice(["-", "https://r.example/?a=1"]),
                     agent=rnd.choice(agents), tail=rnd.choice(["", "", ' "-"', "\r"]))
            for _ in range(n)]


def mutate(line: bytes, rnd: random.Random) -> bytes:
    b = bytearray(line)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(4)
        pos = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            del b[min(pos, len(b) - 1)]
        elif op == 1:
            b[pos:pos] = bytes([rnd.randrange(256)])
        elif op == 2:
            b[pos:pos] = rnd.choice([b'"', b"\\", b"\n", b"\r", b"\t", b" ", b"\0", b"\\x",
                                     b"[", b"]", b"-", b"\xc3", b"\xe2\x82", b"%"])
        elif b:
            b[min(pos, len(b) - 1)] = rnd.randrange(256)
    return bytes(b)
