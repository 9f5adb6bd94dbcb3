"""The piped logger end to end: real processes, real signals, real PostgreSQL.

Tests wait for events (rows loaded, lines spooled, a message on stderr), not for
a fixed time, and assert nothing about speed (that is bench/run.py's job).
"""

from __future__ import annotations

import functools
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from conftest import (
    COMMAND_TIMEOUT,
    Database,
    combined_line,
    execute,
    loaded_paths,
    logpipe_cmd,
    query,
    scalar,
    signal_dispositions,
    start_logger,
    wait_for,
    writer_pids,
)
from pipe_support import (
    PREFIX,
    StderrReader,
    assert_exactly_once,
    feed,
    finish,
    joined,
    spooled_line_count,
)

from logpipe.ingest import spool


def test_lines_become_rows_and_spool_is_emptied(database: Database, tmp_path: Path) -> None:
    lines = [combined_line(i) for i in range(2_000)]
    proc = start_logger(database.dsn, tmp_path)
    feed(proc, lines)
    finish(proc)
    assert_exactly_once(database, lines)
    assert spool.list_segments(tmp_path) == []  # fully loaded segments are deleted


def test_rows_load_while_the_logger_runs_not_only_at_eof(
        database: Database, tmp_path: Path) -> None:
    """A quiet site's line is loaded after --flush-interval, with stdin still open."""
    proc = start_logger(database.dsn, tmp_path)
    feed(proc, [combined_line(1)])
    wait_for(lambda: database.rows() == 1, what="the row, with stdin still open")
    finish(proc)


def test_reader_widens_the_pipe_and_gathers_lines_written_one_by_one(
        database: Database, tmp_path: Path) -> None:
    """Apache writes a line per request: the reader asks for a 1 MiB pipe (room while
    it gathers lines for a moment between reads) and loads every line exactly once."""
    import fcntl

    get_pipe_size = getattr(fcntl, "F_GETPIPE_SZ", 1032)
    proc = start_logger(database.dsn, tmp_path)
    assert proc.stdin is not None
    wait_for(lambda: fcntl.fcntl(proc.stdin.fileno(), get_pipe_size) == 1024 * 1024,
             timeout=10, what="the reader widening its pipe")
    lines = [combined_line(i) for i in range(500)]
    for line in lines:
        proc.stdin.write(line)
        proc.stdin.flush()
    finish(proc)
    assert_exactly_once(database, lines)


def test_identical_lines_are_separate_rows(database: Database, tmp_path: Path) -> None:
    line = combined_line(7)
    proc = start_logger(database.dsn, tmp_path)
    feed(proc, [line, line, line])
    finish(proc)
    assert database.rows() == 3


def test_kill_9_writer_repeatedly_mid_stream(database: Database, tmp_path: Path) -> None:
    lines = [combined_line(i) for i in range(60_000)]
    proc = start_logger(database.dsn, tmp_path, "--batch-lines", "500")
    feeder = threading.Thread(target=feed, args=(proc, lines, 2_000, 0.05))
    feeder.start()
    killed: set[int] = set()

    def worth_a_kill(loaded: int) -> set[int]:
        """Writers not killed yet, once rows loaded since the last kill (`loaded` then), so
        the kill lands mid-stream; or once everything is loaded (an idle writer will do)."""
        rows = database.rows()
        if rows > loaded or rows == len(lines):
            return set(writer_pids(proc.pid)) - killed
        return set()

    while feeder.is_alive() or len(killed) < 5:
        victims = wait_for(functools.partial(worth_a_kill, database.rows()), timeout=60,
                           what="a restarted writer loading rows")
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    joined(feeder)
    err = finish(proc)
    assert len(killed) >= 5
    assert b"the writer exited (signal 9); restarting it" in err
    assert_exactly_once(database, lines)


def test_kill_9_reader_then_next_logger_loads_everything(
    database: Database, tmp_path: Path
) -> None:
    """Apache respawns a dead logger on the same pipe; what the dead one read is in the spool."""
    read_end, write_end = os.pipe()
    first = start_logger(database.dsn, tmp_path, stdin=read_end)
    lines = [combined_line(i) for i in range(5_000)]
    os.write(write_end, b"".join(lines[:2_500]))
    wait_for(lambda: spooled_line_count(tmp_path) + database.rows() >= 2_500, what="spool")
    first.kill()
    first.wait(timeout=COMMAND_TIMEOUT)
    second = start_logger(database.dsn, tmp_path, stdin=read_end)
    os.close(read_end)
    os.write(write_end, b"".join(lines[2_500:]))
    os.close(write_end)
    second.communicate(timeout=COMMAND_TIMEOUT)
    assert second.returncode == 0
    wait_for(lambda: database.rows() >= 5_000, what="all rows")
    assert_exactly_once(database, lines)
    wait_for(lambda: spool.list_segments(tmp_path) == [], what="empty spool")


def test_kill_9_of_the_reader_at_any_moment_loses_nothing(
    database: Database, tmp_path: Path
) -> None:
    """Kill -9 the reader 15 times while lines pour in, a new one on the same pipe each
    time, as Apache does. A reader that held bytes it had read but not yet written
    lost them when killed at that moment (seen: 200-400 lines in a third of runs of
    40 kills); taking them with splice, it holds none. A kill that lands while the
    kernel moves a line can cut that line in two: both pieces are kept as rejects."""
    read_end, write_end = os.pipe()
    lines = [combined_line(i) for i in range(60_000)]
    kills = 0
    logger = start_logger(database.dsn, tmp_path, stdin=read_end)
    for start in range(0, len(lines), 4_000):
        for line in lines[start:start + 4_000]:
            os.write(write_end, line)  # one write per line, as Apache writes them
        logger.kill()  # while it is still taking the lines just written
        logger.wait(timeout=COMMAND_TIMEOUT)
        kills += 1
        logger = start_logger(database.dsn, tmp_path, stdin=read_end)
    os.close(read_end)
    os.close(write_end)
    logger.communicate(timeout=COMMAND_TIMEOUT)
    assert logger.returncode == 0
    wait_for(lambda: database.rows() + database.rejects() // 2 >= len(lines), timeout=60,
             what=lambda: f"{database.rows()} rows, {database.rejects()} rejects")
    wait_for(lambda: spool.list_segments(tmp_path) == [], what="empty spool")
    loaded = Counter(loaded_paths(database.dsn))
    assert max(loaded.values()) == 1  # nothing twice
    pieces = {bytes(r[0]) for r in query(database.dsn, "SELECT line FROM access_log_rejects")}
    cut = 0
    for line in lines:
        path = re.search(rb'"GET (\S+?)\?', line).group(1).decode()
        if loaded[path]:
            continue
        whole = line[:-1]  # the line was cut in two: both pieces are rejects
        assert any(whole.startswith(p) and whole[len(p):] in pieces for p in pieces), line
        cut += 1
    assert cut <= kills
    # (a cut just before a line's LF leaves the line whole, and its LF an empty line)
    empty = scalar(database.dsn, "SELECT count(*) FROM access_log_rejects WHERE line = ''")
    assert database.rejects() == 2 * cut + empty and empty <= kills
    assert database.rows() == len(lines) - cut


def test_database_blocked_mid_stream_recovers_without_a_restart(
    database: Database, tmp_path: Path
) -> None:
    lines = [combined_line(i) for i in range(30_000)]
    proc = start_logger(database.dsn, tmp_path)
    stderr = StderrReader(proc)
    feed(proc, lines[:10_000])
    wait_for(lambda: database.rows() > 0, what="first rows")
    database.block()
    feed(proc, lines[10_000:20_000])
    wait_for(lambda: b"database unreachable" in stderr.text(), what="the outage to be noticed")
    database.unblock()
    feed(proc, lines[20_000:])
    wait_for(lambda: database.rows() == 30_000, timeout=60, what="all rows after the outage")
    err = finish(proc, stderr=stderr)
    assert err.count(b"database unreachable") == 1, err
    assert err.count(b"database reachable again") == 1, err
    assert_exactly_once(database, lines)


def test_start_with_database_down(database: Database, tmp_path: Path) -> None:
    database.block()
    lines = [combined_line(i) for i in range(3_000)]
    proc = start_logger(database.dsn, tmp_path)
    feed(proc, lines)
    wait_for(lambda: spooled_line_count(tmp_path) == 3_000, what="lines in the spool")
    database.unblock()
    wait_for(lambda: database.rows() == 3_000, timeout=30, what="rows after recovery")
    finish(proc)
    assert_exactly_once(database, lines)


def test_reader_keeps_draining_stdin_while_database_is_down(
    database: Database, tmp_path: Path
) -> None:
    database.block()
    lines = [combined_line(i) for i in range(200_000)]
    proc = start_logger(database.dsn, tmp_path)
    feed(proc, lines)  # would hang if the reader stopped reading: the pipe holds 1 MiB at most
    wait_for(lambda: spooled_line_count(tmp_path) == 200_000, what="spooled lines")
    database.unblock()
    wait_for(lambda: database.rows() == 200_000, timeout=60, what="rows after recovery")
    finish(proc)


def test_sigterm_then_eof_mid_stream_loses_nothing(database: Database, tmp_path: Path) -> None:
    """Apache's graceful restart: SIGTERM at once, lines keep coming, EOF later."""
    lines = [combined_line(i) for i in range(20_000)]
    proc = start_logger(database.dsn, tmp_path)
    wait_for(lambda: signal_dispositions(proc.pid) == (True, True),
             what="the logger's signal handlers")
    feed(proc, lines[:10_000])
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGHUP)  # prefork Apache sends this too on restart
    time.sleep(0.5)  # time for an exit that must not happen
    assert proc.poll() is None, "the logger must keep reading after SIGTERM"
    feed(proc, lines[10_000:])
    finish(proc)
    assert_exactly_once(database, lines)


def test_two_loggers_share_one_spool_directory(database: Database, tmp_path: Path) -> None:
    """Old and new loggers overlap after a graceful restart."""
    a_lines = [combined_line(i, "/a") for i in range(20_000)]
    b_lines = [combined_line(i, "/b") for i in range(20_000)]
    a = start_logger(database.dsn, tmp_path, "--batch-lines", "700")
    b = start_logger(database.dsn, tmp_path, "--batch-lines", "700")
    threads = [threading.Thread(target=feed, args=(p, ls, 1_000, 0.02))
               for p, ls in ((a, a_lines), (b, b_lines))]
    for t in threads:
        t.start()
    for t in threads:
        joined(t)
    finish(a)
    finish(b)
    assert_exactly_once(database, a_lines + b_lines)


def test_garbage_and_binary_input_never_crash(database: Database, tmp_path: Path) -> None:
    rng = random.Random(1234)
    good = [combined_line(i) for i in range(1_000)]
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).replace(b"\n", b"")
            + b"\n" for _ in range(500)]
    junk += [b"\x00\x00\x00\n", b"\xff\xfe\xfd\n", b"\n", b"x" * 2_000_000 + b"\n"]
    mixed = good + junk
    rng.shuffle(mixed)
    proc = start_logger(database.dsn, tmp_path)
    feed(proc, mixed + [b"last line without newline"])
    finish(proc)
    assert database.rows() == 1_000
    assert database.rejects() == len(junk) + 1
    assert proc.returncode == 0


def test_replay_loads_what_a_dead_logger_left(database: Database, tmp_path: Path) -> None:
    database.block()
    lines = [combined_line(i) for i in range(4_000)]
    proc = start_logger(database.dsn, tmp_path, "--stop-timeout", "1")
    feed(proc, lines)
    finish(proc)  # the writer could not load anything: it all stays in the spool
    assert spooled_line_count(tmp_path) == 4_000
    database.unblock()
    running = start_logger(database.dsn, tmp_path)  # replay is safe beside a running logger
    feed(running, [combined_line(i, "/live") for i in range(10)])
    replay = subprocess.run(
        logpipe_cmd("replay", "--dsn", database.dsn, "--spool-dir", str(tmp_path)),
        check=False, capture_output=True, timeout=COMMAND_TIMEOUT,
    )
    assert replay.returncode == 0, replay.stderr
    finish(running)
    assert database.rows() == 4_010
    assert_exactly_once(database, lines + [combined_line(i, "/live") for i in range(10)])


def test_spool_full_drops_and_counts_but_keeps_reading(database: Database, tmp_path: Path) -> None:
    database.block()
    lines = [combined_line(i) for i in range(50_000)]
    proc = start_logger(database.dsn, tmp_path, "--spool-max", "1M", "--stop-timeout", "1")
    feed(proc, lines)  # would hang if the reader stopped reading
    err = finish(proc)
    assert b"cannot write to the spool" in err
    match = re.search(rb"(\d+) lines \(\d+ bytes\) were dropped", err)
    assert match, err
    dropped = int(match.group(1))
    assert dropped > 0
    assert spooled_line_count(tmp_path) + dropped == 50_000


def test_bad_format_is_a_usage_error(database: Database, tmp_path: Path) -> None:
    proc = subprocess.run(
        logpipe_cmd("--dsn", database.dsn, "--spool-dir", str(tmp_path), "--format", "%h %Z %t"),
        check=False, input=b"", capture_output=True, timeout=COMMAND_TIMEOUT,
    )
    assert proc.returncode == 2
    assert b"%Z" in proc.stderr
    assert PREFIX.match(proc.stderr)


def test_rows_postgresql_refuses_become_rejects_without_stalling(
    database: Database, tmp_path: Path
) -> None:
    """Half of a big batch refused by the database: the rest loads, nothing loops."""
    execute(database.dsn,
            "ALTER TABLE access_log ADD CONSTRAINT no_odd CHECK (path NOT LIKE '/odd/%')")
    lines = [combined_line(i, "/odd" if i % 2 else "/even") for i in range(20_000)]
    proc = start_logger(database.dsn, tmp_path, "--stop-timeout", "120")
    feed(proc, lines)
    err = finish(proc)
    assert b"database unreachable" not in err
    assert database.rows() == 10_000
    assert database.rejects() == 10_000
    reasons = query(database.dsn, "SELECT DISTINCT reason FROM access_log_rejects")
    assert len(reasons) == 1 and reasons[0][0].startswith("PostgreSQL refused the row: ")
    assert query(database.dsn, "SELECT count(*) FROM access_log WHERE path LIKE '/odd/%'") == [
        (0,)]
