"""When the writer folds the report rollups: once the spool is caught up, or every
FOLD_INTERVAL under sustained load. Folding many batches at once costs PostgreSQL
far less than folding each."""

from __future__ import annotations

import time
from typing import Any, Callable

from logpipe.messages import say
from logpipe.store import database as db

FOLD_INTERVAL = 10.0  # seconds: how long report rollups may lag under sustained load


class FoldPolicy:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.unfolded = False  # rows committed since the rollups were last folded
        self.folded_at = clock()
        self._problem: str | None = None

    def rows_committed(self) -> None:
        self.unfolded = True

    def maybe_fold(self, conn: Any, caught_up: bool) -> None:
        """Fold if due. A failed fold never stops loading: it is said once, and the
        `report_*` views stay exact from the pending tables meanwhile."""
        now = self.clock()
        if not self.unfolded or not (caught_up or now - self.folded_at >= FOLD_INTERVAL):
            return
        problem = db.fold_rollups(conn)
        self.unfolded, self.folded_at = False, now
        if problem is not None and problem != self._problem:
            say(f"cannot update the report rollups ({problem}); rows still load. "
                "Run `logpipe initdb` to upgrade the schema")
        self._problem = problem
