//! Asking PostgreSQL about a defining query so the planner can plan it: the query's output
//! columns (through a temporary view, which also validates the query with the caller's
//! privileges), the views it reads expanded where allowed (see [`super::views`]), and for
//! every relation it names: what it is, its columns and primary key.

use pgtrickle_planner::{
    plan_stream_table, plan_unreadable, referenced_relations, ColumnDef, EffectiveMode, PlanError,
    PlanInput, RefreshMode, RelationKind, RelationRef, SourceRelation, StName, StreamPlan,
};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::{
    quote_ident, quote_literal, swap_search_path, SqlRunner, SqlRunnerExt,
};

/// A source relation as found in the database.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its OID.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: RelationKind,
    /// Columns (name, type).
    pub columns: Vec<ColumnDef>,
}

impl Source {
    /// True when changes are captured inline by triggers (tables and stream tables).
    pub fn has_capture(&self) -> bool {
        matches!(self.kind, RelationKind::Table | RelationKind::StreamTable)
    }

    /// True when changes are found by polling (foreign tables, read through their mirror).
    pub fn is_polled(&self) -> bool {
        self.kind == RelationKind::ForeignTable
    }

    /// The schema-qualified, quoted name.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// A described defining query, ready for the planner.
pub struct Described {
    /// The planner's input.
    pub input: PlanInput,
    /// The sources, parallel to `input.relations`.
    pub sources: Vec<Source>,
    /// The views expanded into the query (dependencies of the stream table, not sources).
    pub views: Vec<Source>,
    /// Why views were not expanded (they stay sources without change capture). Added to
    /// the planner's notice or refusal.
    pub notes: Vec<String>,
    /// Set when sqlparser cannot read the query: why (it is planned FULL).
    pub unreadable: Option<String>,
}

impl Described {
    /// The plan, with [`Described::notes`] in its notice (when FULL) or refusal.
    pub fn plan(&self) -> EngineResult<StreamPlan> {
        let mut plan = match &self.unreadable {
            Some(why) => plan_unreadable(&self.input, why),
            None => plan_stream_table(&self.input),
        }
        .map_err(|e| self.explain_refusal(e))?;
        if plan.mode == EffectiveMode::Full {
            plan.notice = plan.notice.map(|n| self.with_notes(&n));
        }
        Ok(plan)
    }

    /// `notice` (AUTO's fallback to FULL) with [`Described::notes`] appended.
    pub fn with_notes(&self, notice: &str) -> String {
        if self.notes.is_empty() {
            notice.to_string()
        } else {
            format!("{notice} ({})", self.notes.join("; "))
        }
    }

    /// A planner refusal with [`Described::notes`] appended to its message.
    pub fn explain_refusal(&self, e: pgtrickle_planner::PlanError) -> EngineError {
        match e {
            pgtrickle_planner::PlanError::FeatureNotSupported(m) if !self.notes.is_empty() => {
                pgtrickle_planner::PlanError::FeatureNotSupported(self.with_notes(&m)).into()
            }
            other => other.into(),
        }
    }
}

/// Resolves the stream table's schema (the current schema when unqualified).
pub async fn resolve_name<R: SqlRunner>(sql: &mut R, name: &StName) -> EngineResult<StName> {
    let schema = match &name.schema {
        Some(s) => s.clone(),
        None => sql
            .value("SELECT pg_catalog.current_schema()")
            .await?
            .ok_or_else(|| EngineError::api("3F000", "no schema has been selected to create in"))?,
    };
    Ok(StName {
        schema: Some(schema),
        name: name.name.clone(),
    })
}

/// Describes `query` for stream table `name` (already resolved). With `expand`, the views it
/// reads are expanded where allowed; re-planning an existing stream table does not expand
/// (its capture and dependencies were set up for the sources it had).
pub async fn describe<R: SqlRunner>(
    sql: &mut R,
    name: &StName,
    query: &str,
    mode: RefreshMode,
    expand: bool,
) -> EngineResult<Described> {
    // Validates the query as the calling role (with its search_path); then everything is read
    // with only pg_catalog on the path, so that the resolved query, the column types and the
    // sources come out schema-qualified (see [`resolve`]). The caller's search_path is restored
    // for the rest of its transaction.
    sql.run(&format!("CREATE TEMP VIEW __pgt_describe AS {query}"))
        .await?;
    let saved = swap_search_path(sql, "pg_catalog").await?;
    let described = describe_resolved(sql, name, mode, expand).await;
    swap_search_path(sql, &saved).await?;
    sql.run("DROP VIEW pg_temp.__pgt_describe").await?;
    described
}

/// [`describe`] once the view exists and the search_path is pg_catalog alone.
async fn describe_resolved<R: SqlRunner>(
    sql: &mut R,
    name: &StName,
    mode: RefreshMode,
    expand: bool,
) -> EngineResult<Described> {
    let columns = columns_of(sql, "pg_temp.__pgt_describe").await?;
    let query = resolve(sql).await?;
    let (query, views, notes) = if expand {
        let e = super::views::expand(sql, &query).await?;
        (e.query, e.views, e.kept)
    } else {
        (query, Vec::new(), Vec::new())
    };
    let query = query.as_str();
    // A query PostgreSQL accepted but sqlparser cannot read is planned FULL (see
    // `pgtrickle_planner::plan_unreadable`), its sources taken from the view's dependencies.
    let (refs, unreadable) = match referenced_relations(query) {
        Ok(refs) => (refs, None),
        Err(PlanError::Syntax(why)) => (depended_on(sql).await?, Some(why)),
        Err(e) => return Err(e.into()),
    };

    let mut relations = Vec::new();
    let mut sources = Vec::new();
    for r in refs {
        let text = match &r.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&r.name)),
            None => quote_ident(&r.name),
        };
        let row = sql
            .rows(&format!(
                "SELECT c.oid, n.nspname, c.relname, c.relkind, {} \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = pg_catalog.to_regclass({})",
                crate::engine::catalog::stream_tables::is_storage_sql("c.oid"),
                quote_literal(&text)
            ))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::api("42P01", format!("relation \"{r}\" does not exist")))?;
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let oid: u32 = field(0).parse().unwrap_or(0);
        let kind = match (field(3).as_str(), field(4).as_str()) {
            (_, "t") => RelationKind::StreamTable,
            ("r" | "p", _) => RelationKind::Table,
            ("f", _) => RelationKind::ForeignTable,
            ("v" | "m", _) => RelationKind::View,
            (other, _) => {
                return Err(EngineError::api(
                    "0A000",
                    format!("relation \"{r}\" of kind {other:?} cannot be a stream table source"),
                ))
            }
        };
        let mut columns = columns_of(sql, &oid.to_string()).await?;
        if kind == RelationKind::StreamTable {
            // A stream table's hidden columns are its own business.
            columns.retain(|c| !c.name.starts_with("__pgt_"));
        }
        let source = Source {
            oid,
            schema: field(1),
            name: field(2),
            kind,
            columns,
        };
        let primary_key = primary_key(sql, oid).await?;
        relations.push(SourceRelation {
            reference: r,
            resolved: StName {
                schema: Some(source.schema.clone()),
                name: source.name.clone(),
            },
            kind,
            columns: source.columns.clone(),
            primary_key,
            current: if source.is_polled() {
                mirror_relation(oid, &source.columns)
            } else {
                source.qualified()
            },
            // The statements' holes for this source's delta carry its OID (see
            // `crate::engine::refresh::delta`).
            delta_key: (source.has_capture() || source.is_polled()).then_some(oid),
        });
        sources.push(source);
    }
    let storage = format!(
        "{}.{}",
        quote_ident(name.schema.as_deref().unwrap_or("public")),
        quote_ident(&name.name)
    );
    Ok(Described {
        input: PlanInput {
            stream_table: name.clone(),
            storage,
            query: query.to_string(),
            refresh_mode: mode,
            columns,
            relations,
        },
        sources,
        views,
        notes,
        unreadable,
    })
}

/// The relations `pg_temp.__pgt_describe` reads, from its rule's dependencies, as
/// schema-qualified references.
async fn depended_on<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<RelationRef>> {
    Ok(sql
        .rows(
            "SELECT DISTINCT n.nspname, c.relname FROM pg_catalog.pg_rewrite r \
             JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
             AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             JOIN pg_catalog.pg_class c ON c.oid = d.refobjid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE r.ev_class = 'pg_temp.__pgt_describe'::pg_catalog.regclass \
             AND d.refobjid <> r.ev_class ORDER BY 1, 2",
        )
        .await?
        .into_iter()
        .map(|row| RelationRef {
            schema: row.first().cloned().flatten(),
            name: row.get(1).cloned().flatten().unwrap_or_default(),
        })
        .collect())
}

/// The defining query as PostgreSQL resolved it for the view `pg_temp.__pgt_describe`, printed
/// with only `pg_catalog` on the search_path: every relation, function, operator and type
/// outside `pg_catalog` comes out schema-qualified and every implicit cast explicit, so that
/// what a refresh runs (with `search_path = pg_catalog, pg_temp`) is what the creator meant,
/// whatever objects any role creates later on anyone's path. Runs with that search_path (see
/// [`describe`]).
async fn resolve<R: SqlRunner>(sql: &mut R) -> EngineResult<String> {
    let text = sql
        .value(
            "SELECT pg_catalog.pg_get_viewdef('pg_temp.__pgt_describe'::pg_catalog.regclass, true)",
        )
        .await?
        .ok_or_else(|| EngineError::api("XX000", "the query could not be resolved"))?;
    // pg_get_viewdef ends the statement with a semicolon.
    Ok(text.trim().trim_end_matches(';').trim_end().to_string())
}

/// A foreign source's mirror as a relation with exactly the source's columns (see
/// `pgtrickle_cdc::poll::mirror`).
fn mirror_relation(oid: u32, columns: &[ColumnDef]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    format!(
        "(SELECT {} FROM {})",
        cols.join(", "),
        pgtrickle_cdc::poll::mirror::mirror_table(oid)
    )
}

/// Columns of a relation given as a regclass expression (an OID or a name).
async fn columns_of<R: SqlRunner>(sql: &mut R, rel: &str) -> EngineResult<Vec<ColumnDef>> {
    let rel = if rel.chars().all(|c| c.is_ascii_digit()) {
        format!("{rel}::oid")
    } else {
        format!("{}::regclass", quote_literal(rel))
    };
    Ok(sql
        .rows(&format!(
            "SELECT attname, pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute \
             WHERE attrelid = {rel} AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ))
        .await?
        .into_iter()
        .map(|r| ColumnDef {
            name: r.first().cloned().flatten().unwrap_or_default(),
            type_name: r.get(1).cloned().flatten().unwrap_or_default(),
        })
        .collect())
}

async fn primary_key<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<Option<Vec<String>>> {
    let cols: Vec<String> = sql
        .rows(&format!(
            "SELECT a.attname FROM pg_index i \
             JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = {oid}::oid AND i.indisprimary ORDER BY k.ord"
        ))
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    Ok((!cols.is_empty()).then_some(cols))
}
