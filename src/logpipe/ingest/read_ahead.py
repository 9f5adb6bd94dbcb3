"""The writer's next batch, read and parsed in a thread while PostgreSQL loads the current
one: psycopg2 lets go of the GIL while it sends rows and waits for the server, so the
writer's parsing and the server's work overlap. The whole batch is parsed ahead, not
only its start: a batch is parsed ahead while the one before it streams, so the server
never waits for the writer to parse (measured: with a head of 2 MiB the server sat idle
in its transaction ~25% of the time, waiting for the rest of the head to be parsed).
It holds one batch's rows in memory beside the current one's (batches are 4 MiB of
lines; the writer's peak RSS went from 51 to 65 MB in bench/run.py's backlog section)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from logpipe.ingest.segments import read_chunk
from logpipe.store.copy import ParsedHead, parse_head


class ReadAhead:
    """The next chunk of one segment (read_chunk's), parsed (parse_head's), from `offset`:
    started by load_lines once every line of the current batch is parsed (at once when
    that batch was parsed ahead too), taken by the next batch if it starts at that
    offset with that parser."""

    def __init__(self, parser: Any, path: Path, offset: int, closed: bool, max_lines: int,
                 max_bytes: int) -> None:
        self.parser = parser
        self.offset = offset
        self._read = (path, offset, closed, max_lines, max_bytes)
        self._thread: threading.Thread | None = None
        self._result: tuple[bytes, bool, ParsedHead] | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
            self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def take(self, offset: int, parser: Any) -> tuple[bytes, bool, ParsedHead] | None:
        """(chunk, at_end, head) if read from `offset` for `parser`; None otherwise (then
        the caller reads and parses itself)."""
        self.wait()
        if offset != self.offset or parser is not self.parser:
            return None
        return self._result

    def _run(self) -> None:
        try:
            chunk, at_end = read_chunk(*self._read)
            self._result = (chunk, at_end, parse_head(self.parser, chunk, len(chunk)))
        except Exception:  # noqa: BLE001 - the next batch reads and parses it itself
            self._result = None
