"""Command lines of `logpipe resolve` and `logpipe digest`: their argparse set-up and
value types (kept apart from the commands so that building the parser loads neither
dnspython nor smtplib)."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from typing import Any, Callable

from logpipe.options import add_dsn, positive_float, positive_int
from logpipe.reports.times import parse_time

RESOLVE_DESCRIPTION = """\
Look up the names (reverse DNS, PTR) of the client addresses (access_log.remote_host)
seen since --since that have no fresh name yet, and keep them in the table
logpipe_dns_names, which `logpipe report domains` and the report_domains view read.

A name found is fresh for --max-age (six weeks); a failed lookup (NXDOMAIN, no PTR
record, SERVFAIL, timeout) is kept too, and asked again after --retry-after (a day).
Lookups run --concurrency at a time, at most --rate queries a second, each given
--timeout seconds, so a run takes about (addresses / rate) seconds plus one timeout.
A client logged as a name (HostnameLookups On) is kept as it is, without a query.
"""

RESOLVE_EPILOG = """\
examples:
  logpipe resolve --dsn 'dbname=weblogs'
  logpipe resolve --since 7d --nameserver 127.0.0.1 --rate 100
  # from cron, every hour (conf/cron/logpipe.cron):
  23 * * * * logpipe resolve --since 2h --dsn 'dbname=weblogs' >/dev/null

exit status: 0 done, 1 database unreachable, or the name server answered none of
the lookups (then nothing is kept, and the next run asks again), 2 usage error.
"""

DIGEST_DESCRIPTION = """\
Mail the broken links found on the site's own pages (what `logpipe report
broken-links` lists: 4xx answers to requests whose referer is a page of the site) to
the people who own those pages, one plain-text mail per recipient. Nothing is sent to
a recipient with nothing to hear about.

Owners are rows of the table logpipe_page_owners (path prefix -> mail address, for one
vhost or for all), filled from psql:
  INSERT INTO logpipe_page_owners (prefix, address) VALUES ('/blog/', 'blog@example.com');
  INSERT INTO logpipe_page_owners (vhost, prefix, address)
       VALUES ('shop.example.com', '/', 'shop@example.com');
A broken link belongs to the owners of the page it was found on (the referer's path):
the entry with the longest prefix of that path wins, a vhost's own entry before an
any-vhost one of the same length, and every address of that prefix gets it. --to gets
the links no entry claims: all of them while the table is empty.
"""

DIGEST_EPILOG = """\
examples:
  logpipe digest broken-links --to webmaster@example.com --dsn 'dbname=weblogs'
  logpipe digest broken-links --to webmaster@example.com --dry-run   # print, send nothing
  # from cron, Mondays at 7:00 (conf/cron/logpipe.cron):
  0 7 * * 1 logpipe digest broken-links --since 7d --to webmaster@example.com --dsn 'dbname=weblogs' >/dev/null

exit status: 0 done (sent, or nothing to say), 1 database or mail server problem
(mails said sent were sent), 2 usage error.
"""


def nameserver(text: str) -> tuple[str, int]:
    """--nameserver: 127.0.0.1, 127.0.0.1:5353, ::1 or [::1]:5353."""
    host, port = _host_port(text, 53)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an IP address: {host!r} (give the name server's address, e.g. "
            "127.0.0.1, 192.0.2.53:5353 or [2001:db8::53]:53)") from None
    return str(address), port


def smtp_server(text: str) -> tuple[str, int]:
    """--smtp: HOST or HOST:PORT, [v6]:PORT."""
    host, port = _host_port(text, 25)
    if not host or any(c.isspace() for c in host):
        raise argparse.ArgumentTypeError(f"not HOST[:PORT]: {text!r} (e.g. localhost:25)")
    return host, port


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    value, port_text = text.strip(), str(default_port)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise argparse.ArgumentTypeError(f"not HOST[:PORT]: {text!r}")
            port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host = value
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {port_text!r} (1 to 65535)")
    return host, int(port_text)


def age(text: str) -> dt.timedelta:
    """--max-age, --retry-after: a length of time such as 6w, 1d or 12h."""
    spec = parse_time(text)
    if spec.ago is None or spec.ago <= dt.timedelta(0):
        raise argparse.ArgumentTypeError(
            f"not a length of time: {text!r} (use e.g. 6w, 1d, 12h or 30m)")
    return spec.ago


def mail_address(text: str) -> str:
    """A bare address: user@host, nothing that could start another header."""
    value = text.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(
            c.isspace() or not c.isprintable() or c in ',<>;"()' for c in value):
        raise argparse.ArgumentTypeError(
            f"not a mail address: {text!r} (give a bare address, e.g. webmaster@example.com)")
    return value


def add_parsers(sub: Any, command: Callable[[str], Callable[[argparse.Namespace], int]]
                ) -> None:
    """Add `resolve` and `digest` to the subcommands; `command(name)` runs
    logpipe.commands.NAME."""
    s = sub.add_parser("resolve", help="look up client names (reverse DNS) for "
                       "`logpipe report domains`", description=RESOLVE_DESCRIPTION,
                       epilog=RESOLVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dsn(s)
    s.add_argument("--since", type=parse_time, default=parse_time("1d"), metavar="TIME",
                   help="look up the clients of requests at or after TIME: relative (1d, "
                   "12h, 2w: that long ago) or ISO (2024-10-01); default: 1d. From cron, "
                   "a little more than the time between runs")
    s.add_argument("--nameserver", type=nameserver, metavar="IP[:PORT]",
                   help="ask this name server (e.g. 127.0.0.1, [::1]:5353); default: those "
                   "of /etc/resolv.conf")
    s.add_argument("--timeout", type=positive_float, default=2.0, metavar="SECONDS",
                   help="give up on a lookup after this long, retries included; it is kept "
                   "as a failure (default: %(default)s)")
    s.add_argument("--rate", type=positive_float, default=50.0, metavar="N",
                   help="start at most N queries a second, to spare the name server "
                   "(default: %(default)s)")
    s.add_argument("--concurrency", type=positive_int, default=20, metavar="N",
                   help="at most N lookups waiting for an answer at once "
                   "(default: %(default)s)")
    s.add_argument("--max-age", type=age, default=age("6w"), metavar="AGE",
                   help="look a name up again once it is this old (default: 6w)")
    s.add_argument("--retry-after", type=age, default=age("1d"), metavar="AGE",
                   help="ask again about an address whose lookup failed (NXDOMAIN, no "
                   "name, SERVFAIL, timeout) after this long (default: 1d)")
    s.set_defaults(func=command("resolve"))

    s = sub.add_parser("digest", help="mail each page owner the broken links on their pages",
                       description=DIGEST_DESCRIPTION, epilog=DIGEST_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("what", choices=("broken-links",), metavar="broken-links",
                   help="what to mail: broken-links (the only digest so far)")
    s.add_argument("--to", required=True, type=mail_address, metavar="ADDR",
                   help="who gets the broken links that no owner in logpipe_page_owners "
                   "claims (all of them when the table is empty)")
    s.add_argument("--smtp", type=smtp_server, default=("localhost", 25), metavar="HOST:PORT",
                   help="the mail server to hand the mails to, plain SMTP without "
                   "authentication, as to a local MTA (default: localhost:25)")
    s.add_argument("--from", dest="sender", type=mail_address, metavar="ADDR",
                   help="the mails' sender (default: logpipe@ this host's name)")
    s.add_argument("--since", type=parse_time, default=parse_time("7d"), metavar="TIME",
                   help="broken links requested at or after TIME: relative (7d, 24h) or "
                   "ISO (2024-10-01); default: 7d, for a weekly cron job")
    s.add_argument("--vhost", help="only links on this virtual host's pages")
    s.add_argument("--max-links", type=positive_int, default=200, metavar="N",
                   help="at most N broken links in one mail, the most requested first; the "
                   "mail says how many more there were (default: %(default)s)")
    s.add_argument("--dry-run", action="store_true",
                   help="print the mails on stdout instead of sending them")
    add_dsn(s)
    s.set_defaults(func=command("digest"))
