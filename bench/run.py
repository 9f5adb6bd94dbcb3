#!/usr/bin/env python3
"""logpipe beside the alternatives and the limit, on one set of generated lines.

    python3 bench/run.py [--lines 1000000] [--json results.json] [--skip apache]

Needs a local PostgreSQL (trust auth, `dbname=postgres` reachable) and, for the
Apache section, Debian's apache2 and wrk. Prints one table; every database it
creates is dropped at the end.

Sections (see README "Performance"):
  ingest   lines/s of `python -m logpipe < file` until every row is committed and
           the logger has exited, for two traffic shapes (a 5,000-page site; every
           path unique, as a scanner walking random URLs), each beside one COPY of
           the same rows already parsed into a bare table (no index, no trigger: the
           limit) and into access_log as installed, in the writer's 4 MiB transactions
           without the fold (what the schema costs), how long the logger took to
           exit after its last commit, and how long the rollup fold it left pending
           takes after it; the three alternated --repeat times (medians, and each
           round's ratio: this VM's speed drifts by 2x within minutes), each
           measure after a CHECKPOINT;
           apache-log-parser + INSERT/commit per line (on a sample, scaled) and
           apache-log-parser + batched inserts
  cpu      user+sys µs per line of all logpipe processes, and of the PostgreSQL
           backend that loaded the rows
  apache   requests/s of a private Apache logging to a file vs piping to logpipe,
           once PostgreSQL has finished the checkpoint and autovacuum the sections
           before left it
  backlog  peak RSS of each logpipe process while lines arrive with the database
           refusing connections, then the time to drain once it is back
  latency  at 100 lines/s, time from the write on stdin to the row being visible
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from logpipe.parse import compile_format
from logpipe.parse.columns import ACCESS_LOG_COLUMNS

ADMIN_DSN = "dbname=postgres"
SHAPE_LABELS = {"site": "5,000-page site", "unique": "every path unique"}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
OFFSETS = ["+0000", "+0100", "-0500", "+0530", "-0330", "+0545", "+0900", "-0800", "+1245"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
]


# -- data -------------------------------------------------------------------------


STATIC = ["/", "/favicon.ico", "/robots.txt", "/static/site.css", "/static/app.js",
          "/feed.xml", "/about", "/static/logo.png"]


def page_of(rng: random.Random) -> str:
    """A site's pages, requested the way sites are: a few are very popular, most
    are rarely asked for (log-uniform ranks over 5,000 posts), plus static files."""
    if rng.random() < 0.25:
        return rng.choice(STATIC)
    return f"/blog/{int(5000 ** rng.random())}/post"


LIVE_SPAN_SECONDS = 3600


def generate_lines(count: int, seed: int = 42, shape: str = "site") -> bytes:
    """Unique combined lines (from varied hosts): varied offsets, referers and agents,
    over the pages of a 5,000-post site; or, for the "unique" shape, every path a new one
    (a scanner walking random URLs, IDs in paths)."""
    rng = random.Random(seed)
    out = []
    # the last hour, as a busy live server's lines: the writer COPYs them straight into
    # the partition of the present (ingest/live_partition.py). Their offsets move them
    # by up to 13 hours: within that of a month's end, some go through access_log.
    # Until 2026-12-04 they were 0.5 s apart over the last 6 days: a backlog.
    base = time.time() - LIVE_SPAN_SECONDS
    for i in range(count):
        t = time.gmtime(base + i * LIVE_SPAN_SECONDS / count)
        stamp = (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                 f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {rng.choice(OFFSETS)}")
        path = page_of(rng) if shape == "site" else f"/item/{i}/{rng.randrange(10**9):x}"
        if rng.random() < 0.3:
            path += f"?utm_source=feed&id={rng.randrange(10**6)}"
        referer = rng.choice(["-", f"https://www.example.com/blog/{rng.randrange(5000)}/",
                              f"https://search.example.net/?q=term{rng.randrange(20000)}"])
        agent = rng.choice(AGENTS) + f" build/{rng.randrange(400)}"
        status = rng.choice([200] * 8 + [304, 404])
        if i == count - 1:  # RowWatcher's sign that every row is committed
            path, referer = LAST_PATH, "https://www.example.com/"
        out.append(
            f'198.51.{rng.randrange(256)}.{rng.randrange(256)} - - [{stamp}] '
            f'"GET {path} HTTP/1.1" {status} {rng.randrange(100_000)} '
            f'"{referer}" "{agent}"\n'
        )
    return "".join(out).encode()


class ThrowawayDatabase:
    def __init__(self) -> None:
        self.name = f"logpipe_bench_{uuid.uuid4().hex[:10]}"
        self.dsn = f"dbname={self.name}"
        admin(f"CREATE DATABASE {self.name}")
        subprocess.run([sys.executable, "-m", "logpipe", "initdb", "--dsn", self.dsn],
                       check=True, capture_output=True)

    def scalar(self, sql: str) -> object:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone()[0]
        finally:
            conn.close()

    def seconds_to_run(self, sql: str) -> float:
        """Run `sql` and commit; how long that took."""
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        started = time.monotonic()
        with conn.cursor() as cur:
            cur.execute(sql)
        elapsed = time.monotonic() - started
        conn.close()
        return elapsed

    def truncate(self) -> None:
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("TRUNCATE access_log, access_log_rejects, logpipe_progress")
        conn.close()

    def allow(self, allowed: bool) -> None:
        admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS {str(allowed).lower()}")
        if not allowed:
            admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE datname = '{self.name}'")

    def drop(self) -> None:
        admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")
        admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def admin(sql: str) -> None:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


# -- process accounting -------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class BackendSampler(threading.Thread):
    """Samples the CPU time of the writer's PostgreSQL backend(s) while they live."""

    def __init__(self, db: ThrowawayDatabase) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.last: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(ADMIN_DSN)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.done.is_set():
                cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                            "AND application_name = 'logpipe writer'", (self.db.name,))
                for (pid,) in cur.fetchall():
                    try:
                        self.last[pid] = proc_cpu_seconds(pid)
                    except FileNotFoundError:
                        pass
                time.sleep(0.05)
        conn.close()

    def total(self) -> float:
        self.done.set()
        self.join()
        return sum(self.last.values())


# -- sections -------------------------------------------------------------------------


# The path of generate_lines()'s last line. The writer commits a file's lines in order,
# so once that row is visible every row is: found through the report index in a
# millisecond, where polling count(*) over a million rows took most of a core from the
# logger it was timing (76,000 lines/s watched that way, 108,000-131,000 not).
LAST_PATH = "/bench/last-line"
LAST_ROW_SQL = (
    "SELECT EXISTS (SELECT FROM access_log WHERE path = %s AND referer IS NOT NULL"
    " AND octet_length(coalesce(path, '')) + octet_length(coalesce(vhost, ''))"
    " + octet_length(referer) <= 2400)"  # access_log_path_referers' condition
)


class RowWatcher(threading.Thread):
    """Notes when the row of the last line becomes visible: the logger's last commit."""

    def __init__(self, db: ThrowawayDatabase) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.committed_at: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(self.db.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.done.is_set() and self.committed_at is None:
                cur.execute(LAST_ROW_SQL, (LAST_PATH,))
                if cur.fetchone()[0]:
                    self.committed_at = time.monotonic()
                time.sleep(0.02)
        conn.close()


def run_logger(db: ThrowawayDatabase, data_path: Path, spool: Path,
               watch: bool = False) -> dict[str, float]:
    """Pipe the file through logpipe; return wall time and CPU of all its processes,
    and, with `watch` (a file of generate_lines()), how long the logger took to exit
    after its last row was committed."""
    sampler = BackendSampler(db)
    sampler.start()
    watcher = RowWatcher(db)
    if watch:
        watcher.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with open(data_path, "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "logpipe", "--dsn", db.dsn, "--spool-dir", str(spool),
             "--stop-timeout", "3600"], stdin=stdin, capture_output=True, check=False)
    exited = time.monotonic()
    elapsed = exited - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    backend = sampler.total()
    watcher.done.set()
    if watch:
        watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"logpipe failed: {proc.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    committed = watcher.committed_at or exited
    return {"seconds": elapsed, "cpu": cpu, "backend_cpu": backend,
            "exit_after_commit": max(0.0, exited - committed)}


def copy_limit(db: ThrowawayDatabase, data: bytes, installed: bool = False
               ) -> dict[str, float]:
    """One COPY of the rows, already parsed, into a bare table shaped like access_log:
    no index, no trigger, no partition. No loader can beat it. `installed`: into
    access_log itself (its report index, rollup triggers, partitions), a COPY per 4 MiB
    of lines in its own transaction as the writer's, without the fold that moves the
    triggers' pending counts into the rollups: what the schema costs per row."""
    parser = compile_format("combined", source="bench")
    pieces = [parser.parse(chunk).copy_data for chunk in chunks(data)]
    copy_data = "".join(pieces)
    table = "access_log" if installed else "bench_bare"
    conn = psycopg2.connect(db.dsn)
    with conn.cursor() as cur:
        if not installed:
            cur.execute("DROP TABLE IF EXISTS bench_bare;"
                        " CREATE TABLE bench_bare (LIKE access_log INCLUDING DEFAULTS)")
            conn.commit()
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
        cpu_before = proc_cpu_seconds(backend)
        started = time.monotonic()
        for piece in pieces if installed else [copy_data]:
            cur.copy_expert(f"COPY {table} ({', '.join(ACCESS_LOG_COLUMNS)}) FROM STDIN",
                            io.StringIO(piece))
            conn.commit()
        elapsed = time.monotonic() - started
        cpu = proc_cpu_seconds(backend) - cpu_before
        if not installed:
            cur.execute("DROP TABLE bench_bare")
            conn.commit()
    conn.close()
    if installed:
        db.truncate()
    return {"seconds": elapsed, "backend_cpu": cpu}


def ingest_shape(db: ThrowawayDatabase, data: bytes, path: Path, spool: Path, lines: int,
                 repeat: int) -> dict[str, Any]:
    """logpipe, the bare COPY and the COPY into access_log as installed, alternated
    `repeat` times: medians, and the ratios of each round (this VM's speed drifts by 2x
    from one minute to the next, so only runs side by side are compared). Each measure
    starts after a CHECKPOINT: a checkpoint that max_wal_size forces in the middle of
    one (every side writes hundreds of MB of WAL) would slow that side alone."""
    runs, limits, schemas = [], [], []
    fold = 0.0
    for round_ in range(repeat):
        settle(30)
        run = run_logger(db, path, spool.with_name(f"{spool.name}-{round_}"), watch=True)
        got = int(db.scalar("SELECT count(*) FROM access_log"))  # type: ignore[arg-type]
        assert got == lines, (path, got)
        if round_ == 0:
            # a file ends within a second or two, so the writer is told to stop while it
            # loads, and leaves the rollup counts of what it loaded pending (its last
            # fold is cut at 1 s): the next writer or report folds them, timed here
            fold = db.seconds_to_run("SELECT logpipe_rollup_fold()")
        db.truncate()
        runs.append(run)
        settle(30)
        limits.append(copy_limit(db, data))
        settle(30)
        schemas.append(copy_limit(db, data, installed=True))
    ratios = [b["seconds"] / r["seconds"] for r, b in zip(runs, limits)]
    to_installed = [s["seconds"] / r["seconds"] for r, s in zip(runs, schemas)]
    installed = [b["seconds"] / s["seconds"] for s, b in zip(schemas, limits)]

    def median_of(items: list[dict[str, float]], key: str) -> float:
        return statistics.median(item[key] for item in items)

    return {
        "logpipe_lines_per_s": lines / median_of(runs, "seconds"),
        "copy_bare_lines_per_s": lines / median_of(limits, "seconds"),
        "copy_installed_lines_per_s": lines / median_of(schemas, "seconds"),
        "ratio": statistics.median(ratios), "ratios": ratios,
        "ratio_to_installed": statistics.median(to_installed),
        "installed_ratio": statistics.median(installed),
        "exit_after_commit_s": median_of(runs, "exit_after_commit"),
        "fold_left_pending_s": fold,
        "logpipe_cpu_us_per_line": median_of(runs, "cpu") / lines * 1e6,
        "backend_cpu_us_per_line": median_of(runs, "backend_cpu") / lines * 1e6,
        "copy_bare_backend_cpu_us_per_line": median_of(limits, "backend_cpu") / lines * 1e6,
    }


def chunks(data: bytes, size: int = 4 << 20) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


ALP_SQL = ("INSERT INTO access_log (time, remote_host, method, path, query, protocol, status, "
           "bytes, referer, user_agent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


def alp_rows(lines: list[bytes]) -> list[tuple]:
    import apache_log_parser

    parse = apache_log_parser.make_parser(
        '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"')
    rows = []
    for line in lines:
        v = parse(line.decode())
        size = v["response_bytes_clf"]
        rows.append((v["time_received_tz_isoformat"], v["remote_host"], v["request_method"],
                     v["request_url_path"], v["request_url_query"] or None,
                     v["request_http_ver"], int(v["status"]), 0 if size == "-" else int(size),
                     v["request_header_referer"], v["request_header_user_agent"]))
    return rows


def alp_insert_per_line(db: ThrowawayDatabase, lines: list[bytes]) -> float:
    """The approach of a classic script: parse, INSERT and commit, one line at a time."""
    conn = psycopg2.connect(db.dsn)
    started = time.monotonic()
    with conn.cursor() as cur:
        for line in lines:
            cur.execute(ALP_SQL, alp_rows([line])[0])
            conn.commit()
    elapsed = time.monotonic() - started
    conn.close()
    return elapsed


def alp_batched(db: ThrowawayDatabase, lines: list[bytes]) -> float:
    from psycopg2.extras import execute_values

    conn = psycopg2.connect(db.dsn)
    started = time.monotonic()
    with conn.cursor() as cur:
        for i in range(0, len(lines), 1000):
            execute_values(cur, ALP_SQL.replace("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                                "%s"), alp_rows(lines[i:i + 1000]))
            conn.commit()
    elapsed = time.monotonic() - started
    conn.close()
    return elapsed


def backlog(db: ThrowawayDatabase, data_path: Path, spool: Path) -> dict[str, float]:
    db.allow(False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "logpipe", "--dsn", db.dsn, "--spool-dir", str(spool),
         "--stop-timeout", "3600"], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peaks: dict[str, float] = {}

    def sample() -> None:
        for pid, role in [(proc.pid, "reader")] + [(c, "writer") for c in children_of(proc.pid)]:
            try:
                peaks[role] = max(peaks.get(role, 0.0), proc_peak_rss_mb(pid))
            except FileNotFoundError:
                pass

    assert proc.stdin is not None
    with open(data_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            proc.stdin.write(block)
            sample()
    proc.stdin.flush()
    time.sleep(1.0)
    sample()
    started = time.monotonic()
    db.allow(True)
    total = data_path.read_bytes().count(b"\n")
    while int(db.scalar("SELECT count(*) FROM access_log")) < total:  # type: ignore[arg-type]
        sample()
        time.sleep(0.05)
    drain = time.monotonic() - started
    sample()
    proc.stdin.close()
    proc.wait()
    return {"reader_rss_mb": peaks.get("reader", 0.0), "writer_rss_mb": peaks.get("writer", 0.0),
            "drain_seconds": drain, "lines": total}


def latency(db: ThrowawayDatabase, spool: Path, seconds: float = 20.0,
            rate: float = 100.0) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "logpipe", "--dsn", db.dsn, "--spool-dir", str(spool)],
        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        conn = psycopg2.connect(db.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set() or len(seen) < len(written):
                cur.execute("SELECT path FROM access_log WHERE path LIKE '/lat/%'")
                now = time.monotonic()
                for (path,) in cur.fetchall():
                    seen.setdefault(path, now)
                time.sleep(0.01)
        conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    count = int(seconds * rate)
    start = time.monotonic()
    for i in range(count):
        target = start + i / rate
        time.sleep(max(0.0, target - time.monotonic()))
        path = f"/lat/{i}"
        proc.stdin.write(
            f'192.0.2.1 - - [22/Nov/2026:10:00:00 +0000] "GET {path} HTTP/1.1" 200 1 "-" "b"\n'
            .encode())
        proc.stdin.flush()
        written[path] = time.monotonic()
    stop.set()
    watcher.join(timeout=60)
    proc.stdin.close()
    proc.wait()
    delays = sorted(seen[p] - written[p] for p in written if p in seen)
    return {"p50": delays[len(delays) // 2], "p99": delays[int(len(delays) * 0.99) - 1],
            "max": delays[-1], "samples": len(delays)}


def apache_requests_per_second(dsn: str | None, seconds: int) -> float:
    """wrk against a private Apache whose only access log is a plain file, or logpipe
    (dsn given), as the operator who replaces one with the other has it."""
    import re

    sys.path.insert(0, str(ROOT / "tests"))
    from apache_fixture import (  # type: ignore[import-not-found]
        ApacheServer,
        argv_to_piped_command,
    )

    if dsn is None:  # the fixture's ground-truth file log alone
        server = ApacheServer("dbname=unused", log_directives="")
    else:
        server = ApacheServer(dsn, ground_truth=False, log_directives=lambda s: (
            f'CustomLog "|{argv_to_piped_command(s.logger_argv)}" combined'))
    try:
        server.start(wait_logger=dsn is not None)
        out = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{server.port}/index.html"],
            capture_output=True, text=True, check=True).stdout
        server.stop()
    finally:
        server.close()
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    return float(match.group(1))


def settle(limit: float = 120.0) -> None:
    """Let PostgreSQL finish what the sections before left it (a checkpoint of their
    WAL, autovacuum of the rows they loaded), so that it does not take CPU from the runs
    of one side of a comparison and not the other."""
    admin("CHECKPOINT")
    deadline = time.monotonic() + limit
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity"
                        " WHERE backend_type = 'autovacuum worker'")
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.5)
    conn.close()


def apache_impact(runs: int, seconds: int) -> dict[str, float]:
    settle()
    db = ThrowawayDatabase()
    try:
        file_rates, pipe_rates = [], []
        for _ in range(runs):
            file_rates.append(apache_requests_per_second(None, seconds))
            pipe_rates.append(apache_requests_per_second(db.dsn, seconds))
        rows = int(db.scalar("SELECT count(*) FROM access_log"))  # type: ignore[arg-type]
    finally:
        db.drop()
    f, p = statistics.median(file_rates), statistics.median(pipe_rates)
    return {"file_rps": f, "pipe_rps": p, "ratio": p / f, "runs": runs, "rows": rows}


# -- main -------------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="generated lines (1,000,000)")
    ap.add_argument("--sample", type=int, default=5_000,
                    help="lines for the INSERT-per-line approach, scaled (5,000)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["ingest", "unique", "apache", "backlog", "latency"],
                    help="leave a section out (repeatable)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternated rounds of each ingest measure; medians (3)")
    ap.add_argument("--apache-runs", type=int, default=5, help="alternated runs (5)")
    ap.add_argument("--apache-seconds", type=int, default=8, help="seconds per run (8)")
    args = ap.parse_args()

    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "cpu": cpu_model(),
        "python": platform.python_version(), "lines": args.lines,
    }
    rows: list[tuple[str, str, str]] = []
    work = Path(tempfile.mkdtemp(prefix="logpipe-bench-"))
    data = generate_lines(args.lines)
    data_path = work / "access.log"
    data_path.write_bytes(data)
    lines = data.splitlines(keepends=True)
    db = ThrowawayDatabase()
    try:
        if "ingest" not in args.skip:
            shapes = {"site": (data, data_path)}
            if "unique" not in args.skip:
                unique = generate_lines(args.lines, shape="unique")
                (work / "unique.log").write_bytes(unique)
                shapes["unique"] = (unique, work / "unique.log")
            results["ingest"] = {}
            for shape, (shape_data, shape_path) in shapes.items():
                r = ingest_shape(db, shape_data, shape_path, work / f"spool-{shape}",
                                 args.lines, args.repeat)
                results["ingest"][shape] = r  # type: ignore[index]
                lps, limit_lps = r["logpipe_lines_per_s"], r["copy_bare_lines_per_s"]
                label = SHAPE_LABELS[shape]
                rows += [
                    ("ingest", f"{label}: logpipe < file, until committed and exited",
                     f"{lps:,.0f} lines/s  ({r['ratio']:.2f} of the bare COPY)"),
                    ("ingest", f"{label}: that ratio in each of the {args.repeat} rounds",
                     "  ".join(f"{x:.2f}" for x in r["ratios"])),
                    ("ingest", f"{label}: one COPY of the parsed rows into a bare table",
                     f"{limit_lps:,.0f} lines/s"),
                    ("ingest", f"{label}: the same into access_log as installed (no fold)",
                     (f"{r['copy_installed_lines_per_s']:,.0f} lines/s  ({r['installed_ratio']:.2f} of the bare;"
                      f" logpipe {r['ratio_to_installed']:.2f} of it)")),
                    ("ingest", f"{label}: logger exit after its last commit",
                     f"{r['exit_after_commit_s']:.2f} s"),
                    ("ingest", f"{label}: the rollup fold it left pending, run after",
                     f"{r['fold_left_pending_s']:.1f} s"),
                    ("cpu", f"{label}: all logpipe processes, user+sys",
                     f"{r['logpipe_cpu_us_per_line']:.2f} µs/line"),
                    ("cpu", f"{label}: PostgreSQL backend loading logpipe's rows",
                     f"{r['backend_cpu_us_per_line']:.2f} µs/line"),
                    ("cpu", f"{label}: PostgreSQL backend, bare COPY",
                     f"{r['copy_bare_backend_cpu_us_per_line']:.2f} µs/line"),
                ]
            per_line = alp_insert_per_line(db, lines[: args.sample]) / args.sample
            db.truncate()
            batched_n = min(len(lines), 50_000)
            batched = alp_batched(db, lines[:batched_n]) / batched_n
            db.truncate()
            results["alternatives"] = {"alp_insert_per_line_lines_per_s": 1 / per_line,
                                       "alp_batched_lines_per_s": 1 / batched}
            rows += [
                ("ingest", f"apache-log-parser + INSERT/commit per line ({args.sample:,} lines)",
                 f"{1 / per_line:,.0f} lines/s"),
                ("ingest", f"apache-log-parser + batched INSERT ({batched_n:,} lines)",
                 f"{1 / batched:,.0f} lines/s"),
            ]
        if "apache" not in args.skip:
            a = apache_impact(args.apache_runs, args.apache_seconds)
            results["apache"] = a
            rows += [("apache", "requests/s, CustomLog to a plain file", f"{a['file_rps']:,.0f}"),
                     ("apache", "requests/s, CustomLog piped to logpipe", f"{a['pipe_rps']:,.0f}"),
                     ("apache", f"ratio (median of {a['runs']} alternated runs)",
                      f"{a['ratio']:.2f}")]
        if "backlog" not in args.skip:
            b = backlog(db, data_path, work / "spool-backlog")
            results["backlog"] = b
            rows += [("backlog", f"peak RSS, reader ({b['lines']:,} lines, database down)",
                      f"{b['reader_rss_mb']:.1f} MB"),
                     ("backlog", "peak RSS, writer", f"{b['writer_rss_mb']:.1f} MB"),
                     ("backlog", "time to drain once the database is back",
                      (f"{b['drain_seconds']:.1f} s "
                      f"({b['lines'] / b['drain_seconds']:,.0f} lines/s)"))]
            db.truncate()
        if "latency" not in args.skip:
            lat = latency(db, work / "spool-latency")
            results["latency"] = lat
            rows += [("latency", f"write to visible, 100 lines/s ({lat['samples']} lines) p50",
                      f"{lat['p50'] * 1000:.0f} ms"),
                     ("latency", "p99", f"{lat['p99'] * 1000:.0f} ms"),
                     ("latency", "max", f"{lat['max'] * 1000:.0f} ms")]
    finally:
        db.drop()
        subprocess.run(["rm", "-rf", str(work)], check=False)

    print(f"logpipe bench, {results['date']}, {results['cores']} cores, {results['cpu']}, "
          f"Python {results['python']}, {args.lines:,} lines")
    width = max(len(r[1]) for r in rows) if rows else 10
    print(f"{'section':8}  {'measure':{width}}  result")
    for section, measure, value in rows:
        print(f"{section:8}  {measure:{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
