"""`logpipe resolve`: client names looked up in a real name server on a loopback port
(dnsmasq, or a small responder for silence and SERVFAIL), cached in logpipe_dns_names,
asked again only once stale."""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path

from conftest import ROOT, Database, execute, query
from dns_support import (
    dnsmasq,
    load_clients,
    responder,
    run_resolve,
    settled_counts,
    silent_server,
)

from logpipe.cli import build_subcommand_parser
from logpipe.names.lookup import Found, Settings, look_up_all

WHEN = "08/Oct/2024:10:00:00 +0000"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
NAMES = {
    "192.0.2.1": "crawl-66-249-66-1.googlebot.com",
    "192.0.2.2": "host-2.example.co.uk",
    "2001:db8::7": "v6.example.org",
    "198.51.100.3": "mail.example.com",
}
CLIENTS = ["192.0.2.1", "192.0.2.2", "2001:db8::7",
           "::ffff:198.51.100.3",  # IPv4 as a dual-stack Apache logs it: 198.51.100.3 asked
           "203.0.113.9",  # no PTR record: NXDOMAIN
           "proxy.example.net"]  # logged as a name (HostnameLookups On): no query


def cache(dsn: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in query(
        dsn, "SELECT address, name, domain, outcome FROM logpipe_dns_names")}


def ages(dsn: str) -> dict[str, float]:
    """Seconds since each entry was resolved."""
    return {r[0]: float(r[1]) for r in query(
        dsn, "SELECT address, extract(epoch FROM now() - resolved_at) FROM logpipe_dns_names")}


def load(db: Database, tmp_path: Path, hosts: list[str]) -> None:
    load_clients(db.dsn, tmp_path, [(h, FIREFOX, WHEN) for h in hosts])


def test_names_nxdomain_and_logged_names_are_cached(database: Database, tmp_path: Path) -> None:
    load(database, tmp_path, CLIENTS + CLIENTS[:2])  # two requests from two of them
    with dnsmasq(tmp_path, NAMES) as server:
        proc = run_resolve(database.dsn, "--nameserver", server.nameserver)
        assert proc.returncode == 0, proc.stderr
        assert "looked up 5 client addresses" in proc.stdout
        assert "3 nxdomain" not in proc.stdout and "1 nxdomain" in proc.stdout
        assert cache(database.dsn) == {
            "192.0.2.1": ("crawl-66-249-66-1.googlebot.com", "googlebot.com", "name"),
            "192.0.2.2": ("host-2.example.co.uk", "example.co.uk", "name"),
            "2001:db8::7": ("v6.example.org", "example.org", "name"),
            "::ffff:198.51.100.3": ("mail.example.com", "example.com", "name"),
            "203.0.113.9": (None, None, "nxdomain"),
            "proxy.example.net": ("proxy.example.net", "example.net", "logged"),
        }
        # each address asked once (the name logged as such: never)
        assert settled_counts(server) == {
            "192.0.2.1": 1, "192.0.2.2": 1, "2001:db8::7": 1, "198.51.100.3": 1,
            "203.0.113.9": 1}

        again = run_resolve(database.dsn, "--nameserver", server.nameserver)
        assert again.returncode == 0, again.stderr
        assert "nothing to look up" in again.stdout
        assert settled_counts(server) == {
            "192.0.2.1": 1, "192.0.2.2": 1, "2001:db8::7": 1, "198.51.100.3": 1,
            "203.0.113.9": 1}


def test_names_expire_after_six_weeks_and_failures_after_a_day(
        database: Database, tmp_path: Path) -> None:
    load(database, tmp_path, ["192.0.2.1", "192.0.2.2", "203.0.113.9", "203.0.113.10"])
    with dnsmasq(tmp_path, NAMES) as server:
        assert run_resolve(database.dsn, "--nameserver", server.nameserver).returncode == 0
    execute(database.dsn, """
        UPDATE logpipe_dns_names SET resolved_at = now() - CASE address
            WHEN '192.0.2.1' THEN interval '43 days'     -- a name older than six weeks
            WHEN '192.0.2.2' THEN interval '41 days'     -- a name still fresh
            WHEN '203.0.113.9' THEN interval '25 hours'  -- a failure older than a day
            ELSE interval '23 hours' END""")
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    with dnsmasq(renamed, {**NAMES, "192.0.2.1": "crawl-1.search.example.de",
                           "203.0.113.9": "now-named.example.com"}) as server:
        proc = run_resolve(database.dsn, "--nameserver", server.nameserver)
        assert proc.returncode == 0, proc.stderr
        assert settled_counts(server) == {"192.0.2.1": 1, "203.0.113.9": 1}
        assert cache(database.dsn) == {
            "192.0.2.1": ("crawl-1.search.example.de", "example.de", "name"),
            "192.0.2.2": ("host-2.example.co.uk", "example.co.uk", "name"),
            "203.0.113.9": ("now-named.example.com", "example.com", "name"),
            "203.0.113.10": (None, None, "nxdomain"),
        }
        fresh = ages(database.dsn)
        assert fresh["192.0.2.1"] < 600 and fresh["203.0.113.9"] < 600
        assert fresh["192.0.2.2"] > 40 * 86400

        # --max-age and --retry-after shorten what counts as fresh
        proc = run_resolve(database.dsn, "--nameserver", server.nameserver,
                           "--max-age", "30d", "--retry-after", "12h")
        assert proc.returncode == 0, proc.stderr
        assert settled_counts(server) == {
            "192.0.2.1": 1, "203.0.113.9": 1, "192.0.2.2": 1, "203.0.113.10": 1}


def test_silence_and_servfail_are_cached_when_the_server_answers_others(
        database: Database, tmp_path: Path) -> None:
    load(database, tmp_path, ["192.0.2.1", "192.0.2.2", "192.0.2.3", "203.0.113.9"])
    # 192.0.2.3 had a name; a lookup that gets no answer must not erase it
    execute(database.dsn, "INSERT INTO logpipe_dns_names VALUES ('192.0.2.3',"
            " 'old.example.com', 'example.com', 'name', now() - interval '50 days')")
    silent = frozenset({"192.0.2.2", "192.0.2.3"})
    with responder(NAMES, silent=silent, servfail=frozenset({"203.0.113.9"})) as server:
        started = time.monotonic()
        proc = run_resolve(database.dsn, "--nameserver", server.nameserver, "--timeout", "1")
        took = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert took < 20, f"resolve took {took:.1f} s with 1 s timeouts"
        assert cache(database.dsn) == {
            "192.0.2.1": ("crawl-66-249-66-1.googlebot.com", "googlebot.com", "name"),
            "192.0.2.2": (None, None, "timeout"),
            "192.0.2.3": ("old.example.com", "example.com", "name"),
            "203.0.113.9": (None, None, "servfail"),
        }
        assert ages(database.dsn)["192.0.2.3"] > 49 * 86400  # still stale: asked next time
        asked = settled_counts(server)

        # only the stale name is asked again; it times out again: nothing answered
        again = run_resolve(database.dsn, "--nameserver", server.nameserver, "--timeout", "1")
        assert again.returncode == 1
        assert "answered none of 1 lookups (1 timeout)" in again.stderr
        after = settled_counts(server)
        assert {a for a in after if after[a] != asked.get(a)} == {"192.0.2.3"}
        assert cache(database.dsn)["192.0.2.3"] == ("old.example.com", "example.com", "name")


def test_a_server_that_never_answers(database: Database, tmp_path: Path) -> None:
    hosts = [f"192.0.2.{i}" for i in range(10, 15)] + ["proxy.example.net"]
    load(database, tmp_path, hosts)
    with silent_server() as nameserver:
        started = time.monotonic()
        proc = run_resolve(database.dsn, "--nameserver", nameserver, "--timeout", "1",
                           "--concurrency", "2")
        took = time.monotonic() - started
    # 5 lookups, 2 at a time, 1 s each: about 3 s; bounded whatever the server does
    assert took < 20, f"resolve took {took:.1f} s"
    assert proc.returncode == 1
    assert f"name server {nameserver} answered none of 5 lookups (5 timeout)" in proc.stderr
    assert "nothing was kept" in proc.stderr
    # the silence is not cached: the next run asks again
    assert cache(database.dsn) == {
        "proxy.example.net": ("proxy.example.net", "example.net", "logged")}


def test_queries_are_paced(database: Database, tmp_path: Path) -> None:
    hosts = [f"192.0.2.{i}" for i in range(20, 28)]
    load(database, tmp_path, hosts)
    with responder({}) as server:
        proc = run_resolve(database.dsn, "--nameserver", server.nameserver, "--rate", "20")
        assert proc.returncode == 0, proc.stderr
        assert sum(server.queries.values()) == 8
        # 8 starts at most 20 a second: at least 7/20 s from the first to the last
        assert server.arrivals[-1] - server.arrivals[0] >= 0.3


def test_usage_errors(database: Database, empty_database: Database) -> None:
    for args, said in [
        (("--nameserver", "dns.example.com"), "not an IP address: 'dns.example.com'"),
        (("--nameserver", "127.0.0.1:99999"), "not a port: '99999'"),
        (("--rate", "0"), "--rate"),
        (("--max-age", "2024-10-01"), "not a length of time"),
    ]:
        proc = run_resolve(database.dsn, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert said in proc.stderr
    proc = run_resolve(empty_database.dsn, "--nameserver", "127.0.0.1:9")
    assert proc.returncode == 1
    assert "run `logpipe initdb`" in proc.stderr


def test_the_crontab_example_holds_valid_commands() -> None:
    """Every job of conf/cron/logpipe.cron is a logpipe command line that its parser
    takes as it stands (options and values), resolve and digest among them."""
    jobs = [line for line in (ROOT / "conf/cron/logpipe.cron").read_text().splitlines()
            if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
    commands = []
    for job in jobs:
        words = shlex.split(job)
        words = words[words.index("logpipe") + 1:]
        if words[-1] == ">/dev/null":
            words.pop()
        args = build_subcommand_parser().parse_args(words)
        commands.append(args.command)
    assert sorted(commands) == ["digest", "drain", "prune", "resolve"]


def test_every_lookup_is_delivered_when_batches_overlap() -> None:
    """Lookups finish while a batch is being stored: none is lost between batches."""
    addresses = [f"192.0.2.{i}" for i in range(1, 41)]
    delivered: list[Found] = []

    async def deliver(batch: list[Found]) -> None:
        await asyncio.sleep(0)  # let other lookups finish meanwhile, as a store does
        delivered.extend(batch)

    with responder({a: f"host-{a.replace('.', '-')}.example.com" for a in addresses}) as server:
        host, port = server.nameserver.split(":")
        settings = Settings((host, int(port)), timeout=5.0, rate=1e6, concurrency=8)
        asyncio.run(look_up_all([(a, a) for a in addresses], settings, deliver, batch=3))
    assert sorted(f.address for f in delivered) == sorted(addresses)
    assert {f.outcome for f in delivered} == {"name"}
