//! SQL for the three weighted versions of a body: `new` (the sources as of the refresh
//! snapshot), `old` (before the consumed changes: current rows with weight +1 plus the delta
//! with its weight negated) and `delta` (the changes, by the telescoping join rule
//! d(F1..Fn) = sum over i of F1new..F(i-1)new dFi F(i+1)old..Fnold).

mod grouped;
mod set_all;

use crate::input::SourceRelation;
use crate::query::model::{
    AggInput, AggKind, Block, Body, Factor, FactorSource, GroupedBody, Pred, SetAllBody,
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
                match version {
                    Version::Old => self.block_old(b, None, weight),
                    Version::New => self.select(
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

    /// The old state of a block, each row with its weight. A block with outer joins is the
    /// union of its inner-join variants (each padded side an anti-join): an outer join over
    /// weighted relations is not linear in the weights (a padded row has no weight, and a
    /// match whose weights cancel out still suppresses the padded row), while inner joins and
    /// anti-joins that test the summed weight are. `items` replaces the select items.
    pub fn block_old(&self, b: &Block, items: Option<&[String]>, weight: &str) -> String {
        if b.variants.is_empty() {
            return self.select(
                b,
                &vec![Version::Old; b.factors.len()],
                &vec![PredVersion::Old; b.preds.len()],
                items,
                weight,
            );
        }
        b.variants
            .iter()
            .map(|v| format!("({})", self.block_old(v, items, weight)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
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
        let is_null_row = |i: usize| {
            matches!(
                b.factors[i].source,
                FactorSource::NullRow(_) | FactorSource::Constant
            )
        };
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
                        "(({})::pg_catalog.int4 - ({})::pg_catalog.int4)",
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
            "((SELECT coalesce(pg_catalog.sum(__pgt_o{id}.__pgt_ws), 0) FROM ({sql}) AS __pgt_o{id}) {cmp} 0)",
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
                // A hole for the engine to fill (see `crate::statement`).
                let delta = match rel.delta_key {
                    Some(key) => crate::statement::hole(key),
                    None => "(SELECT NULL WHERE false)".to_string(),
                };
                match v {
                    Version::New => (rel.current.clone(), false),
                    Version::Delta => (
                        format!("(SELECT {cols}, __pgt_weight AS {w} FROM {delta})"),
                        true,
                    ),
                    Version::Old => (
                        format!(
                            "(SELECT {cols}, 1 AS {w} FROM {} AS __pgt_cur UNION ALL \
                             SELECT {cols}, -__pgt_weight AS {w} FROM {delta})",
                            rel.current
                        ),
                        true,
                    ),
                }
            }
            FactorSource::Derived(body) => (format!("({})", self.body(body, v, &f.weight())), true),
            // Kept as written in the FROM clause (its placeholder does not occur there).
            FactorSource::Constant => (f.placeholder(), false),
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
            FactorSource::Constant => "(SELECT WHERE false)".into(),
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
        FactorSource::NullRow(_) | FactorSource::Constant => false,
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
                    FactorSource::NullRow(_) | FactorSource::Constant => {}
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
