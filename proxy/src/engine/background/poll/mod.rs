//! Polling foreign sources: the [`Poller`] keeps each foreign source's mirror equal to the
//! foreign table (see `pgtrickle_cdc::poll`), on two connections of the proxy's own: a writer
//! running as the proxy's own role (the engine role, which owns the mirror, the change buffer
//! and the catalog rows) and a reader `SET ROLE` to the owner of the stream tables reading the
//! source (so the FDW uses that role's user mapping), on which nothing that role controls may
//! run.
//!
//! - [`prepare`]: creating a source's mirror and change buffer the first time a stream table
//!   reads it ([`Poller::prepare`]), and again when a poll finds them missing.
//! - [`scan`]: one poll: read, hash, compare, write what changed, in one transaction.
//! - [`guard`]: what is checked before the foreign table is read (still the same foreign
//!   table, no column evaluating its owner's domain constraints).
//! - [`file_stat`]: skipping the scan of an unchanged file_fdw file.
//! - [`ownership`]: refusing mirrors and buffers not owned by the engine role, and sources
//!   polled for another role.
//! - [`failure`]: why a poll failed.
//! - [`cache`]: the hash multisets kept between polls; [`report`]: what a poll reports.
//! - [`status`]: recording each poll's outcome in `pgtrickle.pgt_poll_state`.
//! - [`due`]: which sources a refresh of a stream table polls first, and cleaning up mirrors no
//!   stream table reads.

pub mod cache;
pub mod due;
pub mod failure;
pub mod file_stat;
pub mod guard;
pub mod ownership;
pub mod poller;
pub mod prepare;
pub mod report;
pub mod scan;
pub mod status;

pub use poller::Poller;
pub use report::PollReport;
