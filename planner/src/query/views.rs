//! Expanding views into a defining query: each FROM item naming a view the engine chose to
//! expand becomes the view's definition as a subquery in FROM, under the name the query knows
//! the view by (its alias, else the view's name), so that every column reference keeps its
//! meaning. The engine decides which views may be expanded (privileges, security options) and
//! gives their definitions as PostgreSQL prints them (`pg_get_viewdef`, names qualified).

use std::ops::ControlFlow;

use sqlparser::ast::{
    Ident, ObjectNamePart, Query, Statement, TableAlias, TableFactor, VisitMut, VisitorMut,
};

use crate::api_call::{fold_ident, fold_name};
use crate::error::{PlanError, Result};
use crate::input::RelationRef;
use crate::limits::parse_bounded;

/// A view to expand: how the query names it and its definition (one SELECT statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewDefinition {
    /// The view as the query names it (as [`crate::referenced_relations`] returns it).
    pub reference: RelationRef,
    /// Its definition, a query.
    pub definition: String,
}

/// `sql` with every FROM item naming one of `views` replaced by the view's definition;
/// returns the query's text and how many FROM items were replaced. Fails when `sql` or a
/// definition is not one query sqlparser reads.
pub fn expand_views(sql: &str, views: &[ViewDefinition]) -> Result<(String, usize)> {
    let mut query = parse_one(sql, "defining query")?;
    let mut parsed = Vec::new();
    for v in views {
        parsed.push((
            v.reference.clone(),
            parse_one(
                &v.definition,
                &format!("definition of view {}", v.reference),
            )?,
        ));
    }
    let mut expander = Expander {
        views: &parsed,
        replaced: 0,
    };
    let _ = VisitMut::visit(&mut query, &mut expander);
    let replaced = expander.replaced;
    Ok((query.to_string(), replaced))
}

fn parse_one(sql: &str, what: &str) -> Result<Query> {
    let statements = match parse_bounded(sql, what) {
        Ok(s) => s,
        Err(Err(e)) => return Err(e),
        Err(Ok(e)) => {
            return Err(PlanError::Syntax(format!(
                "{what}: pgtrickle-proxy's SQL parser (sqlparser) cannot read it ({e})"
            )))
        }
    };
    match statements.as_slice() {
        [Statement::Query(q)] => Ok((**q).clone()),
        _ => Err(PlanError::InvalidObjectDefinition(format!(
            "{what} is not one SELECT statement"
        ))),
    }
}

struct Expander<'a> {
    views: &'a [(RelationRef, Query)],
    replaced: usize,
}

impl VisitorMut for Expander<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = t
        else {
            return ControlFlow::Continue(());
        };
        let reference = match fold_name(name).as_deref() {
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
        let Some((_, definition)) = self.views.iter().find(|(r, _)| *r == reference) else {
            return ControlFlow::Continue(());
        };
        // Column references qualified by the view's name keep working under the same name.
        let alias = alias.clone().or_else(|| match name.0.last() {
            Some(ObjectNamePart::Identifier(i)) => Some(TableAlias {
                explicit: true,
                name: Ident::with_quote('"', fold_ident(i)),
                columns: vec![],
                at: None,
            }),
            _ => None,
        });
        *t = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(definition.clone()),
            alias,
            sample: None,
        };
        self.replaced += 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(schema: &str, name: &str, definition: &str) -> ViewDefinition {
        ViewDefinition {
            reference: RelationRef {
                schema: Some(schema.into()),
                name: name.into(),
            },
            definition: definition.into(),
        }
    }

    #[test]
    fn a_view_becomes_a_subquery_under_its_name_or_alias() {
        let v = view("public", "v", "SELECT t.a, t.b FROM public.t WHERE t.a > 0");
        let (sql, n) = expand_views("SELECT v.a FROM public.v", std::slice::from_ref(&v)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            sql,
            "SELECT v.a FROM (SELECT t.a, t.b FROM public.t WHERE t.a > 0) AS \"v\""
        );
        let (sql, n) = expand_views(
            "SELECT x.a, y.b FROM public.v x JOIN public.v AS y ON x.a = y.b",
            &[v],
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            sql,
            "SELECT x.a, y.b FROM (SELECT t.a, t.b FROM public.t WHERE t.a > 0) x JOIN \
             (SELECT t.a, t.b FROM public.t WHERE t.a > 0) AS y ON x.a = y.b"
        );
    }

    #[test]
    fn views_inside_subqueries_are_expanded_and_other_names_kept() {
        let v = view("s", "v", "SELECT t.a FROM s.t");
        let (sql, n) = expand_views(
            "SELECT u.a FROM public.u WHERE u.a IN (SELECT v.a FROM s.v) AND u.a > 1",
            &[v],
        )
        .unwrap();
        assert_eq!(n, 1);
        assert!(sql.contains("(SELECT t.a FROM s.t) AS \"v\""), "{sql}");
        assert!(sql.contains("FROM public.u"), "{sql}");
    }

    #[test]
    fn names_needing_quotes_stay_quoted() {
        let v = ViewDefinition {
            reference: RelationRef {
                schema: Some("S p".into()),
                name: "we\"ird".into(),
            },
            definition: "SELECT t.a FROM \"S p\".t".into(),
        };
        let (sql, n) =
            expand_views("SELECT \"we\"\"ird\".a FROM \"S p\".\"we\"\"ird\"", &[v]).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            sql,
            "SELECT \"we\"\"ird\".a FROM (SELECT t.a FROM \"S p\".t) AS \"we\"\"ird\""
        );
    }

    #[test]
    fn a_definition_that_is_not_one_query_is_an_error() {
        let v = view("public", "v", "SELECT 1; SELECT 2");
        assert!(expand_views("SELECT * FROM public.v", &[v]).is_err());
    }
}
