"""How fast are the reports on 10 million rows, and what does the rollup cost at ingest?

    python bench/reports_bench.py [--rows 10000000] [--admin-dsn dbname=postgres]

1. creates a throwaway database (logpipe_bench_PID) with the table of 001_tables.sql;
2. fills it with generated rows (INSERT ... SELECT generate_series): 30 days in time
   order, 2 vhosts, ~50k paths with a Zipf-like popularity, ~20k distinct referers
   (40% none, 35% the site's own pages, 25% external), 10% bots, 5% 4xx/5xx;
3. runs `logpipe initdb` (the real one: builds the index and the daily rollup);
4. times reports through run_report(), the code `logpipe report` runs, with a
   warm cache: the median of --repeat runs after one warm-up run;
5. times COPY of 1M rows in the writer's batches (20,000 rows per transaction) with
   and without the rollup triggers, and without the referer index too;
6. drops the database (also on errors and Ctrl-C), unless --keep.

Prints Markdown tables (copied into bench/RESULTS-reports.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from logpipe.parse.columns import ACCESS_LOG_COLUMNS
from logpipe.reports.catalog import REPORTS
from logpipe.reports.filters import Filters, resolve_times
from logpipe.reports.queries.series import TRAFFIC, from_access_log
from logpipe.reports.run import prepare_session, run_report
from logpipe.reports.times import parse_time
from logpipe.store import database as db
from logpipe.store.copy import COPY_INTO_SQL

HUMAN_AGENTS = [
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/{v}.0.0.0 Safari/537.36" for v in range(100, 125)
] + [
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 "
    f"(KHTML, like Gecko) Version/17.{v} Mobile/15E148 Safari/604.1" for v in range(15)
]
BOT_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
]

# One generated row per i in [lo, hi) of `total`, in time order over the last `span`.
# Popularity is log-uniform (floor(n^u)), i.e. Zipf-like with exponent 1.
ROWS_SQL = """
SELECT now() - %(span)s::interval + %(span)s::interval * (i::float8 / %(total)s)
           - random() * interval '2 seconds' AS time,
       vhost,
       '10.' || (h >> 16) || '.' || ((h >> 8) & 255) || '.' || (h & 255) AS remote_host,
       NULL::text AS remote_user,
       'GET' AS method,
       CASE WHEN p = 1 THEN '/' ELSE '/section' || (p %% 20) || '/page-' || p || '.html' END
           AS path,
       CASE WHEN q < 0.1 THEN 'utm_source=x' END AS query,
       'HTTP/1.1' AS protocol,
       (CASE WHEN s < 0.85 THEN 200 WHEN s < 0.92 THEN 304 WHEN s < 0.95 THEN 301
             WHEN s < 0.99 THEN 404 ELSE 500 END)::smallint AS status,
       (random() * 50000)::bigint AS bytes,
       CASE WHEN r < 0.40 THEN NULL
            WHEN r < 0.75 THEN 'https://' || vhost || CASE WHEN rp = 1 THEN '/' ELSE
                 '/section' || (rp %% 20) || '/page-' || rp || '.html' END
            WHEN re = 1 THEN 'https://www.google.com/'
            ELSE 'https://site' || re || '.example.net/' || (re %% 7) END AS referer,
       -- one agent per client (and one as a bot), so that clients are visitors
       CASE WHEN b THEN (%(bots)s::text[])[1 + h %% 8]
            ELSE (%(humans)s::text[])[1 + h %% 40] END AS user_agent,
       (random() * 200000)::bigint AS duration_us,
       NULL::bigint AS bytes_in, NULL::bigint AS bytes_out,
       b AS is_bot, NULL::text AS request, NULL::jsonb AS extra, 'bench' AS source,
       (ARRAY['US', 'DE', 'FR', 'GB', 'CN', 'BR', 'IN', 'JP', NULL])[1 + h %% 9] AS country
  FROM (SELECT i,
               CASE WHEN random() < 0.7 THEN 'www.example.com' ELSE 'shop.example.com' END
                   AS vhost,
               floor(exp(random() * ln(50000)))::int AS p,
               floor(exp(random() * ln(5000)))::int AS rp,
               floor(exp(random() * ln(10000)))::int AS re,
               floor(exp(random() * ln(200000)))::int AS h,
               random() AS r, random() AS s, random() AS q, random() < 0.10 AS b
          FROM generate_series(%(lo)s, %(hi)s - 1) AS i) g
"""


def connect(dsn: str) -> Any:
    conn = db.connect(dsn, "logpipe bench")
    conn.autocommit = True
    return conn


def generate(dsn: str, rows: int, chunk: int) -> float:
    columns = ", ".join(ACCESS_LOG_COLUMNS)
    t0 = time.perf_counter()
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        for lo in range(0, rows, chunk):
            hi = min(rows, lo + chunk)
            cur.execute(
                f"INSERT INTO access_log ({columns}) " + ROWS_SQL,
                {"span": "30 days", "total": rows, "lo": lo, "hi": hi,
                 "bots": BOT_AGENTS, "humans": HUMAN_AGENTS},
            )
            print(f"  {hi:>11,} rows  {time.perf_counter() - t0:6.1f} s", flush=True)
    conn.close()
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--chunk", type=int, default=1_000_000, help="rows per INSERT")
    p.add_argument("--copy-rows", type=int, default=1_000_000, help="rows per COPY test")
    p.add_argument("--batch", type=int, default=20_000, help="rows per COPY transaction")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--admin-dsn", default=os.environ.get("LOGPIPE_BENCH_ADMIN_DSN",
                                                         "dbname=postgres"))
    p.add_argument("--keep", action="store_true", help="do not drop the database")
    args = p.parse_args()
    with bench_database(args.admin_dsn, "logpipe_bench", args.keep) as dsn:
        return bench(dsn, args)


@contextlib.contextmanager
def bench_database(admin_dsn: str, prefix: str, keep: bool) -> Iterator[str]:
    """A new empty database's DSN, dropped afterwards (also on errors, Ctrl-C and
    SIGTERM) unless `keep`."""
    name = f"{prefix}_{os.getpid()}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: below
    admin = connect(admin_dsn)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{admin_dsn} dbname={name}"
    finally:
        if keep:
            print(f"\nkept database {name}")
        else:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            print(f"\ndropped database {name}")
        admin.close()


def bench(dsn: str, args: argparse.Namespace) -> int:
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute((ROOT / "sql" / "001_tables.sql").read_text())
    print(f"generating {args.rows:,} rows")
    gen_s = generate(dsn, args.rows, args.chunk)
    t0 = time.perf_counter()
    db.initdb(dsn)
    initdb_s = time.perf_counter() - t0
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE access_log")
        cur.execute("VACUUM ANALYZE logpipe_rollup_daily")
        cur.execute("VACUUM ANALYZE logpipe_pages")
        cur.execute("VACUUM ANALYZE logpipe_rollup_quarter")
        # the visitor reports' daily summaries, made once per day (`logpipe report`
        # makes those it lacks as it runs; here ahead, timed apart)
        t0 = time.perf_counter()
        cur.execute("SET work_mem = '64MB'")
        cur.execute("SELECT logpipe_visits_refresh()")
        summarized = cur.fetchone()[0]
        print(f"visit summaries of {summarized} days made in "
              f"{time.perf_counter() - t0:.1f} s")
        # and today's whole hours, as the writer keeps them (from scratch here: once a
        # day; the writer adds each hour's rows once)
        t0 = time.perf_counter()
        cur.execute("SELECT logpipe_visits_refresh_hours()")
        print(f"visit summary of today's {cur.fetchone()[0]} whole hours made in "
              f"{time.perf_counter() - t0:.1f} s")
        cur.execute("VACUUM ANALYZE logpipe_visit_daily, logpipe_visit_hourly,"
                    " logpipe_visit_countries, logpipe_visit_channels, logpipe_visit_days,"
                    " logpipe_visit_lasts, logpipe_visit_prefix, logpipe_visit_state")
        # the daily summaries of broken-links, offenders, agents and referers
        # (sql/050_daily_summaries.sql), likewise made once, ahead
        t0 = time.perf_counter()
        cur.execute("SELECT logpipe_daily_refresh()")
        print(f"daily summaries of {cur.fetchone()[0]} days made in "
              f"{time.perf_counter() - t0:.1f} s")
        cur.execute("VACUUM ANALYZE logpipe_daily_days, logpipe_daily_offenders,"
                    " logpipe_daily_clients, logpipe_daily_agents, logpipe_daily_referers,"
                    " logpipe_daily_broken, logpipe_daily_page_hours, logpipe_daily_path_referers")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('logpipe_daily_page_hours')),"
                    " pg_size_pretty(pg_total_relation_size('logpipe_daily_path_referers')),"
                    " (SELECT count(*) FROM logpipe_daily_path_referers)")
        hours_size, path_size, path_rows = cur.fetchone()
        print(f"  page hours {hours_size}; path referers {path_size} ({path_rows:,} rows),"
              " with their indexes")
        # access_log and its index are partitioned: their sizes are their partitions'
        cur.execute("SELECT pg_size_pretty((SELECT sum(pg_relation_size(relid))"
                    " FROM pg_partition_tree('access_log'))),"
                    " pg_size_pretty((SELECT sum(pg_relation_size(relid))"
                    " FROM pg_partition_tree('access_log_path_referers'))),"
                    " pg_size_pretty(pg_total_relation_size('logpipe_rollup_daily')"
                    " + pg_total_relation_size('logpipe_pages')"
                    " + pg_total_relation_size('logpipe_rollup_quarter')),"
                    " (SELECT count(*) FROM logpipe_rollup_daily),"
                    " (SELECT count(*) FROM logpipe_pages),"
                    " (SELECT count(*) FROM logpipe_rollup_quarter)")
        table_size, index_size, rollup_size, daily_rows, pages_rows, quarter_rows = \
            cur.fetchone()
        cur.execute("SELECT path, count(*) FROM access_log GROUP BY path ORDER BY 2 DESC")
        by_rank = cur.fetchall()
    print(f"\ninserted in {gen_s:.0f} s; initdb (index + rollup build) {initdb_s:.0f} s; "
          f"table {table_size}, (path) index {index_size}, "
          f"rollups {rollup_size} ({daily_rows:,} daily page rows, {pages_rows:,} pages, "
          f"{quarter_rows:,} quarter-hour rows)\n")

    conn.set_session(readonly=True, autocommit=True)
    cur = conn.cursor()
    prepare_session(cur)  # as `logpipe report` does

    def run(name: str, since: str | None = None, **filters: Any) -> Callable[[], Any]:
        spec = parse_time(since) if since else None

        def go() -> Any:
            f = Filters(limit=REPORTS[name].default_limit, **filters)
            f.since, f.until = resolve_times(cur, spec, None)
            return run_report(cur, name, f)[1]

        return go

    def run_all(since: str) -> Callable[[], Any]:  # pages --all
        spec = parse_time(since)

        def go() -> Any:
            f = Filters(limit=REPORTS["pages"].default_limit)
            f.since, f.until = resolve_times(cur, spec, None)
            return run_report(cur, "pages", f, everything=True)[1]

        return go

    def plain_pages() -> Any:  # what `pages --since 30d` costs without the rollup
        cur.execute("SELECT vhost, path, count(*) AS hits FROM access_log"
                    " WHERE status < 400 AND time >= now() - interval '30 days'"
                    " GROUP BY vhost, path ORDER BY hits DESC LIMIT 20")
        return cur.fetchall()

    cases: list[tuple[str, str, Callable[[], Any]]] = []
    for rank in (1, 2, 10, 100, 1000, 10000):
        path, hits = by_rank[rank - 1]
        cases.append((f"referers --path P (P = rank {rank}, {hits:,} requests)",
                      "<= 100 ms", run("referers", path=path)))
    top = by_rank[0][0]
    def raw_traffic() -> Any:  # what `traffic --since 30d` costs without the rollup
        f = Filters(since=None)
        f.since, _ = resolve_times(cur, parse_time("30d"), None)
        sql, params = from_access_log(TRAFFIC, f)
        cur.execute(sql, params)
        return cur.fetchall()

    def full_scan() -> Any:  # what every ratio below compares with
        cur.execute("SELECT count(*), sum(bytes) FROM access_log")
        return cur.fetchall()

    cases.insert(0, ("full scan of access_log (count, sum of bytes)", "", full_scan))
    # 29 days back at 01:00 UTC: a window that begins early in a whole UTC day, whatever
    # the time the bench runs at (--since 30d begins at that time of day)
    early = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=29)).isoformat() \
        + "T01:00:00+00:00"
    # 29 days back at noon UTC: the most of a day a window takes part of (12 hours, the
    # shorter side of 12:00, see pages._split), whatever the time the bench runs at. The
    # rows begin 30 days before the bench runs, so --since 30d takes none of its first
    # day before 12:00 UTC, and up to 12 hours of it after.
    noon = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=29)).isoformat() \
        + "T12:00:00+00:00"
    cases += [
        (f"referers --path {top} --since 30d", "<= 0.05 of the scan",
         run("referers", "30d", path=top)),
        (f"referers --path {top} --since 7d --humans", "", run("referers", "7d", path=top,
                                                               bots=False)),
        ("pages --since 30d", "<= 0.05 of the scan", run("pages", "30d")),
        (f"pages --since {noon} (12 hours of its first day)",
         "<= 0.05 of the scan", run("pages", noon)),
        ("pages --since 30d, plain aggregation (no rollup)", "", plain_pages),
        ("pages --since 7d --humans", "", run("pages", "7d", bots=False)),
        ("pages --since 36h", "", run("pages", "36h")),
        ("pages (all time)", "", run("pages")),
        ("pages --all --since 30d (every request served, as pages counted before)", "",
         run_all("30d")),
        ("static --since 30d", "", run("static", "30d")),
        ("tree --since 30d", "", run("tree", "30d")),
        ("traffic --since 30d", "<= 0.05 of the scan", run("traffic", "30d")),
        ("traffic --since 30d, from access_log (no rollup)", "", raw_traffic),
        ("traffic --since 30d --by hour --bots", "", run("traffic", "30d", by="hour", bots=True)),
        ("status --since 30d", "<= 0.05 of the scan", run("status", "30d")),
        ("status --since 30d --path P (rank 10: no rollup)", "",
         run("status", "30d", path=by_rank[9][0])),
        ("broken-links --since 30d", "", run("broken-links", "30d")),
        ("offenders --since 30d", "", run("offenders", "30d")),
        ("agents --since 30d", "", run("agents", "30d")),
        ("agents --since 1d", "", run("agents", "1d")),
        ("visitors --since 30d", "<= 1 s", run("visitors", "30d")),
        ("visitors --since 30d --by hour --humans", "", run("visitors", "30d", by="hour",
                                                             bots=False)),
        ("visitors --since 7d", "", run("visitors", "7d")),
        ("countries --since 30d", "<= 300 ms", run("countries", "30d")),
        ("channels --since 30d", "<= 1 s", run("channels", "30d")),
        # the window's first day from 01:00: nearly all of that day in the window
        (f"channels --since {early}", "<= 1 s", run("channels", early)),
        (f"countries --since {early}", "<= 300 ms", run("countries", early)),
        (f"visitors --since {early}", "<= 1 s", run("visitors", early)),
        ("visitors --since 1d (today: its whole hours from their summary)", "",
         run("visitors", "1d")),
    ]
    print(f"| report ({args.rows:,} rows, warm cache, median of {args.repeat}) "
          "| target | ms | of the scan | rows |")
    print("|---|---|---:|---:|---:|")
    scan_ms = None
    for label, target, fn in cases:
        ms, rows = timed(fn, args.repeat)
        scan_ms = scan_ms or ms  # the first case is the full scan
        print(f"| {label} | {target} | {ms:,.0f} | {ms / scan_ms:.3f} | {len(rows)} |",
              flush=True)
    # what visitors costs without its summaries (--source reads access_log alone): once
    t0 = time.perf_counter()
    run("visitors", "30d", sources=("bench",))()
    print(f"\nvisitors --since 30d --source bench (from access_log, no summaries; one run): "
          f"{(time.perf_counter() - t0) * 1000:,.0f} ms")
    cur.close()
    conn.set_session(readonly=False, autocommit=True)

    print(f"\nCOPY of {args.copy_rows:,} rows in transactions of {args.batch:,} rows "
          "(as the writer loads), into the table above")
    data = copy_data(conn, args.copy_rows)
    configs = [
        ("index + rollup triggers (as installed)", []),
        ("index, no rollup triggers",
         ["ALTER TABLE access_log DISABLE TRIGGER access_log_rollup_insert"]),
        # (initdb would rebuild the rollups now: the bench drops the database instead)
        ("no index, no rollup triggers", ["DROP INDEX access_log_path_referers"]),
    ]
    results = []
    for label, setup in configs:
        with conn.cursor() as c:
            for sql in setup:
                c.execute(sql)
        seconds = min(copy_batches(conn, data, args.batch) for _ in range(2))
        results.append((label, seconds))
    base = results[-1][1]
    print("\n| configuration | s (best of 2) | rows/s | cost vs. bare table |")
    print("|---|---:|---:|---:|")
    for label, seconds in results:
        print(f"| {label} | {seconds:.1f} | {args.copy_rows / seconds:,.0f} "
              f"| {(seconds / base - 1) * 100:+.0f}% |")
    conn.close()
    return 0



def copy_data(conn: Any, rows: int) -> list[str]:
    """COPY text lines for `rows` new requests of the last hour (the writer's columns)."""
    buf = io.StringIO()
    with conn.cursor() as cur:
        sql = cur.mogrify(ROWS_SQL, {"span": "1 hour", "total": rows, "lo": 0,
                                     "hi": rows, "bots": BOT_AGENTS, "humans": HUMAN_AGENTS})
        cur.copy_expert(f"COPY ({sql.decode()}) TO STDOUT", buf)
    return buf.getvalue().splitlines(keepends=True)


def copy_batches(conn: Any, lines: list[str], batch: int, table: str = "access_log") -> float:
    sql = COPY_INTO_SQL.format(table=table)
    t0 = time.perf_counter()
    conn.autocommit = False
    with conn.cursor() as cur:
        for lo in range(0, len(lines), batch):
            cur.copy_expert(sql, io.StringIO("".join(lines[lo:lo + batch])))
            conn.commit()
    conn.autocommit = True
    return time.perf_counter() - t0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except psycopg2.Error as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(1)
