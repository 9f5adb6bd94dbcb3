"""The client address of a row: its country (offline lookup) and, with --anonymize-ip,
the address cut to its network (/24 for IPv4, /48 for IPv6).

The lookup is one call into compiled code per line (0.13 us, less than looking the
address up in a dict of those seen: bench/geo_bench.py); the cut, done with ipaddress
(~2 us), is kept per distinct address in a bounded cache.

The country comes from iptocc (MIT/Apache-2.0): the five regional registries'
delegation files, built into the package and refreshed nightly upstream, so an
upgrade of the package is an upgrade of the data and nothing is ever downloaded at
run time. Compared (python3 bench/geo_bench.py: 100,000 random IPv4 addresses, one
core of the 2-core AMD EPYC VM, 2026-12-03):

| package | data | size | us/lookup |
|---|---|---|---|
| iptocc 3.3.170 | RIR delegations, 2026-10 | 1.8 MB | 0.15 |
| geoip2fast 1.2.2 | its own file, 2024-06 (not refreshed since) | 12 MB | 4.3 |
| maxminddb-geolite2 2018.703 | GeoLite2 of 2018 | - | - (data 8 years old) |
| ip2location 8.11 | none shipped (a BIN file to download) | - | - |

A registry's country is where the block was delegated, which for some networks
(a multinational's, a VPN's) is not where the client sits: good enough to count
visitors by country, not to locate one.
"""

from __future__ import annotations

import ipaddress
from typing import Callable

from logpipe.parse import values as v

NULL = v.NULL
# Distinct addresses held before the cache empties itself (a few MB at most).
CACHE_LIMIT = 65_536
# Longer values are not addresses (an IPv6 address is at most 45 characters): they are
# looked at, not cached, so a hostile value cannot fill the cache.
LONGEST_ADDRESS = 64
MAPPED_PREFIX = "::ffff:"  # an IPv4 client on an IPv6 socket, as %a may log it

CountryOf = Callable[[str], "str | None"]


def _no_country(address: str) -> None:
    return None


def _iptocc() -> CountryOf:
    try:
        import iptocc
    except ImportError:  # Python 3.9, which iptocc does not support: no countries
        return _no_country
    return iptocc.country_code  # type: ignore[no-any-return]


def country_of(address: str, lookup: CountryOf | None = None) -> str | None:
    """ISO 3166-1 alpha-2 code of an address, None for private, loopback, reserved,
    unknown addresses and anything that is not an address (a host name)."""
    lookup = lookup or _iptocc()
    if address.startswith(MAPPED_PREFIX) and "." in address:
        address = address[len(MAPPED_PREFIX):]
    try:
        return lookup(address)
    except Exception:  # noqa: BLE001 - a lookup failure costs the country, not the row
        return None


def anonymized(address: str) -> str:
    """The address cut to /24 (IPv4) or /48 (IPv6): 192.0.2.77 -> 192.0.2.0,
    2001:db8:1:2::3 -> 2001:db8:1::. A host name (HostnameLookups On) keeps its domain
    only: dsl-1-2.isp.example -> isp.example; a name without a dot becomes NULL."""
    mapped = address.startswith(MAPPED_PREFIX) and "." in address
    text = address[len(MAPPED_PREFIX):] if mapped else address
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        _, dot, domain = address.partition(".")
        return domain if dot and domain else ""
    if ip.version == 4:
        cut = str(ipaddress.ip_network(f"{ip}/24", strict=False).network_address)
        return MAPPED_PREFIX + cut if mapped else cut
    return str(ipaddress.ip_network(f"{ip}/48", strict=False).network_address)


class ClientAddress:
    """(country, remote_host) as COPY text for a remote_host as COPY text, cached.

    Called after the real client behind a trusted proxy is known (proxies) and before
    the address is cut, so the country is the client's own even with --anonymize-ip."""

    def __init__(self, anonymize: bool = False, lookup: CountryOf | None = None) -> None:
        self.anonymize = anonymize
        self.lookup_country = lookup or _iptocc()
        self.cache: dict[str, tuple[str, str]] = {}

    def no_country(self, host: str) -> str:
        """COPY text for a host the lookup found no country for: an IPv4-mapped
        address's country (the lookup takes IPv4 addresses as such), else NULL."""
        if host.startswith(MAPPED_PREFIX) and "." in host:
            return self.lookup_country(host[len(MAPPED_PREFIX):]) or NULL
        return NULL

    def __call__(self, host: str) -> tuple[str, str]:
        result = self.cache.get(host)
        return self.miss(host) if result is None else result

    def miss(self, host: str) -> tuple[str, str]:
        """The answer for a host not in the cache (the fast loop has looked), cached."""
        if host == NULL or "\\" in host:  # NULL, or escaped: not an address
            result = (NULL, NULL if self.anonymize and host != NULL else host)
        else:
            country = country_of(host, self.lookup_country)
            result = (NULL if country is None else country,
                      (anonymized(host) or NULL) if self.anonymize else host)
        if len(host) <= LONGEST_ADDRESS:
            if len(self.cache) >= CACHE_LIMIT:
                self.cache.clear()
            self.cache[host] = result
        return result
