"""`logpipe digest broken-links --to ADDR [--smtp HOST:PORT] [--since 7d]`: mail each
page owner (logpipe_page_owners) the broken links on their pages, and --to those no
owner claims; one plain-text mail per recipient, none to a recipient with nothing to
hear about. The links are those of `logpipe report broken-links` (same query)."""

from __future__ import annotations

import argparse
import datetime as dt
import smtplib
import socket
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import psycopg2
import psycopg2.errors

from logpipe.commands.common import connect_or_say, dsn_of
from logpipe.commands.names_args import mail_address
from logpipe.mail.digest_text import BrokenLink, compose, utc
from logpipe.mail.owners import Owner, load_owners, owners_of
from logpipe.messages import EXIT_FAILURE, EXIT_OK, first_line, say
from logpipe.reports.filters import Filters, resolve_times
from logpipe.reports.queries.referers import query_broken_links

SMTP_TIMEOUT = 30.0  # seconds for the mail server to answer each command


def run(args: argparse.Namespace) -> int:
    dsn = dsn_of(args)
    sender = args.sender or default_sender()
    conn = connect_or_say(dsn, "logpipe digest")
    if conn is None:
        return EXIT_FAILURE
    try:
        since, until, links, owners = read(conn, args)
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction) as exc:
        say(f"the tables the digest reads are missing ({first_line(exc)}): run "
            "`logpipe initdb`")
        return EXIT_FAILURE
    except psycopg2.Error as exc:
        say(f"cannot read the broken links: {first_line(exc)}")
        return EXIT_FAILURE
    finally:
        conn.close()
    mails = [compose(sender, rcpt, found, since, until, owned, args.max_links)
             for rcpt, (found, owned) in by_recipient(links, owners, args.to).items()]
    if not mails:
        print(f"no broken links since {utc(since)}; nothing to send",
              flush=True)
        return EXIT_OK
    if args.dry_run:
        for msg in mails:
            show(msg)
        return EXIT_OK
    return send(mails, sender, args.smtp)


def default_sender() -> str:
    return f"logpipe@{socket.getfqdn() or 'localhost'}"


def read(conn: Any, args: argparse.Namespace
         ) -> tuple[dt.datetime, dt.datetime, list[BrokenLink], list[Owner]]:
    """The window, the broken links found in it and the owners, read in one snapshot."""
    conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
    with conn.cursor() as cur:
        since, _ = resolve_times(cur, args.since, None)
        cur.execute("SELECT now()")
        (until,) = cur.fetchone()
        filters = Filters(vhost=args.vhost, since=since, limit=0)
        sql, params = query_broken_links(filters)
        cur.execute(sql, params)
        links = [BrokenLink(*row) for row in cur.fetchall()]
        owners = load_owners(cur)
    conn.rollback()
    return since, until, links, owners


def by_recipient(links: Sequence[BrokenLink], owners: Sequence[Owner], fallback: str
                 ) -> dict[str, tuple[list[BrokenLink], bool]]:
    """recipient -> (their links, whether they own them); `fallback` gets the links no
    owner claims. An owner address that is not a usable one is said and skipped: its
    links go to `fallback`."""
    usable = [o for o in owners if _usable(o)]
    owning = {o.address for o in usable}
    mails: dict[str, tuple[list[BrokenLink], bool]] = {}
    for link in links:
        for rcpt in owners_of(usable, link.vhost, link.referer) or [fallback]:
            mails.setdefault(rcpt, ([], rcpt in owning or not usable))[0].append(link)
    return mails


def _usable(owner: Owner) -> bool:
    try:
        mail_address(owner.address)
    except argparse.ArgumentTypeError as exc:
        say(f"logpipe_page_owners: skipping the entry for prefix {owner.prefix!r}: {exc}")
        return False
    return True


def send(mails: Sequence[EmailMessage], sender: str, server: tuple[str, int]) -> int:
    """Hand the mails to the SMTP server, one transaction each; 1 if any was not sent."""
    host, port = server
    failed = 0
    try:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            for msg in mails:
                rcpt = str(msg["To"])
                try:
                    smtp.send_message(msg, from_addr=sender, to_addrs=[rcpt])
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                        smtplib.SMTPDataError) as exc:
                    failed += 1
                    say(f"the mail server refused the mail to {rcpt}: {_smtp_error(exc)}")
                    continue
                print(f"sent to {rcpt}: {msg['Subject']}", flush=True)
    except (OSError, smtplib.SMTPException) as exc:
        say(f"cannot send mail through {host}:{port}: {_smtp_error(exc)}; check --smtp "
            "(a mail server that takes mail without authentication, e.g. the local MTA)")
        return EXIT_FAILURE
    return EXIT_FAILURE if failed else EXIT_OK


def show(msg: EmailMessage) -> None:
    """--dry-run: a mail as it would be sent, its body as text."""
    for header in ("From", "To", "Subject"):
        sys.stdout.write(f"{header}: {msg[header]}\n")
    sys.stdout.write(f"\n{msg.get_content()}\n")
    sys.stdout.flush()


def _smtp_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {text.decode(errors='replace')}"
                         for code, text in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
    return first_line(exc)
