"""The generated fast loop and the quick regex agree with the reference path, line for line."""

from __future__ import annotations

import random

import pytest
from conftest import rows_of
from parse_helpers import BASE, check_batch, combined, mutate, one, parse, sample_lines

from logpipe.parse import NAMED_FORMATS, compile_format


@pytest.mark.parametrize("fmt", sorted(NAMED_FORMATS) + [
    '%h %t "%r" %>s "%{X}i" %D', "%v %V %t %U%q %m %H %s %>s", "%t %{sec}t.%{usec_frac}t %p"])
def test_fast_path_agrees_with_the_reference_path(fmt: str) -> None:
    """Each line parsed in a chunk (generated fast loop) equals the same line parsed alone
    through the reference path (lenient regex + RowBuilder.build)."""
    parser = compile_format(fmt, source="s", classify_agent=lambda ua: "o" in ua)
    rnd = random.Random(11)
    base = [x.replace(b"192.0.2.", b"www.example.org:80 192.0.2.") if fmt == "vhost_combined"
            else x for x in sample_lines(300, 11)]
    lines = [mutate(x, rnd) if rnd.random() < 0.3 else x for x in base]
    data = b"".join(lines)
    batch = parser.parse(data)
    check_batch(data, batch)
    expected_rows = []
    expected_rejects = []
    for raw in data.split(b"\n")[:-1]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" in text:
            continue
        row, reason = parser._parse_one(text)
        if row is None:
            expected_rejects.append((raw, reason))
        else:
            expected_rows.append(row)
    assert batch.copy_data == "".join(expected_rows)
    assert [r for r in batch.rejects if r in expected_rejects] == expected_rejects


QUOTE_GAMES = [
    combined(referer="a\\\\", agent="b"),                 # a value ending in a backslash
    combined(agent="x\\\\", tail=' "-"'),                 # ... as the last quoted value
    combined(agent='x\\\\\\" y', tail=' "z"'),          # \\\" : backslash, then quote
    combined(referer='\\" "', agent='\\"'),
    combined(request='GET /a\\\\ HTTP/1.1', referer="r\\\\", agent="u\\\\"),
    combined(agent="raw\ttab"),
    combined(agent="raw\rcr"),
    combined(agent='unescaped " quote'),
    combined(agent="trunc").replace(b'"trunc"', b'"trunc'),  # runs into the next line
    combined(agent='ends with quote \\"'),
]


@pytest.mark.parametrize("line", QUOTE_GAMES)
def test_quick_regex_agrees_with_fast_regex(line: bytes) -> None:
    """The quick regex ([^"]* for quoted values) gives the same batch as the fast one."""
    data = combined() + line + combined() + combined(agent='a \\"b\\" c')
    quick = compile_format("combined")
    fast = compile_format("combined")
    fast._quick = None
    assert quick._quick is not None
    assert quick.parse(data) == fast.parse(data)
    check_batch(data, quick.parse(data))


def test_values_ending_in_a_backslash() -> None:
    row = one(combined(agent="x\\\\", tail=' "-"'))
    assert (row["user_agent"], row["extra"]) == ("x\\", '{"trailing":"\\"-\\""}')
    row = one(combined(referer="a\\\\", agent="b"))
    assert (row["referer"], row["user_agent"]) == ("a\\", "b")
    row = one(combined(agent='x\\\\\\" y', tail=' "z"'))
    assert row["user_agent"] == 'x\\" y'


def test_a_line_cut_short_does_not_take_the_next_one() -> None:
    data = combined(agent="trunc").replace(b'"trunc"', b'"trunc') + combined() * 3
    batch = parse(data)
    assert batch.row_count == 3 and len(batch.rejects) == 1
    assert rows_of(batch.copy_data) == [BASE] * 3


def test_raw_tab_and_cr_inside_a_value() -> None:
    assert one(combined(agent="a\tb"))["user_agent"] == "a\tb"
    assert one(combined(agent="a\rb"))["user_agent"] == "a\rb"


def test_generated_loop_is_kept_for_reading() -> None:
    source = compile_format("combined").fast_source
    assert source.startswith("def run(matches, rows, slow):")
