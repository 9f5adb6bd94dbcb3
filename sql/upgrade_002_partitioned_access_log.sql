-- Schema version 2: access_log partitioned by time (see 005_partitions.sql).
--
-- Run once, by `logpipe initdb`, on a database of version 1, before the NNN_*.sql
-- files. The plain access_log of version 1 becomes the partition access_log_legacy for
-- every time before tomorrow (UTC), as it stands: no row is copied, so the upgrade
-- needs no room on disk and takes one scan of the table (checking its range, under an
-- ACCESS EXCLUSIVE lock: loggers keep their lines in the spool meanwhile). Rows dated
-- tomorrow or later (a clock gone wrong) move to the default partition first. `logpipe
-- prune` drops access_log_legacy whole once all of it is older than its cutoff.
--
-- What was built on the old table moves to the new one: its views (re-pointed with
-- CREATE OR REPLACE VIEW, so views on them and grants stay), indexes, triggers (the
-- rollups' among them, so the rollups stay as they are), grants, owner and comment.
-- Moving rows fires no trigger, so the rollups keep their counts.
DO $upgrade$
DECLARE
    legacy_end timestamptz :=
        date_trunc('day', now() AT TIME ZONE 'UTC' + interval '1 day') AT TIME ZONE 'UTC';
    view_sql text[];
    index_sql text[];
    trigger_sql text[];
    disabled text[];
    grant_sql text[];
    old_owner name;
    old_comment text;
    statement text;
    index_name name;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('access_log'))
           IS DISTINCT FROM 'r' THEN
        RETURN;  -- partitioned already, or no access_log at all
    END IF;
    LOCK TABLE access_log IN ACCESS EXCLUSIVE MODE;

    -- What names access_log, as SQL, read before the rename changes the names.
    SELECT coalesce(array_agg(format('CREATE OR REPLACE VIEW %s%s AS %s', v.oid::regclass,
                                     CASE WHEN v.reloptions IS NULL THEN ''
                                          ELSE format(' WITH (%s)',
                                                      array_to_string(v.reloptions, ', '))
                                     END,
                                     pg_get_viewdef(v.oid))), '{}')
      INTO view_sql
      FROM pg_class v
     WHERE v.relkind = 'v'
       AND v.oid IN (SELECT r.ev_class FROM pg_rewrite r
                       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass
                                       AND d.objid = r.oid
                      WHERE d.refclassid = 'pg_class'::regclass
                        AND d.refobjid = 'access_log'::regclass);
    SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid)), '{}') INTO index_sql
      FROM pg_index i
     WHERE i.indrelid = 'access_log'::regclass
       AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid);
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}'),
           coalesce(array_agg(t.tgname) FILTER (WHERE t.tgenabled = 'D'), '{}')
      INTO trigger_sql, disabled
      FROM pg_trigger t
     WHERE t.tgrelid = 'access_log'::regclass AND NOT t.tgisinternal;
    SELECT coalesce(array_agg(format('GRANT %s ON access_log TO %s%s', a.privilege_type,
                                     CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                          ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                     CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION'
                                          ELSE '' END)), '{}')
      INTO grant_sql
      FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = 'access_log'::regclass AND a.grantee <> c.relowner;
    SELECT pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class')
      INTO old_owner, old_comment
      FROM pg_class c WHERE c.oid = 'access_log'::regclass;

    -- The old table, under its new name, without its triggers (moving rows out of it
    -- must not subtract them from the rollups) and with its indexes renamed.
    ALTER TABLE access_log RENAME TO access_log_legacy;
    FOR statement IN
        SELECT format('DROP TRIGGER %I ON access_log_legacy', t.tgname)
          FROM pg_trigger t
         WHERE t.tgrelid = 'access_log_legacy'::regclass AND NOT t.tgisinternal
    LOOP
        EXECUTE statement;
    END LOOP;
    FOR index_name IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'access_log_legacy'::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', index_name,
                       left(CASE WHEN index_name LIKE 'access_log\_%'
                                 THEN 'access_log_legacy_' || substr(index_name, 12)
                                 ELSE index_name || '_legacy' END, 63));
    END LOOP;

    -- The new table: the old one's columns (an operator's own ones too), partitioned.
    CREATE TABLE access_log (LIKE access_log_legacy INCLUDING ALL EXCLUDING INDEXES
                             EXCLUDING STATISTICS) PARTITION BY RANGE (time);
    CREATE TABLE access_log_default PARTITION OF access_log DEFAULT;
    EXECUTE format('WITH moved AS (DELETE FROM access_log_legacy WHERE time >= %L RETURNING *)'
                   ' INSERT INTO access_log_default SELECT * FROM moved', legacy_end);
    -- a valid CHECK that implies the range spares ATTACH its own scan
    EXECUTE format('ALTER TABLE access_log_legacy ADD CONSTRAINT access_log_legacy_range'
                   ' CHECK (time < %L)', legacy_end);
    EXECUTE format('ALTER TABLE access_log ATTACH PARTITION access_log_legacy'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', legacy_end);
    ALTER TABLE access_log_legacy DROP CONSTRAINT access_log_legacy_range;

    -- Indexes on the new table take the old table's as their partitions (no rebuild).
    FOREACH statement IN ARRAY index_sql LOOP
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY trigger_sql LOOP
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY disabled LOOP
        EXECUTE format('ALTER TABLE access_log DISABLE TRIGGER %I', statement);
    END LOOP;
    FOREACH statement IN ARRAY view_sql LOOP
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY grant_sql LOOP
        EXECUTE statement;
    END LOOP;
    IF old_owner <> current_user THEN
        EXECUTE format('ALTER TABLE access_log OWNER TO %I', old_owner);
        EXECUTE format('ALTER TABLE access_log_default OWNER TO %I', old_owner);
    END IF;
    IF old_comment IS NOT NULL THEN
        EXECUTE format('COMMENT ON TABLE access_log IS %L', old_comment);
    END IF;
END
$upgrade$;
