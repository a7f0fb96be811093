//! Polling foreign sources: the [`Poller`] keeps each foreign source's mirror equal to the
//! foreign table (see `pgtrickle_cdc::poll`), on two connections of the proxy's own, as the role
//! owning the stream tables that read it (so the FDW uses that role's user mapping).
//!
//! - [`prepare`]: creating a source's mirror and change buffer the first time a stream table
//!   reads it ([`Poller::prepare`]).
//! - [`scan`]: one poll: read, hash, compare, write what changed, in one transaction.
//! - [`file_stat`]: skipping the scan of an unchanged file_fdw file.
//! - [`ownership`]: refusing mirrors and buffers that belong to another role.
//! - [`status`]: recording each poll's outcome in `pgtrickle.pgt_poll_state`.
//! - [`due`]: which sources a refresh of a stream table polls first, and cleaning up mirrors no
//!   stream table reads.

pub mod due;
pub mod file_stat;
pub mod ownership;
pub mod poller;
pub mod prepare;
pub mod scan;
pub mod status;

pub use poller::{PollReport, Poller};
