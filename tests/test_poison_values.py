"""Values PostgreSQL refuses, whatever refuses them: a trigger's overflowing sum, a
statement trigger, a value too big for an index, a deferred constraint. Those lines
become rejects with the reason, every other line loads, and the logger goes on;
errors that are not the data's fault (a missing table) still wait and retry.

Real logger, real PostgreSQL; the refusing triggers and constraints are added to the
test database.
"""

from __future__ import annotations

import math
import random
import string
from pathlib import Path

from conftest import Database, combined_line, execute, query, scalar, start_logger, wait_for
from pipe_support import StderrReader, feed, finish, spooled_line_count

BIGINT_MAX = 2**63 - 1

# Counts COPY statements into access_log, rolled back ones too (a sequence is not
# transactional): narrowing a batch down must take O(k log n) of them, not O(n).
COUNT_COPIES_SQL = """
CREATE SEQUENCE test_copies;
CREATE FUNCTION test_count_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM nextval('test_copies'); RETURN NULL; END $$;
CREATE TRIGGER test_count_copy BEFORE INSERT ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION test_count_copy();
"""


def copies(db: Database) -> int:
    return int(scalar(db.dsn, "SELECT last_value FROM test_copies"))  # type: ignore[arg-type]


def rejected_lines(db: Database) -> list[tuple[bytes, str]]:
    return [(bytes(line), reason) for line, reason in
            query(db.dsn, "SELECT line, reason FROM access_log_rejects ORDER BY id")]


def with_bytes(line: bytes, size: int) -> bytes:
    """A combined line with another %b."""
    head, status, rest = line.partition(b'" 200 ')
    return head + status + str(size).encode() + b" " + rest.split(b" ", 1)[1]


def test_huge_sizes_load_and_the_rollups_still_fold(
    database: Database, tmp_path: Path
) -> None:
    """Two %b of 2^63-1 among 1,000 lines, in one batch: each fits the column, and the
    rollups count a row's bytes at most 10^15 (logpipe_key's neighbour in
    sql/020_reports.sql), so no sum overflows: every line loads as logged, nothing
    waits, and the rollups fold."""
    lines = [combined_line(i) for i in range(1_000)]
    for i in (100, 700):
        lines[i] = with_bytes(lines[i], BIGINT_MAX)
    # All in one batch, so that the huge values meet ordinary ones in one COPY.
    database.block()
    proc = start_logger(database.dsn, tmp_path)
    stderr = StderrReader(proc)
    feed(proc, lines)
    wait_for(lambda: spooled_line_count(tmp_path) == 1_000, what="lines in the spool")
    database.unblock()
    wait_for(lambda: database.rows() == 1_000, timeout=20,
             what=lambda: f"1000 rows; {database.rows()} rows, stderr {stderr.text()[-600:]!r}")
    later = [combined_line(i, "/later") for i in range(10)]
    feed(proc, later)
    wait_for(lambda: database.rows() == 1_010, what="the lines after them")
    err = finish(proc, stderr=stderr)
    assert b"cannot load" not in err and b"cannot update the report rollups" not in err, err
    assert rejected_lines(database) == []
    assert scalar(database.dsn, "SELECT count(*) FROM access_log WHERE bytes = %s",
                  (BIGINT_MAX,)) == 2
    execute(database.dsn, "SELECT logpipe_rollup_fold()")
    assert scalar(database.dsn, "SELECT count(*) FROM logpipe_pending_pages") == 0


def test_a_statement_trigger_refusing_one_value_rejects_only_its_lines(
    database: Database, tmp_path: Path
) -> None:
    """A statement trigger that RAISEs (SQLSTATE P0001, naming no row) when a batch
    holds one User-Agent. Before that, the same trigger inserts into a table that does
    not exist yet: a setup problem, which rejects nothing and waits."""
    execute(database.dsn, COUNT_COPIES_SQL + """
    CREATE FUNCTION test_refuse_agent() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT FROM new_rows WHERE user_agent = 'evil/1.0') THEN
            RAISE EXCEPTION 'agent evil/1.0 is not welcome';
        END IF;
        INSERT INTO test_audit SELECT count(*) FROM new_rows;
        RETURN NULL;
    END $$;
    CREATE TRIGGER test_refuse_agent AFTER INSERT ON access_log
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION test_refuse_agent();
    """)
    n = 1_000
    lines = [combined_line(i) for i in range(n)]
    bad = (137, 862)
    for i in bad:
        lines[i] = lines[i].rsplit(b'"', 2)[0] + b'"evil/1.0"\n'  # its User-Agent
    proc = start_logger(database.dsn, tmp_path)
    stderr = StderrReader(proc)
    feed(proc, lines)
    wait_for(lambda: b'relation "test_audit" does not exist' in stderr.text(),
             what=lambda: f"the setup problem said; stderr {stderr.text()[-600:]!r}")
    assert (database.rows(), database.rejects()) == (0, 0)  # waits, rejects nothing
    before = copies(database)
    execute(database.dsn, "CREATE TABLE test_audit (n bigint)")
    wait_for(lambda: database.rows() == n - len(bad), timeout=20,
             what=lambda: f"{n - len(bad)} rows; {database.rows()}, stderr {stderr.text()[-600:]!r}")
    err = finish(proc, stderr=stderr)
    assert err.count(b"cannot load into the database") == 1, err
    assert rejected_lines(database) == [
        (lines[i].rstrip(b"\n"), "PostgreSQL refused the row: agent evil/1.0 is not welcome")
        for i in bad]
    assert scalar(database.dsn, "SELECT sum(n) FROM test_audit") == n - len(bad)
    # A retry already under way may count too; a row-by-row search would take ~1,000.
    bound = 2 * (4 * len(bad) * math.log2(n) + 10)
    assert copies(database) - before <= bound, (copies(database) - before, bound)


def test_a_path_too_big_for_the_index_is_rejected(database: Database, tmp_path: Path) -> None:
    """A long random request path (well within Apache's 8190-byte request line) makes
    an index entry over PostgreSQL's limit: SQLSTATE 54000, which psycopg2 files under
    OperationalError like a lost connection. It is the row's fault, not the link's."""
    rng = random.Random(7)
    long_path = "/" + "".join(rng.choice(string.ascii_letters + string.digits)
                              for _ in range(6_000))
    lines = [combined_line(i) for i in range(100)]
    lines.insert(50, combined_line(50, long_path))
    proc = start_logger(database.dsn, tmp_path)
    stderr = StderrReader(proc)
    feed(proc, lines)
    wait_for(lambda: database.rows() + database.rejects() == 101, timeout=20,
             what=lambda: f"every line; {database.rows()} rows, stderr {stderr.text()[-600:]!r}")
    err = finish(proc, stderr=stderr)
    assert b"unreachable" not in err and b"cannot load" not in err, err
    assert database.rows() >= 100
    for line, reason in rejected_lines(database):
        assert line == lines[50].rstrip(b"\n")
        assert reason.startswith("PostgreSQL refused the row: index row size")


def test_a_deferred_constraint_refuses_rows_not_the_commit(
    database: Database, tmp_path: Path
) -> None:
    """A constraint checked at commit names no row and would fail the commit itself;
    it is checked after each COPY instead, and only the later duplicates are refused."""
    execute(database.dsn, "ALTER TABLE access_log ADD CONSTRAINT test_once "
                          "UNIQUE (time, path) DEFERRABLE INITIALLY DEFERRED")
    lines = [combined_line(i) for i in range(500)]
    repeated = [lines[40], lines[41], lines[300]]
    lines = lines[:250] + repeated + lines[250:]
    proc = start_logger(database.dsn, tmp_path)
    stderr = StderrReader(proc)
    feed(proc, lines)
    wait_for(lambda: database.rows() + database.rejects() == 503, timeout=20,
             what=lambda: f"every line; {database.rows()} rows, stderr {stderr.text()[-600:]!r}")
    err = finish(proc, stderr=stderr)
    assert b"cannot load" not in err, err
    assert database.rows() == 500
    rejects = rejected_lines(database)
    assert sorted(line for line, _ in rejects) == sorted(r.rstrip(b"\n") for r in repeated)
    assert all("duplicate key value violates unique constraint" in reason
               for _, reason in rejects)
    assert query(database.dsn, "SELECT count(DISTINCT path) FROM access_log") == [(500,)]
