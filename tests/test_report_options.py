"""`logpipe report` options and errors: help for every option, unknown reports, bad
options, an unreachable database or a missing schema, and --since/--until parsing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess

import pytest
from conftest import Database, logpipe_cmd
from reports_support import EXPECTED, loaded_fixture, run_report  # noqa: F401 - the `loaded` fixture

from logpipe import cli
from logpipe.reports.times import parse_time


def test_every_option_has_help() -> None:
    parser = cli.build_subcommand_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    report_parser = sub.choices["report"]
    for action in report_parser._actions:
        assert action.help and action.help.strip(), action.option_strings or action.dest
    names = {o for a in report_parser._actions for o in a.option_strings}
    assert {"--path", "--vhost", "--since", "--until", "--limit", "--humans", "--bots",
            "--format", "--by", "--dsn"} <= names
    proc = subprocess.run(logpipe_cmd("report", "--help"), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0
    for name in EXPECTED:
        assert f"  {name} " in proc.stdout, name
    for option in ("--path", "--vhost", "--since", "--until", "--limit", "--humans",
                   "--bots", "--format", "--dsn"):
        assert option in proc.stdout


def test_unknown_report(loaded: Database) -> None:
    proc = run_report(loaded.dsn, "visits")
    assert proc.returncode == 2  # a usage error, like every other bad command line
    assert proc.stdout == ""
    assert "error: unknown report 'visits'" in proc.stderr
    assert proc.stderr.startswith("logpipe[") and proc.stderr.count("\n") == 1
    assert "referers, pages, status, broken-links, offenders, agents, traffic" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_database_unreachable() -> None:
    proc = run_report("host=127.0.0.1 port=1 dbname=nothing connect_timeout=2", "pages")
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr and "PostgreSQL is running" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_missing(empty_database: Database) -> None:
    proc = run_report(empty_database.dsn, "referers")
    assert proc.returncode == 1
    assert "logpipe initdb" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["pages", "--since", "yesterday"], ["pages", "--limit", "-1"],
                                  ["pages", "--humans", "--bots"], ["pages", "--format", "xml"]])
def test_bad_options(args: list[str]) -> None:
    proc = run_report("dbname=unused", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr


def test_parse_time() -> None:
    assert parse_time("30d").ago == dt.timedelta(days=30)
    assert parse_time("12h").ago == dt.timedelta(hours=12)
    assert parse_time("15m").ago == dt.timedelta(minutes=15)
    assert parse_time("2w").ago == dt.timedelta(weeks=2)
    spec = parse_time("2024-10-01")
    assert (spec.iso, spec.date_only) == ("2024-10-01", True)
    assert parse_time("2024-10-01T13:00:00Z").iso == "2024-10-01T13:00:00+00:00"
    assert parse_time("2024-10-01 13:00").iso == "2024-10-01T13:00:00"
