#!/usr/bin/env python3
"""Long User-Agents: lines/s when every line has an 8 KB agent of its own, beside the
same lines with one agent repeated.

    python3 bench/long_agents_bench.py [--lines 3000] [--agent-bytes 8000] [--rounds 3]

The writer classifies each distinct User-Agent (bot or person) once and caches the
answer, so a log that repeats an agent pays for it once. A client can send a new
agent with every request, up to Apache's LimitRequestFieldSize (8190 bytes), and
each is then classified, unescaped and COPY-escaped afresh. For each kind of agent,
the same number of lines of the same length, with:

  repeated   one agent of that kind on every line (classified once)
  distinct   an agent of its own on every line

Kinds: a browser's agent followed by random words; non-ASCII bytes as Apache logs
them (\\xhh, 4 bytes per byte); one letter repeated (the worst case for a pattern
that can backtrack over a run of letters).

Each run goes through the writer's load path into a real, fresh database
(PostgreSQL on dbname=postgres's server, trust auth): the writer's parser (bots
classified, caches empty at the start), COPY in 4 MiB transactions like the
writer's, commit. lines/s is measured until the last row is committed. Repeated
and distinct runs alternate, --rounds times; the best of each counts (the least
disturbed by other work on the machine). Target: distinct >= 0.5 of repeated.
"""

from __future__ import annotations

import argparse
import os
import random
import string
import sys
import time
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

import psycopg2
from run import ThrowawayDatabase, chunks, cpu_model

from logpipe.parse import parser_marking_bots
from logpipe.parse.agents import classify_agent
from logpipe.store.copy import load_lines

BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")
WORDS = string.ascii_letters + string.digits


def browser_and_words(rng: random.Random, size: int) -> str:
    words: list[str] = [BROWSER]
    length = len(BROWSER)
    while length < size:
        word = "".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def escaped_bytes(rng: random.Random, size: int) -> str:
    """Bytes >= 0x80 as Apache's ap_escape_logitem writes them."""
    return "".join(f"\\x{rng.randrange(0x80, 0x100):02x}" for _ in range(size // 4))


def one_letter(rng: random.Random, size: int) -> str:
    return "a" * (size - 8) + f"{rng.randrange(10**8):08d}"


KINDS: dict[str, Callable[[random.Random, int], str]] = {
    "browser + random words": browser_and_words,
    "\\xhh (non-ASCII bytes)": escaped_bytes,
    "one letter (aaaa...)": one_letter,
}


def log_lines(user_agents: list[str]) -> bytes:
    return "".join(
        f'198.51.100.{i % 250 + 1} - - [03/Dec/2026:12:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
        f'"GET /page/{i} HTTP/1.1" 200 {i} "https://www.example.com/" "{agent}"\n'
        for i, agent in enumerate(user_agents)
    ).encode()


def load(db: ThrowawayDatabase, data: bytes) -> float:
    """Seconds to parse and COPY data the writer's way, until the last commit."""
    db.truncate()
    parser = parser_marking_bots("combined", "bench")  # a new one: empty caches
    conn = psycopg2.connect(db.dsn)
    try:
        started = time.perf_counter()
        for chunk in chunks(data, 4 << 20):
            with conn.cursor() as cur:
                _, rejects = load_lines(cur, parser, chunk, "bench")
                assert rejects == 0, f"{rejects} rejects"
            conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=3000, help="lines per run (3000)")
    ap.add_argument("--agent-bytes", type=int, default=8000, help="logged agent length (8000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each; the best counts (3)")
    ap.add_argument("--kind", action="append", choices=list(KINDS),
                    help="only this kind of agent (repeatable; default: all)")
    args = ap.parse_args()

    classify_agent("warm-up/1.0")  # compile the patterns outside the timings
    db = ThrowawayDatabase()
    results: list[tuple[str, float, float]] = []
    try:
        for kind, make in KINDS.items():
            if args.kind and kind not in args.kind:
                continue
            rng = random.Random(7)
            distinct = [make(rng, args.agent_bytes) for _ in range(args.lines)]
            assert len(set(distinct)) == args.lines
            runs = {"repeated": log_lines(distinct[:1] * args.lines),
                    "distinct": log_lines(distinct)}
            best = dict.fromkeys(runs, float("inf"))
            for _ in range(args.rounds):
                for name, data in runs.items():
                    best[name] = min(best[name], load(db, data))
                    count = db.scalar("SELECT count(*) FROM access_log")
                    assert count == args.lines, f"{kind}, {name}: {count} rows"
            results.append((kind, args.lines / best["repeated"], args.lines / best["distinct"]))
    finally:
        db.drop()

    print(f"long User-Agents, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"{cpu_model()}, Python {sys.version.split()[0]}; {args.lines:,} lines per run, "
          f"agents of {args.agent_bytes:,} bytes as logged, best of {args.rounds}\n")
    print("| agents | one repeated: lines/s | each distinct: lines/s | distinct / repeated |")
    print("|---|---:|---:|---:|")
    for kind, repeated, distinct in results:
        print(f"| {kind} | {repeated:,.0f} | {distinct:,.0f} | {distinct / repeated:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
