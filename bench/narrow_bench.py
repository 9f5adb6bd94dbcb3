#!/usr/bin/env python3
"""What a batch with refused rows costs: COPYs and seconds to narrow it down.

    python3 bench/narrow_bench.py [--lines 20000] [--bad 1,10,100]

Needs a local PostgreSQL (trust auth, `dbname=postgres` reachable); each case runs
in a throwaway database, dropped at the end. One batch of --lines combined lines
(the writer's default batch) with k bad ones spread through it, loaded with
load_lines() as the writer does, for three kinds of refusal:
  value     a CHECK on access_log refuses the row: the error names its COPY line
  trigger   a statement trigger RAISEs when the batch holds the row: no line named
  conflict  %b of 2^62, and a statement trigger that refuses a batch whose bytes add
            up to more (as a sum that overflows would): each bad row passes alone,
            fails with others, and no line is named

COPYs counts every COPY into access_log, rolled back or not, the clean first
attempt included. Beside it: k log2(n), the bound's shape, and n, what trying
the rows one by one would take. Seconds are wall time on a machine maybe shared.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import psycopg2

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from run import ThrowawayDatabase

from logpipe.parse import compile_format
from logpipe.store.copy import load_lines

COUNT_COPIES_SQL = """
CREATE SEQUENCE bench_copies;
CREATE FUNCTION bench_count_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM nextval('bench_copies'); RETURN NULL; END $$;
CREATE TRIGGER bench_count_copy BEFORE INSERT ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION bench_count_copy();
"""
KINDS = {
    "value": "ALTER TABLE access_log ADD CONSTRAINT bench_refuse CHECK (path <> '/bad')",
    "trigger": """
        CREATE FUNCTION bench_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT FROM new_rows WHERE path = '/bad') THEN
                RAISE EXCEPTION 'refused';
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER bench_refuse AFTER INSERT ON access_log REFERENCING NEW TABLE AS
            new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_refuse();""",
    "conflict": """
        CREATE FUNCTION bench_refuse_sum() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT sum(bytes) FROM new_rows) > 4611686018427387904 THEN
                RAISE EXCEPTION 'bytes add up to more than 2^62';
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER bench_refuse_sum AFTER INSERT ON access_log REFERENCING NEW TABLE
            AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_refuse_sum();""",
}


def batch(lines: int, bad: int, kind: str) -> bytes:
    every = max(lines // bad, 1)
    bad_lines = {every // 2 + j * every for j in range(bad)}
    out = []
    for i in range(lines):
        path, size = f"/page/{i}", i % 5000
        if i in bad_lines:
            path, size = ("/bad", size) if kind != "conflict" else (path, 2**62)
        stamp = f"10/Oct/2024:13:{i // 60 % 60:02d}:{i % 60:02d} +0000"
        out.append(f'192.0.2.{i % 250 + 1} - - [{stamp}] "GET {path} HTTP/1.1" 200 {size} '
                   f'"-" "agent/{i % 11}"\n')
    return "".join(out).encode()


def run_case(lines: int, bad: int, kind: str) -> tuple[int, int, int, float]:
    db = ThrowawayDatabase()  # created, with logpipe's schema
    try:
        conn = psycopg2.connect(db.dsn)
        with conn.cursor() as cur:
            cur.execute(COUNT_COPIES_SQL + KINDS[kind])
        conn.commit()
        data = batch(lines, bad, kind)
        start = time.perf_counter()
        with conn.cursor() as cur:
            rows, rejects = load_lines(cur, compile_format("combined"), data, None)
        conn.commit()
        took = time.perf_counter() - start
        with conn.cursor() as cur:
            cur.execute("SELECT last_value FROM bench_copies")
            copies = cur.fetchone()[0]
        conn.close()
        return rows, rejects, copies, took
    finally:
        db.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--bad", default="1,10,100", help="numbers of bad lines, comma-separated")
    args = parser.parse_args()
    n = args.lines
    print(f"{'kind':<9} {'n':>7} {'k':>5} {'loaded':>7} {'rejects':>7} {'COPYs':>7} "
          f"{'k log2 n':>8} {'one by one':>10} {'seconds':>8}")
    for kind in KINDS:
        for k in (int(b) for b in args.bad.split(",")):
            rows, rejects, copies, took = run_case(n, k, kind)
            print(f"{kind:<9} {n:>7} {k:>5} {rows:>7} {rejects:>7} {copies:>7} "
                  f"{k * math.log2(n):>8.0f} {n:>10} {took:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
