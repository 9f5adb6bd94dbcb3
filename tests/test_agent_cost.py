"""Long User-Agents: how they are classified, and what they can cost the writer.

A client can send a User-Agent of its own, up to 8 KB, with every request: each is
classified afresh. Only the first CLASSIFY_CHARS characters are looked at, the
patterns are searched as a prefix tree (nothing left that backtracks over a run of
letters), and the parser's caches hold a bounded number of characters. Speed is
measured in bench/long_agents_bench.py, not here.
"""

from __future__ import annotations

import gc
import random
import re
import tracemalloc

import pytest
from test_agents import labelled

from logpipe.parse import agents, parser_marking_bots, values
from logpipe.parse.agents import CLASSIFY_CHARS, classify_agent
from logpipe.parse.rows import CACHE_CHARS

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
# Filler without any bot marker: one letter (the worst case for a pattern that could
# backtrack), Apache's \xhh escapes, digits, a browser's own tokens.
FILLERS = ["a" * 8000, "\\xff" * 2000, "0123456789" * 800, "Gecko/20100101 " * 530]


@pytest.mark.parametrize("filler", FILLERS, ids=["letters", "escapes", "digits", "tokens"])
def test_a_marker_in_the_first_classify_chars_is_found_whatever_follows(filler: str) -> None:
    assert classify_agent(f"{GOOGLEBOT} {filler}") is True
    assert classify_agent(f"{CHROME} {filler}") is False
    marker = " curl/8.5.0"
    at_the_edge = f"{CHROME} {filler}"[: CLASSIFY_CHARS - len(marker)] + marker
    assert classify_agent(at_the_edge + filler) is True
    past_the_edge = f"{CHROME} {filler}"[:CLASSIFY_CHARS] + marker  # not read
    assert classify_agent(past_the_edge) is False


def test_crawlerdetect_patterns_searched_as_a_tree_give_its_answers() -> None:
    """No crawler pattern is left that starts with a repetition (one such, "[a-z0-9\\-_]*
    (bot|...)", took seconds on a run of letters), and crawlerdetect's own answers come
    out on long agents too (runs of letters around each labelled agent; short enough
    for CrawlerDetect's own regex)."""
    from crawlerdetect import CrawlerDetect
    from crawlerdetect.providers.crawlers import data as crawlers

    branches = [b for p in crawlers for b in agents._search_branches(agents._lower_pattern(p))]
    assert [b for b in branches if re.match(r"(?:\[[^]]*\]|\\.|\.|\w)[*?]", b)] == []
    reference = CrawlerDetect()
    fast = agents.build_matcher(extras=False)
    samples = [f"{'a' * 100}{agent}{'b' * 100}" for _, _, agent in labelled()[::2]]
    samples += [f"robot-{'x' * 300}", "x" * 300 + "-crawler", "ab" * 150 + "spider"]
    assert [a for a in samples if fast(a) != reference.is_crawler(a)] == []


PATTERNS = [
    r"[a-z0-9\-_]*(bot|crawl|spider)", r"java.*outbrain", r"yandex(?!search)",
    r"^ruby|ruby\/[0-9]", r"^b0t$", r"a?z", r"(?:ab|cd)e", r"(ab)x", r"[]a]*q", r"[^]b]?w",
    r"\.net clr", r"a{2}b", r"ab+c", r"abc", r"abd", r"ab", r"(?=x)y", r"café", r"^dart\/",
    r"1 2", r"k\d*m",
]
TEXTS = ["", "robot", "xbotx", "java and outbrain", "outbrain java", "yandex", "yandexsearch",
         "ruby", "myruby/3", "ruby/", "b0t", "b0t!", "z", "az", "cde", "abe", "abx", "aq",
         "]q", "q", "bw", "w", "x.net clr", "aab", "ab", "abbbc", "ac", "xy", "y", "café",
         "dart/2", "a dart/2", "1 2", "km", "k12m", "crawler", "spi der", "-" * 50 + "spider"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_search_regex_matches_where_the_pattern_does(pattern: str) -> None:
    search = agents._search_regex([pattern])
    for text in TEXTS:
        assert search(text) == bool(re.search(pattern, text)), text


def test_search_regex_of_many_patterns_matches_where_any_does() -> None:
    search = agents._search_regex(PATTERNS)
    either = re.compile("|".join(f"(?:{p})" for p in PATTERNS))
    for text in TEXTS + [t.upper() for t in TEXTS]:
        assert search(text) == bool(either.search(text)), text


def test_caches_hold_a_bounded_amount_of_text() -> None:
    """Distinct 8 KB agents (32 KB once escaped) must not pile up in the writer: 400 of
    them would hold ~29 MB in a cache of 50,000 entries."""
    rng = random.Random(3)
    escaped = "".join(f"\\x{rng.randrange(0x80, 0x100):02x}" for _ in range(8000))
    lines = b"".join(
        f'192.0.2.1 - - [03/Dec/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "{i:04d}'
        f'{escaped}"\n'.encode() for i in range(400))
    classify_agent("warm-up/1.0")  # the patterns are compiled once, for every parser
    gc.collect()
    tracemalloc.start()
    try:
        parser = parser_marking_bots("combined", None)
        baseline = tracemalloc.get_traced_memory()[0]
        batch = parser.parse(lines)
        assert batch.row_count == 400
        del batch
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert held < 1.5 * CACHE_CHARS, f"the parser holds {held:,} bytes"


def test_unescape_of_apache_escapes_in_c_gives_the_same_text() -> None:
    """unescape() decodes values holding only Apache's escapes in C (an 8 KB agent of
    \\xhh took 3.4 ms escape by escape); any value must come out as it does escape by
    escape."""
    rng = random.Random(11)
    pieces = ["\\", "\\\\", '\\"', "\\x", "\\xc3\\xa9", "\\xff", "\\x00", "\\t", "\\n", "\\b",
              "\\v", "\\r", "\\a", "\\0", "\\101", "\\u0041", "\\N{DASH}", "\\'", "\\q", "x",
              "4", "f", "g", "é", " ", '"', "\t"]
    for _ in range(20_000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
        try:
            expected = values._unescape_each(value).decode("utf-8")
            expected = value if "\0" in expected else expected
        except UnicodeDecodeError:
            expected = value
        assert values.unescape(value) == expected, value
