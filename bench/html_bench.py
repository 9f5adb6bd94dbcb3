"""How long does `logpipe report html --since 30d` take on a month of a busy site, and
where does the time go?

    python bench/html_bench.py [--rows 10000000] [--repeat 3] [--admin-dsn dbname=postgres]
    python bench/html_bench.py --dsn dbname=COPY  # a database made already (see below)

1. creates a throwaway database and fills it with reports_bench.py's generated rows
   (30 days up to now, 2 vhosts, Zipf-like paths, referers and clients), then runs
   `logpipe initdb` (index, rollups);
2. runs the real command, `logpipe report html --since 30d -o FILE`, as the database's
   owner: once cold (it folds the rollups and stores the visit summaries of the whole
   days, as `logpipe report visitors` does), then --repeat times (median);
3. times each panel's query in-process (what data.collect runs), the page build, and
   prints the file's size;
4. drops the database (also on errors and Ctrl-C), unless --keep.

With --dsn it skips 1 and 4 and uses that database as it is (`logpipe initdb` run on
it with this checkout's code; e.g. a copy of a generated one, CREATE DATABASE ...
TEMPLATE ..., which takes a minute where generating takes ten).

The panels that read daily summaries (sql/050_daily_summaries.sql) are also timed
with their live query over access_log alone, and a full scan (count(*)) of the window
is the yardstick for both.

Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from reports_bench import bench_database, connect, generate

from logpipe.reports.filters import Filters, resolve_times
from logpipe.reports.html.data import collect
from logpipe.reports.html.page import build_page
from logpipe.reports.queries.daily import SUMMARY_REPORTS
from logpipe.reports.run import QUERIES, prepare_session, run_report
from logpipe.reports.times import parse_time
from logpipe.store import database as db

PANELS = ["traffic", "status", "pages", "referers", "broken-links", "agents", "offenders",
          "visitors", "channels", "countries"]


def run_html(dsn: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "logpipe", "report", "html", "--since", "30d",
                    "--dsn", dsn, "-o", str(out)], check=True, capture_output=True)
    return time.perf_counter() - t0


def panel_times(dsn: str) -> list[tuple[str, float]]:
    """Each report collect() runs, once, with the window of --since 30d."""
    conn = connect(dsn)
    rows = []
    with conn.cursor() as cur:
        prepare_session(cur)
        since, _ = resolve_times(cur, parse_time("30d"), None)
        base = Filters(since=since)
        t0 = time.perf_counter()
        cur.execute("SELECT count(*) FROM access_log WHERE time >= %s", (since,))
        rows.append(("full scan of the window, count(*) (yardstick)",
                     time.perf_counter() - t0))
        for name in PANELS:
            limit = None if name in ("traffic", "status", "visitors") else 20
            filters = dataclasses.replace(base, by="day", limit=limit)
            t0 = time.perf_counter()
            run_report(cur, name, filters)
            rows.append((name, time.perf_counter() - t0))
            if name in SUMMARY_REPORTS:  # the same rows from access_log alone
                t0 = time.perf_counter()
                cur.execute(*QUERIES[name](filters))
                rows.append((f"{name}, live query (no summaries)", time.perf_counter() - t0))
        t0 = time.perf_counter()
        data = collect(cur, Filters(since=since), None)
        rows.append(("collect() in all, one connection", time.perf_counter() - t0))
        second = connect(dsn)  # as `report html` does: the visit panels on a second one
        with second.cursor() as helper:
            prepare_session(helper)
            t0 = time.perf_counter()
            collect(cur, Filters(since=since), None, helper)
            rows.append(("collect() in all, two connections", time.perf_counter() - t0))
        second.close()
        t0 = time.perf_counter()
        build_page(data, "bench")
        rows.append(("build_page()", time.perf_counter() - t0))
    conn.close()
    return rows


def bench(dsn: str, args: argparse.Namespace) -> None:
    if not args.dsn:
        conn = connect(dsn)
        with conn.cursor() as cur:
            cur.execute((ROOT / "sql" / "001_tables.sql").read_text())
        print(f"generating {args.rows:,} rows", flush=True)
        generate(dsn, args.rows, args.chunk)
        db.initdb(dsn)
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        conn.close()
    out = Path(tempfile.mkdtemp()) / "report.html"
    cold = run_html(dsn, out)
    warm = statistics.median(run_html(dsn, out) for _ in range(args.repeat))
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM access_log")
        total = cur.fetchone()[0]
    conn.close()
    print(f"\n{total:,} rows; `logpipe report html --since 30d`:\n")
    print("| step | seconds |\n|---|---:|")
    print(f"| the command, first run (folds, stores visit and daily summaries) | {cold:.2f} |")
    print(f"| the command, median of {args.repeat} more | {warm:.2f} |")
    for name, seconds in panel_times(dsn):
        print(f"| {name} | {seconds:.2f} |")
    print(f"| file size | {out.stat().st_size / 1024:,.0f} KiB |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--chunk", type=int, default=1_000_000, help="rows per INSERT")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--admin-dsn", default=os.environ.get("LOGPIPE_BENCH_ADMIN_DSN",
                                                         "dbname=postgres"))
    p.add_argument("--keep", action="store_true", help="do not drop the database")
    p.add_argument("--dsn", help="use this database as it is: no rows generated, not dropped")
    args = p.parse_args()
    if args.dsn:
        bench(args.dsn, args)
        return 0
    with bench_database(args.admin_dsn, "logpipe_html_bench", args.keep) as dsn:
        bench(dsn, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
