"""Cross-check against apache-log-parser 1.7.0.

Where it is right (plain combined lines, +0000 offsets, ordinary user agents) every
field must agree with ours. Where it is wrong (design brief section 2), ours must give
the right value, and the test records what apache-log-parser returns instead.
"""

from __future__ import annotations

import random
import warnings
from datetime import datetime, timezone

import pytest
from conftest import rows_of

from logpipe.parse import NAMED_FORMATS, compile_format

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    apache_log_parser = pytest.importorskip("apache_log_parser")

COMBINED = NAMED_FORMATS["combined"]


def ours(line: str) -> dict[str, object]:
    batch = compile_format("combined").parse(line.encode() + b"\n")
    assert batch.rejects == []
    return rows_of(batch.copy_data)[0]


def theirs(line: str) -> dict[str, object]:
    return apache_log_parser.make_parser(COMBINED)(line)


def utc_instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def plain_lines(n: int) -> list[str]:
    rnd = random.Random(2024)
    agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
              "curl/8.5.0", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
              "Wget/1.21.3"]
    lines = []
    for i in range(n):
        path = f"/p/{rnd.randint(0, 9999)}" + (f"?a={i}&b=x" if i % 3 == 0 else "")
        lines.append(
            f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
            f" - {'-' if i % 4 else 'alice'} [{rnd.randint(1, 28):02d}/"
            f"{rnd.choice(['Jan', 'Jun', 'Dec'])}/2024:{rnd.randint(0, 23):02d}:"
            f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d} +0000] "
            f'"{rnd.choice(["GET", "POST", "HEAD", "PUT", "DELETE"])} {path} '
            f'HTTP/{rnd.choice(["1.0", "1.1"])}" {rnd.choice([200, 301, 404, 500])} '
            f'{rnd.choice(["-", str(rnd.randint(0, 99999))])} '
            f'"{rnd.choice(["-", "https://www.example.com/"])}" "{rnd.choice(agents)}"')
    return lines


@pytest.mark.parametrize("line", plain_lines(60))
def test_agrees_with_apache_log_parser_on_plain_lines(line: str) -> None:
    mine, ref = ours(line), theirs(line)
    assert mine["remote_host"] == ref["remote_host"]
    assert mine["remote_user"] == (None if ref["remote_user"] == "-" else ref["remote_user"])
    assert utc_instant(mine["time"]) == ref["time_received_utc_datetimeobj"]  # type: ignore
    assert mine["method"] == ref["request_method"]
    assert mine["path"] == ref["request_url_path"]
    assert (mine["query"] or "") == ref["request_url_query"]
    assert mine["protocol"] == f"HTTP/{ref['request_http_ver']}"
    assert mine["status"] == ref["status"]
    assert mine["bytes"] == ("0" if ref["response_bytes_clf"] == "-"
                             else ref["response_bytes_clf"])
    referer = ref["request_header_referer"]
    assert mine["referer"] == (None if referer == "-" else referer)
    assert mine["user_agent"] == ref["request_header_user_agent"]


LINE = '203.0.113.5 - - [22/Jan/2019:03:56:14 {off}] "{req}" 200 512 "-" "{ua}"'


def test_half_hour_offset() -> None:
    line = LINE.format(off="+0330", req="GET / HTTP/1.1", ua="Mozilla/5.0")
    assert ours(line)["time"] == "2019-01-22 03:56:14+03:30"
    assert utc_instant(ours(line)["time"]) == datetime(2019, 1, 22, 0, 26, 14,  # type: ignore
                                                       tzinfo=timezone.utc)
    ref = theirs(line)
    assert ref["time_received_tz_isoformat"] == "2019-01-22T03:56:14+03:03"  # 27 minutes off
    assert ref["time_received_utc_datetimeobj"] != utc_instant(ours(line)["time"])  # type: ignore


@pytest.mark.parametrize("off, iso, ref_iso", [
    ("-0330", "2019-01-22 03:56:14-03:30", "2019-01-22T03:56:14-03:03"),
    ("+0545", "2019-01-22 03:56:14+05:45", "2019-01-22T03:56:14+05:04"),
])
def test_other_odd_offsets(off: str, iso: str, ref_iso: str) -> None:
    line = LINE.format(off=off, req="GET / HTTP/1.1", ua="Mozilla/5.0")
    assert ours(line)["time"] == iso
    assert theirs(line)["time_received_tz_isoformat"] == ref_iso


def test_escaped_quote_in_user_agent() -> None:
    line = LINE.format(off="+0000", req="GET / HTTP/1.1", ua=r'Mozilla/5.0 \"Evil\" Bot')
    assert ours(line)["user_agent"] == 'Mozilla/5.0 "Evil" Bot'
    assert theirs(line)["request_header_user_agent"] == "Mozilla/5.0 \\"  # cut at the first \"


def test_http_2() -> None:
    line = LINE.format(off="+0000", req="GET /a?b=1 HTTP/2.0", ua="Mozilla/5.0")
    mine = ours(line)
    assert (mine["method"], mine["path"], mine["query"], mine["protocol"]) == (
        "GET", "/a", "b=1", "HTTP/2.0")
    ref = theirs(line)
    assert ref["request_url"] == "/a?b=1 HTTP/2.0"  # the protocol left inside the URL
    assert ref["request_http_ver"] is None


def test_mkcol() -> None:
    line = LINE.format(off="+0000", req="MKCOL /dav/new/ HTTP/1.1", ua="Mozilla/5.0")
    mine = ours(line)
    assert (mine["method"], mine["path"], mine["protocol"]) == ("MKCOL", "/dav/new/", "HTTP/1.1")
    ref = theirs(line)
    assert (ref["request_method"], ref["request_url"]) == ("", "")  # empty method and URL


def test_propfind() -> None:
    # apache-log-parser knows PROPFIND (it is in its method list): both are right here
    line = LINE.format(off="+0000", req="PROPFIND /dav/ HTTP/1.1", ua="Mozilla/5.0")
    mine = ours(line)
    assert (mine["method"], mine["path"], mine["protocol"]) == ("PROPFIND", "/dav/", "HTTP/1.1")
    ref = theirs(line)
    assert (ref["request_method"], ref["request_url"]) == ("PROPFIND", "/dav/")


def test_extra_trailing_field() -> None:
    line = LINE.format(off="+0000", req="GET / HTTP/1.1", ua="Mozilla/5.0") + ' "-"'
    assert ours(line)["extra"] == '{"trailing":"\\"-\\""}'
    assert theirs(line)["request_header_user_agent"] == "Mozilla/5.0"  # it ignores the rest
