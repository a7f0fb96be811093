//! What the caller (the stream-table engine) tells the planner about a defining query: the
//! stream table, the query's output columns and every relation it reads, with the relation the
//! generated SQL reads for its current rows (`current`) and the key of its delta (`delta_key`).

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

/// Text in the catalog's `source_kind` column that names no [`RelationKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown relation kind {0:?} (expected 'Table', 'ForeignTable', 'View' or 'StreamTable')")]
pub struct UnknownRelationKind(pub String);

impl RelationKind {
    /// Every kind, in declaration order.
    pub const ALL: [RelationKind; 4] = [
        RelationKind::Table,
        RelationKind::ForeignTable,
        RelationKind::View,
        RelationKind::StreamTable,
    ];

    /// The kind's text in the catalog (`pgtrickle.pgt_dependencies.source_kind`). These strings
    /// are stored in existing catalogs: never change them.
    pub fn as_catalog_str(self) -> &'static str {
        match self {
            RelationKind::Table => "Table",
            RelationKind::ForeignTable => "ForeignTable",
            RelationKind::View => "View",
            RelationKind::StreamTable => "StreamTable",
        }
    }

    /// The kind whose catalog text is `text` (exactly, as [`RelationKind::as_catalog_str`]
    /// writes it).
    pub fn from_catalog_str(text: &str) -> Result<RelationKind, UnknownRelationKind> {
        RelationKind::ALL
            .into_iter()
            .find(|k| k.as_catalog_str() == text)
            .ok_or_else(|| UnknownRelationKind(text.to_owned()))
    }

    /// True for the kinds whose changes arrive in a change buffer: captured by triggers
    /// (tables and stream tables) or written by the poller (foreign tables).
    pub fn has_change_buffer(self) -> bool {
        matches!(
            self,
            RelationKind::Table | RelationKind::StreamTable | RelationKind::ForeignTable
        )
    }
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
    /// The key of the source's delta, when its changes are captured: the DIFFERENTIAL
    /// statements read the delta through holes carrying this key ([`crate::Piece::Delta`]),
    /// which the engine fills when it refreshes (pgtrickle-proxy keys a delta by its source's
    /// OID). Sources with one key share one delta. None when the source has no change capture:
    /// the stream table can then only be refreshed FULL.
    pub delta_key: Option<u32>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog's `source_kind` strings are stored data: they must not change.
    #[test]
    fn relation_kind_catalog_strings_are_pinned() {
        let pinned = [
            (RelationKind::Table, "Table"),
            (RelationKind::ForeignTable, "ForeignTable"),
            (RelationKind::View, "View"),
            (RelationKind::StreamTable, "StreamTable"),
        ];
        assert_eq!(pinned.len(), RelationKind::ALL.len());
        for (kind, text) in pinned {
            assert_eq!(kind.as_catalog_str(), text);
            assert_eq!(RelationKind::from_catalog_str(text), Ok(kind));
        }
    }

    #[test]
    fn unknown_relation_kind_is_an_error() {
        for text in ["", "table", "TABLE", "Table ", "MaterializedView"] {
            let err = RelationKind::from_catalog_str(text).unwrap_err();
            assert_eq!(err, UnknownRelationKind(text.to_owned()));
            assert!(err.to_string().contains("unknown relation kind"));
        }
    }
}
