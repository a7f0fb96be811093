//! Work the proxy does on its own connections: one scheduler per database ([`scheduler`]),
//! found or started through the [`registry`], refreshing on a pool of connections
//! ([`refresh_workers`]), and the pollers of foreign sources ([`poll`]).

pub mod poll;
pub mod refresh_workers;
pub mod registry;
pub mod scheduler;
