"""Is a User-Agent a bot? `classify_agent(ua) -> bool` fills access_log.is_bot.

True means anything automated: search, SEO and AI crawlers, link previews, HTTP
libraries and command-line tools, scanners, uptime monitors and health checks,
feed readers, headless browsers, and a missing User-Agent (browsers always send
one). False means a person's browser or an app's web view.

The detection is crawlerdetect's pattern list (the Python port of the PHP
CrawlerDetect project: ~1,500 patterns, maintained upstream) plus a few patterns
for tools and monitors it misses. bench/agents_bench.py compares it with
ua-parser on tests/data/user_agents.tsv; see bench/RESULTS-agents.md.

The patterns are compiled on first use (about 80 ms), not at import, so loading
logpipe stays cheap. Calls are not cached here: the log parser caches the answer
per distinct User-Agent.

A client can send a new User-Agent of up to 8 KB (Apache's LimitRequestFieldSize)
with every request, so each one costs a fresh classification: only its first
CLASSIFY_CHARS characters are looked at (bot markers come early: every agent of
tests/data, up to 279 characters long, gets the same answer from its first 192),
and the patterns are arranged so that no agent makes them backtrack over its
length (build_matcher).
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

# How much of a User-Agent is classified: bounds the cost of a long one (~50 us at
# most, where a whole 8 KB agent cost up to 25 ms, and seconds for a run of letters).
CLASSIFY_CHARS = 256

_lock = threading.Lock()
_matcher: Callable[[str], bool] | None = None


def classify_agent(user_agent: str | None) -> bool:
    """True if the User-Agent is a bot, crawler, tool or monitor; False for a browser."""
    agent = (user_agent or "").strip()[:CLASSIFY_CHARS]
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
    """crawlerdetect's own two-step test, from its pattern data, about 35x faster.

    Step 1 deletes browser-like tokens (its exclusions: "Mozilla/5.0", "Safari/537.36"
    ...); step 2 searches what is left for one of ~1,500 crawler patterns. Python's re
    tries the alternatives of a regex one by one at every position, which makes
    crawlerdetect's single big IGNORECASE alternation cost ~350 us per agent. Here the
    agent is lower-cased once and the patterns are lower-cased. The exclusions that
    start with a literal character are grouped under it (_grouped_alternation). Step 2
    only asks whether some pattern matches somewhere, so its patterns become a prefix
    tree (_search_regex): at each position only the patterns that agree with the text
    so far are tried (~10 us per agent), and no pattern is left that backtracks over a
    run of letters (one began with "[a-z0-9\\-_]*": ~3 s for 8,000 letters). Same answers:
    the tests compare it with CrawlerDetect().is_crawler. With `extras`, EXTRA_BOTS are
    checked first. If crawlerdetect's data modules ever move, its public (cached,
    slower) API is used instead.
    """
    extra = _search_regex(list(EXTRA_BOTS) if extras else [])
    try:
        from crawlerdetect.providers.crawlers import data as crawlers
        from crawlerdetect.providers.exclusions import data as exclusions

        strip = re.compile(_grouped_alternation(exclusions)).sub
        find = _search_regex(crawlers)
    except (ImportError, re.error):
        from crawlerdetect import CrawlerDetect

        detector = CrawlerDetect()
        return lambda agent: extra(agent.lower()) or detector.is_crawler(agent)

    def is_bot(agent: str) -> bool:
        lowered = agent.lower()
        if extra(lowered):
            return True
        rest = strip("", lowered)
        return bool(rest) and find(rest)

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


# -- yes/no searches: a prefix tree ----------------------------------------------------

# A leading "X*" or "X?" (X a character, ".", an escape or a class; not possessive): it can
# match nothing, so a search for "X*R" finds something exactly when one for "R" does.
_LEADING_OPTIONAL = re.compile(
    r"(?:\[(?!\^?\])(?:\\.|[^\]\[\\])+\]|\\.|[^\\\[\](){}|^$*+?])[*?](?!\+)")


def _search_regex(patterns: list[str]) -> Callable[[str], bool]:
    """Whether any of the patterns matches lower-cased text somewhere."""
    anchored: list[str] = []
    floating: list[str] = []
    for pattern in map(_lower_pattern, patterns):
        for branch in _search_branches(pattern):
            if branch.startswith("^"):
                anchored.append(branch[1:])
            else:
                floating.append(branch)
    at_start = re.compile(_prefix_tree(anchored) if anchored else "(?!)").match
    anywhere = re.compile(_prefix_tree(floating) if floating else "(?!)").search
    return lambda text: at_start(text) is not None or anywhere(text) is not None


def _search_branches(pattern: str) -> list[str]:
    """Regexes that, together, match somewhere exactly when `pattern` does: its top-level
    alternatives, each without a leading "X*" / "X?", and a branch that is one group
    replaced by that group's own branches: "[a-z]*(bot|spider)" -> ["bot", "spider"]."""
    out: list[str] = []
    for branch in _top_level_branches(pattern):
        while (m := _LEADING_OPTIONAL.match(branch)) is not None:
            branch = branch[m.end():]
        inner = _one_group(branch)
        if inner is None:
            out.append(branch)
        else:
            out += _search_branches(inner)
    return out


def _structure(pattern: str) -> list[tuple[int, str, int]]:
    """(index, character, depth) of each "(", ")" and "|" that is not escaped or in a
    character class; depth is the group nesting just before it."""
    out: list[tuple[int, str, int]] = []
    depth = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # skip the class; a "]" first in it (after any "^") is a literal
            i += 2 if pattern[i + 1 : i + 2] == "^" else 1
            i += 1 if pattern[i : i + 1] == "]" else 0
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c in "()|":
            out.append((i, c, depth))
            depth += {"(": 1, ")": -1}.get(c, 0)
        i += 1
    return out


def _top_level_branches(pattern: str) -> list[str]:
    cuts = [i for i, c, depth in _structure(pattern) if c == "|" and depth == 0]
    starts = [0] + [i + 1 for i in cuts]
    ends = cuts + [len(pattern)]
    return [pattern[a:b] for a, b in zip(starts, ends)]


def _one_group(branch: str) -> str | None:
    """What is inside, if the branch is a single plain group: "(a|b)" or "(?:a|b)"."""
    if branch[:1] != "(" or (branch[1:2] == "?" and branch[1:3] != "?:"):
        return None
    closing = next((i for i, c, depth in _structure(branch) if c == ")" and depth == 1), None)
    if closing != len(branch) - 1:
        return None
    return branch[3 if branch[1:2] == "?" else 1 : -1]


def _prefix_tree(patterns: list[str]) -> str:
    """One regex that matches where any of the patterns (none with a top-level "|")
    matches, with the patterns' common leading characters shared:
    "abc|abd|b.d" -> "ab(?:c|d)|b.d". Only for yes/no answers: what it matches may be
    shorter than what the pattern would (a pattern that another starts with is enough).
    """
    if "" in patterns:
        return ""
    groups: dict[str, list[str]] = {}
    others: list[str] = []
    for pattern in patterns:
        if _PLAIN_FIRST.fullmatch(pattern[0]) and pattern[1:2] not in ("?", "*", "+", "{"):
            groups.setdefault(pattern[0], []).append(pattern[1:])
        else:
            others.append(pattern)
    branches = []
    for first, rests in groups.items():
        rest = rests[0] if len(rests) == 1 else _prefix_tree(rests)
        needs_group = len(rests) > 1 and rest != ""
        branches.append(re.escape(first) + (f"(?:{rest})" if needs_group else rest))
    branches += [f"(?:{pattern})" for pattern in others]
    return "|".join(branches)
