-- pg_trickle's read, status and monitoring functions and views, over the proxy's catalog
-- (catalog version 7). They are SQL in the database, so that clients which bypass the proxy
-- see them too. Run by schema.rs's set-up after the tables exist; every object here is dropped
-- and created again by each set-up (views first: they depend on the helpers).

DROP VIEW IF EXISTS pgtrickle.stream_tables_info, pgtrickle.pg_stat_stream_tables,
    pgtrickle.quick_health, pgtrickle.pgt_cdc_status;
DO $drop$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid::pg_catalog.regprocedure AS sig FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'pgtrickle'::pg_catalog.regnamespace
          AND p.proname IN ('pgt_status', 'get_refresh_history', 'explain_st',
              '__pgt_schedule_seconds', '__pgt_stale', '__pgt_source_type', 'health_check',
              'health_summary', 'refresh_timeline', 'st_refresh_stats', 'get_staleness',
              'explain_refresh_mode', 'check_cdc_health', 'change_buffer_sizes',
              'trigger_inventory', 'dependency_tree', '__pgt_tree', 'diamond_groups',
              'pgt_scc_status', 'list_sources', 'diagnose_errors', 'stream_table_lineage',
              'slot_health', 'fuse_status')
    LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f.sig);
    END LOOP;
END
$drop$;

-- Seconds of a duration schedule ('30s', '1h30m', '2d'); NULL for cron and 'calculated'.
CREATE FUNCTION pgtrickle.__pgt_schedule_seconds(schedule text) RETURNS double precision
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT CASE WHEN schedule ~ '^\s*(\d+\s*[smhdw]\s*)+$' THEN
        (SELECT sum(m[1]::float8 * CASE m[2] WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600
                                             WHEN 'd' THEN 86400 ELSE 604800 END)
         FROM regexp_matches(schedule, '(\d+)\s*([smhdw])', 'g') AS m)
    END
$f$;

-- Stale: the data is older than the duration schedule (NULL for cron and 'calculated').
CREATE FUNCTION pgtrickle.__pgt_stale(schedule text, data_timestamp timestamptz) RETURNS bool
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT CASE WHEN pgtrickle.__pgt_schedule_seconds(schedule) IS NULL THEN NULL
                WHEN data_timestamp IS NULL THEN true
                ELSE now() - data_timestamp
                     > make_interval(secs => pgtrickle.__pgt_schedule_seconds(schedule))
           END
$f$;

-- pg_trickle's source_type names.
CREATE FUNCTION pgtrickle.__pgt_source_type(kind text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT CASE kind WHEN 'Table' THEN 'TABLE' WHEN 'StreamTable' THEN 'STREAM_TABLE'
                     WHEN 'View' THEN 'VIEW' WHEN 'ForeignTable' THEN 'FOREIGN_TABLE'
                     ELSE upper(kind) END
$f$;

-- pg_trickle's columns first, then the proxy's.
CREATE FUNCTION pgtrickle.pgt_status()
RETURNS TABLE (name text, status text, refresh_mode text, is_populated bool,
               consecutive_errors int, schedule text, data_timestamp timestamptz,
               staleness interval, effective_mode text, last_refresh_at timestamptz,
               last_error text, planner_version int)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT format('%I.%I', pgt_schema, pgt_name), status, refresh_mode, is_populated,
           consecutive_errors, schedule, data_timestamp, now() - data_timestamp, effective_mode,
           last_refresh_at, last_error, coalesce(planner_version, 1)
    FROM pgtrickle.pgt_stream_tables ORDER BY pgt_schema, pgt_name
$f$;

CREATE FUNCTION pgtrickle.get_refresh_history(name text, max_rows int DEFAULT 20)
RETURNS TABLE (refresh_id bigint, data_timestamp timestamptz, start_time timestamptz,
               end_time timestamptz, action text, status text, rows_inserted bigint,
               rows_updated bigint, rows_deleted bigint, duration_ms double precision,
               error_message text, rows_changed bigint, reason text)
LANGUAGE sql STABLE AS $f$
    SELECT h.refresh_id, h.data_timestamp, h.started_at, h.finished_at, h.action, h.status,
           h.rows_inserted, h.rows_updated, h.rows_deleted,
           coalesce(h.duration_ms,
                    (extract(epoch FROM h.finished_at - h.started_at) * 1000)::float8), h.error,
           h.rows_changed, h.reason
    FROM pgtrickle.pgt_refresh_history h
    WHERE h.pgt_id = pgtrickle.__pgt_find(name)
    ORDER BY h.refresh_id DESC LIMIT max_rows
$f$;

-- Property/value rows; with_analyze adds the defining query's EXPLAIN ANALYZE (run as the
-- caller, with the caller's rights on the sources).
CREATE FUNCTION pgtrickle.explain_st(name text, with_analyze bool DEFAULT false)
RETURNS TABLE (property text, value text)
LANGUAGE plpgsql VOLATILE AS $f$
#variable_conflict use_column
DECLARE
    id bigint := pgtrickle.__pgt_find(name);
    q text;
    line text;
    plan text := '';
BEGIN
    RETURN QUERY
    SELECT p.property, p.value FROM pgtrickle.pgt_stream_tables s
    CROSS JOIN LATERAL (VALUES
        (1, 'pgt_name', pg_catalog.format('%I.%I', s.pgt_schema, s.pgt_name)),
        (2, 'defining_query', s.defining_query),
        (3, 'refresh_mode', s.refresh_mode),
        (4, 'effective_mode', s.effective_mode),
        (5, 'status', pg_catalog.lower(s.status)),
        (6, 'is_populated', s.is_populated::text),
        (7, 'dvm_supported', (s.diff_refresh IS NOT NULL)::text),
        (8, 'operator_tree', s.explain),
        (9, 'output_columns',
            (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
             FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = s.pgt_relid AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname::text NOT LIKE '\_\_pgt\_%')),
        (10, 'source_oids',
            (SELECT pg_catalog.string_agg(d.source_relid::text, ', ' ORDER BY d.source_relid)
             FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = s.pgt_id)),
        (11, 'delta_query', pg_catalog.array_to_string(s.diff_refresh, E';\n')),
        (12, 'full_query', pg_catalog.array_to_string(s.full_refresh, E';\n')),
        (13, 'append_only', s.append_only::text),
        (14, 'max_delta_fraction', s.auto_threshold::text),
        (15, 'post_refresh_action', s.post_refresh_action),
        (16, 'refresh_timing_stats',
            (SELECT pg_catalog.json_build_object(
                 'samples', pg_catalog.count(*),
                 'min_ms', pg_catalog.min(t.ms), 'max_ms', pg_catalog.max(t.ms),
                 'avg_ms', pg_catalog.round(pg_catalog.avg(t.ms)::numeric, 3),
                 'latest_ms', (pg_catalog.array_agg(t.ms ORDER BY t.refresh_id DESC))[1],
                 'latest_action', (pg_catalog.array_agg(t.action ORDER BY t.refresh_id DESC))[1])::text
             FROM (SELECT h.refresh_id, h.action,
                          (extract(epoch FROM h.finished_at - h.started_at) * 1000)::float8 AS ms
                   FROM pgtrickle.pgt_refresh_history h
                   WHERE h.pgt_id = s.pgt_id AND h.status = 'SUCCESS'
                   ORDER BY h.refresh_id DESC LIMIT 20) t
             HAVING pg_catalog.count(*) > 0))
    ) AS p(ord, property, value)
    WHERE s.pgt_id = id AND p.value IS NOT NULL
    ORDER BY p.ord;
    IF with_analyze THEN
        SELECT coalesce(s.resolved_query, s.defining_query) INTO q
        FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = id;
        FOR line IN EXECUTE 'EXPLAIN (ANALYZE, FORMAT TEXT) ' || q LOOP
            plan := plan || line || E'\n';
        END LOOP;
        property := 'explain_analyze';
        value := pg_catalog.rtrim(plan, E'\n');
        RETURN NEXT;
    END IF;
END
$f$;

CREATE FUNCTION pgtrickle.get_staleness(name text) RETURNS double precision
LANGUAGE sql STABLE AS $f$
    SELECT (extract(epoch FROM now() - s.data_timestamp))::float8
    FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = pgtrickle.__pgt_find(name)
$f$;

CREATE FUNCTION pgtrickle.explain_refresh_mode(name text)
RETURNS TABLE (configured_mode text, effective_mode text, downgrade_reason text)
LANGUAGE sql STABLE AS $f$
    SELECT s.refresh_mode, coalesce(h.action, s.effective_mode),
           CASE WHEN h.reason IS NOT NULL THEN 'The most recent refresh used FULL: ' || h.reason
                WHEN s.refresh_mode <> coalesce(h.action, s.effective_mode)
                THEN 'The defining query is refreshed ' || s.effective_mode END
    FROM pgtrickle.pgt_stream_tables s
    LEFT JOIN LATERAL (SELECT l.action, l.reason FROM pgtrickle.pgt_refresh_history l
                       WHERE l.pgt_id = s.pgt_id AND l.status = 'SUCCESS'
                       ORDER BY l.refresh_id DESC LIMIT 1) h ON true
    WHERE s.pgt_id = pgtrickle.__pgt_find(name)
$f$;

CREATE FUNCTION pgtrickle.st_refresh_stats()
RETURNS TABLE (pgt_name text, pgt_schema text, status text, refresh_mode text,
               is_populated bool, total_refreshes bigint, successful_refreshes bigint,
               failed_refreshes bigint, total_rows_inserted bigint, total_rows_updated bigint,
               total_rows_deleted bigint, avg_duration_ms double precision,
               last_refresh_action text, last_refresh_status text,
               last_refresh_at timestamptz, staleness_secs double precision, stale bool)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT s.pgt_name, s.pgt_schema, s.status, s.refresh_mode, s.is_populated,
           count(h.refresh_id), count(h.refresh_id) FILTER (WHERE h.status = 'SUCCESS'),
           count(h.refresh_id) FILTER (WHERE h.status = 'FAILED'),
           coalesce(sum(h.rows_inserted), 0)::bigint, coalesce(sum(h.rows_updated), 0)::bigint,
           coalesce(sum(h.rows_deleted), 0)::bigint,
           avg(extract(epoch FROM h.finished_at - h.started_at) * 1000)::float8,
           (array_agg(h.action ORDER BY h.refresh_id DESC))[1],
           (array_agg(h.status ORDER BY h.refresh_id DESC))[1],
           s.last_refresh_at, (extract(epoch FROM now() - s.data_timestamp))::float8,
           pgtrickle.__pgt_stale(s.schedule, s.data_timestamp)
    FROM pgtrickle.pgt_stream_tables s
    LEFT JOIN pgtrickle.pgt_refresh_history h ON h.pgt_id = s.pgt_id
    GROUP BY s.pgt_id ORDER BY s.pgt_schema, s.pgt_name
$f$;

CREATE FUNCTION pgtrickle.refresh_timeline(max_rows int DEFAULT 50)
RETURNS TABLE (start_time timestamptz, stream_table text, action text, status text,
               rows_inserted bigint, rows_updated bigint, rows_deleted bigint,
               duration_ms double precision, error_message text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT h.started_at, format('%I.%I', s.pgt_schema, s.pgt_name), h.action, h.status,
           h.rows_inserted, h.rows_updated, h.rows_deleted,
           (extract(epoch FROM h.finished_at - h.started_at) * 1000)::float8, h.error
    FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
    ORDER BY h.refresh_id DESC LIMIT max_rows
$f$;

-- Rows waiting in each source's change buffer (not yet trimmed) and its size. SECURITY
-- DEFINER: the buffers are the engine role's; only counts leave.
CREATE FUNCTION pgtrickle.change_buffer_sizes()
RETURNS TABLE (stream_table text, source_table text, source_oid bigint, cdc_mode text,
               pending_rows bigint, buffer_bytes bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
#variable_conflict use_column
DECLARE
    r record;
    buf regclass;
BEGIN
    FOR r IN
        SELECT s.pgt_schema, s.pgt_name, d.source_relid, d.source_schema, d.source_name,
               d.source_kind
        FROM pgtrickle.pgt_stream_tables s JOIN pgtrickle.pgt_dependencies d USING (pgt_id)
        ORDER BY s.pgt_schema, s.pgt_name, d.source_schema, d.source_name
    LOOP
        buf := to_regclass(format('pgtrickle_changes.changes_%s', r.source_relid));
        CONTINUE WHEN buf IS NULL;
        stream_table := format('%I.%I', r.pgt_schema, r.pgt_name);
        source_table := format('%I.%I', r.source_schema, r.source_name);
        source_oid := r.source_relid;
        cdc_mode := CASE WHEN r.source_kind = 'ForeignTable' THEN 'poll' ELSE 'trigger' END;
        EXECUTE format('SELECT count(*) FROM %s', buf) INTO pending_rows;
        buffer_bytes := pg_total_relation_size(buf);
        RETURN NEXT;
    END LOOP;
END
$f$;

-- The capture triggers each captured source must have (tables and stream tables).
CREATE FUNCTION pgtrickle.trigger_inventory()
RETURNS TABLE (source_table text, source_oid bigint, trigger_name text, trigger_type text,
               present bool, enabled bool)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT DISTINCT ON (d.source_relid, e.ev)
           format('%I.%I', d.source_schema, d.source_name), d.source_relid::bigint,
           format('__pgt_capture_%s_%s', d.source_relid, e.ev),
           CASE e.ev WHEN 'trunc' THEN 'TRUNCATE' ELSE 'DML' END,
           t.oid IS NOT NULL, coalesce(t.tgenabled <> 'D', false)
    FROM pgtrickle.pgt_dependencies d
    CROSS JOIN (VALUES ('ins'), ('upd'), ('del'), ('trunc')) AS e(ev)
    LEFT JOIN pg_catalog.pg_trigger t
           ON t.tgrelid = d.source_relid
          AND t.tgname = format('__pgt_capture_%s_%s', d.source_relid, e.ev)
    WHERE d.source_kind IN ('Table', 'StreamTable')
    ORDER BY d.source_relid, e.ev
$f$;

CREATE FUNCTION pgtrickle.check_cdc_health()
RETURNS TABLE (source_relid bigint, source_table text, cdc_mode text, slot_name text,
               lag_bytes bigint, confirmed_lsn text, alert text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT i.source_oid, i.source_table, 'TRIGGER', NULL::text, NULL::bigint, NULL::text,
           CASE WHEN bool_and(i.present) IS NOT TRUE THEN 'capture_trigger_missing'
                WHEN bool_and(i.enabled) IS NOT TRUE THEN 'capture_trigger_disabled' END
    FROM pgtrickle.trigger_inventory() i
    GROUP BY i.source_oid, i.source_table
    UNION ALL
    SELECT p.foreign_relid::bigint, format('%I.%I', p.source_schema, p.source_name), 'POLL',
           NULL, NULL, NULL,
           CASE WHEN st.consecutive_errors > 0 THEN 'poll_failing: ' || st.last_error END
    FROM pgtrickle.pgt_polled_sources p
    LEFT JOIN pgtrickle.pgt_poll_state st USING (foreign_relid)
    ORDER BY 2
$f$;

CREATE FUNCTION pgtrickle.health_check()
RETURNS TABLE (check_name text, severity text, detail text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    WITH s AS (SELECT * FROM pgtrickle.pgt_stream_tables),
    n AS (SELECT
        (SELECT count(*) FROM s) AS total,
        (SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database()
           AND application_name = 'pgtrickle-proxy scheduler') AS schedulers,
        (SELECT count(*) FROM s WHERE status = 'ERROR') AS errors,
        (SELECT count(*) FROM s WHERE status = 'SUSPENDED') AS suspended,
        (SELECT count(*) FROM s WHERE status = 'ACTIVE'
            AND pgtrickle.__pgt_stale(schedule, data_timestamp)) AS stale,
        (SELECT count(*) FROM s WHERE needs_full) AS reinit,
        (SELECT count(*) FROM s WHERE consecutive_errors > 0) AS erring,
        (SELECT count(*) FROM pgtrickle.change_buffer_sizes() WHERE pending_rows > 10000)
            AS growing)
    SELECT c.* FROM n, LATERAL (VALUES
        ('scheduler_running',
         CASE WHEN n.schedulers > 0 OR n.total = 0 THEN 'OK' ELSE 'WARN' END,
         CASE WHEN n.schedulers > 0 THEN 'a pgtrickle-proxy scheduler is connected'
              WHEN n.total = 0 THEN 'no stream tables'
              ELSE 'no pgtrickle-proxy scheduler is connected to this database' END),
        ('error_tables', CASE WHEN n.errors + n.suspended > 0 THEN 'ERROR' ELSE 'OK' END,
         format('%s stream tables in ERROR, %s SUSPENDED', n.errors, n.suspended)),
        ('stale_tables', CASE WHEN n.stale > 0 THEN 'WARN' ELSE 'OK' END,
         format('%s active stream tables older than their schedule', n.stale)),
        ('needs_reinit', 'OK',
         format('%s stream tables will refresh FULL next (no action needed)', n.reinit)),
        ('consecutive_errors', CASE WHEN n.erring > 0 THEN 'WARN' ELSE 'OK' END,
         format('%s stream tables with failing refreshes', n.erring)),
        ('buffer_growth', CASE WHEN n.growing > 0 THEN 'WARN' ELSE 'OK' END,
         format('%s change buffers over 10000 pending rows', n.growing))
    ) AS c(check_name, severity, detail)
$f$;

CREATE FUNCTION pgtrickle.health_summary()
RETURNS TABLE (total_stream_tables int, active_count int, error_count int,
               suspended_count int, stale_count int, reinit_pending int,
               max_staleness_seconds double precision, scheduler_status text,
               cache_hit_rate double precision)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT count(*)::int, (count(*) FILTER (WHERE status = 'ACTIVE'))::int,
           (count(*) FILTER (WHERE status = 'ERROR' OR consecutive_errors > 0))::int,
           (count(*) FILTER (WHERE status = 'SUSPENDED'))::int,
           (count(*) FILTER (WHERE pgtrickle.__pgt_stale(schedule, data_timestamp)))::int,
           (count(*) FILTER (WHERE needs_full))::int,
           max(extract(epoch FROM now() - data_timestamp))::float8,
           CASE WHEN EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE datname = current_database()
                               AND application_name = 'pgtrickle-proxy scheduler')
                THEN 'ACTIVE' ELSE 'STOPPED' END,
           NULL::float8
    FROM pgtrickle.pgt_stream_tables
$f$;

-- Consumers at the top (stream tables no other stream table reads), their sources beneath.
CREATE FUNCTION pgtrickle.__pgt_tree(id bigint, lead text, child_lead text, lvl int)
RETURNS TABLE (tree_line text, node text, node_type text, depth int, status text,
               refresh_mode text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $f$
#variable_conflict use_column
DECLARE
    s record;
    c record;
    n int;
    i int := 0;
    branch text;
BEGIN
    SELECT * INTO s FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = id;
    tree_line := lead || format('%I.%I', s.pgt_schema, s.pgt_name);
    node := format('%I.%I', s.pgt_schema, s.pgt_name);
    node_type := 'stream_table';
    depth := lvl;
    status := s.status;
    refresh_mode := s.refresh_mode;
    RETURN NEXT;
    IF lvl >= 64 THEN
        RETURN;
    END IF;
    SELECT count(*) INTO n FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = id;
    FOR c IN
        SELECT d.source_schema, d.source_name, st.pgt_id AS child
        FROM pgtrickle.pgt_dependencies d
        LEFT JOIN pgtrickle.pgt_stream_tables st ON st.pgt_relid = d.source_relid
        WHERE d.pgt_id = id ORDER BY d.source_schema, d.source_name
    LOOP
        i := i + 1;
        branch := CASE WHEN i = n THEN '└── ' ELSE '├── ' END;
        IF c.child IS NOT NULL THEN
            RETURN QUERY SELECT * FROM pgtrickle.__pgt_tree(c.child, child_lead || branch,
                child_lead || CASE WHEN i = n THEN '    ' ELSE '│   ' END, lvl + 1);
        ELSE
            node := format('%I.%I', c.source_schema, c.source_name);
            tree_line := child_lead || branch || node || ' [src]';
            node_type := 'source_table';
            depth := lvl + 1;
            status := NULL;
            refresh_mode := NULL;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$f$;

CREATE FUNCTION pgtrickle.dependency_tree()
RETURNS TABLE (tree_line text, node text, node_type text, depth int, status text,
               refresh_mode text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT t.* FROM (
        SELECT s.pgt_id, s.pgt_schema, s.pgt_name FROM pgtrickle.pgt_stream_tables s
        WHERE NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d
                          WHERE d.source_relid = s.pgt_relid)
        ORDER BY s.pgt_schema, s.pgt_name) r,
    LATERAL pgtrickle.__pgt_tree(r.pgt_id, '', '', 0) t
$f$;

-- Every source of one stream table, through the stream tables it reads.
CREATE FUNCTION pgtrickle.stream_table_lineage(name text)
RETURNS TABLE (depth int, source_table text, source_oid bigint, source_type text,
               read_by text)
LANGUAGE sql STABLE AS $f$
    WITH RECURSIVE l(depth, pgt_id, relid, schema_name, rel_name, kind, reader) AS (
        SELECT 1, d.pgt_id, d.source_relid, d.source_schema, d.source_name, d.source_kind,
               pg_catalog.format('%I.%I', s.pgt_schema, s.pgt_name)
        FROM pgtrickle.pgt_dependencies d JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
        WHERE d.pgt_id = pgtrickle.__pgt_find(name)
        UNION ALL
        SELECT l.depth + 1, d.pgt_id, d.source_relid, d.source_schema, d.source_name,
               d.source_kind, pg_catalog.format('%I.%I', l.schema_name, l.rel_name)
        FROM l JOIN pgtrickle.pgt_stream_tables s ON s.pgt_relid = l.relid
        JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = s.pgt_id
        WHERE l.depth < 64
    )
    SELECT l.depth, pg_catalog.format('%I.%I', l.schema_name, l.rel_name), l.relid::bigint,
           pgtrickle.__pgt_source_type(l.kind), l.reader
    FROM l ORDER BY l.depth, 2
$f$;

CREATE FUNCTION pgtrickle.list_sources(name text)
RETURNS TABLE (source_table text, source_oid bigint, source_type text, cdc_mode text,
               columns_used text)
LANGUAGE sql STABLE AS $f$
    SELECT pg_catalog.format('%I.%I', d.source_schema, d.source_name), d.source_relid::bigint,
           pgtrickle.__pgt_source_type(d.source_kind),
           CASE d.source_kind WHEN 'ForeignTable' THEN 'poll' WHEN 'View' THEN NULL
                              ELSE 'trigger' END,
           NULL::text
    FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = pgtrickle.__pgt_find(name)
    ORDER BY 1
$f$;

-- The last five failed refreshes, classified as pg_trickle classifies them.
CREATE FUNCTION pgtrickle.diagnose_errors(name text)
RETURNS TABLE (event_time timestamptz, error_type text, error_message text, remediation text)
LANGUAGE sql STABLE AS $f$
    SELECT h.started_at, c.kind, h.error,
           CASE c.kind
               WHEN 'schema' THEN 'a source changed or was dropped: recreate the stream table '
                                  'with create_or_replace_stream_table'
               WHEN 'performance' THEN 'concurrent work held a lock or conflicted: the scheduler '
                                       'retries; lengthen the schedule if it persists'
               WHEN 'infrastructure' THEN 'check the owner''s grants on the sources and the '
                                          'server''s logs'
               WHEN 'correctness' THEN 'switch to refresh_mode => ''FULL'' and report it'
               ELSE 'check the defining query: run it on its own, or alter_stream_table(name, '
                    'query => ...)'
           END
    FROM pgtrickle.pgt_refresh_history h
    CROSS JOIN LATERAL (SELECT CASE
        WHEN h.error ~* '(does not exist|dropped|column .* of relation|schema changed)'
            THEN 'schema'
        WHEN h.error ~* '(lock timeout|deadlock|serializ|could not obtain lock|canceling statement)'
            THEN 'performance'
        WHEN h.error ~* '(permission denied|must be owner|connection|replication slot|out of memory|disk)'
            THEN 'infrastructure'
        WHEN h.error ~* '(phantom|row count mismatch|duplicate key)' THEN 'correctness'
        ELSE 'user' END AS kind) c
    WHERE h.pgt_id = pgtrickle.__pgt_find(name) AND h.status = 'FAILED'
    ORDER BY h.refresh_id DESC LIMIT 5
$f$;

-- Behind the proxy stream tables are never grouped (diamonds, cycles), capture uses no
-- replication slots and there are no fuses: these answer with no rows, as pg_trickle does
-- when there is nothing to show.
CREATE FUNCTION pgtrickle.diamond_groups()
RETURNS TABLE (group_id int4, member_name text, member_schema text, is_convergence bool,
               epoch int8, schedule_policy text)
LANGUAGE sql STABLE AS $f$ SELECT NULL::int4, NULL, NULL, NULL::bool, NULL::int8, NULL WHERE false $f$;
CREATE FUNCTION pgtrickle.pgt_scc_status()
RETURNS TABLE (scc_id int4, member_count int4, members text[], last_iterations int4,
               last_converged_at timestamptz)
LANGUAGE sql STABLE AS $f$ SELECT NULL::int4, NULL::int4, NULL::text[], NULL::int4, NULL::timestamptz WHERE false $f$;
CREATE FUNCTION pgtrickle.slot_health()
RETURNS TABLE (slot_name text, source_relid bigint, active bool, retained_wal_bytes bigint,
               wal_status text)
LANGUAGE sql STABLE AS $f$ SELECT NULL, NULL::bigint, NULL::bool, NULL::bigint, NULL WHERE false $f$;
CREATE FUNCTION pgtrickle.fuse_status()
RETURNS TABLE (name text, fuse_mode text, fuse_state text, fuse_ceiling bigint,
               fuse_sensitivity int, blown_at timestamptz, blow_reason text)
LANGUAGE sql STABLE AS $f$ SELECT NULL, NULL, NULL, NULL::bigint, NULL::int, NULL::timestamptz, NULL WHERE false $f$;

CREATE VIEW pgtrickle.stream_tables_info AS
    SELECT s.*, now() - s.data_timestamp AS staleness,
           pgtrickle.__pgt_stale(s.schedule, s.data_timestamp) AS stale
    FROM pgtrickle.pgt_stream_tables s;

CREATE VIEW pgtrickle.pg_stat_stream_tables AS
    SELECT s.pgt_id, s.pgt_schema, s.pgt_name, s.status, s.refresh_mode, s.data_timestamp,
           now() - s.data_timestamp AS staleness,
           pgtrickle.__pgt_stale(s.schedule, s.data_timestamp) AS stale,
           count(h.refresh_id) AS total_refreshes,
           count(h.refresh_id) FILTER (WHERE h.status = 'SUCCESS') AS successful_refreshes,
           count(h.refresh_id) FILTER (WHERE h.status = 'FAILED') AS failed_refreshes,
           avg(extract(epoch FROM h.finished_at - h.started_at) * 1000)::float8
               AS avg_duration_ms,
           s.consecutive_errors,
           ARRAY(SELECT DISTINCT CASE d.source_kind WHEN 'ForeignTable' THEN 'poll'
                                                    ELSE 'trigger' END
                 FROM pgtrickle.pgt_dependencies d
                 WHERE d.pgt_id = s.pgt_id AND d.source_kind <> 'View') AS cdc_modes,
           NULL::int AS scc_id, NULL::int AS last_fixpoint_iterations
    FROM pgtrickle.pgt_stream_tables s
    LEFT JOIN pgtrickle.pgt_refresh_history h ON h.pgt_id = s.pgt_id
    GROUP BY s.pgt_id;

CREATE VIEW pgtrickle.quick_health AS
    SELECT count(*) AS total_stream_tables,
           count(*) FILTER (WHERE s.status = 'ERROR' OR s.consecutive_errors > 0)
               AS error_tables,
           count(*) FILTER (WHERE pgtrickle.__pgt_stale(s.schedule, s.data_timestamp))
               AS stale_tables,
           EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                   WHERE a.datname = pg_catalog.current_database()
                     AND a.application_name = 'pgtrickle-proxy scheduler') AS scheduler_running,
           CASE WHEN count(*) = 0 THEN 'EMPTY'
                WHEN count(*) FILTER (WHERE s.status = 'SUSPENDED') > 0 THEN 'CRITICAL'
                WHEN count(*) FILTER (WHERE s.status = 'ERROR' OR s.consecutive_errors > 0
                        OR pgtrickle.__pgt_stale(s.schedule, s.data_timestamp)) > 0
                    THEN 'WARNING'
                ELSE 'OK' END AS status
    FROM pgtrickle.pgt_stream_tables s;

CREATE VIEW pgtrickle.pgt_cdc_status AS
    SELECT s.pgt_schema, s.pgt_name, d.source_relid, d.source_name, d.source_schema,
           CASE d.source_kind WHEN 'ForeignTable' THEN 'poll' ELSE 'trigger' END AS cdc_mode,
           NULL::text AS slot_name, NULL::pg_lsn AS decoder_confirmed_lsn,
           NULL::timestamptz AS transition_started_at
    FROM pgtrickle.pgt_stream_tables s JOIN pgtrickle.pgt_dependencies d USING (pgt_id)
    WHERE d.source_kind IN ('Table', 'StreamTable', 'ForeignTable');

GRANT SELECT ON pgtrickle.stream_tables_info, pgtrickle.pg_stat_stream_tables,
    pgtrickle.quick_health, pgtrickle.pgt_cdc_status TO PUBLIC;
