//! Change detection for foreign tables by polling: triggers and WAL cannot see changes made on
//! a remote server or in a file, so a poller reads the whole foreign table, hashes every row and
//! compares the multiset of hashes with the previous poll's.
//!
//! # The pieces
//!
//! - [`row_hash`]: the content hash of one row (blake3 of its COPY text form, 128 bits).
//! - [`lines`]: splits a COPY text stream into rows, whatever the chunking.
//! - [`multiset`]: the previous poll's hashes with their multiplicities, compact (24 bytes a
//!   distinct row), and the streaming comparison that says, row by row, whether a row is new, and
//!   at the end which rows disappeared.
//! - [`mirror`]: the SQL of the local synchronised copy of a foreign source (the *mirror*), into
//!   which a poll writes the rows that appeared and from which it deletes those that disappeared,
//!   recording both in the source's ordinary change buffer (`pgtrickle_changes.changes_<oid>`,
//!   keyed by the foreign table's OID), so the refresh engine consumes them exactly like trigger
//!   captured changes.
//!
//! # One poll, in the engine
//!
//! 1. Writer connection: `BEGIN`, [`mirror::poll_lock_sql`] (one poller per source at a time),
//!    [`mirror::columns_match_sql`] (a foreign table whose definition changed fails the poll).
//! 2. Reader connection: [`mirror::scan_sql`] streams the foreign table (`COPY ... TO STDOUT`);
//!    each row is hashed and looked up in the previous multiset; a row that appeared is copied
//!    into [`mirror::staging_table`] on the writer ([`mirror::create_staging_sql`],
//!    [`mirror::copy_staging_sql`], [`mirror::staging_line`]), opened only at the first such row.
//! 3. Writer: [`mirror::delete_vanished_sql`], [`mirror::delete_reduced_sql`] and
//!    [`mirror::apply_appeared_sql`] move the changes into the mirror and the change buffer in
//!    one transaction, then `COMMIT`. (The first fill of a source nobody reads yet goes straight
//!    into the mirror with [`mirror::copy_mirror_sql`]: there is nobody to tell.)
//!
//! A poll that finds nothing changed opens no transaction that writes: no row is written
//! anywhere. The multiset itself can always be rebuilt from the mirror
//! ([`mirror::load_hashes_sql`]), which is how a restarted proxy resumes without re-emitting
//! rows.

pub mod lines;
pub mod mirror;
pub mod multiset;
pub mod row_hash;

pub use lines::LineSplitter;
pub use multiset::{Compared, Comparison, HashMultiset, MultisetBuilder, Seen};
pub use row_hash::{hash_row, RowHash};
