//! `pgtrickle.pgt_polled_sources` (foreign sources polled into a mirror, with the role they are
//! polled for and their poll sequence) and `pgtrickle.pgt_poll_state` (each source's last poll).
//! The poller writes them on its own connections, as the engine role, with typed parameters.

use tokio_postgres::Client;

use crate::engine::catalog::record::{CatalogError, Rows};
use crate::engine::error::EngineResult;
use crate::engine::sql::runner::{quote_literal, SqlRunner};

/// The poll sequence of foreign source `oid` (None when it has no mirror).
pub async fn poll_seq(client: &Client, oid: u32) -> Result<Option<i64>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT poll_seq FROM pgtrickle.pgt_polled_sources \
             WHERE foreign_relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
            &[&oid],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Advances the poll sequence of `oid` after a poll changed its mirror; returns the new one.
pub async fn advance_poll_seq(client: &Client, oid: u32) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "UPDATE pgtrickle.pgt_polled_sources SET poll_seq = poll_seq OPERATOR(pg_catalog.+) 1 \
             WHERE foreign_relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid RETURNING poll_seq",
            &[&oid],
        )
        .await?
        .get(0))
}

/// True when no stream table reads `oid` yet.
pub async fn unread(client: &Client, oid: u32) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies \
             WHERE source_relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid)",
            &[&oid],
        )
        .await?
        .get(0))
}

/// Records foreign source `oid` (polled for `role`) if it is not yet.
pub async fn register(
    client: &Client,
    oid: u32,
    schema: &str,
    name: &str,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgtrickle.pgt_polled_sources (foreign_relid, source_schema, \
             source_name, owner) \
             VALUES ($1, $2, $3, $4::pg_catalog.text::pg_catalog.name) \
             ON CONFLICT (foreign_relid) DO NOTHING",
            &[&oid, &schema, &name, &role],
        )
        .await?;
    Ok(())
}

/// After `oid`'s mirror was built again: a new poll sequence (invalidating cached row hashes)
/// and a FULL next refresh for every reader.
pub async fn mirror_rebuilt(client: &Client, oid: u32) -> Result<(), tokio_postgres::Error> {
    advance_poll_seq(client, oid).await?;
    client
        .execute(
            "UPDATE pgtrickle.pgt_stream_tables SET needs_full = true \
             WHERE pgt_id IN (SELECT d.pgt_id FROM pgtrickle.pgt_dependencies d \
               WHERE d.source_relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid)",
            &[&oid],
        )
        .await?;
    Ok(())
}

/// The roles that must be able to read mirror `mirror_table` of `oid` and cannot yet: `role`,
/// and (when `with_readers`) the owners of the stream tables reading `oid`.
pub async fn mirror_grantees(
    client: &Client,
    mirror_table: &str,
    role: &str,
    with_readers: bool,
    oid: u32,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT g.r FROM (SELECT $2::pg_catalog.text AS r \
               UNION SELECT s.owner::pg_catalog.text FROM pgtrickle.pgt_dependencies d \
                 JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) \
                 WHERE $3 AND d.source_relid OPERATOR(pg_catalog.=) $4::pg_catalog.oid) g \
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r \
                           WHERE r.rolname OPERATOR(pg_catalog.=) g.r) \
               AND NOT pg_catalog.has_table_privilege(g.r::pg_catalog.name, \
                 pg_catalog.to_regclass($1::pg_catalog.text), 'SELECT')",
            &[&mirror_table, &role, &with_readers, &oid],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// A SQL expression: the role foreign source `oid_expr` is polled for (NULL when it is not
/// recorded).
pub fn polled_for_sql(oid_expr: &str) -> String {
    format!(
        "(SELECT p.owner FROM pgtrickle.pgt_polled_sources p \
          WHERE p.foreign_relid OPERATOR(pg_catalog.=) {oid_expr})"
    )
}

/// A SQL row source (for `LEFT JOIN LATERAL ... ON true`): the file state the last poll of
/// `oid_expr` recorded (`consecutive_errors`, `file_size`, `file_mtime`, `file_scanned_at`).
pub fn file_state_sql(oid_expr: &str) -> String {
    format!(
        "(SELECT p.consecutive_errors, p.file_size, p.file_mtime, p.file_scanned_at \
          FROM pgtrickle.pgt_poll_state p WHERE p.foreign_relid = {oid_expr})"
    )
}

/// What a successful poll found.
pub struct PollSuccess<'a> {
    /// How long it took, in milliseconds.
    pub ms: f64,
    /// Rows read from the source.
    pub rows_scanned: i64,
    /// Rows that changed.
    pub rows_changed: i64,
    /// True when the scan was skipped (a file that did not change).
    pub skipped: bool,
    /// The file's size, modification time and the time it was checked (file_fdw sources).
    pub file: Option<(i64, &'a str, &'a str)>,
}

/// Records a successful poll of `oid`.
pub async fn record_success(
    client: &Client,
    oid: u32,
    s: &PollSuccess<'_>,
) -> Result<(), tokio_postgres::Error> {
    let (size, mtime, at) = match s.file {
        Some((size, mtime, at)) => (Some(size), Some(mtime), Some(at)),
        None => (None, None, None),
    };
    client
        .execute(
            "INSERT INTO pgtrickle.pgt_poll_state AS st (foreign_relid, last_poll_at, \
               duration_ms, rows_scanned, rows_changed, scan_skipped, consecutive_errors, \
               last_error, last_success_at, next_poll_at, file_size, file_mtime, \
               file_scanned_at) \
             VALUES ($1, now(), $2, $3, $4, $5, 0, NULL, now(), NULL, $6, \
               $7::text::timestamptz, $8::text::timestamptz) \
             ON CONFLICT (foreign_relid) DO UPDATE SET last_poll_at = now(), \
               duration_ms = $2, rows_scanned = $3, rows_changed = $4, \
               scan_skipped = $5, consecutive_errors = 0, last_error = NULL, \
               last_success_at = now(), next_poll_at = NULL, \
               file_size = CASE WHEN $5 THEN st.file_size ELSE $6 END, \
               file_mtime = CASE WHEN $5 THEN st.file_mtime ELSE $7::text::timestamptz END, \
               file_scanned_at = CASE WHEN $5 THEN st.file_scanned_at \
                                 ELSE $8::text::timestamptz END",
            &[
                &oid,
                &s.ms,
                &s.rows_scanned,
                &s.rows_changed,
                &s.skipped,
                &size,
                &mtime,
                &at,
            ],
        )
        .await?;
    Ok(())
}

/// Records a failed poll of `oid` (and its backoff).
pub async fn record_failure(
    client: &Client,
    oid: u32,
    ms: f64,
    error: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgtrickle.pgt_poll_state AS st (foreign_relid, last_poll_at, \
               duration_ms, rows_scanned, rows_changed, scan_skipped, consecutive_errors, \
               last_error, next_poll_at) \
             VALUES ($1, now(), $2, 0, 0, false, 1, $3, now() + interval '1 second') \
             ON CONFLICT (foreign_relid) DO UPDATE SET last_poll_at = now(), \
               duration_ms = $2, rows_scanned = 0, rows_changed = 0, \
               scan_skipped = false, consecutive_errors = st.consecutive_errors + 1, \
               last_error = $3, \
               next_poll_at = now() + make_interval(secs => \
                 least(60, 2 ^ (st.consecutive_errors + 1)))",
            &[&oid, &ms, &error],
        )
        .await?;
    Ok(())
}

/// When foreign source `oid` was last polled, as the scheduler needs it.
pub struct PollTiming {
    /// Seconds since its last successful poll (None: never).
    pub since_success: Option<f64>,
    /// True while a failure's backoff runs.
    pub backing_off: bool,
    /// The schedules of the active stream tables reading it.
    pub reader_schedules: Vec<String>,
}

/// The poll timing of `oid`.
pub async fn timing<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<PollTiming> {
    let rows = Rows::read(
        sql,
        "pgtrickle.pgt_poll_state",
        &format!(
            "SELECT extract(epoch FROM now() - st.last_success_at) AS since_success, \
               coalesce(st.next_poll_at > now(), false) AS backing_off, \
               coalesce((SELECT array_agg(s.schedule) FROM pgtrickle.pgt_dependencies d \
                JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) \
                WHERE d.source_relid = {oid} AND s.status = 'ACTIVE'), '{{}}') AS schedules \
             FROM (SELECT 1) one \
             LEFT JOIN pgtrickle.pgt_poll_state st ON st.foreign_relid = {oid}"
        ),
    )
    .await?;
    let Some(r) = rows.first() else {
        return Ok(PollTiming {
            since_success: None,
            backing_off: false,
            reader_schedules: Vec::new(),
        });
    };
    Ok(PollTiming {
        since_success: r.parse_opt("since_success")?,
        backing_off: r.flag("backing_off")?,
        reader_schedules: r.decode("schedules", "a text array", |t| {
            crate::engine::sql::privileged::parse_array(t)
                .map(|items| items.into_iter().flatten().collect())
        })?,
    })
}

/// Foreign sources recorded more than `grace` ago that no stream table reads.
pub async fn orphans<R: SqlRunner>(sql: &mut R, grace: &str) -> EngineResult<Vec<u32>> {
    let rows = Rows::read(
        sql,
        "pgtrickle.pgt_polled_sources",
        &format!(
            "SELECT foreign_relid FROM pgtrickle.pgt_polled_sources p \
             WHERE created_at < now() - interval {} AND NOT EXISTS \
               (SELECT 1 FROM pgtrickle.pgt_dependencies d WHERE d.source_relid = p.foreign_relid)",
            quote_literal(grace)
        ),
    )
    .await?;
    let decoded: Result<Vec<u32>, CatalogError> =
        rows.records().map(|r| r.parse("foreign_relid")).collect();
    Ok(decoded?)
}

/// PL/pgSQL statements (for a `DO` block) that forget foreign source `oid` and then run
/// `then` (PL/pgSQL too), when no stream table reads it.
pub fn forget_if_unread_plpgsql(oid: u32, then: &str) -> String {
    format!(
        "IF NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies WHERE source_relid = {oid}) THEN \
           DELETE FROM pgtrickle.pgt_polled_sources WHERE foreign_relid = {oid}; \
           DELETE FROM pgtrickle.pgt_poll_state WHERE foreign_relid = {oid}; \
           {then} END IF;"
    )
}

/// SQL that forgets foreign source `oid` (no-op for other sources).
pub fn forget_sql(oid: u32) -> String {
    format!(
        "DELETE FROM pgtrickle.pgt_polled_sources WHERE foreign_relid = {oid}; \
         DELETE FROM pgtrickle.pgt_poll_state WHERE foreign_relid = {oid}"
    )
}

/// Shows the failing polls of `pgt_id`'s foreign sources in its `last_error` (on the engine
/// role's connection).
pub async fn show_failures<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<()> {
    sql.run(&format!(
        "UPDATE pgtrickle.pgt_stream_tables s SET last_error = e.msg \
         FROM (SELECT string_agg(format('polling foreign table %I.%I failed: %s', \
                 d.source_schema, d.source_name, st.last_error), '; ') AS msg \
               FROM pgtrickle.pgt_dependencies d \
               JOIN pgtrickle.pgt_poll_state st ON st.foreign_relid = d.source_relid \
               WHERE d.pgt_id = {pgt_id} AND st.consecutive_errors > 0) e \
         WHERE s.pgt_id = {pgt_id} AND e.msg IS NOT NULL AND s.last_error IS DISTINCT FROM e.msg"
    ))
    .await?;
    Ok(())
}
