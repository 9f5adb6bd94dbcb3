"""Fill access_log.country for the rows loaded before the column existed: once per
database (logpipe_country_backfill says when it was done), by `logpipe initdb`.

The addresses are looked up once each, in Python (parse/geo.py, as the writer does),
then each partition is updated in a transaction of its own, joined with that
mapping: one scan per partition, and loggers go on loading meanwhile (the update
locks only the rows it changes, which no logger touches).
"""

from __future__ import annotations

from typing import Any

from logpipe.parse.geo import country_of

DONE_SQL = "SELECT EXISTS (SELECT FROM logpipe_country_backfill)"
# leaf partitions (and access_log itself when it is not partitioned), oldest first
PARTITIONS_SQL = """
    SELECT t.relid::regclass::text FROM pg_partition_tree('access_log') t
     WHERE t.isleaf ORDER BY t.relid::regclass::text"""
ADDRESSES_SQL = ("SELECT DISTINCT remote_host FROM access_log"
                 " WHERE country IS NULL AND remote_host IS NOT NULL")


def backfill_countries(conn: Any) -> int | None:
    """Fill the country of rows that have none, the first time only; how many rows it
    filled, or None when it was done before."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext('logpipe_country_backfill'))")
        try:
            return _backfill(conn, cur)
        finally:
            conn.rollback()
            cur.execute("SELECT pg_advisory_unlock(hashtext('logpipe_country_backfill'))")
            conn.commit()


def _backfill(conn: Any, cur: Any) -> int | None:
    cur.execute(DONE_SQL)
    if cur.fetchone()[0]:
        conn.commit()
        return None
    cur.execute(ADDRESSES_SQL)
    mapping = [(host, country) for (host,) in cur.fetchall()
               if (country := country_of(host)) is not None]
    cur.execute(PARTITIONS_SQL)
    partitions = [name for (name,) in cur.fetchall()]
    conn.commit()
    filled = 0
    if mapping:
        for partition in partitions:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS logpipe_countries_tmp"
                        " (host text PRIMARY KEY, country text) ON COMMIT DROP")
            cur.execute("INSERT INTO logpipe_countries_tmp SELECT * FROM unnest(%s::text[],"
                        " %s::text[])", ([h for h, _ in mapping], [c for _, c in mapping]))
            cur.execute(f"UPDATE {partition} a SET country = m.country"
                        " FROM logpipe_countries_tmp m"
                        " WHERE a.remote_host = m.host AND a.country IS NULL")
            filled += cur.rowcount
            conn.commit()
        # summaries made before counted these rows without a country: make them again
        cur.execute("DELETE FROM logpipe_visit_days")
    cur.execute("INSERT INTO logpipe_country_backfill (rows) VALUES (%s)", (filled,))
    conn.commit()
    return filled
