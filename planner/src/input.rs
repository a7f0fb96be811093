//! What the caller (the stream-table engine) tells the planner about a defining query: the
//! stream table, the query's output columns and every relation it reads, with the names of the
//! relations the generated SQL must read (`current`, `delta`).

use crate::api_call::{RefreshMode, StName};

/// A relation as the defining query names it (case-folded as PostgreSQL does), before the
/// caller resolves it with its search_path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationRef {
    /// The schema, when the query qualifies the name.
    pub schema: Option<String>,
    /// The relation name.
    pub name: String,
}

impl std::fmt::Display for RelationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What kind of relation a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationKind {
    /// An ordinary (or partitioned) table.
    Table,
    /// A foreign table (postgres_fdw, file_fdw, ...).
    ForeignTable,
    /// A view.
    View,
    /// Another stream table.
    StreamTable,
}

/// A column: its name (not quoted) and its PostgreSQL type as `format_type` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column name, exactly (no quoting, no folding).
    pub name: String,
    /// The type, e.g. `integer`, `numeric(10,2)`, `text`, `timestamp with time zone`.
    pub type_name: String,
}

impl ColumnDef {
    /// Shorthand constructor.
    pub fn new(name: &str, type_name: &str) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            type_name: type_name.into(),
        }
    }
}

/// A relation the defining query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRelation {
    /// How the query names it (one entry per distinct name as written; see
    /// [`crate::referenced_relations`]).
    pub reference: RelationRef,
    /// The resolved, schema-qualified name (used to detect a query reading its own stream
    /// table, and reported in [`crate::StreamPlan::sources`]).
    pub resolved: StName,
    /// What it is.
    pub kind: RelationKind,
    /// Its columns, in order.
    pub columns: Vec<ColumnDef>,
    /// Its primary key columns, if it has one.
    pub primary_key: Option<Vec<String>>,
    /// SQL text of a relation holding the source's rows as of the refresh transaction's
    /// snapshot, with exactly `columns` in order: the table itself, or for a foreign table its
    /// local synced copy. Inserted verbatim (quote it).
    pub current: String,
    /// SQL text of a relation holding exactly the changes the refresh consumes: the columns of
    /// `columns` (by name) plus `__pgt_weight int` (+1 a row appeared, -1 a row disappeared;
    /// an UPDATE is a -1 of the old row and a +1 of the new one). None when the source has no
    /// change capture: the stream table can then only be refreshed FULL.
    pub delta: Option<String>,
}

/// Everything needed to plan one stream table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// The stream table's resolved, schema-qualified name.
    pub stream_table: StName,
    /// SQL text of the storage table to create and maintain (usually `stream_table` quoted).
    pub storage: String,
    /// The defining query.
    pub query: String,
    /// The requested refresh mode.
    pub refresh_mode: RefreshMode,
    /// The query's output columns as PostgreSQL describes them.
    pub columns: Vec<ColumnDef>,
    /// Every relation the query reads (see [`crate::referenced_relations`]).
    pub relations: Vec<SourceRelation>,
}
