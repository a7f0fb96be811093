//! Reading a source's changes exactly once, for one consumer (stream table).
//!
//! The contract (see also the crate documentation): a consumer's refresh runs in one REPEATABLE
//! READ transaction, reads [`delta_rows_sql`] with the snapshot text recorded by its previous
//! refresh (or by its initial population), records [`current_snapshot_sql`] as its new one, and
//! commits both the refresh and the recorded snapshot together.
//!
//! The window of a refresh is "written by a transaction visible in the refresh's own snapshot and
//! not visible in the last one". Stating the first half explicitly (rather than relying on MVCC
//! alone) keeps the window equal to what the recorded snapshot says, also for changes the refresh
//! transaction itself writes into a buffer: they are left for the next refresh.

use crate::naming::{buffer_table, TRUNCATE_COLUMN, XID_COLUMN};
use crate::quote::{quote_ident, quote_literal};

/// `SELECT pg_current_snapshot()::text`: the snapshot to record, taken inside the refresh's (or
/// the population's) REPEATABLE READ transaction.
pub fn current_snapshot_sql() -> String {
    "SELECT pg_catalog.pg_current_snapshot()::text".to_string()
}

/// The WHERE condition selecting the changes after `last` and up to the current snapshot:
/// visible in the current snapshot and not in `last`. Each visibility test is guarded by the
/// comparisons with the snapshot's bounds that decide it without a function call (a transaction
/// below a snapshot's xmin is visible in it, one at or above its xmax is not), so that a row
/// costs a few integer comparisons unless a transaction was in progress at a snapshot; rows that
/// other, lagging consumers still keep in the buffer fail the first comparison.
fn window(last_snapshot: &str) -> String {
    let xid = quote_ident(XID_COLUMN);
    let last = format!("{}::pg_catalog.pg_snapshot", quote_literal(last_snapshot));
    format!(
        "{xid} >= pg_catalog.pg_snapshot_xmin({last}) \
         AND ({xid} >= pg_catalog.pg_snapshot_xmax({last}) \
              OR NOT pg_catalog.pg_visible_in_snapshot({xid}, {last})) \
         AND ({xid} < (SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())) \
              OR pg_catalog.pg_visible_in_snapshot({xid}, (SELECT pg_catalog.pg_current_snapshot())))"
    )
}

/// The delta of source `oid` since `last_snapshot`, as a parenthesised subquery to use as a
/// relation (`FROM <delta> AS d`): every column of the buffer (the source's columns,
/// `__pgt_weight` (+1/-1), and the bookkeeping columns `__pgt_xid` and `__pgt_truncate`), one row
/// per captured change, unconsolidated (an unchanged UPDATE appears as -1 and +1). It needs no
/// description of the source: readers name the columns they use. TRUNCATE markers are left out:
/// check [`truncated_since_sql`] first.
pub fn delta_rows_sql(oid: u32, last_snapshot: &str) -> String {
    format!(
        "(SELECT * FROM {} WHERE NOT {} AND {})",
        buffer_table(oid),
        quote_ident(TRUNCATE_COLUMN),
        window(last_snapshot)
    )
}

/// A query returning one boolean: whether source `oid` was truncated since `last_snapshot` (a
/// TRUNCATE marker in the window). When true, the consumer must refresh FULL (and still record
/// its new snapshot). The first marker in the order of the marker index's column, so that the
/// planner reads the (partial) marker index even while the buffer has no statistics, instead of
/// every change (an EXISTS would lose the ORDER BY and the LIMIT, and with them the index).
pub fn truncated_since_sql(oid: u32, last_snapshot: &str) -> String {
    let xid = quote_ident(XID_COLUMN);
    format!(
        "SELECT (SELECT {xid} FROM {} WHERE {} AND {} ORDER BY {xid} LIMIT 1) IS NOT NULL",
        buffer_table(oid),
        quote_ident(TRUNCATE_COLUMN),
        window(last_snapshot),
    )
}

/// A query returning one boolean: whether source `oid` has changes (or a TRUNCATE marker) that a
/// consumer whose last snapshot is `last_snapshot` has not consumed yet, among those visible now.
pub fn pending_changes_sql(oid: u32, last_snapshot: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
        buffer_table(oid),
        window(last_snapshot),
    )
}

/// A query returning one bigint: how many change rows of source `oid` the window since
/// `last_snapshot` holds (markers excluded), counting at most `limit` (the count stops there, so
/// that a decision that needs only to know whether the changes reach `limit` does not read them
/// all). For the AUTO mode's choice between FULL and DIFFERENTIAL.
pub fn pending_change_count_sql(oid: u32, last_snapshot: &str, limit: i64) -> String {
    format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} AND NOT {} LIMIT {}) AS __pgt_changes",
        buffer_table(oid),
        window(last_snapshot),
        quote_ident(TRUNCATE_COLUMN),
        limit.max(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_shape() {
        let sql = delta_rows_sql(3, "10:12:11");
        assert!(sql.starts_with(
            "(SELECT * FROM \"pgtrickle_changes\".\"changes_3\" WHERE NOT \"__pgt_truncate\" \
             AND \"__pgt_xid\" >= pg_catalog.pg_snapshot_xmin('10:12:11'::pg_catalog.pg_snapshot) AND"
        ));
        assert!(sql.ends_with(
            "pg_catalog.pg_visible_in_snapshot(\"__pgt_xid\", (SELECT pg_catalog.pg_current_snapshot()))))"
        ));
        assert!(truncated_since_sql(3, "x'").contains("'x'''::pg_catalog.pg_snapshot"));
    }
}
