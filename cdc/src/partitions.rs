//! Whether a source's capture still covers its partitions: the install puts the capture
//! triggers on the root and on every partition it has then (see [`crate::triggers`]), so a
//! partition created or attached later (rows written to it directly, the rows an ATTACH brings)
//! and a DETACH (its rows leave the root; the detached table keeps writing into the root's
//! buffer) escape the change buffer. A consumer that finds the capture out of date must
//! recompute instead of applying the buffer.

use crate::naming::{trigger_name, CaptureEvent};
use crate::quote::quote_literal;

/// A query returning one boolean: whether source `oid`'s partitions differ from the tables that
/// carry its capture (a partition without the insert trigger, or a table with it outside the
/// source's partition tree). False for a source without partitions (the root itself is not
/// checked: a polled foreign source has no triggers, and `pg_partition_tree` is empty for a
/// table that is neither partitioned nor a partition).
pub fn capture_out_of_date_sql(oid: u32) -> String {
    let trigger = quote_literal(&trigger_name(oid, CaptureEvent::Insert));
    format!(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree({oid}::pg_catalog.oid::pg_catalog.regclass) t \
         WHERE t.relid <> {oid}::pg_catalog.oid \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid \
         AND g.tgname = {trigger})) \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgname = {trigger} \
         AND g.tgrelid <> {oid}::pg_catalog.oid AND g.tgrelid NOT IN (SELECT t.relid FROM \
         pg_catalog.pg_partition_tree({oid}::pg_catalog.oid::pg_catalog.regclass) t))"
    )
}
