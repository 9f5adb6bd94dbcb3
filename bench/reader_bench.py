"""The reader's cost of taking lines from Apache's pipe into the spool: splice (what
logpipe does with a pipe) beside read-then-write (what it does otherwise).

A separate process writes combined lines into a pipe one write per line, as Apache
does; this process takes them into a spool with SpoolAppender.take_from, the call the
reader makes, and counts its own CPU time. Prints a table; anyone can run it:

    python3 bench/reader_bench.py [--lines 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from logpipe.ingest import spool
from logpipe.ingest.appender import SpoolAppender
from logpipe.ingest.reader import PIPE_BYTES, READ_SIZE, widen_pipe

FEEDER = """
import os, sys
n = int(sys.argv[1])
line = (b'192.0.2.7 - - [10/Oct/2024:13:55:36 +0000] "GET /blog/post-%d HTTP/1.1" 200 5120 '
        b'"https://www.example.com/" "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0"\\n')
for i in range(n):
    os.write(1, line % i)
"""


def take_all(lines: int, splice: bool) -> float:
    """CPU seconds this process spends taking `lines` lines into a spool."""
    with tempfile.TemporaryDirectory() as tmp:
        read_end, write_end = os.pipe()
        widen_pipe(read_end)
        feeder = subprocess.Popen([sys.executable, "-c", FEEDER, str(lines)], stdout=write_end)
        os.close(write_end)
        appender = SpoolAppender(Path(tmp), spool.make_header("combined", None), 64 << 20)
        appender._can_splice = splice and hasattr(os, "splice")
        start = time.process_time()
        while True:
            select.select([read_end], [], [])
            if not appender.take_from(read_end, READ_SIZE):
                break
        used = time.process_time() - start
        appender.close()
        os.close(read_end)
        feeder.wait()
        return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (3)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"splice": [], "read + write": []}
    for _ in range(args.rounds):
        results["splice"].append(take_all(args.lines, splice=True))
        results["read + write"].append(take_all(args.lines, splice=False))
    print(f"reader bench, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, {args.lines:,} one-line writes, pipe {PIPE_BYTES >> 10} KiB")
    print(f"{'method':<14}{'µs/line, median':>18}{'min':>8}{'max':>8}")
    for name, seconds in results.items():
        per_line = sorted(s / args.lines * 1e6 for s in seconds)
        print(f"{name:<14}{per_line[len(per_line) // 2]:>18.2f}{per_line[0]:>8.2f}"
              f"{per_line[-1]:>8.2f}")


if __name__ == "__main__":
    main()
