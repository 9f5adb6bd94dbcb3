"""`logpipe report html`: the page, from a log loaded through the real piped logger,
opened in headless Chromium with no network: its numbers are the CLI reports' for the
same filters, hostile logged values stay text and never run, the page requests nothing
outside itself and the console stays clean."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Browser, browser, read_page
from conftest import Database, execute, fresh_database, logpipe_cmd, start_logger
from pipe_support import feed, finish
from reports_support import DATA, as_json

from logpipe.reports.output import safe_text

W = "www.example.com"
# Each tries to run code, to load something or to make a link that runs code; every one
# sets window.pwned if it ever runs.
HOSTILE_AGENT = "<script>window.pwned='agent'</script> Mozilla/5.0 \u2028 </script><!--"
HOSTILE_PATH = "/</script><script>window.pwned='path'</script>"
HOSTILE_SVG = "/<svg/onload=window.pwned='svg'>"
IMG_REFERER = "\"><img src=x onerror=window.pwned='img'>"
JS_REFERER = "javascript:window.pwned='js'//https://example.org/"
QUOTE_REFERER = "https://evil.example/\"><img src=x onerror=window.pwned='attr'>"
INTERNAL_HOSTILE = "https://www.example.com/'><img src=x onerror=window.pwned='broken'>"
FILTERS = [
    (),
    ("--since", "2024-10-09", "--until", "2024-10-10"),
    ("--vhost", W, "--humans"),
    ("--bots", "--limit", "3"),
]
TABLES = {"pages": "pages", "referers": "referers", "broken-links": "broken_links",
          "agents": "agents", "offenders": "offenders", "channels": "channels",
          "countries": "countries"}


def apache_escaped(text: str) -> str:
    """A field as Apache logs it: \\" and \\\\ and \\xhh for bytes outside ASCII."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append("\\" + char if char in '"\\' else char if 32 <= byte < 127
                   else f"\\x{byte:02x}")
    return "".join(out)


def line(when: str, path: str, status: int, referer: str, agent: str,
         host: str = "203.0.113.66") -> bytes:
    return (f'{W}:443 {host} - - [{when} +0000] "GET {path} HTTP/1.1" {status} 100 '
            f'"{apache_escaped(referer)}" "{apache_escaped(agent)}"\n').encode()


HOSTILE_LINES = [
    line("09/Oct/2024:10:00:00", HOSTILE_PATH, 200, IMG_REFERER, HOSTILE_AGENT),
    line("09/Oct/2024:10:01:00", HOSTILE_SVG, 200, JS_REFERER, HOSTILE_AGENT),
    line("09/Oct/2024:10:02:00", "/x", 200, QUOTE_REFERER, HOSTILE_AGENT),
    line("09/Oct/2024:10:03:00", HOSTILE_SVG, 404, INTERNAL_HOSTILE, HOSTILE_AGENT),
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """reports.log and the hostile lines, through the real piped logger."""
    with fresh_database() as db:
        proc = start_logger(db.dsn, tmp_path_factory.mktemp("spool"),
                            "--format", "vhost_combined")
        feed(proc, (DATA / "reports.log").read_bytes().splitlines(keepends=True)
             + HOSTILE_LINES)
        finish(proc)
        assert db.rows() == 49 + len(HOSTILE_LINES)
        yield db


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


def report_html(dsn: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PGTZ="UTC")
    env.pop("LOGPIPE_DSN", None)
    return subprocess.run(logpipe_cmd("report", "html", "--dsn", dsn, "-o", str(out), *args),
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def make_page(dsn: str, out: Path, *args: str) -> str:
    proc = report_html(dsn, out, *args)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stderr and "Traceback" not in proc.stderr
    return out.read_text(encoding="utf-8")


def opened(b: Browser, page: Path) -> dict[str, Any]:
    """The page as rendered, after checking nothing went wrong while it rendered."""
    b.events.clear()
    b.open(page.as_uri())
    assert b.problems(page.as_uri()) == []
    return read_page(b)


def shown(value: Any, column: str) -> str:
    """A CLI JSON value as the page shows it."""
    if value is None or value == "":
        return "\u2014"
    if isinstance(value, bool):
        return "bot" if value else "human"
    if isinstance(value, int) and column != "status":
        return f"{value:,}"
    if isinstance(value, str) and column in ("last_seen",):
        return value.replace("T", " ")
    return safe_text(value) if isinstance(value, str) else str(value)


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: " ".join(f) or "all")
def test_numbers_match_the_cli_reports(loaded: Database, chromium: Browser, tmp_path: Path,
                                       filters: tuple[str, ...]) -> None:
    page = tmp_path / "report.html"
    make_page(loaded.dsn, page, *filters)
    got = opened(chromium, page)
    for report, key in TABLES.items():
        cli = as_json(loaded.dsn, report, *filters)
        expected = [{c: shown(v, c) for c, v in row.items()} for row in cli]
        assert got["tables"].get(key, []) == expected, report
    # --limit is the tables' length: the totals count every day
    whole = filters[:filters.index("--limit")] if "--limit" in filters else filters
    traffic = as_json(loaded.dsn, "traffic", *whole)
    requests = sum(r["hits"] for r in traffic)
    bots = sum(r["bot_hits"] for r in traffic)
    assert got["totals"]["requests"]["text"] == f"{requests:,}"
    assert got["totals"]["bytes"]["title"] == f"{sum(r['bytes'] for r in traffic):,}"
    assert got["totals"]["bot_share"] == {
        "text": f"{100 * bots / requests:.1f}%",
        "title": f"{bots:,} of {requests:,} requests"}
    visitors = as_json(loaded.dsn, "visitors", *whole)
    assert got["totals"]["visitors"]["text"] == f"{sum(r['visitors'] for r in visitors):,}"
    assert got["totals"]["visits"]["text"] == f"{sum(r['visits'] for r in visitors):,}"
    codes: dict[int, int] = defaultdict(int)
    for r in as_json(loaded.dsn, "status", *whole):
        codes[r["status"]] += r["hits"]
    assert {r["status"]: int(r["hits"].replace(",", ""))
            for r in got["tables"]["status_codes"]} == {str(k): v for k, v in codes.items()}
    # the charts are drawn from the same traffic: humans and bots per hour or day
    series = chromium.evaluate(
        "JSON.parse(document.getElementById('logpipe-data').textContent).traffic")
    assert sum(series["humans"]) == sum(r["human_hits"] for r in traffic)
    assert sum(series["bots"]) == bots
    data = chromium.evaluate("JSON.parse(document.getElementById('logpipe-data').textContent)")
    per_period = as_json(loaded.dsn, "visitors", "--by", data["by"], *whole)
    assert sum(data["visitors_series"]["visitors"]) == sum(r["visitors"] for r in per_period)
    # requests, visitors and status codes: a uPlot canvas each
    assert got["charts"] == 3


def test_hostile_values_stay_text_and_never_run(loaded: Database, chromium: Browser,
                                                tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    text = make_page(loaded.dsn, page)
    # in the file: nothing logged can close the data's <script> or open markup
    assert text.count("<script") == 4 and text.count("</script>") == 4
    assert "window.pwned" in text and "<img" not in text and "<svg" not in text
    got = opened(chromium, page)
    assert got["pwned"] is None
    assert got["elements"] == 0  # no img, svg, iframe, object, embed made from the data
    assert got["scripts"] == 4
    cells = {c for rows in got["tables"].values() for row in rows for c in row.values()}
    for value in (safe_text(HOSTILE_AGENT), HOSTILE_PATH, HOSTILE_SVG, IMG_REFERER,
                  JS_REFERER, QUOTE_REFERER, INTERNAL_HOSTILE):
        assert value in cells, value
    # links only for http(s), and the quote stays inside the href
    assert got["links"], "the external referers are links"
    assert all(link.startswith(("https://", "http://")) for link in got["links"])
    assert not any(link.lower().startswith("javascript") for link in got["links"])
    hrefs = chromium.evaluate("[...document.querySelectorAll('a')].map(a => a.href)")
    assert "https://evil.example/%22%3E%3Cimg%20src=x%20onerror=window.pwned='attr'%3E" \
        in hrefs
    # the escaped U+2028 and </script> of the agent made it through the JSON
    assert "\\u2028" in text and "\u2028" not in text


def test_the_policy_forbids_any_other_script(loaded: Database, chromium: Browser,
                                             tmp_path: Path) -> None:
    """The Content-Security-Policy holds: a script the page did not bring is refused
    (the browser says so), so a slip in escaping would still not run code."""
    page = tmp_path / "report.html"
    text = make_page(loaded.dsn, page)
    assert "default-src &#x27;none&#x27;" in text
    opened(chromium, page)
    chromium.evaluate("""(() => { const s = document.createElement('script');
        s.textContent = "window.pwned = 'injected'"; document.body.appendChild(s);
        const i = document.createElement('img'); i.src = 'https://example.org/x.png';
        document.body.appendChild(i); })()""")
    assert chromium.evaluate("window.pwned === undefined")
    problems = " ".join(chromium.problems())
    assert "Content Security Policy" in problems and "script" in problems


def test_phone_and_dark(loaded: Database, tmp_path: Path) -> None:
    """On a phone's width in dark mode: no horizontal scrolling of the page (wide tables
    scroll in their own box), the dark colours apply, the charts fit."""
    page = tmp_path / "report.html"
    make_page(loaded.dsn, page)
    with browser(tmp_path / "profile", width=390, height=844) as b:
        b.call("Emulation.setEmulatedMedia",
               features=[{"name": "prefers-color-scheme", "value": "dark"}])
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844,
               deviceScaleFactor=2, mobile=True)
        b.open(page.as_uri())
        assert b.problems(page.as_uri()) == []
        sizes = b.evaluate("""({page: document.documentElement.scrollWidth,
            view: window.innerWidth,
            bg: getComputedStyle(document.body).backgroundColor,
            chart: Math.max(...[...document.querySelectorAll('.uplot')].map(
                u => u.getBoundingClientRect().right))})""")
    assert sizes["page"] <= sizes["view"]
    assert sizes["chart"] <= sizes["view"]
    assert sizes["bg"] == "rgb(18, 21, 27)"


def test_a_busy_month_stays_small(database: Database, tmp_path: Path) -> None:
    """30 days of requests with long paths, referers and agents (2,000 characters,
    5,000 of each): the tables hold --limit rows each and the charts a point a day, so
    the file's size does not grow with the traffic (bench/html_bench.py times 10M)."""
    execute(database.dsn, """
        INSERT INTO access_log (time, vhost, remote_host, path, status, bytes, referer,
                                user_agent, is_bot)
        SELECT timestamptz '2024-09-01 00:00+00' + i * interval '129.6 seconds',
               'www.example.com', '198.51.100.' || (i % 250),
               '/' || repeat(md5((i % 5000)::text), 60),
               (ARRAY[200, 200, 200, 404, 500])[i % 5 + 1], i % 50000,
               'https://ref' || (i % 5000) || '.example/' || repeat('r', 2000),
               'Agent/' || (i % 5000) || ' ' || repeat('é', 2000), i % 3 = 0
          FROM generate_series(0, 19999) i""")
    page = tmp_path / "report.html"
    make_page(database.dsn, page)
    size = page.stat().st_size
    assert size <= 2 * 1024 * 1024, f"{size} bytes"
    data = json.loads(page.read_text().split('id="logpipe-data">')[1].split("</script>")[0])
    assert data["by"] == "day" and len(data["traffic"]["t"]) == 30
    assert data["totals"]["requests"] == 20000


def test_usage_errors(loaded: Database, tmp_path: Path) -> None:
    no_output = subprocess.run(logpipe_cmd("report", "html", "--dsn", loaded.dsn),
                               capture_output=True, text=True, timeout=60, check=False)
    assert no_output.returncode == 2
    assert "report html needs -o FILE" in no_output.stderr
    other = subprocess.run(logpipe_cmd("report", "pages", "-o", str(tmp_path / "x"),
                                       "--dsn", loaded.dsn),
                           capture_output=True, text=True, timeout=60, check=False)
    assert other.returncode == 2 and "-o FILE is for `logpipe report html`" in other.stderr
    missing = report_html(loaded.dsn, tmp_path / "no" / "such" / "dir.html")
    assert missing.returncode == 1
    assert "cannot write" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "no").exists()


def test_standard_output_and_timestamps(loaded: Database) -> None:
    proc = subprocess.run(logpipe_cmd("report", "html", "--dsn", loaded.dsn, "-o", "-"),
                          capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ, PGTZ="UTC"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<!DOCTYPE html>")
    data = json.loads(proc.stdout.split('id="logpipe-data">')[1].split("</script>")[0])
    # three days of log: by hour, the first hour the log's first (8 Oct 2024 09:00 UTC)
    assert data["by"] == "hour"
    assert data["traffic"]["t"][0] == dt.datetime(2024, 10, 8, 9, tzinfo=dt.timezone.utc
                                                  ).timestamp()
