"""A finished segment's progress row outlives its file: a segment left on disk (a crash
between the commit and the unlink, then a long downtime) never loads twice, whatever
another host's writer on the same database does meanwhile; a row goes once the
writer that loaded its segment has deleted the file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import (
    COMMAND_TIMEOUT,
    Database,
    combined_line,
    execute,
    logpipe_cmd,
    query,
    start_logger,
)
from pipe_support import feed, finish, spooled_line_count

from logpipe.ingest import spool


def replay(db: Database, spool_dir: Path) -> None:
    done = subprocess.run(
        logpipe_cmd("replay", "--dsn", db.dsn, "--spool-dir", str(spool_dir)),
        check=False, capture_output=True, timeout=COMMAND_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr


def progress_rows(db: Database) -> list[tuple]:
    return query(db.dsn, "SELECT segment, finished FROM logpipe_progress ORDER BY segment")


def test_a_finished_segment_left_on_disk_does_not_load_again(
    database: Database, tmp_path: Path
) -> None:
    here, other_host = tmp_path / "here", tmp_path / "other"
    # A segment written while the database was down, kept aside before it is loaded.
    database.block()
    proc = start_logger(database.dsn, here, "--stop-timeout", "1")
    feed(proc, [combined_line(i) for i in range(300)])
    finish(proc)
    assert spooled_line_count(here) == 300
    (name,) = spool.list_segments(here)
    segment = here / name
    content, mode = segment.read_bytes(), segment.stat().st_mode & 0o777
    database.unblock()
    replay(database, here)
    assert database.rows() == 300 and not segment.exists()
    assert progress_rows(database) == []  # its writer saw the file go

    # A writer that crashed between the commit and the unlink, a week and more ago:
    # the file is still there, its row says finished.
    segment.write_bytes(content)
    segment.chmod(mode)
    execute(database.dsn, f"""
        INSERT INTO logpipe_progress (segment, byte_offset, lines, finished, updated_at)
        VALUES ('{name}', {len(content)}, 300, true, now() - interval '8 days')
        ON CONFLICT (segment) DO UPDATE
           SET finished = true, updated_at = now() - interval '8 days'""")

    # Meanwhile another host logs into the same database from its own spool.
    proc = start_logger(database.dsn, other_host)
    feed(proc, [combined_line(i, "/other") for i in range(20)])
    finish(proc)
    assert database.rows() == 320
    assert progress_rows(database) == [(name, True)]  # not the other host's to forget

    # This host comes back: the segment is recognised as loaded and deleted.
    replay(database, here)
    assert not segment.exists()
    assert database.rows() == 320
    assert query(database.dsn, "SELECT count(*) FROM access_log WHERE path LIKE '/page/%'") == [
        (300,)]
    assert progress_rows(database) == []
