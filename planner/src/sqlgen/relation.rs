//! SQL for the three weighted versions of a body: `new` (the sources as of the refresh
//! snapshot), `old` (before the consumed changes: current rows with weight +1 plus the delta
//! with its weight negated) and `delta` (the changes, by the telescoping join rule
//! d(F1..Fn) = sum over i of F1new..F(i-1)new dFi F(i+1)old..Fnold).

use crate::input::SourceRelation;
use crate::query::model::{Block, Body, Factor, FactorSource};

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
            Body::Block(b) => match version {
                Version::New => self.block(b, &vec![Version::New; b.factors.len()], None, weight),
                Version::Old => self.block(b, &vec![Version::Old; b.factors.len()], None, weight),
                Version::Delta => self.block_delta(b, None, weight),
            },
            Body::UnionAll(parts) => parts
                .iter()
                .map(|p| format!("({})", self.body(p, version, weight)))
                .collect::<Vec<_>>()
                .join(" UNION ALL "),
        }
    }

    /// The delta of a block: one term per factor, joined by UNION ALL. `items` replaces the
    /// block's select items when given.
    pub fn block_delta(&self, b: &Block, items: Option<&[String]>, weight: &str) -> String {
        let n = b.factors.len();
        let terms: Vec<String> = (0..n)
            .filter(|&i| match self.only {
                None => true,
                Some(k) => reads(&b.factors[i], k),
            })
            .map(|i| {
                let versions: Vec<Version> = (0..n)
                    .map(|j| match j.cmp(&i) {
                        std::cmp::Ordering::Less => Version::New,
                        std::cmp::Ordering::Equal => Version::Delta,
                        std::cmp::Ordering::Greater => Version::Old,
                    })
                    .collect();
                self.block(b, &versions, items, weight)
            })
            .collect();
        if terms.is_empty() {
            // No factor reads the source: an empty delta with the right columns.
            let versions = vec![Version::New; n];
            return format!("{} LIMIT 0", self.block(b, &versions, items, weight));
        }
        terms.join(" UNION ALL ")
    }

    /// One weighted SELECT of a block with each factor in the given version.
    pub fn block(
        &self,
        b: &Block,
        versions: &[Version],
        items: Option<&[String]>,
        weight: &str,
    ) -> String {
        let (from, weights) = self.from_clause(b, versions);
        let w = if weights.is_empty() {
            "1".to_string()
        } else {
            weights.join(" * ")
        };
        let items = items.unwrap_or(&b.items).join(", ");
        let mut sql = format!("SELECT {items}, {w} AS {weight} FROM {from}");
        if let Some(p) = &b.where_sql {
            sql.push_str(" WHERE ");
            sql.push_str(p);
        }
        sql
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
    }
}

fn body_reads(b: &Body, k: usize) -> bool {
    match b {
        Body::Block(b) => b.factors.iter().any(|f| reads(f, k)),
        Body::UnionAll(v) => v.iter().any(|b| body_reads(b, k)),
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
                }
            }
        }
        Body::UnionAll(v) => v.iter().for_each(|b| sources_of(b, out)),
    }
}
