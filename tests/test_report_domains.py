"""`logpipe report domains` and the report_domains view: clients by the registrable
domain of the names `logpipe resolve` found in a real name server (dnsmasq on a
loopback port), else by country, else `unresolved`; a visitor is one (remote_host,
user_agent, UTC day)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, execute, fresh_database
from dns_support import dnsmasq, load_clients, run_resolve
from reports_support import GOOGLEBOT, as_csv, as_json, report_ok, table_rows, view

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
          " Chrome/126.0.0.0 Safari/537.36")
NAMES = {
    "192.0.2.1": "crawl-66-249-66-1.googlebot.com",
    "192.0.2.5": "crawl-66-249-66-5.googlebot.com",
    "192.0.2.2": "host-2.dsl.example.co.uk",
}
OCT8 = "08/Oct/2024:10:00:00 +0000"
WWW = [
    ("192.0.2.1", GOOGLEBOT, OCT8), ("192.0.2.1", GOOGLEBOT, OCT8),
    ("192.0.2.1", GOOGLEBOT, OCT8),
    ("192.0.2.1", GOOGLEBOT, "09/Oct/2024:10:00:00 +0000"),  # another UTC day: a visitor
    ("192.0.2.5", GOOGLEBOT, OCT8),
    ("192.0.2.2", FIREFOX, OCT8),
    ("192.0.2.2", FIREFOX, "09/Oct/2024:00:30:00 +0200"),  # 8 Oct in UTC: same visitor
    ("192.0.2.2", CHROME, OCT8),  # another agent: another visitor
    ("203.0.113.9", FIREFOX, OCT8), ("203.0.113.9", FIREFOX, OCT8),  # no name, country DE
    ("203.0.113.10", FIREFOX, OCT8),  # no name, no country
]
SHOP = [("198.51.100.20", CHROME, OCT8),  # never resolved: no entry at all
        ("203.0.113.10", FIREFOX, OCT8)]  # a client of www too: a visitor of each vhost

ALL = [
    ("googlebot.com", 3, 5),
    ("unresolved", 3, 3),
    ("example.co.uk", 2, 3),
    ("DE", 1, 2),
]


@pytest.fixture(scope="module", name="named")
def named_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The requests above loaded with `logpipe load`, their names looked up with
    `logpipe resolve` in dnsmasq, and one country set as the loader would."""
    directory = tmp_path_factory.mktemp("domains")
    with fresh_database() as db:
        load_clients(db.dsn, directory, WWW)
        load_clients(db.dsn, directory, SHOP, vhost="shop.example.com")
        execute(db.dsn, "UPDATE access_log SET country = 'DE' WHERE remote_host = '203.0.113.9'")
        with dnsmasq(directory, NAMES) as server:
            # resolve before 198.51.100.20 was seen: it stays without an entry
            proc = run_resolve(db.dsn, "--nameserver", server.nameserver,
                               "--since", "2024-10-08", "--timeout", "2")
        assert proc.returncode == 0, proc.stderr
        execute(db.dsn, "DELETE FROM logpipe_dns_names WHERE address = '198.51.100.20'")
        yield db


def rows(dsn: str, *args: str) -> list[tuple]:
    header, *body = as_csv(dsn, "domains", *args)
    assert header == ["domain", "visitors", "hits"]
    return [(d, int(v), int(h)) for d, v, h in body]


def test_csv_header_and_rows(named: Database) -> None:
    proc = report_ok(named.dsn, "domains", "--format", "csv")
    assert proc.splitlines()[0] == "domain,visitors,hits"
    assert rows(named.dsn) == ALL


def test_the_view_matches_the_report(named: Database) -> None:
    assert view(named.dsn, "SELECT domain, visitors, hits FROM report_domains") == ALL


def test_filters(named: Database) -> None:
    assert rows(named.dsn, "--bots") == [("googlebot.com", 3, 5)]
    assert rows(named.dsn, "--humans") == [
        ("unresolved", 3, 3), ("example.co.uk", 2, 3), ("DE", 1, 2)]
    assert rows(named.dsn, "--since", "2024-10-09") == [("googlebot.com", 1, 1)]
    assert rows(named.dsn, "--until", "2024-10-08", "--vhost", "shop.example.com") == [
        ("unresolved", 2, 2)]
    assert rows(named.dsn, "--limit", "2") == ALL[:2]


def test_json_and_table(named: Database) -> None:
    assert as_json(named.dsn, "domains") == [
        {"domain": d, "visitors": v, "hits": h} for d, v, h in ALL]
    header, cells = table_rows(report_ok(named.dsn, "domains"))
    assert header == ["domain", "visitors", "hits"]
    assert [tuple(c) for c in cells] == [(d, str(v), str(h)) for d, v, h in ALL]


def test_before_any_resolve_every_client_is_its_country_or_unresolved(
        tmp_path: Path) -> None:
    with fresh_database() as db:
        load_clients(db.dsn, tmp_path, WWW)
        execute(db.dsn, "UPDATE access_log SET country = 'DE' WHERE remote_host = '203.0.113.9'")
        assert rows(db.dsn) == [("unresolved", 6, 9), ("DE", 1, 2)]
