"""`logpipe report` as JSON, CSV and table: every report's exact rows, the table fitted
to the terminal, and logged text made safe for it (safe_text).
"""

from __future__ import annotations

import pytest
from conftest import Database
from reports_support import (
    EVIL,
    EXPECTED,
    S,
    as_csv,
    as_json,
    csv_cell,
    dicts,
    loaded_fixture,  # noqa: F401 - the `loaded` fixture
    report_ok,
    table_cell,
    table_rows,
)

from logpipe.reports.output import safe_text


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cli_json(loaded: Database, name: str) -> None:
    assert as_json(loaded.dsn, name) == dicts(EXPECTED[name])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cli_csv(loaded: Database, name: str) -> None:
    columns, rows = EXPECTED[name]
    assert as_csv(loaded.dsn, name) == [columns] + [[csv_cell(v) for v in r] for r in rows]


def test_cli_csv_referers_exact_text(loaded: Database) -> None:
    out = report_ok(loaded.dsn, "referers", "--path", "/blog/post-1", "--format", "csv")
    assert out == (
        "referer,hits\n"
        "https://news.ycombinator.com/item?id=1,2\n"
        f"{EVIL},1\n"
        "https://news.ycombinator.com/,1\n"
        "https://t.co/abc,1\n"
        "https://www.google.com/,1\n"
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cli_table(loaded: Database, name: str) -> None:
    columns, rows = EXPECTED[name]
    header, cells = table_rows(report_ok(loaded.dsn, name))
    assert header == columns
    assert cells == [[table_cell(v) for v in r] for r in rows]


def test_cli_table_exact_text(loaded: Database) -> None:
    assert report_ok(loaded.dsn, "pages", "--vhost", S) == (
        "vhost             path            hits  bytes\n"
        "----------------  --------------  ----  -----\n"
        "shop.example.com  /product/42        4  24000\n"
        "shop.example.com  /cart              2   3000\n"
        "shop.example.com  /                  1   3000\n"
        "shop.example.com  /checkout          1      0\n"
        "shop.example.com  /checkout/done     1    900\n"
    )
    assert report_ok(loaded.dsn, "referers", "--path", "/about") == (
        "referer                                 hits\n"
        "--------------------------------------  ----\n"
        "https://duckduckgo.com/                    1\n"
        "https://news.ycombinator.com/item?id=1     1\n"
    )


def test_table_escapes_terminal_controls(loaded: Database) -> None:
    out = report_ok(loaded.dsn, "referers", "--path", "/blog/post-1")
    assert "\x1b" not in out
    assert "https://evil.example/\\x1b[31mred\\x1b[0m     1\n" in out
    # JSON escapes it too; CSV into a pipe keeps the exact value
    assert "\x1b" not in report_ok(loaded.dsn, "referers", "--format", "json")
    assert '"https://evil.example/\\u001b[31mred\\u001b[0m"' in report_ok(
        loaded.dsn, "referers", "--format", "json")


def test_table_fits_terminal_width(loaded: Database) -> None:
    for name, width in (("agents", 60), ("broken-links", 60), ("referers", 30)):
        out = report_ok(loaded.dsn, name, columns=width)
        lines = out.splitlines()
        assert all(len(line) <= width for line in lines), out
        assert any(line.rstrip().endswith("…") or "… " in line for line in lines), out
    header, cells = table_rows(report_ok(loaded.dsn, "agents", columns=60))
    assert header == ["user_agent", "is_bot", "hits", "last_seen"]
    assert cells[0][0].startswith("Mozilla/5.0 (X11;") and cells[0][0].endswith("…")
    assert cells[0][1:] == ["false", "19", "2024-10-10 21:00:00+00"]


def test_safe_text() -> None:
    assert safe_text("a\x1b[2Jb\rc\x07\x9bd") == "a\\x1b[2Jb\\x0dc\\x07\\x9bd"
    assert safe_text("back\\slash") == "back\\\\slash"
    assert safe_text("abc\u202edcba\u200b") == "abc\\u202edcba\\u200b"
    assert safe_text("café 日本") == "café 日本"
