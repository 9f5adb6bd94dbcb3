"""The writer's part in the daily summaries of sql/050_daily_summaries.sql: summarize the
last UTC days, so that broken-links, offenders, agents and referers read them instead
of access_log's rows."""

from __future__ import annotations

import psycopg2.extensions

from logpipe.store import database as db

# Yesterday and the day before (a writer down across midnight), as for the visits, and
# today up to its last hour; older days are summarized by the first report that needs
# them (reports/queries/daily.py).
SUMMARIZED_DAYS = 2


def summarize_days(conn: psycopg2.extensions.connection) -> str | None:
    """None, or why it could not (e.g. a schema from before the summaries: `logpipe
    initdb` upgrades it; or no EXECUTE on the function): see database.run_apart()."""
    return db.run_apart(conn, "SELECT logpipe_daily_refresh((now() AT TIME ZONE 'UTC')"
                              f"::date - {SUMMARIZED_DAYS})", db.SUMMARY_TIMEOUT_MS)
