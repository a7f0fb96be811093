//! Catalog queries: describing a source table, and the column signature that capture and polling
//! compare to detect drift.
//!
//! Column changes on a source after capture is installed (ADD/DROP/RENAME COLUMN, ALTER TYPE)
//! are not supported yet. They are detectable: [`crate::install_capture_sql`] refuses (55000) to
//! (re)install over a buffer that no longer matches its source. Until the engine handles drift
//! (uninstall, reinstall, full refresh of every consumer), note what happens: an added column is
//! simply not captured; a dropped or renamed column makes the capture functions fail, so writes
//! to the source fail with an error naming the column (no change is ever lost silently).

use crate::naming::RESERVED_PREFIX;

/// SQL expression rendering the type of attribute `a` as [`crate::SourceTable`] expects it:
/// `format_type`, plus `COLLATE "schema"."name"` when the column's collation is not its type's.
pub(crate) const COLUMN_TYPE_EXPR: &str = "pg_catalog.format_type(a.atttypid, a.atttypmod) || \
     COALESCE((SELECT ' COLLATE ' || pg_catalog.quote_ident(cn.nspname) || '.' || \
     pg_catalog.quote_ident(co.collname) FROM pg_catalog.pg_collation co \
     JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace \
     JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid \
     WHERE co.oid = a.attcollation AND a.attcollation <> ty.typcollation), '')";

/// Query describing source `oid`: one row per live column, in attribute order, with columns
/// `schema`, `name`, `relkind` (`r` table, `p` partitioned table: capture by triggers; `f`
/// foreign table: polling, later), `column_name`, `column_type`, `is_partition` (bool),
/// `has_inheritance_children` (bool). No rows: no such relation.
///
/// Refuse sources with `is_partition` (writes routed through the partitioned parent do not fire
/// a partition's statement triggers, so they would be missed) or `has_inheritance_children`
/// (writes addressed to children are not captured); a partitioned root is fine.
///
/// Run it with `search_path = pg_catalog` (e.g. `SET LOCAL search_path = pg_catalog` in the
/// engine's transaction) so that every type outside pg_catalog comes out schema-qualified, or
/// under the same search_path the install will run under.
pub fn describe_source_sql(oid: u32) -> String {
    format!(
        "SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS relkind, \
         a.attname::text AS column_name, {COLUMN_TYPE_EXPR} AS column_type, \
         c.relispartition AS is_partition, \
         EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid) \
         AND c.relkind <> 'p' AS has_inheritance_children \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE c.oid = {oid}::pg_catalog.oid ORDER BY a.attnum"
    )
}

/// SQL expression: the text array of `name type` of the live columns of relation `rel` (an
/// expression of type oid), in attribute order, leaving out columns named `__pgt_*` (the
/// buffer's bookkeeping columns, and a stream table's own hidden columns when a stream table is
/// itself a source: they are not captured).
pub(crate) fn columns_signature_expr(rel: &str) -> String {
    format!(
        "(SELECT pg_catalog.array_agg(a.attname::text || ' ' || {COLUMN_TYPE_EXPR} ORDER BY a.attnum) \
         FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attnum > 0 \
         AND NOT a.attisdropped AND pg_catalog.left(a.attname::text, {}) <> '{RESERVED_PREFIX}')",
        RESERVED_PREFIX.len()
    )
}
