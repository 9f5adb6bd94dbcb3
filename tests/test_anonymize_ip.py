"""--anonymize-ip: client addresses stored cut to /24 (IPv4) and /48 (IPv6), after the
real client behind a trusted proxy is known and its country looked up; through the real
pipe, `logpipe replay` of a left-over segment, and `logpipe load`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import COMMAND_TIMEOUT, Database, logpipe_cmd, query, start_logger
from parse_helpers import combined, one
from pipe_support import finish
from reports_support import as_csv

from logpipe.ingest import spool
from logpipe.parse import geo

CUT = [
    ("193.0.6.139", "193.0.6.0"),
    ("8.8.8.8", "8.8.8.0"),
    ("2001:67c:2e8:22::c100:68b", "2001:67c:2e8::"),
    ("2001:4860:4860::8888", "2001:4860:4860::"),
    ("::ffff:8.8.4.4", "::ffff:8.8.4.0"),
    ("dsl-1-2-3-4.isp.example", "isp.example"),
    ("localhost", ""),
]
# the lines, and what access_log must hold: remote_host, country
LINES = b"".join(combined(f"GET /{i} HTTP/1.1", host=host, time="20/Nov/2026:10:00:00 +0000",
                          agent="Firefox/120.0")
                 for i, host in enumerate(["193.0.6.139", "193.0.6.7", "2001:67c:2e8:22::1",
                                           "10.1.2.3", "-"]))
STORED = [("/0", "193.0.6.0", "NL"), ("/1", "193.0.6.0", "NL"), ("/2", "2001:67c:2e8::", "NL"),
          ("/3", "10.1.2.0", None), ("/4", None, None)]


def stored(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT path, remote_host, country FROM access_log ORDER BY path")


@pytest.mark.parametrize(("address", "cut"), CUT)
def test_anonymized(address: str, cut: str) -> None:
    assert geo.anonymized(address) == cut


def test_the_country_is_looked_up_on_the_whole_address() -> None:
    seen: list[str] = []

    def lookup(address: str) -> str:
        seen.append(address)
        return "NL"

    assert geo.ClientAddress(anonymize=True, lookup=lookup)("193.0.6.139") == ("NL", "193.0.6.0")
    assert seen == ["193.0.6.139"]


def test_parser_cuts_on_both_paths() -> None:
    row = one(combined(host="2001:67c:2e8:22::1"), anonymize_ip=True)
    assert (row["remote_host"], row["country"]) == ("2001:67c:2e8::", "NL")
    from logpipe.parse import compile_format

    parser = compile_format("combined", anonymize_ip=True)
    text, reason = parser._parse_one(combined(host="8.8.8.8").decode().rstrip("\n"))
    assert reason == "" and text is not None and "\t8.8.8.0\t" in text
    assert text.rstrip("\n").endswith("\tUS")


def test_the_real_pipe(database: Database, tmp_path: Path) -> None:
    logger = start_logger(database.dsn, tmp_path / "spool", "--anonymize-ip")
    assert logger.stdin is not None
    logger.stdin.write(LINES)
    finish(logger)
    assert stored(database.dsn) == STORED
    # 193.0.6.139 and 193.0.6.7 with one agent: one visitor once cut
    assert as_csv(database.dsn, "visitors") == [
        ["day", "vhost", "visitors", "visits", "hits"], ["2026-11-20", "", "4", "4", "5"]]


def test_without_it_addresses_stay_whole(database: Database, tmp_path: Path) -> None:
    logger = start_logger(database.dsn, tmp_path / "spool")
    assert logger.stdin is not None
    logger.stdin.write(LINES)
    finish(logger)
    assert [r[1] for r in stored(database.dsn)] == [
        "193.0.6.139", "193.0.6.7", "2001:67c:2e8:22::1", "10.1.2.3", None]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(logpipe_cmd(*args), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)


def test_replay_cuts_a_segment_its_logger_would_have_cut(database: Database,
                                                          tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    (spool_dir / "seg-00000000000000000001-1-aaaaaaaaaaaa.log").write_bytes(
        spool.make_header("combined", None, None, (), anonymize_ip=True) + LINES)
    done = run("replay", "--dsn", database.dsn, "--spool-dir", str(spool_dir))
    assert done.returncode == 0, done.stderr
    assert stored(database.dsn) == STORED


def test_load(database: Database, tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(LINES)
    done = run("load", "--dsn", database.dsn, "--anonymize-ip", str(tmp_path / "a.log"))
    assert done.returncode == 0, done.stderr
    assert stored(database.dsn) == STORED


def test_after_the_real_client_behind_a_trusted_proxy(database: Database,
                                                      tmp_path: Path) -> None:
    """The proxy's address has no country; the client's has, and is then cut."""
    fmt = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"'
    (tmp_path / "a.log").write_bytes(
        b'10.0.0.5 - - [20/Nov/2026:10:00:00 +0000] "GET /p HTTP/1.1" 200 5 "-" "curl/8"'
        b' "193.0.6.139"\n')
    done = run("load", "--dsn", database.dsn, "--format", fmt, "--trusted-proxy",
               "10.0.0.0/8", "--anonymize-ip", str(tmp_path / "a.log"))
    assert done.returncode == 0, done.stderr
    assert stored(database.dsn) == [("/p", "193.0.6.0", "NL")]
