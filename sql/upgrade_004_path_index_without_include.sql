-- Schema version 4: access_log_path_referers keys rows on their path and holds nothing
-- else (010_indexes.sql): without its INCLUDE columns (vhost, referer) PostgreSQL keeps
-- a path's entries as one posting list, and loading a row costs the server ~0.5-0.9 us
-- less (~10-15% of its work per row). `referers --path` reads a path's summarized days
-- from logpipe_daily_path_referers (050_daily_summaries.sql) instead. Dropped here, so
-- that 010_indexes.sql builds it anew (access_log is locked against writes while it
-- builds: ~1 minute per 10 million rows; loggers keep their lines in the spool).
DROP INDEX IF EXISTS access_log_path_referers;
