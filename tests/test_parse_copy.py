"""Parsed rows COPY into PostgreSQL and read back with exact typed values."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg2
import pytest
from conftest import ADMIN_DSN, ROOT
from parse_helpers import combined, mutate, parse, sample_lines

from logpipe.parse import Batch
from logpipe.parse.columns import ACCESS_LOG_COLUMNS


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg2.extensions.connection]:
    name = f"logpipe_test_parse_{os.getpid()}"
    admin = psycopg2.connect(ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    conn = psycopg2.connect(dbname=name)
    try:
        with conn.cursor() as cur:
            cur.execute((ROOT / "sql" / "001_tables.sql").read_text())
        conn.commit()
        yield conn
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


COLS = ", ".join(ACCESS_LOG_COLUMNS)


def load(conn: psycopg2.extensions.connection, batch: Batch) -> list[dict[str, object]]:
    """COPY a batch into an empty access_log and read the rows back, typed, in order."""
    with conn.cursor() as cur:
        cur.execute("TRUNCATE access_log")
        cur.copy_expert(f"COPY access_log ({COLS}) FROM STDIN", io.StringIO(batch.copy_data))
        cur.execute(f"SELECT {COLS} FROM access_log ORDER BY ctid")
        rows = [dict(zip(ACCESS_LOG_COLUMNS, r)) for r in cur.fetchall()]
    conn.commit()
    return rows


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_copy_into_postgresql_gives_exact_typed_values(pg: psycopg2.extensions.connection
                                                       ) -> None:
    lines = [
        combined(time="10/Oct/2000:13:55:36 +0330", referer="-"),
        combined(time="10/Oct/2000:13:55:36 -0330", size="-"),
        combined(time="10/Oct/2000:13:55:36 +0545", request="GET /a?b=1 HTTP/2.0"),
        combined(request="MKCOL /dav/x/ HTTP/1.1", status="201"),
        b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "-" 408 - "-" "-"\n',
        combined(request="GET /noproto"),
        combined(host="2001:db8::1", tail=' "-" 42'),
        combined().replace(b"\n", b"\r\n"),
        combined(agent=r"Mozilla/5.0 \"quoted\" \\ \xc3\xa9\t"),
        combined(request=r"\x16\x03\x01\x00\xa5\x01"),
        combined(agent=r"caf\xe9 \xff"),
        combined(size="9223372036854775807", user=r"\xe2\x98\x83"),
    ]
    batch = parse(b"".join(lines), source="web\t1", classify_agent=lambda ua: "quoted" in ua)
    assert batch.rejects == []
    rows = load(pg, batch)
    assert len(rows) == len(lines)
    r = rows[0]
    assert r["time"] == utc(2000, 10, 10, 10, 25, 36)
    assert r["time"].utcoffset() is not None  # type: ignore[union-attr]
    assert (r["status"], r["bytes"], r["referer"], r["source"]) == (200, 1234, None, "web\t1")
    assert r["is_bot"] is False
    assert rows[1]["time"] == utc(2000, 10, 10, 17, 25, 36)
    assert rows[1]["bytes"] == 0
    assert rows[2]["time"] == utc(2000, 10, 10, 8, 10, 36)
    assert (rows[2]["method"], rows[2]["path"], rows[2]["query"], rows[2]["protocol"]) == (
        "GET", "/a", "b=1", "HTTP/2.0")
    assert (rows[3]["method"], rows[3]["path"], rows[3]["status"]) == ("MKCOL", "/dav/x/", 201)
    assert {k: rows[4][k] for k in ("method", "path", "query", "protocol", "request", "status",
                                     "bytes", "user_agent", "is_bot")} == {
        "method": None, "path": None, "query": None, "protocol": None, "request": None,
        "status": 408, "bytes": 0, "user_agent": None, "is_bot": None}
    assert (rows[5]["method"], rows[5]["path"], rows[5]["protocol"]) == ("GET", "/noproto", None)
    assert rows[6]["remote_host"] == "2001:db8::1"
    assert rows[6]["extra"] == {"trailing": '"-" 42'}
    assert rows[7]["user_agent"] == "Mozilla/5.0" and rows[7]["extra"] is None
    assert rows[8]["user_agent"] == 'Mozilla/5.0 "quoted" \\ \u00e9\t'
    assert rows[8]["is_bot"] is True
    assert rows[9]["request"] == r"\x16\x03\x01\x00\xa5\x01"
    assert rows[9]["method"] is None
    assert rows[10]["user_agent"] == r"caf\xe9 \xff"
    assert rows[11]["bytes"] == 9223372036854775807
    assert rows[11]["remote_user"] == "\u2603"
    assert all(row["duration_us"] is None and row["vhost"] is None for row in rows)


def test_copy_custom_format_into_postgresql(pg: psycopg2.extensions.connection) -> None:
    fmt = '%v %{sec}t.%{usec_frac}t %{ms}T %I %O %p "%{X}i" "%r"'
    line = b'example.org 971186136.000042 1500 300 4000 443 "a\\"b\\td" "GET /x HTTP/1.1"\n'
    rows = load(pg, parse(line, fmt))
    assert rows[0]["time"] == utc(2000, 10, 10, 13, 55, 36, 42)
    assert (rows[0]["vhost"], rows[0]["duration_us"], rows[0]["bytes_in"],
            rows[0]["bytes_out"]) == ("example.org", 1_500_000, 300, 4000)
    assert rows[0]["extra"] == {"port": 443, "in:X": 'a"b\td'}


def test_every_fuzzed_row_loads_into_postgresql(pg: psycopg2.extensions.connection) -> None:
    """Whatever the input, the rows the parser produces are accepted by PostgreSQL."""
    rnd = random.Random(3)
    lines = [mutate(x, rnd) for x in sample_lines(3000, 3)]
    lines += [bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 200))) + b"\n"
              for _ in range(300)]
    data = b"".join(lines)
    for fmt in ("combined", "common", '%h %t "%r" %>s %b %{X}i'):
        batch = parse(data, fmt, classify_agent=lambda ua: len(ua) % 2 == 0)
        assert batch.row_count > 0
        rows = load(pg, batch)
        assert len(rows) == batch.row_count


def test_time_offsets_in_postgresql(pg: psycopg2.extensions.connection) -> None:
    offsets = ["+0000", "+0330", "-0330", "+0545", "-0945", "+1400", "-1200", "+0100"]
    data = b"".join(combined(time=f"01/Jan/2024:00:00:00 {o}") for o in offsets)
    rows = load(pg, parse(data))
    for offset, row in zip(offsets, rows):
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
        assert row["time"] == utc(2024, 1, 1) - delta, offset


def test_decimal_durations_in_postgresql(pg: psycopg2.extensions.connection) -> None:
    rows = load(pg, parse(b"[10/Oct/2000:13:55:36 -0700] 7\n", "%t %{ms}T"))
    assert rows[0]["duration_us"] == Decimal(7000) == 7000
