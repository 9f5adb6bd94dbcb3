"""`logpipe load FILE...`: backfill old and rotated logs, gzip-compressed or not.

Each file loads in one transaction together with its fingerprint (sha256 of
its uncompressed content), so a file is loaded completely or not at all, and
loading the same content again is refused unless --force is given.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psycopg2

from logpipe import config
from logpipe.commands.common import check_format, dsn_of
from logpipe.messages import EXIT_FAILURE, EXIT_OK, first_line, say
from logpipe.parse import parser_marking_bots
from logpipe.store import database as db
from logpipe.store.copy import CONNECTION_ERRORS, SetupError, load_lines

CHUNK_BYTES = 4 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


def run(args: argparse.Namespace) -> int:
    check_format(args.format)
    dsn = dsn_of(args)
    source = args.source or config.default_source()
    parser = parser_marking_bots(args.format, source, args.max_line_bytes)
    return load_files(dsn, parser, source, args.files, force=args.force)


def open_log(path: Path) -> IO[bytes]:
    """A binary stream of the file's lines, decompressing gzip by content, not name."""
    if str(path) == "-":
        return sys.stdin.buffer
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def chunks_of_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Runs of whole lines of about CHUNK_BYTES; the last may lack its newline."""
    tail = b""
    while True:
        block = stream.read(CHUNK_BYTES)
        if not block:
            break
        block = tail + block
        cut = block.rfind(b"\n") + 1
        if cut == 0 and len(block) < 4 * CHUNK_BYTES:
            tail = block
            continue
        cut = cut or len(block)  # a line longer than 16 MiB goes to rejects in pieces
        tail = block[cut:]
        yield block[:cut]
    if tail:
        yield tail


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open_log(path) as stream:
        for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def load_files(dsn: str, parser: Any, source: str | None, files: list[Path], force: bool) -> int:
    try:
        conn = db.connect(dsn, "logpipe load")
    except psycopg2.OperationalError as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {first_line(exc)}; check --dsn")
        return EXIT_FAILURE
    failed = 0
    try:
        for path in files:
            if not _load_one(conn, parser, source, path, force):
                failed += 1
    finally:
        conn.close()
    return EXIT_FAILURE if failed else EXIT_OK


def _load_one(conn: Any, parser: Any, source: str | None, path: Path, force: bool) -> bool:
    stdin = str(path) == "-"
    try:
        mark = None if stdin else fingerprint(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        say(f"{path}: cannot read it ({exc}); skipped")
        return False
    rows = rejects = 0
    try:
        with conn.cursor() as cur:
            if mark is not None and not force:
                cur.execute(
                    "SELECT path, loaded_at FROM logpipe_loaded_files WHERE fingerprint = %s",
                    (mark,),
                )
                seen = cur.fetchone()
                if seen is not None:
                    conn.rollback()
                    say(f"{path}: already loaded (as {seen[0]} at {seen[1]:%Y-%m-%d %H:%M}); "
                        "skipped. Use --force to load it again")
                    return True
            with open_log(path) as stream:
                for chunk in chunks_of_lines(stream):
                    r, j = load_lines(cur, parser, chunk, source)
                    rows, rejects = rows + r, rejects + j
            if mark is not None:
                cur.execute(
                    "INSERT INTO logpipe_loaded_files (fingerprint, path, lines) "
                    "VALUES (%s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE "
                    "SET path = EXCLUDED.path, lines = EXCLUDED.lines, loaded_at = now()",
                    (mark, str(path.resolve()), rows + rejects),
                )
        conn.commit()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        conn.rollback()
        say(f"{path}: read error ({exc}); nothing of it was loaded")
        return False
    except CONNECTION_ERRORS as exc:
        say(f"{path}: lost the database ({first_line(exc)}); nothing of it was loaded. "
            "Run the same command again")
        return False
    except (SetupError, psycopg2.Error) as exc:
        conn.rollback()
        say(f"{path}: cannot load ({first_line(exc)}); nothing of it was loaded. "
            "If tables are missing, run `logpipe initdb`")
        return False
    say(f"{path}: loaded {rows} rows, {rejects} rejects (see access_log_rejects)")
    try:
        problem = db.fold_rollups(conn)
    except CONNECTION_ERRORS as exc:
        problem = first_line(exc)
    if problem is not None:
        say(f"{path}: the report rollups were not updated ({problem}); the next "
            "`logpipe report` or running logger updates them. If the schema is old, run "
            "`logpipe initdb`")
    # old dates go to access_log's default partition first: give them partitions
    problem = _prepare_partitions(conn)
    if problem is not None:
        say(f"{path}: access_log's partitions were not prepared ({problem}); rows of dates "
            "without one wait in its default partition for a running logger or `logpipe "
            "initdb` to prepare them. If the schema is old, run `logpipe initdb`")
    return True


def _prepare_partitions(conn: Any) -> str | None:
    try:
        return db.prepare_partitions(conn)
    except CONNECTION_ERRORS as exc:
        return first_line(exc)
