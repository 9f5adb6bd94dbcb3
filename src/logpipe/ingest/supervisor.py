"""Starts the writer child, restarts it with backoff when it dies, stops it at the end."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from logpipe.messages import EXIT_WRITER_CONFIG, say

MAX_BACKOFF = 10.0
STABLE_AFTER = 30.0  # a writer that ran this long resets the backoff


class WriterSupervisor:
    """The writer is a fresh `python -m logpipe _writer` process.

    exec'ing a new interpreter (rather than a bare fork) means the child shares
    no locks, file descriptors or signal state with the reader: stdin is
    /dev/null, so it never competes with the reader for Apache's lines.
    """

    def __init__(self, writer_args: list[str], env: dict[str, str]) -> None:
        self.command = [sys.executable, "-m", "logpipe", "_writer", *writer_args]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.gave_up = False
        self._started_at = 0.0
        self._backoff = 0.1
        self._next_start = 0.0
        self._lifeline: int | None = None
        self._start_failed = False

    def start(self) -> None:
        # The lifeline: the writer stops when this pipe closes (at EOF, or if we die).
        lifeline_read, self._lifeline = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [*self.command, "--lifeline", str(lifeline_read)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=self.env,
                close_fds=True,
                pass_fds=(lifeline_read,),
            )
        except OSError as exc:
            # E.g. EACCES: after --user that user cannot run this interpreter (a venv or
            # pyenv under /root). The reader must go on filling the spool regardless:
            # raising here would kill it, and Apache stalls once the pipe is full.
            self._cut_lifeline()
            if not self._start_failed:
                say(
                    f"cannot start the writer: {exc.strerror or exc}: {self.command[0]}; "
                    "lines are kept in the spool. With --user, that user must be able to "
                    "run this Python and read logpipe's files. Retrying every "
                    f"{MAX_BACKOFF:g} s"
                )
            self._start_failed = True
            self._next_start = time.monotonic() + MAX_BACKOFF
            return
        finally:
            os.close(lifeline_read)
        if self._start_failed:
            say("the writer started")
            self._start_failed = False
        self._started_at = time.monotonic()

    def _cut_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def check(self) -> None:
        """Called from the read loop: restart a dead writer when its backoff has passed."""
        if self.gave_up:
            return
        if self.proc is not None:
            status = self.proc.poll()
            if status is None:
                return
            self.proc = None
            self._cut_lifeline()
            self._writer_died(status)
            return
        if time.monotonic() >= self._next_start:
            self.start()

    def stop(self, timeout: float) -> None:
        """Let a writer load what is left: wait up to timeout, then kill it.

        A writer that is dead, dying or waiting out its backoff is started once
        more: with its lifeline cut it loads what is closed and exits.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                if self.gave_up:
                    return
                self.start()
                if self.proc is None:
                    return  # it cannot start (said why); the spool keeps the lines
            self._cut_lifeline()
            assert self.proc is not None
            try:
                status = wait_for_exit(self.proc, max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                say(
                    f"the writer did not finish within {timeout:g} s; what it had not "
                    f"loaded stays in the spool for the next logger or `logpipe replay`"
                )
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                return
            self.proc = None
            if status >= 0 or time.monotonic() >= deadline:
                return  # done, or it said why it could not (database down)

    def _writer_died(self, status: int) -> None:
        if status == EXIT_WRITER_CONFIG:
            self.gave_up = True
            say(
                "the writer cannot start because of a configuration error (see above); "
                "lines are still kept in the spool. Fix it, then run `logpipe replay` "
                "or restart Apache"
            )
            return
        ran_for = time.monotonic() - self._started_at
        if ran_for >= STABLE_AFTER:
            self._backoff = 0.1
        how = f"signal {-status}" if status < 0 else f"status {status}"
        say(f"the writer exited ({how}); restarting it in {self._backoff:.1f} s")
        self._next_start = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)


def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """proc's exit status, the moment it exits: Popen.wait with a timeout polls, up to
    50 ms late (Apache's restart waits on the reader). Linux's pidfd says when; without
    it, Popen.wait. subprocess.TimeoutExpired after `timeout` seconds."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
        return proc.wait(timeout)
    try:
        exited, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not exited:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return proc.wait()
