"""Traffic for the Apache tests, and access_log checked against the ground truth.

`load()` runs a `LoadGenerator`, a small keep-alive HTTP client in threads:
every request carries a unique `id=N` query string, so each ground-truth line
is unique and a test can tell which requests were answered (`answered()`) and
wait for them to be logged (`ApacheServer.wait_logged`). `compare_rows()`
matches access_log against the ground truth as multisets of (host, user, time,
method, path, query, protocol, status, bytes, referer, user agent).

Nothing here measures speed: how fast Apache serves with logpipe attached is
for bench/run.py.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from apache_fixture import PATHS
from conftest import wait_for

# -- comparing access_log with the ground truth ---------------------------------

COMBINED_LINE = re.compile(
    r'^(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<path>[^ ?"]*)(?:\?(?P<query>[^ "]*))? (?P<protocol>[^"]+)" '
    r'(?P<status>\d{3}) (?P<bytes>\S+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)
# bytes: %b or %B; a format with only %O (vhost_combined) fills bytes_out instead.
ROW_SQL = """
SELECT remote_host, remote_user, extract(epoch FROM time)::bigint, method, path, query,
       protocol, status, coalesce(bytes, bytes_out), referer, user_agent
  FROM access_log
"""


def _dash(value: str | None) -> str | None:
    return None if value in ("-", None) else value


def ground_truth_record(line: bytes) -> tuple:
    """A combined line as the tuple ROW_SQL gives for its row."""
    m = COMBINED_LINE.match(line.decode())
    assert m, f"unexpected ground-truth line {line!r}"
    epoch = int(datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp())
    return (
        m["host"], _dash(m["user"]), epoch, m["method"], m["path"], m["query"] or None,
        m["protocol"], int(m["status"]), 0 if m["bytes"] == "-" else int(m["bytes"]),
        _dash(m["referer"]), _dash(m["agent"]),
    )


def row_record(row: tuple) -> tuple:
    host, user, epoch, method, path, query, protocol, status, size, referer, agent = row
    return (host, user, int(epoch), method, path, query or None, protocol, status, size or 0,
            referer, agent)


def compare_rows(rows: list[tuple], lines: list[bytes],
                 handed_over: list[bytes] | None = None) -> str:
    """'' when access_log holds exactly the ground truth (as a multiset), else a diff summary.

    With `handed_over` (the lines httpd finished writing into the pipe, see
    apache_fixture), a ground-truth line missing from it may be missing from access_log
    too: httpd killed its child between the two writes. Every handed-over line must be
    there, and nothing may be there that is not in the ground truth, or be there twice.
    """
    most = Counter(ground_truth_record(line) for line in lines)
    least = most if handed_over is None else Counter(ground_truth_record(x) for x in handed_over)
    got = Counter(row_record(r) for r in rows)
    missing = least - got
    extra = got - most
    if not missing and not extra and least <= most:
        return ""
    return (
        f"{len(rows)} rows for {len(lines)} ground-truth lines"
        f"{'' if handed_over is None else f' ({len(handed_over)} handed over to the pipe)'}; "
        f"{sum(missing.values())} lines missing from access_log, "
        f"{sum(extra.values())} rows not in the ground truth (or duplicated).\n"
        f"missing (first 5): {list(missing.elements())[:5]}\n"
        f"extra (first 5): {list(extra.elements())[:5]}\n"
        f"handed over but not in the ground truth: {sum((least - most).values())}"
    )


# -- load -----------------------------------------------------------------------


@dataclass
class Sample:
    id: int  # the request's ?id=N
    started: float  # time.monotonic() when it was sent
    status: int | None  # None: the request failed (connection closed, refused, ...)


class LoadGenerator:
    """Keep-alive GET requests from several threads, each with a unique ?id=N."""

    def __init__(self, port: int, threads: int = 8, timeout: float = 10.0,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.threads = threads
        self.timeout = timeout
        self.samples: list[Sample] = []
        self.errors: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._workers.append(t)

    def stop(self) -> None:
        """Stop sending; return once every thread has its last response (or gave up)."""
        self._stop.set()
        for t in self._workers:
            t.join(timeout=self.timeout + 5)
        stuck = [t.name for t in self._workers if t.is_alive()]
        assert not stuck, f"load threads {stuck} still waiting for a response"

    def _run(self, n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            i = next(self._ids)
            path = PATHS[i % len(PATHS)]
            headers = {"User-Agent": f"logpipe-loadgen/{n}"}
            if i % 3 == 0:
                headers["Referer"] = f"http://{self.host}:{self.port}/index.html"
            started = time.monotonic()
            status: int | None = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("GET", f"{path}?id={i}", headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                # graceful/restart close idle keep-alive connections: reconnect and go on
                self.errors[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
                # Pacing, not waiting: don't spin on connect() while httpd restarts.
                time.sleep(0.005)
            with self._lock:
                self.samples.append(Sample(i, started, status))
        if conn is not None:
            conn.close()

    # -- what it did --------------------------------------------------------------

    def ok(self) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.status is not None]

    def answered(self, since: float = 0.0) -> set[int]:
        """ids of the requests sent at or after `since` (monotonic) that got a response."""
        return {s.id for s in self.ok() if s.started >= since}

    def wait_requests(self, count: int, timeout: float = 60.0) -> None:
        """Wait until at least `count` more requests have succeeded."""
        target = len(self.ok()) + count
        wait_for(lambda: len(self.ok()) >= target, timeout,
                 lambda: f"{count} more requests ({target - len(self.ok())} to go): "
                         f"errors {dict(self.errors)}",
                 interval=0.05)


@contextlib.contextmanager
def load(port: int, threads: int = 8, host: str = "127.0.0.1") -> Iterator[LoadGenerator]:
    """Run a LoadGenerator for the duration of the block."""
    generator = LoadGenerator(port, threads, host=host)
    generator.start()
    try:
        yield generator
    finally:
        generator.stop()
