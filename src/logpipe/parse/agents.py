"""Is a User-Agent a bot? `classify_agent(ua) -> bool` fills access_log.is_bot.

True means anything automated: search, SEO and AI crawlers, link previews, HTTP
libraries and command-line tools, scanners, uptime monitors and health checks,
feed readers, headless browsers, and a missing User-Agent (browsers always send
one). False means a person's browser or an app's web view.

The detection is crawlerdetect's pattern list (the Python port of the PHP
CrawlerDetect project: ~1,500 patterns, maintained upstream) plus a few patterns
for tools and monitors it misses. bench/agents_bench.py compares it with
ua-parser on tests/data/user_agents.tsv; see bench/RESULTS-agents.md.

The patterns are compiled on first use (about 50 ms), not at import, so loading
logpipe stays cheap. Calls are not cached here: the log parser caches the answer
per distinct User-Agent.
"""

from __future__ import annotations

import re
import threading
from typing import Callable

# Agents crawlerdetect does not know: regexes for the lower-cased User-Agent. Keep
# this list short and generic: new crawlers belong upstream in crawlerdetect.
EXTRA_BOTS = (
    r"^(?:node|undici|deno|bun)(?:/|$)",  # JavaScript runtimes' built-in fetch()
    r"^mozilla/[\d.]+(?: \(compatible;?\))?$",  # a bare "Mozilla/5.0": scanners, scripts
    "java-http-client/", "insomnia/", "powershell/", "microsoft-cryptoapi/", "apt-http/",
    "l9explore", "prometheus/", "blackbox exporter", "consul health", "jetpack by wordpress",
    "gatus/", "grafana/", "newsboat/", "nextcloud-news", "selfoss/", "cypress/",
)

# Text-mode browsers are people, though some name the library crawlerdetect flags.
_HUMAN_AGENTS = re.compile(r"^(?:Lynx|w3m|E?Links)\b", re.IGNORECASE)

_lock = threading.Lock()
_matcher: Callable[[str], bool] | None = None


def classify_agent(user_agent: str | None) -> bool:
    """True if the User-Agent is a bot, crawler, tool or monitor; False for a browser."""
    agent = (user_agent or "").strip()
    if not agent or agent == "-":
        return True
    if _HUMAN_AGENTS.match(agent):
        return False
    return _crawlerdetect()(agent)


def _crawlerdetect() -> Callable[[str], bool]:
    global _matcher
    if _matcher is None:
        with _lock:
            if _matcher is None:
                _matcher = build_matcher()
    return _matcher


def build_matcher(extras: bool = True) -> Callable[[str], bool]:
    """crawlerdetect's own two-step test, from its pattern data, about 15x faster.

    Step 1 deletes browser-like tokens (its exclusions: "Mozilla/5.0", "Safari/537.36"
    ...); step 2 searches what is left for one of ~1,500 crawler patterns. Python's re
    tries the alternatives of a regex one by one at every position, which makes
    crawlerdetect's single big IGNORECASE alternation cost ~350 us per agent. Here the
    agent is lower-cased once, the patterns are lower-cased, and the patterns that
    start with a literal character are grouped under that character, so at each
    position only the few dozen groups are tried (~20 us). Same answers: the tests
    compare it with CrawlerDetect().is_crawler. With `extras`, EXTRA_BOTS are checked
    first. If crawlerdetect's data modules ever move, its public (cached, slower) API
    is used instead.
    """
    extra = re.compile(_grouped_alternation(list(EXTRA_BOTS)) if extras else "(?!)").search
    try:
        from crawlerdetect.providers.crawlers import data as crawlers
        from crawlerdetect.providers.exclusions import data as exclusions

        strip = re.compile(_grouped_alternation(exclusions)).sub
        find = re.compile(_grouped_alternation(crawlers)).search
    except (ImportError, re.error):
        from crawlerdetect import CrawlerDetect

        detector = CrawlerDetect()
        return lambda agent: extra(agent.lower()) is not None or detector.is_crawler(agent)

    def is_bot(agent: str) -> bool:
        lowered = agent.lower()
        if extra(lowered):
            return True
        rest = strip("", lowered)
        return bool(rest) and find(rest) is not None

    return is_bot


_PLAIN_FIRST = re.compile(r"[\w ,;:'\"=<>@#%&!~`-]")


def _lower_pattern(pattern: str) -> str:
    """Lower-case a regex's literal characters, leaving escapes such as \\D or \\S alone."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i].lower())
            i += 1
    return "".join(out)


def _grouped_alternation(patterns: list[str]) -> str:
    """One case-sensitive regex for lower-cased text matching any of the patterns.

    "abc|axy|b.d" becomes "a(?:bc|xy)|b(?:.d)": each top-level branch then starts with
    a literal, which re's matcher rejects with one character comparison.
    """
    groups: dict[str, list[str]] = {}
    others = []
    for pattern in map(_lower_pattern, patterns):
        if (
            "|" not in pattern
            and _PLAIN_FIRST.fullmatch(pattern[0])
            and pattern[1:2] not in ("?", "*", "+", "{")
        ):
            groups.setdefault(pattern[0], []).append(pattern[1:])
        else:
            others.append(pattern)
    branches = [re.escape(first) + "(?:" + "|".join(rests) + ")" for first, rests in groups.items()]
    branches += ["(?:" + pattern + ")" for pattern in others]
    return "|".join(branches)
