//! The columns a defining query compares for equality with a column of another relation (its
//! join keys, from ON and WHERE). A delta query joins a source's few changed rows to the other
//! sources on these columns, so a copy of a source that the engine keeps itself (the mirror of a
//! foreign table, which has no indexes of its own) should be indexed on them.
//!
//! A heuristic: aliases are resolved over the whole query, not scope by scope; a wrong guess
//! costs an unused index, never a wrong result.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, TableFactor, Visit, Visitor};

use crate::api_call::{fold_ident, fold_name};
use crate::error::Result;
use crate::input::RelationRef;

use super::parse::parse_query;

/// `(relation, column)` pairs, folded as PostgreSQL folds them, sorted, without repeats: for
/// every `a.x = b.y` of the query where `a` and `b` name different relations.
pub fn equality_key_columns(sql: &str) -> Result<Vec<(RelationRef, String)>> {
    let parsed = parse_query(sql)?;
    let mut v = Keys::default();
    let _ = parsed.query.visit(&mut v);
    let mut out = BTreeSet::new();
    for ((qa, ca), (qb, cb)) in v.pairs {
        let (Some(ra), Some(rb)) = (v.scope.get(&qa), v.scope.get(&qb)) else {
            continue;
        };
        if ra == rb && qa == qb {
            continue;
        }
        out.insert((ra.clone(), ca));
        out.insert((rb.clone(), cb));
    }
    Ok(out.into_iter().collect())
}

#[derive(Default)]
struct Keys {
    /// Qualifier (alias, or the relation's own name) -> relation.
    scope: BTreeMap<String, RelationRef>,
    /// Both sides of each `q.c = q.c` comparison.
    pairs: Vec<((String, String), (String, String))>,
}

fn qualified_column(e: &Expr) -> Option<(String, String)> {
    match e {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            Some((fold_ident(&parts[0]), fold_ident(&parts[1])))
        }
        Expr::Nested(inner) => qualified_column(inner),
        _ => None,
    }
}

impl Visitor for Keys {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = t
        {
            let relation = match fold_name(name).as_deref() {
                Some([n]) => RelationRef {
                    schema: None,
                    name: n.clone(),
                },
                Some([s, n]) => RelationRef {
                    schema: Some(s.clone()),
                    name: n.clone(),
                },
                _ => return ControlFlow::Continue(()),
            };
            let qualifier = match alias {
                Some(a) => fold_ident(&a.name),
                None => relation.name.clone(),
            };
            self.scope.insert(qualifier, relation);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = e
        {
            if let (Some(a), Some(b)) = (qualified_column(left), qualified_column(right)) {
                self.pairs.push((a, b));
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(sql: &str) -> Vec<String> {
        equality_key_columns(sql)
            .unwrap()
            .into_iter()
            .map(|(r, c)| format!("{r}.{c}"))
            .collect()
    }

    #[test]
    fn join_keys_of_on_and_where() {
        assert_eq!(
            keys(
                "SELECT o.customer_id, rp.category FROM orders o JOIN remote_products rp \
                 ON rp.id = o.product_id GROUP BY 1, 2"
            ),
            ["orders.product_id", "remote_products.id"]
        );
        assert_eq!(
            keys(
                "SELECT 1 FROM orders o, exchange_rates er WHERE er.currency = o.currency \
                 AND er.effective_date = CURRENT_DATE AND (o.id = 3)"
            ),
            ["exchange_rates.currency", "orders.currency"]
        );
        assert_eq!(
            keys("SELECT 1 FROM s.a JOIN b ON (a.\"X\" = b.y)"),
            ["b.y", "s.a.X"]
        );
        assert!(keys("SELECT a.x FROM a WHERE a.x = a.y").is_empty());
    }
}
