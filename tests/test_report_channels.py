"""`logpipe report channels`, report_channels and report_keyphrases: the channel of a
visit from its first request's referer, on a day counted by hand
(tests/visitors_support.py) and on a table of real referers."""

from __future__ import annotations

import pytest
from conftest import Database, execute, query
from reports_support import as_csv, as_json, view
from visitors_support import CHANNELS, day_fixture  # noqa: F401 - the `day` fixture

SITE = "www.example.com"

# referer, vhost, (channel, source, keyphrase); logpipe_site_hosts holds example.com
REFERERS = [
    # search engines, with and without the search words
    ("https://www.google.com/", SITE, ("search", "Google", None)),
    ("https://www.google.co.uk/search?q=apache+access+logs&hl=en", SITE,
     ("search", "Google", "apache access logs")),
    ("http://www.google.de/url?sa=t&rct=j&q=&esrc=s&source=web&cd=1&url=https%3A%2F%2Fx",
     SITE, ("search", "Google", None)),
    ("android-app://com.google.android.googlequicksearchbox/", SITE, ("search", "Google", None)),
    ("https://www.bing.com/search?q=Piped+Logger+PostgreSQL&form=QBLH", SITE,
     ("search", "Bing", "piped logger postgresql")),
    ("https://duckduckgo.com/", SITE, ("search", "DuckDuckGo", None)),
    ("https://yandex.ru/search/?text=%D0%BB%D0%BE%D0%B3%D0%B8&lr=213", SITE,
     ("search", "Yandex", "логи")),
    ("https://www.baidu.com/s?ie=utf-8&wd=%E6%97%A5%E5%BF%97", SITE, ("search", "Baidu", "日志")),
    ("https://www.ecosia.org/search?method=index&q=apache%20log", SITE,
     ("search", "Ecosia", "apache log")),
    ("https://search.yahoo.com/search?p=logpipe&fr=yfp", SITE, ("search", "Yahoo", "logpipe")),
    ("https://www.google.com/search?q=%FF%FE", SITE, ("search", "Google", "%ff%fe")),
    # social networks
    ("https://t.co/AbC123xyz", SITE, ("social", "X/Twitter", None)),
    ("https://x.com/someone/status/1", SITE, ("social", "X/Twitter", None)),
    ("https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.example.com%2F&h=AT0", SITE,
     ("social", "Facebook", None)),
    ("https://m.facebook.com/", SITE, ("social", "Facebook", None)),
    ("https://www.linkedin.com/feed/", SITE, ("social", "LinkedIn", None)),
    ("https://lnkd.in/eXaMpLe", SITE, ("social", "LinkedIn", None)),
    ("https://old.reddit.com/r/apache/comments/abc/", SITE, ("social", "Reddit", None)),
    ("https://out.reddit.com/t3_abc?url=https%3A%2F%2Fwww.example.com", SITE,
     ("social", "Reddit", None)),
    ("https://news.ycombinator.com/item?id=42", SITE, ("social", "Hacker News", None)),
    # webmail
    ("https://mail.google.com/", SITE, ("webmail", "Gmail", None)),
    ("android-app://com.google.android.gm/", SITE, ("webmail", "Gmail", None)),
    ("https://outlook.live.com/", SITE, ("webmail", "Outlook", None)),
    ("https://mail.yahoo.com/d/folders/1/messages/2", SITE, ("webmail", "Yahoo Mail", None)),
    # the site's own hosts: the vhost, and logpipe_site_hosts, with and without www
    ("https://www.example.com/blog/", SITE, ("internal", "www.example.com", None)),
    ("https://example.com/", SITE, ("internal", "example.com", None)),
    ("https://EXAMPLE.com:443/a", "example.com", ("internal", "example.com", None)),
    # not the vhost and not listed: external, as for `report referers` (list it in
    # logpipe_site_hosts to make it internal)
    ("https://www.example.com/a", "example.com", ("website", "www.example.com", None)),
    # other sites, and none
    ("https://blog.example.net/post/1", SITE, ("website", "blog.example.net", None)),
    ("https://google.evil.example/search?q=x", SITE, ("website", "google.evil.example", None)),
    ("https://" + "a." * 3000 + "t.co/x", SITE, ("social", "X/Twitter", None)),  # hostile
    (None, SITE, ("direct", None, None)),
    ("", SITE, ("direct", None, None)),
    ("junk", SITE, ("direct", None, None)),
]


@pytest.fixture(scope="module", name="classified")
def classified_fixture(day: Database) -> dict[tuple[str | None, str], tuple]:
    execute(day.dsn, "INSERT INTO logpipe_site_hosts VALUES ('example.com') "
                     "ON CONFLICT DO NOTHING")
    try:
        rows = query(day.dsn, "SELECT r.referer, r.vhost, c.channel, c.source, c.keyphrase"
                     " FROM unnest(%s::text[], %s::text[]) AS r(referer, vhost)"
                     " CROSS JOIN LATERAL logpipe_referer_channel(r.referer, r.vhost) c",
                     ([r for r, _, _ in REFERERS], [v for _, v, _ in REFERERS]))
    finally:
        execute(day.dsn, "DELETE FROM logpipe_site_hosts")
    return {(r, v): (c, s, k) for r, v, c, s, k in rows}


@pytest.mark.parametrize(("referer", "vhost", "expected"), REFERERS)
def test_channel_of_real_referers(classified: dict, referer: str | None, vhost: str,
                                  expected: tuple) -> None:
    assert classified[(referer, vhost)] == expected


def test_channels_counted_by_hand(day: Database) -> None:
    assert as_csv(day.dsn, "channels") == CHANNELS
    assert view(day.dsn, "SELECT * FROM report_channels") == [
        (c, s or None, int(v), int(h)) for c, s, v, h in CHANNELS[1:]]
    assert view(day.dsn, "SELECT * FROM report_keyphrases") == [
        ("Bing", "piped logger", 1), ("Google", "apache piped logs", 1)]


def test_channels_filters(day: Database) -> None:
    assert as_json(day.dsn, "channels", "--bots") == [
        {"channel": "direct", "source": None, "visits": 1, "hits": 2}]
    assert as_csv(day.dsn, "channels", "--limit", "2", "--humans") == [
        CHANNELS[0], ["direct", "", "2", "3"], ["search", "Google", "1", "4"]]
    # 09:30 onwards: A's first visit now starts at 09:39:59 with an internal click
    assert as_csv(day.dsn, "channels", "--since", "2026-11-20T09:30:00Z",
                  "--until", "2026-11-20T11:00:00Z") == [
        CHANNELS[0], ["internal", SITE, "1", "2"], ["social", "X/Twitter", "1", "2"]]
    # a gap of 20 minutes: A's internal clicks at 09:39:59 and 10:09:58 begin visits
    assert as_csv(day.dsn, "channels", "--visit-gap", "20m", "--limit", "3") == [
        CHANNELS[0], ["direct", "", "3", "5"], ["internal", SITE, "3", "3"],
        ["search", "Google", "1", "2"]]
