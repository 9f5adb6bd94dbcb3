"""Reverse DNS (PTR) lookups of many client addresses at once, with dnspython: a bound
on lookups in flight, on queries started per second, and on each lookup's time."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Callable

# What a lookup found. The first three are answers: the server said something about
# the address. The last two say nothing about it (and may mean the server is down).
NAME, NXDOMAIN, NO_NAME = "name", "nxdomain", "no name"
SERVFAIL, TIMEOUT = "servfail", "timeout"
LOGGED = "logged"  # remote_host was a name already (HostnameLookups On): no query
NO_ANSWER = (SERVFAIL, TIMEOUT)

# A host name as Apache logs it with HostnameLookups On (letters, digits, - and _).
_HOST_NAME = re.compile(r"(?=.{1,253}\.?$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
                        r"(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?", re.IGNORECASE)


@dataclass(frozen=True)
class Found:
    address: str  # as logged in access_log.remote_host
    outcome: str  # NAME, LOGGED, NXDOMAIN, NO_NAME, SERVFAIL or TIMEOUT
    name: str | None = None  # lower case, without the final dot


@dataclass(frozen=True)
class Settings:
    nameserver: tuple[str, int] | None  # None: the system's (/etc/resolv.conf)
    timeout: float  # seconds a lookup may take, retries included
    rate: float  # queries started per second, at most
    concurrency: int  # lookups in flight, at most


class NoResolver(Exception):
    """No name server to ask: the system has none configured and none was given."""


def what_to_ask(remote_host: str) -> tuple[str | None, Found | None]:
    """(address to look up, None) for an IP address; (None, a LOGGED Found) for a host
    name; (None, None) for anything else (nothing to look up, nothing to keep)."""
    text = remote_host.strip()
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone (%eth0)
    except ValueError:
        if _HOST_NAME.fullmatch(text) and not text.replace(".", "").isdigit():
            return None, Found(remote_host, LOGGED, text.rstrip(".").lower())
        return None, None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:192.0.2.1, as a dual-stack Apache logs IPv4 clients
    return str(ip), None


def make_resolver(settings: Settings) -> Any:
    """A dnspython resolver for `settings`, without a cache of its own (the database is
    the cache). NoResolver when there is no name server to ask."""
    import dns.asyncresolver
    import dns.nameserver
    import dns.resolver

    if settings.nameserver is None:
        try:
            resolver = dns.asyncresolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration as exc:
            raise NoResolver(str(exc)) from None
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        host, port = settings.nameserver
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    resolver.cache = None
    resolver.timeout = settings.timeout
    resolver.lifetime = settings.timeout
    return resolver


class Pacer:
    """Spaces the starts of queries 1/rate seconds apart."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_start = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


async def look_up(resolver: Any, remote_host: str, address: str) -> Found:
    """One PTR lookup; whatever happens, a Found (never an exception)."""
    import dns.exception
    import dns.resolver

    try:
        answer = await resolver.resolve_address(address)
    except dns.resolver.NXDOMAIN:
        return Found(remote_host, NXDOMAIN)
    except dns.resolver.NoAnswer:
        return Found(remote_host, NO_NAME)
    except dns.exception.Timeout:
        return Found(remote_host, TIMEOUT)
    except (dns.exception.DNSException, OSError, ValueError):
        # NoNameservers: SERVFAIL, REFUSED or an unreachable server; a malformed answer
        return Found(remote_host, SERVFAIL)
    names = sorted(r.target.to_text(omit_final_dot=True).lower() for r in answer)
    if not names:
        return Found(remote_host, NO_NAME)
    return Found(remote_host, NAME, names[0])


async def look_up_all(hosts: Iterable[tuple[str, str]], settings: Settings,
                      deliver: Callable[[list[Found]], Awaitable[None]],
                      batch: int = 200, resolver: Any = None) -> None:
    """Look up each (remote_host, address), at most settings.concurrency at a time and
    settings.rate starts a second, and pass what was found to `deliver` in batches of
    `batch` (and the rest at the end). The whole run takes about len/rate seconds plus
    one timeout."""
    resolver = resolver or make_resolver(settings)
    pacer = Pacer(settings.rate)
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in hosts:
        queue.put_nowait(item)
    found: list[Found] = []
    delivering = asyncio.Lock()  # one batch at a time reaches the database

    async def flush(at_least: int) -> None:
        nonlocal found
        async with delivering:
            if len(found) >= at_least and found:
                ready, found = found, []
                await deliver(ready)

    async def worker() -> None:
        while True:
            try:
                remote_host, address = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await pacer.wait()
            result = await look_up(resolver, remote_host, address)
            # appended after the await: a flush meanwhile may have replaced the list
            found.append(result)
            await flush(batch)

    workers = [asyncio.ensure_future(worker())
               for _ in range(max(1, min(settings.concurrency, queue.qsize())))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    await flush(1)
