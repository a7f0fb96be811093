//! The PostgreSQL wire protocol (version 3.0) as far as the proxy needs it: a framer that finds
//! message boundaries in a byte stream without copying, the first-packet parser, and the
//! messages the proxy reads or writes itself, one file per message, each with a typed decoder
//! (which returns None on a truncated or malformed body, never panics) and an encoder:
//!
//! - login: [`startup`], [`auth`], [`negotiate_protocol_version`], [`backend_key_data`];
//! - the client's statements the engine intercepts: [`query`], and in the extended protocol
//!   [`parse`], [`bind`], [`describe`], [`execute`], [`close`];
//! - the answers the engine writes or reads: [`row_description`], [`data_row`],
//!   [`command_complete`], [`parameter_description`], [`parse_complete`], [`bind_complete`],
//!   [`close_complete`], [`copy_fail`], [`error_response`], [`ready_for_query`].
//!
//! [`codec`] holds the field reader and length-writing helpers they share.

pub mod auth;
pub mod backend_key_data;
pub mod bind;
pub mod bind_complete;
pub mod close;
pub mod close_complete;
pub mod codec;
pub mod command_complete;
pub mod copy_fail;
pub mod data_row;
pub mod describe;
pub mod error_response;
pub mod execute;
pub mod framer;
pub mod negotiate_protocol_version;
pub mod parameter_description;
pub mod parse;
pub mod parse_complete;
pub mod query;
pub mod ready_for_query;
pub mod row_description;
pub mod startup;

/// Largest message PostgreSQL itself accepts from a client (1 GiB, `PQ_LARGE_MESSAGE_LIMIT`).
pub const MAX_MESSAGE_LEN: u32 = 1 << 30;

/// Largest startup packet, as PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`.
pub const MAX_STARTUP_LEN: u32 = 10_000;
