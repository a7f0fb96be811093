//! SQL of the *mirror* of a polled foreign source: a local table
//! `pgtrickle_changes.mirror_<oid>` (`<oid>` the foreign table's) with the foreign table's
//! columns and `__pgt_hash bytea` (each row's [`crate::poll::RowHash`], indexed), kept equal to
//! the foreign table as of its last poll. Refreshes read the mirror instead of the foreign
//! table, so a change to a local source never scans the foreign one, and a FULL refresh agrees
//! with the changes consumed so far. Every change a poll makes to the mirror is recorded in the
//! source's change buffer `pgtrickle_changes.changes_<oid>` in the same transaction.

use crate::naming::{buffer_table, CHANGES_SCHEMA, WEIGHT_COLUMN};
use crate::quote::{qualified, quote_ident, quote_literal};
use crate::SourceTable;

use super::row_hash::RowHash;

/// The hash column of a mirror.
pub const HASH_COLUMN: &str = "__pgt_hash";

/// Unqualified name of the mirror of foreign table `oid`.
pub fn mirror_name(oid: u32) -> String {
    format!("mirror_{oid}")
}

/// Quoted, schema-qualified mirror of foreign table `oid`.
pub fn mirror_table(oid: u32) -> String {
    qualified(CHANGES_SCHEMA, &mirror_name(oid))
}

/// The temporary table a poll stages appeared rows in (on the writer connection).
pub fn staging_table(oid: u32) -> String {
    format!("pg_temp.{}", quote_ident(&format!("__pgt_appeared_{oid}")))
}

/// Key of the transaction-level advisory lock that lets one poller at a time poll source `oid`
/// ("pgtp" in the high half; distinct from [`crate::source_lock_key`]).
pub fn poll_lock_key(oid: u32) -> i64 {
    (0x7067_7470_i64 << 32) | i64::from(oid)
}

/// `SELECT pg_advisory_xact_lock(...)` for polling source `oid`.
pub fn poll_lock_sql(oid: u32) -> String {
    format!(
        "SELECT pg_catalog.pg_advisory_xact_lock({})",
        poll_lock_key(oid)
    )
}

/// Creates the mirror (with its hash index) and the change buffer of foreign `source`.
/// Idempotent; run in one transaction after [`poll_lock_sql`].
pub fn create_mirror_sql(source: &SourceTable) -> String {
    let mut cols: Vec<String> = source
        .columns
        .iter()
        .map(|(name, ty)| format!("{} {ty}", quote_ident(name)))
        .collect();
    cols.push(format!("{} bytea NOT NULL", quote_ident(HASH_COLUMN)));
    format!(
        "CREATE TABLE IF NOT EXISTS {mirror} ({cols}); \
         CREATE INDEX IF NOT EXISTS {index} ON {mirror} ({hash}); \
         {buffer}; {truncates}",
        mirror = mirror_table(source.oid),
        truncates = crate::truncate_index_sql(source.oid),
        cols = cols.join(", "),
        index = quote_ident(&format!("mirror_{}_hash", source.oid)),
        hash = quote_ident(HASH_COLUMN),
        buffer = crate::create_buffer_sql(source),
    )
}

/// Indexes the mirror of `source` on `column` (a join key of a stream table reading it, so
/// delta queries probe the mirror instead of scanning it); None when the source has no such
/// column. Idempotent.
pub fn index_column_sql(source: &SourceTable, column: &str) -> Option<String> {
    let position = source.columns.iter().position(|(c, _)| c == column)?;
    Some(format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
        quote_ident(&format!("mirror_{}_c{position}", source.oid)),
        mirror_table(source.oid),
        quote_ident(column)
    ))
}

/// Drops the mirror of `oid` (its change buffer goes with [`crate::uninstall_capture_sql`]).
pub fn drop_mirror_sql(oid: u32) -> String {
    format!("DROP TABLE IF EXISTS {}", mirror_table(oid))
}

/// One row: true when the foreign table's columns (names, types, collations, order) are still
/// those of its mirror; false when the foreign table was altered since (NULL: one is missing).
pub fn columns_match_sql(oid: u32) -> String {
    format!(
        "SELECT {} IS NOT DISTINCT FROM {}",
        crate::catalog::columns_signature_expr(&format!("{oid}::pg_catalog.oid")),
        crate::catalog::columns_signature_expr(&format!(
            "pg_catalog.to_regclass({})::pg_catalog.oid",
            quote_literal(&mirror_table(oid))
        )),
    )
}

/// Streams the foreign table in COPY text format (one line a row).
pub fn scan_sql(source: &SourceTable) -> String {
    format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        source.column_list(""),
        source.qualified_name()
    )
}

/// Creates the staging table for appeared rows (dropped at commit).
pub fn create_staging_sql(oid: u32) -> String {
    format!(
        "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
        staging_table(oid),
        mirror_table(oid)
    )
}

/// `COPY` into the staging table, fed with [`staging_line`]s.
pub fn copy_staging_sql(oid: u32) -> String {
    format!("COPY {} FROM STDIN", staging_table(oid))
}

/// Appends the staging COPY line of a scanned row: the row's own COPY text, a tab, the hash as
/// a `bytea` hex value (its backslash escaped for COPY), a newline.
pub fn staging_line(row: &[u8], hash: RowHash, out: &mut Vec<u8>) {
    out.extend_from_slice(row);
    out.extend_from_slice(b"\t\\\\x");
    out.extend_from_slice(&hash.hex());
    out.push(b'\n');
}

/// Deletes the rows that vanished (every copy) from the mirror and records them (weight -1) in
/// the change buffer. Parameter: `$1 bytea[]` their hashes (an index scan of the hash index).
pub fn delete_vanished_sql(source: &SourceTable) -> String {
    let cols = source.column_list("");
    format!(
        "WITH gone AS (DELETE FROM {mirror} WHERE {hash} = ANY ($1::bytea[]) RETURNING {cols}) \
         INSERT INTO {buffer} ({cols}, {weight}) SELECT {cols}, -1 FROM gone",
        mirror = mirror_table(source.oid),
        hash = quote_ident(HASH_COLUMN),
        buffer = buffer_table(source.oid),
        weight = quote_ident(WEIGHT_COLUMN),
    )
}

/// Deletes some copies of duplicated rows from the mirror and records them (weight -1) in the
/// change buffer. Parameters: `$1 bytea[]` the hashes, `$2 int4[]` how many copies of each go.
pub fn delete_reduced_sql(source: &SourceTable) -> String {
    let mirror = mirror_table(source.oid);
    let cols = source.column_list("");
    let hash = quote_ident(HASH_COLUMN);
    format!(
        "WITH gone AS (DELETE FROM {mirror} WHERE ctid = ANY (ARRAY( \
           SELECT x.ctid FROM (SELECT m.ctid, m.{hash} AS h, \
               row_number() OVER (PARTITION BY m.{hash}) AS rn \
             FROM {mirror} m WHERE m.{hash} = ANY ($1::bytea[])) x \
           JOIN unnest($1::bytea[], $2::int4[]) AS u(h, k) ON u.h = x.h \
           WHERE x.rn <= u.k)) RETURNING {cols}) \
         INSERT INTO {buffer} ({cols}, {weight}) SELECT {cols}, -1 FROM gone",
        buffer = buffer_table(source.oid),
        weight = quote_ident(WEIGHT_COLUMN),
    )
}

/// `COPY` straight into the mirror, for the first fill of a source no stream table reads yet
/// (its rows need no change records: the first population reads the mirror itself). Fed with
/// [`staging_line`]s.
pub fn copy_mirror_sql(oid: u32) -> String {
    format!("COPY {} FROM STDIN", mirror_table(oid))
}

/// Moves the staged appeared rows into the mirror and records them (weight +1) in the change
/// buffer.
pub fn apply_appeared_sql(source: &SourceTable) -> String {
    let cols = source.column_list("");
    format!(
        "WITH added AS (INSERT INTO {mirror} SELECT * FROM {staging} RETURNING {cols}) \
         INSERT INTO {buffer} ({cols}, {weight}) SELECT {cols}, 1 FROM added",
        mirror = mirror_table(source.oid),
        staging = staging_table(source.oid),
        buffer = buffer_table(source.oid),
        weight = quote_ident(WEIGHT_COLUMN),
    )
}

/// Streams the mirror's row hashes, one line (hex) per row, duplicates repeated: the caller
/// counts them (no aggregation on the server). Read the lines with [`parse_hash_line`].
pub fn load_hashes_sql(oid: u32) -> String {
    format!(
        "COPY (SELECT pg_catalog.encode({}, 'hex') FROM {}) TO STDOUT",
        quote_ident(HASH_COLUMN),
        mirror_table(oid),
    )
}

/// One line of [`load_hashes_sql`]; None when malformed.
pub fn parse_hash_line(hex: &[u8]) -> Option<RowHash> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = digit(hex[2 * i])? << 4 | digit(hex[2 * i + 1])?;
    }
    Some(RowHash(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceTable {
        SourceTable::new(
            7,
            "public",
            "remote products",
            vec![
                ("id".into(), "integer".into()),
                ("name".into(), "text".into()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn shapes() {
        let s = source();
        assert_eq!(mirror_table(7), "\"pgtrickle_changes\".\"mirror_7\"");
        assert!(create_mirror_sql(&s).starts_with(
            "CREATE TABLE IF NOT EXISTS \"pgtrickle_changes\".\"mirror_7\" (\"id\" integer, \
             \"name\" text, \"__pgt_hash\" bytea NOT NULL)"
        ));
        assert!(create_mirror_sql(&s).contains("\"pgtrickle_changes\".\"changes_7\""));
        assert_eq!(
            scan_sql(&s),
            "COPY (SELECT \"id\", \"name\" FROM \"public\".\"remote products\") TO STDOUT"
        );
        assert_ne!(poll_lock_key(7), crate::source_lock_key(7));
        assert_eq!(
            index_column_sql(&s, "name").as_deref(),
            Some(
                "CREATE INDEX IF NOT EXISTS \"mirror_7_c1\" ON \"pgtrickle_changes\".\"mirror_7\" \
                 (\"name\")"
            )
        );
        assert_eq!(index_column_sql(&s, "nope"), None);
    }

    #[test]
    fn hash_lines_parse() {
        let h = crate::poll::hash_row(b"x");
        assert_eq!(parse_hash_line(&h.hex()), Some(h));
        assert_eq!(parse_hash_line(&[b'z'; 32]), None);
        assert_eq!(parse_hash_line(b"00"), None);
    }

    #[test]
    fn staging_line_escapes_the_hash_for_copy() {
        let mut out = Vec::new();
        staging_line(b"1\t\\N", RowHash([0xab; 16]), &mut out);
        assert_eq!(
            out,
            format!("1\t\\N\t\\\\x{}\n", "ab".repeat(16)).into_bytes()
        );
    }
}
