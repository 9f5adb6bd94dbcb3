"""Reading spool segments for the writer: which entries are segments, how each is
parsed (from its header), and runs of whole lines from a byte offset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from logpipe.ingest import spool
from logpipe.messages import say

MAX_LINE_READ = 64 * 1024 * 1024


@dataclass
class SegmentMeta:
    parser: Any
    source: str | None
    header_len: int


# (format, source, the header's --max-line-bytes or None, its --trusted-proxy networks)
# and whether it cuts client addresses (--anonymize-ip) -> parser; may raise ValueError
# (FormatError, a bad network)
ParserFactory = Callable[[str, str | None, int | None, tuple[str, ...], bool], Any]


class SegmentCatalog:
    """Each segment's parser and header length, known once its header is read; one
    parser per (format, source, line cap), shared by the segments that use it."""

    def __init__(self, make_parser: ParserFactory) -> None:
        self.make_parser = make_parser
        self._parsers: dict[tuple[str, str | None, int | None, tuple[str, ...], bool],
                            Any] = {}
        self._segments: dict[str, SegmentMeta] = {}
        self._unreadable: set[str] = set()
        self._refused: set[str] = set()

    def segment_names(self, directory: Path) -> list[str]:
        """The segments to load, oldest first. An entry named like a segment that is
        not one (a link, a FIFO, another user's file) is skipped, and said once."""
        names, refused = spool.scan_segments(directory)
        for name, problem in refused.items():
            if name not in self._refused:
                say(f"ignoring {spool.shown(directory / name)} in the spool: {problem}; logpipe "
                    "loads only the segment files it wrote itself. Remove it")
        self._refused = set(refused)  # said again only if it goes and comes back
        return names

    def meta(self, name: str, path: Path, closed: bool) -> SegmentMeta | None:
        """None for a live segment whose header is not written yet, or one in a format
        this version cannot read (said once; the file is kept)."""
        meta = self._segments.get(name)
        if meta is not None:
            return meta
        header = spool.read_header(path)
        if header is None:
            if not closed:
                return None
            # Closed without a header: not written by logpipe; read it as combined.
            header = ({"format": "combined", "source": None}, 0)
        info, header_len = header
        log_format = str(info.get("format") or "combined")
        source = info.get("source")
        cap = info.get("max_line_bytes")
        proxies = info.get("trusted_proxies")
        key = (log_format, source, cap if isinstance(cap, int) and cap > 0 else None,
               tuple(map(str, proxies)) if isinstance(proxies, list) else (),
               info.get("anonymize_ip") is True)
        if key not in self._parsers:
            try:
                self._parsers[key] = self.make_parser(*key)
            except ValueError as exc:  # FormatError, bad network: a segment we cannot read
                if name not in self._unreadable:
                    self._unreadable.add(name)
                    say(f"skipping spool segment {spool.shown(path)}: {exc}; it is kept as it is")
                return None
        meta = SegmentMeta(self._parsers[key], source, header_len)
        self._segments[name] = meta
        return meta

    def forget(self, name: str) -> None:
        self._segments.pop(name, None)


def read_chunk(path: Path, offset: int, closed: bool, max_lines: int,
               max_bytes: int) -> tuple[bytes, bool]:
    """Whole lines from offset, at most max_lines / max_bytes; at_end when all is read.

    A single line longer than max_bytes is read to its end (up to MAX_LINE_READ),
    so even a megabyte line becomes exactly one reject.
    """
    try:
        with open(spool.open_segment(path), "rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
            while b"\n" not in data and len(data) < MAX_LINE_READ:
                more = f.read(max_bytes)
                if not more:
                    break
                data += more
            at_eof = not f.read(1)
    except OSError:  # gone (loaded by another writer), or swapped for something else
        return b"", False
    cut = nth_line_end(data, max_lines)
    if cut is not None:
        return data[:cut], False
    if closed and at_eof:
        return data, True  # a closed segment may end with a final unterminated line
    end = data.rfind(b"\n") + 1
    if end == 0 and len(data) >= MAX_LINE_READ:
        return data, False  # a line longer than MAX_LINE_READ: rejected in pieces
    return data[:end], False


def nth_line_end(data: bytes, n: int) -> int | None:
    """Offset just past the n-th newline in data, or None if there are fewer than n+1 lines."""
    if data.count(b"\n") <= n:
        return None
    pos = -1
    for _ in range(n):
        pos = data.find(b"\n", pos + 1)
    return pos + 1
