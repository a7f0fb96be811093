//! Set-returning functions, VALUES and LATERAL subqueries in FROM.
//!
//! Delta rule: a FROM item G(r) that is a function of the row r of the items before it (a
//! set-returning function over their columns, `ROWS FROM (...)`, a LATERAL subquery reading no
//! relation) or a constant (VALUES, a function of constants) yields the same rows in the new
//! and the old state, so it has no delta of its own: the join with it is linear in the other
//! items, d(F ⋈ G(F)) = dF ⋈ G(dF), each output row carrying the weight of its F row. Such an
//! item is kept as written ([`FactorSource::Constant`]).
//!
//! A LATERAL subquery that reads relations and has no grouping, DISTINCT, LIMIT or set
//! operation other than UNION ALL is a join with a correlated filter, F ⋈θ(F) S, bilinear in F
//! and S: it is an ordinary subquery factor whose SQL, in every version, stays LATERAL.
//! Grouped or limited LATERAL subqueries are not maintained (AUTO makes them FULL).

use super::builder::placeholder_derived_lateral;
use super::*;

impl Builder<'_> {
    /// A set-returning function (or table function) in FROM.
    pub(super) fn constant_factor(
        &mut self,
        f: &mut TableFactor,
        id: usize,
        factors: &mut Vec<Factor>,
        aliases: &mut Vec<String>,
    ) -> R<()> {
        no_relation_read(f)?;
        let (alias, default) = match f {
            TableFactor::Table { name, alias, .. } => (alias.clone(), last_name(name)),
            TableFactor::Function { name, alias, .. } => (alias.clone(), last_name(name)),
            TableFactor::UNNEST { alias, .. } => (alias.clone(), Some("unnest".to_string())),
            TableFactor::TableFunction { alias, .. } => (alias.clone(), None),
            _ => return unsupported(f.to_string()),
        };
        let name = match (&alias, default) {
            (Some(a), _) => fold_ident(&a.name),
            (None, Some(d)) => d,
            (None, None) => return unsupported("a table function without an alias"),
        };
        let columns = match &alias {
            Some(a) if !a.columns.is_empty() => {
                a.columns.iter().map(|c| fold_ident(&c.name)).collect()
            }
            _ => vec![name.clone()],
        };
        aliases.push(name);
        factors.push(Factor {
            id,
            source: FactorSource::Constant,
            columns,
        });
        Ok(())
    }

    /// A LATERAL subquery, or VALUES, in FROM.
    pub(super) fn lateral_factor(
        &mut self,
        f: &mut TableFactor,
        id: usize,
        lateral: bool,
        factors: &mut Vec<Factor>,
        aliases: &mut Vec<String>,
    ) -> R<()> {
        let constant = no_relation_read(f).is_ok();
        let TableFactor::Derived {
            subquery, alias, ..
        } = &*f
        else {
            return unsupported(f.to_string());
        };
        let subquery = subquery.clone();
        let Some(a) = alias.clone() else {
            return unsupported("subquery in FROM without an alias");
        };
        if constant {
            let TableFactor::Derived { subquery, .. } = &*f else {
                return unsupported("LATERAL subquery");
            };
            let columns = if !a.columns.is_empty() {
                a.columns.iter().map(|c| fold_ident(&c.name)).collect()
            } else {
                match subquery.body.as_ref() {
                    SetExpr::Values(v) => (1..=v.rows.first().map_or(0, |r| r.len()))
                        .map(|i| format!("column{i}"))
                        .collect(),
                    SetExpr::Select(s) => s.projection.iter().map(item_name).collect(),
                    _ => return unsupported("this LATERAL subquery"),
                }
            };
            aliases.push(fold_ident(&a.name));
            factors.push(Factor {
                id,
                source: FactorSource::Constant,
                columns,
            });
            return Ok(());
        }
        if !lateral || !a.columns.is_empty() {
            return unsupported("LATERAL subquery with a column list");
        }
        let body = self.subquery(&subquery)?;
        if !linear(&body) {
            return unsupported(
                "LATERAL subquery with grouping, DISTINCT, INTERSECT/EXCEPT or a subquery predicate",
            );
        }
        let columns = body.names();
        aliases.push(fold_ident(&a.name));
        *f = placeholder_derived_lateral(id, a.name, true)?;
        self.laterals.push(id);
        factors.push(Factor {
            id,
            source: FactorSource::Derived(body),
            columns,
        });
        Ok(())
    }
}

fn last_name(name: &ObjectName) -> Option<String> {
    fold_name(name).and_then(|p| p.last().cloned())
}

/// Blocks and UNION ALL of blocks without subquery predicates or outer joins.
fn linear(b: &Body) -> bool {
    match b {
        Body::Block(b) => {
            b.preds.is_empty()
                && b.variants.is_empty()
                && b.factors.iter().all(|f| match &f.source {
                    FactorSource::Derived(d) => linear(d),
                    _ => true,
                })
        }
        Body::UnionAll(v) => v.iter().all(linear),
        _ => false,
    }
}

/// Refuses a FROM item that reads a relation (a table name without arguments) or has a
/// subquery expression.
fn no_relation_read(f: &TableFactor) -> R<()> {
    struct V(bool);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            if matches!(t, TableFactor::Table { args: None, .. }) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(
                e,
                Expr::Subquery(_)
                    | Expr::Exists { .. }
                    | Expr::In {
                        target: sqlparser::ast::InTarget::Subquery(_),
                        ..
                    }
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(false);
    let _ = f.visit(&mut v);
    if v.0 {
        return unsupported("a function in FROM reading a relation");
    }
    Ok(())
}
