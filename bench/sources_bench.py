#!/usr/bin/env python3
"""Many servers into one PostgreSQL: one logger beside two loggers at once.

    python3 bench/sources_bench.py [--lines 1000000] [--runs 3]

The same generated combined lines (bench/run.py's "site" shape) go into one
throwaway database either through one logger (`python -m logpipe < file`), or split
in two halves through two loggers running at the same time, each with its own
--source and spool, as two web servers would. Wall time from start until every
logger has exited, which is after its last commit; CPU time of the logpipe processes
and of the PostgreSQL backends that loaded their rows. Runs alternate; the table
shows the median. What it tells: how many lines/s one PostgreSQL node on this
machine takes in, whether a second server's logger adds to it or shares it, and what
a line costs in CPU, so what a node with more cores would take (wall time depends on
whatever else runs on the machine; CPU per line much less).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import BackendSampler, ThrowawayDatabase, cpu_model, generate_lines


def load_at_once(db: ThrowawayDatabase, files: dict[str, Path],
                 work: Path) -> tuple[float, float, float]:
    """Loggers fed with `files` (source -> file), all started together: seconds until
    they have all exited, CPU seconds of their processes and of their backends."""
    sampler = BackendSampler(db)
    sampler.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    procs = []
    for source, path in files.items():
        with open(path, "rb") as stdin:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "logpipe", "--dsn", db.dsn, "--source", source,
                 "--spool-dir", str(work / f"spool-{source}-{time.monotonic_ns()}"),
                 "--stop-timeout", "3600"],
                stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"logpipe failed: {err.decode(errors='replace')}")
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, sampler.total()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines in all (1,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="alternated runs of each (3)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="logpipe-sources-bench-"))
    lines = generate_lines(args.lines).splitlines(keepends=True)
    half = len(lines) // 2
    whole, first, second = work / "all.log", work / "web1.log", work / "web2.log"
    whole.write_bytes(b"".join(lines))
    first.write_bytes(b"".join(lines[:half]))
    second.write_bytes(b"".join(lines[half:]))
    setups = {
        "one logger (all lines)": {"web1": whole},
        "two loggers at once (half each, --source web1/web2)": {"web1": first, "web2": second},
    }
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in setups}
    db = ThrowawayDatabase()
    try:
        for _ in range(args.runs):
            for name, files in setups.items():
                runs[name].append(load_at_once(db, files, work))
                rows = int(db.scalar("SELECT count(*) FROM access_log"))  # type: ignore[arg-type]
                assert rows == len(lines), (name, rows)
                db.truncate()
    finally:
        db.drop()

    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu_model()}), "
          f"{len(lines):,} lines, median of {args.runs}")
    print(f"{'setup':<53} {'s':>6} {'lines/s':>8} {'logpipe µs/line':>15} "
          f"{'backend µs/line':>15} {'lines/s per core':>16}")
    for name, measured in runs.items():
        seconds, cpu, backend = (statistics.median(m[i] for m in measured) for i in range(3))
        per_line = (cpu + backend) / len(lines)  # CPU seconds a line costs, all told
        print(f"{name:<53} {seconds:>6.2f} {len(lines) / seconds:>8,.0f} "
              f"{cpu / len(lines) * 1e6:>15.2f} {backend / len(lines) * 1e6:>15.2f} "
              f"{1 / per_line:>16,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
