//! SQL for the three weighted versions of a body: `new` (the sources as of the refresh
//! snapshot), `old` (before the consumed changes: current rows with weight +1 plus the delta
//! with its weight negated) and `delta` (the changes, by the telescoping join rule
//! d(F1..Fn) = sum over i of F1new..F(i-1)new dFi F(i+1)old..Fnold).

use crate::input::SourceRelation;
use crate::query::model::{
    AggInput, AggKind, Block, Body, Factor, FactorSource, GroupedBody, OutCol, Pred, SetAllBody,
};

/// How a semi/anti-join predicate is evaluated in one SELECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PredVersion {
    /// Against the subquery's new state.
    New,
    /// Against its old state.
    Old,
    /// Rows whose predicate value may have changed, weighted by new minus old.
    Changed,
}

/// Which version of a relation expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// As of the refresh snapshot.
    New,
    /// Before the consumed changes.
    Old,
    /// The consumed changes.
    Delta,
}

/// Generates version SQL against the caller's relations.
pub struct RelGen<'a> {
    /// The caller's source relations.
    pub relations: &'a [SourceRelation],
    /// When set, delta terms are generated only for changes of this source (for explain).
    pub only: Option<usize>,
}

impl RelGen<'_> {
    /// SQL of `body` in `version`: its columns followed by a weight column named `weight`.
    pub fn body(&self, body: &Body, version: Version, weight: &str) -> String {
        match body {
            Body::Block(b) => {
                let pv = match version {
                    Version::Old => PredVersion::Old,
                    _ => PredVersion::New,
                };
                if version == Version::Old && !b.variants.is_empty() {
                    return b
                        .variants
                        .iter()
                        .map(|v| {
                            let sql = self.select(
                                v,
                                &vec![Version::Old; v.factors.len()],
                                &vec![PredVersion::Old; v.preds.len()],
                                None,
                                weight,
                            );
                            format!("({sql})")
                        })
                        .collect::<Vec<_>>()
                        .join(" UNION ALL ");
                }
                match version {
                    Version::New | Version::Old => self.select(
                        b,
                        &vec![version; b.factors.len()],
                        &vec![pv; b.preds.len()],
                        None,
                        weight,
                    ),
                    Version::Delta => self.block_delta(b, None, weight),
                }
            }
            Body::UnionAll(parts) => parts
                .iter()
                .map(|p| format!("({})", self.body(p, version, weight)))
                .collect::<Vec<_>>()
                .join(" UNION ALL "),
            Body::Grouped(g) => self.grouped(g, version, weight),
            Body::SetAll(x) => self.set_all(x, version, weight),
        }
    }

    /// INTERSECT ALL / EXCEPT ALL: per distinct row, the multiplicity from the two sides'
    /// counts (sums of weights); the delta is new minus old multiplicity for the rows whose
    /// hash appears in either side's delta (a colliding unchanged row contributes 0).
    fn set_all(&self, x: &SetAllBody, version: Version, weight: &str) -> String {
        let n = x.names.len();
        let cols: Vec<String> = (0..n).map(|i| format!("__pgt_c{i}")).collect();
        let list = cols.join(", ");
        let mult = if x.intersect {
            "least(coalesce(sum(__pgt_sw) FILTER (WHERE __pgt_side = 0), 0), \
             coalesce(sum(__pgt_sw) FILTER (WHERE __pgt_side = 1), 0))"
        } else {
            "greatest(coalesce(sum(__pgt_sw) FILTER (WHERE __pgt_side = 0), 0) - \
             coalesce(sum(__pgt_sw) FILTER (WHERE __pgt_side = 1), 0), 0)"
        };
        let counts = |v: Version, restrict: &str| {
            format!(
                "SELECT {list}, {mult} AS __pgt_m FROM (SELECT __pgt_l.*, 0 AS __pgt_side FROM \
                 ({l}) AS __pgt_l({list}, __pgt_sw) UNION ALL SELECT __pgt_r.*, 1 FROM ({r}) \
                 AS __pgt_r({list}, __pgt_sw)) AS __pgt_both {restrict} GROUP BY {list}",
                l = self.body(&x.left, v, "__pgt_sw"),
                r = self.body(&x.right, v, "__pgt_sw"),
            )
        };
        let named: Vec<String> = cols
            .iter()
            .zip(&x.names)
            .map(|(c, nm)| format!("{c} AS {}", crate::api_call::quote_ident(nm)))
            .collect();
        let expand = |v: Version| {
            format!(
                "SELECT {}, 1 AS {weight} FROM ({}) AS __pgt_cnt CROSS JOIN LATERAL \
                 generate_series(1, __pgt_cnt.__pgt_m)",
                named.join(", "),
                counts(v, "")
            )
        };
        match version {
            Version::New | Version::Old => expand(version),
            Version::Delta => {
                let hash = super::row_hash(&cols);
                let restrict = format!(
                    "WHERE {hash} IN (SELECT {hash} FROM ({}) AS __pgt_dl({list}, __pgt_sw) \
                     UNION ALL SELECT {hash} FROM ({}) AS __pgt_dr({list}, __pgt_sw))",
                    self.body(&x.left, Version::Delta, "__pgt_sw"),
                    self.body(&x.right, Version::Delta, "__pgt_sw"),
                );
                format!(
                    "SELECT {}, sum(__pgt_dm)::int AS {weight} FROM (SELECT {list}, __pgt_m AS \
                     __pgt_dm FROM ({}) AS __pgt_cn UNION ALL SELECT {list}, -__pgt_m FROM ({}) \
                     AS __pgt_co) AS __pgt_dd GROUP BY {list} HAVING sum(__pgt_dm) <> 0",
                    named.join(", "),
                    counts(Version::New, &restrict),
                    counts(Version::Old, &restrict),
                )
            }
        }
    }

    /// A grouped subquery in a version. Its input is projected to keys `__pgt_kI`, arguments
    /// `__pgt_aJ` and filters `__pgt_fJ`; the aggregates are applied to that projection. The
    /// old state regroups the input's old rows expanded from their net weights; the delta is
    /// +1 for the new and -1 for the old rows of every group whose key hash appears in the
    /// input's delta (a colliding unchanged group cancels out).
    fn grouped(&self, g: &GroupedBody, version: Version, weight: &str) -> String {
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
        let keys: Vec<String> = (0..plan.key_exprs.len())
            .map(|i| format!("__pgt_k{i}"))
            .collect();
        let outputs: Vec<String> = plan
            .outputs
            .iter()
            .zip(&g.names)
            .map(|(o, name)| {
                let e = match o {
                    OutCol::Key(i) => format!("__pgt_k{i}"),
                    OutCol::Agg(j) => {
                        let a = &plan.aggs[*j];
                        let f = if a.filter.is_some() {
                            format!(" FILTER (WHERE __pgt_f{j})")
                        } else {
                            String::new()
                        };
                        let func = match a.kind {
                            AggKind::CountStar => "count(*)".to_string(),
                            AggKind::Count => format!("count(__pgt_a{j})"),
                            AggKind::Sum => format!("sum(__pgt_a{j})"),
                            AggKind::Avg => format!("avg(__pgt_a{j})"),
                            AggKind::Min => format!("min(__pgt_a{j})"),
                            AggKind::Max => format!("max(__pgt_a{j})"),
                            AggKind::BoolAnd => format!("bool_and(__pgt_a{j})"),
                            AggKind::BoolOr => format!("bool_or(__pgt_a{j})"),
                        };
                        format!("{func}{f}")
                    }
                    OutCol::Expr => "NULL".into(),
                };
                format!("{e} AS {}", crate::api_call::quote_ident(name))
            })
            .collect();
        let n = block.factors.len();
        let m = block.preds.len();
        let new_input = self.select(
            block,
            &vec![Version::New; n],
            &vec![PredVersion::New; m],
            Some(&proj),
            "__pgt_iw",
        );
        let old_input = self.select(
            block,
            &vec![Version::Old; n],
            &vec![PredVersion::Old; m],
            Some(&proj),
            "__pgt_iw",
        );
        let list = cols.join(", ");
        let old_bag = |restrict: &str| {
            format!(
                "SELECT {list} FROM (SELECT {list}, sum(__pgt_iw) AS __pgt_m FROM ({old_input}) \
                 AS __pgt_o {restrict} GROUP BY {list} HAVING sum(__pgt_iw) > 0) AS __pgt_e \
                 CROSS JOIN LATERAL generate_series(1, __pgt_e.__pgt_m)"
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
                "SELECT {}, {w} AS {weight} FROM ({input}) AS __pgt_in{group_by}",
                outputs.join(", "),
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
                let hash = super::row_hash(&keys);
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

    /// The delta of a block: one term per factor and one per semi/anti-join predicate, joined
    /// by UNION ALL. `items` replaces the block's select items when given.
    pub fn block_delta(&self, b: &Block, items: Option<&[String]>, weight: &str) -> String {
        let n = b.factors.len();
        let m = b.preds.len();
        let wanted_f = |i: usize| match self.only {
            None => true,
            Some(k) => reads(&b.factors[i], k),
        };
        let wanted_p = |i: usize| match self.only {
            None => true,
            Some(k) => body_reads(&b.preds[i].body, k),
        };
        if !b.variants.is_empty() {
            return b
                .variants
                .iter()
                .map(|v| self.block_delta(v, items, weight))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
        }
        let is_null_row = |i: usize| matches!(b.factors[i].source, FactorSource::NullRow(_));
        let mut terms: Vec<String> = (0..n)
            .filter(|&i| wanted_f(i) && !is_null_row(i))
            .map(|i| {
                let versions: Vec<Version> = (0..n)
                    .map(|j| match j.cmp(&i) {
                        std::cmp::Ordering::Less => Version::New,
                        std::cmp::Ordering::Equal => Version::Delta,
                        std::cmp::Ordering::Greater => Version::Old,
                    })
                    .collect();
                self.select(b, &versions, &vec![PredVersion::Old; m], items, weight)
            })
            .collect();
        for p in (0..m).filter(|&p| wanted_p(p)) {
            let pv: Vec<PredVersion> = (0..m)
                .map(|j| match j.cmp(&p) {
                    std::cmp::Ordering::Less => PredVersion::New,
                    std::cmp::Ordering::Equal => PredVersion::Changed,
                    std::cmp::Ordering::Greater => PredVersion::Old,
                })
                .collect();
            terms.push(self.select(b, &vec![Version::New; n], &pv, items, weight));
        }
        if terms.is_empty() {
            // Nothing in the block reads the source: an empty delta with the right columns.
            let sql = self.select(
                b,
                &vec![Version::New; n],
                &vec![PredVersion::New; m],
                items,
                weight,
            );
            return format!("{sql} LIMIT 0");
        }
        terms.join(" UNION ALL ")
    }

    /// One weighted SELECT of a block with each factor and predicate in the given version.
    fn select(
        &self,
        b: &Block,
        fv: &[Version],
        pv: &[PredVersion],
        items: Option<&[String]>,
        weight: &str,
    ) -> String {
        let (from, mut weights) = self.from_clause(b, fv);
        let mut conds: Vec<String> = b.where_sql.iter().map(|w| format!("({w})")).collect();
        for (p, v) in b.preds.iter().zip(pv) {
            match v {
                PredVersion::New => conds.push(self.pred_new(p)),
                PredVersion::Old => conds.push(self.pred_old(p)),
                PredVersion::Changed => {
                    // The subquery goes directly into EXISTS, with its correlation in its
                    // WHERE, so PostgreSQL can turn it into a semi-join driven by the delta.
                    conds.push(format!(
                        "EXISTS ({})",
                        self.body(&p.body, Version::Delta, "__pgt_ws")
                    ));
                    // Evaluated per affected row: OFFSET 0 keeps PostgreSQL from hashing the
                    // whole subquery relation instead.
                    weights.push(format!(
                        "(({})::int - ({})::int)",
                        self.pred_new_fenced(p),
                        self.pred_old(p)
                    ));
                }
            }
        }
        let all_new =
            fv.iter().all(|v| *v == Version::New) && pv.iter().all(|v| *v == PredVersion::New);
        // Every row of a new state has weight 1 (and an outer join's padded side has none).
        let w = if weights.is_empty() || all_new {
            "1".to_string()
        } else {
            weights.join(" * ")
        };
        let items = items.unwrap_or(&b.items).join(", ");
        let mut sql = format!("SELECT {items}, {w} AS {weight} FROM {from}");
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql
    }

    /// The WHERE condition of a block over the sources' new state (predicates included).
    pub fn where_new(&self, b: &Block) -> Option<String> {
        let conds: Vec<String> = b
            .where_sql
            .iter()
            .map(|w| format!("({w})"))
            .chain(b.preds.iter().map(|p| self.pred_new(p)))
            .collect();
        (!conds.is_empty()).then(|| conds.join(" AND "))
    }

    fn pred_new(&self, p: &Pred) -> String {
        format!(
            "{}EXISTS ({})",
            if p.negated { "NOT " } else { "" },
            self.body(&p.body, Version::New, "__pgt_ws"),
        )
    }

    fn pred_new_fenced(&self, p: &Pred) -> String {
        format!(
            "{}EXISTS (SELECT * FROM ({}) AS __pgt_e{} OFFSET 0)",
            if p.negated { "NOT " } else { "" },
            self.body(&p.body, Version::New, "__pgt_ws"),
            p.id
        )
    }

    /// Existence in the old state: the weights of matching old rows sum to their (non-negative)
    /// multiplicities, so the sum is positive exactly when a match existed.
    fn pred_old(&self, p: &Pred) -> String {
        format!(
            "((SELECT coalesce(sum(__pgt_o{id}.__pgt_ws), 0) FROM ({sql}) AS __pgt_o{id}) {cmp} 0)",
            id = p.id,
            sql = self.body(&p.body, Version::Old, "__pgt_ws"),
            cmp = if p.negated { "=" } else { ">" }
        )
    }

    /// A block's FROM clause with each factor in the given version, and the weight columns the
    /// factors carry.
    pub fn from_clause(&self, b: &Block, versions: &[Version]) -> (String, Vec<String>) {
        let mut from = b.from_sql.clone();
        let mut weights = Vec::new();
        for (f, v) in b.factors.iter().zip(versions) {
            let (text, weighted) = self.factor(f, *v);
            if weighted {
                weights.push(f.weight());
            }
            from = from.replacen(&f.placeholder(), &text, 1);
        }
        (from, weights)
    }

    /// The text replacing a factor's placeholder, and whether it carries a weight column.
    fn factor(&self, f: &Factor, v: Version) -> (String, bool) {
        match &f.source {
            FactorSource::Base(idx) => {
                let rel = &self.relations[*idx];
                let cols = column_list(f);
                let w = f.weight();
                let delta = rel.delta.as_deref().unwrap_or("(SELECT NULL WHERE false)");
                match v {
                    Version::New => (rel.current.clone(), false),
                    Version::Delta => (
                        format!("(SELECT {cols}, __pgt_weight AS {w} FROM {delta})"),
                        true,
                    ),
                    Version::Old => (
                        format!(
                            "(SELECT {cols}, 1 AS {w} FROM {} UNION ALL \
                             SELECT {cols}, -__pgt_weight AS {w} FROM {delta})",
                            rel.current
                        ),
                        true,
                    ),
                }
            }
            FactorSource::Derived(body) => (format!("({})", self.body(body, v, &f.weight())), true),
            FactorSource::NullRow(src) => (
                format!(
                    "(SELECT __pgt_n.* FROM (SELECT 1) AS __pgt_one LEFT JOIN {} AS __pgt_n ON \
                     false)",
                    self.source_new(src, f)
                ),
                false,
            ),
        }
    }
}

impl RelGen<'_> {
    /// A factor source's new state as a relation (for null-padding: only its columns' types
    /// matter).
    fn source_new(&self, src: &FactorSource, f: &Factor) -> String {
        match src {
            FactorSource::Base(idx) => self.relations[*idx].current.clone(),
            FactorSource::Derived(body) => {
                format!("({})", self.body(body, Version::New, &f.weight()))
            }
            FactorSource::NullRow(inner) => self.source_new(inner, f),
        }
    }
}

fn column_list(f: &Factor) -> String {
    f.columns
        .iter()
        .map(|c| crate::api_call::quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a factor reads source `k`, directly or inside a subquery.
fn reads(f: &Factor, k: usize) -> bool {
    match &f.source {
        FactorSource::Base(i) => *i == k,
        FactorSource::Derived(b) => body_reads(b, k),
        FactorSource::NullRow(_) => false,
    }
}

fn body_reads(b: &Body, k: usize) -> bool {
    match b {
        Body::Block(b) => {
            b.factors.iter().any(|f| reads(f, k)) || b.preds.iter().any(|p| body_reads(&p.body, k))
        }
        Body::UnionAll(v) => v.iter().any(|b| body_reads(b, k)),
        Body::Grouped(g) => match &g.plan.input {
            AggInput::Grouped { block, .. } => body_reads(&Body::Block(block.clone()), k),
            AggInput::Distinct(b) => body_reads(b, k),
        },
        Body::SetAll(x) => body_reads(&x.left, k) || body_reads(&x.right, k),
    }
}

/// The source indexes a body reads.
pub fn sources_of(b: &Body, out: &mut Vec<usize>) {
    match b {
        Body::Block(b) => {
            for f in &b.factors {
                match &f.source {
                    FactorSource::Base(i) => out.push(*i),
                    FactorSource::Derived(d) => sources_of(d, out),
                    FactorSource::NullRow(_) => {}
                }
            }
            for v in &b.variants {
                sources_of(&Body::Block(Box::new(v.clone())), out);
            }
            for p in &b.preds {
                sources_of(&p.body, out);
            }
        }
        Body::UnionAll(v) => v.iter().for_each(|b| sources_of(b, out)),
        Body::Grouped(g) => match &g.plan.input {
            AggInput::Grouped { block, .. } => sources_of(&Body::Block(block.clone()), out),
            AggInput::Distinct(b) => sources_of(b, out),
        },
        Body::SetAll(x) => {
            sources_of(&x.left, out);
            sources_of(&x.right, out);
        }
    }
}
