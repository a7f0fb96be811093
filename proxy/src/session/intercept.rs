//! The seam where the stream-table engine plugs into a session: it may hold back a frontend
//! message, look at it whole, and let it through, answer it itself, or run a job that talks to
//! the server on the session's own connection (so that an API call inside a client's
//! transaction block is part of that transaction). A session without an interceptor is a pure
//! byte pump.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::session_sql::SessionSql;
use super::state::SessionState;

/// What to do with a message the interceptor asked to see.
pub enum Verdict {
    /// Send these bytes upstream (the message itself, or a rewrite of it).
    Forward(Bytes),
    /// Do not send anything upstream; send these bytes to the client instead.
    Answer(Bytes),
    /// Wait until the server has answered everything the client sent before, then run the
    /// job with the session's upstream connection; the job's result goes to the client.
    Run(Box<dyn SessionJob>),
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Forward(b) => f.debug_tuple("Forward").field(b).finish(),
            Verdict::Answer(b) => f.debug_tuple("Answer").field(b).finish(),
            Verdict::Run(_) => f.write_str("Run(..)"),
        }
    }
}

/// Work done on a session's upstream connection while the client waits.
pub trait SessionJob: Send {
    /// Runs the job; returns the bytes to send to the client (complete messages, normally
    /// ending with ReadyForQuery).
    fn run<'a>(
        self: Box<Self>,
        sql: &'a mut SessionSql<'_>,
    ) -> Pin<Box<dyn Future<Output = JobOutput> + Send + 'a>>;
}

/// What a job leaves for the session.
pub struct JobOutput {
    /// The bytes to send to the client.
    pub answer: Bytes,
    /// Housekeeping to run on the connection once the answer has been sent and before the
    /// session reads on: it must leave the session as it found it, and its own answer is
    /// dropped (the client asked nothing).
    pub then: Option<Box<dyn SessionJob>>,
}

impl From<Bytes> for JobOutput {
    fn from(answer: Bytes) -> JobOutput {
        JobOutput { answer, then: None }
    }
}

/// Makes the interceptor of each new session.
pub trait InterceptorFactory: Send + Sync {
    /// A fresh interceptor for one session.
    fn for_session(&self) -> Box<dyn Interceptor>;
}

/// Looks at one session's frontend messages on their way to the server.
pub trait Interceptor: Send + Sync {
    /// Called with each frontend message's tag: true to have the whole message held back and
    /// passed to [`Interceptor::inspect`]. Must be cheap: it runs for every message.
    fn wants(&self, tag: u8) -> bool;

    /// Decides about one whole message (tag, length and body). Work that may take long (parsing
    /// a large statement) must not run on the calling thread: the future awaits it elsewhere.
    fn inspect<'a>(
        &'a mut self,
        session: &'a SessionState,
        message: Bytes,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

    /// Notified when a session that wrote (INSERT, UPDATE, DELETE, COPY, MERGE) becomes idle
    /// again, i.e. its writes are committed or rolled back.
    fn write_listener(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}
