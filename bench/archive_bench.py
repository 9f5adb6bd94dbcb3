#!/usr/bin/env python3
"""Archiving a partition as Parquet: rows/s beside a plain `COPY ... TO` CSV file of the
same rows, file sizes, and the archiver's peak RSS.

    python3 bench/archive_bench.py [--rows 1000000] [--rounds 3]

Needs a local PostgreSQL (trust auth, `dbname=postgres` reachable) and the archive
extra (pyarrow). A throwaway database gets one month's partition of --rows generated
rows (a site's pages, varied hosts, referers and agents, a JSON `extra` on one row in
ten), dropped at the end. Each round, alternated:
  parquet   `logpipe archive --before 2019-02-01 --archive DIR` as its own process:
            the COPY, the CSV parse, zstd Parquet, fsync and rename (prune --archive
            does the same, then drops the partition); peak RSS from wait4
  csv       COPY (SELECT the same columns) TO STDOUT (FORMAT csv) into a file, fsync'ed,
            from this process: what PostgreSQL's own export costs
Seconds are wall time, median of the rounds, on a machine maybe shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from run import ThrowawayDatabase

PARTITION = "access_log_20190101_20190201"
COLUMNS = ("time, vhost, remote_host, remote_user, method, path, query, protocol, status,"
           " bytes, referer, user_agent, duration_us, bytes_in, bytes_out, is_bot, request,"
           " extra, source, loaded_at, country")
FILL = f"""
INSERT INTO {PARTITION} ({COLUMNS})
SELECT '2019-01-01'::timestamptz + (i * interval '1 second') * (2678399.0 / %(total)s),
       'www.example.com',
       '198.51.' || (i %% 250) || '.' || (i * 7 %% 250),
       NULL, 'GET',
       '/blog/' || (i * 2654435761 %% 5000) || '/',
       CASE WHEN i %% 3 = 0 THEN 'utm_source=' || (i %% 17) END,
       'HTTP/1.1', (ARRAY[200, 200, 200, 304, 404, 500])[i %% 6 + 1], i %% 90000,
       CASE WHEN i %% 4 > 0 THEN 'https://ref' || (i %% 300) || '.example/p?q=' || i END,
       'Mozilla/5.0 (X11; Linux x86_64; rv:' || (i %% 40 + 90) || '.0) Firefox/'
           || (i %% 40 + 90) || '.0',
       i %% 100000, 400 + i %% 700, 600 + i %% 90000, i %% 11 = 0, NULL,
       CASE WHEN i %% 10 = 0 THEN jsonb_build_object('port', 443, 'pid', i %% 30000) END,
       'web1', '2019-02-01'::timestamptz, 'DE'
  FROM generate_series(%(start)s, %(end)s - 1) i
"""


def fill(dsn: str, rows: int) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {PARTITION} PARTITION OF access_log"
                    " FOR VALUES FROM ('2019-01-01 00:00+00') TO ('2019-02-01 00:00+00')")
        for start in range(0, rows, 1_000_000):  # in pieces: bounded statements
            cur.execute(FILL, {"total": rows, "start": start,
                               "end": min(rows, start + 1_000_000)})
    conn.close()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    conn.cursor().execute(f"VACUUM (FREEZE, ANALYZE) {PARTITION}")  # no hint-bit writes later
    conn.close()


def parquet_round(dsn: str, out: Path) -> tuple[float, int, int]:
    """Seconds, bytes written, peak RSS (bytes) of `logpipe archive`."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "logpipe", "archive", "--dsn", dsn,
                             "--before", "2019-02-01", "--archive", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"logpipe archive failed: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    return seconds, size, usage.ru_maxrss * 1024


def csv_round(dsn: str, out: Path) -> tuple[float, int]:
    conn = psycopg2.connect(dsn)
    started = time.perf_counter()
    with conn.cursor() as cur, open(out, "wb") as sink:
        cur.copy_expert(f"COPY (SELECT {COLUMNS} FROM ONLY {PARTITION}) TO STDOUT"
                        " WITH (FORMAT csv)", sink)
        sink.flush()
        os.fsync(sink.fileno())
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, out.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    db = ThrowawayDatabase()
    scratch = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    try:
        started = time.perf_counter()
        fill(db.dsn, args.rows)
        print(f"{args.rows:,} rows in {PARTITION} in {time.perf_counter() - started:.0f} s; "
              f"table {db.scalar(f'SELECT pg_total_relation_size({PARTITION!r})') / 1e6:,.0f} MB",
              flush=True)
        parquet, csv = [], []
        for _ in range(args.rounds):
            parquet.append(parquet_round(db.dsn, scratch / "archive"))
            csv.append(csv_round(db.dsn, scratch / "rows.csv"))
            print(f"  round: parquet {parquet[-1][0]:.1f} s, csv {csv[-1][0]:.1f} s", flush=True)
        p_seconds = statistics.median(r[0] for r in parquet)
        c_seconds = statistics.median(r[0] for r in csv)
        rss = max(r[2] for r in parquet)
        print()
        print(f"| method ({args.rows:,} rows, median of {args.rounds}) | rows/s | seconds |"
              " file | peak RSS |")
        print("|---|---:|---:|---:|---:|")
        print(f"| logpipe archive: zstd Parquet | {args.rows / p_seconds:,.0f} | {p_seconds:.1f}"
              f" | {parquet[0][1] / 1e6:,.0f} MB | {rss / 1e6:,.0f} MB |")
        print(f"| COPY ... TO a CSV file | {args.rows / c_seconds:,.0f} | {c_seconds:.1f}"
              f" | {csv[0][1] / 1e6:,.0f} MB | |")
        print(f"\nParquet/CSV speed: {c_seconds / p_seconds:.2f}; this process's own peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:,.0f} MB")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        db.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
