//! SQL generation: the storage table's DDL, the FULL refresh and the DIFFERENTIAL refresh.
//!
//! Name resolution: the engine plans PostgreSQL's deparsed text of the defining query (every
//! function, operator, type and relation outside pg_catalog schema-qualified) and runs every
//! refresh statement with `search_path = pg_catalog, pg_temp`. Every function and type this
//! module names itself is written schema-qualified and with exactly typed arguments
//! (`pg_catalog.hash_record_extended(ROW(...), 0::pg_catalog.int8)`, `pg_catalog.sum(...)`,
//! `::pg_catalog.int8`), so that no object another role creates later can take its place
//! whatever the search_path. `coalesce`, `greatest`, `least`, `CASE`, `NULLIF` are syntax, not
//! functions. Operators (`=`, `+`, `<>`, `IS NOT DISTINCT FROM`, ...) stay unqualified: under
//! `pg_catalog, pg_temp` an unqualified operator or function resolves in pg_catalog only
//! (PostgreSQL never searches pg_temp for functions or operators). Column types from
//! [`ColumnDef`] are the engine's (`format_type` output) and are inserted as given.
//!
//! Storage layouts (hidden columns are all named `__pgt_*`):
//! - FULL plans: exactly the query's columns.
//! - DIFFERENTIAL bag plans (no grouping): the query's columns, one physical row per result row
//!   (duplicates included), plus `__pgt_hash bigint` = `hash_record_extended(row, 0)` of the
//!   row's query columns, indexed, to find rows to delete.
//! - DIFFERENTIAL aggregate plans (GROUP BY, DISTINCT, UNION): one row per group, the query's
//!   columns plus `__pgt_count` (rows in the group), per-aggregate state (`__pgt_nnJ` non-null
//!   counts, `__pgt_sumJ` sums for AVG, `__pgt_tJ` true counts for BOOL_AND/OR) and
//!   `__pgt_hash` of the group key, indexed.

pub mod aggregate;
pub mod bag;
pub mod full;
pub mod keyed;
pub mod relation;

use crate::api_call::quote_ident;
use crate::input::ColumnDef;

/// `bigint`, schema-qualified.
pub const INT8: &str = "pg_catalog.int8";
/// `integer`, schema-qualified.
pub const INT4: &str = "pg_catalog.int4";
/// `numeric`, schema-qualified.
pub const NUMERIC: &str = "pg_catalog.numeric";
/// `double precision`, schema-qualified.
pub const FLOAT8: &str = "pg_catalog.float8";
/// `interval`, schema-qualified.
pub const INTERVAL: &str = "pg_catalog.interval";

/// Comma-separated quoted column names.
pub fn col_list(cols: &[ColumnDef]) -> String {
    cols.iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Column definitions for CREATE TABLE.
pub fn col_defs(cols: &[ColumnDef]) -> String {
    cols.iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.type_name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_catalog.hash_record_extended(ROW(exprs), 0::pg_catalog.int8)`, or a constant for no
/// expressions.
pub fn row_hash(exprs: &[String]) -> String {
    if exprs.is_empty() {
        "0::pg_catalog.int8".into()
    } else {
        format!(
            "pg_catalog.hash_record_extended(ROW({}), 0::pg_catalog.int8)",
            exprs.join(", ")
        )
    }
}
