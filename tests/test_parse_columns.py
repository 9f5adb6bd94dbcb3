"""LineParser.parse(): exact column values of combined lines, caches, order, is_bot."""

from __future__ import annotations

import json

import pytest
from conftest import rows_of
from parse_helpers import BASE, combined, one, parse

from logpipe.parse import compile_format


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
    assert "\ta\\tb\\\\c\\nd\t\\N\n" in batch.copy_data  # then country: none for 192.0.2.1
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
