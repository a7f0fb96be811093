//! Versions of a grouped subquery (GROUP BY, global aggregates, DISTINCT inside FROM or a
//! CTE): new and old states regrouped from the projected input; the delta recomputes the
//! changed groups, per key where the key has no NULL.

use super::*;

impl RelGen<'_> {
    /// A grouped subquery in a version. Its input is projected to keys `__pgt_kI`, arguments
    /// `__pgt_aJ` and filters `__pgt_fJ`; the aggregates are applied to that projection. The
    /// old state regroups the input's old rows expanded from their net weights; the delta is
    /// +1 for the new and -1 for the old rows of every group whose key hash appears in the
    /// input's delta (a colliding unchanged group cancels out).
    pub(super) fn grouped(&self, g: &GroupedBody, version: Version, weight: &str) -> String {
        let plan = &g.plan;
        let AggInput::Grouped { block, .. } = &plan.input else {
            return String::new();
        };
        let mut cols: Vec<String> = Vec::new();
        let mut proj: Vec<String> = Vec::new();
        for (i, k) in plan.key_exprs.iter().enumerate() {
            proj.push(format!("{k} AS __pgt_k{i}"));
            cols.push(format!("__pgt_k{i}"));
        }
        for (j, a) in plan.aggs.iter().enumerate() {
            if let Some(arg) = &a.arg {
                proj.push(format!("{arg} AS __pgt_a{j}"));
                cols.push(format!("__pgt_a{j}"));
            }
            if let Some(f) = &a.filter {
                proj.push(format!("({f}) AS __pgt_f{j}"));
                cols.push(format!("__pgt_f{j}"));
            }
        }
        if proj.is_empty() {
            // count(*) alone without keys: one constant column to regroup by.
            proj.push("0 AS __pgt_z".into());
            cols.push("__pgt_z".into());
        }
        let keys: Vec<String> = (0..plan.key_exprs.len())
            .map(|i| format!("__pgt_k{i}"))
            .collect();
        // Keys and every aggregate (the outputs' and HAVING's) on the grouped row, then the
        // outputs and HAVING over it.
        let mut row: Vec<String> = (0..plan.key_exprs.len())
            .map(|i| format!("__pgt_k{i}"))
            .collect();
        for (j, a) in plan.aggs.iter().enumerate() {
            let f = if a.filter.is_some() {
                format!(" FILTER (WHERE __pgt_f{j})")
            } else {
                String::new()
            };
            let d = if a.distinct { "DISTINCT " } else { "" };
            let func = match a.kind {
                AggKind::CountStar => "pg_catalog.count(*)".to_string(),
                AggKind::Count => format!("pg_catalog.count({d}__pgt_a{j})"),
                AggKind::Sum => format!("pg_catalog.sum({d}__pgt_a{j})"),
                AggKind::Avg => format!("pg_catalog.avg({d}__pgt_a{j})"),
                AggKind::Min => format!("pg_catalog.min({d}__pgt_a{j})"),
                AggKind::Max => format!("pg_catalog.max({d}__pgt_a{j})"),
                AggKind::BoolAnd => format!("pg_catalog.bool_and({d}__pgt_a{j})"),
                AggKind::BoolOr => format!("pg_catalog.bool_or({d}__pgt_a{j})"),
            };
            row.push(format!("{func}{f} AS __pgt_v{j}"));
        }
        let outputs: Vec<String> = g
            .out_exprs
            .iter()
            .zip(&g.names)
            .map(|(e, name)| format!("{e} AS {}", crate::api_call::quote_ident(name)))
            .collect();
        let having = g
            .having
            .as_ref()
            .map(|h| format!(" WHERE {h}"))
            .unwrap_or_default();
        let n = block.factors.len();
        let m = block.preds.len();
        let new_input = self.select(
            block,
            &vec![Version::New; n],
            &vec![PredVersion::New; m],
            Some(&proj),
            "__pgt_iw",
        );
        let old_input = self.block_old(block, Some(&proj), "__pgt_iw");
        let list = cols.join(", ");
        let old_bag = |restrict: &str| {
            format!(
                "SELECT {list} FROM (SELECT {list}, pg_catalog.sum(__pgt_iw) AS __pgt_m FROM ({old_input}) \
                 AS __pgt_o {restrict} GROUP BY {list} HAVING pg_catalog.sum(__pgt_iw) > 0) AS __pgt_e \
                 CROSS JOIN LATERAL pg_catalog.generate_series(1::pg_catalog.int8, __pgt_e.__pgt_m::pg_catalog.int8)"
            )
        };
        // Without keys: one row always (also over no input rows), so the delta's new and old
        // rows cancel when nothing changed.
        let group_by = if keys.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", keys.join(", "))
        };
        let group = |input: &str, w: &str| {
            format!(
                "SELECT {}, {w} AS {weight} FROM (SELECT {} FROM ({input}) AS __pgt_in{group_by}) \
                 AS __pgt_gr{having}",
                outputs.join(", "),
                row.join(", "),
            )
        };
        match version {
            Version::New => group(&new_input, "1"),
            Version::Old => group(&old_bag(""), "1"),
            Version::Delta if keys.is_empty() => {
                let delta_input = self.block_delta(block, Some(&proj), "__pgt_iw");
                let restrict = format!("WHERE EXISTS (SELECT 1 FROM ({delta_input}) AS __pgt_dk)");
                format!(
                    "({}) UNION ALL ({})",
                    group(
                        &format!("SELECT * FROM ({new_input}) AS __pgt_n {restrict}"),
                        "1"
                    ),
                    group(&old_bag(&restrict), "-1")
                )
            }
            Version::Delta => {
                let hash = crate::sqlgen::row_hash(&keys);
                let delta_input = self.block_delta(block, Some(&proj), "__pgt_iw");
                let all_set = keys
                    .iter()
                    .map(|k| format!("{k} IS NOT NULL"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                // Changed groups without NULL keys: recomputed one by one (LATERAL), so an
                // index on a key column serves both the new and the old rows.
                let affected = format!(
                    "(SELECT DISTINCT {} FROM ({delta_input}) AS __pgt_dk WHERE {all_set}) AS \
                     __pgt_ak",
                    keys.join(", ")
                );
                let eq = |alias: &str| {
                    keys.iter()
                        .map(|k| format!("{alias}.{k} = __pgt_ak.{k}"))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                };
                let by_key_new = format!(
                    "SELECT __pgt_g.* FROM {affected} CROSS JOIN LATERAL ({}) AS __pgt_g",
                    group(
                        &format!(
                            "SELECT * FROM ({new_input}) AS __pgt_n WHERE {}",
                            eq("__pgt_n")
                        ),
                        "1"
                    )
                );
                let by_key_old = format!(
                    "SELECT __pgt_g.* FROM {affected} CROSS JOIN LATERAL ({}) AS __pgt_g",
                    group(&old_bag(&format!("WHERE {}", eq("__pgt_o"))), "-1")
                );
                // Groups with a NULL key: by key hash (a colliding unchanged group cancels).
                let null_restrict = format!(
                    "WHERE NOT ({all_set}) AND {hash} IN (SELECT {hash} FROM ({delta_input}) AS \
                     __pgt_dk WHERE NOT ({all_set}))"
                );
                format!(
                    "({by_key_new}) UNION ALL ({by_key_old}) UNION ALL ({}) UNION ALL ({})",
                    group(
                        &format!("SELECT * FROM ({new_input}) AS __pgt_n {null_restrict}"),
                        "1"
                    ),
                    group(&old_bag(&null_restrict), "-1")
                )
            }
        }
    }
}
