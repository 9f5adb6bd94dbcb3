"""The country of each row: looked up offline as the row is parsed (parse/geo.py), for
well-known addresses of several registries, never for private ones; and filled once by
`logpipe initdb` for rows loaded before the column existed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import COMMAND_TIMEOUT, Database, execute, logpipe_cmd, query, scalar
from parse_helpers import combined, one
from visitors_support import line, load

from logpipe.parse import compile_format, geo

PUBLIC = [
    ("193.0.6.139", "NL"),            # RIPE NCC's own web server (RIPE)
    ("2001:67c:2e8:22::c100:68b", "NL"),  # the same, IPv6
    ("8.8.8.8", "US"),                # Google Public DNS (ARIN)
    ("2001:4860:4860::8888", "US"),
    ("200.160.2.3", "BR"),            # NIC.br (LACNIC)
    ("202.12.29.175", "AU"),          # APNIC's web server (APNIC)
    ("196.216.2.1", "ZA"),            # AFRINIC's address space, delegated in ZA
    ("::ffff:8.8.8.8", "US"),         # an IPv4 client on an IPv6 socket, as %a logs it
]
NONE = ["10.1.2.3", "172.16.0.9", "192.168.1.1", "127.0.0.1", "::1", "fe80::1", "fc00::1",
        "100.64.0.1", "169.254.1.1", "192.0.2.1", "2001:db8::1", "0.0.0.0", "224.0.0.1",
        "host.example.com", "-", "1.2.3", "x" * 5000, "8.8.8.8 ", "[2001:db8::1]"]


@pytest.mark.parametrize(("address", "country"), PUBLIC)
def test_country_of_public_addresses(address: str, country: str) -> None:
    assert geo.country_of(address) == country
    assert one(combined(host=address))["country"] == country


@pytest.mark.parametrize("address", NONE)
def test_no_country_for_private_reserved_and_non_addresses(address: str) -> None:
    assert geo.country_of(address) is None
    if " " not in address:  # %h is one token
        assert one(combined(host=address))["country"] is None


def test_the_reference_path_looks_up_too() -> None:
    """A line the fast loop cannot take goes through RowBuilder.build(): same country."""
    parser = compile_format("combined")
    row, reason = parser._parse_one(combined(host="8.8.8.8").decode().rstrip("\n"))
    assert reason == "" and row is not None and row.rstrip("\n").endswith("\tUS")


def test_the_cache_stays_bounded() -> None:
    client = geo.ClientAddress()
    for i in range(geo.CACHE_LIMIT + 10):
        client(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert 0 < len(client.cache) <= geo.CACHE_LIMIT
    client("a" * 100)  # no address is that long: looked at, not kept
    assert "a" * 100 not in client.cache


def test_loaded_rows_have_their_country(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "l.log"
    path.write_text("".join(line("20/Nov/2026:10:00:00", a, "/", "-", "Firefox/1")
                            for a, _ in PUBLIC[:6]) + line("20/Nov/2026:10:00:00", "10.0.0.1",
                                                          "/", "-", "Firefox/1"))
    load(database.dsn, path)
    assert dict(query(database.dsn, "SELECT remote_host, country FROM access_log")) == {
        **dict(PUBLIC[:6]), "10.0.0.1": None}


def test_initdb_fills_older_rows_once(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "l.log"
    path.write_text("".join(line(f"20/Nov/2026:10:00:0{i}", a, "/", "-", "Firefox/1")
                            for i, a in enumerate(["8.8.8.8", "193.0.6.139", "10.0.0.1"])))
    load(database.dsn, path)
    # as a database upgraded from before the column: rows without a country, not done yet
    execute(database.dsn, "UPDATE access_log SET country = NULL;"
                          " DELETE FROM logpipe_country_backfill")

    def initdb() -> str:
        proc = subprocess.run(logpipe_cmd("initdb", "--dsn", database.dsn), text=True,
                              capture_output=True, timeout=COMMAND_TIMEOUT, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "filled in the country of 2 rows loaded before access_log.country existed" \
        in initdb()
    assert dict(query(database.dsn, "SELECT remote_host, country FROM access_log")) == {
        "8.8.8.8": "US", "193.0.6.139": "NL", "10.0.0.1": None}
    assert scalar(database.dsn, "SELECT rows FROM logpipe_country_backfill") == 2
    execute(database.dsn, "UPDATE access_log SET country = NULL")
    assert "filled" not in initdb()  # once per database: no scan at every initdb
    assert scalar(database.dsn, "SELECT count(country) FROM access_log") == 0
