"""`pages`, `static` and `tree` as this checkout builds them beside another revision's,
timed alternately on one database, with the same window for both.

    python bench/reports_bench.py --rows 10000000 --keep    # prints: kept database NAME
    python bench/pages_bench.py --dsn dbname=NAME [--against HEAD] [--repeat 7]
    psql -c 'DROP DATABASE NAME WITH (FORCE)' postgres

The other revision's src/logpipe/reports/queries/pages.py and tree.py are read with
`git show REV:...` (so its SQL must run on this checkout's schema: run this checkout's
`logpipe initdb` on the database first). For each case: the median ms of --repeat
rounds, old then new in each round after a warm-up of both, as a share of a full scan
of access_log (count and sum of bytes, the median of 3), and whether both gave the
same rows. --assets PATTERN adds a pattern to logpipe_asset_patterns first (the
generated paths are all pages: e.g. '/section1/%' makes a tenth of them assets).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from logpipe.reports.catalog import REPORTS
from logpipe.reports.filters import Filters, resolve_times
from logpipe.reports.queries import pages as new_pages
from logpipe.reports.queries import tree as new_tree
from logpipe.reports.run import prepare_session, rollup_range
from logpipe.reports.times import parse_time

# (label, report, --since, filters); report "all" is pages --all
CASES = [
    ("pages (all time)", "pages", None, {}),
    ("pages --since 30d", "pages", "30d", {}),
    ("pages --since 7d --humans", "pages", "7d", {"bots": False}),
    ("pages --since 36h", "pages", "36h", {}),
    ("pages --all --since 30d", "all", "30d", {}),
    ("static --since 30d", "static", "30d", {}),
    ("tree --since 30d", "tree", "30d", {}),
]


def load_revision(rev: str, into: Path) -> tuple[ModuleType, ModuleType]:
    """pages.py and tree.py of `rev` as modules, tree importing that pages."""
    def show(name: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show",
                               f"{rev}:src/logpipe/reports/queries/{name}.py"],
                              check=True, capture_output=True, text=True).stdout

    (into / "rev_pages.py").write_text(show("pages"))
    (into / "rev_tree.py").write_text(show("tree").replace(
        "from logpipe.reports.queries.pages import", "from rev_pages import"))
    sys.path.insert(0, str(into))
    modules = []
    for name in ("rev_pages", "rev_tree"):
        spec = importlib.util.spec_from_file_location(name, into / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1]


def builder(pages: ModuleType, tree: ModuleType, report: str
            ) -> Callable[[Filters, Any], tuple[str, dict[str, Any]]]:
    return {"pages": lambda f, days: pages.query_pages(f, days),
            "all": lambda f, days: pages.query_pages(f, days, True),
            "static": lambda f, days: pages.query_static(f, days),
            "tree": lambda f, days: tree.query_tree(f, days)}[report]


def timed(cur: Any, sql: str, params: dict[str, Any]) -> tuple[float, list[tuple]]:
    t0 = time.perf_counter()
    cur.execute(sql, params)
    rows = cur.fetchall()
    return (time.perf_counter() - t0) * 1000, rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", required=True, help="a database reports_bench.py --keep made")
    p.add_argument("--against", default="HEAD", help="the revision to compare with (HEAD)")
    p.add_argument("--repeat", type=int, default=7, help="rounds per case (7)")
    p.add_argument("--assets", action="append", default=[], metavar="PATTERN",
                   help="add this asset pattern first (repeatable), e.g. '/section1/%%'")
    args = p.parse_args()
    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for pattern in args.assets:
            cur.execute("INSERT INTO logpipe_asset_patterns VALUES (%s, 'bench')"
                        " ON CONFLICT DO NOTHING", (pattern,))
    conn.set_session(readonly=True, autocommit=True)
    cur = conn.cursor()
    prepare_session(cur)
    with tempfile.TemporaryDirectory() as tmp:
        old_pages, old_tree = load_revision(args.against, Path(tmp))
        scan = statistics.median(
            timed(cur, "SELECT count(*), sum(bytes) FROM access_log", {})[0]
            for _ in range(3))
        print(f"full scan of access_log: {scan:,.0f} ms (median of 3)\n")
        print(f"| report | {args.against} ms | this checkout ms | of the scan | rows | same |")
        print("|---|---:|---:|---:|---:|---|")
        for label, report, since, extra in CASES:
            f = Filters(limit=REPORTS["pages" if report == "all" else report].default_limit,
                        **extra)
            f.since, f.until = resolve_times(cur, parse_time(since) if since else None, None)
            days = rollup_range(cur)
            queries = [builder(old_pages, old_tree, report)(f, days),
                       builder(new_pages, new_tree, report)(f, days)]
            results = [timed(cur, *q)[1] for q in queries]  # warm-up
            times: list[list[float]] = [[], []]
            for _ in range(args.repeat):
                for i, q in enumerate(queries):
                    times[i].append(timed(cur, *q)[0])
            old, new = (statistics.median(t) for t in times)
            print(f"| {label} | {old:,.0f} | {new:,.0f} | {new / scan:.3f} "
                  f"| {len(results[1])} | {results[0] == results[1]} |", flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
