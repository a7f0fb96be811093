//! Scalar subqueries in WHERE and HAVING, decorrelated into joins with grouped subqueries in
//! FROM, so that the join and grouping delta rules maintain them.
//!
//! A scalar subquery `(SELECT e FROM F WHERE W)` whose item `e` aggregates (and which has no
//! GROUP BY, HAVING, DISTINCT or LIMIT) returns exactly one row per evaluation. Rewrites:
//! - uncorrelated: `S = (SELECT e AS v FROM F WHERE W)` is a grouped subquery without keys
//!   (one row, also over no rows); it joins the enclosing block as one more FROM item (a cross
//!   join with one row keeps the bag) and the subquery becomes `S.v`. Its delta is its old row
//!   out and its new row in when its input changed, so every enclosing row is re-derived then.
//! - correlated by equalities `i1 = o1 AND ... AND ik = ok` (each `i` over the subquery's
//!   relations only, each `o` over the enclosing block's only), when it is an operand of a
//!   comparison that is a WHERE conjunct and `e` is NULL over no rows (sum, avg, min, max of
//!   strict arithmetic): `S = (SELECT i1 AS c1, .., ik AS ck, e AS v FROM F WHERE W' GROUP BY
//!   i1, .., ik)` joins the block with the conjuncts `S.c1 = o1 AND ..`; an enclosing row with
//!   no group had a NULL operand, so the comparison dropped it, as the inner join does. The
//!   delta touches only the groups (correlation keys) whose input changed.
//! - in HAVING (uncorrelated only): the same one-row `S` joins the grouped block, and the
//!   subquery becomes `(array_agg(S.v))[1]` (every row of a group has the same `S.v`).
//!
//! Anything else with a scalar subquery stays unsupported (FULL): a subquery that may return
//! several rows or none (no aggregate, GROUP BY), correlations other than equalities,
//! correlated subqueries under OR/NOT/CASE or in the select list, count(*) in a correlated one.

use super::*;

/// Where a scalar subquery sits in its enclosing block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// An operand of a comparison that is a WHERE conjunct.
    Comparison,
    /// Elsewhere in WHERE.
    Where,
    /// In HAVING.
    Having,
}

/// The enclosing block being built: its FROM (with placeholders), factors and aliases, and
/// the conjuncts the lifting adds to its WHERE.
pub(super) struct Enclosing<'s> {
    pub(super) from: &'s mut Vec<TableWithJoins>,
    pub(super) factors: &'s mut Vec<Factor>,
    pub(super) aliases: &'s mut Vec<String>,
    pub(super) using: &'s mut bool,
    pub(super) extra: Vec<String>,
}

/// Prefix of the placeholders standing for scalar subqueries while they are lifted.
const HOLE: &str = "__pgt_sqhole";

impl Builder<'_> {
    /// A WHERE conjunct with its scalar subqueries lifted into `enc`.
    pub(super) fn lift_where_conjunct(&mut self, c: &Expr, enc: &mut Enclosing) -> R<Expr> {
        if let Expr::BinaryOp { left, op, right } = strip_nested(c) {
            if is_comparison(op) {
                let (l, r) = (strip_nested(left), strip_nested(right));
                if let Expr::Subquery(q) = l {
                    let left = self.lift_one(q, Place::Comparison, enc)?;
                    let right = self.lift_all(right, Place::Where, enc)?;
                    return Ok(binary(left, op.clone(), right));
                }
                if let Expr::Subquery(q) = r {
                    let left = self.lift_all(left, Place::Where, enc)?;
                    let right = self.lift_one(q, Place::Comparison, enc)?;
                    return Ok(binary(left, op.clone(), right));
                }
            }
        }
        self.lift_all(c, Place::Where, enc)
    }

    /// HAVING with its (uncorrelated) scalar subqueries lifted into `enc`.
    pub(super) fn lift_having(&mut self, h: &Expr, enc: &mut Enclosing) -> R<Expr> {
        self.lift_all(h, Place::Having, enc)
    }

    /// `e` with every scalar subquery of its own level (not those inside other subqueries)
    /// lifted.
    fn lift_all(&mut self, e: &Expr, place: Place, enc: &mut Enclosing) -> R<Expr> {
        use sqlparser::ast::{VisitMut, VisitorMut};
        struct Collect {
            depth: usize,
            found: Vec<Query>,
            any_all: bool,
        }
        impl VisitorMut for Collect {
            type Break = ();
            fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.depth += 1;
                ControlFlow::Continue(())
            }
            fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
                self.depth -= 1;
                ControlFlow::Continue(())
            }
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if self.depth == 0 {
                    if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = e {
                        if matches!(strip_nested(right), Expr::Subquery(_)) {
                            self.any_all = true;
                            return ControlFlow::Break(());
                        }
                    }
                    if let Expr::Subquery(q) = e {
                        self.found.push((**q).clone());
                        *e =
                            Expr::Identifier(Ident::new(format!("{HOLE}{}", self.found.len() - 1)));
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut e = e.clone();
        let mut c = Collect {
            depth: 0,
            found: vec![],
            any_all: false,
        };
        let _ = VisitMut::visit(&mut e, &mut c);
        if c.any_all {
            return unsupported("op ANY/ALL (subquery) outside an AND-ed WHERE conjunct");
        }
        if c.found.is_empty() {
            return Ok(e);
        }
        let mut replacements = Vec::new();
        for q in &c.found {
            replacements.push(self.lift_one(q, place, enc)?);
        }
        struct Fill(Vec<Expr>);
        impl VisitorMut for Fill {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Identifier(i) = e {
                    if let Some(n) = i.value.strip_prefix(HOLE) {
                        if let Some(r) = n.parse::<usize>().ok().and_then(|n| self.0.get(n)) {
                            *e = r.clone();
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut e, &mut Fill(replacements));
        Ok(e)
    }

    /// Lifts one scalar subquery into `enc`; returns the expression that replaces it.
    fn lift_one(&mut self, q: &Query, place: Place, enc: &mut Enclosing) -> R<Expr> {
        let s = plain_scalar_select(q)?;
        let (item, item_sql) = match s.projection.as_slice() {
            [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] => {
                (e.clone(), e.to_string())
            }
            _ => return unsupported("scalar subquery with this select list"),
        };
        if !expr_has_aggregate(&item) {
            return unsupported(
                "scalar subquery without an aggregate (it may return no row or several)",
            );
        }
        // The subquery's own relations: their aliases and columns.
        let mut inner_factors = Vec::new();
        let mut inner_aliases = Vec::new();
        let mut using = false;
        for twj in &s.from {
            let mut rel = twj.relation.clone();
            if !matches!(rel, TableFactor::Table { args: None, .. }) {
                return unsupported("scalar subquery reading a subquery or function in FROM");
            }
            self.factor(&mut rel, &mut inner_factors, &mut inner_aliases, &mut using)?;
            for j in &twj.joins {
                let mut rel = j.relation.clone();
                if !matches!(rel, TableFactor::Table { args: None, .. }) {
                    return unsupported("scalar subquery reading a subquery or function in FROM");
                }
                self.factor(&mut rel, &mut inner_factors, &mut inner_aliases, &mut using)?;
                let on = match &j.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::CrossJoin(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c) => c,
                    _ => return unsupported("scalar subquery with this kind of JOIN"),
                };
                if let JoinConstraint::On(e) = on {
                    let r = refs(e, &inner_factors, &inner_aliases, enc);
                    if r.outer || r.unknown {
                        return unsupported("scalar subquery correlated in a JOIN condition");
                    }
                }
            }
        }
        let r = refs(&item, &inner_factors, &inner_aliases, enc);
        if r.outer || r.unknown {
            return unsupported("scalar subquery whose select list names an outer column");
        }
        // Correlation equalities out of the WHERE; the rest stays.
        let mut conjuncts = Vec::new();
        if let Some(w) = &s.selection {
            split_and(w, &mut conjuncts);
        }
        let mut keep = Vec::new();
        let mut pairs: Vec<(Expr, Expr)> = Vec::new();
        for c in conjuncts {
            let r = refs(c, &inner_factors, &inner_aliases, enc);
            if r.unknown {
                return unsupported(format!(
                    "scalar subquery naming a column of neither it nor its enclosing block ({c})"
                ));
            }
            if !r.outer {
                keep.push(c.clone());
                continue;
            }
            let pair = match strip_nested(c) {
                Expr::BinaryOp {
                    left,
                    op: sqlparser::ast::BinaryOperator::Eq,
                    right,
                } => {
                    let l = refs(left, &inner_factors, &inner_aliases, enc);
                    let rr = refs(right, &inner_factors, &inner_aliases, enc);
                    let plain = |x: &Refs| !x.nested && !x.unknown;
                    if plain(&l) && plain(&rr) && l.inner && !l.outer && rr.outer && !rr.inner {
                        Some((left.as_ref().clone(), right.as_ref().clone()))
                    } else if plain(&l)
                        && plain(&rr)
                        && rr.inner
                        && !rr.outer
                        && l.outer
                        && !l.inner
                    {
                        Some((right.as_ref().clone(), left.as_ref().clone()))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            match pair {
                Some(p) => pairs.push(p),
                None => {
                    return unsupported(format!(
                        "scalar subquery correlated by something other than an equality ({c})"
                    ))
                }
            }
        }
        if !pairs.is_empty() {
            if place != Place::Comparison {
                return unsupported(
                    "correlated scalar subquery outside a comparison in a WHERE conjunct",
                );
            }
            if !null_on_empty(&item) {
                return unsupported(format!(
                    "correlated scalar subquery whose value over no rows is not NULL ({item_sql})"
                ));
            }
        }
        // The lifted subquery: correlation keys, then the value, grouped by the keys.
        let mut sel = s.clone();
        let mut projection: Vec<SelectItem> = pairs
            .iter()
            .enumerate()
            .map(|(k, (i, _))| SelectItem::ExprWithAlias {
                expr: i.clone(),
                alias: Ident::new(format!("__pgt_c{k}")),
            })
            .collect();
        projection.push(SelectItem::ExprWithAlias {
            expr: item,
            alias: Ident::new("__pgt_v"),
        });
        sel.projection = projection;
        sel.selection = keep
            .into_iter()
            .reduce(|a, b| binary(nest(a), sqlparser::ast::BinaryOperator::And, nest(b)));
        sel.group_by =
            GroupByExpr::Expressions(pairs.iter().map(|(i, _)| i.clone()).collect(), vec![]);
        let mut lifted = q.clone();
        lifted.body = Box::new(SetExpr::Select(Box::new(sel)));
        lifted.order_by = None;
        let alias = format!("__pgt_sq{}", self.next_id);
        let mut rel = derived_factor(lifted, &alias)?;
        let id = self.next_id;
        self.factor(&mut rel, enc.factors, enc.aliases, enc.using)?;
        self.hidden.push(id);
        enc.from.push(TableWithJoins {
            relation: rel,
            joins: vec![],
        });
        for (k, (_, o)) in pairs.iter().enumerate() {
            let o = qualify(o, &enc.factors[..enc.factors.len() - 1], enc.aliases)?;
            enc.extra.push(format!("{alias}.__pgt_c{k} = ({o})"));
        }
        let v = Expr::CompoundIdentifier(vec![Ident::new(alias), Ident::new("__pgt_v")]);
        if place == Place::Having {
            return parse_expr(&format!("(pg_catalog.array_agg({v}))[1]"));
        }
        Ok(v)
    }
}

/// The SELECT of a scalar subquery that returns exactly one row when its item aggregates.
fn plain_scalar_select(q: &Query) -> R<&Select> {
    if q.with.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return unsupported("scalar subquery with WITH, LIMIT or FETCH");
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return unsupported("scalar subquery that is not a plain SELECT");
    };
    let grouped =
        !matches!(&s.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if grouped || s.having.is_some() || s.distinct.is_some() {
        return unsupported("scalar subquery with GROUP BY, HAVING or DISTINCT");
    }
    if s.from.is_empty() {
        return unsupported("scalar subquery without FROM");
    }
    Ok(s)
}

/// Which scopes the column references of an expression resolve to.
#[derive(Debug, Default)]
struct Refs {
    /// A column of the subquery's relations.
    inner: bool,
    /// A column of the enclosing block's relations (also inside a nested subquery).
    outer: bool,
    /// A column of neither, outside nested subqueries (an outer level, or an error).
    unknown: bool,
    /// It contains a subquery.
    nested: bool,
}

fn refs(e: &Expr, inner: &[Factor], inner_aliases: &[String], enc: &Enclosing) -> Refs {
    struct V<'x> {
        depth: usize,
        r: Refs,
        inner: &'x [Factor],
        inner_aliases: &'x [String],
        outer: &'x [Factor],
        outer_aliases: &'x [String],
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            self.r.nested = true;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let (is_inner, is_outer) = match e {
                Expr::Identifier(i) => {
                    let n = fold_ident(i);
                    (
                        self.inner.iter().any(|f| f.columns.contains(&n)),
                        self.outer.iter().any(|f| f.columns.contains(&n)),
                    )
                }
                Expr::CompoundIdentifier(v) if v.len() == 2 => {
                    let a = fold_ident(&v[0]);
                    (
                        self.inner_aliases.contains(&a),
                        self.outer_aliases.contains(&a),
                    )
                }
                Expr::CompoundIdentifier(_) => (false, false),
                _ => return ControlFlow::Continue(()),
            };
            if is_inner {
                // The subquery's own relations shadow the enclosing ones.
                if self.depth == 0 {
                    self.r.inner = true;
                }
            } else if is_outer {
                self.r.outer = true;
            } else if self.depth == 0 {
                self.r.unknown = true;
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        depth: 0,
        r: Refs::default(),
        inner,
        inner_aliases,
        outer: enc.factors,
        outer_aliases: enc.aliases,
    };
    let _ = e.visit(&mut v);
    v.r
}

/// Whether `e` (an aggregating select item) is NULL when its aggregates run over no rows:
/// aggregates other than count, through strict arithmetic and casts.
fn null_on_empty(e: &Expr) -> bool {
    use sqlparser::ast::{BinaryOperator as B, UnaryOperator as U};
    match e {
        Expr::Nested(x) => null_on_empty(x),
        Expr::Cast { expr, .. } => null_on_empty(expr),
        Expr::UnaryOp {
            op: U::Minus | U::Plus,
            expr,
        } => null_on_empty(expr),
        Expr::BinaryOp {
            left,
            op: B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo,
            right,
        } => null_on_empty(left) || null_on_empty(right),
        _ => matches!(
            aggregate_name(e).as_deref(),
            Some("sum" | "avg" | "min" | "max" | "bool_and" | "bool_or" | "every")
        ),
    }
}

fn is_comparison(op: &sqlparser::ast::BinaryOperator) -> bool {
    use sqlparser::ast::BinaryOperator as B;
    matches!(op, B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq)
}

fn binary(left: Expr, op: sqlparser::ast::BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

fn nest(e: Expr) -> Expr {
    Expr::Nested(Box::new(e))
}

fn parse_expr(sql: &str) -> R<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Unsupported(format!("internal expression ({e})")))
}

/// `(q) AS alias` as a FROM item.
fn derived_factor(q: Query, alias: &str) -> R<TableFactor> {
    let mut t = super::builder::placeholder_derived(0, Ident::new(alias))?;
    if let TableFactor::Derived { subquery, .. } = &mut t {
        *subquery.as_mut() = q;
        return Ok(t);
    }
    unsupported("internal placeholder")
}
