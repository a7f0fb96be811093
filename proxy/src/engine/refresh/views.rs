//! Expanding the (non-materialized) views a defining query reads into the query, so that the
//! planner sees, and the engine captures, their base relations. A view is expanded only when
//! that gives the creating role (the stream table's owner, whose rights every refresh uses)
//! nothing it cannot read directly, and means the same:
//! - it reads every relation the view reads with its own table-level SELECT (and USAGE on the
//!   relation's schema): a view is often the way a role is given part of a table it may not
//!   read, and the expanded query (and its change buffers) would read the whole table;
//! - no relation the view reads has row-level security: a view applies its owner's policies
//!   (unless `security_invoker`), the expanded query the stream table owner's;
//! - the view is not a `security_barrier` view (whose conditions PostgreSQL evaluates before
//!   the query's own: an expanded query may evaluate a failing expression on rows the view
//!   hides) and not a system view (`pg_catalog`, `information_schema`);
//! - its definition is one query the planner reads, and the expanded query runs for the role.
//!
//! A view not expanded stays a source without change capture (FULL refresh in AUTO, with the
//! reason in the notice). Runs with `search_path = pg_catalog` (see `describe`), so that the
//! definitions come out with every name qualified.

use pgtrickle_planner::{expand_views, referenced_relations, RelationKind, ViewDefinition};

use crate::engine::error::EngineResult;
use crate::engine::refresh::describe::Source;
use crate::engine::sql::runner::{quote_ident, quote_literal, SqlRunner, SqlRunnerExt};

/// Views nested deeper than this are kept as sources.
const MAX_ROUNDS: usize = 16;

/// A defining query with its views expanded.
pub struct Expanded {
    /// The query to plan.
    pub query: String,
    /// The views expanded into it (recorded as dependencies: dropping one, or revoking the
    /// owner's SELECT on it, stops the refreshes).
    pub views: Vec<Source>,
    /// Why each view that was not expanded was kept (`view s.v: ...`).
    pub kept: Vec<String>,
}

/// Expands the views of `query` (PostgreSQL's deparsed text) that may be expanded.
pub async fn expand<R: SqlRunner>(sql: &mut R, query: &str) -> EngineResult<Expanded> {
    let mut out = Expanded {
        query: query.to_string(),
        views: Vec::new(),
        kept: Vec::new(),
    };
    let mut kept_oids: Vec<u32> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let Ok(refs) = referenced_relations(&out.query) else {
            break;
        };
        let mut expanded_any = false;
        for r in refs {
            let text = match &r.schema {
                Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&r.name)),
                None => quote_ident(&r.name),
            };
            let Some(view) = lookup_view(sql, &text).await? else {
                continue;
            };
            if kept_oids.contains(&view.oid) {
                continue;
            }
            let candidate = match definition(sql, &view).await? {
                Ok(definition) => expand_views(
                    &out.query,
                    &[ViewDefinition {
                        reference: r.clone(),
                        definition,
                    }],
                )
                .map_err(|e| format!("its definition cannot be planned ({e})"))
                .and_then(|(q, _)| match referenced_relations(&q) {
                    Ok(_) => Ok(q),
                    Err(e) => Err(format!("its definition cannot be planned ({e})")),
                }),
                Err(why) => Err(why),
            };
            match candidate {
                Ok(q) => {
                    out.query = q;
                    if !out.views.iter().any(|v| v.oid == view.oid) {
                        out.views.push(view);
                    }
                    expanded_any = true;
                }
                Err(why) => {
                    out.kept.push(format!("view {} {why}", view.qualified()));
                    kept_oids.push(view.oid);
                }
            }
        }
        if !expanded_any {
            break;
        }
    }
    if !out.views.is_empty() {
        if let Err(why) = runs_for_role(sql, &out.query).await? {
            return Ok(Expanded {
                query: query.to_string(),
                views: Vec::new(),
                kept: vec![format!(
                    "views are not expanded: the expanded query fails for the creating role \
                     ({why})"
                )],
            });
        }
    }
    Ok(out)
}

/// The view named `name` (quoted as needed), if it is an ordinary view.
async fn lookup_view<R: SqlRunner>(sql: &mut R, name: &str) -> EngineResult<Option<Source>> {
    let rows = sql
        .rows(&format!(
            "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = pg_catalog.to_regclass({}) AND c.relkind = 'v'",
            quote_literal(name)
        ))
        .await?;
    Ok(rows.into_iter().next().map(|row| {
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        Source {
            oid: field(0).parse().unwrap_or(0),
            schema: field(1),
            name: field(2),
            kind: RelationKind::View,
            columns: Vec::new(),
        }
    }))
}

/// The definition of `view` when it may be expanded, else why not.
async fn definition<R: SqlRunner>(
    sql: &mut R,
    view: &Source,
) -> EngineResult<Result<String, String>> {
    if matches!(view.schema.as_str(), "pg_catalog" | "information_schema") {
        return Ok(Err("is a system view".into()));
    }
    let oid = view.oid;
    let barrier = sql
        .value(&format!(
            "SELECT pg_catalog.bool_or(option_value::pg_catalog.bool)::pg_catalog.text \
             FROM pg_catalog.pg_class c, pg_catalog.pg_options_to_table(c.reloptions) \
             WHERE c.oid = {oid}::pg_catalog.oid AND option_name = 'security_barrier'"
        ))
        .await?;
    if barrier.as_deref() == Some("true") {
        return Ok(Err(
            "is a security_barrier view (its conditions must run before the query's own)".into(),
        ));
    }
    // The relations the view's rule reads, as the creating role sees them.
    let reads = sql
        .rows(&format!(
            "SELECT DISTINCT d.refobjid::pg_catalog.regclass::pg_catalog.text, \
             pg_catalog.has_table_privilege(d.refobjid, 'SELECT') \
             AND pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE'), c.relrowsecurity \
             FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d \
             ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid \
             AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             JOIN pg_catalog.pg_class c ON c.oid = d.refobjid \
             WHERE r.ev_class = {oid}::pg_catalog.oid AND d.refobjid <> {oid}::pg_catalog.oid \
             ORDER BY 1"
        ))
        .await?;
    for row in &reads {
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        if field(1) != "t" {
            return Ok(Err(format!(
                "reads {} with its owner's rights, which the creating role does not have \
                 (expanded, the stream table would read it in full)",
                field(0)
            )));
        }
        if field(2) == "t" {
            return Ok(Err(format!(
                "reads {}, which has row-level security (the view applies its owner's \
                 policies)",
                field(0)
            )));
        }
    }
    let text = sql
        .value(&format!(
            "SELECT pg_catalog.pg_get_viewdef({oid}::pg_catalog.oid, true)"
        ))
        .await?
        .unwrap_or_default();
    let text = text.trim().trim_end_matches(';').trim_end().to_string();
    if text.contains("__pgt_") {
        return Ok(Err("uses a name starting with __pgt_".into()));
    }
    Ok(Ok(text))
}

/// Whether `query` runs for the current role (privileges on every relation, schema and
/// function it names are checked when its execution starts; `LIMIT 0` reads nothing).
async fn runs_for_role<R: SqlRunner>(sql: &mut R, query: &str) -> EngineResult<Result<(), String>> {
    sql.run("SAVEPOINT __pgt_views").await?;
    match sql
        .run(&format!("SELECT FROM ({query}) AS __pgt_expanded LIMIT 0"))
        .await
    {
        Ok(_) => {
            sql.run("RELEASE SAVEPOINT __pgt_views").await?;
            Ok(Ok(()))
        }
        Err(e) => {
            sql.run("ROLLBACK TO SAVEPOINT __pgt_views; RELEASE SAVEPOINT __pgt_views")
                .await?;
            Ok(Err(e.to_string()))
        }
    }
}
