//! `plan_stream_table`: from a [`PlanInput`] to a [`StreamPlan`] — checks, refresh mode
//! resolution (AUTO, FULL, DIFFERENTIAL), storage DDL, refresh SQL and explain text.

use crate::api_call::RefreshMode;
use crate::error::{PlanError, Result};
use crate::explain;
use crate::input::{ColumnDef, PlanInput};
use crate::query::model::{self, Shape, Unsupported};
use crate::query::parse_query;
use crate::sqlgen::relation::{sources_of, RelGen, Version};
use crate::sqlgen::{aggregate, bag, full, keyed};
use crate::statement::RefreshStatement;

/// First statement of every DIFFERENTIAL refresh: the statements are large and touch few
/// rows, so JIT compilation (seconds for such plans) would dwarf their run time.
pub const NO_JIT: &str = "SET LOCAL jit = off";

/// The refresh mode a plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveMode {
    /// Recompute the whole query each refresh.
    Full,
    /// Apply the sources' changes.
    Differential,
}

/// How the storage table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageLayout {
    /// Exactly the query's columns (FULL plans).
    Plain,
    /// One row per result row, plus `__pgt_hash`.
    Bag,
    /// One row per group, plus `__pgt_count`, aggregate state and `__pgt_hash`.
    Grouped,
    /// One row per result row, plus `__pgt_kh`, the hash of the row's key (keyed recompute).
    Keyed,
}

impl std::fmt::Display for StorageLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageLayout::Plain => "plain (the query's columns)",
            StorageLayout::Bag => "bag (one row per result row, with a row hash)",
            StorageLayout::Grouped => "grouped (one row per group, with its aggregate state)",
            StorageLayout::Keyed => "keyed (rows with a hash of their recompute key)",
        })
    }
}

/// Everything the engine needs to create and maintain one stream table.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// The mode the refreshes use.
    pub mode: EffectiveMode,
    /// Set when AUTO fell back to FULL: why (send it to the client as a NOTICE).
    pub notice: Option<String>,
    /// The storage layout.
    pub layout: StorageLayout,
    /// Statements creating the storage table (and its index) named `PlanInput::storage`.
    pub storage_ddl: Vec<String>,
    /// Hidden columns of the storage (all named `__pgt_*`), after the query's columns.
    pub hidden_columns: Vec<String>,
    /// FULL refresh: statements to run in order in one transaction.
    pub full_refresh: Vec<String>,
    /// DIFFERENTIAL refresh (None for FULL plans): statements to run in order in the refresh's
    /// REPEATABLE READ transaction, each [rendered](RefreshStatement::render) with the relations
    /// holding exactly the changes being consumed of the sources whose deltas it reads
    /// ([`RefreshStatement::delta_reads`]; an empty delta relation is fine).
    pub differential_refresh: Option<Vec<RefreshStatement>>,
    /// Readable plan for `explain_st`: mode, the operator tree the DIFFERENTIAL statements are
    /// generated from (the query as written for FULL plans), delta SQL per source.
    pub explain: String,
    /// Indexes into `PlanInput::relations` of the sources the query reads (for dependency
    /// tracking), without repeats.
    pub sources: Vec<usize>,
}

/// Plans a stream table. See the crate docs for the contract on `current` and the deltas.
pub fn plan_stream_table(input: &PlanInput) -> Result<StreamPlan> {
    let parsed = parse_query(&input.query)?;
    for r in &input.relations {
        if r.resolved == input.stream_table {
            return Err(PlanError::InvalidObjectDefinition(format!(
                "the defining query of stream table {} reads the stream table itself",
                input.stream_table
            )));
        }
    }
    check_columns(&input.columns)?;
    let query_sql = full::query_over_current(&parsed.query, &input.relations)?;
    let mut sources: Vec<usize> = Vec::new();
    for r in &parsed.relations {
        if let Some(i) = input.relations.iter().position(|x| &x.reference == r) {
            sources.push(i);
        }
    }

    let mut model = differential_model(input, &parsed, &query_sql);
    if let Ok(shape) = &model {
        let n = match shape {
            Shape::Bag(b) => b.names().len(),
            Shape::Aggregate(p) => p.outputs.len(),
            Shape::Keyed(_) => input.columns.len(),
        };
        // The model must see exactly the described columns; if not (a select-list form it
        // expands differently), it is not used.
        if n != input.columns.len() {
            model = Err(Unsupported(format!(
                "this select list ({n} columns seen where {} were described)",
                input.columns.len()
            )));
        }
    }
    let (mode, notice) = match (input.refresh_mode, &model) {
        (RefreshMode::Full, _) => (EffectiveMode::Full, None),
        (RefreshMode::Auto, Ok(_)) => (EffectiveMode::Differential, None),
        (RefreshMode::Auto, Err(Unsupported(why))) => (
            EffectiveMode::Full,
            Some(format!(
                "stream table {} uses FULL refresh: DIFFERENTIAL refresh does not support {why}",
                input.stream_table
            )),
        ),
        (RefreshMode::Differential, Ok(_)) => (EffectiveMode::Differential, None),
        (RefreshMode::Immediate, Ok(_)) => (
            EffectiveMode::Differential,
            Some(format!(
                "stream table {} is refreshed DIFFERENTIAL as soon as a write to its sources \
                 commits, whatever its schedule; pgtrickle-proxy cannot update it inside the \
                 writing transaction",
                input.stream_table
            )),
        ),
        (RefreshMode::Differential | RefreshMode::Immediate, Err(Unsupported(why))) => {
            return Err(PlanError::FeatureNotSupported(format!(
                "{why} is not supported with refresh_mode {}; use refresh_mode => 'FULL' or \
                 'AUTO'",
                input.refresh_mode
            )))
        }
    };
    let storage = &input.storage;
    let cols = &input.columns;
    let rg = RelGen {
        relations: &input.relations,
        only: None,
    };
    let (layout, storage_ddl, full_refresh, differential_refresh, hidden_columns) =
        match (&model, mode) {
            (Ok(Shape::Bag(body)), EffectiveMode::Differential) => {
                let delta = rg.body(body, Version::Delta, "__pgt_w");
                (
                    StorageLayout::Bag,
                    bag::ddl(storage, cols),
                    bag::full(storage, cols, &query_sql),
                    Some(vec![
                        NO_JIT.into(),
                        bag::differential(storage, cols, &delta),
                    ]),
                    vec!["__pgt_hash".to_string()],
                )
            }
            (Ok(Shape::Aggregate(plan)), EffectiveMode::Differential) => {
                let hidden = aggregate::ddl(storage, cols, plan);
                let names = hidden_names(plan, cols);
                (
                    StorageLayout::Grouped,
                    hidden,
                    aggregate::full(&rg, storage, cols, plan),
                    Some(vec![
                        NO_JIT.into(),
                        aggregate::differential(&rg, storage, cols, plan),
                    ]),
                    names,
                )
            }
            (Ok(Shape::Keyed(plan)), EffectiveMode::Differential) => (
                StorageLayout::Keyed,
                keyed::ddl(storage, cols),
                keyed::full(storage, cols, plan, &input.relations)?,
                Some(vec![
                    NO_JIT.into(),
                    keyed::differential(&rg, storage, cols, plan)?,
                ]),
                vec!["__pgt_kh".to_string()],
            ),
            _ => (
                StorageLayout::Plain,
                vec![format!(
                    "CREATE TABLE {storage} ({})",
                    crate::sqlgen::col_defs(cols)
                )],
                vec![
                    format!("DELETE FROM {storage}"),
                    format!(
                        "INSERT INTO {storage} ({}) {query_sql}",
                        crate::sqlgen::col_list(cols)
                    ),
                ],
                None,
                vec![],
            ),
        };
    let mut plan = StreamPlan {
        mode,
        notice,
        layout,
        storage_ddl,
        hidden_columns,
        full_refresh,
        differential_refresh: differential_refresh
            .map(|d| {
                d.iter()
                    .map(|s| RefreshStatement::from_generated(s))
                    .collect()
            })
            .transpose()?,
        explain: String::new(),
        sources,
    };
    // With a model, the inputs hold no NUL: one in a FULL statement would be a delta hole.
    if mode == EffectiveMode::Differential && plan.full_refresh.iter().any(|s| s.contains('\0')) {
        return Err(PlanError::Internal(
            "a FULL refresh statement reads a delta".into(),
        ));
    }
    plan.explain = explain::render(input, &plan, model.as_ref().ok(), &query_sql)?;
    Ok(plan)
}

impl StreamPlan {
    /// The DIFFERENTIAL statements in their stored form ([`RefreshStatement::to_stored`]).
    pub fn stored_differential_refresh(&self) -> Option<Vec<String>> {
        self.differential_refresh
            .as_ref()
            .map(|d| d.iter().map(RefreshStatement::to_stored).collect())
    }
}

fn hidden_names(plan: &model::AggPlan, cols: &[ColumnDef]) -> Vec<String> {
    let ddl = aggregate::ddl("x", cols, plan);
    // Hidden column names are the `__pgt_*` words of the CREATE TABLE statement.
    ddl[0]
        .split([' ', '(', ',', ')'])
        .filter(|w| w.starts_with("__pgt_"))
        .map(str::to_string)
        .collect()
}

/// Checks the query's output columns: at least one, distinct names, none reserved.
pub(crate) fn check_columns(cols: &[ColumnDef]) -> Result<()> {
    if cols.is_empty() {
        return Err(PlanError::InvalidObjectDefinition(
            "the defining query must return at least one column".into(),
        ));
    }
    for (i, c) in cols.iter().enumerate() {
        if cols[..i].iter().any(|d| d.name == c.name) {
            return Err(PlanError::InvalidObjectDefinition(format!(
                "column \"{}\" appears more than once in the defining query's result; give the \
                 columns distinct names with AS",
                c.name
            )));
        }
        if c.name.starts_with("__pgt_") {
            return Err(PlanError::FeatureNotSupported(format!(
                "column name \"{}\" is reserved (names starting with __pgt_ are hidden columns)",
                c.name
            )));
        }
    }
    Ok(())
}

/// Types whose values PostgreSQL cannot hash or compare for equality: the differential
/// storage needs both (`json` is compared by its text form instead, see [`bag::by_text`]).
const UNHASHABLE: &[&str] = &[
    "xml", "point", "line", "lseg", "box", "path", "polygon", "circle",
];

/// The differential model of the query (`query_sql`: the query as the FULL refresh prints it).
fn differential_model(
    input: &PlanInput,
    parsed: &crate::query::ParsedQuery,
    query_sql: &str,
) -> std::result::Result<Shape, Unsupported> {
    // Holes for the deltas are marked with NUL in the generated SQL (`crate::statement`), which
    // PostgreSQL text never holds; the query's text here is as printed (an escaped literal
    // like E'\000' is printed with the character it means).
    let mut texts = vec![query_sql, &input.storage];
    for c in input
        .relations
        .iter()
        .flat_map(|r| &r.columns)
        .chain(&input.columns)
    {
        texts.extend([c.name.as_str(), &c.type_name]);
    }
    texts.extend(input.relations.iter().map(|r| r.current.as_str()));
    if texts.iter().any(|t| t.contains('\0')) {
        return Err(Unsupported("a NUL character".into()));
    }
    if let Some(f) = parsed.volatile.first() {
        return Err(Unsupported(format!("volatile function {f}()")));
    }
    if let Some(clause) = &parsed.unordered_limit {
        return Err(Unsupported(format!(
            "{clause} without ORDER BY in a subquery (the rows it keeps are PostgreSQL's choice \
             at each run)"
        )));
    }
    if let Some(f) = parsed.time_dependent.first() {
        return Err(Unsupported(format!(
            "{f}, whose value changes between refreshes"
        )));
    }
    for c in &input.columns {
        let base = c.type_name.trim_end_matches("[]").to_ascii_lowercase();
        if UNHASHABLE.contains(&base.as_str()) {
            return Err(Unsupported(format!(
                "column \"{}\" of type {} (no equality)",
                c.name, c.type_name
            )));
        }
    }
    model::build(&parsed.query, &input.relations)
}

/// Source indexes the model reads.
pub(crate) fn body_sources(shape: &Shape) -> Vec<usize> {
    let mut v = Vec::new();
    match shape {
        Shape::Bag(b) => sources_of(b, &mut v),
        Shape::Aggregate(p) => match &p.input {
            model::AggInput::Grouped { block, .. } => {
                sources_of(&model::Body::Block(block.clone()), &mut v)
            }
            model::AggInput::Distinct(b) => sources_of(b, &mut v),
        },
        Shape::Keyed(k) => match &k.input {
            model::KeyedInput::Keys { body, .. } => sources_of(body, &mut v),
            model::KeyedInput::Whole(inner) => v.extend(body_sources(inner)),
        },
    }
    v.sort_unstable();
    v.dedup();
    v
}
