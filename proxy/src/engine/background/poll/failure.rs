//! Why a poll failed: the server's error (relayed with its SQLSTATE), a broken connection, the
//! poller's own refusal, or a timeout. Every failure has a SQLSTATE and a message, recorded in
//! `pgtrickle.pgt_poll_state` and reported to the client as [`EngineError::Poll`].

use thiserror::Error;

use crate::engine::error::EngineError;

/// A failed poll.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Failure {
    /// A statement failed on the server.
    #[error("{message}")]
    Server {
        /// The server's SQLSTATE.
        code: String,
        /// Its message, with the detail appended.
        message: String,
    },
    /// The connection could not be opened or broke.
    #[error("{0}")]
    Connection(String),
    /// The poller refuses to poll (or to go on polling) the source.
    #[error("{message}")]
    Refused {
        /// SQLSTATE.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The poll took longer than its timeout (seconds).
    #[error("poll timed out after {0} s")]
    Timeout(u64),
}

impl Failure {
    /// A refusal of the poller's own.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Failure {
        Failure::Refused {
            code,
            message: message.into(),
        }
    }

    /// The SQLSTATE.
    pub fn code(&self) -> &str {
        match self {
            Failure::Server { code, .. } => code,
            Failure::Connection(_) => "08006",
            Failure::Refused { code, .. } => code,
            Failure::Timeout(_) => "57014",
        }
    }

    /// The failure as the engine reports it, naming the foreign table.
    pub fn into_engine_error(self, source_name: &str) -> EngineError {
        EngineError::Poll {
            source_name: source_name.to_string(),
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) => {
                let mut message = db.message().to_string();
                if let Some(detail) = db.detail() {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                Failure::Server {
                    code: db.code().code().to_string(),
                    message,
                }
            }
            None => Failure::Connection(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let r = Failure::refused("0A000", "no");
        assert_eq!((r.code(), r.to_string().as_str()), ("0A000", "no"));
        assert_eq!(Failure::Timeout(3).code(), "57014");
        assert_eq!(Failure::Timeout(3).to_string(), "poll timed out after 3 s");
        assert_eq!(Failure::Connection("gone".into()).code(), "08006");
        let e = Failure::refused("42501", "mine").into_engine_error("public.t");
        assert_eq!(e.code(), "42501");
        assert_eq!(e.to_string(), "polling foreign table public.t failed: mine");
    }
}
