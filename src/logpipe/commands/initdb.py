"""`logpipe initdb`: create the schema, or upgrade an older one in place; grant the
writer and reader roles their part."""

from __future__ import annotations

import argparse

import psycopg2

from logpipe.commands.common import dsn_of
from logpipe.messages import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, say
from logpipe.store import database as db
from logpipe.store.roles import MissingRoles


def run(args: argparse.Namespace) -> int:
    dsn = dsn_of(args)
    where = db.describe_dsn(dsn)
    try:
        schema = db.initdb(dsn, args.partition, args.writer_role, args.reader_role)
    except psycopg2.OperationalError as exc:
        if exc.pgcode:  # the server's answer (e.g. a lock timeout), not a lost connection
            say(f"schema update failed, nothing was changed: {str(exc).strip()}")
            return EXIT_FAILURE
        say(f"cannot connect to {where}: {str(exc).strip()}")
        say("check --dsn and that PostgreSQL is running; create the database with createdb")
        return EXIT_FAILURE
    except db.NewerSchemaError as exc:
        say(f"the schema in {where} is version {exc.version}, newer than this logpipe "
            f"knows (version {exc.known}); nothing was changed. Upgrade logpipe")
        return EXIT_FAILURE
    except MissingRoles as exc:
        say(f"no such role: {', '.join(exc.names)}; nothing was changed. Create it first "
            f"(as a role with CREATEROLE): {'; '.join(exc.create)}; then run initdb again")
        return EXIT_USAGE
    except psycopg2.Error as exc:
        say(f"schema update failed, nothing was changed: {str(exc).strip()}")
        return EXIT_FAILURE
    how = ("created" if schema.version_before == 0
           else f"upgraded from version {schema.version_before}"
           if schema.version_before < schema.version else "checked")
    say(f"schema is up to date in {where}: version {schema.version} ({how}); access_log "
        f"is partitioned by {schema.granularity}, {len(schema.partitions_made)} new "
        "partitions")
    if args.writer_role is not None:
        say(f"role {args.writer_role} may load lines (connect the logger with "
            f"user={args.writer_role}); it cannot delete, change or drop rows")
    if args.reader_role is not None:
        say(f"role {args.reader_role} may read the reports and status, and write nothing")
    for concern in schema.role_concerns:
        say(f"warning: {concern}")
    fill_countries(dsn)
    return EXIT_OK


def fill_countries(dsn: str) -> None:
    """The country of rows loaded before access_log.country existed, once per database."""
    from logpipe.store.countries import backfill_countries

    try:
        conn = db.connect(dsn, "logpipe initdb")
        try:
            filled = backfill_countries(conn)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        say(f"warning: the country of rows loaded before was not filled in "
            f"({str(exc).strip()}); run `logpipe initdb` again to fill it")
        return
    if filled:
        say(f"filled in the country of {filled} rows loaded before access_log.country "
            "existed (once; rows loaded from now on get it as they load)")
