//! The catalog in PostgreSQL, and the only code that names its tables in SQL: the DDL, version
//! and upgrade of the schema ([`schema`], [`upgrade`]), and each table read into typed rows
//! decoded by column name ([`record`]) and written by the engine role: stream tables
//! ([`stream_tables`]), their sources ([`dependencies`]), their measured refreshes
//! ([`refresh_history`]), and polled foreign sources ([`polled_sources`]). pg_trickle's
//! monitoring functions and views are `monitoring.sql`; the stand-ins for the calls the proxy
//! answers or refuses are [`stubs`].

pub mod dependencies;
pub mod polled_sources;
pub mod record;
pub mod refresh_history;
pub mod schema;
pub mod stream_tables;
pub mod stubs;
pub mod upgrade;

pub use schema::{is_current, setup_sql, CATALOG_VERSION};
