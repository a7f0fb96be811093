//! What a stream table's owner may read of its sources, whoever asks for the refresh: every
//! source must still be readable by the owner (a change buffer keeps receiving a source's rows
//! after a REVOKE); a source the owner reads only in part (some columns) or through row-level
//! security is refreshed FULL, where PostgreSQL applies those limits, because its delta (filled
//! by the engine role from the change buffer, which holds every row and column) would show more.
//! The rights are PostgreSQL's, asked for the owner's role by OID (`has_*_privilege(role, ...)`),
//! so the query runs as any role.

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::{SqlRunner, SqlRunnerExt};

/// A source of a stream table and what its owner may read of it.
#[derive(Debug, Clone)]
pub struct SourceRights {
    /// Its OID.
    pub oid: u32,
    /// True when its changes arrive in a change buffer (tables, stream tables, foreign tables).
    pub captured: bool,
    /// Its schema-qualified name as the catalog recorded it, for messages.
    pub name: String,
    /// Whether the owner may read it (some column of it); None when it no longer exists.
    pub readable: Option<bool>,
    /// True when the owner may read every column of it and no row-level security policy
    /// filters its rows for the owner.
    pub whole: bool,
}

/// The sources of stream table `pgt_id`, with the rights of the owner (role OID `owner`).
pub async fn sources<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
    owner: u32,
) -> EngineResult<Vec<SourceRights>> {
    let rows = sql
        .rows(&format!(
            "SELECT d.source_relid, d.source_kind, \
               pg_catalog.format('%I.%I', d.source_schema, d.source_name), \
               pg_catalog.has_any_column_privilege({owner}::pg_catalog.oid, d.source_relid, 'SELECT'), \
               NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a \
                           WHERE a.attrelid = d.source_relid AND a.attnum > 0 AND NOT a.attisdropped \
                             AND NOT pg_catalog.has_column_privilege({owner}::pg_catalog.oid, \
                                     d.source_relid, a.attnum, 'SELECT')) \
               AND NOT coalesce(r.relrowsecurity \
                   AND (r.relforcerowsecurity \
                        OR NOT pg_catalog.pg_has_role({owner}::pg_catalog.oid, r.relowner, 'USAGE')) \
                   AND NOT (SELECT o.rolsuper OR o.rolbypassrls FROM pg_catalog.pg_roles o \
                            WHERE o.oid = {owner}::pg_catalog.oid), false) \
             FROM pgtrickle.pgt_dependencies d \
             LEFT JOIN pg_catalog.pg_class r ON r.oid = d.source_relid \
             WHERE d.pgt_id = {pgt_id} ORDER BY d.source_relid"
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten();
            Ok(SourceRights {
                oid: get(0).and_then(|v| v.parse().ok()).unwrap_or(0),
                captured: crate::engine::refresh::capture::catalog_kind(get(1).as_deref())?
                    .has_change_buffer(),
                name: get(2).unwrap_or_default(),
                readable: get(3).map(|v| v == "t"),
                whole: get(4).as_deref() == Some("t"),
            })
        })
        .collect()
}

/// Checks that the owner may still read every source (42501 otherwise, 42P01 for a source
/// dropped meanwhile); returns true when some source is not wholly readable by the owner.
pub fn check_sources(sources: &[SourceRights]) -> EngineResult<bool> {
    for d in sources {
        match d.readable {
            Some(true) => {}
            Some(false) => {
                return Err(EngineError::api(
                    "42501",
                    format!("permission denied for table {}", d.name),
                )
                .with_hint(
                    "the stream table's owner can no longer read this source; grant it SELECT \
                     again or drop the stream table",
                ))
            }
            None => {
                return Err(EngineError::api(
                    "42P01",
                    format!(
                        "source relation {} of the stream table no longer exists",
                        d.name
                    ),
                )
                .with_hint("drop the stream table, or create it again over the new relation"))
            }
        }
    }
    Ok(sources.iter().any(|d| !d.whole))
}
