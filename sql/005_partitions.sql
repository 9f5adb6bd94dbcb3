-- The partitions of access_log, and what `logpipe prune` removed.
--
-- access_log is partitioned by range of time: one partition per month, week or day
-- (`logpipe initdb --partition`), in UTC, each named after its range [from, to) as
-- access_log_YYYYMMDD_YYYYMMDD. The DEFAULT partition (001_tables.sql) takes any row
-- no partition covers, so no time ever stops a COPY. logpipe_prepare_partitions()
-- creates partitions ahead, from the current period to a margin beyond now, and for the
-- sane dates (2000 onwards) that landed in the default partition, e.g. a backfill of old
-- logs; absurd times stay there. The writer runs it at start and hourly, `logpipe load`
-- after each file, `logpipe initdb` every time. `logpipe prune` empties and drops the
-- partitions older than a cutoff (src/logpipe/store/partitions.py).
--
-- A schema of version 1 had a plain access_log: upgrade_002_partitioned_access_log.sql
-- made it the partition access_log_legacy, covering everything before the upgrade.

-- How new partitions are cut; one row, set by `logpipe initdb --partition`.
CREATE TABLE IF NOT EXISTS logpipe_partitioning (
    one_row     boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    granularity text NOT NULL DEFAULT 'month' CHECK (granularity IN ('month', 'week', 'day'))
);
INSERT INTO logpipe_partitioning DEFAULT VALUES ON CONFLICT DO NOTHING;

-- What `logpipe prune` removed: a row per partition dropped, and per clean-up of the
-- default partition. Before the latest range_to only the rollups count every request:
-- the reports read pruned days from them, and a rebuild of the rollups
-- (020_reports.sql) keeps what they hold for those days.
CREATE TABLE IF NOT EXISTS logpipe_pruned (
    relation   text        NOT NULL,      -- the partition, or access_log_default
    range_from timestamptz,               -- NULL: from the beginning of time
    range_to   timestamptz NOT NULL,
    rows       bigint      NOT NULL,
    pruned_at  timestamptz NOT NULL DEFAULT now()
);

-- The UTC day the latest prune ended at (its range_to, a UTC midnight), NULL when
-- nothing was pruned: access_log holds every row from that day on. The summaries of
-- days before it are kept as they were (030_visitors.sql, 050_daily_summaries.sql).
CREATE OR REPLACE FUNCTION logpipe_pruned_day() RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (max(range_to) AT TIME ZONE 'UTC')::date FROM logpipe_pruned
$$;

-- The UTC period (month, week from Monday, or day) a time falls in: its start and end.
CREATE OR REPLACE FUNCTION logpipe_period_start(t timestamptz, granularity text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc(granularity, t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION logpipe_period_end(t timestamptz, granularity text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (date_trunc(granularity, t AT TIME ZONE 'UTC')
            + CASE granularity WHEN 'month' THEN interval '1 month'
                               WHEN 'week' THEN interval '7 days'
                               ELSE interval '1 day' END) AT TIME ZONE 'UTC'
$$;

-- The partitions of access_log and their ranges: NULL for an open end (MINVALUE), and
-- both NULL for the default partition. Read from the catalog, so a partition an
-- operator dropped or attached by hand counts as it is.
CREATE OR REPLACE FUNCTION logpipe_partitions()
RETURNS TABLE (partition regclass, range_from timestamptz, range_to timestamptz,
               is_default boolean)
LANGUAGE sql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO'  -- how pg_get_expr writes the bounds
AS $fn$
    SELECT c.oid::regclass, b[1]::timestamptz, b[2]::timestamptz, b IS NULL
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      LEFT JOIN LATERAL regexp_match(
          pg_get_expr(c.relpartbound, c.oid),
          '^FOR VALUES FROM \((?:''([^'']*)''|MINVALUE)\) TO \((?:''([^'']*)''|MAXVALUE)\)'
      ) b ON true
     WHERE i.inhparent = 'access_log'::regclass
     ORDER BY 2 NULLS FIRST, 3
$fn$;

-- What a partition needs so that the writer can COPY live lines into it directly
-- (src/logpipe/ingest/live_partition.py), skipping access_log's routing: the rollup
-- trigger of access_log (sql/020_reports.sql) on the partition too, and INSERT for
-- whoever may insert into access_log. A statement trigger fires only for the table a
-- statement names, so each row is counted once, by access_log's trigger or the
-- partition's. Only what is missing is added: a re-run changes no catalog row.
-- logpipe_prepare_partitions() calls it for each partition it makes, `logpipe initdb`
-- for every partition (one made before this, or attached by hand).
CREATE OR REPLACE FUNCTION logpipe_partition_ready(part regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    grantee text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_trigger t
                    WHERE t.tgrelid = part AND t.tgname = 'logpipe_rollup_insert') THEN
        EXECUTE format('CREATE TRIGGER logpipe_rollup_insert AFTER INSERT ON %s'
                       ' REFERENCING NEW TABLE AS new_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION logpipe_rollup_add()', part);
    END IF;
    FOR grantee IN
        SELECT CASE WHEN a.grantee = 0 THEN 'public' ELSE r.rolname END
          FROM pg_class c
         CROSS JOIN LATERAL aclexplode(c.relacl) a
          LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE c.oid = 'access_log'::regclass AND a.privilege_type = 'INSERT'
           AND a.grantee <> c.relowner
    LOOP
        IF NOT has_table_privilege(grantee, part, 'INSERT') THEN
            EXECUTE format('GRANT INSERT ON %s TO %s', part,
                           CASE grantee WHEN 'public' THEN 'PUBLIC'
                                        ELSE quote_ident(grantee) END);
        END IF;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION logpipe_partition_ready(regclass) FROM PUBLIC;

-- Every partition but the default one made ready; one this role may not change (an
-- operator's, owned by another role) is left as it is, and loads through access_log.
-- Returns how many partitions are not ready.
CREATE OR REPLACE FUNCTION logpipe_partitions_ready() RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    part regclass;
    left_alone integer := 0;
BEGIN
    FOR part IN SELECT p.partition FROM logpipe_partitions() p WHERE NOT p.is_default LOOP
        BEGIN
            PERFORM logpipe_partition_ready(part);
        EXCEPTION WHEN insufficient_privilege THEN
            left_alone := left_alone + 1;
        END;
    END LOOP;
    RETURN left_alone;
END
$fn$;
REVOKE ALL ON FUNCTION logpipe_partitions_ready() FROM PUBLIC;

-- Partitions for the current period through a margin ahead of now (a month, two
-- weeks or a week), and for the periods of sane rows (2000 up to that margin) waiting
-- in the default partition; at most 120 a call. Returns the partitions it made.
--
-- Each is built beside access_log (its rows moved out of the default partition) and
-- then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on access_log, which does
-- not stop loaders, where CREATE TABLE ... PARTITION OF would take an ACCESS EXCLUSIVE
-- one; it also locks the default partition while it checks it, briefly. A lock not
-- granted within a second ends the call with what it made so far: the next call goes
-- on. A range next to partitions of another granularity is cut to the gap between
-- them. Moving rows between partitions fires no trigger of access_log, so the rollups
-- are left as they are (they counted those rows already).
--
-- SECURITY DEFINER, with a fixed search_path, so that a writer that may only INSERT
-- into access_log can run it: grant it EXECUTE. It takes no argument and does only
-- this.
CREATE OR REPLACE FUNCTION logpipe_prepare_partitions()
RETURNS TABLE (partition text, range_from timestamptz, range_to timestamptz,
               moved_rows bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET lock_timeout = '1s'
AS $fn$
DECLARE
    unit text := coalesce((SELECT p.granularity FROM logpipe_partitioning p), 'month');
    horizon timestamptz := now() + CASE unit WHEN 'month' THEN interval '1 month'
                                             WHEN 'week' THEN interval '14 days'
                                             ELSE interval '7 days' END;
    starts timestamptz[];
    period timestamptz;
    period_end timestamptz;
    lo timestamptz;
    hi timestamptz;
    part_name text;
    columns text;
    home text;  -- access_log's schema, where its partitions go
    moved bigint;
BEGIN
    -- one call at a time: a caller that finds another at work leaves it the work
    IF NOT pg_try_advisory_xact_lock(hashtext('logpipe_prepare_partitions')) THEN
        RETURN;
    END IF;
    BEGIN
        -- the periods ahead first, then the old ones, oldest first
        SELECT array_agg(w.s ORDER BY w.s < logpipe_period_start(now(), unit), w.s)
          INTO starts
          FROM (SELECT generate_series(logpipe_period_start(now(), unit), horizon,
                                       CASE unit WHEN 'month' THEN interval '1 month'
                                                 WHEN 'week' THEN interval '7 days'
                                                 ELSE interval '1 day' END) AS s
                UNION
                SELECT logpipe_period_start(d.time, unit) FROM access_log_default d
                 WHERE d.time >= timestamptz '2000-01-01 00:00:00+00' AND d.time < horizon
               ) w;
    EXCEPTION WHEN lock_not_available THEN
        RETURN;  -- the default partition is locked (a prune dropping a partition)
    END;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO columns
      FROM pg_attribute a
     WHERE a.attrelid = 'access_log'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
    SELECT n.nspname INTO home
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = 'access_log'::regclass;
    FOREACH period IN ARRAY coalesce(starts[1:120], '{}') LOOP
        period_end := logpipe_period_end(period, unit);
        lo := period;
        WHILE lo < period_end LOOP
            -- what a partition covers already (maybe one of another granularity)
            SELECT p.range_to INTO hi FROM logpipe_partitions() p
             WHERE NOT p.is_default AND coalesce(p.range_from, '-infinity') <= lo
               AND coalesce(p.range_to, 'infinity') > lo;
            IF FOUND THEN
                lo := coalesce(hi, 'infinity');
                CONTINUE;
            END IF;
            hi := least(period_end, (SELECT min(p.range_from) FROM logpipe_partitions() p
                                      WHERE p.range_from > lo));
            part_name := format('access_log_%s_%s', to_char(lo, 'YYYYMMDD'),
                                to_char(hi, 'YYYYMMDD'));
            BEGIN
                LOCK TABLE ONLY access_log IN SHARE UPDATE EXCLUSIVE MODE;
                EXECUTE format('CREATE TABLE %I.%I (LIKE access_log INCLUDING DEFAULTS'
                               ' INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
                               home, part_name);
                EXECUTE format('WITH moved AS (DELETE FROM access_log_default'
                               ' WHERE time >= %L AND time < %L RETURNING %s)'
                               ' INSERT INTO %I.%I (%s) SELECT %s FROM moved',
                               lo, hi, columns, home, part_name, columns, columns);
                GET DIAGNOSTICS moved = ROW_COUNT;
                -- lets ATTACH skip scanning the new partition
                EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I'
                               ' CHECK (time >= %L AND time < %L)',
                               home, part_name, part_name || '_range', lo, hi);
                EXECUTE format('ALTER TABLE access_log ATTACH PARTITION %I.%I'
                               ' FOR VALUES FROM (%L) TO (%L)', home, part_name, lo, hi);
                EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I',
                               home, part_name, part_name || '_range');
                -- after the rows moved in: they were counted when they were loaded
                PERFORM logpipe_partition_ready(format('%I.%I', home, part_name)::regclass);
            EXCEPTION WHEN lock_not_available THEN
                RETURN;  -- loaders or a report hold what it needs: the next call goes on
            END;
            partition := part_name;
            range_from := lo;
            range_to := hi;
            moved_rows := moved;
            RETURN NEXT;
            lo := hi;
        END LOOP;
    END LOOP;
END
$fn$;

-- Pinned to the schema logpipe lives in (and pg_temp last), so that nobody's objects
-- elsewhere on a caller's search_path run with the owner's rights.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION logpipe_prepare_partitions() SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END
$$;
REVOKE ALL ON FUNCTION logpipe_prepare_partitions() FROM PUBLIC;
