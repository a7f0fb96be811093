//! Removing consumed changes, so that buffers do not grow without bound.
//!
//! A buffer row may go once its writing transaction is visible in the last snapshot of every
//! consumer of the source: each consumer's next window starts after that snapshot, so none will
//! read the row again. The engine runs, in one READ COMMITTED transaction per source:
//!
//! 1. [`source_lock_sql`] (the lock install and uninstall also take);
//! 2. a read of the last snapshots of all consumers of the source, *after* the lock, so that a
//!    consumer whose creation committed meanwhile is included;
//! 3. the removal of what those snapshots all saw (a TRUNCATE when that is every row and no
//!    one holds a lock on the buffer, else a DELETE); commit.
//!
//! [`cleanup_statements_sql`] is steps 1 to 3 (the caller opens and commits the transaction).
//!
//! Reading a consumer's snapshot while its refresh commits a newer one is harmless: an older
//! snapshot only keeps more rows. The DELETE does not block writers or refreshes (a refresh's
//! REPEATABLE READ snapshot still sees deleted rows it might read); the TRUNCATE is tried only
//! when no one holds a lock on the buffer, and makes writers wait for one scan of it at most.
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

/// Buffers up to this size may be emptied with TRUNCATE when every row in them was consumed:
/// the check runs under an exclusive lock that makes writers of the source wait, so it must be
/// short. Larger ones are always cleaned with DELETE.
pub const TRUNCATE_BELOW_BYTES: i64 = 64 << 20;

/// The whole cleanup of source `oid`, to run in a READ COMMITTED transaction of its own (the
/// caller's `BEGIN ISOLATION LEVEL READ COMMITTED` ... `COMMIT`, after the refresh committed):
/// the source lock, then one block that reads the consumers' last snapshots with
/// `snapshots_query` after the lock and removes what all of them saw.
///
/// `snapshots_query` returns one text column, one row per consumer of the source (e.g. `SELECT
/// last_snapshot FROM <catalog> WHERE <reads oid>`). A row goes when its transaction is below the
/// smallest `xmax` of those snapshots and visible in every one of them (so a transaction still in
/// progress, or in progress in some consumer's snapshot, stays). Nothing is removed when the
/// query returns no row (use [`crate::uninstall_capture_sql`] when the last consumer goes) or
/// when any snapshot is NULL (a consumer not populated yet).
///
/// When every row of the buffer may go (the usual case once each consumer has refreshed) and the
/// buffer is small enough ([`TRUNCATE_BELOW_BYTES`]), the block empties it with TRUNCATE instead
/// of a DELETE of each row (ten times cheaper for large deltas, and no dead rows to vacuum): it
/// takes the buffer's exclusive lock without waiting (held by no one means no writer of the
/// source and no refresh reading the buffer is in progress), checks again under it, and
/// truncates; only in READ COMMITTED, where the check under the lock sees every committed row
/// (an older snapshot would miss rows committed since, and lose them). A refresh whose snapshot predates the TRUNCATE sees the buffer empty (TRUNCATE is
/// not MVCC-safe), which is right: every row was consumed by every consumer, its own included, as
/// the catalog read after the source lock says. When the lock is taken or a row must stay, the
/// lock is released (its subtransaction rolled back) and the consumed rows are deleted. The
/// block's variables carry the reserved prefix, which no source column may have: a plain name
/// would be ambiguous with a buffer column of the same name (`variable_conflict = error`).
pub fn cleanup_statements_sql(oid: u32, snapshots_query: &str) -> String {
    let xid = quote_ident(XID_COLUMN);
    let buffer = buffer_table(oid);
    let consumed = format!(
        "b.{xid} < __pgt_bound AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(__pgt_snaps) AS s \
         WHERE NOT pg_catalog.pg_visible_in_snapshot(b.{xid}, s))"
    );
    let all_consumed = format!("NOT EXISTS (SELECT 1 FROM {buffer} b WHERE NOT ({consumed}))");
    format!(
        "{};\n\
         DO $pgt_trim$ DECLARE __pgt_snaps pg_catalog.pg_snapshot[]; __pgt_bound pg_catalog.xid8; BEGIN \
         __pgt_snaps := ARRAY(SELECT q.s::pg_catalog.pg_snapshot FROM ({snapshots_query}) AS q(s)); \
         IF pg_catalog.cardinality(__pgt_snaps) = 0 \
            OR EXISTS (SELECT 1 FROM pg_catalog.unnest(__pgt_snaps) AS s WHERE s IS NULL) \
         THEN RETURN; END IF; \
         __pgt_bound := (SELECT pg_catalog.min(pg_catalog.pg_snapshot_xmax(s)) FROM pg_catalog.unnest(__pgt_snaps) AS s); \
         IF pg_catalog.current_setting('transaction_isolation') = 'read committed' \
            AND pg_catalog.pg_relation_size('{buffer_lit}') <= {TRUNCATE_BELOW_BYTES} AND {all_consumed} THEN \
           BEGIN \
             LOCK TABLE {buffer} IN ACCESS EXCLUSIVE MODE NOWAIT; \
             IF {all_consumed} THEN TRUNCATE {buffer}; RETURN; END IF; \
             RAISE EXCEPTION 'a row must stay'; \
           EXCEPTION WHEN lock_not_available OR raise_exception THEN NULL; \
           END; \
         END IF; \
         DELETE FROM {buffer} b WHERE {consumed}; \
         END $pgt_trim$;",
        source_lock_sql(oid),
        buffer_lit = buffer.replace('\'', "''"),
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
        assert!(sql.contains("DELETE FROM \"pgtrickle_changes\".\"changes_4\" b WHERE"));
        assert!(sql.contains("TRUNCATE \"pgtrickle_changes\".\"changes_4\";"));
        assert!(source_lock_sql(1).ends_with("(8099570423399710721)"));
    }
}
