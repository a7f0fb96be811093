//! pgtrickle-proxy: a PostgreSQL wire-protocol proxy that forwards everything byte for byte and
//! (in later layers) maintains pg_trickle stream tables.
//!
//! The shape, from the outside in: [`cli`] parses flags and runs [`server`], which accepts
//! connections and runs one [`session`] each: [`session::handshake`] answers the first packets
//! (TLS via [`tls`], cancel via [`cancel`]), [`session::login`] connects to the [`upstream`]
//! and relays authentication, and [`session::pump`] forwards bytes both ways, framed by
//! [`protocol::framer`]. [`embedded`] runs a local PostgreSQL when no upstream is given.
//! See docs/ARCHITECTURE.md.

pub mod cancel;
pub mod cli;
pub mod client_limit;
pub mod config;
pub mod conn;
pub mod context;
pub mod embedded;
pub mod engine;
pub mod fd_limit;
pub mod http;
pub mod log_every;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod protocol;
pub mod server;
pub mod session;
pub mod startup_limit;
pub mod tls;
pub mod upstream;
