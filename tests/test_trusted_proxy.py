"""--trusted-proxy: remote_host is the client behind trusted proxies, read from the
X-Forwarded-For header right to left, through `logpipe load`, the real pipe and replay."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import COMMAND_TIMEOUT, Database, logpipe_cmd, query, start_logger
from pipe_support import finish

from logpipe.ingest import spool
from logpipe.parse import compile_format
from logpipe.parse.proxies import RealClient

PROXIED = ('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" '
           '"%{X-Forwarded-For}i"')
TRUSTED = ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "2001:db8:1::/48"]

# (path, logged client, logged X-Forwarded-For, remote_host expected with TRUSTED)
CASES = [
    ("/one-hop", "10.0.0.5", "203.0.113.10", "203.0.113.10"),
    ("/two-hops", "10.0.0.5", "203.0.113.20, 10.9.9.9", "203.0.113.20"),
    # a client that sends "X-Forwarded-For: 6.6.6.6" itself: the proxy appends its address
    ("/spoofed", "10.0.0.5", "6.6.6.6, 203.0.113.30", "203.0.113.30"),
    ("/spoofed-two-hops", "10.0.0.5", "6.6.6.6, 10.7.7.7, 203.0.113.31, 10.9.9.9",
     "203.0.113.31"),
    # not from a trusted proxy: anyone can write that header
    ("/untrusted-client", "198.51.100.7", "203.0.113.40", "198.51.100.7"),
    ("/no-header", "10.0.0.5", "-", "10.0.0.5"),
    # junk stops the walk at the last trusted address reached
    ("/junk", "10.0.0.5", "unknown, 10.9.9.9", "10.9.9.9"),
    ("/port", "10.0.0.5", "203.0.113.50:4711", "203.0.113.50"),
    ("/ipv6", "2001:db8:1::7", "[2001:db8:2::9]:443", "2001:db8:2::9"),
    ("/all-trusted", "10.0.0.5", "10.1.2.3", "10.1.2.3"),
]


def proxied_line(path: str, client: str, forwarded: str) -> bytes:
    return (f'{client} - - [03/Dec/2026:10:00:00 +0000] "GET {path} HTTP/1.1" 200 5 "-" '
            f'"curl/8.5.0" "{forwarded}"\n').encode()


LINES = b"".join(proxied_line(*case[:3]) for case in CASES)


def loaded(dsn: str) -> dict[str, tuple[str, str | None]]:
    """path -> (remote_host, the X-Forwarded-For header kept in extra)."""
    return {path: (host, header) for path, host, header in query(
        dsn, "SELECT path, remote_host, extra->>'in:X-Forwarded-For' FROM access_log")}


def expected(real_clients: bool) -> dict[str, tuple[str, str | None]]:
    return {path: (real if real_clients else client, None if header == "-" else header)
            for path, client, header, real in CASES}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(logpipe_cmd(*args), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)


@pytest.mark.parametrize("path, client, header, real", CASES)
def test_real_client_walks_the_header_right_to_left(path: str, client: str, header: str,
                                                    real: str) -> None:
    real_client = RealClient(["10.0.0.0/8", "2001:db8:1::/48"])
    assert (real_client.lookup(client, header) or client) == real


def test_fast_loop_and_reference_path_agree() -> None:
    parser = compile_format(PROXIED, trusted_proxies=["10.0.0.0/8", "2001:db8:1::/48"])
    assert "real_client" in parser.fast_source
    fast = parser.parse(LINES).copy_data.splitlines()
    reference = [parser._parse_one(line)[0] for line in LINES.decode().splitlines()]
    assert [row + "\n" for row in fast] == reference
    assert [row.split("\t")[2] for row in fast] == [case[3] for case in CASES]


def test_load_with_trusted_proxies(database: Database, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(LINES)
    done = run("load", "--dsn", database.dsn, "--format", PROXIED, *TRUSTED, str(log))
    assert done.returncode == 0, done.stderr
    assert "no effect" not in done.stderr
    assert loaded(database.dsn) == expected(real_clients=True)


def test_load_without_the_option_keeps_the_proxy(database: Database, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(LINES)
    done = run("load", "--dsn", database.dsn, "--format", PROXIED, str(log))
    assert done.returncode == 0, done.stderr
    assert loaded(database.dsn) == expected(real_clients=False)


def test_the_logger_finds_the_real_client(database: Database, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    logger = start_logger(database.dsn, spool_dir, "--format", PROXIED, *TRUSTED)
    assert logger.stdin is not None
    logger.stdin.write(LINES)
    err = finish(logger)
    assert b"no effect" not in err
    assert loaded(database.dsn) == expected(real_clients=True)


def test_replay_parses_a_segment_as_its_logger_meant(database: Database,
                                                     tmp_path: Path) -> None:
    """The trusted networks are in the segment's header: replay needs no option."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    (spool_dir / "seg-00000000000000000001-1-aaaaaaaaaaaa.log").write_bytes(
        spool.make_header(PROXIED, None, None, ["10.0.0.0/8", "2001:db8:1::/48"]) + LINES)
    done = run("replay", "--dsn", database.dsn, "--spool-dir", str(spool_dir))
    assert done.returncode == 0, done.stderr
    assert loaded(database.dsn) == expected(real_clients=True)


@pytest.mark.parametrize("command", ["load", "logger"])
def test_a_format_without_the_header_is_said_once(database: Database, tmp_path: Path,
                                                  command: str) -> None:
    line = proxied_line("/combined", "10.0.0.5", "-").rsplit(b' "', 1)[0] + b"\n"
    if command == "load":
        (tmp_path / "a.log").write_bytes(line)
        (tmp_path / "b.log").write_bytes(line.replace(b"/combined", b"/other"))
        done = run("load", "--dsn", database.dsn, *TRUSTED,
                   str(tmp_path / "a.log"), str(tmp_path / "b.log"))
        assert done.returncode == 0, done.stderr
        err = done.stderr
    else:
        logger = start_logger(database.dsn, tmp_path / "spool", *TRUSTED)
        assert logger.stdin is not None
        logger.stdin.write(line + line.replace(b"/combined", b"/other"))
        err = finish(logger).decode()
    assert err.count("--trusted-proxy has no effect") == 1, err
    assert "%{X-Forwarded-For}i" in err and "mod_remoteip" in err
    assert sorted(query(database.dsn, "SELECT remote_host FROM access_log")) == [
        ("10.0.0.5",), ("10.0.0.5",)]


@pytest.mark.parametrize("network, says", [
    ("10.0.0.300/8", "not a network: '10.0.0.300/8'"),
    ("proxy.example", "not a network: 'proxy.example'"),
    ("10.0.0.1/8", "'10.0.0.1/8' has bits set beyond its prefix length: did you mean 10.0.0.0/8?"),
])
@pytest.mark.parametrize("command", ["load", "logger"])
def test_a_bad_network_is_a_usage_error(tmp_path: Path, command: str, network: str,
                                        says: str) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(LINES)
    args = (["load", "--dsn", "dbname=unused", str(log)] if command == "load" else
            ["--dsn", "dbname=unused", "--spool-dir", str(tmp_path / "spool")])
    done = run(*args, "--trusted-proxy", network)
    assert done.returncode == 2
    assert f"argument --trusted-proxy: {says}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "spool").exists()
