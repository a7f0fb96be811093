//! Glue between the engine and the cdc crate: installing capture on a stream table's sources,
//! filling delta relations, detecting TRUNCATE, trimming buffers, uninstalling capture when the
//! last reader of a source is dropped.

use pgtrickle_cdc::SourceTable;

use super::describe::Source;
use super::error::{EngineError, EngineResult};
use super::sql::{quote_literal, SqlRunner, SqlRunnerExt};

/// A source of a stream table, as the catalog records it.
#[derive(Debug, Clone)]
pub struct Dep {
    /// Its OID.
    pub oid: u32,
    /// True when its changes arrive in a change buffer: captured by triggers (tables and
    /// stream tables) or written by the poller (foreign tables).
    pub captured: bool,
    /// True for a foreign table (polled).
    pub polled: bool,
    /// Its schema-qualified name as the catalog recorded it, for messages.
    pub name: String,
    /// Whether the current role may read it (some column of it); None when it no longer
    /// exists.
    pub readable: Option<bool>,
    /// True when row-level security filters its rows for the current role.
    pub row_filtered: bool,
}

fn table(
    oid: u32,
    schema: &str,
    name: &str,
    columns: Vec<(String, String)>,
) -> EngineResult<SourceTable> {
    SourceTable::new(oid, schema, name, columns)
        .map_err(|e| EngineError::api("0A000", format!("cannot capture changes: {e}")))
}

/// Describes a captured source from the catalog (stream tables without their `__pgt_*`
/// columns).
async fn source_table<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<SourceTable> {
    // format_type qualifies every type outside pg_catalog under this search_path; the
    // caller's own search_path is restored for the rest of its transaction.
    let saved = sql
        .value("SELECT current_setting('search_path')")
        .await?
        .unwrap_or_default();
    sql.run("SET LOCAL search_path = pg_catalog").await?;
    let rows = sql.rows(&pgtrickle_cdc::describe_source_sql(oid)).await;
    sql.run(&format!(
        "SELECT pg_catalog.set_config('search_path', {}, true)",
        quote_literal(&saved)
    ))
    .await?;
    let rows = rows?;
    let first = rows.first().ok_or_else(|| {
        EngineError::api("42P01", format!("source relation {oid} no longer exists"))
    })?;
    let get = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let (schema, name) = (get(first, 0), get(first, 1));
    // Writes routed through a partition's parent, or addressed to inheritance children, do
    // not fire the source's own statement triggers: such sources would miss changes.
    if get(first, 5) == "t" {
        return Err(EngineError::api(
            "0A000",
            format!("partition {schema}.{name} cannot be a stream table source"),
        )
        .with_hint("use the partitioned table in the defining query"));
    }
    if get(first, 6) == "t" {
        return Err(EngineError::api(
            "0A000",
            format!("table {schema}.{name} has inheritance children and cannot be a stream table source"),
        ));
    }
    let columns = rows
        .iter()
        .map(|r| (get(r, 3), get(r, 4)))
        .filter(|(c, _)| !c.starts_with("__pgt_"))
        .collect();
    table(oid, &schema, &name, columns)
}

/// Refuses a change buffer that some other role created while no stream table reads the
/// source: the capture functions run as the buffer's writer, so a planted buffer would receive
/// the source's rows (the cdc crate checks this for ordinary roles; this covers superusers).
async fn refuse_planted_buffer<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<()> {
    let planted = sql
        .value(&format!(
            "SELECT c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) \
               AND NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies WHERE source_relid = {oid}) \
             FROM pg_class c WHERE c.oid = to_regclass({})",
            quote_literal(&format!("pgtrickle_changes.changes_{oid}"))
        ))
        .await?;
    if planted.as_deref() == Some("t") {
        return Err(EngineError::api(
            "42501",
            format!(
                "change buffer pgtrickle_changes.changes_{oid} was created by another role \
                 outside pgtrickle; drop it before creating a stream table over this source"
            ),
        ));
    }
    Ok(())
}

/// Installs capture on a table source (idempotent; shared by every reader of the source).
pub async fn install<R: SqlRunner>(sql: &mut R, source: &Source) -> EngineResult<()> {
    refuse_planted_buffer(sql, source.oid).await?;
    let t = source_table(sql, source.oid).await?;
    sql.run(&pgtrickle_cdc::install_capture_sql(&t)).await?;
    Ok(())
}

/// The sources of stream table `pgt_id`.
pub async fn sources_of<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<Vec<Dep>> {
    Ok(sql
        .rows(&format!(
            "SELECT source_relid, source_kind, format('%I.%I', source_schema, source_name), \
             pg_catalog.has_any_column_privilege(source_relid, 'SELECT'), \
             CASE WHEN pg_catalog.has_any_column_privilege(source_relid, 'SELECT') \
                  THEN pg_catalog.row_security_active(source_relid) END \
             FROM pgtrickle.pgt_dependencies WHERE pgt_id = {pgt_id} ORDER BY source_relid"
        ))
        .await?
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten();
            let kind = get(1);
            Dep {
                oid: get(0).and_then(|v| v.parse().ok()).unwrap_or(0),
                captured: matches!(
                    kind.as_deref(),
                    Some("Table" | "StreamTable" | "ForeignTable")
                ),
                polled: kind.as_deref() == Some("ForeignTable"),
                name: get(2).unwrap_or_default(),
                readable: get(3).map(|v| v == "t"),
                row_filtered: get(4).as_deref() == Some("t"),
            }
        })
        .collect())
}

/// True when a TRUNCATE of the source is pending since snapshot `last`.
pub async fn truncated_since<R: SqlRunner>(
    sql: &mut R,
    dep: &Dep,
    last: &str,
) -> EngineResult<bool> {
    Ok(sql
        .value(&pgtrickle_cdc::truncated_since_sql(dep.oid, last))
        .await?
        .as_deref()
        == Some("t"))
}

/// Deletes, in a READ COMMITTED transaction of its own, the buffered changes of source `oid`
/// that every reader has consumed. Housekeeping: a failure (say, a role that may not delete
/// from another owner's buffer) is logged and left for a later refresh.
pub async fn trim_committed<R: SqlRunner>(sql: &mut R, oid: u32) {
    let snapshots = format!(
        "SELECT s.last_snapshot FROM pgtrickle.pgt_dependencies d \
         JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE d.source_relid = {oid}"
    );
    if let Err(e) = sql
        .run(&pgtrickle_cdc::cleanup_transaction_sql(oid, &snapshots))
        .await
    {
        let _ = sql.run("ROLLBACK").await;
        tracing::debug!(source = oid, "change buffer not trimmed: {e}");
    }
}

/// Removes capture from `oid` when no stream table reads it any more.
pub async fn uninstall_if_unused<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<()> {
    let used = sql
        .value(&format!(
            "SELECT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies WHERE source_relid = {oid})"
        ))
        .await?;
    if used.as_deref() != Some("t") {
        sql.run(&pgtrickle_cdc::uninstall_capture_sql(oid)).await?;
        // A foreign source's mirror and poll records go too (no-ops for other sources).
        sql.run(&format!(
            "{}; DELETE FROM pgtrickle.pgt_polled_sources WHERE foreign_relid = {oid}; \
             DELETE FROM pgtrickle.pgt_poll_state WHERE foreign_relid = {oid}",
            pgtrickle_cdc::poll::mirror::drop_mirror_sql(oid)
        ))
        .await?;
    }
    Ok(())
}

/// True when some captured source of `pgt_id` has changes its last refresh has not seen.
pub async fn has_pending_changes<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<bool> {
    let last = sql
        .value(&format!(
            "SELECT last_snapshot FROM pgtrickle.pgt_stream_tables WHERE pgt_id = {pgt_id}"
        ))
        .await?;
    let Some(last) = last else {
        return Ok(true);
    };
    for dep in sources_of(sql, pgt_id)
        .await?
        .into_iter()
        .filter(|d| d.captured)
    {
        if sql
            .value(&pgtrickle_cdc::pending_changes_sql(dep.oid, &last))
            .await?
            .as_deref()
            == Some("t")
        {
            return Ok(true);
        }
    }
    Ok(false)
}
