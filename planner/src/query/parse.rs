//! Parses a defining query and applies the checks that hold in every refresh mode: one SELECT
//! statement; no LIMIT/OFFSET without ORDER BY, FOR UPDATE/SHARE or TABLESAMPLE. Also collects
//! the relations the query reads and the volatile or time-dependent functions it calls.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, SetExpr, Statement, TableFactor, Visit, Visitor};

use crate::api_call::fold_name;
use crate::error::{PlanError, Result};
use crate::input::RelationRef;
use crate::limits::parse_bounded;

use super::normalize::normalize;

/// A defining query that passed the mode-independent checks.
#[derive(Debug, Clone)]
pub struct ParsedQuery {
    /// The parsed query.
    pub query: Query,
    /// Relations it reads, as written (CTE names excluded), sorted.
    pub relations: Vec<RelationRef>,
    /// Volatile functions it calls (lower case), e.g. `random`.
    pub volatile: Vec<String>,
    /// Functions whose value changes with time although stable within a transaction, e.g.
    /// `now`, `current_date`.
    pub time_dependent: Vec<String>,
    /// A LIMIT, OFFSET or FETCH without ORDER BY in a subquery, as written: the rows it keeps
    /// are PostgreSQL's choice at each run, so the query is only refreshed FULL.
    pub unordered_limit: Option<String>,
}

const VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "setseed",
    "clock_timestamp",
    "statement_timestamp",
    "timeofday",
    "nextval",
    "setval",
    "currval",
    "lastval",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "txid_current",
    "pg_current_xact_id",
    "pg_sleep",
    "dblink",
    "pg_read_file",
];

const TIME_DEPENDENT: &[&str] = &[
    // age(x) with one argument measures from current_date (age(a, b) does not, but is rare).
    "age",
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "transaction_timestamp",
];

/// Parses `sql` as a defining query and checks it.
pub fn parse_query(sql: &str) -> Result<ParsedQuery> {
    let statements = match parse_bounded(sql, "defining query") {
        Ok(s) => s,
        Err(Err(e)) => return Err(e),
        Err(Ok(e)) => {
            if let Some(lock) = row_lock_clause(sql) {
                return Err(PlanError::FeatureNotSupported(format!(
                    "FOR UPDATE/FOR SHARE ({lock}) is not allowed in a defining query"
                )));
            }
            return Err(PlanError::Syntax(format!(
                "defining query: pgtrickle-proxy's SQL parser (sqlparser) cannot read this \
                 query ({e}); if PostgreSQL accepts it, rewrite the construct it names"
            )));
        }
    };
    let mut query = match statements.as_slice() {
        [Statement::Query(q)] => (**q).clone(),
        [] => return Err(PlanError::Syntax("defining query is empty".into())),
        [_] => {
            return Err(PlanError::InvalidObjectDefinition(
                "defining query must be a SELECT statement".into(),
            ))
        }
        _ => {
            return Err(PlanError::InvalidObjectDefinition(
                "defining query must be a single SELECT statement".into(),
            ))
        }
    };
    if sql.contains("__pgt_") {
        return Err(PlanError::FeatureNotSupported(
            "names starting with __pgt_ are reserved for pgtrickle's hidden columns".into(),
        ));
    }
    normalize(&mut query);
    let mut check = Checker::default();
    if let ControlFlow::Break(e) = query.visit(&mut check) {
        return Err(e);
    }
    let relations = check
        .relations
        .into_iter()
        .filter(|r| !(r.schema.is_none() && check.ctes.contains(&r.name)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(ParsedQuery {
        query,
        relations,
        volatile: check.volatile.into_iter().collect(),
        time_dependent: check.time_dependent.into_iter().collect(),
        unordered_limit: check.unordered_limit,
    })
}

/// `FOR KEY SHARE` or `FOR NO KEY UPDATE` in `sql`'s tokens (outside literals and comments),
/// which sqlparser does not read.
fn row_lock_clause(sql: &str) -> Option<&'static str> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&sqlparser::dialect::PostgreSqlDialect {}, sql)
        .tokenize()
        .ok()?;
    let mut words: Vec<String> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    words.push(String::new());
    words.windows(4).find_map(|w| match w {
        [a, b, c, _] if a == "FOR" && b == "KEY" && c == "SHARE" => Some("FOR KEY SHARE"),
        [a, b, c, d] if a == "FOR" && b == "NO" && c == "KEY" && d == "UPDATE" => {
            Some("FOR NO KEY UPDATE")
        }
        _ => None,
    })
}

/// The relations `sql` reads, as written (folded), for the caller to resolve before planning.
pub fn referenced_relations(sql: &str) -> Result<Vec<RelationRef>> {
    Ok(parse_query(sql)?.relations)
}

#[derive(Default)]
struct Checker {
    relations: Vec<RelationRef>,
    ctes: BTreeSet<String>,
    volatile: BTreeSet<String>,
    time_dependent: BTreeSet<String>,
    /// Set once the top query has been seen: every later query is a subquery or CTE.
    below_top: bool,
    unordered_limit: Option<String>,
}

impl Visitor for Checker {
    type Break = PlanError;

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<PlanError> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes
                    .insert(crate::api_call::fold_ident(&cte.alias.name));
            }
        }
        let top = !std::mem::replace(&mut self.below_top, true);
        let unordered = (q.limit_clause.is_some() || q.fetch.is_some()) && q.order_by.is_none();
        if unordered && !top {
            let clause = match (&q.limit_clause, &q.fetch) {
                (Some(l), _) => l.to_string(),
                (None, Some(f)) => f.to_string(),
                (None, None) => String::new(),
            };
            self.unordered_limit
                .get_or_insert_with(|| clause.trim().to_string());
        } else if unordered {
            return ControlFlow::Break(PlanError::FeatureNotSupported(
                "LIMIT/OFFSET/FETCH without ORDER BY is not allowed in a defining query: its \
                 result is not deterministic"
                    .into(),
            ));
        }
        if !q.locks.is_empty() {
            return ControlFlow::Break(PlanError::FeatureNotSupported(
                "FOR UPDATE/FOR SHARE is not allowed in a defining query".into(),
            ));
        }
        if let SetExpr::Select(s) = q.body.as_ref() {
            if s.into.is_some() {
                return ControlFlow::Break(PlanError::FeatureNotSupported(
                    "SELECT INTO is not allowed in a defining query".into(),
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<PlanError> {
        let sample = match t {
            TableFactor::Table { sample, .. } | TableFactor::Derived { sample, .. } => {
                sample.is_some()
            }
            _ => false,
        };
        if sample {
            return ControlFlow::Break(PlanError::FeatureNotSupported(
                "TABLESAMPLE is not allowed in a defining query: its result is not \
                 deterministic"
                    .into(),
            ));
        }
        if let TableFactor::Table {
            name, args: None, ..
        } = t
        {
            match fold_name(name).as_deref() {
                Some([n]) => self.relations.push(RelationRef {
                    schema: None,
                    name: n.clone(),
                }),
                Some([s, n]) => self.relations.push(RelationRef {
                    schema: Some(s.clone()),
                    name: n.clone(),
                }),
                _ => {
                    return ControlFlow::Break(PlanError::FeatureNotSupported(format!(
                        "relation name {name} is not supported (use name or schema.name)"
                    )))
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<PlanError> {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() > 2 {
                // schema.table.column is rewritten to table.column by `normalize` when the
                // FROM clause names schema.table without an alias.
                return ControlFlow::Break(PlanError::FeatureNotSupported(format!(
                    "column reference {e} is not supported in a defining query; write \
                     table_or_alias.column"
                )));
            }
        }
        if let Expr::Function(f) = e {
            if let Some(parts) = fold_name(&f.name) {
                let last = parts.last().cloned().unwrap_or_default();
                let schema_ok = parts.len() == 1 || parts[0] == "pg_catalog";
                if schema_ok && VOLATILE.contains(&last.as_str()) {
                    self.volatile.insert(last);
                } else if schema_ok && TIME_DEPENDENT.contains(&last.as_str()) {
                    self.time_dependent.insert(last);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(sql: &str) -> Vec<String> {
        referenced_relations(sql)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect()
    }

    #[test]
    fn collects_relations_folded_without_ctes() {
        assert_eq!(
            refs(
                "WITH c AS (SELECT * FROM Public.Orders) SELECT * FROM c JOIN \"Items\" i ON \
                 true, s.x WHERE EXISTS (SELECT 1 FROM y)"
            ),
            vec!["Items", "y", "public.orders", "s.x"]
        );
    }

    #[test]
    fn always_rejected() {
        let cases = [
            ("SELECT a FROM t LIMIT 5", "0A000", "LIMIT"),
            ("SELECT a FROM t OFFSET 5", "0A000", "ORDER BY"),
            ("SELECT a FROM t FOR UPDATE", "0A000", "FOR UPDATE"),
            ("SELECT a FROM t FOR SHARE", "0A000", "FOR UPDATE/FOR SHARE"),
            (
                "SELECT a FROM t TABLESAMPLE SYSTEM (10)",
                "0A000",
                "TABLESAMPLE",
            ),
            ("SELEC a FROM t", "42601", "defining query"),
            ("INSERT INTO t VALUES (1)", "42P17", "SELECT"),
            ("SELECT 1; SELECT 2", "42P17", "single"),
            ("SELECT 1 AS __pgt_x", "0A000", "__pgt_"),
            (
                "SELECT public.t.a FROM public.t AS x",
                "0A000",
                "table_or_alias.column",
            ),
            ("SELECT a FROM t FOR KEY SHARE", "0A000", "FOR KEY SHARE"),
            (
                "SELECT a FROM t FOR NO KEY UPDATE OF t",
                "0A000",
                "FOR NO KEY UPDATE",
            ),
            (
                "SELECT a FROM t ORDER BY a FOR SHARE SKIP LOCKED",
                "0A000",
                "FOR SHARE",
            ),
            ("SELECT a FROM t WHERE a @@@ 1 ! 2", "42601", "cannot read"),
        ];
        for (sql, state, frag) in cases {
            let e = parse_query(sql).unwrap_err();
            assert_eq!(e.sqlstate(), state, "{sql}: {e}");
            assert!(e.message().contains(frag), "{sql}: {e}");
        }
        assert!(parse_query("SELECT a FROM t ORDER BY a LIMIT 5").is_ok());
        // Below the top, an unordered LIMIT is noted (the query is FULL), not refused.
        let p = parse_query("SELECT * FROM (SELECT a FROM t LIMIT 1) s").unwrap();
        assert_eq!(p.unordered_limit.as_deref(), Some("LIMIT 1"));
        let p = parse_query("SELECT * FROM (SELECT a FROM t OFFSET 0) s").unwrap();
        assert_eq!(p.unordered_limit, None);
        let r = parse_query(
            "WITH RECURSIVE r AS (SELECT id FROM t UNION ALL SELECT t.id FROM t JOIN r ON \
             t.p = r.id) SELECT * FROM r",
        )
        .unwrap();
        assert_eq!(
            r.relations.len(),
            1,
            "the CTE's self-reference is no relation"
        );
    }

    #[test]
    fn three_part_column_references_name_the_table() {
        let p = parse_query("SELECT public.t.id, t.v FROM public.t WHERE public.t.id > 1").unwrap();
        assert_eq!(
            p.query.to_string(),
            "SELECT t.id, t.v FROM public.t WHERE t.id > 1"
        );
    }

    #[test]
    fn finds_volatile_and_time_functions() {
        let p = parse_query(
            "SELECT random(), now(), CURRENT_DATE, nextval('s'), lower(x) FROM t \
             WHERE y < pg_catalog.clock_timestamp()",
        )
        .unwrap();
        assert_eq!(p.volatile, vec!["clock_timestamp", "nextval", "random"]);
        assert_eq!(p.time_dependent, vec!["current_date", "now"]);
    }
}
