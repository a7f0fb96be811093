//! The defining query rewritten to read each source's `current` relation, and the FULL-mode
//! storage and refresh built from it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Query, TableAlias, TableFactor, VisitMut, VisitorMut,
};

use crate::api_call::{fold_ident, fold_name};
use crate::error::{PlanError, Result};
use crate::input::{RelationRef, SourceRelation};

/// The query text with every relation replaced by its `current` relation (aliases kept, the
/// relation's own name used as alias when there was none).
pub fn query_over_current(q: &Query, relations: &[SourceRelation]) -> Result<String> {
    let mut q = q.clone();
    let mut v = Subst {
        relations,
        ctes: HashSet::new(),
        error: None,
    };
    let _ = q.visit(&mut v);
    if let Some(e) = v.error {
        return Err(e);
    }
    let mut sql = q.to_string();
    for (i, r) in relations.iter().enumerate() {
        sql = sql.replace(&format!("__pgt_r{i}__"), &r.current);
    }
    Ok(sql)
}

struct Subst<'a> {
    relations: &'a [SourceRelation],
    ctes: HashSet<String>,
    error: Option<PlanError>,
}

impl VisitorMut for Subst<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let Some(w) = &q.with {
            for c in &w.cte_tables {
                self.ctes.insert(fold_ident(&c.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

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
        let Some(parts) = fold_name(name) else {
            return ControlFlow::Continue(());
        };
        let r = match parts.as_slice() {
            [n] if self.ctes.contains(n) => return ControlFlow::Continue(()),
            [n] => RelationRef {
                schema: None,
                name: n.clone(),
            },
            [s, n] => RelationRef {
                schema: Some(s.clone()),
                name: n.clone(),
            },
            _ => return ControlFlow::Continue(()),
        };
        let Some(idx) = self.relations.iter().position(|x| x.reference == r) else {
            self.error = Some(PlanError::UndefinedTable(format!(
                "relation \"{r}\" is not among the relations described for planning"
            )));
            return ControlFlow::Break(());
        };
        if alias.is_none() {
            if let Some(ObjectNamePart::Identifier(last)) = name.0.last() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: last.clone(),
                    columns: vec![],
                    at: None,
                });
            }
        }
        *name = ObjectName::from(vec![Ident::new(format!("__pgt_r{idx}__"))]);
        ControlFlow::Continue(())
    }
}
