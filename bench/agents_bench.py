"""Compare bot detectors on labelled real-world User-Agents: accuracy and speed.

    python bench/agents_bench.py [--list FILE] [--rounds N] [--errors]

Detectors:
  crawlerdetect      CrawlerDetect's patterns (its uncached check)
  ua-parser          ua-parser 1.x, device family == "Spider" (BasicResolver, no cache)
  (no extras)        crawlerdetect's patterns through logpipe's faster matcher alone
  logpipe.parse.agents     what logpipe uses: that + a few extra patterns, no User-Agent = bot

The extra patterns were chosen for agents crawlerdetect misses, some of them in
this very list, so logpipe.parse.agents' score here is optimistic; the "no extras" row
shows what the matcher alone gets (crawlerdetect's answers, faster).

Speed is microseconds per call with no cache (each User-Agent parsed afresh), the
best of --rounds passes through the whole list (the least disturbed by other work
on the machine). Setup is the one-off cost of the import plus the first call
(pattern compilation).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_LIST = ROOT / "tests" / "data" / "user_agents.tsv"


def load_list(path: Path) -> list[tuple[bool, str, str]]:
    """(is_bot, category, user_agent) from the TSV; '#' lines are comments."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("#", "label\t")):
            continue
        label, category, agent = line.split("\t", 2)
        rows.append((label == "bot", category, agent))
    return rows


def make_crawlerdetect() -> Callable[[str], bool]:
    from crawlerdetect import CrawlerDetect

    detector = CrawlerDetect()

    def check(agent: str) -> bool:
        agent = agent.strip()  # what is_crawler() does before its lru_cache
        return bool(agent) and detector._check_crawler(agent)[0]

    return check


def make_ua_parser() -> Callable[[str], bool]:
    from ua_parser import BasicResolver, Domain, load_builtins

    resolver = BasicResolver(load_builtins())  # no CachingResolver: every call parses

    def check(agent: str) -> bool:
        device = resolver(agent, Domain.DEVICE).device
        return device is not None and device.family == "Spider"

    return check


def make_logpipe_matcher_only() -> Callable[[str], bool]:
    from logpipe.parse import agents

    re.purge()
    match = agents.build_matcher(extras=False)

    def check(agent: str) -> bool:
        agent = agent.strip()
        return bool(agent) and match(agent)

    return check


def make_logpipe() -> Callable[[str], bool]:
    from logpipe.parse import agents

    agents._matcher = None  # compile afresh: setup counts the pattern compilation
    re.purge()
    return agents.classify_agent


DETECTORS: dict[str, Callable[[], Callable[[str], bool]]] = {
    "crawlerdetect 0.4": make_crawlerdetect,
    'ua-parser 1.0 (device "Spider")': make_ua_parser,
    "crawlerdetect's patterns, logpipe's matcher (no extras)": make_logpipe_matcher_only,
    "logpipe.parse.agents (crawlerdetect + extras)": make_logpipe,
}


def measure(name: str, factory: Callable[[], Callable[[str], bool]],
            rows: list[tuple[bool, str, str]], rounds: int) -> dict[str, object]:
    t0 = time.perf_counter()
    check = factory()
    check("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
    setup_ms = (time.perf_counter() - t0) * 1000
    fp, fn = [], []
    for is_bot, category, agent in rows:
        got = bool(check(agent))
        if got and not is_bot:
            fp.append((category, agent))
        elif is_bot and not got:
            fn.append((category, agent))
    per_call = []
    agents = [agent for _, _, agent in rows]
    for _ in range(rounds):
        t0 = time.perf_counter()
        for agent in agents:
            check(agent)
        per_call.append((time.perf_counter() - t0) / len(agents) * 1e6)
    correct = len(rows) - len(fp) - len(fn)
    return {
        "name": name, "accuracy": correct / len(rows), "correct": correct, "fp": fp, "fn": fn,
        "us": min(per_call), "setup_ms": setup_ms,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", type=Path, default=DEFAULT_LIST, help="labelled TSV file")
    p.add_argument("--rounds", type=int, default=7, help="timing passes (the best is shown)")
    p.add_argument("--errors", action="store_true", help="list every misclassified agent")
    args = p.parse_args()
    rows = load_list(args.list)
    bots = sum(1 for r in rows if r[0])
    print(f"{len(rows)} User-Agents ({bots} bots, {len(rows) - bots} humans) from "
          f"{args.list.relative_to(ROOT) if args.list.is_relative_to(ROOT) else args.list}\n")
    results = [measure(name, f, rows, args.rounds) for name, f in DETECTORS.items()]
    print("| detector | accuracy | false positives | false negatives "
          "| µs/call (uncached) | setup ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {r['accuracy']:.1%} ({r['correct']}/{len(rows)}) "
              f"| {len(r['fp'])} | {len(r['fn'])} | {r['us']:.1f} | {r['setup_ms']:.0f} |")
    for r in results:
        categories: dict[str, int] = {}
        for category, _ in r["fn"]:
            categories[category] = categories.get(category, 0) + 1
        summary = ", ".join(f"{c} {n}" for c, n in sorted(categories.items(), key=lambda x: -x[1]))
        print(f"\n{r['name']}: missed bots by category: {summary or 'none'}")
        if args.errors:
            for kind, items in (("false positive", r["fp"]), ("false negative", r["fn"])):
                for category, agent in items:
                    print(f"  {kind:15} {category:12} {agent!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
