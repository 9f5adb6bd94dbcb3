"""The broken-links digest as a plain-text mail. Logged values (referers, paths) are
written by whoever sends the requests: they go in the body only, never in a header,
with control and formatting characters removed and their length capped."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

LONGEST_VALUE = 300  # characters of one logged value in a mail; the rest is cut
# Unicode categories dropped from logged values: controls (Cc: ESC, CR, LF, ...),
# formats (Cf: bidi overrides, zero-width), line and paragraph separators.
_DROPPED = frozenset(("Cc", "Cf", "Zl", "Zp"))


@dataclass(frozen=True)
class BrokenLink:
    """One row of `logpipe report broken-links`."""

    vhost: str | None
    referer: str  # the page the link is on
    path: str | None  # where it leads
    statuses: str  # e.g. "404,410"
    hits: int
    last_seen: dt.datetime


def clean(value: str | None) -> str:
    """A logged value made safe for a plain-text body: one line, printable, capped."""
    text = "".join(c for c in value or "" if unicodedata.category(c) not in _DROPPED)
    if len(text) > LONGEST_VALUE:
        text = text[:LONGEST_VALUE] + "..."
    return text or "(none)"


def utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def body(links: Sequence[BrokenLink], since: dt.datetime, until: dt.datetime,
         owned: bool, max_links: int) -> str:
    """The mail's text: the broken links grouped by the page they are on, the pages
    with the most requests for broken links first."""
    shown = sorted(links, key=lambda b: (-b.hits, b.referer, b.path or ""))[:max_links]
    pages: dict[str, list[BrokenLink]] = {}
    for link in shown:
        pages.setdefault(link.referer, []).append(link)
    whose = "your pages" if owned else \
        "pages that no entry of logpipe_page_owners claims"
    page_count = len({b.referer for b in links})
    lines = [
        f"Visitors followed links on {whose}",
        "to addresses that answered with an error (4xx), between",
        f"{utc(since)} and {utc(until)}.",
        "Fix each link, or redirect the old address to where the page is now.",
        "",
        f"{_many(len(links), 'broken link')} on {_many(page_count, 'page')}:",
    ]
    ranked = sorted(pages.items(), key=lambda p: (-sum(b.hits for b in p[1]), p[0]))
    for referer, page_links in ranked:
        lines += ["", f"On {clean(referer)}"]
        for b in page_links:
            statuses = ", ".join(clean(b.statuses).split(","))
            when = f"last on {utc(b.last_seen)}"
            lines += [f"    {clean(b.path)}",
                      f"        {statuses}: {_many(b.hits, 'request')}, {when}"]
    if len(links) > len(shown):
        more = _many(len(links) - len(shown), "more broken link")
        lines += ["", f"... and {more}, fewer requested:",
                  "`logpipe report broken-links --limit 0` lists them all."]
    lines += ["", "-- ", "logpipe digest broken-links"]
    return "\n".join(lines) + "\n"


def compose(sender: str, recipient: str, links: Sequence[BrokenLink], since: dt.datetime,
            until: dt.datetime, owned: bool, max_links: int) -> EmailMessage:
    """One mail to `recipient`. Its headers hold only the addresses, counts and dates."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = (f"Broken links on {'your pages' if owned else 'unowned pages'}: "
                      f"{len(links)} since {since.astimezone(dt.timezone.utc):%Y-%m-%d}")
    msg["Date"] = format_datetime(until.astimezone(dt.timezone.utc))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: vacation replies stay quiet
    msg.set_content(body(links, since, until, owned, max_links))
    return msg


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
