"""The README's first command works as written: install, pipe the sample, show rows."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from conftest import admin_execute

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_script_installs_pipes_the_sample_and_shows_rows() -> None:
    name = f"logpipe_test_qs_{uuid.uuid4().hex[:10]}"
    try:
        result = subprocess.run(["scripts/quickstart.sh", name], cwd=ROOT, capture_output=True,
                                text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        assert "   43 | 2026-11-22 08:00:20+00 | 2026-11-22 08:42:00+00" in result.stdout
        assert "    404 |    4" in result.stdout
        assert "this line is not an access-log line at all" in result.stdout
        assert "schema is up to date" in result.stderr
    finally:
        admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
