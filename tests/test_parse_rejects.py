"""LineParser.parse(): what is rejected and why, and odd input (empty, long, not UTF-8)."""

from __future__ import annotations

import pytest
from conftest import rows_of
from parse_helpers import combined, parse, reject_reason

from logpipe.parse import Batch, compile_format


@pytest.mark.parametrize("line", [
    combined(time="31/Feb/2000:13:55:36 -0700"),
    combined(time="29/Feb/2023:13:55:36 -0700"),
    combined(time="29/Feb/1900:13:55:36 -0700"),
    combined(time="00/Oct/2000:13:55:36 -0700"),
    combined(time="10/Foo/2000:13:55:36 -0700"),
    combined(time="10/oct/2000:13:55:36 -0700"),
    combined(time="10/Oct/0000:13:55:36 -0700"),
    combined(time="10/Oct/2000:24:00:00 -0700"),
    combined(time="10/Oct/2000:13:60:00 -0700"),
    combined(time="10/Oct/2000:13:55:61 -0700"),
    combined(time="10/Oct/2000:13:55:36 +1600"),
    combined(time="10/Oct/2000:13:55:36 +0060"),
    combined(time="10/Oct/2000:13:55:36"),
    combined(time="yesterday"),
])
def test_bad_time_is_rejected(line: bytes) -> None:
    assert "time" in reject_reason(line)


@pytest.mark.parametrize("status", ["1000", "99", "099", "0", "-1", "65536", "2000000000000"])
def test_status_out_of_range_is_rejected(status: str) -> None:
    assert "status" in reject_reason(combined(status=status))


@pytest.mark.parametrize("size", ["9223372036854775808", "99999999999999999999", "-1"])
def test_bytes_that_do_not_fit_bigint_are_rejected(size: str) -> None:
    assert "bytes" in reject_reason(combined(size=size))


def test_duration_out_of_range_is_rejected() -> None:
    assert "duration" in reject_reason(b"[10/Oct/2000:13:55:36 -0700] 9223372036855\n",
                                       "%t %T")


@pytest.mark.parametrize("line, reason", [
    (b"\n", "empty line"),
    (b"\r\n", "empty line"),
    (combined().replace(b"Mozilla", b"Moz\0illa"), "NUL byte in line"),
    (combined().replace(b"Mozilla", b"Moz\xffilla"), "invalid UTF-8 at byte"),
    (combined().replace(b"Mozilla", b"Moz\xc3illa"), "invalid UTF-8 at byte"),
    (combined().replace(b"Mozilla", b"Moz\xed\xa0\x80illa"), "invalid UTF-8 at byte"),  # surrogate
    (b"garbage\n", "line does not match the LogFormat: no ' ' after %h"),
    (b"just some words here\n", "line does not match the LogFormat: no %t after ' '"),
    (b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200\n',
     "line does not match the LogFormat: no ' ' after %>s"),
    (b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" abc 1 "-" "-"\n',
     "line does not match the LogFormat: no %>s after '\" '"),
    (b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-"\0\n',
     "NUL byte in line"),
    (b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / "HTTP/1.1" 200 1 "-" "-"\n',
     "line does not match the LogFormat"),
    (b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-\n',
     "line does not match the LogFormat"),
    (b"\x16\x03\x01\x02\x01\x01\xfc\x03\x03\n", "invalid UTF-8"),
    (b"   \n", "line does not match the LogFormat"),
])
def test_rejects_with_reasons(line: bytes, reason: str) -> None:
    assert reason in reject_reason(line)


def test_long_lines_are_rejected() -> None:
    big = combined(agent="x" * (1 << 20))
    assert reject_reason(big) == "line longer than 262144 bytes (--max-line-bytes)"
    ok = combined(agent="a" * 40)
    limit = len(ok) - 1
    assert parse(ok, max_line_bytes=limit).row_count == 1
    assert reject_reason(ok.replace(b"a" * 40, b"a" * 41), max_line_bytes=limit) == \
        f"line longer than {limit} bytes (--max-line-bytes)"
    data = ok + big + ok + b"y" * 300000
    batch = parse(data)
    assert batch.row_count == 2
    assert [raw for raw, _ in batch.rejects] == [big.rstrip(b"\n"), b"y" * 300000]


def test_bad_lines_do_not_spoil_their_neighbours() -> None:
    good = [combined(f"GET /{i} HTTP/1.1") for i in range(6)]
    bad = [b"\0\n", b"\xff\xfe\n", b"x" * 70000 + b"\n", b"\n", b"junk\n", b"\r\n"]
    data = b"".join(x for pair in zip(good, bad) for x in pair)
    batch = parse(data)
    assert [r["path"] for r in rows_of(batch.copy_data)] == [f"/{i}" for i in range(6)]
    assert [raw for raw, _ in batch.rejects] == [b.rstrip(b"\n") for b in bad]


def test_empty_input() -> None:
    assert compile_format("combined").parse(b"") == Batch("", 0, [])


def test_only_newlines() -> None:
    batch = parse(b"\n\n\n")
    assert batch.row_count == 0 and batch.rejects == [(b"", "empty line")] * 3


def test_accepts_bytearray_and_memoryview() -> None:
    parser = compile_format("combined")
    assert parser.parse(bytearray(combined())).row_count == 1  # type: ignore[arg-type]
    assert parser.parse(memoryview(combined())).row_count == 1  # type: ignore[arg-type]
