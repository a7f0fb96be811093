//! Storage and refresh SQL for grouped queries (GROUP BY, DISTINCT, UNION): one row per group
//! with a row count and per-aggregate state. A refresh aggregates the delta per group, merges
//! it with the stored state (COUNT, SUM, AVG, BOOL_AND/OR algebraically; MIN/MAX too unless a
//! deleted value reaches the stored extremum; the largest scale of a numeric SUM/AVG's values
//! too unless its last value may be gone), and re-scans from the sources only the groups that
//! need it (or every changed group, for HAVING, COUNT(DISTINCT), expressions over aggregates).
//! A float or numeric SUM/AVG keeps the counts of NaN and infinite values apart from the running
//! sum of the finite ones.

use super::relation::{RelGen, Version};
use super::{col_defs, row_hash, FLOAT8, INT4, INT8, INTERVAL, NUMERIC};
use crate::api_call::quote_ident;
use crate::input::ColumnDef;
use crate::query::model::{Agg, AggInput, AggKind, AggPlan, OutCol};

/// A hidden column: name and type.
fn hidden(plan: &AggPlan, cols: &[ColumnDef]) -> Vec<(String, String)> {
    let mut h = vec![("__pgt_count".to_string(), INT8.to_string())];
    if plan.rescan_all.is_none() {
        for (j, a) in plan.aggs.iter().enumerate() {
            match a.kind {
                AggKind::Sum => {
                    if tracks_special(a, cols) {
                        h.push((format!("__pgt_sum{j}"), cols[a.output].type_name.clone()));
                    }
                    h.push((format!("__pgt_nn{j}"), INT8.into()));
                }
                AggKind::Avg => {
                    h.push((
                        format!("__pgt_sum{j}"),
                        avg_sum_type(&cols[a.output].type_name),
                    ));
                    h.push((format!("__pgt_nn{j}"), INT8.into()));
                }
                AggKind::BoolAnd | AggKind::BoolOr => {
                    h.push((format!("__pgt_t{j}"), INT8.into()));
                    h.push((format!("__pgt_nn{j}"), INT8.into()));
                }
                _ => {}
            }
            if tracks_special(a, cols) {
                for (name, _) in SPECIALS {
                    h.push((format!("__pgt_{name}{j}"), INT8.into()));
                }
            }
            if tracks_scale(a, cols) {
                h.push((format!("__pgt_sc{j}"), INT4.into()));
                h.push((format!("__pgt_scn{j}"), INT8.into()));
            }
        }
    }
    h.push(("__pgt_hash".into(), INT8.into()));
    h
}

/// Whether aggregate `a` keeps the scale state `__pgt_scJ` / `__pgt_scnJ`: SUM and AVG with a
/// `numeric` result over an argument not known to be an integer column. PostgreSQL gives
/// `sum(x)` the largest display scale among the values summed, and `avg(x)` divides that sum by
/// the count (its result scale depends on the sum's), while a running sum keeps the largest
/// scale it has ever seen: the refresh rounds it to the largest scale of the current values
/// (losing no digit). `__pgt_scJ` is that scale (0 without finite values: NaN and infinities,
/// whose `scale()` is NULL, are left out, as in PostgreSQL's own tracking), `__pgt_scnJ` a lower
/// bound of the number of current values that have it (exact unless a re-scan or a delta mixed
/// scales; at least 1 while there is a finite value). Like PostgreSQL's `maxScaleCount` for
/// moving aggregates: the group is re-scanned only when that count may have reached 0, never
/// for a column whose values share one scale (`numeric(p,s)`).
///
/// Not kept when every value has one scale anyway: integer columns, and `numeric(p,s)` columns
/// (the type modifier coerces every value to scale s).
fn tracks_scale(a: &Agg, cols: &[ColumnDef]) -> bool {
    let one_scale = |t: &str| {
        let t = t.to_ascii_lowercase();
        matches!(t.as_str(), "smallint" | "integer" | "bigint") || t.starts_with("numeric(")
    };
    matches!(a.kind, AggKind::Sum | AggKind::Avg)
        && cols[a.output]
            .type_name
            .to_ascii_lowercase()
            .starts_with("numeric")
        && !a.arg_type.as_deref().is_some_and(one_scale)
}

/// The special values of float and numeric arguments, each with the suffix of its count
/// `__pgt_<suffix>J`.
const SPECIALS: [(&str, &str); 3] = [("nan", "NaN"), ("pinf", "Infinity"), ("ninf", "-Infinity")];

/// Whether aggregate `a` keeps the counts of NaN, +Infinity and -Infinity among the current
/// values (`__pgt_nanJ`, `__pgt_pinfJ`, `__pgt_ninfJ`) and a running sum of the finite values
/// only: SUM and AVG with a float or numeric result over an argument not known to be an integer
/// column. A running sum cannot take a special value back (Infinity - Infinity is NaN), and
/// PostgreSQL's result depends on the special values alone, whatever their order: NaN if there
/// is a NaN or both infinities, else the infinity there is (as `numeric_sum`/`numeric_avg` do
/// with their NaNcount/pInfcount/nInfcount, and IEEE arithmetic for float4/float8). The finite
/// sum is the result only when all counts are 0 (and so AVG's non-null count is the finite
/// count). `numeric(p,s)` columns cannot hold infinities, but can hold NaN.
fn tracks_special(a: &Agg, cols: &[ColumnDef]) -> bool {
    special_type(a, cols).is_some()
}

/// The type in which aggregate `a` sums (and recognises the special values of) its argument,
/// when it keeps the special counts (see [`tracks_special`]): the result's type for SUM, the
/// stored sum's for AVG. Casting the argument to it keeps every value (float4 to float8,
/// integers to numeric).
fn special_type(a: &Agg, cols: &[ColumnDef]) -> Option<String> {
    let integer = |t: &str| {
        matches!(
            t.to_ascii_lowercase().as_str(),
            "smallint" | "integer" | "bigint"
        )
    };
    let out = &cols[a.output].type_name;
    let acc = match a.kind {
        AggKind::Sum => out.clone(),
        AggKind::Avg => avg_sum_type(out),
        _ => return None,
    };
    let o = out.to_ascii_lowercase();
    let float_or_numeric = ["numeric", "double", "real", "float"]
        .iter()
        .any(|p| o.starts_with(p));
    (float_or_numeric && !a.arg_type.as_deref().is_some_and(integer)).then_some(acc)
}

/// SQL testing that `value` (already of the aggregate's summing type, or cast to it) is finite.
fn finite(value: &str) -> String {
    format!("{value} NOT IN ('NaN', 'Infinity', '-Infinity')")
}

/// The CASE branches giving a float or numeric SUM/AVG its special value from the counts of
/// NaN, +Infinity and -Infinity values (SQL expressions, in [`SPECIALS`] order), as PostgreSQL
/// computes it.
fn special_whens(counts: &[String; 3], ty: &str) -> String {
    let [nan, pinf, ninf] = counts;
    format!(
        "WHEN {nan} > 0 OR ({pinf} > 0 AND {ninf} > 0) THEN 'NaN'::{ty} WHEN {pinf} > 0 THEN \
         'Infinity'::{ty} WHEN {ninf} > 0 THEN '-Infinity'::{ty}"
    )
}

fn avg_sum_type(out_type: &str) -> String {
    let t = out_type.to_ascii_lowercase();
    if t.starts_with("double") || t.starts_with("real") || t.starts_with("float") {
        FLOAT8.into()
    } else if t.starts_with("interval") {
        INTERVAL.into()
    } else {
        NUMERIC.into()
    }
}

/// The weighted sum of aggregate j's argument over the delta rows (the change to its SUM),
/// without overflow where `sum()` of the source has none. The rows of weight +1 and -1 (nearly
/// all of them) are summed by `sum()` itself, in the accumulator PostgreSQL picks for the
/// argument's type (bigint for int2/int4, numeric for int8), with no arithmetic per row (a
/// product or negation in the argument's type overflows at its limits, and costs time for
/// numeric); the other rows are multiplied in `acc`, the type of the result (SUM) or of the
/// stored sum (AVG), in which an int4 weight times an integer argument cannot overflow. Never
/// NULL: 0 when no row counts.
fn delta_sum(j: usize, fand: &str, acc: &str) -> String {
    let rows = format!("__pgt_a{j} IS NOT NULL{fand}");
    format!(
        "(coalesce(pg_catalog.sum(__pgt_a{j}) FILTER (WHERE __pgt_w = 1 AND {rows}), '0') - \
         coalesce(pg_catalog.sum(__pgt_a{j}) FILTER (WHERE __pgt_w = -1 AND {rows}), '0') + \
         coalesce(pg_catalog.sum(__pgt_w * __pgt_a{j}::{acc}) FILTER (WHERE __pgt_w <> 1 AND __pgt_w <> -1 \
         AND {rows}), '0'))"
    )
}

fn all_columns(plan: &AggPlan, cols: &[ColumnDef]) -> String {
    let mut v: Vec<String> = cols.iter().map(|c| quote_ident(&c.name)).collect();
    v.extend(hidden(plan, cols).into_iter().map(|(n, _)| n));
    v.join(", ")
}

/// CREATE TABLE and CREATE INDEX for grouped storage.
pub fn ddl(storage: &str, cols: &[ColumnDef], plan: &AggPlan) -> Vec<String> {
    let hidden: Vec<String> = hidden(plan, cols)
        .into_iter()
        .map(|(n, t)| format!("{n} {t} NOT NULL"))
        .collect();
    vec![
        format!(
            "CREATE TABLE {storage} ({}, {})",
            col_defs(cols),
            hidden.join(", ")
        ),
        format!("CREATE INDEX ON {storage} (__pgt_hash)"),
    ]
}

/// The grouped query over the sources' new state with all hidden columns, optionally with an
/// extra predicate on the input rows (used to re-scan chosen groups).
fn full_select(rg: &RelGen, cols: &[ColumnDef], plan: &AggPlan, restrict: Option<&str>) -> String {
    match &plan.input {
        AggInput::Grouped {
            block,
            items,
            group_by,
            having,
        } => {
            let (from, _) = rg.from_clause(block, &vec![Version::New; block.factors.len()]);
            let mut select: Vec<String> = items.clone();
            select.push("pg_catalog.count(*) AS __pgt_count".into());
            if plan.rescan_all.is_none() {
                for (j, a) in plan.aggs.iter().enumerate() {
                    let arg = a.arg.clone().unwrap_or_default();
                    let f = a
                        .filter
                        .as_ref()
                        .map(|f| format!(" FILTER (WHERE {f})"))
                        .unwrap_or_default();
                    // The filter together with another condition on the argument.
                    let f_and = |c: &str| match &a.filter {
                        Some(p) => format!(" FILTER (WHERE {c} AND ({p}))"),
                        None => format!(" FILTER (WHERE {c})"),
                    };
                    let special = special_type(a, cols);
                    // The sum of the finite values when the special values are counted apart.
                    let sum = |t: &str| {
                        let f = match &special {
                            Some(acc) => f_and(&finite(&format!("({arg})::{acc}"))),
                            None => f.clone(),
                        };
                        format!("coalesce(pg_catalog.sum({arg}){f}, '0')::{t} AS __pgt_sum{j}")
                    };
                    match a.kind {
                        AggKind::Sum => {
                            if special.is_some() {
                                select.push(sum(&cols[a.output].type_name));
                            }
                            select.push(format!("pg_catalog.count({arg}){f} AS __pgt_nn{j}"));
                        }
                        AggKind::Avg => {
                            select.push(sum(&avg_sum_type(&cols[a.output].type_name)));
                            select.push(format!("pg_catalog.count({arg}){f} AS __pgt_nn{j}"));
                        }
                        AggKind::BoolAnd | AggKind::BoolOr => {
                            let both = match &a.filter {
                                Some(p) => format!("({arg}) IS TRUE AND ({p})"),
                                None => format!("({arg}) IS TRUE"),
                            };
                            select.push(format!(
                                "pg_catalog.count(*) FILTER (WHERE {both}) AS __pgt_t{j}"
                            ));
                            select.push(format!("pg_catalog.count({arg}){f} AS __pgt_nn{j}"));
                        }
                        _ => {}
                    }
                    if let Some(acc) = &special {
                        for (name, value) in SPECIALS {
                            let is = f_and(&format!("({arg})::{acc} = '{value}'"));
                            select.push(format!("pg_catalog.count(*){is} AS __pgt_{name}{j}"));
                        }
                    }
                    if tracks_scale(a, cols) {
                        // The number of values at the largest scale would need a second level of
                        // aggregation: exact when all values have one scale, else 1 (a lower
                        // bound; 0 without finite values).
                        let sc = format!("pg_catalog.scale({arg})");
                        select.push(format!(
                            "coalesce(pg_catalog.max({sc}){f}, 0) AS __pgt_sc{j}"
                        ));
                        select.push(format!(
                            "CASE WHEN pg_catalog.min({sc}){f} < pg_catalog.max({sc}){f} THEN 1 ELSE pg_catalog.count({sc}){f} END \
                             AS __pgt_scn{j}"
                        ));
                    }
                }
            }
            select.push(format!("{} AS __pgt_hash", row_hash(&plan.key_exprs)));
            let mut sql = format!("SELECT {} FROM {from}", select.join(", "));
            let preds: Vec<String> = rg
                .where_new(block)
                .into_iter()
                .chain(restrict.map(str::to_string))
                .collect();
            if !preds.is_empty() {
                sql.push_str(&format!(" WHERE {}", preds.join(" AND ")));
            }
            if !group_by.is_empty() {
                sql.push_str(&format!(" GROUP BY {}", group_by.join(", ")));
            }
            if let Some(h) = having {
                sql.push_str(&format!(" HAVING {h}"));
            }
            sql
        }
        AggInput::Distinct(body) => {
            let keys = &plan.key_exprs;
            let inner = rg.body(body, Version::New, "__pgt_w");
            let mut sql = format!(
                "SELECT {k}, pg_catalog.count(*) AS __pgt_count, {h} AS __pgt_hash FROM ({inner}) AS \
                 __pgt_in({k}, __pgt_w)",
                k = keys.join(", "),
                h = row_hash(keys)
            );
            if let Some(r) = restrict {
                sql.push_str(&format!(" WHERE {r}"));
            }
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
            sql
        }
    }
}

/// FULL refresh of grouped storage.
pub fn full(rg: &RelGen, storage: &str, cols: &[ColumnDef], plan: &AggPlan) -> Vec<String> {
    vec![
        format!("DELETE FROM {storage}"),
        format!(
            "INSERT INTO {storage} ({}) {}",
            all_columns(plan, cols),
            full_select(rg, cols, plan, None)
        ),
    ]
}

/// The delta rows of the grouped input: keys `__pgt_kI`, arguments `__pgt_aJ`, filters
/// `__pgt_fJ`, weight `__pgt_w`.
pub fn input_delta(rg: &RelGen, plan: &AggPlan) -> String {
    match &plan.input {
        AggInput::Grouped { block, .. } => {
            let mut items: Vec<String> = plan
                .key_exprs
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{k} AS __pgt_k{i}"))
                .collect();
            for (j, a) in plan.aggs.iter().enumerate() {
                if let Some(arg) = &a.arg {
                    items.push(format!("{arg} AS __pgt_a{j}"));
                }
                if let Some(f) = &a.filter {
                    items.push(format!("({f}) AS __pgt_f{j}"));
                }
            }
            if items.is_empty() {
                items.push("NULL AS __pgt_none".into());
            }
            format!(
                "SELECT * FROM ({}) AS __pgt_x",
                rg.block_delta(block, Some(&items), "__pgt_w")
            )
        }
        AggInput::Distinct(body) => format!(
            "SELECT * FROM ({}) AS __pgt_x({}, __pgt_w)",
            rg.body(body, Version::Delta, "__pgt_w"),
            plan.key_exprs.join(", ")
        ),
    }
}

/// The new scale state of tracked aggregate j in the merge (see [`tracks_scale`]), and when the
/// group must be re-scanned instead. With M, C the stored scale and count and, over the delta's
/// finite values, Q its largest scale, D the largest of removed rows, L the smallest, N and NEG
/// the net and removed weights: a delta below M leaves the state; one reaching M changes C (by
/// N when all its values are at M, by NEG when it removes some at M, else not at all: a lower
/// bound), and the group is re-scanned when C may reach 0 while values remain; one above M makes
/// Q the scale, with N values when all are at Q (unless they cancel out), at least 1 when no
/// removed row is at Q (else a re-scan). Special values have no scale: without finite values
/// left the state is 0, 0 (as a re-scan finds it).
fn scale_merge(j: usize) -> (String, String, String) {
    let nn_new = finite_count(j);
    let m = format!("coalesce(s.__pgt_sc{j}, 0)");
    let c = format!("coalesce(s.__pgt_scn{j}, 0)");
    let (q, d, l, n, neg) = (
        format!("g.__pgt_sq{j}"),
        format!("g.__pgt_sd{j}"),
        format!("g.__pgt_sl{j}"),
        format!("g.__pgt_sn{j}"),
        format!("g.__pgt_sneg{j}"),
    );
    let at_m = format!("{c} + CASE WHEN {l} = {m} THEN {n} WHEN {d} = {m} THEN {neg} ELSE 0 END");
    let sc = format!(
        "CASE WHEN {nn_new} = 0 THEN 0 WHEN {q} IS NULL OR {q} <= {m} THEN {m} WHEN {l} = {q} \
         AND {n} <= 0 THEN {m} ELSE {q} END"
    );
    let scn = format!(
        "CASE WHEN {nn_new} = 0 THEN 0 WHEN {q} IS NULL OR {q} < {m} THEN {c} WHEN {q} = {m} \
         THEN {at_m} WHEN {l} = {q} THEN CASE WHEN {n} > 0 THEN {n} ELSE {c} END ELSE 1 END"
    );
    let rescan = format!(
        "({nn_new} > 0 AND CASE WHEN {q} IS NULL OR {q} < {m} THEN false WHEN {q} = {m} THEN \
         {at_m} <= 0 WHEN {l} = {q} THEN {n} < 0 ELSE {d} IS NOT NULL AND {d} >= {q} END)"
    );
    (sc, scn, rescan)
}

/// The new count of special value `name` (a suffix of [`SPECIALS`]) of aggregate j in the
/// merge.
fn special_count(j: usize, name: &str) -> String {
    format!("(coalesce(s.__pgt_{name}{j}, 0) + g.__pgt_d{name}{j})")
}

/// The new number of finite values of aggregate j (which keeps the special counts) in the
/// merge: the non-null values less the special ones.
fn finite_count(j: usize) -> String {
    let specials: Vec<String> = SPECIALS
        .iter()
        .map(|(name, _)| format!(" - {}", special_count(j, name)))
        .collect();
    format!(
        "(coalesce(s.__pgt_nn{j}, 0) + g.__pgt_dn{j}{})",
        specials.concat()
    )
}

/// The DIFFERENTIAL refresh: one statement.
pub fn differential(rg: &RelGen, storage: &str, cols: &[ColumnDef], plan: &AggPlan) -> String {
    let keys: Vec<String> = (0..plan.key_exprs.len())
        .map(|i| format!("__pgt_k{i}"))
        .collect();
    let algebraic = plan.rescan_all.is_none();
    // Per-group delta aggregates.
    let mut g_items: Vec<String> = keys.clone();
    g_items.push("coalesce(pg_catalog.sum(__pgt_w), 0)::pg_catalog.int8 AS __pgt_dc".into());
    if algebraic {
        for (j, a) in plan.aggs.iter().enumerate() {
            let fand = if a.filter.is_some() {
                format!(" AND __pgt_f{j}")
            } else {
                String::new()
            };
            let nn = format!(
                "coalesce(pg_catalog.sum(__pgt_w) FILTER (WHERE __pgt_a{j} IS NOT NULL{fand}), 0)::pg_catalog.int8"
            );
            match a.kind {
                AggKind::CountStar => g_items.push(match &a.filter {
                    Some(_) => format!(
                        "coalesce(pg_catalog.sum(__pgt_w) FILTER (WHERE __pgt_f{j}), 0)::pg_catalog.int8 AS __pgt_dv{j}"
                    ),
                    None => format!("coalesce(pg_catalog.sum(__pgt_w), 0)::pg_catalog.int8 AS __pgt_dv{j}"),
                }),
                AggKind::Count => g_items.push(format!("{nn} AS __pgt_dv{j}")),
                AggKind::Sum | AggKind::Avg => {
                    let out = &cols[a.output].type_name;
                    let acc = if a.kind == AggKind::Sum {
                        out.clone()
                    } else {
                        avg_sum_type(out)
                    };
                    // With special values counted apart, the sum of the finite ones.
                    let rows = match special_type(a, cols) {
                        Some(acc) => {
                            format!(" AND {}{fand}", finite(&format!("__pgt_a{j}::{acc}")))
                        }
                        None => fand.clone(),
                    };
                    g_items.push(format!("{} AS __pgt_ds{j}", delta_sum(j, &rows, &acc)));
                    g_items.push(format!("{nn} AS __pgt_dn{j}"));
                    if let Some(acc) = special_type(a, cols) {
                        for (name, value) in SPECIALS {
                            g_items.push(format!(
                                "coalesce(pg_catalog.sum(__pgt_w) FILTER (WHERE __pgt_a{j}::{acc} = \
                                 '{value}'{fand}), 0)::pg_catalog.int8 AS __pgt_d{name}{j}"
                            ));
                        }
                    }
                    if tracks_scale(a, cols) {
                        // The delta's scales: largest (any weight, and removed rows), smallest,
                        // and the net and removed weights of its finite values.
                        let sc = format!("pg_catalog.scale(__pgt_a{j})");
                        let fin = format!("{sc} IS NOT NULL{fand}");
                        g_items.push(format!("pg_catalog.max({sc}) FILTER (WHERE {fin}) AS __pgt_sq{j}"));
                        g_items.push(format!(
                            "pg_catalog.max({sc}) FILTER (WHERE __pgt_w < 0 AND {fin}) AS __pgt_sd{j}"
                        ));
                        g_items.push(format!("pg_catalog.min({sc}) FILTER (WHERE {fin}) AS __pgt_sl{j}"));
                        g_items.push(format!(
                            "coalesce(pg_catalog.sum(__pgt_w) FILTER (WHERE {fin}), 0)::pg_catalog.int8 AS __pgt_sn{j}"
                        ));
                        g_items.push(format!(
                            "coalesce(pg_catalog.sum(__pgt_w) FILTER (WHERE __pgt_w < 0 AND {fin}), \
                             0)::pg_catalog.int8 AS __pgt_sneg{j}"
                        ));
                    }
                }
                AggKind::Min | AggKind::Max => {
                    let f = if a.kind == AggKind::Min {
                        "pg_catalog.min"
                    } else {
                        "pg_catalog.max"
                    };
                    g_items.push(format!(
                        "{f}(__pgt_a{j}) FILTER (WHERE __pgt_w > 0{fand}) AS __pgt_ins{j}"
                    ));
                    g_items.push(format!(
                        "{f}(__pgt_a{j}) FILTER (WHERE __pgt_w < 0{fand}) AS __pgt_del{j}"
                    ));
                }
                AggKind::BoolAnd | AggKind::BoolOr => {
                    g_items.push(format!(
                        "coalesce(pg_catalog.sum(__pgt_w) FILTER (WHERE __pgt_a{j} IS TRUE{fand}), 0)::pg_catalog.int8 AS __pgt_dt{j}"
                    ));
                    g_items.push(format!("{nn} AS __pgt_dn{j}"));
                }
            }
        }
    }
    g_items.push(format!("{} AS __pgt_h", row_hash(&keys)));
    let group_by = if keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", keys.join(", "))
    };
    // Merge with the stored state.
    let key_col = |i: usize| quote_ident(&cols[plan.key_outputs[i]].name);
    // A LATERAL lookup per changed group: an index probe on __pgt_hash, never a scan of the
    // whole storage table.
    let lookup = if keys.is_empty() {
        format!("(SELECT x.ctid AS __pgt_ctid, x.* FROM {storage} x)")
    } else {
        let mut on = "x.__pgt_hash = g.__pgt_h".to_string();
        for (i, k) in keys.iter().enumerate() {
            on.push_str(&format!(" AND x.{} IS NOT DISTINCT FROM g.{k}", key_col(i)));
        }
        // OFFSET 0 keeps PostgreSQL from flattening the lookup into a hash join.
        format!("(SELECT x.ctid AS __pgt_ctid, x.* FROM {storage} x WHERE {on} OFFSET 0)")
    };
    let mut m_items: Vec<String> = keys.iter().map(|k| format!("g.{k}")).collect();
    m_items.push("g.__pgt_h AS __pgt_hash".into());
    m_items.push("s.__pgt_ctid AS __pgt_old".into());
    m_items.push("coalesce(s.__pgt_count, 0) + g.__pgt_dc AS __pgt_count".into());
    let mut rescan: Vec<String> = Vec::new();
    if !algebraic {
        rescan.push("true".into());
    }
    let mut out_exprs: Vec<String> = Vec::new();
    for (c, oc) in plan.outputs.iter().enumerate() {
        let col = quote_ident(&cols[c].name);
        let ty = &cols[c].type_name;
        let e = match oc {
            OutCol::Key(i) => format!("g.__pgt_k{i}"),
            OutCol::Expr => format!("NULL::{ty}"),
            OutCol::Agg(_) if !algebraic => format!("NULL::{ty}"),
            OutCol::Agg(j) => {
                let j = *j;
                let nn_new = format!("(coalesce(s.__pgt_nn{j}, 0) + g.__pgt_dn{j})");
                match plan.aggs[j].kind {
                    AggKind::CountStar | AggKind::Count => {
                        format!("(coalesce(s.{col}, 0) + g.__pgt_dv{j})::{ty}")
                    }
                    // With special counts: in the final SELECT, from the merged state.
                    AggKind::Sum if tracks_special(&plan.aggs[j], cols) => {
                        m_items.push(format!(
                            "coalesce(s.__pgt_sum{j} + g.__pgt_ds{j}, s.__pgt_sum{j}, \
                             g.__pgt_ds{j}, '0'::{ty}) AS __pgt_sum{j}"
                        ));
                        format!("NULL::{ty}")
                    }
                    AggKind::Sum => format!(
                        "(CASE WHEN {nn_new} = 0 THEN NULL ELSE coalesce(s.{col} + g.__pgt_ds{j}, \
                         s.{col}, g.__pgt_ds{j}) END)::{ty}"
                    ),
                    AggKind::Avg => {
                        let st = avg_sum_type(ty);
                        let sum_new = format!(
                            "coalesce(s.__pgt_sum{j} + g.__pgt_ds{j}, s.__pgt_sum{j}, g.__pgt_ds{j}::{st}, '0'::{st})"
                        );
                        m_items.push(format!("{sum_new} AS __pgt_sum{j}"));
                        m_items.push(format!("{nn_new} AS __pgt_nn{j}"));
                        if tracks_special(&plan.aggs[j], cols) {
                            // Divided in the final SELECT (after rounding, with a scale state).
                            format!("NULL::{ty}")
                        } else {
                            let div = if st == NUMERIC {
                                format!(
                                    "{sum_new}::pg_catalog.numeric / {nn_new}::pg_catalog.numeric"
                                )
                            } else {
                                format!("{sum_new} / {nn_new}::pg_catalog.float8")
                            };
                            format!("(CASE WHEN {nn_new} = 0 THEN NULL ELSE {div} END)::{ty}")
                        }
                    }
                    AggKind::Min | AggKind::Max => {
                        let (f, cmp, beyond) = if plan.aggs[j].kind == AggKind::Min {
                            ("least", "<=", "<")
                        } else {
                            ("greatest", ">=", ">")
                        };
                        // The group is read again when a deleted value may have been its
                        // extremum, unless the inserted extremum is beyond every deleted value
                        // (so no delete of the same value cancels it: the delta is not
                        // consolidated) and reaches the stored one: then it is the new
                        // extremum, every remaining value being on the stored one's side.
                        rescan.push(format!(
                            "(g.__pgt_del{j} IS NOT NULL AND (s.{col} IS NULL OR g.__pgt_del{j} {cmp} s.{col}) \
                             AND NOT coalesce(g.__pgt_ins{j} {beyond} g.__pgt_del{j} \
                             AND g.__pgt_ins{j} {cmp} s.{col}, false))"
                        ));
                        format!("{f}(s.{col}, g.__pgt_ins{j})::{ty}")
                    }
                    AggKind::BoolAnd | AggKind::BoolOr => {
                        let t_new = format!("(coalesce(s.__pgt_t{j}, 0) + g.__pgt_dt{j})");
                        m_items.push(format!("{t_new} AS __pgt_t{j}"));
                        m_items.push(format!("{nn_new} AS __pgt_nn{j}"));
                        let v = if plan.aggs[j].kind == AggKind::BoolAnd {
                            format!("{t_new} = {nn_new}")
                        } else {
                            format!("{t_new} > 0")
                        };
                        format!("(CASE WHEN {nn_new} = 0 THEN NULL ELSE {v} END)")
                    }
                }
            }
        };
        out_exprs.push(e);
    }
    // Hidden state for SUM (non-null count) not yet added above, and the scale state.
    if algebraic {
        for (j, a) in plan.aggs.iter().enumerate() {
            if a.kind == AggKind::Sum {
                m_items.push(format!(
                    "(coalesce(s.__pgt_nn{j}, 0) + g.__pgt_dn{j}) AS __pgt_nn{j}"
                ));
            }
            if tracks_special(a, cols) {
                for (name, _) in SPECIALS {
                    m_items.push(format!("{} AS __pgt_{name}{j}", special_count(j, name)));
                }
            }
            if tracks_scale(a, cols) {
                let (sc, scn, rescan_j) = scale_merge(j);
                m_items.push(format!("{sc} AS __pgt_sc{j}"));
                m_items.push(format!("{scn} AS __pgt_scn{j}"));
                rescan.push(rescan_j);
            }
        }
    }
    for (c, e) in out_exprs.iter().enumerate() {
        m_items.push(format!("{e} AS __pgt_o{c}"));
    }
    let rescan_expr = if rescan.is_empty() {
        "false".to_string()
    } else {
        rescan.join(" OR ")
    };
    m_items.push(format!("{rescan_expr} AS __pgt_rescan"));

    // Rows to insert from the merge: outputs then hidden columns, in storage order. A float or
    // numeric SUM/AVG: the special value its counts give, else the finite sum (for AVG divided
    // by the count, then all values are finite). A numeric SUM, and the sum of a numeric AVG, at
    // the largest scale of the current values (the values are exact: no digit is lost); AVG
    // divided as PostgreSQL's numeric_avg divides.
    let mut ins: Vec<String> = (0..cols.len())
        .map(|c| match plan.outputs[c] {
            OutCol::Agg(j) if algebraic && tracks_special(&plan.aggs[j], cols) => {
                let a = &plan.aggs[j];
                let ty = &cols[c].type_name;
                let sum = if tracks_scale(a, cols) {
                    format!("pg_catalog.round(__pgt_sum{j}, __pgt_sc{j})")
                } else {
                    format!("__pgt_sum{j}")
                };
                let value = match a.kind {
                    AggKind::Avg if avg_sum_type(ty) == NUMERIC => {
                        format!("{sum}::pg_catalog.numeric / __pgt_nn{j}::pg_catalog.numeric")
                    }
                    AggKind::Avg => format!("{sum} / __pgt_nn{j}::pg_catalog.float8"),
                    _ => sum,
                };
                let counts = SPECIALS.map(|(name, _)| format!("__pgt_{name}{j}"));
                format!(
                    "(CASE WHEN __pgt_nn{j} = 0 THEN NULL {} ELSE {value} END)::{ty}",
                    special_whens(&counts, ty)
                )
            }
            _ => format!("__pgt_o{c}"),
        })
        .collect();
    ins.extend(hidden(plan, cols).into_iter().map(|(n, _)| {
        match n
            .strip_prefix("__pgt_sum")
            .and_then(|j| j.parse::<usize>().ok())
        {
            Some(j) if tracks_scale(&plan.aggs[j], cols) => {
                format!("pg_catalog.round({n}, __pgt_sc{j})")
            }
            _ => n,
        }
    }));
    let keep = if keys.is_empty() {
        "NOT __pgt_rescan".to_string()
    } else {
        "NOT __pgt_rescan AND __pgt_count > 0".to_string()
    };
    let mut sql = format!(
        "WITH __pgt_d AS ({d}), __pgt_g AS (SELECT {g} FROM __pgt_d{group_by}), \
         __pgt_m AS (SELECT {m} FROM __pgt_g g LEFT JOIN LATERAL {lookup} s ON true)",
        d = input_delta(rg, plan),
        g = g_items.join(", "),
        m = m_items.join(", "),
    );
    let needs_rescan = !rescan.is_empty();
    if needs_rescan {
        let names = all_columns(plan, cols);
        let exact: String = (0..keys.len())
            .map(|i| format!(" AND m.__pgt_k{i} IS NOT DISTINCT FROM r.{}", key_col(i)))
            .collect();
        // Groups to re-scan, read from the sources' new state. Uncorrelated conjuncts are
        // one-time filters: when no group needs a re-scan, the sources are never read. Keys
        // without NULLs are matched by equality (index-friendly semi-join); keys with a NULL
        // by the key hash.
        let full = if keys.is_empty() {
            format!(
                "SELECT * FROM ({}) AS __pgt_l WHERE (SELECT coalesce(pg_catalog.bool_or(__pgt_rescan), \
                 false) FROM __pgt_m)",
                full_select(rg, cols, plan, None)
            )
        } else {
            let key_exprs = &plan.key_exprs;
            let all_set = keys
                .iter()
                .map(|k| format!("{k} IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let any_null_src = format!(
                "NOT ({})",
                key_exprs
                    .iter()
                    .map(|k| format!("({k}) IS NOT NULL"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            );
            // Groups without NULL keys: one pass over the sources restricted to the keys to
            // re-scan, never one scan per group. Each key column is first compared with the
            // array of that column's keys (`= ANY (ARRAY(...))`: PostgreSQL expects a few
            // values and probes an index on the key column where there is one, or filters a
            // single scan), then the keys as a whole by a semi-join.
            let prefilter = key_exprs
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    format!(
                        "({k}) = ANY (ARRAY(SELECT DISTINCT __pgt_k{i} FROM __pgt_m \
                         WHERE __pgt_rescan AND {all_set}))"
                    )
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            let by_key = full_select(
                rg,
                cols,
                plan,
                Some(&format!(
                    "{prefilter} AND ({}) IN (SELECT {} FROM __pgt_m WHERE __pgt_rescan AND {all_set})",
                    key_exprs
                        .iter()
                        .map(|k| format!("({k})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    keys.join(", ")
                )),
            );
            // Groups with a NULL key: matched by key hash, read only when there are any.
            let null_restrict = format!(
                "(SELECT coalesce(pg_catalog.bool_or(__pgt_rescan AND NOT ({all_set})), false) FROM \
                 __pgt_m) AND {any_null_src} AND {} IN (SELECT __pgt_hash FROM __pgt_m WHERE \
                 __pgt_rescan AND NOT ({all_set}))",
                row_hash(key_exprs)
            );
            format!(
                "({by_key}) UNION ALL ({})",
                full_select(rg, cols, plan, Some(&null_restrict))
            )
        };
        sql.push_str(&format!(
            ", __pgt_r AS (SELECT r.* FROM ({full}) AS r({names}) WHERE EXISTS (SELECT 1 FROM \
             __pgt_m m WHERE m.__pgt_rescan{exact}))"
        ));
    }
    sql.push_str(&format!(
        ", __pgt_del AS (DELETE FROM {storage} WHERE ctid = ANY (ARRAY(SELECT __pgt_old FROM \
         __pgt_m WHERE __pgt_old IS NOT NULL))) INSERT INTO {storage} ({all}) SELECT {ins} FROM \
         __pgt_m WHERE {keep}",
        all = all_columns(plan, cols),
        ins = ins.join(", "),
    ));
    if needs_rescan {
        sql.push_str(" UNION ALL SELECT * FROM __pgt_r");
    }
    sql
}
