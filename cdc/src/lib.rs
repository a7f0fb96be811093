//! Inline change capture for the local source tables of stream tables.
//!
//! This crate generates SQL; it opens no connections. The refresh engine runs the SQL on whatever
//! connection it has, inside the transactions described below. Everything is plain PostgreSQL
//! 15+ (no extension).
//!
//! # Change buffers
//!
//! Each source table (identified by its OID) has one change buffer,
//! `pgtrickle_changes.changes_<oid>`, shared by every stream table that reads the source. Its
//! columns are the source's columns (same names and types, nullable, no constraints) followed by:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `__pgt_weight` | `integer not null` | +1: the row appeared; -1: the row disappeared (an UPDATE writes -1 for the old row and +1 for the new one); 0 on a TRUNCATE marker |
//! | `__pgt_xid` | `xid8 not null default pg_current_xact_id()` | top-level transaction that wrote the change |
//! | `__pgt_truncate` | `boolean not null default false` | true on a TRUNCATE marker row (source columns NULL, weight 0) |
//!
//! # Capture
//!
//! [`install_capture_sql`] creates the buffer and four statement-level AFTER triggers on the source
//! (INSERT, UPDATE, DELETE with transition tables, and TRUNCATE), so every committed write is
//! copied into the buffer in the writer's own transaction, whoever the writer is (through the proxy
//! or not, COPY, cascades, other triggers, logical replication apply: the triggers are
//! `ENABLE ALWAYS`). Rolled-back transactions and savepoints leave nothing, by MVCC.
//!
//! # Exactly-once consumption
//!
//! Each consumer (stream table) stores the `pg_snapshot` of its last refresh. A refresh must:
//!
//! 1. run in one `REPEATABLE READ` (or `SERIALIZABLE`) transaction;
//! 2. read its changes with [`delta_rows_sql`]`(oid, last)` (and first check
//!    [`truncated_since_sql`]: when it returns true, refresh FULL instead);
//! 3. record [`current_snapshot_sql`] (in the same transaction; any statement) as its new `last`,
//!    and commit.
//!
//! The delta holds exactly the buffer rows whose writing transaction is visible in the refresh's
//! own snapshot and was not visible in `last`. Snapshots of successive refreshes of one consumer
//! only grow, so every committed change is consumed by exactly one refresh: the first whose
//! snapshot sees it (refreshes of one consumer must not overlap: each starts after the previous
//! one committed, e.g. serialised with an advisory lock). A long transaction that began before refresh N and commits after it is in
//! progress in N's snapshot, hence skipped by N and taken by N+1. Changes the refresh transaction
//! writes itself (a stream table that is itself a source) are not visible in its own snapshot and
//! are therefore left for the next refresh.
//!
//! The initial population of a stream table sets its first `last`: populate and record
//! [`current_snapshot_sql`] in one transaction whose snapshot is taken *after* capture is in place
//! on every source (see the [`triggers`] module for the locking that makes this hold).
//!
//! [`cleanup_statements_sql`] deletes the buffer rows that every consumer has already consumed,
//! in a READ COMMITTED transaction of its own after the refresh committed (not inside the
//! refresh: see the [`cleanup`] module).
//!
//! Security, partitioned sources, known gaps: see the [`triggers`] module; column changes on a
//! source after install: see the [`catalog`] module.
//!
//! # Other producers
//!
//! The foreign-table poller ([`poll`]) writes into the same buffers, in its own transaction, the
//! rows that appeared in or disappeared from a foreign table since its previous poll; its
//! `__pgt_xid` then orders its changes like any other writer's.

pub mod buffer;
pub mod catalog;
pub mod cleanup;
pub mod consume;
pub mod naming;
pub mod partitions;
pub mod poll;
pub mod quote;
pub mod triggers;

pub use buffer::{create_buffer_sql, truncate_index_sql, truncate_marker_sql};
pub use catalog::describe_source_sql;
pub use cleanup::{cleanup_statements_sql, source_lock_sql};
pub use consume::{
    current_snapshot_sql, delta_rows_sql, pending_change_count_sql, pending_changes_sql,
    truncated_since_sql,
};
pub use naming::{
    buffer_name, buffer_table, function, function_name, source_lock_key, trigger_name,
    CaptureEvent, CHANGES_SCHEMA, RESERVED_PREFIX, TRIGGER_PREFIX, TRUNCATE_COLUMN, WEIGHT_COLUMN,
    XID_COLUMN,
};
pub use partitions::capture_out_of_date_sql;
pub use quote::{dollar_quote, quote_ident, quote_literal};
pub use triggers::{
    install_capture_sql, install_capture_statements, uninstall_capture_sql,
    uninstall_capture_statements,
};

/// Errors in the description of a source table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdcError {
    /// A change buffer needs at least one column.
    #[error("source table {0} has no columns")]
    NoColumns(String),
    /// A source column whose name starts with `__pgt_` would clash with the buffer's own columns.
    #[error("column {column:?} of source table {table} uses the reserved prefix __pgt_")]
    ReservedColumn { table: String, column: String },
    /// Two columns with one name.
    #[error("column {column:?} appears twice in source table {table}")]
    DuplicateColumn { table: String, column: String },
    /// An empty schema, table, column or type name.
    #[error("source table {0}: empty name or type")]
    EmptyName(String),
}

/// A local table whose changes are captured.
///
/// `columns` are `(name, type)` pairs in attribute order, the type as PostgreSQL's
/// `format_type(atttypid, atttypmod)` renders it (optionally followed by `COLLATE "x"."y"`), as
/// [`describe_source_sql`] returns them. The type text is inserted into DDL as it is, so it must
/// come from the catalog, and it must be rendered under the same `search_path` as the one the
/// install runs under (best: `search_path = pg_catalog`, which makes `format_type` qualify every
/// type outside pg_catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<(String, String)>,
}

impl SourceTable {
    /// A checked source table description.
    pub fn new(
        oid: u32,
        schema: impl Into<String>,
        name: impl Into<String>,
        columns: Vec<(String, String)>,
    ) -> Result<SourceTable, CdcError> {
        let table = SourceTable {
            oid,
            schema: schema.into(),
            name: name.into(),
            columns,
        };
        table.validate()?;
        Ok(table)
    }

    /// Checks the description: at least one column, no empty names, no duplicate column, no
    /// column with the reserved `__pgt_` prefix.
    pub fn validate(&self) -> Result<(), CdcError> {
        let label = self.qualified_name();
        if self.schema.is_empty() || self.name.is_empty() {
            return Err(CdcError::EmptyName(label));
        }
        if self.columns.is_empty() {
            return Err(CdcError::NoColumns(label));
        }
        let mut seen = std::collections::HashSet::new();
        for (column, ty) in &self.columns {
            if column.is_empty() || ty.trim().is_empty() {
                return Err(CdcError::EmptyName(label));
            }
            if column.starts_with(RESERVED_PREFIX) {
                return Err(CdcError::ReservedColumn {
                    table: label,
                    column: column.clone(),
                });
            }
            if !seen.insert(column.as_str()) {
                return Err(CdcError::DuplicateColumn {
                    table: label,
                    column: column.clone(),
                });
            }
        }
        Ok(())
    }

    /// `"schema"."name"`, quoted.
    pub fn qualified_name(&self) -> String {
        quote::qualified(&self.schema, &self.name)
    }

    /// The quoted column names, comma-separated, with an optional table alias prefix.
    pub(crate) fn column_list(&self, prefix: &str) -> String {
        self.columns
            .iter()
            .map(|(c, _)| format!("{prefix}{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), "integer".to_string()))
            .collect()
    }

    #[test]
    fn validation() {
        assert!(SourceTable::new(1, "s", "t", cols(&["a", "b"])).is_ok());
        assert_eq!(
            SourceTable::new(1, "s", "t", vec![]),
            Err(CdcError::NoColumns("\"s\".\"t\"".into()))
        );
        assert!(matches!(
            SourceTable::new(1, "s", "t", cols(&["a", "__pgt_weight"])),
            Err(CdcError::ReservedColumn { .. })
        ));
        assert!(matches!(
            SourceTable::new(1, "s", "t", cols(&["a", "a"])),
            Err(CdcError::DuplicateColumn { .. })
        ));
        assert!(matches!(
            SourceTable::new(1, "", "t", cols(&["a"])),
            Err(CdcError::EmptyName(_))
        ));
        let t = SourceTable::new(1, "s", "t", cols(&["a", "B\""])).unwrap();
        assert_eq!(t.column_list("x."), "x.\"a\", x.\"B\"\"\"");
    }
}
