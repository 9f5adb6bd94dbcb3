"""`logpipe load FILE...`: backfill old and rotated logs, plain or compressed (gzip,
bzip2, xz: recognised by content, not name).

Each file loads in one transaction together with its fingerprint (sha256 of
its uncompressed content), so a file is loaded completely or not at all, and
loading the same content again is refused unless --force is given. On a terminal,
progress bars show how far each file and the whole run are (load_progress).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import lzma
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, Any

import psycopg2

from logpipe import config
from logpipe.commands.common import (
    check_format,
    connect_or_say,
    dsn_of,
    warn_unused_proxies,
)
from logpipe.ingest.load_progress import FileBar, disk_size, showing_progress
from logpipe.messages import EXIT_FAILURE, EXIT_OK, first_line, say
from logpipe.parse import parser_marking_bots
from logpipe.store import database as db
from logpipe.store.copy import CONNECTION_ERRORS, SetupError, load_lines

CHUNK_BYTES = 4 * 1024 * 1024
# how a compressed file starts -> its name in messages
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
# what reading a damaged file raises (a corrupt gzip or bzip2 stream is an OSError or,
# for gzip, a zlib.error; one cut short, EOFError)
READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


def run(args: argparse.Namespace) -> int:
    check_format(args.format)
    warn_unused_proxies(args.format, args.trusted_proxy)
    dsn = dsn_of(args)
    source = args.source or config.default_source()
    parser = parser_marking_bots(args.format, source, args.max_line_bytes, args.trusted_proxy,
                                 anonymize_ip=args.anonymize_ip)
    return load_files(dsn, parser, source, args.files, force=args.force)


class ReadError(OSError):
    """A file that cannot be read to its end; str() says why."""


class LogFile:
    """A log file opened for reading: its lines (decompressed by content, not name), and
    how far into the file on disk the reading is, for progress."""

    def __init__(self, path: Path) -> None:
        self.compression = ""
        self._read = 0
        self.raw: IO[bytes] | None = None
        self.size: int | None = None
        if str(path) == "-":
            self.stream: IO[bytes] = sys.stdin.buffer
            return
        raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            head = raw.read(6)
            raw.seek(0)
            self.size = os.fstat(raw.fileno()).st_size
            self.stream = raw
            for magic, name in COMPRESSED.items():
                if head.startswith(magic):
                    self.compression = name
                    self.stream = _decompressing(name, raw)
        except BaseException:
            raw.close()
            raise
        self.raw = raw

    def read(self, size: int) -> bytes:
        try:
            block = self.stream.read(size)
        except READ_ERRORS as exc:
            raise ReadError(self.problem(exc)) from exc
        self._read += len(block)
        return block

    def position(self) -> int:
        """Bytes of the file read so far: compressed bytes for a compressed file."""
        return self._read if self.raw is None else self.raw.tell()

    def problem(self, exc: BaseException) -> str:
        """What a read error means, for a message."""
        text = first_line(exc)
        return f"{self.compression} data: {text}" if self.compression else text

    def close(self) -> None:
        if self.raw is not None:
            self.stream.close()
            self.raw.close()


def _decompressing(compression: str, raw: IO[bytes]) -> IO[bytes]:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]


def chunks_of_lines(stream: IO[bytes] | LogFile) -> Iterator[bytes]:
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


def fingerprint(log: LogFile, bar: FileBar) -> str:
    """sha256 of the file's uncompressed content (reads it to its end)."""
    digest = hashlib.sha256()
    done = 0
    for block in iter(lambda: log.read(CHUNK_BYTES), b""):
        digest.update(block)
        now = log.position()
        bar.advance(now - done)
        done = now
    return digest.hexdigest()


def load_files(dsn: str, parser: Any, source: str | None, files: list[Path], force: bool) -> int:
    conn = connect_or_say(dsn, "logpipe load")
    if conn is None:
        return EXIT_FAILURE
    failed = 0
    try:
        with showing_progress(files) as progress:
            for path in files:
                stdin = str(path) == "-"
                bar = progress.file(path, disk_size(path), "" if stdin else "checking")
                try:
                    if not _load_one(conn, parser, source, path, force, bar):
                        failed += 1
                finally:
                    bar.close()
    finally:
        conn.close()
    return EXIT_FAILURE if failed else EXIT_OK


def _load_one(conn: Any, parser: Any, source: str | None, path: Path, force: bool,
              bar: FileBar) -> bool:
    """Load one file (or stdin) in one transaction; True unless it failed. Long because
    each way a file can fail (unreadable, already loaded, a read error, the database
    lost or refusing) is said in its own words, with what to do, at the one place that
    knows; the upkeep after (fold, partitions) follows, so that it runs once per file."""
    stdin = str(path) == "-"
    try:
        mark = None
        if not stdin:
            with closing(LogFile(path)) as log:
                mark = fingerprint(log, bar)
    except READ_ERRORS as exc:
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
            with closing(LogFile(path)) as log:
                bar.loading()
                done = 0
                for chunk in chunks_of_lines(log):
                    loaded = load_lines(cur, parser, chunk, source)
                    r, j = loaded.rows, loaded.rejects
                    rows, rejects = rows + r, rejects + j
                    now = log.position()
                    bar.advance(now - done, r + j)
                    done = now
            if mark is not None:
                cur.execute(
                    "INSERT INTO logpipe_loaded_files (fingerprint, path, lines) "
                    "VALUES (%s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE "
                    "SET path = EXCLUDED.path, lines = EXCLUDED.lines, loaded_at = now()",
                    (mark, str(path.resolve()), rows + rejects),
                )
        conn.commit()
    except READ_ERRORS as exc:
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
