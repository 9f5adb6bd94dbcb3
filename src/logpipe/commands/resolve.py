"""`logpipe resolve [--since 1d] [--nameserver IP[:PORT]]`: look up the names of the
client addresses seen lately that have no fresh name, and keep them in
logpipe_dns_names for `logpipe report domains`.

A name is fresh for six weeks (--max-age), a failed lookup for a day (--retry-after).
Lookups run concurrently, paced to --rate queries a second, each given --timeout
seconds; the results are kept in batches as they come, so a run cut short keeps what it
found. When the name server answers none of the lookups (down, wrong address), nothing
is kept and the exit status is 1, so the next run asks again.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg2
import psycopg2.errors

from logpipe.commands.common import connect_or_say, dsn_of
from logpipe.messages import EXIT_FAILURE, EXIT_OK, UsageError, first_line, say
from logpipe.names.lookup import (
    NO_ANSWER,
    Found,
    NoResolver,
    Settings,
    look_up_all,
    what_to_ask,
)
from logpipe.reports.filters import resolve_times
from logpipe.reports.times import TimeSpec
from logpipe.store import dns_cache


def run(args: argparse.Namespace) -> int:
    settings = Settings(nameserver=args.nameserver, timeout=args.timeout, rate=args.rate,
                        concurrency=args.concurrency)
    dsn = dsn_of(args)
    conn = connect_or_say(dsn, "logpipe resolve")
    if conn is None:
        return EXIT_FAILURE
    try:
        return resolve(conn, args.since, args.max_age, args.retry_after, settings)
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn) as exc:
        say(f"the name cache is missing ({first_line(exc)}): run `logpipe initdb`")
    except psycopg2.errors.InsufficientPrivilege as exc:
        say(f"not allowed to keep names ({first_line(exc)}): connect as the owner of "
            "logpipe's tables, the role that ran `logpipe initdb`")
    except psycopg2.OperationalError as exc:
        say(f"lost the database ({first_line(exc)}); the names found until then are "
            "kept. Run resolve again")
    except psycopg2.Error as exc:
        say(f"resolve failed: {first_line(exc)}")
    except NoResolver as exc:
        raise UsageError(f"no name server to ask ({exc}); pass --nameserver IP") from None
    finally:
        conn.close()
    return EXIT_FAILURE


def resolve(conn: Any, since: TimeSpec, max_age: dt.timedelta,
            retry_after: dt.timedelta, settings: Settings) -> int:
    with conn.cursor() as cur:
        start, _ = resolve_times(cur, since, None)
        hosts = dns_cache.stale_hosts(cur, start, max_age, retry_after)
    conn.commit()
    to_ask: list[tuple[str, str]] = []
    logged: list[Found] = []
    for host in hosts:
        address, found = what_to_ask(host)
        if address is not None:
            to_ask.append((host, address))
        elif found is not None:
            logged.append(found)
    if logged:
        dns_cache.store(conn, logged)
    if not to_ask:
        print(f"nothing to look up: every client seen since {_when(start)} has a fresh "
              f"entry{_and_logged(logged)}", flush=True)
        return EXIT_OK
    keeper = Keeper(conn)
    asyncio.run(look_up_all(to_ask, settings, keeper.deliver))
    counts = ", ".join(f"{n} {outcome}" for outcome, n in keeper.counts.most_common())
    if keeper.held:
        server = "the name server" if settings.nameserver is None \
            else "name server {}:{}".format(*settings.nameserver)
        say(f"{server} answered none of {len(to_ask)} lookups ({counts}); nothing was "
            "kept, so the next run asks again. Check --nameserver (default: "
            "/etc/resolv.conf's) and that it answers: dig -x 192.0.2.1 @SERVER")
        return EXIT_FAILURE
    print(f"looked up {len(to_ask)} client addresses seen since {_when(start)}: {counts}"
          f"{_and_logged(logged)}", flush=True)
    return EXIT_OK


class Keeper:
    """Stores lookups as they come; lookups without an answer (timeout, SERVFAIL) are
    held back until some lookup got an answer: if none does, the server is down or
    wrong, and caching its silence would hide every name for a day."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.answered = False
        self.held: list[Found] = []
        self.counts: Counter[str] = Counter()

    async def deliver(self, found: Sequence[Found]) -> None:
        self.counts.update(f.outcome for f in found)
        batch = list(found)
        if not self.answered:
            if all(f.outcome in NO_ANSWER for f in batch):
                self.held.extend(batch)
                return
            self.answered = True
            batch, self.held = self.held + batch, []
        # psycopg2 blocks: in a thread, so that answers keep arriving meanwhile
        await asyncio.get_running_loop().run_in_executor(None, dns_cache.store,
                                                         self.conn, batch)


def _when(moment: dt.datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _and_logged(logged: list[Found]) -> str:
    return f"; {len(logged)} logged as names were kept as they are" if logged else ""
