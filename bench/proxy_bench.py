"""Benchmark: what --trusted-proxy costs the parser, in microseconds per line.

    taskset -c 0 python3 bench/proxy_bench.py [--lines 200000] [--clients 20000]

Lines in combined + "%{X-Forwarded-For}i", all from two load balancers (10.0.0.1,
10.0.0.2) with one or two hops in the header, from --clients distinct clients
(so about 2 x --clients distinct (client, header) pairs).
Times LineParser.parse() over chunks of 20,000 lines without the option, with
it (the real client looked up per distinct (client, header) pair, cached), and
with the cache emptied before every chunk (the cost of a first sight), best of 3
rounds, CPU time.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from logpipe.parse import compile_format

FORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"'
TRUSTED = ["10.0.0.0/8", "192.168.0.0/16"]
CHUNK = 20_000


def lines(count: int, clients: int) -> list[bytes]:
    """Each client makes about count / clients requests, through either balancer; a
    third of them through a second, inner proxy too."""
    rnd = random.Random(15)
    pool = [f"{rnd.randrange(1, 223)}.{rnd.randrange(256)}.{rnd.randrange(256)}."
            f"{rnd.randrange(1, 255)}" for _ in range(clients)]
    out = []
    for i in range(count):
        n = rnd.randrange(clients)
        header = pool[n] if n % 3 else f"{pool[n]}, 192.168.{n % 4}.1"
        out.append(
            (f"10.0.0.{i % 2 + 1} - - [03/Dec/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] "
             f'"GET /page/{i % 997} HTTP/1.1" 200 {i % 5000} "-" "agent/{i % 13}" '
             f'"{header}"\n').encode())
    return out


def timed(parser: object, chunks: list[bytes], clear: bool) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for chunk in chunks:
            if clear:
                parser._builder.real_client.cache.clear()  # type: ignore[attr-defined]
            parser.parse(chunk)  # type: ignore[attr-defined]
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--clients", type=int, default=20_000)
    args = p.parse_args()
    data = lines(args.lines, args.clients)
    chunks = [b"".join(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
    plain = compile_format(FORMAT)
    proxied = compile_format(FORMAT, trusted_proxies=TRUSTED)
    rows = [
        ("without --trusted-proxy", timed(plain, chunks, clear=False)),
        ("with --trusted-proxy", timed(proxied, chunks, clear=False)),
        ("with, cache emptied per chunk", timed(proxied, chunks, clear=True)),
    ]
    base = rows[0][1]
    print(f"{args.lines:,} lines, {args.clients:,} clients behind 2 proxies")
    print(f"{'':32} {'us/line':>8} {'extra us/line':>14}")
    for name, seconds in rows:
        per_line = seconds / args.lines * 1e6
        print(f"{name:32} {per_line:8.2f} {(seconds - base) / args.lines * 1e6:14.2f}")


if __name__ == "__main__":
    main()
