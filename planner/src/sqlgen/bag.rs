//! Storage and refresh SQL for bag-shaped queries (no grouping): each result row is stored as
//! often as the query returns it; a refresh nets the delta per distinct row and deletes or
//! inserts that many copies, finding rows through the indexed `__pgt_hash`.

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

/// FULL refresh of bag storage from the query over `current` relations.
pub fn full(storage: &str, cols: &[ColumnDef], query_sql: &str) -> Vec<String> {
    let list = col_list(cols);
    vec![
        format!("DELETE FROM {storage}"),
        format!(
            "INSERT INTO {storage} ({list}, __pgt_hash) SELECT __pgt_q.*, \
             pg_catalog.hash_record_extended(__pgt_q, 0::pg_catalog.int8) FROM ({query_sql}) AS __pgt_q({list})"
        ),
    ]
}

/// The DIFFERENTIAL refresh: one statement applying `delta_sql` (the query's columns plus a
/// weight column, in that order) to the storage.
pub fn differential(storage: &str, cols: &[ColumnDef], delta_sql: &str) -> String {
    let list = col_list(cols);
    let quoted: Vec<String> = cols.iter().map(|c| quote_ident(&c.name)).collect();
    let n_cols = quoted
        .iter()
        .map(|c| format!("n.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let matches = quoted
        .iter()
        .map(|c| format!(" AND x.{c} IS NOT DISTINCT FROM n.{c}"))
        .collect::<String>();
    format!(
        "WITH __pgt_d({list}, __pgt_w) AS ({delta_sql}), \
         __pgt_n AS (SELECT {list}, pg_catalog.sum(__pgt_w)::pg_catalog.int8 AS __pgt_cnt, {hash} AS __pgt_h \
         FROM __pgt_d GROUP BY {list} \
         HAVING pg_catalog.sum(__pgt_w) <> 0), \
         __pgt_del AS (DELETE FROM {storage} WHERE ctid = ANY (ARRAY(SELECT s.ctid FROM \
         __pgt_n n CROSS JOIN LATERAL (SELECT x.ctid FROM {storage} x WHERE \
         x.__pgt_hash = n.__pgt_h{matches} LIMIT -n.__pgt_cnt) s WHERE n.__pgt_cnt < 0))) \
         INSERT INTO {storage} ({list}, __pgt_hash) SELECT {n_cols}, n.__pgt_h FROM __pgt_n n \
         CROSS JOIN LATERAL pg_catalog.generate_series(1::pg_catalog.int8, n.__pgt_cnt) WHERE n.__pgt_cnt > 0",
        hash = row_hash(&quoted),
    )
}
