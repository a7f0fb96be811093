//! The seam where the stream-table engine plugs into a session: it may hold back a frontend
//! message, look at it whole, and either let it through or answer it itself. A session without
//! an interceptor is a pure byte pump.

use bytes::Bytes;

use super::state::SessionState;

/// What to do with a message the interceptor asked to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send these bytes upstream (the message itself, or a rewrite of it).
    Forward(Bytes),
    /// Do not send anything upstream; send these bytes to the client instead.
    Answer(Bytes),
}

/// Looks at frontend messages on their way to the server.
pub trait Interceptor: Send + Sync {
    /// Called with each frontend message's tag: true to have the whole message held back and
    /// passed to [`Interceptor::inspect`]. Must be cheap: it runs for every message.
    fn wants(&self, tag: u8) -> bool;

    /// Decides about one whole message (tag, length and body).
    fn inspect(&self, session: &SessionState, message: Bytes) -> Verdict;
}
