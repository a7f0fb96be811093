//! Storage and refresh SQL for bag-shaped queries (no grouping): each result row is stored as
//! often as the query returns it; a refresh nets the delta per distinct row and deletes or
//! inserts that many copies, finding rows through the indexed `__pgt_hash`.
//!
//! Columns of a type without equality or hashing ([`by_text`]: `json`, `json[]`) are compared,
//! grouped and hashed by their text form, which for `json` is the value exactly (json keeps
//! its input text), so `text::json` gives the same value back.

use super::{col_defs, col_list, row_hash};
use crate::api_call::quote_ident;
use crate::input::ColumnDef;

/// CREATE TABLE and CREATE INDEX for bag storage.
pub fn ddl(storage: &str, cols: &[ColumnDef]) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE {storage} ({}, __pgt_hash pg_catalog.int8 NOT NULL)",
            col_defs(cols)
        ),
        format!("CREATE INDEX ON {storage} (__pgt_hash)"),
    ]
}

/// True for a column type PostgreSQL has no equality operator or hash function for, whose
/// values the bag storage compares by their text form (which gives the value back exactly).
pub fn by_text(type_name: &str) -> bool {
    type_name
        .trim_end_matches("[]")
        .eq_ignore_ascii_case("json")
}

/// The column `col` (quoted) of relation `alias` as the storage compares it: its text form for
/// the [`by_text`] types.
fn comparable(alias: &str, col: &str, c: &ColumnDef) -> String {
    if by_text(&c.type_name) {
        format!("{alias}{col}::pg_catalog.text")
    } else {
        format!("{alias}{col}")
    }
}

/// FULL refresh of bag storage from the query over `current` relations.
pub fn full(storage: &str, cols: &[ColumnDef], query_sql: &str) -> Vec<String> {
    let list = col_list(cols);
    // The same hash as the DIFFERENTIAL refresh's: of the row, or of the row with the
    // text-compared columns as text.
    let hash = if cols.iter().any(|c| by_text(&c.type_name)) {
        let parts: Vec<String> = cols
            .iter()
            .map(|c| comparable("__pgt_q.", &quote_ident(&c.name), c))
            .collect();
        row_hash(&parts)
    } else {
        "pg_catalog.hash_record_extended(__pgt_q, 0::pg_catalog.int8)".to_string()
    };
    vec![
        format!("DELETE FROM {storage}"),
        format!(
            "INSERT INTO {storage} ({list}, __pgt_hash) SELECT __pgt_q.*, \
             {hash} FROM ({query_sql}) AS __pgt_q({list})"
        ),
    ]
}

/// The DIFFERENTIAL refresh: one statement applying `delta_sql` (the query's columns plus a
/// weight column, in that order) to the storage.
pub fn differential(storage: &str, cols: &[ColumnDef], delta_sql: &str) -> String {
    let list = col_list(cols);
    let quoted: Vec<String> = cols.iter().map(|c| quote_ident(&c.name)).collect();
    // The delta's columns as compared (text for the text-compared types), named as the
    // columns; the storage gets them back in their own types.
    let keys: Vec<String> = quoted
        .iter()
        .zip(cols)
        .map(|(q, c)| comparable("", q, c))
        .collect();
    let n_keys = keys
        .iter()
        .zip(&quoted)
        .map(|(k, q)| {
            if k == q {
                q.clone()
            } else {
                format!("{k} AS {q}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let n_cols = quoted
        .iter()
        .zip(cols)
        .map(|(q, c)| {
            if by_text(&c.type_name) {
                format!("n.{q}::{}", c.type_name)
            } else {
                format!("n.{q}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let matches = quoted
        .iter()
        .zip(cols)
        .map(|(q, c)| format!(" AND {} IS NOT DISTINCT FROM n.{q}", comparable("x.", q, c)))
        .collect::<String>();
    format!(
        "WITH __pgt_d({list}, __pgt_w) AS ({delta_sql}), \
         __pgt_n AS (SELECT {n_keys}, pg_catalog.sum(__pgt_w)::pg_catalog.int8 AS __pgt_cnt, {hash} AS __pgt_h \
         FROM __pgt_d GROUP BY {group_by} \
         HAVING pg_catalog.sum(__pgt_w) <> 0), \
         __pgt_del AS (DELETE FROM {storage} WHERE ctid = ANY (ARRAY(SELECT s.ctid FROM \
         __pgt_n n CROSS JOIN LATERAL (SELECT x.ctid FROM {storage} x WHERE \
         x.__pgt_hash = n.__pgt_h{matches} LIMIT -n.__pgt_cnt) s WHERE n.__pgt_cnt < 0))) \
         INSERT INTO {storage} ({list}, __pgt_hash) SELECT {n_cols}, n.__pgt_h FROM __pgt_n n \
         CROSS JOIN LATERAL pg_catalog.generate_series(1::pg_catalog.int8, n.__pgt_cnt) WHERE n.__pgt_cnt > 0",
        hash = row_hash(&keys),
        group_by = keys.join(", "),
    )
}
