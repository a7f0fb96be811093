//! Removing consumed changes, so that buffers do not grow without bound.
//!
//! A buffer row may go once its writing transaction is visible in the last snapshot of every
//! consumer of the source: each consumer's next window starts after that snapshot, so none will
//! read the row again. The engine runs, in one READ COMMITTED transaction per source:
//!
//! 1. [`source_lock_sql`] (the lock install and uninstall also take);
//! 2. a read of the last snapshots of all consumers of the source, *after* the lock, so that a
//!    consumer whose creation committed meanwhile is included;
//! 3. the DELETE of what those snapshots all saw; commit.
//!
//! [`cleanup_statements_sql`] is steps 1 to 3 (the caller opens and commits the transaction).
//!
//! Reading a consumer's snapshot while its refresh commits a newer one is harmless: an older
//! snapshot only keeps more rows. The DELETE does not block writers or refreshes (a refresh's
//! REPEATABLE READ snapshot still sees deleted rows it might read).
//!
//! Do not clean up inside a refresh's REPEATABLE READ transaction: two refreshes of different
//! consumers of one source would delete the same rows, and the second fails with a serialization
//! error (40001) that rolls its whole refresh back.

use crate::naming::{buffer_table, source_lock_key, XID_COLUMN};
use crate::quote::quote_ident;

/// `SELECT pg_advisory_xact_lock(<key>)` for source `oid` (see [`crate::source_lock_key`]).
pub fn source_lock_sql(oid: u32) -> String {
    format!(
        "SELECT pg_catalog.pg_advisory_xact_lock({})",
        source_lock_key(oid)
    )
}

/// The whole cleanup of source `oid`, to run in a READ COMMITTED transaction of its own (the
/// caller's `BEGIN ISOLATION LEVEL READ COMMITTED` ... `COMMIT`, after the refresh committed):
/// the source lock, then one DELETE that reads the consumers' last snapshots with
/// `snapshots_query` after the lock.
///
/// `snapshots_query` returns one text column, one row per consumer of the source (e.g. `SELECT
/// last_snapshot FROM <catalog> WHERE <reads oid>`). A row goes when its transaction is below the
/// smallest `xmax` of those snapshots and visible in every one of them (so a transaction still in
/// progress, or in progress in some consumer's snapshot, stays). Nothing is deleted when the
/// query returns no row (use [`crate::uninstall_capture_sql`] when the last consumer goes) or
/// when any snapshot is NULL (a consumer not populated yet).
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
        let sql = cleanup_statements_sql(4, "SELECT x FROM y");
        assert!(sql.starts_with(&format!("{};\n", source_lock_sql(4))));
        assert!(sql.contains("FROM (SELECT x FROM y) AS q(s)"));
        assert!(sql.contains("DELETE FROM \"pgtrickle_changes\".\"changes_4\" b USING g"));
        assert!(source_lock_sql(1).ends_with("(8099570423399710721)"));
    }
}
