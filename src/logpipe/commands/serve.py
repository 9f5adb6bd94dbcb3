"""`logpipe serve`: the HTML dashboard over HTTP (the standard library's threading
server), live. GET / is the page with its first numbers inside; GET api/data?period=&vhost=
is the page's data as JSON, which the page fetches every --refresh seconds. Read-only:
every request reads through a read-only session of its own, and nothing is folded.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from logpipe.commands.serve_args import DEFAULT_LISTEN, PERIODS, is_loopback, listen_address
from logpipe.messages import say
from logpipe.reports.filters import Filters

# What the server answers besides the page: nothing may embed or sniff it.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# A dashboard query that runs this long is stopped (the page says so and tries again).
STATEMENT_TIMEOUT = "30s"
MAX_VHOST = 1000


class DashboardError(Exception):
    """The numbers cannot be had now: (HTTP status, message for the page)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Dashboard:
    """What every request needs: the DSN and the page's settings."""

    def __init__(self, dsn: str, refresh: float, limit: int, period: str) -> None:
        self.dsn = dsn
        self.refresh = refresh
        self.limit = limit
        self.period = period

    def data(self, period: str, vhost: str) -> dict[str, Any]:
        """The page's numbers for `period` (a key of PERIODS) and `vhost` ('' for all)."""
        import psycopg2
        import psycopg2.errors

        from logpipe.reports.html.command import fetch
        from logpipe.reports.run import prepare_session, run_report
        from logpipe.reports.times import parse_time
        from logpipe.store import database as db

        since = None if period == "all" else parse_time(period)
        try:
            conn = db.connect(self.dsn, "logpipe serve")
        except psycopg2.Error as exc:
            raise DashboardError(HTTPStatus.SERVICE_UNAVAILABLE,
                                 f"database unreachable: {str(exc).strip()}") from None
        try:
            conn.set_session(readonly=True, autocommit=True)
            with conn.cursor() as cur:
                prepare_session(cur)
                cur.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
                shown = Filters(vhost=vhost or None)
                data = fetch(cur, shown, self.limit, since)
                # the page's choice of vhosts: every one in the period, whichever is shown
                every = Filters(since=shown.since, pruned_before=shown.pruned_before)
                data["vhosts"] = sorted({r[1] for r in run_report(cur, "traffic", every)[1]
                                         if r[1] is not None})
                return data
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedFunction) as exc:
            raise DashboardError(HTTPStatus.SERVICE_UNAVAILABLE,
                                 f"the reports are not installed ({str(exc).splitlines()[0]}); "
                                 "run `logpipe initdb`") from None
        except psycopg2.errors.QueryCanceled:
            raise DashboardError(HTTPStatus.SERVICE_UNAVAILABLE,
                                 f"the database took longer than {STATEMENT_TIMEOUT}; choose a "
                                 "shorter period") from None
        except psycopg2.OperationalError as exc:
            raise DashboardError(HTTPStatus.SERVICE_UNAVAILABLE,
                                 f"lost the database: {str(exc).strip()}") from None
        except psycopg2.Error as exc:
            raise DashboardError(HTTPStatus.INTERNAL_SERVER_ERROR,
                                 f"the database refused: {str(exc).strip()}") from None
        finally:
            conn.close()

    def live(self, period: str, vhost: str) -> dict[str, Any]:
        """The page's settings for app.js."""
        return {"refresh": self.refresh, "period": period, "vhost": vhost,
                "periods": [[k, v] for k, v in PERIODS.items()]}


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the page, its data and nothing else."""

    server_version = "logpipe"
    dashboard: Dashboard  # set on the subclass serve() makes
    check_host = True  # bound to loopback: refuse other Host names (DNS rebinding)

    def version_string(self) -> str:
        return self.server_version  # no Python version for the world to see

    def do_GET(self) -> None:  # http.server's name
        self.respond(send_body=True)

    def do_HEAD(self) -> None:
        self.respond(send_body=False)

    def respond(self, send_body: bool) -> None:
        if self.check_host and not loopback_host(self.headers.get("Host", "")):
            self.reply(HTTPStatus.MISDIRECTED_REQUEST, "text/plain",
                       b"this server answers requests to its loopback address only\n",
                       send_body)
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/favicon.ico":
            self.reply(HTTPStatus.NO_CONTENT, "text/plain", b"", send_body)
            return
        if url.path not in ("/", "/api/data"):
            self.reply(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", send_body)
            return
        try:
            period, vhost = self.choice(url.query)
            data = self.dashboard.data(period, vhost)
        except DashboardError as exc:
            if url.path == "/api/data":
                self.reply(exc.status, "application/json",
                           json.dumps({"error": str(exc)}).encode(), send_body)
            else:
                self.reply(exc.status, "text/plain", f"{exc}\n".encode(), send_body)
            return
        if url.path == "/api/data":
            self.reply(HTTPStatus.OK, "application/json",
                       json.dumps(data, separators=(",", ":")).encode(), send_body)
            return
        from logpipe.reports.html.page import build_page

        title = f"logpipe: {vhost}" if vhost else "logpipe: access log"
        page = build_page(data, title, live=self.dashboard.live(period, vhost))
        self.reply(HTTPStatus.OK, "text/html", page.html.encode("utf-8"), send_body,
                   policy=page.csp + "; frame-ancestors 'none'")

    def choice(self, query: str) -> tuple[str, str]:
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        period = params.get("period", [self.dashboard.period])[0]
        vhost = params.get("vhost", [""])[0]
        if period not in PERIODS:
            raise DashboardError(HTTPStatus.BAD_REQUEST,
                                 f"period must be one of {', '.join(PERIODS)}")
        if len(vhost) > MAX_VHOST:
            raise DashboardError(HTTPStatus.BAD_REQUEST, "vhost too long")
        return period, vhost

    def reply(self, status: HTTPStatus, content_type: str, body: bytes, send_body: bool,
              policy: str = API_POLICY) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", policy)
        for name, value in COMMON_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Errors only (4xx and 5xx), on stderr as every logpipe message."""
        if len(args) >= 2 and str(args[1])[:1] in ("4", "5"):
            say("serve: " + (format % args).replace("\n", " "))

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if str(getattr(code, "value", code))[:1] in ("4", "5"):
            super().log_request(code, size)


def loopback_host(host_header: str) -> bool:
    """A Host header naming a loopback address or localhost, with or without a port."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host.lower() == "localhost":
        return True
    try:
        return is_loopback(host)
    except ValueError:
        return False


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow client does not hold up Ctrl-C


class Server6(Server):
    address_family = socket.AF_INET6


def run(args: argparse.Namespace) -> int:
    from logpipe.commands.common import dsn_of

    dsn = dsn_of(args)
    host, port = args.listen or listen_address(DEFAULT_LISTEN)
    dashboard = Dashboard(dsn, args.refresh, args.limit, args.period)
    if not reachable(dsn):
        return 1
    handler = type("DashboardHandler", (Handler,),
                   {"dashboard": dashboard, "check_host": is_loopback(host)})
    server_class = Server6 if ":" in host else Server
    try:
        server = server_class((host, port), handler)
    except OSError as exc:
        say(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
            "--listen")
        return 1
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not is_loopback(host):
        say(f"warning: listening on {shown}:{bound_port}, which other machines may reach: "
            "anyone who can connects sees the logged paths, referers, agents and addresses. "
            "Prefer the loopback default behind a reverse proxy with authentication "
            "(conf/apache/logpipe-dashboard.conf)")
    say(f"serving the dashboard on http://{shown}:{bound_port}/ (read-only; Ctrl-C stops it)")
    signal.signal(signal.SIGTERM, _interrupt)  # stop as Ctrl-C does: close, exit 0
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def reachable(dsn: str) -> bool:
    """The database answers and has the reports; else say why and what to do."""
    import psycopg2

    from logpipe.store import database as db

    try:
        conn = db.connect(dsn, "logpipe serve")
    except psycopg2.Error as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {str(exc).strip()}; check --dsn "
            "(or $LOGPIPE_DSN) and that PostgreSQL is running")
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('logpipe_quarters') IS NOT NULL")
            if not cur.fetchone()[0]:
                say(f"the reports are not installed in {db.describe_dsn(dsn)}; run "
                    "`logpipe initdb` first")
                return False
    finally:
        conn.close()
    return True

