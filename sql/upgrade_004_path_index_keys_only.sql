-- Schema version 4: access_log_path_referers is keyed on the path alone, without
-- vhost and referer carried along (see 010_indexes.sql): ~25 times smaller, cheaper to
-- keep as rows load. Dropped here, so that 010_indexes.sql builds it anew (its build
-- holds loaders back: ~4 s at 10 million rows; they wait, nothing is lost).
DROP INDEX IF EXISTS access_log_path_referers;
