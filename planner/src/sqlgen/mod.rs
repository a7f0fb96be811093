//! SQL generation: the storage table's DDL, the FULL refresh and the DIFFERENTIAL refresh.
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
pub mod relation;

use crate::api_call::quote_ident;
use crate::input::ColumnDef;

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

/// `hash_record_extended(ROW(exprs), 0)`, or a constant for no expressions.
pub fn row_hash(exprs: &[String]) -> String {
    if exprs.is_empty() {
        "0::bigint".into()
    } else {
        format!("hash_record_extended(ROW({}), 0)", exprs.join(", "))
    }
}
