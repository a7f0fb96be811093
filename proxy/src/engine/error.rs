//! Errors of the stream-table engine, each with the SQLSTATE the client will see.

use thiserror::Error;

use crate::engine::sql::runner::SqlError;

/// Why an API call or a refresh failed.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A statement failed on the server (its error is relayed as is).
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// The planner rejected the call or the defining query.
    #[error("{0}")]
    Plan(#[from] pgtrickle_planner::PlanError),
    /// The engine itself refuses (stream table missing, dependents exist...).
    #[error("{message}")]
    Api {
        /// SQLSTATE.
        code: &'static str,
        /// Message.
        message: String,
        /// Optional hint.
        hint: Option<String>,
    },
    /// A catalog row does not decode (written by something else than the engine).
    #[error("malformed catalog: {0}")]
    Catalog(#[from] crate::engine::catalog::record::CatalogError),
    /// Polling a foreign source failed (on a connection of the proxy's own, so the error is
    /// reported to the client rather than relayed).
    #[error("polling foreign table {source_name} failed: {message}")]
    Poll {
        /// The foreign table, schema-qualified.
        source_name: String,
        /// SQLSTATE (the server's, or the engine's own).
        code: String,
        /// What went wrong.
        message: String,
    },
}

impl EngineError {
    /// An engine refusal.
    pub fn api(code: &'static str, message: impl Into<String>) -> EngineError {
        EngineError::Api {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint to an engine refusal.
    pub fn with_hint(self, hint: impl Into<String>) -> EngineError {
        match self {
            EngineError::Api { code, message, .. } => EngineError::Api {
                code,
                message,
                hint: Some(hint.into()),
            },
            other => other,
        }
    }

    /// The SQLSTATE.
    pub fn code(&self) -> String {
        match self {
            EngineError::Sql(SqlError::Server { code, .. }) => code.clone(),
            EngineError::Sql(_) => "08006".into(),
            EngineError::Plan(e) => e.sqlstate().into(),
            EngineError::Api { code, .. } => (*code).into(),
            EngineError::Poll { code, .. } => code.clone(),
            EngineError::Catalog(_) => "XX000".into(),
        }
    }

    /// True when the error is a serialization failure worth retrying.
    pub fn is_serialization_failure(&self) -> bool {
        matches!(self.code().as_str(), "40001" | "40P01")
    }
}

/// Result of engine operations.
pub type EngineResult<T> = Result<T, EngineError>;
