//! The change buffer of a source table and the ways changes are written into it.
//!
//! Triggers write through the capture functions (see [`crate::install_capture_sql`]). Any other
//! producer, such as the foreign-table poller, writes with the statements here, in its own
//! transaction: the buffer's `__pgt_xid` default records that transaction, so its changes are
//! consumed exactly once like a trigger's (see the crate documentation).

use crate::naming::{buffer_table, TRUNCATE_COLUMN, WEIGHT_COLUMN, XID_COLUMN};
use crate::quote::{quote_ident, quote_literal};
use crate::{CdcError, SourceTable};

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

/// One change produced outside the triggers: the row's column values as text (in the source's
/// column order; `None` is NULL) and its weight (+1 appeared, -1 disappeared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub values: Vec<Option<String>>,
    pub weight: i32,
}

/// An `INSERT` of `rows` into the buffer of `source`, each value a text literal cast to its
/// column's type. Run it in the producer's transaction (several batches in one transaction are
/// consumed together). Returns `None` when `rows` is empty.
pub fn insert_changes_sql(
    source: &SourceTable,
    rows: &[ChangeRow],
) -> Result<Option<String>, CdcError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(rows.len());
    for row in rows {
        if row.values.len() != source.columns.len() {
            return Err(CdcError::Arity {
                table: source.qualified_name(),
                expected: source.columns.len(),
                got: row.values.len(),
            });
        }
        let mut items: Vec<String> = row
            .values
            .iter()
            .zip(&source.columns)
            .map(|(v, (_, ty))| match v {
                Some(text) => format!("CAST({} AS {ty})", quote_literal(text)),
                None => format!("CAST(NULL AS {ty})"),
            })
            .collect();
        items.push(row.weight.to_string());
        values.push(format!("({})", items.join(", ")));
    }
    Ok(Some(format!(
        "INSERT INTO {} ({}, {}) VALUES {}",
        buffer_table(source.oid),
        source.column_list(""),
        quote_ident(WEIGHT_COLUMN),
        values.join(", ")
    )))
}

/// An `INSERT INTO buffer (<columns>, __pgt_weight) <query>`: `query` must return the source's
/// columns in order followed by the weight. For producers that compute their changes in SQL.
pub fn insert_changes_from_query_sql(source: &SourceTable, query: &str) -> String {
    format!(
        "INSERT INTO {} ({}, {}) {query}",
        buffer_table(source.oid),
        source.column_list(""),
        quote_ident(WEIGHT_COLUMN)
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
    fn poller_insert() {
        let rows = [
            ChangeRow {
                values: vec![Some("1".into()), Some("it's".into())],
                weight: 1,
            },
            ChangeRow {
                values: vec![Some("2".into()), None],
                weight: -1,
            },
        ];
        assert_eq!(
            insert_changes_sql(&source(), &rows).unwrap().unwrap(),
            "INSERT INTO \"pgtrickle_changes\".\"changes_42\" (\"id\", \"Name\", \"__pgt_weight\") \
             VALUES (CAST('1' AS integer), CAST('it''s' AS character varying(10)), 1), \
             (CAST('2' AS integer), CAST(NULL AS character varying(10)), -1)"
        );
        assert_eq!(insert_changes_sql(&source(), &[]).unwrap(), None);
        let bad = [ChangeRow {
            values: vec![None],
            weight: 1,
        }];
        assert!(matches!(
            insert_changes_sql(&source(), &bad),
            Err(CdcError::Arity {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert_eq!(
            truncate_marker_sql(42),
            "INSERT INTO \"pgtrickle_changes\".\"changes_42\" (\"__pgt_weight\", \
             \"__pgt_truncate\") VALUES (0, true)"
        );
    }
}
