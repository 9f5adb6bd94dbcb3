"""Compiling LogFormat strings: named formats, directives, modifiers, FormatError."""

from __future__ import annotations

import re

import pytest
from conftest import rows_of

from logpipe.parse import NAMED_FORMATS, FormatError, LineParser, compile_format


def one_row(fmt: str, line: bytes) -> dict[str, object]:
    batch = compile_format(fmt).parse(line)
    assert batch.rejects == []
    assert batch.row_count == 1
    return rows_of(batch.copy_data)[0]


# -- named formats ------------------------------------------------------------------

STOCK_LINES = {
    "common": b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" '
              b"200 2326\n",
    "combined": b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" '
                b'200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"\n',
    "vhost_combined": b'www.example.com:443 127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] '
                      b'"GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" '
                      b'"Mozilla/4.08 [en] (Win98; I ;Nav)"\n',
    "combinedio": b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" '
                  b'200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
                  b" 517 2730\n",
}

COMMON_EXPECTED = {
    "time": "2000-10-10 13:55:36-07:00", "vhost": None, "remote_host": "127.0.0.1",
    "remote_user": "frank", "method": "GET", "path": "/apache_pb.gif", "query": None,
    "protocol": "HTTP/1.0", "status": "200", "bytes": "2326", "referer": None,
    "user_agent": None, "duration_us": None, "bytes_in": None, "bytes_out": None,
    "is_bot": None, "request": None, "extra": None, "source": None, "country": None,
}


def test_named_formats_are_apaches_stock_strings() -> None:
    assert NAMED_FORMATS == {
        "common": '%h %l %u %t "%r" %>s %b',
        "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
        "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
        "combinedio": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %I %O',
    }


def test_common_stock_line() -> None:
    assert one_row("common", STOCK_LINES["common"]) == COMMON_EXPECTED


def test_combined_stock_line() -> None:
    assert one_row("combined", STOCK_LINES["combined"]) == dict(
        COMMON_EXPECTED, referer="http://www.example.com/start.html",
        user_agent="Mozilla/4.08 [en] (Win98; I ;Nav)")


def test_vhost_combined_stock_line() -> None:
    assert one_row("vhost_combined", STOCK_LINES["vhost_combined"]) == dict(
        COMMON_EXPECTED, vhost="www.example.com", bytes=None, bytes_out="2326",
        referer="http://www.example.com/start.html",
        user_agent="Mozilla/4.08 [en] (Win98; I ;Nav)", extra='{"port":443}')


def test_combinedio_stock_line() -> None:
    assert one_row("combinedio", STOCK_LINES["combinedio"]) == dict(
        COMMON_EXPECTED, referer="http://www.example.com/start.html",
        user_agent="Mozilla/4.08 [en] (Win98; I ;Nav)", bytes_in="517", bytes_out="2730")


@pytest.mark.parametrize("name", sorted(NAMED_FORMATS))
def test_name_and_string_give_the_same_parser(name: str) -> None:
    by_name = compile_format(name)
    by_string = compile_format(NAMED_FORMATS[name])
    assert isinstance(by_name, LineParser)
    assert by_name.format_string == by_string.format_string == NAMED_FORMATS[name]
    assert by_name.parse(STOCK_LINES[name]) == by_string.parse(STOCK_LINES[name])


@pytest.mark.parametrize("spec", [
    r'%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\"',    # as in httpd.conf
    r'"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\""',  # with its outer quotes
    '%h %l %u %t "%r" %>s %b "%{referer}i" "%{USER-AGENT}i"',           # plain, any case
])
def test_httpd_conf_escapes_and_header_case(spec: str) -> None:
    assert one_row(spec, STOCK_LINES["combined"]) == one_row("combined", STOCK_LINES["combined"])


def test_literal_tab_escape_in_format() -> None:
    row = one_row(r"%h\t%t\t\"%r\"\t%>s", b'::1\t[01/Jan/2024:00:00:00 +0000]\t"GET / HTTP/1.1"\t204\n')
    assert (row["remote_host"], row["path"], row["status"]) == ("::1", "/", "204")


def test_percent_literal() -> None:
    row = one_row("%h 100%% %t %>s", b"h 100% [01/Jan/2024:00:00:00 +0000] 200\n")
    assert (row["remote_host"], row["status"]) == ("h", "200")


# -- FormatError --------------------------------------------------------------------

@pytest.mark.parametrize("spec, named", [
    ("%h %l %u %t %Z", "%Z at position 12"),
    ("%h %t %{x}Q", "%{x}Q at position 6"),
    ("%t %>Z", "%>Z at position 3"),
    ("%t %400,501j", "%400,501j at position 3"),
    ("%t %^xx", "%^xx at position 3"),
])
def test_unknown_directive_is_named_with_its_position(spec: str, named: str) -> None:
    with pytest.raises(FormatError) as exc:
        compile_format(spec)
    assert f"unknown LogFormat directive {named} in {spec!r}" in str(exc.value)


@pytest.mark.parametrize("spec, message", [
    ("%h %l %u", "no time directive"),
    ("", "no time directive"),
    ("%h %{msec_frac}t", "no time directive"),
    ("%t %{Referer", "unterminated %{"),
    ("%t %", "incomplete LogFormat directive %"),
    ("%t %>", "incomplete LogFormat directive %>"),
    ("%t %i", "%i needs a {name}"),
    ("%t %{}o", "%{}o needs a {name}"),
    ("%t %{h}T", "unknown unit in LogFormat directive %{h}T"),
    ("%{%Y %Q}t", "unsupported strftime code %Q"),
    (r"%h %t\n%r", "newline"),
])
def test_bad_formats(spec: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        compile_format(spec)


def test_format_error_is_a_value_error() -> None:
    assert issubclass(FormatError, ValueError)


def test_format_error_for_non_string() -> None:
    with pytest.raises(FormatError):
        compile_format(None)  # type: ignore[arg-type]


ALL_DIRECTIVES = (
    r'%h %a %{c}a %A %l %u %t %{%d/%b/%Y:%H:%M:%S %z}t %{sec}t %{msec}t %{usec}t '
    r'%{msec_frac}t %{usec_frac}t %{begin:sec}t %{end:msec}t %{end:%Y-%m-%dT%T}t "%r" %s %>s '
    r'%<s %b %B %D %T %{ms}T %{us}T %{s}T %v %V %p %{canonical}p %{local}p %{remote}p %P '
    r'%{pid}P %{tid}P %{hextid}P %U %q %H %m %I %O %S %X %k %L %R %f %{Foo}i %{Foo}o %{FOO}e '
    r'%{c}C %{n}n %{SSL_PROTOCOL}x %{x}c %{X}^ti %{Y}^to %^FB %400,501{User-agent}i '
    r'%!200,304,302{Referer}i %>{X}i %<{Y}o %{c}h %% \t end'
)


def test_every_supported_directive_compiles() -> None:
    parser = compile_format(ALL_DIRECTIVES)
    assert parser.format_string == ALL_DIRECTIVES
    assert "def run(" in parser.fast_source


@pytest.mark.parametrize("directive", [
    "%h", "%a", "%{c}a", "%A", "%l", "%u", "%r", "%s", "%>s", "%<s", "%b", "%B", "%D", "%T",
    "%{ms}T", "%{us}T", "%v", "%V", "%p", "%{canonical}p", "%{local}p", "%{remote}p", "%U", "%q",
    "%H", "%m", "%I", "%O", "%S", "%X", "%k", "%P", "%{tid}P", "%{hextid}P", "%L", "%R", "%f",
    "%{Foo}i", "%{Foo}o", "%{FOO}e", "%{sid}C", "%{note}n", "%{VAR}^ti", "%{VAR}^to", "%^FB",
    "%{SSL_CIPHER}x", "%400,501{User-agent}i", "%!200,304,302{Referer}i", "%>{X-Y}i",
    "%<U", "%>U", "%{sec}t", "%{msec}t", "%{usec}t", "%{msec_frac}t", "%{end:usec_frac}t",
])
def test_each_directive_compiles_alone_with_a_time(directive: str) -> None:
    compile_format(f"%t {directive}")
    compile_format(f'"{directive}" %t')


def test_time_directive_variants_are_the_time() -> None:
    for spec in ("%{sec}t", "%{msec}t", "%{usec}t", "%{begin:sec}t", "%{end:msec}t",
                 "%{%Y-%m-%d %H:%M:%S}t", "%{begin}t", "%{end:}t"):
        compile_format(spec)  # a time directive on its own is a usable format


def test_max_line_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        compile_format("combined", max_line_bytes=0)
