"""Claiming a segment and recording how far it is loaded: the logpipe_progress table.

A segment's row is locked FOR UPDATE SKIP LOCKED for the length of a batch's
transaction, so two writers never load the same bytes; the offset advances in the
same transaction as the batch's rows, so a crash neither loses nor repeats a line.
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
FORGET_OLD_SQL = (
    "DELETE FROM logpipe_progress WHERE finished AND updated_at < now() - interval '7 days'"
)


def claim(cur: Any, segment: str) -> tuple[int, bool] | None:
    """(committed byte offset, finished) with the segment's row locked, or None when
    another writer holds it right now."""
    cur.execute(CLAIM_SQL, (segment, segment))
    row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def advance(cur: Any, segment: str, offset: int, lines: int, finished: bool) -> None:
    cur.execute(ADVANCE_SQL, (offset, lines, finished, segment))


def forget_old(conn: Any) -> None:
    """Drop the rows of segments finished over a week ago (their files are gone)."""
    with conn.cursor() as cur:
        cur.execute(FORGET_OLD_SQL)
    conn.commit()
