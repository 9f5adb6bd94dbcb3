"""Progress bars for `logpipe load` on a terminal: the current file's and, for several
files, the whole run's (bytes, lines, lines/s, time left), drawn with tqdm.

Nothing is drawn unless stderr is a terminal, so cron mails and logs stay as they
were. While the bars are up, whatever is written to stderr (logpipe's own
messages, a library's) goes above them instead of through them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

# {postfix} (lines, lines/s) comes with tqdm's ", " before it
BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B{postfix} [{elapsed}<{remaining}]"
NO_TOTAL = "{desc}: {n_fmt}B{postfix} [{elapsed}]"  # stdin: how far is all there is to say
NAME_WIDTH = 30  # a longer file name would push the figures off the end of the line


def shown_name(path: Path) -> str:
    """A file's name for its bar (the messages give the whole path): control characters
    would move the cursor, so they are escaped."""
    if str(path) == "-":
        return "stdin"
    text = path.name if path.name.isprintable() else ascii(path.name)[1:-1]
    return text if len(text) <= NAME_WIDTH else "..." + text[3 - NAME_WIDTH:]


class _AboveBars:
    """stderr while bars are drawn: each write clears the bars, then draws them again."""

    def __init__(self, stream: TextIO, tqdm: Any) -> None:
        self.stream = stream
        self.tqdm = tqdm

    def write(self, text: str) -> int:
        with self.tqdm.external_write_mode(file=self.stream):
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return True


class Bar:
    """One bar: bytes done of a total (None: unknown), lines, lines per second."""

    def __init__(self, tqdm: Any, stream: TextIO, desc: str, total: int | None,
                 position: int) -> None:
        self.lines = 0
        self.started = time.monotonic()
        self._bar = tqdm(
            desc=desc, total=total, position=position, leave=False, file=stream,
            unit="B", unit_scale=True, unit_divisor=1000, dynamic_ncols=True,
            bar_format=BAR if total is not None else NO_TOTAL, postfix=self._postfix(),
        )

    def _postfix(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = f", {self.lines / elapsed:,.0f} lines/s" if elapsed > 0 and self.lines else ""
        return f"{self.lines:,} lines{rate}"

    def advance(self, done_bytes: int, lines: int) -> None:
        self.lines += lines
        self._bar.postfix = self._postfix()
        self._bar.update(done_bytes)

    def describe(self, desc: str) -> None:
        self._bar.set_description_str(desc, refresh=False)

    def restart(self, desc: str) -> None:
        """The same file again from its start (the second pass), under another name."""
        self.lines = 0
        self.started = time.monotonic()
        self._bar.reset(self._bar.total)
        self.describe(desc)

    def close(self) -> None:
        self._bar.refresh()  # the last figures (an update may have been too soon to draw)
        self._bar.close()


class _NoBar:
    """A Bar that draws nothing (stderr is not a terminal)."""

    def advance(self, done_bytes: int, lines: int) -> None:
        pass

    def describe(self, desc: str) -> None:
        pass

    def restart(self, desc: str) -> None:
        pass

    def close(self) -> None:
        pass


@contextmanager
def showing_progress(files: list[Path], enabled: bool | None = None
                     ) -> Iterator[LoadProgress]:
    """The bars of a `logpipe load` of these files, up while the block runs."""
    progress = LoadProgress(files, enabled)
    progress.start()
    try:
        yield progress
    finally:
        progress.stop()


class LoadProgress:
    """The bars of one `logpipe load` run (see showing_progress): file() gives the bar
    of each file, whose bytes also count towards the overall bar."""

    def __init__(self, files: list[Path], enabled: bool | None = None) -> None:
        self.files = files
        self.enabled = _on_terminal() if enabled is None else enabled
        self._overall: Bar | None = None
        self._tqdm: Any = None
        self._stderr: TextIO | None = None

    def start(self) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self._stderr = sys.stderr
        sys.stderr = _AboveBars(sys.stderr, tqdm)  # type: ignore[assignment]
        if len(self.files) > 1:
            sizes = [disk_size(p) for p in self.files]
            total = None if None in sizes else sum(s for s in sizes if s is not None)
            self._overall = Bar(tqdm, self._stderr, f"{len(self.files)} files", total, 0)

    def stop(self) -> None:
        if self._overall is not None:
            self._overall.close()
        if self._stderr is not None:
            sys.stderr = self._stderr

    def file(self, path: Path, total: int | None, phase: str = "") -> FileBar:
        """The bar of one file of `total` bytes (None: unknown); `phase` is said after its
        name (e.g. "checking")."""
        name = shown_name(path)
        if not self.enabled:
            return FileBar(_NoBar(), None, total, name)
        bar = Bar(self._tqdm, self._stderr, f"{name} ({phase})" if phase else name,  # type: ignore[arg-type]
                  total, 1 if self._overall is not None else 0)
        return FileBar(bar, self._overall, total, name)


class FileBar:
    """A file's bar, and the overall one its loading pass counts towards."""

    def __init__(self, bar: Bar | _NoBar, overall: Bar | None, total: int | None,
                 name: str) -> None:
        self.bar = bar
        self.name = name
        self.overall = overall
        self.total = total
        self.counted = 0  # bytes the overall bar has of this file
        self.counting = False  # the first pass (checking) does not count overall

    def loading(self) -> None:
        """From the start again: the loading pass, which the overall bar counts."""
        self.bar.restart(self.name)
        self.counting = True

    def advance(self, done_bytes: int, lines: int = 0) -> None:
        self.bar.advance(done_bytes, lines)
        if self.counting and self.overall is not None:
            self.overall.advance(done_bytes, lines)
            self.counted += done_bytes

    def close(self) -> None:
        """Done with the file, loaded or not: overall, all its bytes are behind us."""
        self.bar.close()
        if self.overall is not None and self.total is not None and self.total > self.counted:
            self.overall.advance(self.total - self.counted, 0)


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def disk_size(path: Path) -> int | None:
    """Bytes of a file on disk (compressed if it is), None for stdin; 0 if missing (it
    is reported when its turn comes)."""
    if str(path) == "-":
        return None
    try:
        return path.stat().st_size
    except OSError:
        return 0
