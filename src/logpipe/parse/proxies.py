"""The real client behind trusted proxies: remote_host from X-Forwarded-For (pure).

A proxy (a load balancer, a CDN) connects to Apache itself, so %h / %a log the
proxy's address; the client's is in the X-Forwarded-For header, to which each
proxy appends the address it received the request from. Anyone can send that
header, so only the hops a trusted proxy added are believed: the header is read
right to left, skipping addresses inside a trusted network, and the first address
that is not trusted is the client. Whatever a client wrote to the left of it
(a forged chain) is never reached.

    real = RealClient(["10.0.0.0/8"])
    real.lookup("10.0.0.7", "203.0.113.9, 10.0.0.5")   # "203.0.113.9"
    real.lookup("198.51.100.1", "203.0.113.9")          # "": not from a trusted proxy

An entry that is not an address ("unknown", a host name, garbage) stops the walk:
the row keeps the last trusted address reached, as nothing to its left can be
believed. Ports ("203.0.113.9:4711", "[2001:db8::1]:443") and IPv4-mapped IPv6
addresses are understood.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Union

from logpipe.parse.directives import NAMED_FORMATS, tokenize
from logpipe.parse.fields import Field, Plan, Target, plan

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = tuple[int, int]  # (32 or 128 bits, the address as an integer): see address()

HEADER = "x-forwarded-for"
# Distinct (client, header) pairs, and characters of them, held before the cache is
# emptied: a client may send a long header of its own with every request.
CACHE_LIMIT = 50_000
CACHE_CHARS = 4 * 1024 * 1024


def parse_network(text: str) -> Network:
    """A trusted network from "10.0.0.0/8", "2001:db8::/32" or one address ("192.0.2.7");
    ValueError saying what is wrong otherwise."""
    value = text.strip()
    try:
        return ipaddress.ip_network(value)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"not a network: {text!r} (use an address, or a CIDR such as 10.0.0.0/8 or "
            "2001:db8::/32)") from None
    raise ValueError(f"{text!r} has bits set beyond its prefix length: did you mean {loose}?")


def proxy_fields(plan: Plan) -> tuple[int, int] | None:
    """(index of the remote_host field, index of the X-Forwarded-For field) in
    plan.fields, or None when the format lacks either."""
    client = header = None
    for i, f in enumerate(plan.fields):
        if client is None and f.target == Target.COL and f.column == "remote_host":
            client = i
        elif header is None and _is_header(f):
            header = i
    return None if client is None or header is None else (client, header)


def _is_header(f: Field) -> bool:
    d = f.directive
    return f.target == Target.EXTRA and d.letter == "i" and (d.arg or "").lower() == HEADER


def unused_reason(plan: Plan) -> str | None:
    """Why --trusted-proxy would change nothing in this format, or None if it applies."""
    if proxy_fields(plan) is not None:
        return None
    if not any(f.target == Target.COL and f.column == "remote_host" for f in plan.fields):
        return "the LogFormat logs no client address (%h or %a)"
    return "the LogFormat does not log %{X-Forwarded-For}i"


def unused_warning(format_spec: str, networks: Sequence[str]) -> str | None:
    """A warning for a command given --trusted-proxy with a format (a name or a
    LogFormat) it cannot apply to; None when there is nothing to say."""
    if not networks:
        return None
    reason = unused_reason(plan(tokenize(NAMED_FORMATS.get(format_spec, format_spec))))
    if reason is None:
        return None
    return (f"--trusted-proxy has no effect: {reason}, so remote_host stays as logged. Log "
            "the header (LogFormat \"... %{X-Forwarded-For}i\"), or let Apache's mod_remoteip "
            "find the client and log %a")


def address(entry: str) -> Address | None:
    """The address in one X-Forwarded-For entry (or a logged %h) as (bits, value):
    (32, n) for IPv4, an IPv4-mapped IPv6 address included, (128, n) for IPv6; None
    if the entry holds no address.

    socket.inet_pton, not ipaddress: a tenth of the cost (0.8 against 8 us here), and
    every distinct client pays it. It takes only the strict forms (no leading zeros)."""
    entry = entry.strip()
    if entry[:1] == "[":  # "[2001:db8::1]:443"
        entry = entry[1:entry.find("]")] if "]" in entry else entry
    elif entry.count(":") == 1:  # "203.0.113.9:4711"; IPv6 has two colons or more
        entry = entry.partition(":")[0]
    try:
        return 32, int.from_bytes(socket.inet_pton(socket.AF_INET, entry), "big")
    except (OSError, ValueError):  # ValueError: a NUL or a character outside ASCII
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, entry), "big")
    except (OSError, ValueError):
        return None
    if value >> 32 == 0xFFFF:  # "::ffff:10.0.0.1" is 10.0.0.1, as a proxy list says it
        return 32, value & 0xFFFF_FFFF
    return 128, value


def address_text(found: Address) -> str:
    """An address in its canonical form ("2001:db8::9")."""
    bits, value = found
    if bits == 32:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


class RealClient:
    """remote_host for (logged client, logged X-Forwarded-For), cached per pair."""

    def __init__(self, networks: Sequence[str]) -> None:
        parsed = [parse_network(n) for n in networks]
        # (bits, network, mask) as integers: a membership test is one AND
        self.networks: tuple[tuple[int, int, int], ...] = tuple(
            (n.max_prefixlen, int(n.network_address), int(n.netmask)) for n in parsed)
        # (client, header) -> the client's address, or "" when remote_host stays as
        # logged; a plain dict, so that the fast loop can look it up with its own `get`
        self.cache: dict[tuple[str, str], str] = {}
        self._chars = 0

    def trusted(self, found: Address) -> bool:
        bits, value = found
        return any(b == bits and value & mask == network for b, network, mask in self.networks)

    def lookup(self, client: str, header: str) -> str:
        """The real client's address as text, or "" to keep the logged one (cached)."""
        key = (client, header)
        result = self.cache.get(key)
        if result is None:
            result = self.walk(client, header)
            size = len(client) + len(header)
            if len(self.cache) >= CACHE_LIMIT or self._chars + size > CACHE_CHARS:
                self.cache.clear()  # clear(), not a new dict: the fast loop holds its get
                self._chars = 0
            self.cache[key] = result
            self._chars += size
        return result

    def walk(self, client: str, header: str) -> str:
        """lookup() without the cache: read the header right to left past trusted hops."""
        proxy = address(client)
        if proxy is None or not self.trusted(proxy) or header in ("", "-"):
            return ""
        reached = proxy
        for entry in reversed(header.split(",")):
            hop = address(entry)
            if hop is None:
                break  # junk: nothing left of it can be believed; keep the last trusted
            reached = hop
            if not self.trusted(hop):
                break  # the client
        return "" if reached is proxy else address_text(reached)
