//! Rewrites the spellings PostgreSQL's deparser (`pg_get_viewdef`) prints into the ones the
//! rest of the planner reads, without changing what the query means. The engine plans the
//! deparsed text of a defining query (every name outside pg_catalog schema-qualified, implicit
//! casts explicit), so a query must be planned the same way whether it was written by hand or
//! printed back by PostgreSQL:
//! - a parenthesised join on the left of a FROM item, `FROM ((a JOIN b ON p) LEFT JOIN c ON q)`,
//!   is the same join chain as `FROM a JOIN b ON p LEFT JOIN c ON q` (joins associate to the
//!   left), so the parentheses are dropped;
//! - a parenthesised GROUP BY entry, `GROUP BY (a.k % 2)`, is the entry itself (PostgreSQL
//!   reads `(x)` there as `x`: an output column name or position stays one);
//! - `LIMIT ALL`, `LIMIT NULL` and `OFFSET 0` (alone or together) keep every row: the clause
//!   is dropped (`OFFSET 0` is the usual optimisation fence of a subquery).
//!
//! `NOT (x IN (subquery))`, the deparsed `x NOT IN (subquery)`, is read by the semi-join rules
//! directly.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, GroupByExpr, LimitClause, Query, Select, TableFactor, TableWithJoins, Value, VisitMut,
    VisitorMut,
};

/// Applies the rewrites to every SELECT of `q` (subqueries and CTEs included).
pub fn normalize(q: &mut Query) {
    let _ = VisitMut::visit(q, &mut Normalizer);
    // schema.table.column, where the query reads schema.table without an alias, is
    // table.column (the name the FROM item is known by).
    let mut tables = Vec::new();
    let _ = sqlparser::ast::Visit::visit(&*q, &mut UnaliasedTables(&mut tables));
    if !tables.is_empty() {
        let _ = VisitMut::visit(q, &mut ThreePart(&tables));
    }
}

struct UnaliasedTables<'a>(&'a mut Vec<(String, String)>);

impl sqlparser::ast::Visitor for UnaliasedTables<'_> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, alias: None, ..
        } = t
        {
            if let Some([s, n]) = crate::api_call::fold_name(name).as_deref() {
                self.0.push((s.clone(), n.clone()));
            }
        }
        ControlFlow::Continue(())
    }
}

struct ThreePart<'a>(&'a [(String, String)]);

impl VisitorMut for ThreePart<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() == 3 {
                let s = crate::api_call::fold_ident(&parts[0]);
                let n = crate::api_call::fold_ident(&parts[1]);
                if self.0.iter().any(|(a, b)| *a == s && *b == n) {
                    parts.remove(0);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

struct Normalizer;

impl VisitorMut for Normalizer {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if q.fetch.is_none() && q.limit_clause.as_ref().is_some_and(keeps_every_row) {
            q.limit_clause = None;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &mut Select) -> ControlFlow<()> {
        for t in &mut s.from {
            flatten(t);
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut s.group_by {
            for e in exprs {
                while let Expr::Nested(inner) = e {
                    *e = (**inner).clone();
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// True for `LIMIT ALL`, `LIMIT NULL`, `OFFSET 0` and their combinations.
fn keeps_every_row(l: &LimitClause) -> bool {
    let is = |e: &Expr, what: &dyn Fn(&Value) -> bool| {
        let mut e = e;
        while let Expr::Nested(inner) = e {
            e = inner;
        }
        matches!(e, Expr::Value(v) if what(&v.value))
    };
    match l {
        LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        } => {
            limit_by.is_empty()
                && limit
                    .as_ref()
                    .is_none_or(|e| is(e, &|v| matches!(v, Value::Null)))
                && offset
                    .as_ref()
                    .is_none_or(|o| is(&o.value, &|v| matches!(v, Value::Number(n, _) if n == "0")))
        }
        LimitClause::OffsetCommaLimit { .. } => false,
    }
}

/// Drops the parentheses around a join chain that starts a FROM item; recurses into
/// parenthesised joins on the right (which keep theirs).
fn flatten(t: &mut TableWithJoins) {
    while let TableFactor::NestedJoin {
        table_with_joins,
        alias: None,
    } = &t.relation
    {
        let inner = (**table_with_joins).clone();
        t.relation = inner.relation;
        let rest = std::mem::take(&mut t.joins);
        t.joins = inner.joins;
        t.joins.extend(rest);
    }
    for j in &mut t.joins {
        if let TableFactor::NestedJoin {
            table_with_joins,
            alias: None,
        } = &mut j.relation
        {
            flatten(table_with_joins);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn norm(sql: &str) -> String {
        let mut v = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let sqlparser::ast::Statement::Query(q) = &mut v[0] else {
            panic!("not a query")
        };
        normalize(q);
        q.to_string()
    }

    #[test]
    fn left_nested_joins_become_one_chain() {
        assert_eq!(
            norm(
                "SELECT a.x FROM ((s.a JOIN s.b ON ((a.k = b.k))) LEFT JOIN s.c ON ((c.k = b.k)))"
            ),
            "SELECT a.x FROM s.a JOIN s.b ON ((a.k = b.k)) LEFT JOIN s.c ON ((c.k = b.k))"
        );
        assert_eq!(
            norm("SELECT 1 FROM ((s.a JOIN s.b ON true)), s.c"),
            "SELECT 1 FROM s.a JOIN s.b ON true, s.c"
        );
    }

    #[test]
    fn right_nested_joins_stay_nested() {
        assert_eq!(
            norm("SELECT 1 FROM s.a LEFT JOIN ((s.b JOIN s.c ON true) JOIN s.d ON true) ON true"),
            "SELECT 1 FROM s.a LEFT JOIN (s.b JOIN s.c ON true JOIN s.d ON true) ON true"
        );
        // An aliased join keeps its parentheses.
        assert_eq!(
            norm("SELECT 1 FROM (s.a JOIN s.b ON true) j"),
            "SELECT 1 FROM (s.a JOIN s.b ON true) j"
        );
    }

    #[test]
    fn limits_that_keep_every_row_are_dropped() {
        assert_eq!(
            norm("SELECT q.k FROM (SELECT a.k FROM s.a OFFSET 0) q"),
            "SELECT q.k FROM (SELECT a.k FROM s.a) q"
        );
        assert_eq!(
            norm("SELECT q.k FROM (SELECT a.k FROM s.a LIMIT ALL OFFSET 0) q LIMIT NULL"),
            "SELECT q.k FROM (SELECT a.k FROM s.a) q"
        );
        assert_eq!(
            norm("SELECT q.k FROM (SELECT a.k FROM s.a OFFSET 1) q"),
            "SELECT q.k FROM (SELECT a.k FROM s.a OFFSET 1) q"
        );
    }

    #[test]
    fn parenthesised_group_by_entries_lose_their_parentheses() {
        assert_eq!(
            norm("SELECT a.k % 2 AS p FROM s.a WHERE EXISTS (SELECT 1 FROM s.b GROUP BY ((b.k))) GROUP BY (a.k % 2), a.s"),
            "SELECT a.k % 2 AS p FROM s.a WHERE EXISTS (SELECT 1 FROM s.b GROUP BY b.k) GROUP BY a.k % 2, a.s"
        );
    }
}
