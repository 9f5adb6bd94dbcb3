"""Benchmark: parse + COPY-ready formatting of access-log lines, in lines per second.

    taskset -c 0 python3 bench/parse_bench.py [--lines 200000] [--chunk-lines 20000]

Generates unique, realistic lines (IPv4 and IPv6 hosts, offsets such as +0530,
-0330 and +0545, paths with and without a query, referers, user agents, some
with \\" and \\xhh escapes), then times only LineParser.parse() over chunks of
--chunk-lines lines, as the writer calls it. apache-log-parser runs on a smaller
sample for comparison, one call per line as it is meant to be used.

Both CPU time (process_time) and wall time are shown: on a shared machine CPU
time is the steadier measure of what one core does.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from logpipe.parse import NAMED_FORMATS, compile_format

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
OFFSETS = ("+0000", "-0700", "+0100", "+0530", "-0330", "+0545", "+0200", "-0500")
AGENTS = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"),
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"),
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "-",
    'Mozilla/5.0 \\"Quoted\\" Agent/1.0',
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"),
    "Caf\\xc3\\xa9Browser/2.0",
)
REFERERS = ("-", "https://www.example.com/", "https://www.google.com/", "-",
            "https://duckduckgo.com/?q={n}", "https://www.example.com/blog/{n}?utm_source=x")
METHODS = ("GET",) * 12 + ("POST", "POST", "HEAD", "PUT", "OPTIONS")
STATUSES = (200,) * 10 + (304, 304, 301, 302, 404, 404, 500, 206)


def make_lines(n: int, fmt: str, seed: int = 1) -> list[bytes]:
    """n unique lines in one of the named formats."""
    rnd = random.Random(seed)
    out = []
    sec = 1_700_000_000
    for i in range(n):
        sec += rnd.randint(0, 1)
        day = 1 + (sec // 86400) % 28
        stamp = (f"[{day:02d}/{MONTHS[(sec // 2_000_000) % 12]}/2024:{sec // 3600 % 24:02d}:"
                 f"{sec // 60 % 60:02d}:{sec % 60:02d} {OFFSETS[(sec // 600) % len(OFFSETS)]}]")
        if rnd.random() < 0.1:
            host = f"2001:db8:{rnd.randint(0, 0xffff):x}::{rnd.randint(1, 0xffff):x}"
        else:
            host = (f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}."
                    f"{rnd.randint(1, 254)}")
        path = f"/{rnd.choice(('blog', 'shop', 'img', 'api/v1'))}/{rnd.randint(0, 10**6)}/p{i}"
        if rnd.random() < 0.35:
            path += f"?id={rnd.randint(0, 99999)}&page={rnd.randint(1, 50)}"
        request = f"{rnd.choice(METHODS)} {path} HTTP/{rnd.choice(('1.1', '1.1', '2.0', '1.0'))}"
        user = "-" if rnd.random() < 0.95 else f"user{rnd.randint(1, 500)}"
        size = rnd.choice(("-", str(rnd.randint(0, 500_000))) if rnd.random() < 0.05 else
                          (str(rnd.randint(0, 500_000)),))
        line = f'{host} - {user} {stamp} "{request}" {rnd.choice(STATUSES)} {size}'
        if fmt != "common":
            referer = rnd.choice(REFERERS).format(n=i)
            line += f' "{referer}" "{rnd.choice(AGENTS)}"'
        if fmt == "vhost_combined":
            line = f"www{rnd.randint(1, 9)}.example.com:{rnd.choice((80, 443))} {line}"
        if fmt == "combinedio":
            line += f" {rnd.randint(100, 2000)} {rnd.randint(200, 600_000)}"
        out.append(line.encode("ascii") + b"\n")
    return out


def bench_logpipe(fmt: str, lines: list[bytes], chunk_lines: int,
                  repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the best of `repeat` runs, each with cold caches."""
    chunks = [b"".join(lines[i:i + chunk_lines]) for i in range(0, len(lines), chunk_lines)]
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        parser = compile_format(fmt, source="bench")
        c0, w0 = time.process_time(), time.perf_counter()
        rows = 0
        for chunk in chunks:
            rows += parser.parse(chunk).row_count
        best = min(best, (time.process_time() - c0, time.perf_counter() - w0))
        assert rows == len(lines), (fmt, rows, len(lines))
    return best


def bench_apache_log_parser(fmt: str, lines: list[bytes]) -> tuple[float, float]:
    import apache_log_parser

    parse = apache_log_parser.make_parser(NAMED_FORMATS[fmt])
    c0, w0 = time.process_time(), time.perf_counter()
    for line in lines:
        try:
            parse(line.decode("utf-8").rstrip("\n"))
        except Exception:  # noqa: BLE001, S110 - a failure still counts as a line processed
            pass
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--chunk-lines", type=int, default=20_000,
                    help="lines per parse() call (the writer's default batch is 20000)")
    ap.add_argument("--alp-lines", type=int, default=20_000,
                    help="sample size for apache-log-parser (0 to skip)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()

    print(f"{'parser':<18} {'format':<15} {'lines':>7} {'cpu s':>6} {'lines/s':>8} "
          f"{'wall s':>6} {'lines/s':>8}")

    def row(name: str, fmt: str, n: int, cpu: float, wall: float) -> None:
        print(f"{name:<18} {fmt:<15} {n:>7} {cpu:>6.3f} {n / cpu:>8,.0f} {wall:>6.3f} "
              f"{n / wall:>8,.0f}")

    for fmt in ("common", "combined", "vhost_combined", "combinedio"):
        lines = make_lines(args.lines, fmt)
        row("logpipe", fmt, len(lines), *bench_logpipe(fmt, lines, args.chunk_lines, args.repeat))
    if args.alp_lines:
        try:
            import apache_log_parser  # noqa: F401
        except ImportError:
            print("apache-log-parser not installed: skipped")
            return
        lines = make_lines(args.alp_lines, "combined")
        row("apache-log-parser", "combined", len(lines), *bench_apache_log_parser("combined", lines))


if __name__ == "__main__":
    main()
