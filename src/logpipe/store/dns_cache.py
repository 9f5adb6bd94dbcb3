"""The reverse DNS cache (logpipe_dns_names, sql/040_names.sql): which client addresses
need a lookup, and keeping what the lookups found."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from logpipe.names.domains import registrable_domain
from logpipe.names.lookup import Found

# Clients seen since %(since)s without a fresh entry, busiest first (so a run cut short
# has named those that count most). A name is fresh for %(max_age)s, a failed lookup for
# %(retry_after)s.
STALE_SQL = """
SELECT h.remote_host
  FROM (SELECT a.remote_host, count(*) AS hits FROM access_log a
         WHERE a.time >= %(since)s AND a.remote_host IS NOT NULL AND a.remote_host <> ''
         GROUP BY a.remote_host) h
 WHERE NOT EXISTS (
       SELECT FROM logpipe_dns_names n
        WHERE n.address = h.remote_host
          AND n.resolved_at > now() - CASE WHEN n.name IS NULL THEN %(retry_after)s
                                           ELSE %(max_age)s END)
 ORDER BY h.hits DESC, h.remote_host
"""

# A lookup that got no answer (timeout, SERVFAIL) does not erase a name found before:
# that entry stays as it is, stale, and is asked again at the next run.
UPSERT_SQL = """
INSERT INTO logpipe_dns_names AS n (address, name, domain, outcome, resolved_at)
VALUES %s
ON CONFLICT (address) DO UPDATE
   SET name = EXCLUDED.name, domain = EXCLUDED.domain, outcome = EXCLUDED.outcome,
       resolved_at = EXCLUDED.resolved_at
 WHERE NOT (EXCLUDED.outcome IN ('servfail', 'timeout') AND n.name IS NOT NULL)
"""


def stale_hosts(cur: Any, since: dt.datetime, max_age: dt.timedelta,
                retry_after: dt.timedelta) -> list[str]:
    """The remote_host values seen since `since` that need a lookup."""
    cur.execute(STALE_SQL, {"since": since, "max_age": max_age, "retry_after": retry_after})
    return [row[0] for row in cur.fetchall()]


def store(conn: Any, found: Sequence[Found]) -> None:
    """Keep what the lookups found, in one transaction; resolved_at is the server's now()."""
    from psycopg2.extras import execute_values

    rows = [(f.address, f.name, registrable_domain(f.name) if f.name else None, f.outcome)
            for f in found]
    with conn.cursor() as cur:
        execute_values(cur, UPSERT_SQL, rows, template="(%s, %s, %s, %s, now())")
    conn.commit()
