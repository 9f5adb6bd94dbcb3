"""LineParser.parse() with other formats: each directive, where it goes, its value."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from parse_helpers import BASE, combined, one


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
