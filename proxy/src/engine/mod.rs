//! The stream-table engine. Data flows one way through its folders:
//!
//! - [`api`]: pg_trickle's SQL API intercepted from client sessions (interception, the jobs that
//!   run a call in the client's session, encoding answers, and each call's work).
//! - [`background`]: the per-database schedulers and their registry, their refresh connections,
//!   and the pollers of foreign sources.
//! - [`refresh`]: one refresh of one stream table (describe the defining query, keep the plan
//!   current, capture glue, deltas, the owner's rights, the sandbox the statements run in).
//! - [`catalog`]: the catalog tables in PostgreSQL: their DDL and upgrades, and the only code
//!   that names them in SQL, read into typed rows.
//! - [`sql`]: running SQL (on a client's session or a connection of the proxy's own, as the
//!   client or as the engine role), quoting.
//!
//! [`error`] and [`settings`] are shared by all of them.

pub mod api;
pub mod background;
pub mod catalog;
pub mod error;
pub mod refresh;
pub mod settings;
pub mod sql;
