//! WHERE conjuncts that are semi- or anti-joins: `[NOT] EXISTS (subquery)`,
//! `[NOT] IN (subquery)` (also with a row on the left), `[NOT] x op ANY/ALL (subquery)`, and
//! the helpers that split and qualify predicates. x op ANY (q) is a semi-join on `x op y`;
//! x op ALL (q) an anti-join on `(x op y) IS NOT TRUE`; NOT ANY an anti-join on
//! `IS NOT FALSE` (as NOT IN); NOT ALL a semi-join on `IS FALSE`.

use super::*;

impl Builder<'_> {
    /// A WHERE conjunct that is `[NOT] EXISTS (subquery)` or `x IN (subquery)`, as a predicate.
    pub(super) fn semi_join(
        &mut self,
        e: &Expr,
        outer: &[Factor],
        outer_aliases: &[String],
    ) -> R<Option<Pred>> {
        use sqlparser::ast::BinaryOperator as B;
        // (anti-join, subquery, left side, operator, test of `left op item` kept by the join)
        let (negated, q, in_expr, op, test) = match e {
            Expr::Exists { subquery, negated } => (*negated, subquery.as_ref(), None, B::Eq, ""),
            Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Not,
                expr,
            } => match strip_nested(expr) {
                Expr::Exists {
                    subquery,
                    negated: false,
                } => (true, subquery.as_ref(), None, B::Eq, ""),
                // NOT (x IN (subquery)), as PostgreSQL prints x NOT IN (subquery).
                Expr::In {
                    expr,
                    target: sqlparser::ast::InTarget::Subquery(q),
                    negated: false,
                    ..
                } => (
                    true,
                    q.as_ref(),
                    Some(expr.as_ref()),
                    B::Eq,
                    " IS NOT FALSE",
                ),
                // NOT (x op ANY (q)): no y makes x op y true or NULL.
                Expr::AnyOp {
                    left,
                    compare_op,
                    right,
                    ..
                } => match strip_nested(right) {
                    Expr::Subquery(q) => (
                        true,
                        q.as_ref(),
                        Some(left.as_ref()),
                        compare_op.clone(),
                        " IS NOT FALSE",
                    ),
                    _ => return Ok(None),
                },
                // NOT (x op ALL (q)): some y makes x op y false.
                Expr::AllOp {
                    left,
                    compare_op,
                    right,
                } => match strip_nested(right) {
                    Expr::Subquery(q) => (
                        false,
                        q.as_ref(),
                        Some(left.as_ref()),
                        compare_op.clone(),
                        " IS FALSE",
                    ),
                    _ => return Ok(None),
                },
                _ => return Ok(None),
            },
            // x NOT IN (SELECT y ...) is true exactly when no y makes x = y true or NULL.
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::Subquery(q),
                negated,
                ..
            } => (
                *negated,
                q.as_ref(),
                Some(expr.as_ref()),
                B::Eq,
                if *negated { " IS NOT FALSE" } else { "" },
            ),
            // x op ANY (q): some y makes x op y true.
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            } => match strip_nested(right) {
                Expr::Subquery(q) => (
                    false,
                    q.as_ref(),
                    Some(left.as_ref()),
                    compare_op.clone(),
                    "",
                ),
                _ => return Ok(None),
            },
            // x op ALL (q): no y makes x op y false or NULL.
            Expr::AllOp {
                left,
                compare_op,
                right,
            } => match strip_nested(right) {
                Expr::Subquery(q) => (
                    true,
                    q.as_ref(),
                    Some(left.as_ref()),
                    compare_op.clone(),
                    " IS NOT TRUE",
                ),
                _ => return Ok(None),
            },
            Expr::Nested(inner) => return self.semi_join(inner, outer, outer_aliases),
            _ => return Ok(None),
        };
        if !matches!(op, B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq) {
            return unsupported(format!("{op} ANY/ALL (subquery)"));
        }
        let mut body = self.subquery(q)?;
        if let Some(x) = in_expr {
            check_expr(x)?;
            if !matches!(body, Body::Block(_)) {
                // A grouped subquery, UNION, INTERSECT or EXCEPT: selected from as one factor.
                let id = self.next_id;
                self.next_id += 1;
                body = Body::Block(Box::new(body_as_block(body, id, &format!("__pgt_in{id}"))));
            }
            let Body::Block(b) = &mut body else {
                return unsupported("IN (subquery with UNION)");
            };
            // One column compared as a value, several as a row (`(a, b) IN (SELECT x, y ...)`).
            if row_arity(x) != b.item_exprs.len() {
                return unsupported("IN (subquery returning several columns)");
            }
            let item = b.item_exprs.join(", ");
            // The left side moves into the subquery: qualify its columns with the outer
            // aliases so the subquery's own columns cannot capture them.
            let x = qualify(x, outer, outer_aliases)?;
            let inner_cols: Vec<&String> = b.factors.iter().flat_map(|f| &f.columns).collect();
            let mut captured = false;
            let _ = x.visit(&mut ExprIdents(|e: &Expr| match e {
                Expr::Identifier(i) => captured |= inner_cols.contains(&&fold_ident(i)),
                Expr::CompoundIdentifier(v) if v.len() == 2 => {
                    captured |= b.aliases.contains(&fold_ident(&v[0]))
                }
                _ => {}
            }));
            if captured {
                return unsupported("IN (subquery) whose left side names the subquery's columns");
            }
            let eq = if test.is_empty() {
                format!("({x}) {op} ({item})")
            } else {
                format!("(({x}) {op} ({item})){test}")
            };
            b.where_sql = Some(match &b.where_sql {
                Some(w) => format!("({w}) AND {eq}"),
                None => eq,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(Some(Pred { negated, body, id }))
    }
}

/// How many values `x` has as the left side of IN: a row's fields, else one.
fn row_arity(x: &Expr) -> usize {
    match strip_nested(x) {
        Expr::Tuple(v) => v.len(),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("row") => match &f.args {
            FunctionArguments::List(l) => l.args.len(),
            _ => 1,
        },
        _ => 1,
    }
}

/// Calls a closure on every expression node.
pub(super) struct ExprIdents<F: FnMut(&Expr)>(F);

impl<F: FnMut(&Expr)> Visitor for ExprIdents<F> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        (self.0)(e);
        ControlFlow::Continue(())
    }
}

/// `x` with each unqualified column of exactly one outer factor qualified by its alias.
pub(super) fn qualify(x: &Expr, outer: &[Factor], aliases: &[String]) -> R<Expr> {
    use sqlparser::ast::{VisitMut, VisitorMut};
    struct Q<'a>(&'a [Factor], &'a [String]);
    impl VisitorMut for Q<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(id) = e {
                let name = fold_ident(id);
                let owners: Vec<usize> = (0..self.0.len())
                    .filter(|&i| self.0[i].columns.contains(&name))
                    .collect();
                if let [i] = owners.as_slice() {
                    *e = Expr::CompoundIdentifier(vec![
                        Ident::with_quote('"', self.1[*i].clone()),
                        id.clone(),
                    ]);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut x = x.clone();
    let _ = VisitMut::visit(&mut x, &mut Q(outer, aliases));
    Ok(x)
}

pub(super) fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(i) => strip_nested(i),
        _ => e,
    }
}

/// The AND-ed conjuncts of a predicate.
pub(super) fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: sqlparser::ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        _ => out.push(e),
    }
}
