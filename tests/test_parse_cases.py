"""LineParser.parse(): exact column values, rejects, invariants, and a real COPY into PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from conftest import rows_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpipe.parse.columns import ACCESS_LOG_COLUMNS
from logpipe.parse.parser import NAMED_FORMATS, Batch, compile_format

ROOT = Path(__file__).resolve().parents[1]
NULL = None




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
}


# -- columns, exact values ----------------------------------------------------------

def test_plain_combined_line() -> None:
    assert one(combined()) == BASE


@pytest.mark.parametrize("offset, expected", [
    ("+0000", "2000-10-10 13:55:36+00:00"),
    ("-0700", "2000-10-10 13:55:36-07:00"),
    ("+0330", "2000-10-10 13:55:36+03:30"),
    ("-0330", "2000-10-10 13:55:36-03:30"),
    ("+0545", "2000-10-10 13:55:36+05:45"),
    ("+1245", "2000-10-10 13:55:36+12:45"),
    ("-0930", "2000-10-10 13:55:36-09:30"),
])
def test_time_offsets_are_exact(offset: str, expected: str) -> None:
    assert one(combined(time=f"10/Oct/2000:13:55:36 {offset}"))["time"] == expected


@pytest.mark.parametrize("stamp, expected", [
    ("29/Feb/2024:23:59:59 +0000", "2024-02-29 23:59:59+00:00"),
    ("01/Jan/1970:00:00:00 +0100", "1970-01-01 00:00:00+01:00"),
    ("31/Dec/9999:23:59:59 -1200", "9999-12-31 23:59:59-12:00"),
    ("30/Jun/2015:23:59:60 +0000", "2015-06-30 23:59:60+00:00"),  # a leap second
])
def test_time_edges(stamp: str, expected: str) -> None:
    assert one(combined(time=stamp))["time"] == expected


@pytest.mark.parametrize("request_line, method, path, query, protocol, raw_request", [
    ("GET /a?b=1&c=2 HTTP/1.1", "GET", "/a", "b=1&c=2", "HTTP/1.1", None),
    ("GET /a? HTTP/1.1", "GET", "/a", "", "HTTP/1.1", None),
    ("GET /a?x?y HTTP/1.1", "GET", "/a", "x?y", "HTTP/1.1", None),
    ("GET /a HTTP/2.0", "GET", "/a", None, "HTTP/2.0", None),
    ("GET /a HTTP/2", "GET", "/a", None, "HTTP/2", None),
    ("MKCOL /dav/new/ HTTP/1.1", "MKCOL", "/dav/new/", None, "HTTP/1.1", None),
    ("PROPFIND /dav/ HTTP/1.1", "PROPFIND", "/dav/", None, "HTTP/1.1", None),
    ("BREW /pot HTTP/1.1", "BREW", "/pot", None, "HTTP/1.1", None),
    ("get /lower HTTP/1.0", "get", "/lower", None, "HTTP/1.0", None),
    ("GET /x", "GET", "/x", None, None, None),
    ("GET /x?q", "GET", "/x", "q", None, None),
    ("GET /a b HTTP/1.1", "GET", "/a b", None, "HTTP/1.1", None),
    ("GET /a b c", "GET", "/a b c", None, None, None),
    ("GET HTTP/1.1", "GET", "HTTP/1.1", None, None, None),
    ("OPTIONS * HTTP/1.1", "OPTIONS", "*", None, "HTTP/1.1", None),
    ("CONNECT example.com:443 HTTP/1.1", "CONNECT", "example.com:443", None, "HTTP/1.1", None),
    ("GET http://example.com/x?y=1 HTTP/1.1", "GET", "http://example.com/x", "y=1",
     "HTTP/1.1", None),
    ("-", None, None, None, None, None),
    ("GARBAGE", None, None, None, None, "GARBAGE"),
    ("", None, None, None, None, None),
    ("GET ", None, None, None, None, "GET "),
    (" /x HTTP/1.1", None, None, None, None, " /x HTTP/1.1"),
    ("GET  HTTP/1.1", None, None, None, None, "GET  HTTP/1.1"),
    ("G(T /x HTTP/1.1", None, None, None, None, "G(T /x HTTP/1.1"),
    (r"\x16\x03\x01", None, None, None, None, "\x16\x03\x01"),
    # NUL and a byte that is not UTF-8: the line is kept as Apache logged it
    (r"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", None, None, None, None,
     r"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
    (r"GET /caf\xc3\xa9 HTTP/1.1", "GET", "/caf\u00e9", None, "HTTP/1.1", None),
    (r"GET /q\"uote\\d HTTP/1.1", "GET", '/q"uote\\d', None, "HTTP/1.1", None),
    (r"GET /bad\xff HTTP/1.1", "GET", r"/bad\xff", None, "HTTP/1.1", None),
    (r"GET /tab\there HTTP/1.1", "GET", "/tab\there", None, "HTTP/1.1", None),
])
def test_request_line_split(request_line: str, method: str | None, path: str | None,
                            query: str | None, protocol: str | None,
                            raw_request: str | None) -> None:
    row = one(combined(request_line))
    assert (row["method"], row["path"], row["query"], row["protocol"], row["request"]) == (
        method, path, query, protocol, raw_request)


def test_408_line_loads_with_a_null_request() -> None:
    row = one(b'192.0.2.9 - - [10/Oct/2000:13:55:36 -0700] "-" 408 - "-" "-"\n')
    assert row == dict(BASE, remote_host="192.0.2.9", method=None, path=None, protocol=None,
                       status="408", bytes="0", user_agent=None)


@pytest.mark.parametrize("host", [
    "::1", "2001:db8::1", "fe80::1%eth0", "192.0.2.255", "crawl-66-249-66-1.googlebot.com",
    "localhost", "::ffff:192.0.2.1",
])
def test_remote_hosts(host: str) -> None:
    assert one(combined(host=host))["remote_host"] == host


@pytest.mark.parametrize("agent, expected", [
    (r"Mozilla/5.0 \"quoted\" agent", 'Mozilla/5.0 "quoted" agent'),
    (r"back\\slash", "back\\slash"),
    (r"end with backslash\\", "end with backslash\\"),
    (r"\"", '"'),
    (r"Caf\xc3\xa9 \xe2\x98\x83", "Caf\u00e9 \u2603"),
    (r"tab\tnew\nline\rcr\bbs\vvt", "tab\tnew\nline\rcr\bbs\vvt"),
    (r"ctl \x01\x7f", "ctl \x01\x7f"),
    (r"latin1 caf\xe9", r"latin1 caf\xe9"),            # not UTF-8: kept as logged
    (r"nul \x00 \"q\"", r"nul \x00 \"q\""),            # NUL: kept as logged
    (r"unknown \q escape", r"unknown \q escape"),
    (r"bad hex \xZZ", r"bad hex \xZZ"),
    ("\N{SNOWMAN} raw UTF-8", "\N{SNOWMAN} raw UTF-8"),
    ("-", None),
    ("", ""),
])
def test_user_agent_unescaping(agent: str, expected: str | None) -> None:
    assert one(combined(agent=agent))["user_agent"] == expected


def test_referer_unescaping_and_dash() -> None:
    assert one(combined(referer="-"))["referer"] is None
    assert one(combined(referer=r"https://x.example/?q=\"a\"\t"))["referer"] == \
        'https://x.example/?q="a"\t'


def test_remote_user_and_logname() -> None:
    row = one(b'192.0.2.1 ident frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 '
              b'"-" "-"\n')
    assert row["remote_user"] == "frank"
    assert json.loads(row["extra"]) == {"remote_logname": "ident"}  # type: ignore[arg-type]
    assert one(combined(user="-"))["remote_user"] is None
    assert one(combined(user=r"caf\xc3\xa9"))["remote_user"] == "caf\u00e9"


@pytest.mark.parametrize("status, size, exp_status, exp_bytes", [
    ("200", "0", "200", "0"),
    ("200", "-", "200", "0"),
    ("-", "-", None, "0"),
    ("999", "9223372036854775807", "999", "9223372036854775807"),
    ("100", "007", "100", "007"),
])
def test_status_and_bytes(status: str, size: str, exp_status: str | None,
                          exp_bytes: str) -> None:
    row = one(combined(status=status, size=size))
    assert (row["status"], row["bytes"]) == (exp_status, exp_bytes)


@pytest.mark.parametrize("tail, trailing", [
    (' "-"', '"-"'),
    (" 1234 foo", "1234 foo"),
    ('  "x" "y"', '"x" "y"'),
    ("xyz", "xyz"),
    (' "-"\r', '"-"'),
    ('\t"tab"', '\t"tab"'),
])
def test_trailing_fields_are_kept_in_extra(tail: str, trailing: str) -> None:
    row = one(combined(tail=tail))
    assert json.loads(row["extra"]) == {"trailing": trailing}  # type: ignore[arg-type]
    assert row["user_agent"] == "Mozilla/5.0"


def test_cr_before_lf_is_dropped() -> None:
    assert one(combined().replace(b"\n", b"\r\n")) == BASE
    common = b'192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5\r\n'
    assert one(common, "common")["bytes"] == "5"
    assert one(common, "common")["extra"] is None


def test_last_line_without_newline() -> None:
    data = combined() + combined().rstrip(b"\n")
    batch = parse(data)
    assert batch.row_count == 2 and rows_of(batch.copy_data) == [BASE, BASE]


def test_source_column() -> None:
    assert one(combined(), source="web1")["source"] == "web1"
    batch = parse(combined(), source="a\tb\\c\nd")
    assert "a\\tb\\\\c\\nd\n" in batch.copy_data
    assert rows_of(batch.copy_data)[0]["source"] == "a\tb\\c\nd"


def test_classify_agent_gives_is_bot_and_is_cached() -> None:
    calls: list[str] = []

    def classify(ua: str) -> bool:
        calls.append(ua)
        return "bot" in ua.lower()

    data = (combined(agent="Googlebot/2.1") + combined(agent="Mozilla/5.0") * 3
            + combined(agent="-") + combined(agent=r"Bot \"x\"") + combined(agent="Googlebot/2.1"))
    batch = parse(data, classify_agent=classify)
    assert [r["is_bot"] for r in rows_of(batch.copy_data)] == ["t", "f", "f", "f", None, "t", "t"]
    assert calls == ["Googlebot/2.1", "Mozilla/5.0", 'Bot "x"']


def test_classify_agent_that_raises_gives_null() -> None:
    def classify(ua: str) -> bool:
        raise RuntimeError("broken classifier")

    assert one(combined(), classify_agent=classify)["is_bot"] is None


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from logpipe.parse import rows as logrow

    monkeypatch.setattr(logrow, "CACHE_LIMIT", 10)
    parser = compile_format("combined", classify_agent=lambda ua: True)
    data = b"".join(combined(agent=f"agent/{i}", time=f"{i % 28 + 1:02d}/Oct/2000:13:55:36 +0000")
                    for i in range(100))
    assert parser.parse(data).row_count == 100
    builder = parser._builder
    assert len(builder.agent_cache) <= 10 and len(builder.date_cache) <= 10


def test_a_bug_in_the_fast_loop_costs_no_line(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = compile_format("combined")
    data = combined() + b"junk\n" + combined()
    expected = parser.parse(data)

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(parser, "_run", broken)
    assert parser.parse(data) == expected


def test_without_classifier_is_bot_is_null() -> None:
    assert one(combined(agent="Googlebot/2.1"))["is_bot"] is None


def test_rows_keep_input_order() -> None:
    data = b"".join(combined(f"GET /{i} HTTP/1.1") if i % 7 else b"junk %d\n" % i
                    for i in range(500))
    batch = parse(data)
    assert [r["path"] for r in rows_of(batch.copy_data)] == [
        f"/{i}" for i in range(500) if i % 7]
    assert [raw for raw, _ in batch.rejects] == [b"junk %d" % i for i in range(0, 500, 7)]


# -- other formats ------------------------------------------------------------------

def test_vhost_combined_values() -> None:
    row = one(b'www.example.com:8443 2001:db8::7 - - [10/Oct/2000:13:55:36 +0545] '
              b'"GET /x HTTP/2.0" 304 0 "-" "curl/8.0"\n', "vhost_combined")
    assert row == dict(BASE, vhost="www.example.com", remote_host="2001:db8::7",
                       time="2000-10-10 13:55:36+05:45", path="/x", protocol="HTTP/2.0",
                       status="304", bytes=None, bytes_out="0", user_agent="curl/8.0",
                       extra='{"port":8443}')


def test_combinedio_values() -> None:
    row = one(combined(tail=" 517 2730"), "combinedio")
    assert (row["bytes_in"], row["bytes_out"], row["extra"]) == ("517", "2730", None)


def test_durations() -> None:
    line = b'h [10/Oct/2000:13:55:36 -0700] 1500 2 "GET / HTTP/1.1" 200\n'
    row = one(line, '%h %t %D %T "%r" %>s')
    assert row["duration_us"] == "1500"
    assert json.loads(row["extra"]) == {"time_taken_s": 2}  # type: ignore[arg-type]
    for unit, scale in (("", 1_000_000), ("s", 1_000_000), ("ms", 1_000), ("us", 1)):
        fmt = "%t %{" + unit + "}T" if unit else "%t %T"
        row = one(b"[10/Oct/2000:13:55:36 -0700] 3\n", fmt)
        assert row["duration_us"] == str(3 * scale)
    assert one(b"[10/Oct/2000:13:55:36 -0700] -\n", "%t %D")["duration_us"] is None


def test_method_path_query_protocol_directives() -> None:
    fmt = '%V %t "%m %U%q %H" %>s'
    row = one(b'example.org [10/Oct/2000:13:55:36 -0700] "POST /form?a=1 HTTP/1.1" 201\n', fmt)
    assert (row["vhost"], row["method"], row["path"], row["query"], row["protocol"]) == (
        "example.org", "POST", "/form", "a=1", "HTTP/1.1")
    row = one(b'example.org [10/Oct/2000:13:55:36 -0700] "GET /form HTTP/1.1" 200\n', fmt)
    assert (row["path"], row["query"]) == ("/form", None)
    row = one(b'example.org [10/Oct/2000:13:55:36 -0700] "GET /form? HTTP/1.1" 200\n', fmt)
    assert (row["path"], row["query"]) == ("/form", "")


def test_directives_fill_only_what_the_request_line_did_not() -> None:
    fmt = '%t "%r" %m %U %H'
    row = one(b'[10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" POST /b HTTP/2.0\n', fmt)
    assert (row["method"], row["path"], row["protocol"]) == ("GET", "/a", "HTTP/1.1")
    row = one(b'[10/Oct/2000:13:55:36 -0700] "-" GET /b HTTP/1.0\n', fmt)
    assert (row["method"], row["path"], row["protocol"]) == ("GET", "/b", "HTTP/1.0")


def test_address_directives() -> None:
    fmt = '%a %{c}a %h %A %t %>s'
    row = one(b"10.0.0.1 10.0.0.2 host.example 10.0.0.3 [10/Oct/2000:13:55:36 -0700] 200\n",
              fmt)
    assert row["remote_host"] == "host.example"
    assert json.loads(row["extra"]) == {  # type: ignore[arg-type]
        "remote_addr": "10.0.0.1", "peer_addr": "10.0.0.2", "local_addr": "10.0.0.3"}
    row = one(b"10.0.0.1 10.0.0.2 [10/Oct/2000:13:55:36 -0700]\n", "%{c}a %a %t")
    assert row["remote_host"] == "10.0.0.2"
    assert json.loads(row["extra"]) == {"peer_addr": "10.0.0.1"}  # type: ignore[arg-type]


def test_status_directives() -> None:
    row = one(b"[10/Oct/2000:13:55:36 -0700] 302 200\n", "%t %s %>s")
    assert row["status"] == "200"
    assert json.loads(row["extra"]) == {"original_status": 302}  # type: ignore[arg-type]
    assert one(b"[10/Oct/2000:13:55:36 -0700] 302\n", "%t %s")["status"] == "302"


def test_vhost_directives() -> None:
    row = one(b"canon.example req.example [10/Oct/2000:13:55:36 -0700]\n", "%v %V %t")
    assert row["vhost"] == "canon.example"
    assert json.loads(row["extra"]) == {"server_name": "req.example"}  # type: ignore[arg-type]


def test_extra_keys() -> None:
    fmt = ('%t %p %{remote}p %P %{tid}P %{hextid}P %k %X %L %R %S %^FB "%f" "%{Foo}i" '
           '"%{Set-Cookie}o" "%{HOME}e" "%{sid}C" "%{n}n" "%{SSL_PROTOCOL}x" %I %O')
    line = (b'[10/Oct/2000:13:55:36 -0700] 443 51234 1234 140 7f3a 2 + YWJj php-fpm 999 1200 '
            b'"/var/www/index.html" "bar" "a=b; Path=/" "/root" "s1" "-" "TLSv1.3" 10 20\n')
    row = one(line, fmt)
    assert json.loads(row["extra"]) == {  # type: ignore[arg-type]
        "port": 443, "port_remote": 51234, "pid": 1234, "tid": 140, "hextid": "7f3a",
        "keepalive": 2, "conn_status": "+", "log_id": "YWJj", "handler": "php-fpm",
        "bytes_combined": 999, "request_time_first_byte": 1200,
        "filename": "/var/www/index.html", "in:Foo": "bar", "out:Set-Cookie": "a=b; Path=/",
        "env:HOME": "/root", "cookie:sid": "s1", "x:SSL_PROTOCOL": "TLSv1.3"}
    assert (row["bytes_in"], row["bytes_out"]) == ("10", "20")


def test_extra_escapes_are_valid_json_and_copy_text() -> None:
    row = one(b'[10/Oct/2000:13:55:36 -0700] "a\\"b\\\\c\\td\\xc3\\xa9"\n', '%t "%{X}i"')
    assert json.loads(row["extra"]) == {"in:X": 'a"b\\c\td\u00e9'}  # type: ignore[arg-type]


def test_conditional_directives_log_a_dash() -> None:
    fmt = '%t "%r" %>s "%!200,304,302{Referer}i" "%400,501{User-agent}i"'
    row = one(b'[10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 "-" "-"\n', fmt)
    assert (row["referer"], row["user_agent"]) == (None, None)
    row = one(b'[10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 400 "https://r/" "ua"\n', fmt)
    assert (row["referer"], row["user_agent"]) == ("https://r/", "ua")


def test_unquoted_header_at_the_end_takes_the_rest_of_the_line() -> None:
    fmt = "%h %t %{X-Forwarded-For}i"
    row = one(b"::1 [10/Oct/2000:13:55:36 -0700] 203.0.113.9, 10.0.0.1\r\n", fmt)
    assert json.loads(row["extra"]) == {  # type: ignore[arg-type]
        "in:X-Forwarded-For": "203.0.113.9, 10.0.0.1"}


def test_unquoted_request_line() -> None:
    fmt = "%h %t %r %>s %b"
    row = one(b"::1 [10/Oct/2000:13:55:36 -0700] GET /x?y HTTP/1.1 200 5\n", fmt)
    assert (row["method"], row["path"], row["query"], row["status"]) == ("GET", "/x", "y", "200")
    row = one(b"::1 [10/Oct/2000:13:55:36 -0700] - 408 -\n", fmt)
    assert (row["method"], row["status"], row["bytes"]) == (None, "408", "0")


@pytest.mark.parametrize("fmt, value, expected", [
    ("%{sec}t", "971186136", "2000-10-10 13:55:36+00:00"),
    ("%{msec}t", "971186136123", "2000-10-10 13:55:36.123+00:00"),
    ("%{usec}t", "971186136000123", "2000-10-10 13:55:36.000123+00:00"),
    ("%{end:sec}t", "0", "1970-01-01 00:00:00+00:00"),
    ("%{%Y-%m-%d %H:%M:%S %z}t", "2000-10-10 13:55:36 +0545", "2000-10-10 13:55:36+05:45"),
    ("%{begin:%d/%b/%Y:%T %z}t", "10/Oct/2000:13:55:36 -0330", "2000-10-10 13:55:36-03:30"),
    ("[%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t]", "[10/Oct/2000:13:55:36.042 +0530]",
     "2000-10-10 13:55:36.042+05:30"),
    ("%{sec}t.%{usec_frac}t", "971186136.000042", "2000-10-10 13:55:36.000042+00:00"),
    ("%{begin}t", "[10/Oct/2000:13:55:36 -0700]", "2000-10-10 13:55:36-07:00"),
])
def test_time_directives(fmt: str, value: str, expected: str) -> None:
    row = one(f"{value}\n".encode(), fmt)
    assert row["time"] == expected


def test_strftime_time_without_zone_is_local_time() -> None:
    row = one(b"2000-10-10 13:55:36\n", "%{%Y-%m-%d %H:%M:%S}t")
    local = datetime(2000, 10, 10, 13, 55, 36).astimezone()
    assert datetime.fromisoformat(row["time"]) == local  # type: ignore[arg-type]


def test_second_time_directive_goes_to_extra() -> None:
    row = one(b"[10/Oct/2000:13:55:36 -0700] 971186137\n", "%t %{end:sec}t")
    assert row["time"] == "2000-10-10 13:55:36-07:00"
    assert json.loads(row["extra"]) == {"time:end:sec": 971186137}  # type: ignore[arg-type]


# -- rejects ------------------------------------------------------------------------

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
    assert reject_reason(big) == "line longer than 65536 bytes"
    ok = combined(agent="a" * 40)
    limit = len(ok) - 1
    assert parse(ok, max_line_bytes=limit).row_count == 1
    assert reject_reason(ok.replace(b"a" * 40, b"a" * 41), max_line_bytes=limit) == \
        f"line longer than {limit} bytes"
    data = ok + big + ok + b"y" * 70000
    batch = parse(data)
    assert batch.row_count == 2
    assert [raw for raw, _ in batch.rejects] == [big.rstrip(b"\n"), b"y" * 70000]


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


# -- never raises, whatever the bytes -------------------------------------------------

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


# -- into PostgreSQL ----------------------------------------------------------------

@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg2.extensions.connection]:
    name = f"logpipe_test_parse_{os.getpid()}"
    admin = psycopg2.connect(os.environ.get("LOGPIPE_TEST_ADMIN_DSN", "dbname=postgres"))
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
