//! The catalog in schema `pgtrickle`: stream tables, their sources, and refresh history, created
//! and migrated idempotently by whichever proxy needs it first, always on a connection of the
//! proxy's own: the engine role (the `--upstream` user) owns the catalog, the change schema
//! `pgtrickle_changes` and everything in them, and is the only role that may write them (see
//! docs/SECURITY.md). Every role may read the catalog, call the read functions (usable without
//! the proxy) and the stub functions that tell clients which bypass the proxy to connect through
//! it. It also holds the two functions through which the engine works on a client's session:
//! `__pgt_engine` (signed statements run as the engine role, see [`crate::engine::sql::privileged`]) and
//! `__pgt_exec` (a refresh's statements, run inside `REFRESH MATERIALIZED VIEW` of a
//! materialized view in `pgtrickle_exec` that the stream table's owner owns, see
//! [`crate::engine::refresh::sandbox`]).

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::privileged;
use crate::engine::sql::runner::{SqlError, SqlRunner, SqlRunnerExt};

/// The catalog version this proxy writes; bump it with every change of the DDL below.
pub const CATALOG_VERSION: i32 = 7;

/// Advisory lock key serialising catalog set-up between sessions and proxies.
const SETUP_LOCK: i64 = 0x7067_7472_6963_6b6c; // "pgtrickl"

/// Statements creating (or upgrading to) the current catalog. Safe to run repeatedly.
pub fn setup_sql() -> String {
    let row_security = [
        "pgt_stream_tables",
        "pgt_dependencies",
        "pgt_refresh_history",
        "pgt_polled_sources",
        "pgt_poll_state",
    ]
    .map(row_security_sql)
    .join("\n");
    let take_over = take_over_sql();
    let monitoring = MONITORING_SQL;
    let stub_names = super::stubs::function_names()
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let stubs = super::stubs::stubs_sql();
    format!(
        r#"
SELECT pg_advisory_xact_lock({SETUP_LOCK});
-- Taking a relation lock makes this backend read the catalog changes of whoever held the
-- advisory lock before (an advisory lock alone does not), so IF NOT EXISTS sees them.
LOCK TABLE pg_catalog.pg_namespace IN ACCESS SHARE MODE;
CREATE SCHEMA IF NOT EXISTS pgtrickle;
CREATE SCHEMA IF NOT EXISTS pgtrickle_changes;
CREATE SCHEMA IF NOT EXISTS pgtrickle_exec;
{take_over}
CREATE TABLE IF NOT EXISTS pgtrickle.pgt_catalog_version (version int NOT NULL);
CREATE TABLE IF NOT EXISTS pgtrickle.pgt_stream_tables (
    pgt_id            bigserial PRIMARY KEY,
    pgt_schema        text NOT NULL,
    pgt_name          text NOT NULL,
    pgt_relid         oid NOT NULL,
    defining_query    text NOT NULL,
    schedule          text NOT NULL,
    refresh_mode      text NOT NULL,
    effective_mode    text NOT NULL,
    cdc_mode          text,
    status            text NOT NULL DEFAULT 'ACTIVE',
    owner             name NOT NULL,
    storage_layout    text NOT NULL,
    full_refresh      text[] NOT NULL,
    diff_refresh      text[],
    explain           text NOT NULL,
    is_populated      bool NOT NULL DEFAULT false,
    needs_full        bool NOT NULL DEFAULT false,
    last_snapshot     text,
    last_refresh_at   timestamptz,
    next_attempt_at   timestamptz,
    consecutive_errors int NOT NULL DEFAULT 0,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pgt_schema, pgt_name)
);
CREATE TABLE IF NOT EXISTS pgtrickle.pgt_dependencies (
    pgt_id         bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
    source_relid   oid NOT NULL,
    source_kind    text NOT NULL,
    source_schema  text NOT NULL,
    source_name    text NOT NULL,
    PRIMARY KEY (pgt_id, source_relid)
);
CREATE TABLE IF NOT EXISTS pgtrickle.pgt_refresh_history (
    refresh_id    bigserial PRIMARY KEY,
    pgt_id        bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables ON DELETE CASCADE,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    action        text NOT NULL,
    status        text NOT NULL,
    rows_changed  bigint,
    error         text
);
CREATE INDEX IF NOT EXISTS pgt_refresh_history_pgt ON pgtrickle.pgt_refresh_history (pgt_id, refresh_id);
-- v6: why a refresh was FULL (NULL for DIFFERENTIAL ones).
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS reason text;
-- v7: what AUTO's cost model learns from: how long the refresh's statements took, and how many
-- changes a DIFFERENTIAL refresh consumed.
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS duration_ms double precision;
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS delta_rows bigint;
-- v5: the materialized view whose refresh runs this stream table's statements as its owner,
-- and the defining query as PostgreSQL resolved it at create time (every name qualified).
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS exec_relid oid;
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS resolved_query text;
-- The planner version that wrote full_refresh/diff_refresh (NULL: before versions were kept).
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS planner_version int;
-- Up to version 4 any role could insert catalog rows for itself: rows that do not describe a
-- storage table of their owner, duplicates, and sources their owner cannot read are removed.
DELETE FROM pgtrickle.pgt_stream_tables s WHERE NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
    WHERE c.oid = s.pgt_relid AND r.rolname = s.owner);
DELETE FROM pgtrickle.pgt_stream_tables a USING pgtrickle.pgt_stream_tables b
    WHERE a.pgt_relid = b.pgt_relid AND a.pgt_id > b.pgt_id;
DELETE FROM pgtrickle.pgt_dependencies d USING pgtrickle.pgt_stream_tables s
    WHERE s.pgt_id = d.pgt_id
      AND NOT pg_catalog.has_any_column_privilege(s.owner, d.source_relid, 'SELECT');
CREATE UNIQUE INDEX IF NOT EXISTS pgt_stream_tables_relid ON pgtrickle.pgt_stream_tables (pgt_relid);
-- v7: pg_trickle's options the proxy keeps (append_only, max_delta_fraction as auto_threshold,
-- post_refresh_action), the data timestamp, and pg_trickle's history counts.
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS append_only bool NOT NULL DEFAULT false;
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS auto_threshold double precision;
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS post_refresh_action text;
ALTER TABLE pgtrickle.pgt_stream_tables ADD COLUMN IF NOT EXISTS data_timestamp timestamptz;
UPDATE pgtrickle.pgt_stream_tables SET data_timestamp = last_refresh_at
    WHERE data_timestamp IS NULL AND last_refresh_at IS NOT NULL;
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS data_timestamp timestamptz;
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS rows_inserted bigint;
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS rows_updated bigint;
ALTER TABLE pgtrickle.pgt_refresh_history ADD COLUMN IF NOT EXISTS rows_deleted bigint;

-- Foreign sources polled into a local mirror (pgtrickle_changes.mirror_<oid>); poll_seq
-- grows with every poll that changed the mirror (a proxy's cached row hashes are valid while
-- it is unchanged); it starts at the creation time in microseconds, so a source dropped and
-- prepared again never repeats a value.
CREATE TABLE IF NOT EXISTS pgtrickle.pgt_polled_sources (
    foreign_relid  oid PRIMARY KEY,
    source_schema  text NOT NULL,
    source_name    text NOT NULL,
    owner          name NOT NULL DEFAULT current_user,
    poll_seq       bigint NOT NULL
                   DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- The outcome of the last poll of each source. Unlogged: it is only status and a hint for
-- skipping unchanged files, and polls that change nothing write no WAL for it.
CREATE UNLOGGED TABLE IF NOT EXISTS pgtrickle.pgt_poll_state (
    foreign_relid      oid PRIMARY KEY,
    owner              name NOT NULL DEFAULT current_user,
    last_poll_at       timestamptz,
    duration_ms        double precision,
    rows_scanned       bigint,
    rows_changed       bigint,
    scan_skipped       bool NOT NULL DEFAULT false,
    consecutive_errors int NOT NULL DEFAULT 0,
    last_error         text,
    last_success_at    timestamptz,
    next_poll_at       timestamptz,
    file_size          bigint,
    file_mtime         timestamptz,
    file_scanned_at    timestamptz
);

CREATE OR REPLACE FUNCTION pgtrickle.pgt_poll_status()
RETURNS TABLE (source text, mirror text, last_poll_at timestamptz, duration_ms double precision,
               rows_scanned bigint, rows_changed bigint, scan_skipped boolean,
               consecutive_errors int, last_error text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT coalesce(format('%I.%I', n.nspname, c.relname),
                    format('%I.%I', p.source_schema, p.source_name)),
           format('pgtrickle_changes.mirror_%s', p.foreign_relid),
           st.last_poll_at, st.duration_ms, st.rows_scanned, st.rows_changed,
           coalesce(st.scan_skipped, false), coalesce(st.consecutive_errors, 0), st.last_error
    FROM pgtrickle.pgt_polled_sources p
    LEFT JOIN pgtrickle.pgt_poll_state st USING (foreign_relid)
    LEFT JOIN pg_catalog.pg_class c ON c.oid = p.foreign_relid
    LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    ORDER BY 1
$f$;

-- Resolves a stream table's name with the caller's search_path (so no SET clause here, nor in
-- the functions calling it): every name in these bodies is qualified instead.
CREATE OR REPLACE FUNCTION pgtrickle.__pgt_find(name text) RETURNS bigint
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    rel pg_catalog.oid := pg_catalog.to_regclass(name)::pg_catalog.oid;
    id bigint;
BEGIN
    SELECT s.pgt_id INTO id FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_relid = rel;
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = pg_catalog.format('stream table "%s" does not exist', name);
    END IF;
    RETURN id;
END
$f$;

{monitoring}

-- The key under which the proxy signs the statements it runs as the engine role on a client's
-- session (HMAC-SHA256: its inner and outer padded forms), and the last nonce each backend used.
CREATE TABLE IF NOT EXISTS pgtrickle.pgt_engine_key (ipad bytea NOT NULL, opad bytea NOT NULL);
REVOKE ALL ON pgtrickle.pgt_engine_key FROM PUBLIC;
CREATE UNLOGGED TABLE IF NOT EXISTS pgtrickle.pgt_engine_nonces (
    pid           int PRIMARY KEY,
    backend_start timestamptz,
    nonce         numeric NOT NULL
);
REVOKE ALL ON pgtrickle.pgt_engine_nonces FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgtrickle.__pgt_engine(stmt text, want_rows bool, nonce numeric, mac text)
RETURNS SETOF text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    k record;
    msg bytea;
    started timestamptz;
    fresh int;
BEGIN
    SELECT ipad, opad INTO k FROM pgtrickle.pgt_engine_key LIMIT 1;
    msg := convert_to(format('%s:%s:%s:', pg_backend_pid(), nonce,
                              CASE WHEN want_rows THEN 'true' ELSE 'false' END), 'UTF8')
           || convert_to(stmt, 'UTF8');
    IF k IS NULL OR mac IS NULL
       OR encode(sha256(k.opad || sha256(k.ipad || msg)), 'hex') <> mac THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'permission denied for function __pgt_engine',
            HINT = 'pgtrickle.__pgt_engine runs statements signed by pgtrickle-proxy only';
    END IF;
    SELECT a.backend_start INTO started FROM pg_stat_get_activity(pg_backend_pid()) a;
    INSERT INTO pgtrickle.pgt_engine_nonces AS n (pid, backend_start, nonce)
    VALUES (pg_backend_pid(), started, nonce)
    ON CONFLICT (pid) DO UPDATE SET backend_start = EXCLUDED.backend_start, nonce = EXCLUDED.nonce
    WHERE n.nonce < EXCLUDED.nonce OR n.backend_start IS DISTINCT FROM EXCLUDED.backend_start;
    GET DIAGNOSTICS fresh = ROW_COUNT;
    IF fresh = 0 THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'permission denied for function __pgt_engine: statement already used';
    END IF;
    IF want_rows THEN
        RETURN QUERY EXECUTE stmt;
    ELSE
        EXECUTE stmt;
    END IF;
END
$f$;
REVOKE ALL ON FUNCTION pgtrickle.__pgt_engine(text, bool, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgtrickle.__pgt_engine(text, bool, numeric, text) TO PUBLIC;

-- A refresh's statements, run as the current role (inside REFRESH MATERIALIZED VIEW of the
-- stream table's pgtrickle_exec view: its owner, in a security-restricted operation) with a
-- fixed search_path; the statements come from pgtrickle.exec_statements, set by the engine.
CREATE OR REPLACE FUNCTION pgtrickle.__pgt_exec() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
    s text;
    n bigint;
    total bigint := 0;
BEGIN
    FOREACH s IN ARRAY coalesce(nullif(current_setting('pgtrickle.exec_statements', true), ''),
                                '{{}}')::text[] LOOP
        EXECUTE s;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END
$f$;

CREATE OR REPLACE FUNCTION pgtrickle.__pgt_through_proxy(fn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = format('pgtrickle.%s must be called through pgtrickle-proxy', fn),
        HINT = 'connect to the pgtrickle-proxy port instead of the database server';
END
$f$;
DO $drop$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid::pg_catalog.regprocedure AS sig FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'pgtrickle'::pg_catalog.regnamespace
          AND p.proname IN ({stub_names})
    LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f.sig);
    END LOOP;
END
$drop$;
{stubs}
-- Stream tables are read-only except for the refresh engine, which sets pgtrickle.refreshing.
CREATE OR REPLACE FUNCTION pgtrickle.__pgt_read_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
    IF coalesce(current_setting('pgtrickle.refreshing', true), '') <> 'on' THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = format('cannot %s stream table %I.%I', lower(TG_OP), TG_TABLE_SCHEMA, TG_TABLE_NAME),
            HINT = 'stream tables are maintained by pgtrickle; change the tables of its defining query instead';
    END IF;
    RETURN NULL;
END
$f$;

-- Every role may read the catalog and use the API; only the engine role writes (row-level
-- security lets every role read every row). The change schema is closed to others: whoever
-- could create a buffer there would receive the rows of a table it cannot read. Any role may
-- create in pgtrickle_exec, where each stream table's owner keeps the materialized view its
-- refreshes run in (under a random name, so nobody can take one's name in advance).
GRANT USAGE ON SCHEMA pgtrickle TO PUBLIC;
REVOKE CREATE ON SCHEMA pgtrickle FROM PUBLIC;
GRANT USAGE ON SCHEMA pgtrickle_changes TO PUBLIC;
REVOKE CREATE ON SCHEMA pgtrickle_changes FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA pgtrickle_exec TO PUBLIC;
REVOKE ALL ON pgtrickle.pgt_catalog_version, pgtrickle.pgt_stream_tables,
    pgtrickle.pgt_dependencies, pgtrickle.pgt_refresh_history, pgtrickle.pgt_polled_sources,
    pgtrickle.pgt_poll_state FROM PUBLIC;
GRANT SELECT ON pgtrickle.pgt_catalog_version, pgtrickle.pgt_stream_tables,
    pgtrickle.pgt_dependencies, pgtrickle.pgt_refresh_history, pgtrickle.pgt_polled_sources,
    pgtrickle.pgt_poll_state TO PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtrickle FROM PUBLIC;
{row_security}

DELETE FROM pgtrickle.pgt_catalog_version;
INSERT INTO pgtrickle.pgt_catalog_version VALUES ({CATALOG_VERSION});
"#
    )
}

/// pg_trickle's read, status and monitoring functions and views (run after the tables).
const MONITORING_SQL: &str = include_str!("monitoring.sql");

/// Row-level security on catalog table `table`: every role reads every row (up to catalog
/// version 4 a role could also change its own rows; now only the engine role, the owner,
/// writes).
fn row_security_sql(table: &str) -> String {
    format!(
        "ALTER TABLE pgtrickle.{table} ENABLE ROW LEVEL SECURITY;\n\
         DROP POLICY IF EXISTS pgt_read ON pgtrickle.{table};\n\
         DROP POLICY IF EXISTS pgt_own ON pgtrickle.{table};\n\
         CREATE POLICY pgt_read ON pgtrickle.{table} FOR SELECT USING (true);"
    )
}

/// Makes sure the engine role (the current user) owns the three schemas and everything in
/// `pgtrickle`: a catalog another role can change would let that role write the SQL refreshes
/// run and the rows the engine trusts. What a superuser owns is taken over (when the engine
/// role may); what an ordinary role owns is refused, naming it. In `pgtrickle_changes`, capture
/// functions, buffers and mirrors that another role owns (catalog version 4 created them as the
/// stream table's owner, and let any role create there) are dropped: the upgrade installs
/// capture again as the engine role and refreshes every stream table FULL once.
fn take_over_sql() -> String {
    r#"DO $take$
DECLARE
    me oid := (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user);
    r record;
BEGIN
    FOR r IN
        SELECT 'SCHEMA' AS kind, pg_catalog.quote_ident(n.nspname) AS obj, n.nspowner AS owner
        FROM pg_catalog.pg_namespace n
        WHERE n.nspname IN ('pgtrickle', 'pgtrickle_changes', 'pgtrickle_exec')
        UNION ALL
        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                    WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                    WHEN 'i' THEN 'INDEX' ELSE 'TABLE' END,
               c.oid::pg_catalog.regclass::text, c.relowner
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'pgtrickle'::pg_catalog.regnamespace AND c.relkind <> 'i'
        UNION ALL
        SELECT 'ROUTINE', p.oid::pg_catalog.regprocedure::text, p.proowner
        FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pgtrickle'::pg_catalog.regnamespace
    LOOP
        CONTINUE WHEN r.owner = me;
        IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = r.owner) THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('pgtrickle catalog object %s %s belongs to role %s, not to the proxy''s role %I',
                                            pg_catalog.lower(r.kind), r.obj, r.owner::pg_catalog.regrole, current_user),
                HINT = 'another role may have created it to control stream tables: let a superuser inspect and drop it';
        END IF;
        BEGIN
            EXECUTE pg_catalog.format('ALTER %s %s OWNER TO %I', r.kind, r.obj, current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('pgtrickle catalog object %s %s belongs to role %s, not to the proxy''s role %I',
                                            pg_catalog.lower(r.kind), r.obj, r.owner::pg_catalog.regrole, current_user),
                HINT = pg_catalog.format('run ALTER %s %s OWNER TO %I as a superuser', r.kind, r.obj, current_user);
        END;
    END LOOP;
    FOR r IN
        SELECT 'FUNCTION' AS kind, p.oid::pg_catalog.regprocedure::text AS obj
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'pgtrickle_changes'::pg_catalog.regnamespace AND p.proowner <> me
        UNION ALL
        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                    WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                    ELSE 'TABLE' END,
               c.oid::pg_catalog.regclass::text
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'pgtrickle_changes'::pg_catalog.regnamespace AND c.relowner <> me
          AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')
    LOOP
        EXECUTE pg_catalog.format('DROP %s IF EXISTS %s CASCADE', r.kind, r.obj);
    END LOOP;
END
$take$;"#
        .to_string()
}

/// The catalog version in the database, if there is a catalog.
async fn version<R: SqlRunner>(sql: &mut R) -> Result<Option<i32>, SqlError> {
    let exists = sql
        .value("SELECT to_regclass('pgtrickle.pgt_catalog_version') IS NOT NULL")
        .await?;
    if exists.as_deref() != Some("t") {
        return Ok(None);
    }
    Ok(sql
        .value("SELECT max(version) FROM pgtrickle.pgt_catalog_version")
        .await?
        .and_then(|v| v.parse::<i32>().ok()))
}

/// True when the catalog exists at the current version.
pub async fn is_current<R: SqlRunner>(sql: &mut R) -> Result<bool, SqlError> {
    Ok(version(sql).await? == Some(CATALOG_VERSION))
}

/// Creates or upgrades the catalog when needed, on a connection of the proxy's own (whose role
/// becomes the catalog's owner; the caller provides the transaction), and returns the key under
/// which the engine signs its statements on clients' sessions.
/// The second value is true when an older catalog was upgraded (see
/// [`crate::engine::refresh::upgrade`] for what must follow in the same transaction).
pub async fn ensure<R: SqlRunner>(sql: &mut R) -> EngineResult<(Vec<u8>, bool)> {
    let found = version(sql).await?;
    if found != Some(CATALOG_VERSION) {
        sql.run(&setup_sql()).await?;
    }
    let upgraded = found.is_some() && found != Some(CATALOG_VERSION);
    Ok((engine_key(sql).await?, upgraded))
}

/// The OID of the catalog's version table (which changes when the catalog is created again).
pub async fn version_table_oid<R: SqlRunner>(sql: &mut R) -> EngineResult<u32> {
    Ok(sql
        .value("SELECT 'pgtrickle.pgt_catalog_version'::regclass::oid")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The signing key, created at first use (64 random bytes; stored as HMAC's padded keys).
async fn engine_key<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<u8>> {
    let key = privileged::new_key();
    let stored = sql
        .value(&format!(
            "SELECT pg_advisory_xact_lock({SETUP_LOCK}); \
             INSERT INTO pgtrickle.pgt_engine_key \
             SELECT pg_catalog.decode('{}', 'hex'), pg_catalog.decode('{}', 'hex') \
             WHERE NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_engine_key); \
             SELECT pg_catalog.encode(ipad, 'hex') FROM pgtrickle.pgt_engine_key LIMIT 1",
            privileged::padded_key_hex(&key, 0x36),
            privileged::padded_key_hex(&key, 0x5c)
        ))
        .await?
        .ok_or_else(|| EngineError::api("XX000", "no engine key in the catalog"))?;
    let ipad = (0..stored.len() / 2)
        .map(|i| u8::from_str_radix(stored.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| EngineError::api("XX000", "malformed engine key in the catalog"))?;
    Ok(ipad.iter().map(|b| b ^ 0x36).collect())
}
