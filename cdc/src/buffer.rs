//! The change buffer of a source table and the ways changes are written into it.
//!
//! Triggers write through the capture functions (see [`crate::install_capture_sql`]). Any other
//! producer, such as the foreign-table poller (see [`crate::poll::mirror`]), writes in its own
//! transaction: the buffer's `__pgt_xid` default records that transaction, so its changes are
//! consumed exactly once like a trigger's (see the crate documentation).

use crate::naming::{buffer_table, TRUNCATE_COLUMN, WEIGHT_COLUMN, XID_COLUMN};
use crate::quote::quote_ident;
use crate::SourceTable;

/// `CREATE TABLE IF NOT EXISTS` of the change buffer of `source` (the schema must exist).
///
/// Source columns are copied by name and type only: no NOT NULL, defaults, checks or keys, so
/// that a TRUNCATE marker row (all NULL) fits. The table is logged: an unlogged buffer would be
/// emptied by a crash and silently lose committed changes.
pub fn create_buffer_sql(source: &SourceTable) -> String {
    let mut cols: Vec<String> = source
        .columns
        .iter()
        .map(|(name, ty)| format!("{} {ty}", quote_ident(name)))
        .collect();
    cols.push(format!("{} integer NOT NULL", quote_ident(WEIGHT_COLUMN)));
    cols.push(format!(
        "{} xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()",
        quote_ident(XID_COLUMN)
    ));
    cols.push(format!(
        "{} boolean NOT NULL DEFAULT false",
        quote_ident(TRUNCATE_COLUMN)
    ));
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        buffer_table(source.oid),
        cols.join(", ")
    )
}

/// `CREATE INDEX IF NOT EXISTS` of the partial index on the TRUNCATE markers of source `oid`'s
/// buffer, so that [`crate::truncated_since_sql`] does not read every buffered change.
pub fn truncate_index_sql(oid: u32) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {}",
        quote_ident(&format!("changes_{oid}_truncates")),
        buffer_table(oid),
        quote_ident(XID_COLUMN),
        quote_ident(TRUNCATE_COLUMN)
    )
}

/// An `INSERT` of one TRUNCATE marker into the buffer of source `oid`: consumers that have not
/// yet seen it must refresh FULL (see [`crate::truncated_since_sql`]).
pub fn truncate_marker_sql(oid: u32) -> String {
    format!(
        "INSERT INTO {} ({}, {}) VALUES (0, true)",
        buffer_table(oid),
        quote_ident(WEIGHT_COLUMN),
        quote_ident(TRUNCATE_COLUMN)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceTable {
        SourceTable::new(
            42,
            "public",
            "t",
            vec![
                ("id".into(), "integer".into()),
                ("Name".into(), "character varying(10)".into()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn buffer_ddl() {
        assert_eq!(
            create_buffer_sql(&source()),
            "CREATE TABLE IF NOT EXISTS \"pgtrickle_changes\".\"changes_42\" (\"id\" integer, \
             \"Name\" character varying(10), \"__pgt_weight\" integer NOT NULL, \"__pgt_xid\" xid8 \
             NOT NULL DEFAULT pg_catalog.pg_current_xact_id(), \"__pgt_truncate\" boolean NOT \
             NULL DEFAULT false)"
        );
    }

    #[test]
    fn truncate_marker() {
        assert_eq!(
            truncate_marker_sql(42),
            "INSERT INTO \"pgtrickle_changes\".\"changes_42\" (\"__pgt_weight\", \
             \"__pgt_truncate\") VALUES (0, true)"
        );
    }
}
