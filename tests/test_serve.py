"""`logpipe serve`: the dashboard over HTTP, in headless Chromium. Connected as the
read-only role of `initdb --reader-role`, it loads, refreshes by itself with rows that
arrive through the real piped logger, switches vhost in the page, requests nothing
outside its own origin, and listens on loopback unless told otherwise."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import browser, read_page
from conftest import Database, logpipe_cmd, start_logger, wait_for
from partition_support import run_ok, temporary_role
from pipe_support import StderrReader, feed, finish
from reports_support import as_json

from logpipe.cli import build_subcommand_parser
from logpipe.commands.serve_args import DEFAULT_LISTEN, listen_address

W, S = "www.example.com", "shop.example.com"
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def recent_line(vhost: str, path: str, minutes_ago: int = 5) -> bytes:
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
    return (f'{vhost}:443 192.0.2.7 - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} '
            f'HTTP/1.1" 200 512 "https://www.google.com/" "{AGENT}"\n').encode()


@contextlib.contextmanager
def serving(dsn: str, *args: str) -> Iterator[tuple[str, StderrReader]]:
    """`logpipe serve` running: its base URL (no trailing slash) and its stderr."""
    proc = subprocess.Popen(logpipe_cmd("serve", "--dsn", dsn, *args),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    said = StderrReader(proc)
    try:
        found = wait_for(lambda: re.search(rb"serving the dashboard on (http://\S+)/ ",
                                           said.text()) or proc.poll() is not None,
                         timeout=30, what=lambda: said.text().decode())
        assert proc.poll() is None, said.text().decode()
        yield found.group(1).decode(), said
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, said.text().decode()  # SIGTERM: a clean stop
    assert b"Traceback" not in said.text()


def get(url: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with _LOCAL.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_live_dashboard_as_the_reader_refreshes_with_new_rows(database: Database,
                                                              tmp_path: Path) -> None:
    with temporary_role(database.dsn) as reader:
        run_ok("initdb", "--dsn", database.dsn, "--reader-role", reader)
        logger = start_logger(database.dsn, tmp_path / "spool", "--format", "vhost_combined")
        feed(logger, [recent_line(W, f"/w{i}") for i in range(5)]
             + [recent_line(S, f"/s{i}") for i in range(3)])
        wait_for(lambda: database.rows() == 8, what="the first 8 rows")
        as_reader = f"{database.dsn} user={reader}"
        with serving(as_reader, "--listen", "127.0.0.1:0", "--refresh", "0.3") as (url, _), \
                browser(tmp_path / "chromium") as b:
            b.open(url + "/")
            page = read_page(b)
            assert page["totals"]["requests"]["text"] == "8"
            assert page["charts"] == 3
            # same query, same numbers as the CLI run by the same role
            referers = as_json(as_reader, "referers", "--since", "24h")
            assert page["tables"]["referers"] == [
                {"referer": r["referer"], "hits": str(r["hits"])} for r in referers]

            # rows through the pipe: the page shows them without a reload
            feed(logger, [recent_line(W, f"/later{i}") for i in range(4)])
            wait_for(lambda: database.rows() == 12, what="the 4 rows more")
            wait_for(lambda: read_page(b)["totals"]["requests"]["text"] == "12",
                     what=lambda: f"the page to show 12 requests: {read_page(b)['totals']}")

            # the vhost chosen in the page
            b.evaluate(f"""(() => {{ const s = document.getElementById('choose-vhost');
                s.value = {json.dumps(S)}; s.dispatchEvent(new Event('change')); }})()""")
            wait_for(lambda: read_page(b)["totals"]["requests"]["text"] == "3",
                     what=lambda: f"shop's 3 requests: {read_page(b)['totals']}")
            assert b.evaluate("location.search") == f"?period=24h&vhost={S}"
            assert read_page(b)["title"] == "logpipe: access log"
            assert b.problems(url) == []
            assert int(b.evaluate("document.documentElement.dataset.refreshes")) >= 2
        finish(logger)


def test_http_answers(database: Database) -> None:
    with serving(database.dsn, "--listen", "0") as (url, said):
        assert url.startswith("http://127.0.0.1:")  # a port alone: on loopback
        status, headers, body = get(url + "/")
        assert status == 200 and body.startswith(b"<!DOCTYPE html>")
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, body = get(url + "/api/data?period=7d&vhost=")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert json.loads(body)["totals"]["requests"] == 0
        assert get(url + "/api/data?period=forever")[0] == 400
        assert get(url + "/etc/passwd")[0] == 404
        assert get(url + "/", method="HEAD")[0] == 200
        # a page of another site that resolves its own name to 127.0.0.1 (DNS
        # rebinding) gets nothing
        assert get(url + "/api/data", headers={"Host": "evil.example"})[0] == 421
        assert get(url + "/api/data", headers={"Host": "localhost:1"})[0] == 200
    assert b"warning" not in said.text()


def test_listens_on_loopback_unless_told(database: Database) -> None:
    assert build_subcommand_parser().parse_args(["serve"]).listen is None
    host, _, port = DEFAULT_LISTEN.rpartition(":")
    assert host == "127.0.0.1"
    with socket.socket() as probe:
        free = probe.connect_ex((host, int(port))) != 0
    if free:
        with serving(database.dsn) as (url, _):
            assert url == f"http://{DEFAULT_LISTEN}"
    else:  # something else has the default port: the refusal names the address
        taken = subprocess.run(logpipe_cmd("serve", "--dsn", database.dsn),
                               capture_output=True, text=True, timeout=30, check=False)
        assert taken.returncode == 1 and f"cannot listen on {DEFAULT_LISTEN}" in taken.stderr
    # told: it listens everywhere, warns, and answers any Host
    with serving(database.dsn, "--listen", "0.0.0.0:0") as (url, said):
        assert url.startswith("http://0.0.0.0:")
        assert b"warning: listening on 0.0.0.0" in said.text()
        port = url.rsplit(":", 1)[1]
        assert get(f"http://127.0.0.1:{port}/api/data",
                   headers={"Host": "stats.example.org"})[0] == 200


def test_refuses_to_start_without_a_database(tmp_path: Path) -> None:
    proc = subprocess.run(logpipe_cmd("serve", "--dsn", "dbname=logpipe_no_such_db",
                                      "--listen", "0"),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "cannot connect to" in proc.stderr and "Traceback" not in proc.stderr
    bad = subprocess.run(logpipe_cmd("serve", "--listen", "example.org:80"),
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2 and "not an address to listen on" in bad.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("9000", ("127.0.0.1", 9000)),
    ("localhost:0", ("127.0.0.1", 0)),
    ("[::1]:8080", ("::1", 8080)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
])
def test_listen_forms(text: str, expected: tuple[str, int]) -> None:
    assert listen_address(text) == expected


@pytest.mark.parametrize("text", ["example.org:80", "127.0.0.1:99999", "[::1]", "::1:x", ""])
def test_listen_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        listen_address(text)
