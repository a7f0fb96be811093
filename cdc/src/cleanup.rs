//! Removing consumed changes, so that buffers do not grow without bound.
//!
//! A buffer row may go once its writing transaction is visible in the last snapshot of every
//! consumer of the source: each consumer's next window starts after that snapshot, so none will
//! read the row again. The engine runs, in one READ COMMITTED transaction per source:
//!
//! 1. [`source_lock_sql`] (the lock install and uninstall also take);
//! 2. a read of the last snapshots of all consumers of the source, *after* the lock, so that a
//!    consumer whose creation committed meanwhile is included;
//! 3. [`cleanup_sql`] with those snapshots; commit.
//!
//! Reading a consumer's snapshot while its refresh commits a newer one is harmless: an older
//! snapshot only keeps more rows. The DELETE does not block writers or refreshes (a refresh's
//! REPEATABLE READ snapshot still sees deleted rows it might read).
//!
//! Do not clean up inside a refresh's REPEATABLE READ transaction: two refreshes of different
//! consumers of one source would delete the same rows, and the second fails with a serialization
//! error (40001) that rolls its whole refresh back. [`cleanup_transaction_sql`] packs the whole
//! protocol into one READ COMMITTED transaction to run after the refresh has committed.

use crate::naming::{buffer_table, source_lock_key, XID_COLUMN};
use crate::quote::{quote_ident, quote_literal};

/// `SELECT pg_advisory_xact_lock(<key>)` for source `oid` (see [`crate::source_lock_key`]).
pub fn source_lock_sql(oid: u32) -> String {
    format!(
        "SELECT pg_catalog.pg_advisory_xact_lock({})",
        source_lock_key(oid)
    )
}

/// A DELETE of the rows of source `oid`'s buffer that every consumer has consumed:
/// `consumer_snapshots` holds the last snapshot (text) of each consumer. With no consumer at all
/// every committed row is deleted (rows of transactions still in progress stay; uninstalling
/// capture is the alternative when the last consumer goes).
pub fn cleanup_sql(oid: u32, consumer_snapshots: &[String]) -> String {
    let buffer = buffer_table(oid);
    let mut snapshots: Vec<&str> = consumer_snapshots.iter().map(String::as_str).collect();
    snapshots.sort_unstable();
    snapshots.dedup();
    if snapshots.is_empty() {
        return format!("DELETE FROM {buffer}");
    }
    let xid = quote_ident(XID_COLUMN);
    let conditions = snapshots
        .iter()
        .map(|s| {
            format!(
                "pg_catalog.pg_visible_in_snapshot({xid}, {}::pg_catalog.pg_snapshot)",
                quote_literal(s)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("DELETE FROM {buffer} WHERE {conditions}")
}

/// The whole cleanup of source `oid` as one multi-statement string to send (simple query
/// protocol) on a connection that is not in a transaction block: `BEGIN ISOLATION LEVEL READ
/// COMMITTED`, the source lock, then one DELETE that reads the consumers' last snapshots with
/// `snapshots_query` after the lock, `COMMIT`.
///
/// `snapshots_query` returns one text column, one row per consumer of the source (e.g. `SELECT
/// last_snapshot FROM <catalog> WHERE <reads oid>`). Nothing is deleted when it returns no row
/// (use [`crate::uninstall_capture_sql`] when the last consumer goes) or when any snapshot is NULL
/// (a consumer not populated yet).
pub fn cleanup_transaction_sql(oid: u32, snapshots_query: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED;\n{}\nCOMMIT;",
        cleanup_statements_sql(oid, snapshots_query)
    )
}

/// The statements of [`cleanup_transaction_sql`] without its `BEGIN` and `COMMIT`: for an
/// executor that provides the READ COMMITTED transaction itself (e.g. one that runs them inside
/// a function).
pub fn cleanup_statements_sql(oid: u32, snapshots_query: &str) -> String {
    let xid = quote_ident(XID_COLUMN);
    format!(
        "{};\n\
         WITH c AS MATERIALIZED (SELECT q.s::pg_catalog.pg_snapshot AS s FROM ({snapshots_query}) AS q(s)), \
         g AS MATERIALIZED (SELECT count(*) > 0 AND count(*) = count(s) AS ok, \
         min(pg_catalog.pg_snapshot_xmax(s)) AS bound FROM c) \
         DELETE FROM {} b USING g WHERE g.ok AND b.{xid} < g.bound \
         AND NOT EXISTS (SELECT 1 FROM c WHERE NOT pg_catalog.pg_visible_in_snapshot(b.{xid}, c.s));",
        source_lock_sql(oid),
        buffer_table(oid),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_shape() {
        assert_eq!(
            cleanup_sql(4, &[]),
            "DELETE FROM \"pgtrickle_changes\".\"changes_4\""
        );
        assert_eq!(
            cleanup_sql(4, &["2:2:".into(), "1:1:".into(), "2:2:".into()]),
            "DELETE FROM \"pgtrickle_changes\".\"changes_4\" WHERE \
             pg_catalog.pg_visible_in_snapshot(\"__pgt_xid\", '1:1:'::pg_catalog.pg_snapshot) AND \
             pg_catalog.pg_visible_in_snapshot(\"__pgt_xid\", '2:2:'::pg_catalog.pg_snapshot)"
        );
        assert!(source_lock_sql(1).ends_with("(8099570423399710721)"));
    }
}
