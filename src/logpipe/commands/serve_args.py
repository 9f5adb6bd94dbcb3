"""Command line of `logpipe serve`: its argparse set-up and --listen's value type (apart
from the command, so that building the parser loads no HTTP server)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any, Callable

from logpipe.options import add_dsn, non_negative_int, positive_float

DEFAULT_LISTEN = "127.0.0.1:8080"
# The periods the page offers: the value in its URL -> what the page calls it.
PERIODS = {"1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days",
           "30d": "last 30 days", "90d": "last 90 days", "all": "all time"}

DESCRIPTION = """\
Serve the dashboard of `logpipe report html` over HTTP, live: the page fetches its
numbers again every --refresh seconds, and the period and virtual host are chosen in
the page. It only reads: a role made with `initdb --reader-role` is enough (and
advised) in --dsn.

It listens on the loopback address by default, where only this machine reaches it.
For access from elsewhere, put it behind Apache with authentication and TLS
(conf/apache/logpipe-dashboard.conf) rather than --listen 0.0.0.0:PORT: anyone who
reaches the port sees the logged paths, referers, agents and client addresses.
"""

EPILOG = """\
examples:
  logpipe serve --dsn 'dbname=weblogs user=logpipe_reader'
  logpipe serve --listen 127.0.0.1:9000 --refresh 30
  logpipe serve --listen '[::1]:8080'

exit status: 0 stopped (Ctrl-C or SIGTERM), 1 database unreachable at start or the
address is in use, 2 usage error.
"""


def listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT or PORT (on 127.0.0.1): an IP address, or localhost."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an address to listen on: {text!r} (use HOST:PORT with an IP address, "
            "e.g. 127.0.0.1:8080 or [::1]:8080)") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"no such port: {port} (0-65535; 0: any free one)")
    return host, number


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def add_parser(sub: argparse._SubParsersAction,
               command: Callable[[str], Callable[[argparse.Namespace], int]]) -> None:
    """Add `serve` to the subcommands of `logpipe`."""
    s: Any = sub.add_parser(
        "serve", help="the HTML dashboard over HTTP, live (loopback only by default)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dsn(s)
    s.add_argument(
        "--listen", type=listen_address, metavar="HOST:PORT",
        help=f"address and port to listen on (default: {DEFAULT_LISTEN}, this machine "
        "only). An address others can reach (0.0.0.0:8080) is used only when given here, "
        "with a warning: prefer a reverse proxy with authentication")
    s.add_argument(
        "--refresh", type=positive_float, default=10.0, metavar="SECONDS",
        help="the page fetches new numbers this often (default: %(default)s)")
    s.add_argument(
        "--period", choices=tuple(PERIODS), default="24h",
        help="the period the page shows first; the page offers the others "
        "(default: %(default)s)")
    s.add_argument(
        "--limit", type=non_negative_int, default=20, metavar="N",
        help="rows in each table (default: %(default)s; 0: all, which can be slow)")
    s.set_defaults(func=command("serve"))
