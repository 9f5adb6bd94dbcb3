"""Many web servers into one database: two private Apaches under load, graceful restarts
on both, each request in access_log exactly once, labelled with its server.

web1 listens on 127.0.0.2 and web2 on 127.0.0.3 (Linux routes all of 127/8 to lo), each
with its own piped logger (`--source web1`, `--source web2`) and its own spool, both
loading into one PostgreSQL database. Each server's ground truth is its own plain-file
CustomLog. Graceful restarts kill no httpd child, so every ground-truth line must be in
access_log: `WHERE source = 'web1'` must hold exactly web1's lines, and so for web2.
`logpipe report traffic` (and status) with --source and --by-source are then checked
against the same ground truths.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pytest
from apache_fixture import ApacheServer
from apache_traffic import ROW_SQL, compare_rows, ground_truth_record, load
from conftest import Database, fresh_database, query
from reports_support import as_json

from logpipe.ingest import spool
from logpipe.parse.agents import classify_agent

SERVERS = {"web1": "127.0.0.2", "web2": "127.0.0.3"}  # source -> address it listens on
REQUESTS_PER_STEP = 1_000  # per server, between two graceful restarts
GRACEFUL_RESTARTS = 2


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Database, dict[str, ApacheServer]]]:
    """The database and the stopped servers, after load and graceful restarts on both."""
    with fresh_database() as db, contextlib.ExitStack() as cleanup:
        servers = {}
        for source, host in SERVERS.items():
            servers[source] = ApacheServer(db.dsn, ["--source", source], host=host)
            cleanup.callback(servers[source].close)
            servers[source].start()
        with contextlib.ExitStack() as running:
            traffic = {source: running.enter_context(load(apache.port, threads=4,
                                                          host=apache.host))
                       for source, apache in servers.items()}
            for _ in range(GRACEFUL_RESTARTS):
                for generator in traffic.values():
                    generator.wait_requests(REQUESTS_PER_STEP)
                for apache in servers.values():  # the other server is under load meanwhile
                    apache.graceful()
            for generator in traffic.values():
                generator.wait_requests(REQUESTS_PER_STEP)
        for source, apache in servers.items():
            apache.wait_logged(traffic[source].answered())
            apache.stop()
        yield db, servers


def test_each_servers_rows_are_exactly_its_ground_truth(
    served: tuple[Database, dict[str, ApacheServer]]
) -> None:
    db, servers = served
    for source, apache in servers.items():
        lines = apache.ground_truth()
        assert len(lines) >= (GRACEFUL_RESTARTS + 1) * REQUESTS_PER_STEP, source
        rows = query(db.dsn, ROW_SQL + " WHERE source = %s", (source,))
        diff = compare_rows(rows, lines)
        assert not diff, f"{source}: {diff}\n{apache.error_log()[-3000:]}"
        # a logger per generation: the first, and one per graceful restart
        assert len(apache.seen_readers) >= GRACEFUL_RESTARTS + 1, apache.seen_readers
        assert spool.list_segments(apache.spool_dir) == [], source
        assert "Traceback" not in apache.error_log(), source
    assert db.rows() == sum(len(a.ground_truth()) for a in servers.values())  # no other source
    assert db.rejects() == 0


def day_of(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).date().isoformat()


def traffic_of(apache: ApacheServer) -> list[dict[str, object]]:
    """`report traffic` rows (days in UTC), counted from a server's ground truth."""
    days: dict[str, Counter[str]] = {}
    for line in apache.ground_truth():
        _, _, epoch, _, _, _, _, _, size, _, agent = ground_truth_record(line)
        day = days.setdefault(day_of(epoch), Counter())
        bot = agent is None or classify_agent(agent)
        day.update(hits=1, bot_hits=int(bot), human_hits=int(not bot), bytes=size)
    return [{"day": day, "vhost": None, "hits": c["hits"], "human_hits": c["human_hits"],
             "bot_hits": c["bot_hits"], "bytes": c["bytes"]} for day, c in sorted(days.items())]


def status_of(apache: ApacheServer) -> list[dict[str, object]]:
    """`report status` rows (days in UTC), counted from a server's ground truth."""
    counts = Counter((day_of(r[2]), r[7]) for r in map(ground_truth_record,
                                                         apache.ground_truth()))
    return [{"day": day, "vhost": None, "status": status, "hits": hits}
            for (day, status), hits in sorted(counts.items())]


def test_reports_by_source_match_each_servers_ground_truth(
    served: tuple[Database, dict[str, ApacheServer]]
) -> None:
    db, servers = served
    expected = {source: traffic_of(apache) for source, apache in servers.items()}
    for source, apache in servers.items():
        assert as_json(db.dsn, "traffic", "--source", source) == expected[source]
        assert as_json(db.dsn, "status", "--source", source) == status_of(apache)
    split = as_json(db.dsn, "traffic", "--by-source")
    assert split == sorted(
        ({"day": r["day"], "source": source, **{k: v for k, v in r.items() if k != "day"}}
         for source, rows in expected.items() for r in rows),
        key=lambda r: (r["day"], r["source"]))
    # the rollups (no source) hold both servers: their sum, day by day
    total: dict[str, Counter[str]] = {}
    for r in split:
        total.setdefault(r["day"], Counter()).update(
            {k: r[k] for k in ("hits", "human_hits", "bot_hits", "bytes")})
    assert as_json(db.dsn, "traffic") == [{"day": day, "vhost": None, **c}
                                          for day, c in sorted(total.items())]
