"""Installing this project as a user would: a wheel in a fresh virtualenv, run from
outside the checkout, has its schema files, its console script and `python -m logpipe`."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT, fresh_database, scalar


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=240, check=False)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def test_distribution_name_is_not_the_unrelated_logpipe_on_pypi() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "apache-logpipe"
    assert project["scripts"] == {"logpipe": "logpipe.cli:main"}
    # an instruction to install "logpipe" from PyPI (quoting it as a warning is fine)
    wrong = re.compile(r"(?<!`)pip install (-\S+ )*logpipe\b")
    for text in [ROOT / "README.md", *sorted((ROOT / "conf" / "apache").glob("*.conf"))]:
        for line in Path(text).read_text().splitlines():
            assert not wrong.search(line.replace("-m pip", "pip")), (text, line)


@pytest.mark.timeout(300)  # builds a wheel and installs its dependencies into a new venv
def test_wheel_installs_into_a_fresh_venv_and_runs_outside_the_checkout(
        tmp_path: Path) -> None:
    # no schema: the installed initdb must find its sql files
    with fresh_database(schema=False) as database:
        check_wheel(tmp_path, database.dsn)


def check_wheel(tmp_path: Path, dsn: str) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("apache_logpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"logpipe/sql/001_tables.sql", "logpipe/sql/020_reports.sql"} <= set(names)
    assert {n.split("/")[0] for n in names} == {"logpipe",
                                                f"{wheel.name.rsplit('-', 3)[0]}.dist-info"}

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(venv / "bin" / "python", "-c", "import logpipe; print(logpipe.__file__)",
                cwd=elsewhere).stdout
    assert where.startswith(str(venv)), where  # not the checkout's src/
    run(venv / "bin" / "logpipe", "--help", cwd=elsewhere)
    out = run(venv / "bin" / "python", "-m", "logpipe", "initdb", "--dsn", dsn,
              cwd=elsewhere)
    assert "schema is up to date" in out.stderr
    sample = (ROOT / "scripts" / "sample" / "access.log").read_bytes()
    subprocess.run([venv / "bin" / "python", "-m", "logpipe", "--dsn", dsn,
                    "--spool-dir", tmp_path / "spool"], input=sample, cwd=elsewhere,
                   capture_output=True, timeout=120, check=True)
    assert scalar(dsn, "SELECT count(*) FROM access_log") == 43

    # from a git URL (this checkout's committed tree), as the README shows
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
        f"git+file://{ROOT}", cwd=elsewhere)
    assert "initdb" in run(venv / "bin" / "logpipe", "initdb", "--help", cwd=elsewhere).stdout
