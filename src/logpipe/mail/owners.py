"""Who owns a page of the site: logpipe_page_owners (sql/040_names.sql), path prefix ->
mail address, for one vhost or for any; the longest matching prefix wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

OWNERS_SQL = "SELECT vhost, prefix, address FROM logpipe_page_owners ORDER BY 1, 2, 3"


@dataclass(frozen=True)
class Owner:
    vhost: str  # '' for any vhost
    prefix: str  # of the page's path, e.g. /blog/
    address: str


def load_owners(cur: Any) -> list[Owner]:
    cur.execute(OWNERS_SQL)
    return [Owner(*row) for row in cur.fetchall()]


def page_path(referer: str) -> str | None:
    """The path of the referring page (https://www.example.com/blog/x?y -> /blog/x), or
    None when the referer is not a URL that has one."""
    try:
        path = urlsplit(referer).path
    except ValueError:  # e.g. 'http://[::1': a malformed host
        return None
    return path or "/"


def owners_of(owners: Sequence[Owner], vhost: str | None, referer: str) -> list[str]:
    """The addresses that own the page `referer` on `vhost`: those of the entry with the
    longest prefix of its path (a vhost's own entry before an any-vhost one of the same
    length); [] when no entry claims it."""
    path = page_path(referer)
    if path is None:
        return []
    host = (vhost or "").lower()
    claims = [o for o in owners if o.vhost in ("", host) and path.startswith(o.prefix)]
    if not claims:
        return []
    best = max((len(o.prefix), o.vhost != "") for o in claims)
    return sorted({o.address for o in claims if (len(o.prefix), o.vhost != "") == best})
