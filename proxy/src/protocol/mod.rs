//! The PostgreSQL wire protocol (version 3.0) as far as the proxy needs it: a framer that finds
//! message boundaries in a byte stream without copying, the first-packet parser, and the few
//! messages the proxy reads or writes itself (one file per message).

pub mod auth;
pub mod backend_key_data;
pub mod error_response;
pub mod framer;
pub mod negotiate_protocol_version;
pub mod ready_for_query;
pub mod startup;

/// Largest message PostgreSQL itself accepts from a client (1 GiB, `PQ_LARGE_MESSAGE_LIMIT`).
pub const MAX_MESSAGE_LEN: u32 = 1 << 30;

/// Largest startup packet, as PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`.
pub const MAX_STARTUP_LEN: u32 = 10_000;
