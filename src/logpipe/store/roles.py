"""What `logpipe initdb --writer-role W --reader-role R` grants: each role what it needs
and nothing more.

The writer (the role the logger, `replay`, `drain` and `load` connect as) adds rows:
COPY into access_log and access_log_rejects, its segments' progress, the fingerprints
of loaded files, and nothing else. Live lines go straight into the partition of the
present (ingest/live_partition.py): each partition gets INSERT for whoever has it on
access_log (logpipe_partition_ready, run by initdb after these grants and for each new
partition). The triggers on access_log and its partitions that count its rows for the
rollups run with their owner's rights (sql/020_reports.sql). It makes partitions and
folds the rollups only through SECURITY DEFINER functions
(sql/005_partitions.sql, sql/020_reports.sql). It may not delete, change, truncate or
drop a row of access_log, a partition or a reject (no privilege, and no ownership).

The reader reads what `logpipe report` (every report), the report_* views and `logpipe
status` read, and writes nothing. It does not fold: `report pages` shows the rollups
as of the writer's last fold (seconds old), the views count what is pending too.

Grants are only added, never revoked (an operator's own stay), and only where the role
lacks the right: a re-run changes no catalog row, so it disturbs no running logger.
Role names reach SQL as identifiers (psycopg2.sql), never as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg2.extensions
from psycopg2 import sql

Cursor = psycopg2.extensions.cursor

# table or view -> privileges
WRITER_TABLES: Mapping[str, Sequence[str]] = {
    "access_log": ("INSERT",),
    "access_log_rejects": ("INSERT",),
    # claim (INSERT ... ON CONFLICT DO NOTHING, SELECT ... FOR UPDATE), advance, forget
    "logpipe_progress": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # `logpipe load`: a file seen before is skipped; --force loads it again
    "logpipe_loaded_files": ("SELECT", "INSERT", "UPDATE"),
}
WRITER_FUNCTIONS = ("logpipe_prepare_partitions()", "logpipe_rollup_fold(bigint)",
                    "logpipe_visits_refresh(integer, date, date)",
                    "logpipe_visits_refresh_hours(integer, timestamptz)",
                    "logpipe_daily_refresh(date, date)")

READER_TABLES: Mapping[str, Sequence[str]] = {
    name: ("SELECT",) for name in (
        # the reports
        "access_log", "logpipe_pages", "logpipe_rollup_daily", "logpipe_rollup_quarter",
        "logpipe_pending_pages", "logpipe_pending_quarters", "logpipe_pending_referers",
        "logpipe_hot_paths", "logpipe_path_referers", "logpipe_path_referers_hourly",
        "logpipe_site_hosts",
        "logpipe_pruned", "logpipe_quarters", "logpipe_asset_patterns", "logpipe_page_views",
        "report_static",
        "report_referers", "report_pages", "report_status_daily", "report_broken_links",
        "report_offenders", "report_agents", "report_traffic_hourly",
        "report_traffic_daily",
        # visitors, countries, channels (sql/030_visitors.sql)
        "logpipe_referer_sources", "logpipe_visit_days", "logpipe_visit_daily",
        "logpipe_visit_hourly", "logpipe_visit_countries", "logpipe_visit_channels",
        "logpipe_visit_keyphrases", "report_visitors_daily", "report_countries",
        "logpipe_visit_lasts", "logpipe_visit_prefix", "logpipe_visit_state",
        "logpipe_visit_channels_hourly", "logpipe_visit_crossings",
        "report_channels", "report_keyphrases",
        # broken-links, offenders, agents, referers (sql/050_daily_summaries.sql)
        "logpipe_daily_days", "logpipe_daily_offenders", "logpipe_daily_clients",
        "logpipe_daily_agents", "logpipe_daily_referers", "logpipe_daily_broken",
        "logpipe_daily_page_hours", "logpipe_daily_path_referers",
        # client names and page owners (sql/040_names.sql): report domains, the digest
        "logpipe_dns_names", "report_domains", "logpipe_page_owners",
        # `logpipe status`
        "access_log_rejects", "logpipe_progress",
    )
}
READER_FUNCTIONS: Sequence[str] = ()

# What neither role is granted anything on: the owner's alone.
OWNER_ONLY = ("logpipe_schema_version", "logpipe_partitioning",
              "logpipe_country_backfill")  # initdb's note that countries were filled


class MissingRoles(Exception):
    """Roles named on the command line that do not exist in the cluster."""

    def __init__(self, names: list[str], create: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names
        self.create = create  # the statements that would create them


def check_exist(cur: Cursor, roles: Sequence[str]) -> None:
    """Raise MissingRoles, naming the CREATE ROLE to run, for roles that do not exist."""
    missing = []
    for role in dict.fromkeys(roles):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            missing.append(role)
    if missing:
        raise MissingRoles(missing, [f"CREATE ROLE {_quoted(cur, r)} LOGIN PASSWORD '...'"
                                     for r in missing])


def grant(cur: Cursor, role: str, tables: Mapping[str, Sequence[str]],
          functions: Sequence[str]) -> None:
    """Grant `role` CONNECT on the database and USAGE on logpipe's schema if it lacks
    them, then each privilege on `tables` and EXECUTE on `functions` it lacks."""
    who = sql.Identifier(role)
    cur.execute("SELECT current_database(), n.nspname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = 'access_log'::regclass")
    database, schema = cur.fetchone()
    if not _has(cur, "has_database_privilege(%s, %s, 'CONNECT')", role, database):
        cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}")
                    .format(sql.Identifier(database), who))
    if not _has(cur, "has_schema_privilege(%s, %s, 'USAGE')", role, schema):
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}")
                    .format(sql.Identifier(schema), who))
    for table, privileges in tables.items():
        lacking = [p for p in privileges
                   if not _has(cur, "has_table_privilege(%s, %s, %s)", role, table, p)]
        if lacking:
            cur.execute(sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                sql.SQL(", ").join(map(sql.SQL, lacking)), sql.Identifier(table), who))
    for function in functions:  # a signature from this module, never from input
        if not _has(cur, "has_function_privilege(%s, %s, 'EXECUTE')", role, function):
            cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}")
                        .format(sql.SQL(function), who))


def concerns(cur: Cursor, role: str) -> list[str]:
    """What makes the grants moot for `role`: one sentence each, saying what to do."""
    cur.execute(
        "SELECT r.rolsuper, pg_has_role(r.oid, c.relowner, 'MEMBER'),"
        "       has_schema_privilege(r.oid, c.relnamespace, 'CREATE'),"
        "       n.nspname"
        "  FROM pg_roles r, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE r.rolname = %s AND c.oid = 'access_log'::regclass", (role,))
    superuser, owner, creates, schema = cur.fetchone()
    name, schema = _quoted(cur, role), _quoted(cur, schema)
    said = []
    if superuser:
        said.append(f"role {name} is a superuser: it may delete and drop anything whatever "
                    "is granted; name a role of its own, without SUPERUSER")
    elif owner:
        said.append(f"role {name} owns logpipe's tables (or is a member of their owner): it "
                    "may delete and drop them whatever is granted; let another role own them "
                    f"(in this database, as a superuser: REASSIGN OWNED BY {name} TO "
                    "another_role) and run initdb as that role")
    if creates and not superuser:
        said.append(f"role {name} may create objects in schema {schema}, where logpipe's "
                    f"functions look for theirs; run REVOKE CREATE ON SCHEMA {schema} FROM "
                    "PUBLIC (and from the role)")
    return said


def _quoted(cur: Cursor, name: str) -> str:
    """A name as SQL would take it, quoted only where it must be (for messages)."""
    cur.execute("SELECT quote_ident(%s)", (name,))
    return str(cur.fetchone()[0])


def _has(cur: Cursor, check: str, *args: str) -> bool:
    cur.execute(f"SELECT {check}", args)
    return bool(cur.fetchone()[0])
