//! Why a session ended abnormally.

use std::io;

use thiserror::Error;

use crate::protocol::framer::FrameError;
use crate::protocol::startup::StartupError;
use crate::upstream::ConnectError;

/// A session-ending condition. Each is logged; the client has been told what it can be told.
#[derive(Debug, Error)]
pub enum SessionError {
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A bad first packet.
    #[error("{0}")]
    Startup(#[from] StartupError),
    /// A message with an impossible length.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The upstream server could not be reached.
    #[error("{0}")]
    Upstream(#[from] ConnectError),
    /// The TLS handshake with the client failed.
    #[error("TLS handshake with client failed: {0}")]
    ClientTls(io::Error),
    /// Closed while starting up, to make room for a newer connection (startup cap).
    #[error("closed in startup phase: too many connections in startup phase")]
    StartupEvicted,
    /// The client did not finish starting up in time.
    #[error("timeout during startup and authentication")]
    StartupTimeout,
    /// The client broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server rejected the login; its error was relayed to the client.
    #[error("login rejected by the server: {0}")]
    LoginRejected(String),
    /// The proxy refused the login (TLS required, channel binding...).
    #[error("login refused by the proxy: {0}")]
    Refused(String),
}
