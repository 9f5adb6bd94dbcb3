"""logpipe under a real Apache httpd: restarts, outages and crashes under load.

Every test runs a private httpd (tests/apache_fixture.py) that logs each request
twice: through logpipe into access_log, and to a plain file, the ground truth.
After httpd stops and its loggers exit, access_log must hold exactly the
ground-truth lines: none missing, none twice.

The tests wait on events (requests answered, a logger ready, a message in the
ErrorLog, rows loaded), never for a fixed time, and assert nothing about speed:
Apache's throughput with logpipe attached is measured by bench/run.py.
"""

from __future__ import annotations

import http.client
import os
import pwd
import re
import signal
import stat
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from apache_fixture import DEBIAN_COMBINED, ApacheServer
from apache_traffic import ROW_SQL, LoadGenerator, compare_rows, load
from apache_user import WORKER_USER, dsn_for_any_user, interpreter_reachable_by
from conftest import Database, proc_status, query, scalar, wait_for

from logpipe.ingest import spool

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "apache"
ROOT_NOTICE = re.compile(r"^logpipe\[(\d+)\]: running as root; pass --user", re.MULTILINE)
# Requests to serve between two events of a test (a graceful, a kill, ...): enough that
# each logger generation carries real traffic, some thousand lines.
REQUESTS_PER_STEP = 2_000
# Requests answered while the database is down: their lines (over 100 bytes each) are more
# than the logger's 1 MiB pipe can hold, so httpd would block if the logger stopped reading.
REQUESTS_DURING_OUTAGE = 15_000

# A restart kills httpd's children mid-request: those that had logged to the ground
# truth and not yet to the pipe (apache_fixture's docstring). At most one per child
# serving the load generator's connections at that moment.
MAX_KILLED_MID_LOG = 16

MakeApache = Callable[..., ApacheServer]


@pytest.fixture
def make_apache(database: Database) -> Iterator[MakeApache]:
    """make_apache(*logger_args, **ApacheServer options) -> a started httpd; always torn down."""
    servers: list[ApacheServer] = []

    def make(*logger_args: str, dsn: str | None = None, **options: object) -> ApacheServer:
        server = ApacheServer(dsn or database.dsn, logger_args, **options)  # type: ignore[arg-type]
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


# -- checks ---------------------------------------------------------------------


def assert_access_log_is_ground_truth(database: Database, apache: ApacheServer) -> None:
    lines = apache.ground_truth()
    assert lines, "the test sent no requests"
    handed_over = apache.handed_over()
    if handed_over is not None:  # only requests in flight when httpd killed its children
        assert len(lines) - len(handed_over) <= MAX_KILLED_MID_LOG, (len(lines), len(handed_over))
    diff = compare_rows(query(database.dsn, ROW_SQL), lines, handed_over)
    assert not diff, f"{diff}\nspool: {spool.list_segments(apache.spool_dir)}\n" + tail(apache)
    assert database.rejects() == 0


def assert_no_tracebacks(apache: ApacheServer) -> None:
    log = apache.error_log()
    assert "Traceback" not in log, tail(apache)
    assert "did not finish" not in log, tail(apache)  # every writer loaded all before exiting


def assert_root_notice_once_per_logger(apache: ApacheServer) -> None:
    """Without --user, each logger says once, in the ErrorLog, that it runs as root."""
    said = Counter(int(pid) for pid in ROOT_NOTICE.findall(apache.error_log()))
    assert said, tail(apache)
    assert set(said.values()) == {1}, f"a logger said it more than once: {said}"
    silent = apache.seen_readers - set(said)
    assert not silent, f"loggers {silent} never said they run as root\n" + tail(apache)


def wait_every_answer_logged(apache: ApacheServer, traffic: LoadGenerator,
                             since: float = 0.0) -> None:
    """After the load stopped: every request answered (sent at or after `since`) is in
    the ground truth. A request killed by a restart after its response may never be."""
    apache.wait_logged(traffic.answered(since))


def tail(apache: ApacheServer, lines: int = 40) -> str:
    return "error log (end):\n" + "\n".join(apache.error_log().splitlines()[-lines:])


def ids(pid: int) -> tuple[str, str, str]:
    status = proc_status(pid)
    return status["Uid"], status["Gid"], status["Groups"]


# -- the tests ------------------------------------------------------------------


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_graceful_twice_and_restart_under_load_lose_and_double_nothing(
    database: Database, make_apache: MakeApache, mpm: str
) -> None:
    """Under prefork, restart also sends the logger SIGHUP (httpd signals its process group)."""
    apache = make_apache(mpm=mpm)
    first = set(apache.reader_pids())
    with load(apache.port) as traffic:
        traffic.wait_requests(REQUESTS_PER_STEP)
        apache.graceful()  # what logrotate does every night
        traffic.wait_requests(REQUESTS_PER_STEP)
        apache.graceful()
        traffic.wait_requests(REQUESTS_PER_STEP)
        apache.restart()
        restarted = time.monotonic()  # the new generation's children serve from here on
        traffic.wait_requests(REQUESTS_PER_STEP)
    assert len(apache.seen_readers) >= 4, apache.seen_readers  # one logger per generation
    assert first < apache.seen_readers
    wait_every_answer_logged(apache, traffic, since=restarted)
    apache.stop()
    assert_access_log_is_ground_truth(database, apache)
    assert_root_notice_once_per_logger(apache)
    assert_no_tracebacks(apache)
    assert spool.list_segments(apache.spool_dir) == []  # everything loaded, nothing left over


def test_database_outage_under_load_apache_keeps_serving_and_rows_catch_up(
    database: Database, make_apache: MakeApache
) -> None:
    apache = make_apache()
    with load(apache.port) as traffic:
        wait_for(lambda: database.rows() > 0, what="rows loaded before the outage")
        database.block()
        logged_before = len(apache.ground_truth())
        wait_for(lambda: "database unreachable" in apache.error_log(),
                 what="the logger to notice the outage")
        # Apache keeps answering: the logger keeps reading its pipe into the spool.
        traffic.wait_requests(REQUESTS_DURING_OUTAGE)
        backlog = len(apache.ground_truth()) - logged_before  # no row can load meanwhile
        database.unblock()
        wait_for(lambda: "reachable again" in apache.error_log(),
                 what="the logger to notice the database is back")
        traffic.wait_requests(REQUESTS_PER_STEP)  # traffic goes on while the backlog loads
    assert not traffic.errors, traffic.errors
    assert backlog >= REQUESTS_DURING_OUTAGE - traffic.threads, backlog
    wait_every_answer_logged(apache, traffic)
    # No manual step: the running logger loads the backlog by itself.
    wait_for(lambda: database.rows() == len(apache.ground_truth()), timeout=60,
             what=lambda: f"{len(apache.ground_truth())} rows, got {database.rows()}")
    apache.stop()
    assert_access_log_is_ground_truth(database, apache)
    log = apache.error_log()
    assert "database unreachable" in log, tail(apache)
    assert "reachable again" in log, tail(apache)
    assert_no_tracebacks(apache)


def test_kill_9_of_the_logger_under_load_apache_respawns_it_and_nothing_is_lost(
    database: Database, make_apache: MakeApache
) -> None:
    apache = make_apache()
    with load(apache.port) as traffic:
        for _ in range(2):
            traffic.wait_requests(REQUESTS_PER_STEP)  # the logger dies mid-stream
            (victim,) = apache.current_readers()
            os.kill(victim, signal.SIGKILL)
            respawned = apache.wait_logger_ready(exclude={victim})
            assert respawned != victim
        traffic.wait_requests(REQUESTS_PER_STEP)  # and its successor carries traffic
    assert "AH00106" in apache.error_log(), tail(apache)  # httpd: piped log program failed
    wait_every_answer_logged(apache, traffic)  # a dead logger stops no request's logging
    apache.stop()
    assert_access_log_is_ground_truth(database, apache)
    assert_root_notice_once_per_logger(apache)


def test_user_www_data_reader_writer_and_spool_drop_root(
    database: Database, make_apache: MakeApache
) -> None:
    dsn = dsn_for_any_user(database.dsn)  # www-data connects as an existing role
    with interpreter_reachable_by(WORKER_USER):
        apache = make_apache("--user", WORKER_USER, "--group", WORKER_USER, dsn=dsn)
        with load(apache.port, threads=2) as traffic:
            traffic.wait_requests(500)
        # the reader starts its writer child after it is ready: wait until that one loads
        wait_for(lambda: database.rows() > 0, what="rows loaded by the writer child")
        (reader,) = apache.current_readers()
        writers = apache.writer_pids()
        assert writers, "no writer child"
        account = pwd.getpwnam(WORKER_USER)
        want = (
            "\t".join([str(account.pw_uid)] * 4),
            "\t".join([str(account.pw_gid)] * 4),
            "",
        )
        for pid in [reader, *writers]:
            assert ids(pid) == want, f"pid {pid}: Uid, Gid, Groups = {ids(pid)}"
        st = apache.spool_dir.stat()
        assert (st.st_uid, st.st_gid) == (account.pw_uid, account.pw_gid)
        assert stat.S_IMODE(st.st_mode) == 0o700
        segments = [apache.spool_dir / n for n in spool.list_segments(apache.spool_dir)]
        assert segments, "the live segment should be there while the logger runs"
        for path in segments:
            st = path.stat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
                account.pw_uid, account.pw_gid, 0o600
            ), path
        wait_every_answer_logged(apache, traffic)
        wait_for(lambda: database.rows() == len(apache.ground_truth()),
                 what=lambda: f"{len(apache.ground_truth())} rows, got {database.rows()}")
        apache.stop()
    assert_access_log_is_ground_truth(database, apache)
    assert "running as root" not in apache.error_log(), tail(apache)
    assert_no_tracebacks(apache)


# -- the example configurations in conf/apache/ -----------------------------------


def directives(example: str) -> list[str]:
    """The lines of an example file that are not comments."""
    text = (CONF_DIR / example).read_text()
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def for_this_test(line: str, dsn: str, spool_dir: Path) -> str:
    """An example's logger line, pointed at this interpreter, database and spool."""
    for placeholder in ("/usr/bin/python3 -m logpipe", "dbname=weblogs", "/var/spool/logpipe"):
        assert placeholder in line, f"{placeholder!r} not in {line!r}"
    return (
        line.replace("/usr/bin/python3", sys.executable)
        .replace("dbname=weblogs", dsn)
        .replace("/var/spool/logpipe", str(spool_dir))
    )


def test_debian_example_config_works_with_a_vhost_that_has_its_own_customlog(
    database: Database, make_apache: MakeApache
) -> None:
    (line,) = directives("logpipe-debian.conf")
    assert line.startswith('GlobalLog "|/usr/bin/python3 -m logpipe '), line
    assert " --user www-data " in line
    dsn = dsn_for_any_user(database.dsn)

    def vhost_like_000_default(server: ApacheServer) -> str:
        # Debian's sites-available/000-default.conf: a vhost with its own CustomLog,
        # which is why the example uses GlobalLog.
        return (
            f"<VirtualHost *:{server.port}>\n"
            f'    DocumentRoot "{server.htdocs}"\n'
            f'    CustomLog "{server.ground_truth_path}" combined\n'
            "</VirtualHost>\n"
        )

    with interpreter_reachable_by(WORKER_USER):
        apache = make_apache(
            log_directives=lambda server: for_this_test(line, dsn, server.spool_dir),
            extra_config=vhost_like_000_default,
            combined_format=DEBIAN_COMBINED,  # as Debian's apache2.conf defines it
        )
        for i in range(200):
            url = f"http://127.0.0.1:{apache.port}/?id={i}"
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
        apache.wait_logged(set(range(200)))
        assert len(apache.ground_truth()) == 200
        wait_for(lambda: database.rows() == 200, what="200 rows")
        (reader,) = apache.current_readers()
        assert ids(reader)[0].split()[0] == str(pwd.getpwnam(WORKER_USER).pw_uid)
        apache.stop()
    assert_access_log_is_ground_truth(database, apache)
    assert "running as root" not in apache.error_log()
    assert_no_tracebacks(apache)


def test_vhosts_example_one_logger_for_all_virtual_hosts(
    database: Database, make_apache: MakeApache
) -> None:
    logformat, line = directives("logpipe-vhosts.conf")
    assert logformat.startswith("LogFormat ") and logformat.endswith(" vhost_combined")
    assert line.startswith('GlobalLog "|/usr/bin/python3 -m logpipe '), line
    assert "--format vhost_combined" in line and line.endswith(" vhost_combined")
    dsn = dsn_for_any_user(database.dsn)

    def two_vhosts(server: ApacheServer) -> str:
        return "".join(
            f"<VirtualHost *:{server.port}>\n"
            f"    ServerName {name}\n"
            f'    DocumentRoot "{server.htdocs}"\n'
            "</VirtualHost>\n"
            for name in ("a.example", "b.example")
        )

    with interpreter_reachable_by(WORKER_USER):
        apache = make_apache(
            log_directives=lambda server: logformat + "\n" + for_this_test(line, dsn,
                                                                          server.spool_dir),
            extra_config=two_vhosts,
            combined_format=DEBIAN_COMBINED,  # the ground truth logs %O, as vhost_combined does
        )
        sent = Counter({"a.example": 60, "b.example": 40})
        conn = http.client.HTTPConnection("127.0.0.1", apache.port, timeout=10)
        for n, host in enumerate(sent.elements()):
            conn.request("GET", f"/index.html?id={n}", headers={"Host": host})
            conn.getresponse().read()
        conn.close()
        apache.wait_logged(set(range(100)))
        assert len(apache.ground_truth()) == 100
        wait_for(lambda: database.rows() == 100, what="100 rows")
        assert len(apache.current_readers()) == 1  # one logger serves every vhost
        apache.stop()
    assert_access_log_is_ground_truth(database, apache)
    per_vhost = dict(query(database.dsn, "SELECT vhost, count(*) FROM access_log GROUP BY 1"))
    assert per_vhost == dict(sent)
    # %p is the vhost's canonical port (80 here: its ServerName names none); it goes to extra
    assert scalar(database.dsn, "SELECT count(*) FROM access_log WHERE extra ? 'port'") == 100
    assert_no_tracebacks(apache)
