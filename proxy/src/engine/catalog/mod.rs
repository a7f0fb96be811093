//! The catalog in PostgreSQL: its DDL, version and upgrades ([`schema`]).

pub mod schema;

pub use schema::{ensure, is_current, setup_sql, CATALOG_VERSION};
