"""LineParser.parse() never raises, whatever the bytes, and counts every line once."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parse_helpers import check_batch, mutate, sample_lines

from logpipe.parse import NAMED_FORMATS, compile_format


@pytest.mark.parametrize("fmt", sorted(NAMED_FORMATS) + ['%h %t "%r" %>s %{X}i',
                                                         "%t %{sec}t %D %{Foo}o"])
def test_random_bytes_never_raise_and_every_line_is_counted(fmt: str) -> None:
    parser = compile_format(fmt, source="fuzz", classify_agent=lambda ua: "bot" in ua)
    for seed in range(300):
        rnd = random.Random(seed)
        size = rnd.choice([1, 10, 100, 1000, 5000])
        data = bytes(rnd.randrange(256) for _ in range(size))
        if seed % 3 == 0:
            data = data.replace(b"\n", b"")[: size // 2] + b"\n" + data
        check_batch(data, parser.parse(data))


@pytest.mark.parametrize("fmt", ["combined", "vhost_combined", '%h %t "%r" %>s %{X}i'])
def test_mutated_lines_never_raise_and_every_line_is_counted(fmt: str) -> None:
    parser = compile_format(fmt)
    for seed in range(200):
        rnd = random.Random(seed)
        lines = sample_lines(20, seed)
        data = b"".join(mutate(x, rnd) if rnd.random() < 0.5 else x for x in lines)
        batch = parser.parse(data)
        check_batch(data, batch)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_hypothesis_binary(data: bytes) -> None:
    check_batch(data, compile_format("combined").parse(data))


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sample_lines(50, 7)), max_size=20),
       st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)),
                max_size=5),
       st.integers(0, 3))
def test_hypothesis_damaged_lines(lines: list[bytes], damage: list[tuple[int, bytes]],
                                  cut: int) -> None:
    data = bytearray(b"".join(lines))
    for pos, junk in damage:
        p = pos % (len(data) + 1)
        data[p:p] = junk
    data = bytes(data[: len(data) - cut])
    check_batch(data, compile_format("combined").parse(data))


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=300))
def test_hypothesis_text(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    check_batch(data, compile_format('%h %t "%r" %>s %b %{X}i').parse(data))


def test_chunking_does_not_change_the_result() -> None:
    rnd = random.Random(5)
    lines = [mutate(x, rnd) if rnd.random() < 0.2 else x for x in sample_lines(400, 5)]
    data = b"".join(lines)
    whole = compile_format("combined").parse(data)
    parser = compile_format("combined")
    rows, rejects, pos = [], [], 0
    while pos < len(data):
        end = data.find(b"\n", pos + rnd.randint(0, 3000))
        end = len(data) if end < 0 else end + 1
        part = parser.parse(data[pos:end])
        rows.append(part.copy_data)
        rejects += part.rejects
        pos = end
    assert "".join(rows) == whole.copy_data
    assert rejects == whole.rejects
