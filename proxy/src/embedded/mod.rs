//! The embedded default: with no `--upstream`, the proxy runs its own PostgreSQL from the
//! server binaries on the machine, in a data folder created with initdb on first run and reused
//! afterwards, so that a newcomer can try the proxy with one command.

pub mod binaries;
pub mod run_as;
pub mod server;

pub use binaries::find_server_binaries;
pub use server::{EmbeddedError, EmbeddedServer};
