//! Storage and refresh SQL of the keyed recompute ([`KeyedPlan`]): window functions, DISTINCT
//! ON, grouping sets, top-k.
//!
//! Delta rule: affected keys A = the keys of the input's changed rows (old and new); the
//! refresh deletes the stored rows whose key is in A and inserts the query's rows restricted
//! to the input rows with a key in A. One statement: a MATERIALIZED CTE computes A (as key
//! hashes) from the deltas, a data-modifying CTE deletes, the INSERT reads the sources'
//! current state through the restricted query. Storage: the query's columns plus
//! `__pgt_kh`, the hash of the row's key, indexed.

use super::{col_defs, col_list, row_hash, INT8};
use crate::error::Result;
use crate::input::{ColumnDef, SourceRelation};
use crate::query::model::{KeyPart, KeyedInput, KeyedPlan, Shape, FILTER_HOLE, HASH_HOLE};
use crate::sqlgen::full::query_over_current;
use crate::sqlgen::relation::{RelGen, Version};

/// CREATE TABLE and CREATE INDEX of keyed storage.
pub fn ddl(storage: &str, cols: &[ColumnDef]) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE {storage} ({}, __pgt_kh {INT8} NOT NULL)",
            col_defs(cols)
        ),
        format!("CREATE INDEX ON {storage} (__pgt_kh)"),
    ]
}

/// The query's rows with their key hash (query columns, then `__pgt_kh`), restricted by
/// `filter` (SQL over the key hashes of each input row's key sets; `true` for all rows).
fn rows(plan: &KeyedPlan, relations: &[SourceRelation], filter: &str) -> Result<String> {
    let sql = query_over_current(&plan.restricted, relations)?;
    Ok(match &plan.input {
        KeyedInput::Whole(_) => format!(
            "SELECT __pgt_q.*, 0::{INT8} AS __pgt_kh FROM ({sql}) AS __pgt_q WHERE {filter}"
        ),
        KeyedInput::Keys { .. } => sql
            .replace(FILTER_HOLE, &format!("({filter})"))
            .replace(HASH_HOLE, &row_hash(&plan.output_keys)),
    })
}

/// The hash of a key set's key, its parts taken from `col(i)`.
fn set_hash(set: &[KeyPart], col: &dyn Fn(usize) -> String) -> String {
    let parts: Vec<String> = set
        .iter()
        .map(|p| match p {
            KeyPart::Col(i) => col(*i),
            KeyPart::Null(i) => format!("(CASE WHEN false THEN {} END)", col(*i)),
            KeyPart::Const(c) => c.clone(),
        })
        .collect();
    row_hash(&parts)
}

/// FULL refresh of keyed storage.
pub fn full(
    storage: &str,
    cols: &[ColumnDef],
    plan: &KeyedPlan,
    relations: &[SourceRelation],
) -> Result<Vec<String>> {
    Ok(vec![
        format!("DELETE FROM {storage}"),
        format!(
            "INSERT INTO {storage} ({}, __pgt_kh) SELECT * FROM ({}) AS __pgt_r",
            col_list(cols),
            rows(plan, relations, "true")?
        ),
    ])
}

/// A relation whose rows are the input's changes (any columns): non-empty when something
/// the shape reads changed.
pub fn change_rows(rg: &RelGen, shape: &Shape) -> String {
    match shape {
        Shape::Bag(b) => rg.body(b, Version::Delta, "__pgt_w"),
        Shape::Aggregate(p) => super::aggregate::input_delta(rg, p),
        Shape::Keyed(k) => match &k.input {
            KeyedInput::Keys { body, .. } => rg.body(body, Version::Delta, "__pgt_w"),
            KeyedInput::Whole(inner) => change_rows(rg, inner),
        },
    }
}

/// The affected key hashes (column `h`), from the deltas.
pub fn affected(rg: &RelGen, plan: &KeyedPlan) -> String {
    match &plan.input {
        KeyedInput::Whole(inner) => format!(
            "SELECT 0::{INT8} AS h WHERE EXISTS (SELECT FROM ({}) AS __pgt_d)",
            change_rows(rg, inner)
        ),
        KeyedInput::Keys { body, .. } => {
            let hashes: Vec<String> = plan
                .sets
                .iter()
                .map(|s| format!("({})", set_hash(s, &|i| format!("__pgt_d.__pgt_k{i}"))))
                .collect();
            format!(
                "SELECT DISTINCT __pgt_h.h FROM ({}) AS __pgt_d CROSS JOIN LATERAL (VALUES {}) \
                 AS __pgt_h(h)",
                rg.body(body, Version::Delta, "__pgt_w"),
                hashes.join(", ")
            )
        }
    }
}

/// The DIFFERENTIAL refresh: one statement.
pub fn differential(
    rg: &RelGen,
    storage: &str,
    cols: &[ColumnDef],
    plan: &KeyedPlan,
) -> Result<String> {
    let in_aff = "IN (SELECT __pgt_a.h FROM __pgt_aff AS __pgt_a)";
    let filter = match &plan.input {
        KeyedInput::Whole(_) => "EXISTS (SELECT FROM __pgt_aff)".to_string(),
        KeyedInput::Keys { exprs, .. } => plan
            .sets
            .iter()
            .map(|s| format!("{} {in_aff}", set_hash(s, &|i| format!("({})", exprs[i]))))
            .collect::<Vec<_>>()
            .join(" OR "),
    };
    Ok(format!(
        "WITH __pgt_aff AS MATERIALIZED ({aff}), \
         __pgt_del AS (DELETE FROM {storage} WHERE __pgt_kh {in_aff}) \
         INSERT INTO {storage} ({list}, __pgt_kh) SELECT * FROM ({rows}) AS __pgt_r \
         WHERE __pgt_r.__pgt_kh {in_aff}",
        aff = affected(rg, plan),
        list = col_list(cols),
        rows = rows(plan, rg.relations, &filter)?,
    ))
}
