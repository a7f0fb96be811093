//! Outer joins with `USING (...)` (PostgreSQL's deparser also prints NATURAL joins that way):
//! the join becomes `ON left.c = right.c AND ...`, each column taken from the first factor of
//! the left side that has it, and the merged column `c` the query may name unqualified becomes
//! what PostgreSQL means by it: the left column (LEFT), the right one (RIGHT) or
//! `COALESCE(left.c, right.c)` (FULL).

use super::*;
use sqlparser::ast::{VisitMut, VisitorMut};

/// A column merged by an outer `JOIN ... USING` and the expression it stands for.
pub(super) struct Merged {
    pub(super) column: String,
    pub(super) expr: Expr,
}

impl Builder<'_> {
    /// The ON condition of outer join `kind` USING `cols` between the factors `left` and the
    /// factor `right`, and the columns it merges. `earlier` names the columns earlier outer
    /// USING joins of the chain merged: naming one of them again is refused (PostgreSQL would
    /// read the merged column, which the ON form does not have).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn outer_using(
        &self,
        kind: OuterKind,
        cols: &[ObjectName],
        factors: &[Factor],
        aliases: &[String],
        left: std::ops::Range<usize>,
        right: usize,
        earlier: &[String],
    ) -> R<(Expr, Vec<Merged>)> {
        let mut merged = Vec::new();
        let mut conds = Vec::new();
        for c in cols {
            let column = match fold_name(c).as_deref() {
                Some([n]) => n.clone(),
                _ => return unsupported(format!("USING column {c}")),
            };
            if earlier.contains(&column) {
                return unsupported(format!(
                    "JOIN ... USING ({column}) after an outer JOIN ... USING ({column})"
                ));
            }
            let l = left
                .clone()
                .find(|&i| factors[i].columns.contains(&column))
                .ok_or_else(|| Unsupported(format!("USING column {column}")))?;
            if !factors[right].columns.contains(&column) {
                return unsupported(format!("USING column {column}"));
            }
            let q = quote_ident(&column);
            let (ls, rs) = (
                format!("{}.{q}", quote_ident(&aliases[l])),
                format!("{}.{q}", quote_ident(&aliases[right])),
            );
            conds.push(format!("{ls} = {rs}"));
            let expr = match kind {
                OuterKind::Left => ls,
                OuterKind::Right => rs,
                OuterKind::Full => format!("COALESCE({ls}, {rs})"),
            };
            merged.push(Merged {
                column,
                expr: parse_expr(&expr)?,
            });
        }
        Ok((parse_expr(&conds.join(" AND "))?, merged))
    }
}

/// The columns the outer USING joins of chain `twj` in `outers` merged.
pub(super) fn merged_in_chain(outers: &[Outer], twj: usize) -> Vec<String> {
    outers
        .iter()
        .filter(|o| o.twj == twj)
        .flat_map(|o| o.merged.iter().map(|m| m.column.clone()))
        .collect()
}

fn parse_expr(sql: &str) -> R<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Unsupported(format!("JOIN ... USING ({e})")))
}

/// `s` with every unqualified reference to a merged column (outside subqueries) replaced by
/// the expression it stands for; a select-list item that was such a reference keeps its name.
pub(super) fn with_merged_columns(s: &Select, merged: &[Merged]) -> Select {
    let mut s = s.clone();
    if merged.is_empty() {
        return s;
    }
    for item in &mut s.projection {
        if let SelectItem::UnnamedExpr(Expr::Identifier(id)) = item {
            let name = fold_ident(id);
            if let Some(m) = merged.iter().find(|m| m.column == name) {
                *item = SelectItem::ExprWithAlias {
                    expr: m.expr.clone(),
                    alias: Ident::with_quote('"', name),
                };
            }
        }
    }
    let mut r = Rewriter { merged, depth: 0 };
    for item in &mut s.projection {
        let _ = VisitMut::visit(item, &mut r);
    }
    if let Some(w) = &mut s.selection {
        let _ = VisitMut::visit(w, &mut r);
    }
    let _ = VisitMut::visit(&mut s.group_by, &mut r);
    if let Some(h) = &mut s.having {
        let _ = VisitMut::visit(h, &mut r);
    }
    s
}

struct Rewriter<'a> {
    merged: &'a [Merged],
    depth: usize,
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            if let Expr::Identifier(id) = e {
                let name = fold_ident(id);
                if let Some(m) = self.merged.iter().find(|m| m.column == name) {
                    *e = m.expr.clone();
                }
            }
        }
        ControlFlow::Continue(())
    }
}
