"""The registrable domain of a host name, by the public suffix list that the
publicsuffixlist package ships (no download at run time)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList

    # ICANN section only: the private section makes every customer of a cloud its own
    # domain (ec2-...compute-1.amazonaws.com), where a report of who visits wants
    # amazonaws.com.
    return PublicSuffixList(only_icann=True)


def registrable_domain(name: str) -> str | None:
    """crawl-66-249-66-1.googlebot.com -> googlebot.com, foo.bbc.co.uk -> bbc.co.uk;
    None for a public suffix itself (co.uk) or a single label (localhost)."""
    host = name.strip().rstrip(".").lower()
    if not host or "." not in host:
        return None
    domain = _suffixes().privatesuffix(host)
    return str(domain) if domain else None
