"""Command-line options shared by several commands, and the value types they parse."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from logpipe import config


def add_dsn(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dsn",
        help="libpq connection string or URI, e.g. 'dbname=weblogs host=/run/postgresql'. "
        "Default: $LOGPIPE_DSN, else libpq's own defaults (PGHOST, PGDATABASE, PGSERVICE...)",
    )


def add_spool_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spool-dir",
        type=Path,
        help=f"spool directory. Default: $LOGPIPE_SPOOL_DIR, else {config.ROOT_SPOOL_DIR} "
        "for root, else $XDG_STATE_HOME/logpipe/spool (~/.local/state/logpipe/spool)",
    )


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        default="combined",
        help="common, combined (default), vhost_combined, combinedio, or a literal Apache "
        "LogFormat string such as '%%h %%l %%u %%t \"%%r\" %%>s %%b %%D'",
    )


def add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        help="value of the source column, naming the server or logger (default: host name)",
    )


def add_flush_interval(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--flush-interval", type=positive_float,
                   default=config.DEFAULT_FLUSH_INTERVAL, help=help_text)


def add_max_line_bytes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-line-bytes",
        type=max_line_bytes,
        metavar="SIZE",
        help="the longest line to load, e.g. 512K; a longer one is kept whole in "
        "access_log_rejects. Default: room for any line Apache writes under its default LimitRequestLine and "
        f"LimitRequestFieldSize ({config.APACHE_LIMIT_REQUEST}): 32K per text field of the "
        "LogFormat (Apache logs a byte as \\xhh, four bytes), at least "
        f"{config.MIN_MAX_LINE_BYTES // 1024}K. Raise it if you raise those limits; the logger writes "
        "its value into its spool segments, which replay and drain then use",
    )


def add_trusted_proxy(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trusted-proxy",
        action="append",
        type=trusted_network,
        default=[],
        metavar="CIDR",
        help="a proxy, load balancer or CDN in front of Apache, e.g. 10.0.0.0/8 or "
        "2001:db8::/32 (or one address); repeat it for each network. When a line's client "
        "address (%%h, or %%a) is in one and the LogFormat logs %%{X-Forwarded-For}i, "
        "remote_host becomes the rightmost address of that header that is not itself in a "
        "trusted network: the client, however many trusted hops it went through; what a "
        "client wrote into the header itself is never believed. The header stays in extra. "
        "The logger writes the list into its spool segments, which replay and drain then "
        "use. Apache's mod_remoteip does the same before logging: then log %%a and leave "
        "this out",
    )


def add_anonymize_ip(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--anonymize-ip",
        action="store_true",
        help="store each client address cut to its network: the last byte of an IPv4 "
        "address zeroed (/24: 192.0.2.77 becomes 192.0.2.0), an IPv6 address cut to its "
        "first 48 bits (2001:db8:1:2::3 becomes 2001:db8:1::); a host name keeps only its "
        "domain. The country is looked up first, from the whole address. The full address "
        "never reaches the database (under the GDPR it is personal data); reports then "
        "count visitors on the cut address. The logger writes it into its spool segments, "
        "which replay and drain then follow",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def spool_dir_of(args: argparse.Namespace) -> Path:
    return args.spool_dir or config.default_spool_dir()


# -- value types --------------------------------------------------------------------


def parse_size(text: str) -> int:
    """A byte count such as 500M or 2G (K, M, G, T are powers of 1024)."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    value = text.strip().upper().removesuffix("B")
    number, unit = value, ""
    if value and value[-1] in units:
        number, unit = value[:-1], value[-1]
    try:
        size = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 500M or 2G)") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return size


def max_line_bytes(text: str) -> int:
    """--max-line-bytes: a size, at most config.LARGEST_MAX_LINE_BYTES."""
    size = parse_size(text)
    if size > config.LARGEST_MAX_LINE_BYTES:
        raise argparse.ArgumentTypeError(
            f"at most {config.LARGEST_MAX_LINE_BYTES // 1024**2}M: {text!r}")
    return size


def trusted_network(text: str) -> str:
    """--trusted-proxy: a network (or an address) in canonical form."""
    from logpipe.parse.proxies import parse_network

    try:
        return str(parse_network(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(convert: Callable[[str], float], what: str, allow_zero: bool
            ) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be {'0 or more' if allow_zero else 'positive'}: {text!r}")
        return value

    return parse


positive_float: Callable[[str], float] = _number(float, "a number", allow_zero=False)
positive_int: Callable[[str], int] = _number(int, "a whole number", allow_zero=False)  # type: ignore[assignment]
non_negative_int: Callable[[str], int] = _number(int, "a whole number", allow_zero=True)  # type: ignore[assignment]
