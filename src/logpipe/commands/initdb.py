"""`logpipe initdb`: create or upgrade the schema."""

from __future__ import annotations

import argparse

import psycopg2

from logpipe.commands.common import dsn_of
from logpipe.messages import EXIT_FAILURE, EXIT_OK, say
from logpipe.store import database as db


def run(args: argparse.Namespace) -> int:
    dsn = dsn_of(args)
    try:
        applied = db.initdb(dsn)
    except psycopg2.OperationalError as exc:
        say(f"cannot connect to {db.describe_dsn(dsn)}: {str(exc).strip()}")
        say("check --dsn and that PostgreSQL is running; create the database with createdb")
        return EXIT_FAILURE
    except psycopg2.Error as exc:
        say(f"schema update failed, nothing was changed: {str(exc).strip()}")
        return EXIT_FAILURE
    say(f"schema is up to date in {db.describe_dsn(dsn)} ({len(applied)} files applied)")
    return EXIT_OK
