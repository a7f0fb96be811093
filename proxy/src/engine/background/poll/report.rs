//! What a poll reports: to its caller ([`PollReport`]) and to the poll state ([`Scanned`]).

use super::file_stat::FileStat;

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Rows read from the foreign table.
    pub rows_scanned: u64,
    /// Rows that appeared plus rows that disappeared.
    pub rows_changed: u64,
    /// The scan was skipped (a file_fdw file with unchanged size and modification time).
    pub skipped: bool,
}

/// What a successful poll did, with the file state it saw (file_fdw sources).
#[derive(Debug)]
pub struct Scanned {
    /// What it did.
    pub report: PollReport,
    /// The file's size and modification time before the scan (file_fdw sources).
    pub file: Option<FileStat>,
}
