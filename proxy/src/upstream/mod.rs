//! The upstream PostgreSQL server: where it is ([`target`]) and how the proxy opens a connection
//! to it, with TLS as `sslmode` says ([`connect`]).

pub mod connect;
pub mod target;

pub use connect::{connect, ConnectError, UpstreamConn};
pub use target::{SslMode, TargetError, UpstreamTarget};
