"""Narrowing a batch PostgreSQL refused down to the rows it refuses, in few COPYs.

Pure: the COPYs are the caller's two functions. `load(rows)` COPYs rows and keeps
them when PostgreSQL takes them; `trial(rows)` COPYs them and always rolls them back.
Each returns None, or the Refusal that says why not.

The batch is loaded a window at a time, so that a refusal costs a window's rows
rather than the batch's. While PostgreSQL refuses a window, rows are taken out of it
one at a time and the rest is loaded again, each found from the first refused prefix:
- its last row, when that row is refused on its own: a value that does not fit or
  breaks a constraint (the error names its COPY line: the rows before it passed),
  or one a trigger refuses;
- otherwise the rows conflict (a trigger's sum overflows, a constraint over the
  batch): the other row of the conflict is found too, and of the two the one whose
  removal lets more of the window load is refused. Of a huge value and ordinary
  ones, that is the huge value, wherever it stands.
What is kept is exactly what was seen to load, on top of the windows before it.

For k refused rows among n this costs O(n / window + k log window) COPYs. Only
the loads that succeed are kept, one per window: each holds a subtransaction until
the commit, so there are at most MAX_WINDOWS of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

# A failed COPY sends all its rows anyway: a window bounds what one refusal costs.
WINDOW = 1000
# PostgreSQL tracks 64 subtransactions per session cheaply; beyond that every
# snapshot in the cluster looks further. A huge batch gets wider windows instead.
MAX_WINDOWS = 32
REASON = "PostgreSQL refused the row: "


@dataclass(frozen=True)
class Refusal:
    message: str  # the error's first line
    line: int | None = None  # the COPY line the error names (1-based), when it names one
    # Raised by COPY itself (a value, a constraint of the table), not by a function it
    # ran: the named row is refused on its own, or for following an equal row.
    by_copy: bool = False

    def named_row(self, count: int) -> int | None:
        """The index of the row the error names, when it is one of the first count."""
        if self.line is not None and 0 < self.line <= count:
            return self.line - 1
        return None


Attempt = Callable[[Sequence[T]], Optional[Refusal]]


def narrow(rows: Sequence[T], load: Attempt[T],
           trial: Attempt[T]) -> tuple[int, list[tuple[T, str]]]:
    """Load what PostgreSQL takes of rows: (rows loaded, [(row, reason)] refused)."""
    width = max(WINDOW, -(-len(rows) // MAX_WINDOWS))
    loaded = 0
    refused: list[tuple[T, str]] = []
    for start in range(0, len(rows), width):
        window = list(rows[start:start + width])
        known_good = 0  # this many leading rows of the window are known to load together
        while window:
            refusal = load(window)
            if refusal is None:
                loaded += len(window)
                break
            if _drop_named(window, refusal, trial, known_good, refused):
                continue
            culprit, message, known_good = _culprit(window, refusal, trial, known_good)
            refused.append((window.pop(culprit), REASON + message))
    return loaded, refused


def _drop_named(rows: list[T], refusal: Refusal, trial: Attempt[T], known_good: int,
                refused: list[tuple[T, str]]) -> int:
    """Take out of rows each row an error names that is refused on its own too (a value
    that does not fit: the usual refusal), trying what follows it until a trial takes
    it; returns how many. The rows before a named row passed, so each costs a COPY, and
    one more to try the row alone when a trigger refused it."""
    start, dropped = 0, 0  # rows[:start] passed up to the last named row
    while refusal is not None:
        bad = refusal.named_row(len(rows) - start)
        if bad is None or bad + start < known_good:
            break
        bad += start
        alone = refusal if refusal.by_copy else trial(rows[bad:bad + 1])
        if alone is None:  # refused only with the rows before it: see _culprit
            break
        refused.append((rows.pop(bad), REASON + alone.message))
        start, dropped = bad, dropped + 1
        refusal = trial(rows[start:]) if start < len(rows) else None
    return dropped


def _culprit(rows: list[T], refusal: Refusal, trial: Attempt[T],
             known_good: int) -> tuple[int, str, int]:
    """The row to refuse of rows, which PostgreSQL refused together: (its index, the
    error, how many leading rows of the others are known to load together). A row
    the error names was seen taken alone (_drop_named)."""
    named = refusal.named_row(len(rows))
    if named is None or named < known_good:
        named = None
    bad = len(rows) if named is None else named + 1
    tip, message = _tipping(rows, trial, known_good, bad, refusal.message)
    if tip != named:
        alone = trial(rows[tip:tip + 1])
        if alone is not None:
            return tip, alone.message, tip
    if tip == 0:  # refused with no row before it, yet taken alone: nothing to weigh
        return tip, message, 0
    partner = _partner(rows, tip, trial)
    return _worse(rows, partner, tip, trial), message, partner


def _tipping(rows: Sequence[T], trial: Attempt[T], good: int, bad: int,
             message: str) -> tuple[int, str]:
    """The row that makes a loading prefix refused: rows[:good] load, rows[:bad] do not.
    Returns (its index, the error). Probes gallop from `good`, then bisect: close
    culprits (a run of bad rows) cost a trial or two each."""
    step = 1
    while bad - good > 1:
        probe = min(good + step, bad - 1)
        failed = trial(rows[:probe])
        if failed is None:
            good, step = probe, step * 2
            continue
        # COPY takes rows in order: an error at a named row refuses every prefix reaching it.
        named = failed.named_row(probe)
        bad = named + 1 if named is not None and named >= good else probe
        message = failed.message
        step = max(1, (bad - good) // 2)
    return good, message


def _partner(rows: Sequence[T], tip: int, trial: Attempt[T]) -> int:
    """The other row of the conflict that rows[tip] completes: the last start s such
    that rows[s:tip + 1] is refused (rows[:tip + 1] is, rows[tip] alone is not)."""
    refused_from, loads_from = 0, tip
    while loads_from - refused_from > 1:
        start = (refused_from + loads_from) // 2
        if trial(rows[start:tip + 1]) is None:
            loads_from = start
        else:
            refused_from = start
    return refused_from


def _worse(rows: list[T], first: int, second: int, trial: Attempt[T]) -> int:
    """Of two conflicting rows, the one whose removal lets more of rows load (the
    later one when it is a tie: the first row came first)."""
    without_second = _loads_until(rows[:second] + rows[second + 1:], trial, second)
    if without_second is None:
        return second
    without_first = _loads_until(rows[:first] + rows[first + 1:], trial, first)
    if without_first is None or without_first > without_second:
        return first
    return second


def _loads_until(rows: Sequence[T], trial: Attempt[T], good: int) -> int | None:
    """How many leading rows load together (rows[:good] do), or None if all of them do."""
    refusal = trial(rows)
    if refusal is None:
        return None
    named = refusal.named_row(len(rows))
    bad = named + 1 if named is not None and named >= good else len(rows)
    return _tipping(rows, trial, good, bad, refusal.message)[0]
