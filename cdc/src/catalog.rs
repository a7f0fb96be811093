//! Catalog queries: describing a source table, and checking installed capture for drift.
//!
//! Column changes on a source after capture is installed (ADD/DROP/RENAME COLUMN, ALTER TYPE)
//! are not supported yet. They are detectable: [`capture_status_sql`] reports `columns_match =
//! false`, and [`crate::install_capture_sql`] refuses to (re)install over a buffer that no longer
//! matches its source. Until the engine handles drift (uninstall, reinstall, full refresh of every
//! consumer), note what happens: an added column is simply not captured; a dropped or renamed
//! column makes the capture functions fail, so writes to the source fail with an error naming the
//! column (no change is ever lost silently).

use crate::naming::{buffer_table, trigger_name, CaptureEvent, RESERVED_PREFIX};
use crate::quote::quote_literal;

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

/// Query returning one row describing the capture installed on source `oid`:
///
/// - `buffer_exists bool`: the change buffer exists;
/// - `triggers int`: how many of the four capture triggers exist on the source (4 when complete);
/// - `triggers_always bool`: all of them are `ENABLE ALWAYS` (false when a user disabled one, or
///   NULL when there are none);
/// - `columns_match bool`: the source's columns (names, types, collations, order; columns named
///   `__pgt_*` left out) are those of the buffer (NULL when the source or the buffer is missing). False means the source was
///   altered after install: see the module documentation;
/// - `uncaptured_partitions int`: partitions (at any level) of a partitioned source that lack
///   some of the capture triggers (created or attached after the install): run the install again.
pub fn capture_status_sql(oid: u32) -> String {
    let names = CaptureEvent::ALL
        .iter()
        .map(|e| quote_literal(&trigger_name(oid, *e)))
        .collect::<Vec<_>>()
        .join(", ");
    let buffer = format!(
        "pg_catalog.to_regclass({})",
        quote_literal(&buffer_table(oid))
    );
    let source_exists =
        format!("EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {oid}::pg_catalog.oid)");
    format!(
        "SELECT {buffer} IS NOT NULL AS buffer_exists, \
         (SELECT count(*)::int FROM pg_catalog.pg_trigger t WHERE t.tgrelid = {oid}::pg_catalog.oid \
         AND t.tgname IN ({names})) AS triggers, \
         (SELECT pg_catalog.bool_and(t.tgenabled = 'A') FROM pg_catalog.pg_trigger t \
         WHERE t.tgrelid = {oid}::pg_catalog.oid AND t.tgname IN ({names})) AS triggers_always, \
         CASE WHEN {buffer} IS NULL OR NOT {source_exists} THEN NULL ELSE \
         {} IS NOT DISTINCT FROM {} END AS columns_match, \
         (SELECT count(*)::int FROM pg_catalog.pg_partition_tree({oid}::pg_catalog.oid::pg_catalog.regclass) p \
         WHERE p.relid <> {oid}::pg_catalog.oid::pg_catalog.regclass AND (SELECT count(*) \
         FROM pg_catalog.pg_trigger t WHERE t.tgrelid = p.relid AND t.tgname IN ({names})) < 4) \
         AS uncaptured_partitions",
        columns_signature_expr(&format!("{oid}::pg_catalog.oid")),
        columns_signature_expr(&buffer),
    )
}
