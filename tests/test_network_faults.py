"""A database link that goes silent: packets dropped with iptables, not a refused
connection. The writer must notice within a minute, say so once, fail over to the
next host of a multi-host DSN, and load every line exactly once afterwards; and the
server must drop the silent writer's session, so its row lock does not hold up the
segment. Also how connection parameters are chosen (logpipe's defaults under the DSN's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Database, combined_line, query, start_logger, wait_for
from network_fixture import forwarder, rules_left, silenced
from pipe_support import StderrReader, assert_exactly_once, feed, finish

from logpipe.store import database as db

# A silent link must be noticed well within this (the defaults take about 10 s).
NOTICE_WITHIN = 60.0


def sessions_from(database: Database, ports: list[int]) -> int:
    """Server sessions of this database whose client is one of these local ports."""
    count = query(database.dsn, "SELECT count(*) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND client_port = ANY(%s)", (ports,))
    return int(count[0][0])


def test_a_silent_link_is_noticed_and_every_line_loads_once_when_it_answers_again(
    database: Database, tmp_path: Path
) -> None:
    lines = [combined_line(i) for i in range(15_000)]
    with forwarder() as fwd:
        dsn = f"host=127.0.0.1 port={fwd.port} dbname={database.name}"
        proc = start_logger(dsn, tmp_path)
        stderr = StderrReader(proc)
        feed(proc, lines[:5_000])
        wait_for(lambda: database.rows() == 5_000, what="rows through the forwarder")
        writer_ports = fwd.upstream_ports()
        with silenced([fwd.port, *writer_ports]) as lift:
            feed(proc, lines[5_000:10_000])
            wait_for(lambda: b"database unreachable" in stderr.text(), timeout=NOTICE_WITHIN,
                     what=lambda: f"the outage message; stderr: {stderr.text()!r}")
            # The server must give up on the silent writer too: its session may hold
            # the row lock of a segment, which no new session could load meanwhile.
            wait_for(lambda: sessions_from(database, writer_ports) == 0, timeout=NOTICE_WITHIN,
                     what="the server to end the silent writer's session")
            lift()
        feed(proc, lines[10_000:])
        wait_for(lambda: database.rows() == 15_000, what="every row once the link answers")
        err = finish(proc, stderr=stderr)
    assert err.count(b"database unreachable") == 1, err
    assert err.count(b"database reachable again") == 1, err
    assert_exactly_once(database, lines)
    assert rules_left() == []


def test_a_silent_first_host_fails_over_to_the_next(database: Database, tmp_path: Path) -> None:
    lines = [combined_line(i) for i in range(10_000)]
    with forwarder() as fwd:
        # A URI, two hosts: the forwarder first, then PostgreSQL's own port.
        dsn = f"postgresql://127.0.0.1:{fwd.port},127.0.0.1:5432/{database.name}"
        proc = start_logger(dsn, tmp_path)
        stderr = StderrReader(proc)
        feed(proc, lines[:5_000])
        wait_for(lambda: database.rows() == 5_000, what="rows through the first host")
        writer_ports = fwd.upstream_ports()
        assert sessions_from(database, writer_ports) == 1  # the writer went through it
        with silenced([fwd.port, *writer_ports]):
            feed(proc, lines[5_000:])
            wait_for(lambda: database.rows() == 10_000, timeout=NOTICE_WITHIN,
                     what=lambda: f"rows through the second host; stderr: {stderr.text()!r}")
            assert sessions_from(database, writer_ports) == 0
        err = finish(proc, stderr=stderr)
    assert err.count(b"database unreachable") == 1, err
    assert err.count(b"database reachable again") == 1, err
    assert_exactly_once(database, lines)
    assert rules_left() == []


# -- connection parameters ------------------------------------------------------------


@pytest.mark.parametrize("dsn", [
    "dbname=weblogs connect_timeout=30 keepalives_idle=60 application_name=site1",
    "postgresql:///weblogs?connect_timeout=30&keepalives_idle=60&application_name=site1",
])
def test_the_dsns_own_values_win_over_the_defaults(dsn: str) -> None:
    params = db.connection_params(dsn, "logpipe writer")
    assert params["connect_timeout"] == "30"
    assert params["keepalives_idle"] == "60"
    assert params["application_name"] == "site1"
    assert params["keepalives"] == "1"
    assert params["tcp_user_timeout"] == db.LINK_DEFAULTS["tcp_user_timeout"]


def test_multi_host_dsns_keep_their_hosts_and_choose_their_own_session_attrs() -> None:
    params = db.connection_params("postgresql://a:5433,b:5434/weblogs")
    assert (params["host"], params["port"], params["dbname"]) == ("a,b", "5433,5434", "weblogs")
    assert "target_session_attrs" not in params
    assert db.connection_params("host=a,b port=1,2 target_session_attrs=read-write")[
        "target_session_attrs"] == "read-write"


def test_an_empty_dsn_leaves_libpq_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "17")
    monkeypatch.setenv("PGAPPNAME", "from-env")
    params = db.connection_params("")
    assert "connect_timeout" not in params and "application_name" not in params
    assert params["keepalives"] == "1"


def test_a_connection_uses_the_dsns_values_over_the_defaults(database: Database) -> None:
    conn = db.connect(f"host=127.0.0.1 dbname={database.name} connect_timeout=30 "
                      "keepalives_idle=60", "logpipe test")
    try:
        used = conn.info.dsn_parameters
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('application_name')")
            application_name = cur.fetchone()[0]
    finally:
        conn.close()
    assert (used["connect_timeout"], used["keepalives_idle"]) == ("30", "60")
    assert used["tcp_user_timeout"] == db.LINK_DEFAULTS["tcp_user_timeout"]
    assert application_name == "logpipe test"

