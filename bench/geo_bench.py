"""What the country of each row costs the writer, and which package to look it up with.

    python bench/geo_bench.py [--lines 200000]

1. per lookup, 100,000 random IPv4 addresses, no cache: iptocc (chosen) and
   geoip2fast (its own data file), when installed;
2. per line, through a dict of the addresses seen (what --anonymize-ip does, to cut
   each address once), for addresses drawn like real traffic (200,000 clients,
   log-uniform popularity) and for every address new: the plain lookup costs less;
3. the parser's lines/s on --lines combined lines with and without the lookup (the
   generated loop of parse/fastloop.py with its line for the country taken out), and
   with --anonymize-ip.

Prints Markdown tables; CPU time of this process, best of 3.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from logpipe.parse import compile_format, geo


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def addresses(n: int, clients: int, rnd: random.Random) -> list[str]:
    pool = [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(clients)]
    return [pool[int(math.exp(rnd.random() * math.log(clients))) - 1] for _ in range(n)]


def lookups() -> None:
    rnd = random.Random(1)
    sample = [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(100_000)]
    print("| package | us/lookup (no cache) |\n|---|---:|")
    import iptocc

    print(f"| iptocc | {best(lambda: [iptocc.country_code(a) for a in sample]) * 10:.2f} |")
    try:
        from geoip2fast import GeoIP2Fast
    except ImportError:
        print("| geoip2fast | (not installed) |")
    else:
        g = GeoIP2Fast()
        part = sample[:20_000]
        print(f"| geoip2fast | {best(lambda: [g.lookup(a) for a in part]) * 50:.2f} |")


def per_line(n: int) -> None:
    rnd = random.Random(2)
    cases = [("200,000 clients, log-uniform", addresses(n, 200_000, rnd)),
             ("every address new", [str(ipaddress.IPv4Address(rnd.getrandbits(32)))
                                    for _ in range(n)])]
    print("\n| addresses | us/line, through a cache of the addresses |\n|---|---:|")
    for label, hosts in cases:
        def run(hosts: list[str] = hosts) -> None:
            client = geo.ClientAddress()
            cget, miss = client.cache.get, client.miss
            for h in hosts:
                x = cget(h)
                if x is None:
                    x = miss(h)
                _country, _host = x

        def empty(hosts: list[str] = hosts) -> None:
            for h in hosts:
                _country, _host = h, h

        print(f"| {label} | {(best(run) - best(empty)) / n * 1e6:.2f} |")


def parse_speed(n: int) -> None:
    rnd = random.Random(3)
    hosts = addresses(n, 200_000, rnd)
    data = "".join(
        f'{h} - - [10/Oct/2026:13:{i // 60 % 60:02d}:{i % 60:02d} +0000] "GET /p{i % 5000} '
        f'HTTP/1.1" 200 {i % 9000} "https://example.net/{i % 300}" "Mozilla/5.0 ({i % 40})"\n'
        for i, h in enumerate(hosts)).encode()
    with_lookup = compile_format("combined")
    without = compile_format("combined")
    source = without.fast_source
    cut = source.replace("            c_country = country_code(c_remote_host)"
                         " or no_country(c_remote_host)\n", "            c_country = N\n")
    assert cut != source, "the generated loop changed: update this bench"
    namespace = dict(without._run.__globals__)
    exec(compile(cut, "<without lookup>", "exec"), namespace)  # noqa: S102
    without._run = namespace["run"]
    cutting = compile_format("combined", anonymize_ip=True)
    a = best(lambda: with_lookup.parse(data))
    b = best(lambda: without.parse(data))
    c = best(lambda: cutting.parse(data))
    print(f"\n| parser, {n:,} combined lines | lines/s | us/line |\n|---|---:|---:|")
    print(f"| with the country lookup | {n / a:,.0f} | {a / n * 1e6:.2f} |")
    print(f"| without | {n / b:,.0f} | {b / n * 1e6:.2f} |")
    print(f"| difference | | {(a - b) / n * 1e6:+.2f} |")
    print(f"| with --anonymize-ip too (cut cached per address) | {n / c:,.0f} "
          f"| {c / n * 1e6:.2f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=200_000)
    args = p.parse_args()
    lookups()
    per_line(args.lines)
    parse_speed(args.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
