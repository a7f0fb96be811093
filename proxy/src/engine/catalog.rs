//! The catalog in schema `pgtrickle`: stream tables, their sources, and refresh history, created
//! and migrated idempotently by whichever proxy needs it first. It also holds the read
//! functions (usable without the proxy) and stub functions that tell clients which bypass the
//! proxy to connect through it.

use super::sql::{SqlError, SqlRunner, SqlRunnerExt};

/// The catalog version this proxy writes; bump it with every change of the DDL below.
pub const CATALOG_VERSION: i32 = 4;

/// Advisory lock key serialising catalog set-up between sessions and proxies.
const SETUP_LOCK: i64 = 0x7067_7472_6963_6b6c; // "pgtrickl"

/// Statements creating (or upgrading to) the current catalog. Safe to run repeatedly.
pub fn setup_sql() -> String {
    let owned = "pg_has_role(owner, 'MEMBER')";
    let row_security = [
        row_security_sql("pgt_stream_tables", owned),
        row_security_sql(
            "pgt_dependencies",
            &owned_through_stream_table("pgt_dependencies"),
        ),
        row_security_sql(
            "pgt_refresh_history",
            &owned_through_stream_table("pgt_refresh_history"),
        ),
        row_security_sql("pgt_polled_sources", owned),
        row_security_sql("pgt_poll_state", owned),
    ]
    .join("\n");
    format!(
        r#"
SELECT pg_advisory_xact_lock({SETUP_LOCK});
-- Taking a relation lock makes this backend read the catalog changes of whoever held the
-- advisory lock before (an advisory lock alone does not), so IF NOT EXISTS sees them.
LOCK TABLE pg_catalog.pg_namespace IN ACCESS SHARE MODE;
CREATE SCHEMA IF NOT EXISTS pgtrickle;
CREATE SCHEMA IF NOT EXISTS pgtrickle_changes;
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
LANGUAGE sql STABLE AS $f$
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

CREATE OR REPLACE FUNCTION pgtrickle.pgt_status()
RETURNS TABLE (name text, status text, refresh_mode text, effective_mode text, schedule text,
               is_populated bool, last_refresh_at timestamptz, consecutive_errors int,
               last_error text)
LANGUAGE sql STABLE AS $f$
    SELECT format('%I.%I', pgt_schema, pgt_name), status, refresh_mode, effective_mode, schedule,
           is_populated, last_refresh_at, consecutive_errors, last_error
    FROM pgtrickle.pgt_stream_tables ORDER BY pgt_schema, pgt_name
$f$;

CREATE OR REPLACE FUNCTION pgtrickle.__pgt_find(name text) RETURNS bigint
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    rel regclass := to_regclass(name);
    id bigint;
BEGIN
    SELECT pgt_id INTO id FROM pgtrickle.pgt_stream_tables WHERE pgt_relid = rel;
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = format('stream table "%s" does not exist', name);
    END IF;
    RETURN id;
END
$f$;

CREATE OR REPLACE FUNCTION pgtrickle.get_refresh_history(name text, max_rows int DEFAULT 20)
RETURNS TABLE (refresh_id bigint, started_at timestamptz, finished_at timestamptz,
               action text, status text, rows_changed bigint, error text)
LANGUAGE sql STABLE AS $f$
    SELECT refresh_id, started_at, finished_at, action, status, rows_changed, error
    FROM pgtrickle.pgt_refresh_history
    WHERE pgt_id = pgtrickle.__pgt_find(name)
    ORDER BY refresh_id DESC LIMIT max_rows
$f$;

CREATE OR REPLACE FUNCTION pgtrickle.explain_st(name text) RETURNS text
LANGUAGE sql STABLE AS $f$
    SELECT explain FROM pgtrickle.pgt_stream_tables WHERE pgt_id = pgtrickle.__pgt_find(name)
$f$;

CREATE OR REPLACE FUNCTION pgtrickle.__pgt_through_proxy(fn text) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = format('pgtrickle.%s must be called through pgtrickle-proxy', fn),
        HINT = 'connect to the pgtrickle-proxy port instead of the database server';
END
$f$;
CREATE OR REPLACE FUNCTION pgtrickle.create_stream_table(name text, query text,
    schedule text DEFAULT 'calculated', refresh_mode text DEFAULT 'AUTO',
    initialize bool DEFAULT true, cdc_mode text DEFAULT NULL) RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('create_stream_table') $f$;
CREATE OR REPLACE FUNCTION pgtrickle.create_stream_table_if_not_exists(name text, query text,
    schedule text DEFAULT 'calculated', refresh_mode text DEFAULT 'AUTO',
    initialize bool DEFAULT true, cdc_mode text DEFAULT NULL) RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('create_stream_table_if_not_exists') $f$;
CREATE OR REPLACE FUNCTION pgtrickle.create_or_replace_stream_table(name text, query text,
    schedule text DEFAULT 'calculated', refresh_mode text DEFAULT 'AUTO',
    initialize bool DEFAULT true, cdc_mode text DEFAULT NULL) RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('create_or_replace_stream_table') $f$;
CREATE OR REPLACE FUNCTION pgtrickle.alter_stream_table(name text, query text DEFAULT NULL,
    schedule text DEFAULT NULL, refresh_mode text DEFAULT NULL, status text DEFAULT NULL,
    cdc_mode text DEFAULT NULL) RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('alter_stream_table') $f$;
CREATE OR REPLACE FUNCTION pgtrickle.drop_stream_table(name text, "cascade" bool DEFAULT false)
RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('drop_stream_table') $f$;
CREATE OR REPLACE FUNCTION pgtrickle.refresh_stream_table(name text) RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('refresh_stream_table') $f$;
CREATE OR REPLACE FUNCTION pgtrickle.resume_stream_table(name text) RETURNS void
LANGUAGE sql AS $f$ SELECT pgtrickle.__pgt_through_proxy('resume_stream_table') $f$;

-- Stream tables are read-only except for the refresh engine, which sets pgtrickle.refreshing.
CREATE OR REPLACE FUNCTION pgtrickle.__pgt_read_only() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
    IF coalesce(current_setting('pgtrickle.refreshing', true), '') <> 'on' THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = format('cannot %s stream table %I.%I', lower(TG_OP), TG_TABLE_SCHEMA, TG_TABLE_NAME),
            HINT = 'stream tables are maintained by pgtrickle; change the tables of its defining query instead';
    END IF;
    RETURN NULL;
END
$f$;

-- Every role may use the API; row-level security keeps each role to its own stream tables
-- (refreshes run as the owner, so a role that could rewrite another's refresh SQL could read
-- what that owner can read).
GRANT USAGE ON SCHEMA pgtrickle TO PUBLIC;
GRANT USAGE, CREATE ON SCHEMA pgtrickle_changes TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA pgtrickle TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pgtrickle.pgt_stream_tables, pgtrickle.pgt_dependencies,
    pgtrickle.pgt_refresh_history, pgtrickle.pgt_polled_sources, pgtrickle.pgt_poll_state
    TO PUBLIC;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgtrickle TO PUBLIC;
{row_security}

DELETE FROM pgtrickle.pgt_catalog_version;
INSERT INTO pgtrickle.pgt_catalog_version VALUES ({CATALOG_VERSION});
"#
    )
}

/// Row-level security on catalog table `table`: every role reads every row; a role changes
/// only the rows for which `own` (an SQL condition) holds.
fn row_security_sql(table: &str, own: &str) -> String {
    format!(
        "ALTER TABLE pgtrickle.{table} ENABLE ROW LEVEL SECURITY;\n\
         DROP POLICY IF EXISTS pgt_read ON pgtrickle.{table};\n\
         DROP POLICY IF EXISTS pgt_own ON pgtrickle.{table};\n\
         CREATE POLICY pgt_read ON pgtrickle.{table} FOR SELECT USING (true);\n\
         CREATE POLICY pgt_own ON pgtrickle.{table} FOR ALL USING ({own}) WITH CHECK ({own});"
    )
}

/// The condition of a catalog table keyed by `pgt_id`: its stream table belongs to the role.
fn owned_through_stream_table(table: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables s \
         WHERE s.pgt_id = {table}.pgt_id AND pg_has_role(s.owner, 'MEMBER'))"
    )
}

/// True when the catalog exists at the current version.
pub async fn is_current<R: SqlRunner>(sql: &mut R) -> Result<bool, SqlError> {
    let exists = sql
        .value("SELECT to_regclass('pgtrickle.pgt_catalog_version') IS NOT NULL")
        .await?;
    if exists.as_deref() != Some("t") {
        return Ok(false);
    }
    let v = sql
        .value("SELECT max(version) FROM pgtrickle.pgt_catalog_version")
        .await?;
    Ok(v.and_then(|v| v.parse::<i32>().ok()) == Some(CATALOG_VERSION))
}

/// Creates or upgrades the catalog when needed (the caller provides the transaction).
pub async fn ensure<R: SqlRunner>(sql: &mut R) -> Result<(), SqlError> {
    if !is_current(sql).await? {
        sql.run(&setup_sql()).await?;
        remove_unread_stream_table_capture(sql).await?;
    }
    Ok(())
}

/// Up to catalog version 3 every stream table captured its own changes, read or not, and
/// nothing trimmed the buffer of one that no stream table reads. Capture is now installed when
/// a reader is created: this removes it where no stream table reads (each in a savepoint, so
/// that one the proxy's user may not change is left for its owner's next create or drop).
async fn remove_unread_stream_table_capture<R: SqlRunner>(sql: &mut R) -> Result<(), SqlError> {
    let unread = sql
        .rows(
            "SELECT s.pgt_relid::oid FROM pgtrickle.pgt_stream_tables s \
             WHERE NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d \
                               WHERE d.source_relid = s.pgt_relid) \
               AND to_regclass('pgtrickle_changes.changes_' || s.pgt_relid::oid) IS NOT NULL",
        )
        .await?;
    for oid in unread
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .filter_map(|v| v.parse::<u32>().ok())
    {
        sql.run("SAVEPOINT pgt_unread_capture").await?;
        match sql.run(&pgtrickle_cdc::uninstall_capture_sql(oid)).await {
            Ok(_) => sql.run("RELEASE SAVEPOINT pgt_unread_capture").await?,
            Err(e) => {
                tracing::warn!(
                    relation = oid,
                    "capture of an unread stream table kept: {e}"
                );
                sql.run("ROLLBACK TO SAVEPOINT pgt_unread_capture").await?
            }
        };
    }
    Ok(())
}
