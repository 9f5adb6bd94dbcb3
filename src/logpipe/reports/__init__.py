"""`logpipe report NAME`: the reports of sql/020_reports.sql, filtered, as text, CSV or JSON.

The views in sql/020_reports.sql aggregate over all time, for psql. This package runs
the same queries with filters (--path, --vhost, --source, --since, --until,
--humans/--bots) as parameterised SQL, so PostgreSQL can use the path index (with vhost,
referer), the BRIN index on time, and the rollups behind `pages`, `status` and
`traffic` (which keep no source: --source and --by-source read access_log).

Modules, in the order a report goes through them: catalog (the reports), options (the
command line), filters (Filters and the WHERE conditions they make), queries (the SQL
of each report, pure), run (connect, fold, query: the command), output (table, CSV,
JSON, with logged text made safe for a terminal).
"""
