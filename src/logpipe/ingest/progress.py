"""Claiming a segment and recording how far it is loaded: the logpipe_progress table.

A segment's row is locked FOR UPDATE SKIP LOCKED for the length of a batch's
transaction, so two writers never load the same bytes; the offset advances in the
same transaction as the batch's rows, so a crash neither loses nor repeats a line.

A finished segment's row is what keeps its lines from loading twice, so it stays as
long as the file can still be read: a crash between the commit and the unlink, or a
long downtime, leaves the file behind. Only the writer that saw the file deleted
forgets its row (forget), never a clean-up by age: another host's writer on the same
database cannot see this host's spool.
"""

from __future__ import annotations

from typing import Any

CLAIM_SQL = """
INSERT INTO logpipe_progress (segment) VALUES (%s) ON CONFLICT (segment) DO NOTHING;
SELECT byte_offset, finished FROM logpipe_progress WHERE segment = %s FOR UPDATE SKIP LOCKED
"""
ADVANCE_SQL = """
UPDATE logpipe_progress
   SET byte_offset = %s, lines = lines + %s, finished = %s, updated_at = now()
 WHERE segment = %s
"""
FORGET_SQL = "DELETE FROM logpipe_progress WHERE finished AND segment = ANY(%s)"


def claim(cur: Any, segment: str) -> tuple[int, bool] | None:
    """(committed byte offset, finished) with the segment's row locked, or None when
    another writer holds it right now."""
    cur.execute(CLAIM_SQL, (segment, segment))
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def advance(cur: Any, segment: str, offset: int, lines: int, finished: bool) -> None:
    cur.execute(ADVANCE_SQL, (offset, lines, finished, segment))


def forget(conn: Any, segments: list[str]) -> None:
    """Drop the rows of finished segments whose files are deleted for good."""
    with conn.cursor() as cur:
        cur.execute(FORGET_SQL, (segments,))
    conn.commit()
