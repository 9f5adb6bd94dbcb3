"""The reference path (RowBuilder.build) and the plan's less common choices.

A line goes through the reference path when the fast regex does not take it: a raw TAB
in a value, a number with a fraction, a value out of the fast regex's range ...
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import rows_of
from hypothesis import given, settings
from hypothesis import strategies as st
from parse_helpers import check_batch, combined, one, reject_reason

from logpipe.parse import FormatError, compile_format, fastloop, regexes, rows

TIME = "[10/Oct/2000:13:55:36 -0700]"


def test_newline_in_a_directive_argument() -> None:
    with pytest.raises(FormatError, match="a newline in LogFormat directive argument"):
        compile_format("%t %{a\nb}i")


def test_repeated_directives_go_to_extra() -> None:
    fmt = '%t "%r" "%r" %m %m %>s %>s %{Referer}i %{Referer}i'
    line = f'{TIME} "GET /a HTTP/1.1" "GET /b HTTP/1.1" PUT POST 200 404 https://r1/ https://r2/\n'
    row = one(line.encode(), fmt)
    assert (row["method"], row["path"], row["status"], row["referer"]) == (
        "GET", "/a", "200", "https://r1/")
    assert json.loads(row["extra"]) == {  # type: ignore[arg-type]
        "request_line": "GET /b HTTP/1.1", "fill:m": "POST", "final_status": 404,
        "in:Referer": "https://r2/"}


def test_time_with_fraction_and_zone_on_both_paths() -> None:
    fmt = '[%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t] "%{X}i"'
    fast = one(b'[10/Oct/2000:13:55:36.042 +0530] "ab"\n', fmt)
    slow = one(b'[10/Oct/2000:13:55:36.042 +0530] "a\tb"\n', fmt)  # raw TAB: reference path
    assert fast["time"] == slow["time"] == "2000-10-10 13:55:36.042+05:30"
    assert json.loads(slow["extra"]) == {"in:X": "a\tb"}  # type: ignore[arg-type]
    assert reject_reason(b'[31/Feb/2000:13:55:36.042 +0530] "a\tb"\n', fmt) == \
        "bad time: 31/Feb/2000:13:55:36 +0530"


def test_fraction_completes_the_time_on_the_reference_path() -> None:
    row = one(b'971186136.000042 "a\tb"\n', '%{sec}t.%{usec_frac}t "%{X}i"')
    assert row["time"] == "2000-10-10 13:55:36.000042+00:00"


def test_directives_fill_in_on_the_reference_path() -> None:
    fmt = '%t "%m" "%U" "%{X}i"'
    row = one(f'{TIME} "GET" "/a\\"b" "x\ty"\n'.encode(), fmt)
    assert (row["method"], row["path"]) == ("GET", '/a"b')
    row = one(f'{TIME} "-" "" "x\ty"\n'.encode(), fmt)
    assert (row["method"], row["path"]) == (None, None)


@pytest.mark.parametrize("fmt, value, expected", [
    ("%t %T", "1.5", "1500000"),
    ("%t %{ms}T", "0.25", "250"),
    ("%t %D", "-", None),
])
def test_durations_on_the_reference_path(fmt: str, value: str, expected: str | None) -> None:
    assert one(f"{TIME} {value}\n".encode(), fmt)["duration_us"] == expected


@pytest.mark.parametrize("fmt, value, reason", [
    ("%t %T", "1" * 400 + ".5", "duration_us is not a number"),  # a float overflows
    ("%t %D", "1" * 5000, "duration_us is not a number"),  # more digits than int() takes
])
def test_hostile_numbers_are_rejected(fmt: str, value: str, reason: str) -> None:
    assert reason in reject_reason(f"{TIME} {value}\n".encode(), fmt)


@pytest.mark.parametrize("fmt, value", [
    ("%{sec}t", "-"),
    ("%{sec}t", "999999999999999999"),  # beyond datetime's range
    ("%{%Y-%m-%d}t", "2000-13-45"),
])
def test_times_that_do_not_convert_are_rejected(fmt: str, value: str) -> None:
    assert reject_reason(f"{value}\n".encode(), fmt) == f"bad time: {value}"


@pytest.fixture
def amsterdam() -> Iterator[None]:
    """This process's local time zone is Europe/Amsterdam (+00:19:32 before 1937)."""
    if not Path("/usr/share/zoneinfo/Europe/Amsterdam").exists():
        pytest.skip("no tz database")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Amsterdam"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_local_time_with_an_offset_in_seconds(amsterdam: None) -> None:
    row = one(b"1900-01-01 00:00:00\n", "%{%Y-%m-%d %H:%M:%S}t")
    assert row["time"] == "1900-01-01 00:00:00+00:19:32"


def test_time_and_extra_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows, "CACHE_LIMIT", 10)
    monkeypatch.setattr(rows, "TIME_CACHE_LIMIT", 10)
    monkeypatch.setattr(fastloop, "TIME_CACHE_LIMIT", 10)  # bound into the loop when compiled
    parser = compile_format("%t %{X}i")
    data = b"".join(f"[10/Oct/2000:13:55:{i % 60:02d} -0700] x{i}\n".encode() for i in range(100))
    assert parser.parse(data).row_count == 100
    builder = parser._builder
    assert len(builder.time_cache) <= 10 and len(builder.extra_cache) <= 10
    assert parser.parse(b'[31/Oct/2000:13:55:36 -0700] "\t"\n').row_count == 1  # builder.time()
    assert len(builder.time_cache) <= 10


def test_a_bug_in_the_reference_path_costs_only_its_lines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parser = compile_format("combined")

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(parser, "_run", broken)
    monkeypatch.setattr(parser._builder, "build", broken)
    data = combined() + b"\n" + combined()
    batch = parser.parse(data)
    check_batch(data, batch)
    assert batch.row_count == 0
    assert batch.rejects == [(combined().rstrip(b"\n"), "internal error: RuntimeError('bug')"),
                             (b"", "empty line"),
                             (combined().rstrip(b"\n"), "internal error: RuntimeError('bug')")]
    assert rows_of(batch.copy_data) == []


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(alphabet='ab"\\\n\t x', max_size=12))
def test_lenient_quoted_values_are_always_well_escaped(value: str) -> None:
    """Why build() need not check_quoted() a quoted value: the lenient regex only takes
    well-escaped ones (the fast loop checks, as the quick regex is not so strict)."""
    if re.fullmatch(regexes._Q_LENIENT, value):
        assert rows.well_escaped(value)


@settings(max_examples=2000, deadline=None, database=None)
@given(st.text(alphabet='ab"\\\n\t x', max_size=16))
def test_well_escaped_is_apaches_escaping_rule(value: str) -> None:
    """No unescaped quote, no dangling backslash: what a regex stepping through the
    escapes says, only quicker on long values."""
    rule = re.fullmatch(r'[^"\\]*(?:\\.[^"\\]*)*', value, re.DOTALL)
    assert rows.well_escaped(value) == (rule is not None)
