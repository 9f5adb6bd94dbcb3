"""logpipe.parse.agents.classify_agent: the labelled list, crawlerdetect parity, lazy loading."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from conftest import ROOT

from logpipe.parse import agents
from logpipe.parse.agents import classify_agent

LIST = ROOT / "tests" / "data" / "user_agents.tsv"


def labelled() -> list[tuple[bool, str, str]]:
    rows = []
    for line in LIST.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("#", "label\t")):
            continue
        label, category, agent = line.split("\t", 2)
        assert label in ("bot", "human"), line
        rows.append((label == "bot", category, agent))
    return rows


def test_list_is_big_and_varied() -> None:
    rows = labelled()
    assert len(rows) >= 150
    assert len({agent for _, _, agent in rows}) == len(rows), "duplicate user agents"
    categories = Counter(category for _, category, _ in rows)
    for category in ("desktop", "mobile", "search", "crawler", "tool", "monitor", "feed",
                     "headless", "empty", "preview", "scanner"):
        assert categories[category] >= 2, category
    agents_ = {agent for _, _, agent in rows}
    assert "" in agents_ and "-" in agents_
    for needle in ("Googlebot", "bingbot", "curl/", "Wget/", "python-requests/",
                   "Go-http-client/", "UptimeRobot", "HeadlessChrome", "Feedly"):
        assert any(needle in a for a in agents_), needle


@pytest.mark.parametrize(("is_bot", "category", "agent"), labelled(),
                         ids=lambda v: v[:60] if isinstance(v, str) else None)
def test_labelled_agent(is_bot: bool, category: str, agent: str) -> None:
    assert classify_agent(agent) is is_bot


@pytest.mark.parametrize("agent", [None, "", " ", "-", "Mozilla/5.0", "Mozilla/5.0 (compatible)",
                                   "node", "Deno/1.38.0", "Java-http-client/17.0.1"])
def test_no_or_tool_agent_is_bot(agent: str | None) -> None:
    assert classify_agent(agent) is True


@pytest.mark.parametrize("agent", [
    "Lynx/2.8.9rel.1 libwww-FM/2.14 SSL-MM/1.4.1 GNUTLS/3.7.1",
    "ELinks/0.16.1.1 (textmode; Linux 6.1.0-13-amd64 x86_64; 200x50-2)",
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"),
    ("Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/120.0.6099.144 Mobile DuckDuckGo/5 Safari/537.36"),
])
def test_browsers_are_human(agent: str) -> None:
    assert classify_agent(agent) is False


def test_same_answers_as_crawlerdetect() -> None:
    """The faster regex built from crawlerdetect's data agrees with CrawlerDetect itself."""
    from crawlerdetect import CrawlerDetect

    reference = CrawlerDetect()
    fast = agents.build_matcher(extras=False)
    samples = [agent for _, _, agent in labelled()]
    # case changes and agents glued together exercise the lower-casing and the grouping
    samples += [a.upper() for a in samples] + [a.swapcase() for a in samples]
    samples += [a + " " + b for a, b in zip(samples[::7], samples[3::5])]
    samples += ["Mozilla/5.0 (X11) Zend\\Http\\Client", "ZEND_HTTP_CLIENT", "008/0.83",
                "Ruby", "rUbY/3.2", "b0t", "b0t!", "Dart/3.2", "Dart/x", "ÄÖÜ crawler",
                "\x00\x1b[31m bot", "İstanbul Spider"]
    mismatches = [a for a in samples if fast(a) != reference.is_crawler(a)]
    assert mismatches == []


def test_grouped_alternation_keeps_meaning() -> None:
    import re

    patterns = ["abc", "axy", "b.d", "^start", "x|y", "a?z", "Café", r"\Dx", "[A-C]q"]
    grouped = re.compile(agents._grouped_alternation(patterns))
    plain = re.compile("|".join(patterns), re.IGNORECASE)
    for text in ["abc", "AXY", "b-d", "startx", "nostart", "x", "Y", "z", "CAFÉ", "ax",
                 "1x", "-x", "bq", "dq", ""]:
        assert bool(grouped.search(text.lower())) == bool(plain.search(text)), text


def test_import_is_cheap() -> None:
    """Importing logpipe.parse.agents loads no pattern library; the first call does."""
    code = (
        "import sys, logpipe.parse.agents as a\n"
        "print('crawlerdetect' in sys.modules)\n"
        "a.classify_agent('curl/8.5.0')\n"
        "print('crawlerdetect' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"]


def test_agents_bench_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "agents_bench.py"), "--rounds", "1"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "| crawlerdetect" in out and "| ua-parser" in out and "| logpipe.parse.agents" in out
