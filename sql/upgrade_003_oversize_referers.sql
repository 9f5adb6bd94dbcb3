-- Schema version 3: access_log_path_referers holds only the rows whose entry fits a
-- btree entry, and access_log_oversize_referers the others (see 010_indexes.sql). The
-- old index refused a row with a path and referer of over ~2,700 bytes, so that
-- row became a reject. Dropped here, so that 010_indexes.sql builds both anew.
DROP INDEX IF EXISTS access_log_path_referers;
