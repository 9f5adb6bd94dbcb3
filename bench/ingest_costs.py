#!/usr/bin/env python3
"""Where the PostgreSQL backend's time goes per row loaded: COPY of the same rows into
access_log as `logpipe initdb` makes it (and into its partition of the present, as the
writer loads live lines), then with its parts taken away one by one.

    python3 bench/ingest_costs.py [--rows 200000] [--batch 20000]

Measures the CPU time of the backend itself (/proc/PID/stat: user + system), not the
wall clock, so the figures hold on a busy machine too (the server must run on this
host). Each configuration: the best of 3 loads of the rows in transactions of --batch
rows, as the writer loads them. The database is made and dropped here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import reports_bench  # the generated rows of the reports bench, and its batched COPY
from run import ThrowawayDatabase  # a database made by `logpipe initdb`, dropped after

# Each step keeps what the ones before it took away.
STEPS = [
    ("access_log as installed", []),
    ("rollup trigger capturing the rows, doing nothing with them",
     [("CREATE OR REPLACE FUNCTION logpipe_rollup_add() RETURNS trigger LANGUAGE plpgsql"
       " AS $$ BEGIN RETURN NULL; END $$")]),
    ("no rollup trigger", ["ALTER TABLE access_log DISABLE TRIGGER access_log_rollup_insert"]),
    ("no report index for oversize rows", ["DROP INDEX access_log_oversize_referers"]),
    ("no report index", ["DROP INDEX access_log_path_referers"]),
    ("no index at all (partitions only)", ["DROP INDEX access_log_time_brin"]),
]

# The report index as schema version 3 made it, carrying vhost and referer: no btree
# deduplication (sql/upgrade_004_path_index_without_include.sql). Measured beside the
# installed one, into the partition of the present.
INDEX_CONDITION = ("referer IS NOT NULL AND octet_length(coalesce(path, ''))"
                   " + octet_length(coalesce(vhost, '')) + octet_length(referer) <= 2400")
WITH_INCLUDE = [
    "DROP INDEX access_log_path_referers",
    ("CREATE INDEX access_log_path_referers ON access_log (path) INCLUDE (vhost, referer)"
     f" WHERE {INDEX_CONDITION}"),
]


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=20_000)
    args = p.parse_args()
    database = ThrowawayDatabase()
    try:
        conn = reports_bench.connect(database.dsn)
        lines = reports_bench.copy_data(conn, args.rows)
        with conn.cursor() as cur:
            cur.execute("SET work_mem = '32MB'; SET synchronous_commit = off")  # as the writer
            cur.execute("CREATE TABLE bare (LIKE access_log INCLUDING DEFAULTS)")
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]

        def measure(table: str) -> float:
            best = float("inf")
            for _ in range(3):
                with conn.cursor() as cur:
                    cur.execute(f"TRUNCATE {table}")
                before = backend_cpu(pid)
                reports_bench.copy_batches(conn, lines, args.batch, table)
                best = min(best, backend_cpu(pid) - before)
            return best / len(lines) * 1e6

        print(f"backend CPU per row, {len(lines):,} rows in transactions of {args.batch:,}"
              " (best of 3)\n")
        print("| access_log | µs/row | vs. the step before |")
        print("|---|---:|---:|")
        before = None
        for label, setup in STEPS:
            with conn.cursor() as cur:
                for sql in setup:
                    cur.execute(sql)
            us = measure("access_log")
            step = "" if before is None else f"{us - before:+.2f}"
            print(f"| {label} | {us:.2f} | {step} |", flush=True)
            if before is None:  # as the writer loads live lines: no routing, its trigger
                with conn.cursor() as cur:
                    cur.execute("SELECT partition::text FROM logpipe_partitions()"
                                " WHERE range_from <= now() AND range_to > now()")
                    live_table = cur.fetchone()[0]
                live = measure(live_table)
                print(f"| (the same COPY'd into the partition of the present) | {live:.2f}"
                      f" | {live - us:+.2f} |", flush=True)
                with conn.cursor() as cur:
                    # put back afterwards as installed (sql/010_indexes.sql), on every
                    # partition: the catalog spells a partitioned index ON ONLY
                    cur.execute("SELECT replace(pg_get_indexdef("
                                "'access_log_path_referers'::regclass), ' ON ONLY ', ' ON ')")
                    as_installed = ["DROP INDEX access_log_path_referers", cur.fetchone()[0]]
                    for sql in WITH_INCLUDE:
                        cur.execute(sql)
                carried = measure(live_table)
                with conn.cursor() as cur:
                    for sql in as_installed:
                        cur.execute(sql)
                print(f"| (into the partition, the report index carrying vhost and referer,"
                      f" as schema 3) | {carried:.2f} | {carried - live:+.2f} |", flush=True)
            before = us
        bare = measure("bare")
        print(f"| a bare table, not partitioned (the limit) | {bare:.2f} | {bare - before:+.2f} |")
        conn.close()
    finally:
        database.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
