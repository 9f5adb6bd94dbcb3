"""`logpipe report countries` and report_countries: visitors and requests per country of
the client address, looked up as the rows load (tests/visitors_support.py)."""

from __future__ import annotations

from conftest import Database, query
from reports_support import as_csv, as_json, view
from visitors_support import COUNTRIES, W, day_fixture  # noqa: F401 - the `day` fixture


def test_countries_counted_by_hand(day: Database) -> None:
    assert query(day.dsn, "SELECT DISTINCT remote_host, country FROM access_log ORDER BY 1") \
        == [("10.0.0.5", None), ("193.0.6.139", "NL"), ("200.160.2.3", "BR"),
            ("8.8.8.8", "US")]
    assert as_csv(day.dsn, "countries") == COUNTRIES
    assert view(day.dsn, "SELECT * FROM report_countries") == [
        (c or None, int(v), int(h)) for c, v, h in COUNTRIES[1:]]


def test_countries_filters(day: Database) -> None:
    assert as_json(day.dsn, "countries", "--humans", "--vhost", W) == [
        {"country": "NL", "visitors": 2, "hits": 8},
        {"country": "BR", "visitors": 2, "hits": 2},
        {"country": "US", "visitors": 1, "hits": 2}]
    assert as_json(day.dsn, "countries", "--bots") == [
        {"country": None, "visitors": 1, "hits": 2}]
    # the first day whole (from its summary), the second cut at 00:05 (from access_log)
    assert as_csv(day.dsn, "countries", "--since", "2026-11-20T00:00:00Z",
                  "--until", "2026-11-21T00:05:00Z") == [
        COUNTRIES[0], ["NL", "3", "9"], ["US", "1", "2"], ["", "1", "2"], ["BR", "1", "1"]]
    assert as_csv(day.dsn, "countries", "--limit", "1") == COUNTRIES[:2]
    assert as_csv(day.dsn, "countries", "--path", "/news") == [
        COUNTRIES[0], ["US", "1", "2"]]
