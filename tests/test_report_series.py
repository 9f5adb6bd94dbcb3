"""The time-series reports, status and traffic: whole quarters of an hour from the rollup
and partial ones from access_log, --by hour, and days in the session's time zone.
"""

from __future__ import annotations

import json
import os
import subprocess

from conftest import Database, logpipe_cmd
from reports_support import S, W, as_json, loaded_fixture  # noqa: F401 - the `loaded` fixture


def test_status_traffic_partial_quarters(loaded: Database) -> None:
    """Whole quarters of an hour from the rollup, the partial ones from access_log."""
    args = ("--since", "2024-10-09T08:20:30Z", "--until", "2024-10-09T12:40:00Z")
    assert as_json(loaded.dsn, "traffic", *args) == [
        {"day": "2024-10-09", "vhost": W, "hits": 9, "human_hits": 7, "bot_hits": 2,
         "bytes": 20580}]
    assert as_json(loaded.dsn, "status", *args) == [
        {"day": "2024-10-09", "vhost": W, "status": 200, "hits": 3},
        {"day": "2024-10-09", "vhost": W, "status": 304, "hits": 1},
        {"day": "2024-10-09", "vhost": W, "status": 404, "hits": 4},
        {"day": "2024-10-09", "vhost": W, "status": 500, "hits": 1},
    ]
    # within one quarter: all from access_log
    assert as_json(loaded.dsn, "traffic", "--since", "2024-10-09T08:20:30Z",
                   "--until", "2024-10-09T08:30:30Z", "--humans") == [
        {"day": "2024-10-09", "vhost": W, "hits": 3, "human_hits": 3, "bot_hits": 0,
         "bytes": 9216}]


def test_traffic_by_hour(loaded: Database) -> None:
    rows = as_json(loaded.dsn, "traffic", "--by", "hour", "--vhost", S)
    assert rows == [
        {"hour": "2024-10-08T14:00:00+00:00", "vhost": S, "hits": 5, "human_hits": 2,
         "bot_hits": 3, "bytes": 5350},
        {"hour": "2024-10-09T18:00:00+00:00", "vhost": S, "hits": 4, "human_hits": 3,
         "bot_hits": 1, "bytes": 13900},
        {"hour": "2024-10-10T16:00:00+00:00", "vhost": S, "hits": 3, "human_hits": 3,
         "bot_hits": 0, "bytes": 6900},
        {"hour": "2024-10-10T20:00:00+00:00", "vhost": S, "hits": 1, "human_hits": 0,
         "bot_hits": 1, "bytes": 6000},
        {"hour": "2024-10-10T21:00:00+00:00", "vhost": S, "hits": 1, "human_hits": 1,
         "bot_hits": 0, "bytes": 400},
    ]
    assert as_json(loaded.dsn, "status", "--by", "hour", "--path", "/product/43") == [
        {"hour": "2024-10-09T18:00:00+00:00", "vhost": S, "status": 404, "hits": 1},
        {"hour": "2024-10-10T21:00:00+00:00", "vhost": S, "status": 404, "hits": 1},
    ]


def test_time_zone_of_days(loaded: Database) -> None:
    """Days follow the session time zone: PGTZ moves the 02:00 UTC requests a day back."""
    env = dict(os.environ, PGTZ="America/New_York")
    out = subprocess.run(logpipe_cmd("report", "traffic", "--vhost", W, "--format", "json",
                                     "--dsn", loaded.dsn),
                         capture_output=True, text=True, env=env, check=True).stdout
    assert [(r["day"], r["hits"]) for r in json.loads(out)] == [
        ("2024-10-08", 11), ("2024-10-09", 14), ("2024-10-10", 10)]
