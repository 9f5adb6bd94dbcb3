"""`logpipe report --source` and `--by-source`: several servers' rows in one database.

Two databases: `mixed` holds tests/data/reports.log loaded as source web1 and the same
lines plus a few more as source web2 (so every count web2 could leak into would change);
`alone` holds only web1's load. Any report with --source web1 on `mixed` must print
exactly what it prints on `alone` without the filter, whatever else it is filtered by,
including the reports that usually read the rollups (pages, status, traffic, referers
of a hot path), which keep no source.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Database, execute, fresh_database, logpipe_cmd
from reports_support import DATA, EXPECTED, W, as_json, report_ok, run_report, table_rows

# Lines only web2 has: another vhost, on a day the shared lines also cover.
WEB2_ONLY = (
    'web2.example:443 192.0.2.77 - - [09/Oct/2024:10:00:00 +0000] "GET /only-web2 HTTP/1.1" '
    '200 700 "https://search.example/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"\n'
    'web2.example:443 192.0.2.77 - - [09/Oct/2024:10:00:05 +0000] "GET /gone HTTP/1.1" '
    '404 10 "https://web2.example/only-web2" "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"\n'
)
HOT_PATH = "/blog/post-1"  # made hot: `referers --path` reads its referer rollup


def load(db: Database, path: Path, source: str) -> None:
    proc = subprocess.run(
        logpipe_cmd("load", "--dsn", db.dsn, "--format", "vhost_combined", "--source", source,
                    str(path)),
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    # its referers now come from logpipe_path_referers, which has no source
    execute(db.dsn, f"SELECT logpipe_promote_hot_paths(ARRAY['{HOT_PATH}'])")


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Database]]:
    """(mixed, alone): see the module's docstring."""
    web2_log = tmp_path_factory.mktemp("web2") / "web2.log"
    web2_log.write_bytes((DATA / "reports.log").read_bytes() + WEB2_ONLY.encode())
    with fresh_database() as mixed, fresh_database() as alone:
        load(mixed, DATA / "reports.log", "web1")
        load(mixed, web2_log, "web2")
        load(alone, DATA / "reports.log", "web1")
        yield mixed, alone


# Each report, and filters that take each of its queries' other paths (partial days and
# quarters, whole days, --by hour, a hot path, humans or bots).
CASES = [
    *([name, "--limit", "0"] for name in EXPECTED),
    ["pages", "--since", "2024-10-08T12:00:00Z", "--until", "2024-10-10T06:00:00Z"],
    ["pages", "--since", "2024-10-09", "--humans"],
    ["pages", "--since", "2024-10-09T08:00:00Z", "--until", "2024-10-09T20:00:00Z"],
    ["traffic", "--since", "2024-10-09T08:20:30Z", "--until", "2024-10-09T12:40:00Z"],
    ["traffic", "--by", "hour", "--bots"],
    ["status", "--since", "2024-10-09", "--until", "2024-10-09", "--by", "hour"],
    ["referers", "--path", HOT_PATH],
    ["referers", "--path", HOT_PATH, "--humans"],
    ["broken-links", "--vhost", W],
    ["offenders", "--bots"],
    ["agents", "--since", "2024-10-09T12:00:00Z", "--limit", "3"],
]


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_source_filter_is_exact(databases: tuple[Database, Database], args: list[str]) -> None:
    mixed, alone = databases
    want = as_json(alone.dsn, *args)
    assert want, "a case without rows proves nothing"
    assert as_json(mixed.dsn, *args) != want, "web2's rows should change the unfiltered report"
    assert as_json(mixed.dsn, *args, "--source", "web1") == want


def test_source_repeated_takes_each(databases: tuple[Database, Database]) -> None:
    mixed, _ = databases
    for name in EXPECTED:
        everything = as_json(mixed.dsn, name, "--limit", "0")
        assert as_json(mixed.dsn, name, "--limit", "0", "--source", "web1",
                       "--source", "web2") == everything, name
        assert as_json(mixed.dsn, name, "--source", "nosuch") == [], name
    assert as_json(mixed.dsn, "pages", "--source", "web2", "--vhost", "web2.example") == [
        {"vhost": "web2.example", "path": "/only-web2", "hits": 1, "bytes": 700}]


def by_source(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The rows of one source, without their source column."""
    return [{k: v for k, v in r.items() if k != "source"} for r in rows
            if r["source"] == source]


@pytest.mark.parametrize("args", [["traffic"], ["traffic", "--by", "hour", "--humans"],
                                  ["status"], ["status", "--since", "2024-10-09T08:20:30Z"]],
                         ids=" ".join)
def test_by_source_splits_per_server(databases: tuple[Database, Database],
                                     args: list[str]) -> None:
    mixed, alone = databases
    rows = as_json(mixed.dsn, *args, "--by-source")
    assert {r["source"] for r in rows} == {"web1", "web2"}
    assert list(rows[0])[:2] == ["hour" if "hour" in args else "day", "source"]
    assert by_source(rows, "web1") == as_json(alone.dsn, *args)
    assert by_source(rows, "web2") == as_json(mixed.dsn, *args, "--source", "web2")
    keys = [tuple(v for k, v in r.items() if k in ("day", "hour", "source", "vhost", "status"))
            for r in rows]
    assert keys == sorted(keys), "ordered by day or hour, then source"
    # with --source: only that server's rows, still split
    assert as_json(mixed.dsn, *args, "--by-source", "--source", "web2") == \
        [r for r in rows if r["source"] == "web2"]


def test_by_source_table_has_a_source_column(databases: tuple[Database, Database]) -> None:
    mixed, _ = databases
    header, cells = table_rows(report_ok(mixed.dsn, "traffic", "--by-source"))
    assert header == ["day", "source", "vhost", "hits", "human_hits", "bot_hits", "bytes"]
    assert {c[1] for c in cells} == {"web1", "web2"}


def test_by_source_on_a_report_it_cannot_split() -> None:
    proc = run_report("dbname=unused", "pages", "--by-source")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("logpipe[")
    assert "--by-source splits status and traffic, not pages" in proc.stderr
    assert "--source NAME" in proc.stderr


def test_help_teaches_both_options() -> None:
    out = subprocess.run(logpipe_cmd("report", "--help"), capture_output=True, text=True,
                         check=True).stdout
    assert "--source NAME" in out and "--source web1 --source web2" in out
    assert "--by-source" in out and "per server" in out
