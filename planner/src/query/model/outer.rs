//! Outer joins as unions of inner-join variants: each LEFT/RIGHT/FULL join taken as an inner
//! join, or with its padded side replaced by one NULL row and a NOT EXISTS anti-join.

use super::*;

impl Builder<'_> {
    /// The inner-join variants of a block with outer joins.
    pub(super) fn outer_variants(
        &mut self,
        from: &[TableWithJoins],
        base: &Block,
        outers: &[Outer],
    ) -> R<Vec<Block>> {
        let alts: Vec<Vec<Alt>> = outers
            .iter()
            .map(|o| match o.kind {
                OuterKind::Left => vec![Alt::Inner, Alt::PadRight],
                OuterKind::Right => vec![Alt::Inner, Alt::PadLeft],
                OuterKind::Full => vec![Alt::Inner, Alt::PadRight, Alt::PadLeft],
            })
            .collect();
        let mut combos: Vec<Vec<Alt>> = vec![vec![]];
        for a in &alts {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    a.iter().map(move |x| {
                        let mut c = c.clone();
                        c.push(*x);
                        c
                    })
                })
                .collect();
        }
        let mut variants = Vec::new();
        for combo in combos {
            let mut ast = from.to_vec();
            let mut factors = base.factors.clone();
            let mut preds = base.preds.clone();
            let mut swaps: Vec<(String, String)> = Vec::new();
            for (o, alt) in outers.iter().zip(&combo) {
                let on_expr = |s: &str| -> R<Expr> {
                    Parser::new(&PostgreSqlDialect {})
                        .try_with_sql(s)
                        .and_then(|mut p| p.parse_expr())
                        .map_err(|e| Unsupported(format!("outer join condition ({e})")))
                };
                let cond = match alt {
                    Alt::Inner => on_expr(&o.on)?,
                    _ => on_expr("true")?,
                };
                ast[o.twj].joins[o.join].join_operator =
                    JoinOperator::Inner(JoinConstraint::On(cond));
                // The padded factors (one for LEFT, the whole chain before the join for
                // RIGHT/FULL) become one row of NULLs; the anti-join checks that no row of them
                // matches.
                let (range, pad_left) = match alt {
                    Alt::Inner => continue,
                    Alt::PadRight => (o.right..o.right + 1, false),
                    Alt::PadLeft => (o.left..o.right, true),
                };
                let true_on = on_expr("true")?;
                let mut body_from = if pad_left {
                    for j in &mut ast[o.twj].joins[..o.join] {
                        j.join_operator = JoinOperator::Inner(JoinConstraint::On(true_on.clone()));
                    }
                    TableWithJoins {
                        relation: from[o.twj].relation.clone(),
                        joins: from[o.twj].joins[..o.join].to_vec(),
                    }
                    .to_string()
                } else {
                    format!(
                        "{} AS {}",
                        factors[o.right].placeholder(),
                        quote_ident(&base.aliases[o.right])
                    )
                };
                let mut copies = Vec::new();
                for i in range.clone() {
                    let old = factors[i].clone();
                    let (null_id, copy_id) = (self.next_id, self.next_id + 1);
                    self.next_id += 2;
                    let null_row = Factor {
                        id: null_id,
                        source: FactorSource::NullRow(Box::new(old.source.clone())),
                        columns: old.columns.clone(),
                    };
                    swaps.push((old.placeholder(), null_row.placeholder()));
                    factors[i] = null_row;
                    let copy = Factor {
                        id: copy_id,
                        source: old.source.clone(),
                        columns: old.columns.clone(),
                    };
                    body_from = body_from.replacen(&old.placeholder(), &copy.placeholder(), 1);
                    copies.push(copy);
                }
                let body = Block {
                    items: vec!["1".into()],
                    names: vec!["?column?".into()],
                    item_exprs: vec!["1".into()],
                    aliases: base.aliases[range].to_vec(),
                    from_sql: body_from,
                    factors: copies,
                    where_sql: Some(o.on.clone()),
                    preds: vec![],
                    variants: vec![],
                };
                let id = self.next_id;
                self.next_id += 1;
                preds.push(Pred {
                    negated: true,
                    body: Body::Block(Box::new(body)),
                    id,
                });
            }
            let mut from_sql = ast
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            for (old, new) in swaps {
                from_sql = from_sql.replacen(&old, &new, 1);
            }
            variants.push(Block {
                from_sql,
                factors,
                preds,
                variants: vec![],
                ..base.clone()
            });
        }
        Ok(variants)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OuterKind {
    Left,
    Right,
    Full,
}

impl OuterKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            OuterKind::Left => "LEFT",
            OuterKind::Right => "RIGHT",
            OuterKind::Full => "FULL",
        }
    }
}

/// An outer join in a FROM clause.
pub(super) struct Outer {
    pub(super) twj: usize,
    pub(super) join: usize,
    pub(super) kind: OuterKind,
    /// Index of the first factor of the join chain (the left side of a RIGHT/FULL join is
    /// every factor from here to `right`).
    pub(super) left: usize,
    /// Factor index of the right side.
    pub(super) right: usize,
    pub(super) on: String,
    /// The columns a `USING (...)` of this join merged (see [`super::using`]).
    pub(super) merged: Vec<super::using::Merged>,
}

/// How one outer join is taken in a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alt {
    Inner,
    PadRight,
    PadLeft,
}
