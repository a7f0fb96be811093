//! pgtrickle-proxy: a PostgreSQL wire-protocol proxy.
pub mod cli;
