//! `pgtrickle.pgt_dependencies`: the sources each stream table reads, with their kind stored
//! through [`RelationKind::as_catalog_str`] (an explicit text form, never a `Debug` rendering).

use pgtrickle_planner::{RelationKind, StName};

use crate::engine::catalog::record::{CatalogError, Record, Rows};
use crate::engine::error::EngineResult;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_ident_as_needed, quote_literal, SqlRunner, SqlRunnerExt};

const TABLE: &str = "pgtrickle.pgt_dependencies";

fn kind_of(text: &str) -> Option<RelationKind> {
    RelationKind::from_catalog_str(text).ok()
}

/// A source of a stream table, as the catalog records it.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The source's OID.
    pub oid: u32,
    /// What it is.
    pub kind: RelationKind,
    /// Its schema, as recorded at create time.
    pub schema: String,
    /// Its name, as recorded at create time.
    pub name: String,
}

impl Dependency {
    fn decode(r: &Record) -> Result<Dependency, CatalogError> {
        Ok(Dependency {
            oid: r.parse("source_relid")?,
            kind: r.decode("source_kind", "a relation kind", kind_of)?,
            schema: r.required("source_schema")?.to_string(),
            name: r.required("source_name")?.to_string(),
        })
    }

    /// True when its changes arrive in a change buffer: captured by triggers (tables and
    /// stream tables) or written by the poller (foreign tables).
    pub fn captured(&self) -> bool {
        self.kind.has_change_buffer()
    }

    /// True for a foreign table (polled).
    pub fn polled(&self) -> bool {
        self.kind == RelationKind::ForeignTable
    }

    /// Its schema-qualified name as recorded, quoted, for messages.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_ident_as_needed(&self.schema),
            quote_ident_as_needed(&self.name)
        )
    }
}

/// Records that stream table `pgt_id` reads `dep`, as the engine role.
pub async fn insert<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    dep: &Dependency,
) -> EngineResult<()> {
    auth.exec(
        sql,
        &format!(
            "INSERT INTO pgtrickle.pgt_dependencies \
             (pgt_id, source_relid, source_kind, source_schema, source_name) \
             VALUES ({pgt_id}, {}, {}, {}, {}) ON CONFLICT DO NOTHING",
            dep.oid,
            quote_literal(dep.kind.as_catalog_str()),
            quote_literal(&dep.schema),
            quote_literal(&dep.name)
        ),
    )
    .await
}

/// The sources of stream table `pgt_id`, by OID.
pub async fn of<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<Vec<Dependency>> {
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "SELECT source_relid, source_kind, source_schema, source_name \
             FROM pgtrickle.pgt_dependencies WHERE pgt_id = {pgt_id} ORDER BY source_relid"
        ),
    )
    .await?;
    let decoded: Result<Vec<_>, CatalogError> =
        rows.records().map(|r| Dependency::decode(&r)).collect();
    Ok(decoded?)
}

/// The stream tables that read relation `relid`.
pub async fn readers<R: SqlRunner>(sql: &mut R, relid: u32) -> EngineResult<Vec<StName>> {
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "SELECT s.pgt_schema, s.pgt_name FROM pgtrickle.pgt_dependencies d \
             JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE d.source_relid = {relid}"
        ),
    )
    .await?;
    let decoded: Result<Vec<_>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(StName {
                schema: Some(r.required("pgt_schema")?.to_string()),
                name: r.required("pgt_name")?.to_string(),
            })
        })
        .collect();
    Ok(decoded?)
}

/// True when some stream table reads relation `relid`.
pub async fn is_read<R: SqlRunner>(sql: &mut R, relid: u32) -> EngineResult<bool> {
    Ok(sql
        .value(&format!(
            "SELECT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies WHERE source_relid = {relid})"
        ))
        .await?
        .as_deref()
        == Some("t"))
}

/// A query of the last refresh snapshots of every reader of source `oid` (what the cdc crate's
/// trimming needs).
pub fn reader_snapshots_sql(oid: u32) -> String {
    format!(
        "SELECT s.last_snapshot FROM pgtrickle.pgt_dependencies d \
         JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE d.source_relid = {oid}"
    )
}

/// A source of a stream table and what its owner may read of it.
#[derive(Debug, Clone)]
pub struct SourceRights {
    /// The source as recorded.
    pub dependency: Dependency,
    /// True when the owner may read some column (None: the relation is gone).
    pub readable: Option<bool>,
    /// True when the owner reads it whole: every column, and no row-level security policy
    /// applies to it.
    pub whole: bool,
}

/// The sources of stream table `pgt_id` with what role `owner` (OID) may read of them.
pub async fn rights<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
    owner: u32,
) -> EngineResult<Vec<SourceRights>> {
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "SELECT d.source_relid, d.source_kind, d.source_schema, d.source_name, \
               pg_catalog.has_any_column_privilege({owner}::pg_catalog.oid, d.source_relid, 'SELECT') \
                 AS readable, \
               NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a \
                           WHERE a.attrelid = d.source_relid AND a.attnum > 0 AND NOT a.attisdropped \
                             AND NOT pg_catalog.has_column_privilege({owner}::pg_catalog.oid, \
                                     d.source_relid, a.attnum, 'SELECT')) \
               AND NOT coalesce(r.relrowsecurity \
                   AND (r.relforcerowsecurity \
                        OR NOT pg_catalog.pg_has_role({owner}::pg_catalog.oid, r.relowner, 'USAGE')) \
                   AND NOT (SELECT o.rolsuper OR o.rolbypassrls FROM pg_catalog.pg_roles o \
                            WHERE o.oid = {owner}::pg_catalog.oid), false) AS whole \
             FROM pgtrickle.pgt_dependencies d \
             LEFT JOIN pg_catalog.pg_class r ON r.oid = d.source_relid \
             WHERE d.pgt_id = {pgt_id} ORDER BY d.source_relid"
        ),
    )
    .await?;
    let decoded: Result<Vec<_>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(SourceRights {
                dependency: Dependency::decode(&r)?,
                readable: r.decode_opt("readable", "a boolean", |t| match t {
                    "t" => Some(true),
                    "f" => Some(false),
                    _ => None,
                })?,
                whole: r.flag("whole")?,
            })
        })
        .collect();
    Ok(decoded?)
}
