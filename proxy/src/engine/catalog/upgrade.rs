//! What an upgrade from an older catalog version has to repair, read from and written to the
//! catalog (the repairs themselves, which install capture and execution views, are
//! [`crate::engine::refresh::upgrade`]'s).

use pgtrickle_planner::RelationKind;

use crate::engine::catalog::record::{CatalogError, Rows};
use crate::engine::error::EngineResult;
use crate::engine::sql::runner::{quote_literal, SqlRunner};

/// Local sources (tables and stream tables) that stream tables read and whose change buffer is
/// missing.
pub async fn sources_without_capture<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<u32>> {
    let rows = Rows::read(
        sql,
        "pgtrickle.pgt_dependencies",
        &format!(
            "SELECT DISTINCT source_relid FROM pgtrickle.pgt_dependencies \
             WHERE source_kind IN ({}, {}) \
               AND to_regclass('pgtrickle_changes.changes_' || source_relid::oid) IS NULL \
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = source_relid)",
            quote_literal(RelationKind::Table.as_catalog_str()),
            quote_literal(RelationKind::StreamTable.as_catalog_str()),
        ),
    )
    .await?;
    let decoded: Result<Vec<u32>, CatalogError> =
        rows.records().map(|r| r.parse("source_relid")).collect();
    Ok(decoded?)
}

/// Sources with a change buffer that no stream table reads (up to version 3 every stream table
/// captured its own changes, read or not).
pub async fn unread_buffers<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<u32>> {
    let rows = Rows::read(
        sql,
        "pgtrickle.pgt_dependencies",
        "SELECT pg_catalog.substr(c.relname, 9) AS source_relid FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = 'pgtrickle_changes'::pg_catalog.regnamespace \
           AND c.relkind = 'r' AND c.relname ~ '^changes_[0-9]+$' \
           AND NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d \
                           WHERE d.source_relid::text = pg_catalog.substr(c.relname, 9))",
    )
    .await?;
    let decoded: Result<Vec<u32>, CatalogError> =
        rows.records().map(|r| r.parse("source_relid")).collect();
    Ok(decoded?)
}

/// Forgets foreign sources whose mirror was dropped (their next poll prepares them again).
pub async fn forget_sources_without_mirror<R: SqlRunner>(sql: &mut R) -> EngineResult<()> {
    sql.run(
        "DELETE FROM pgtrickle.pgt_polled_sources p \
         WHERE to_regclass('pgtrickle_changes.mirror_' || p.foreign_relid::oid) IS NULL; \
         DELETE FROM pgtrickle.pgt_poll_state p \
         WHERE to_regclass('pgtrickle_changes.mirror_' || p.foreign_relid::oid) IS NULL",
    )
    .await?;
    Ok(())
}

/// A stream table without its execution view, and its owner.
pub struct WithoutExecView {
    /// Catalog id.
    pub pgt_id: i64,
    /// The storage table's owner (a role name as `regrole` writes it).
    pub owner: String,
}

/// Stream tables without an execution view.
pub async fn without_exec_view<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<WithoutExecView>> {
    let rows = Rows::read(
        sql,
        "pgtrickle.pgt_stream_tables",
        "SELECT s.pgt_id, c.relowner::pg_catalog.regrole::text AS owner \
         FROM pgtrickle.pgt_stream_tables s \
         JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class e \
                           WHERE e.oid = s.exec_relid AND e.relkind = 'm')",
    )
    .await?;
    let decoded: Result<Vec<_>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(WithoutExecView {
                pgt_id: r.parse("pgt_id")?,
                owner: r.required("owner")?.to_string(),
            })
        })
        .collect();
    Ok(decoded?)
}

/// SQL recording `view` (a qualified name) as stream table `pgt_id`'s execution view.
pub fn set_exec_view_sql(pgt_id: i64, view: &str) -> String {
    format!(
        "UPDATE pgtrickle.pgt_stream_tables SET exec_relid = {}::regclass WHERE pgt_id = {pgt_id}",
        quote_literal(view)
    )
}

/// Makes every stream table's next refresh FULL.
pub async fn refresh_all_full<R: SqlRunner>(sql: &mut R) -> EngineResult<()> {
    sql.run("UPDATE pgtrickle.pgt_stream_tables SET needs_full = true")
        .await?;
    Ok(())
}
