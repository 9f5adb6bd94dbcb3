"""`logpipe digest broken-links`: mails to the owners of pages (logpipe_page_owners)
about the broken links on them, through a real SMTP server on a loopback port
(aiosmtpd), over tests/data/reports.log loaded through the real pipe.

The log's broken links (see reports_support.BROKEN): on shop.example.com's
/product/42 -> /product/43; on www.example.com's /about -> /old-page (twice: one
referer spelled WWW.Example.com:443) and /blog/post-1 -> /blog/post-2.
"""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import COMMAND_TIMEOUT, Database, execute, fresh_database, logpipe_cmd
from reports_support import insert, loaded_fixture  # noqa: F401 - the `loaded` fixture

WEBMASTER = "webmaster@example.com"
SINCE = "2024-10-01"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        """The body, with SMTP's CRLF line ends as LF (a CR of its own stays)."""
        return str(self.message.get_content()).replace("\r\n", "\n")


class Inbox:
    """aiosmtpd handler: keeps every mail it is given."""

    def __init__(self) -> None:
        self.mails: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> Received:
        [mail] = [m for m in self.mails if m.recipients == [address]]
        return mail


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(name="smtp")
def smtp_fixture() -> Iterator[tuple[Inbox, str]]:
    """A real SMTP server on 127.0.0.1: its inbox and HOST:PORT."""
    inbox = Inbox()
    port = free_tcp_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"127.0.0.1:{port}"
    finally:
        controller.stop()


def owners(dsn: str, *rows: tuple[str, str, str]) -> None:
    """logpipe_page_owners holds exactly these (vhost, prefix, address)."""
    values = ", ".join(f"('{v}', '{p}', '{a}')" for v, p, a in rows)
    execute(dsn, "DELETE FROM logpipe_page_owners"
            + (f"; INSERT INTO logpipe_page_owners (vhost, prefix, address) VALUES {values}"
               if rows else ""))


def digest(dsn: str, server: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        logpipe_cmd("digest", "broken-links", "--dsn", dsn, "--to", WEBMASTER, "--smtp",
                    server, "--since", SINCE, "--from", "logpipe@example.com", *args),
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_two_owners_each_get_only_their_pages(loaded: Database,
                                              smtp: tuple[Inbox, str]) -> None:
    inbox, server = smtp
    owners(loaded.dsn, ("", "/blog/", "blog@example.com"),
           ("shop.example.com", "/", "shop@example.com"))
    proc = digest(loaded.dsn, server)
    assert proc.returncode == 0, proc.stderr
    assert sorted(m.recipients[0] for m in inbox.mails) == [
        "blog@example.com", "shop@example.com", WEBMASTER]
    assert all(len(m.recipients) == 1 for m in inbox.mails)

    blog = inbox.to("blog@example.com")
    assert "On https://www.example.com/blog/post-1\n    /blog/post-2\n" in blog.text
    assert "404: 2 requests, last on 2024-10-09 08:30 UTC" in blog.text
    assert "/old-page" not in blog.text and "/product/43" not in blog.text
    assert blog.message["Subject"] == "Broken links on your pages: 1 since 2024-10-01"
    assert blog.message["From"] == "logpipe@example.com"
    assert blog.sender == "logpipe@example.com"

    shop = inbox.to("shop@example.com")
    assert "On https://shop.example.com/product/42\n    /product/43\n" in shop.text
    assert "/old-page" not in shop.text and "/blog/post-2" not in shop.text

    rest = inbox.to(WEBMASTER)  # what no owner claims
    assert "2 broken links on 2 pages" in rest.text
    assert "On https://www.example.com/about\n    /old-page\n        404, 410:" in rest.text
    assert "On https://WWW.Example.com:443/about\n" in rest.text
    assert "/blog/post-2" not in rest.text and "/product/43" not in rest.text
    assert "no entry of logpipe_page_owners claims" in rest.text
    assert rest.message["Subject"] == "Broken links on unowned pages: 2 since 2024-10-01"
    assert "sent to blog@example.com" in proc.stdout


def test_the_longest_prefix_wins(loaded: Database, smtp: tuple[Inbox, str]) -> None:
    inbox, server = smtp
    owners(loaded.dsn, ("", "/", "all@example.com"), ("", "/blog/", "blog@example.com"),
           ("", "/blog/post-1", "post@example.com"), ("", "/blog/post-1", "editor@example.com"),
           ("shop.example.com", "/", "shop@example.com"))
    proc = digest(loaded.dsn, server)
    assert proc.returncode == 0, proc.stderr
    # blog@ is outdone by a longer prefix, and "/" claims the rest: no mail to either
    assert sorted(m.recipients[0] for m in inbox.mails) == [
        "all@example.com", "editor@example.com", "post@example.com", "shop@example.com"]
    assert inbox.to("post@example.com").text == inbox.to("editor@example.com").text
    assert "/blog/post-2" in inbox.to("post@example.com").text
    everything_else = inbox.to("all@example.com").text
    assert "/old-page" in everything_else and "/product/43" not in everything_else


def test_without_owners_the_fallback_gets_everything(loaded: Database,
                                                     smtp: tuple[Inbox, str]) -> None:
    inbox, server = smtp
    owners(loaded.dsn)
    proc = digest(loaded.dsn, server)
    assert proc.returncode == 0, proc.stderr
    [mail] = inbox.mails
    assert mail.recipients == [WEBMASTER]
    assert "4 broken links on 4 pages" in mail.text
    assert "your pages" in mail.text
    # --max-links keeps the most requested ones and says how many more there were
    inbox.mails.clear()
    proc = digest(loaded.dsn, server, "--max-links", "2")
    assert proc.returncode == 0, proc.stderr
    assert "... and 2 more broken links" in inbox.mails[0].text


def test_no_mail_when_there_is_nothing_to_say(loaded: Database,
                                              smtp: tuple[Inbox, str]) -> None:
    inbox, server = smtp
    owners(loaded.dsn, ("", "/blog/", "blog@example.com"))
    proc = digest(loaded.dsn, server, "--since", "2024-10-11")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to send" in proc.stdout
    assert inbox.mails == []


def test_logged_values_stay_in_the_body(smtp: tuple[Inbox, str]) -> None:
    """A referer is whatever the client sent: no header of its own, no control
    characters, no terminal escapes, no bidi override, and at most 300 characters."""
    inbox, server = smtp
    hostile = ("https://www.example.com/page\r\nBcc: victim@example.org\r\n"
               "Subject: win\x1b[2J\u202egnp.exe" + "x" * 1000)
    with fresh_database() as db:
        insert(db.dsn, [("2024-10-08 10:00+00", "www.example.com", "/gone\nX-Evil: 1", 404, 0,
                         hostile, "agent", False)])
        proc = digest(db.dsn, server)
    assert proc.returncode == 0, proc.stderr
    [mail] = inbox.mails
    assert mail.recipients == [WEBMASTER]
    assert mail.message["Bcc"] is None and mail.message["X-Evil"] is None
    assert mail.message["Subject"] == "Broken links on your pages: 1 since 2024-10-01"
    text = mail.text
    assert "On https://www.example.com/pageBcc: victim@example.orgSubject: win[2Jgnp.exe" in text
    assert "/goneX-Evil: 1" in text
    assert not any(c in text for c in "\r\x1b\u202e")
    assert max(len(line) for line in text.splitlines()) < 320


def test_dry_run_and_errors(loaded: Database, smtp: tuple[Inbox, str]) -> None:
    inbox, server = smtp
    owners(loaded.dsn)
    proc = digest(loaded.dsn, server, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("From: logpipe@example.com\nTo: webmaster@example.com\n")
    assert "On https://www.example.com/about" in proc.stdout
    assert inbox.mails == []

    closed = f"127.0.0.1:{free_tcp_port()}"  # nothing listens there
    proc = digest(loaded.dsn, closed)
    assert proc.returncode == 1
    assert f"cannot send mail through {closed}" in proc.stderr

    proc = digest(loaded.dsn, server, "--to", "webmaster@example.com\nBcc: x@example.org")
    assert proc.returncode == 2
    assert "not a mail address" in proc.stderr
    assert inbox.mails == []
