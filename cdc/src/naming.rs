//! Names of everything change capture creates, all derived from the source table's OID.
//!
//! Deriving names from the OID (not the table name) keeps capture working when the source is
//! renamed or moved to another schema, and lets [`crate::uninstall_capture_sql`] clean up after a
//! source that no longer exists. Per source table `<oid>`:
//!
//! | object | name |
//! |---|---|
//! | change buffer | `pgtrickle_changes.changes_<oid>` |
//! | capture functions | `pgtrickle_changes.capture_<oid>_ins/_upd/_del/_trunc()` |
//! | triggers on the source (and its partitions) | `__pgt_capture_<oid>_ins/_upd/_del/_trunc` |
//! | advisory lock | `pg_advisory_xact_lock(`[`source_lock_key`]`(<oid>))` |

use crate::quote::qualified;

/// Schema holding every change buffer and capture function.
pub const CHANGES_SCHEMA: &str = "pgtrickle_changes";

/// Prefix of the bookkeeping columns of a change buffer (a source column may not start with it).
pub const RESERVED_PREFIX: &str = "__pgt_";

/// Buffer column: +1 (row appeared) or -1 (row disappeared); 0 on a TRUNCATE marker.
pub const WEIGHT_COLUMN: &str = "__pgt_weight";

/// Buffer column: `xid8` of the top-level transaction that wrote the change.
pub const XID_COLUMN: &str = "__pgt_xid";

/// Buffer column: true on a TRUNCATE marker row (all source columns NULL, weight 0).
pub const TRUNCATE_COLUMN: &str = "__pgt_truncate";

/// Prefix of the capture trigger names on a source table.
pub const TRIGGER_PREFIX: &str = "__pgt_capture_";

/// Transition table names used inside the capture functions.
pub(crate) const OLD_TABLE: &str = "__pgt_old";
pub(crate) const NEW_TABLE: &str = "__pgt_new";

/// The four kinds of write a source table's triggers capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureEvent {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl CaptureEvent {
    /// All four, in installation order.
    pub const ALL: [CaptureEvent; 4] = [
        CaptureEvent::Insert,
        CaptureEvent::Update,
        CaptureEvent::Delete,
        CaptureEvent::Truncate,
    ];

    /// Short suffix used in function and trigger names.
    pub fn suffix(self) -> &'static str {
        match self {
            CaptureEvent::Insert => "ins",
            CaptureEvent::Update => "upd",
            CaptureEvent::Delete => "del",
            CaptureEvent::Truncate => "trunc",
        }
    }

    /// The SQL keyword of the trigger event.
    pub fn keyword(self) -> &'static str {
        match self {
            CaptureEvent::Insert => "INSERT",
            CaptureEvent::Update => "UPDATE",
            CaptureEvent::Delete => "DELETE",
            CaptureEvent::Truncate => "TRUNCATE",
        }
    }
}

/// Unqualified name of the change buffer of source `oid`: `changes_<oid>`.
pub fn buffer_name(oid: u32) -> String {
    format!("changes_{oid}")
}

/// Quoted, schema-qualified change buffer of source `oid`.
pub fn buffer_table(oid: u32) -> String {
    qualified(CHANGES_SCHEMA, &buffer_name(oid))
}

/// Unqualified name of the capture function of source `oid` for `event`.
pub fn function_name(oid: u32, event: CaptureEvent) -> String {
    format!("capture_{oid}_{}", event.suffix())
}

/// Quoted, schema-qualified capture function of source `oid` for `event` (without `()`).
pub fn function(oid: u32, event: CaptureEvent) -> String {
    qualified(CHANGES_SCHEMA, &function_name(oid, event))
}

/// Name of the capture trigger of source `oid` for `event`: `__pgt_capture_<oid>_<event>`. The
/// OID in the name keeps apart the triggers a partition gets as part of its partitioned root's
/// capture and those of its own capture (when it is a source itself).
pub fn trigger_name(oid: u32, event: CaptureEvent) -> String {
    format!("{TRIGGER_PREFIX}{oid}_{}", event.suffix())
}

/// Key of the transaction-level advisory lock that serialises, per source table, capture
/// installation (stream table creation), uninstallation and buffer cleanup:
/// `0x70677463_00000000 | oid` ("pgtc" in the high half), always positive.
pub fn source_lock_key(oid: u32) -> i64 {
    (0x7067_7463_i64 << 32) | i64::from(oid)
}

/// Key of the advisory lock taken while the `pgtrickle_changes` schema is created.
/// ("pgts" in the high half, so it never equals a [`source_lock_key`]).
pub(crate) const SCHEMA_LOCK_KEY: i64 = 0x7067_7473_i64 << 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            buffer_table(16384),
            "\"pgtrickle_changes\".\"changes_16384\""
        );
        assert_eq!(
            function(7, CaptureEvent::Truncate),
            "\"pgtrickle_changes\".\"capture_7_trunc\""
        );
        assert_eq!(trigger_name(7, CaptureEvent::Update), "__pgt_capture_7_upd");
        assert!(source_lock_key(u32::MAX) > 0);
        assert_ne!(source_lock_key(u32::MAX), SCHEMA_LOCK_KEY);
        assert_ne!(source_lock_key(0), SCHEMA_LOCK_KEY);
    }
}
