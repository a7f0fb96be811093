//! The planner's one error type: every failure carries the SQLSTATE PostgreSQL would report and a
//! message naming the argument, construct or relation at fault.

use thiserror::Error;

/// An error from parsing an API call or planning a stream table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The statement or the defining query is not valid SQL (42601).
    #[error("{0}")]
    Syntax(String),
    /// No pgtrickle function matches the call: unknown function, unknown argument name, too many
    /// arguments or a missing required argument (42883).
    #[error("{0}")]
    UndefinedFunction(String),
    /// An argument value is not acceptable: bad mode, bad schedule, below the minimum (22023).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// An argument value does not parse as its type, e.g. a boolean (22P02).
    #[error("{0}")]
    InvalidTextRepresentation(String),
    /// NULL passed for an argument that must not be NULL (22004).
    #[error("{0}")]
    NullValueNotAllowed(String),
    /// The construct is valid SQL but not supported here, or not in the requested refresh mode
    /// (0A000).
    #[error("{0}")]
    FeatureNotSupported(String),
    /// The defining query cannot define a stream table, e.g. it reads its own stream table
    /// (42P17).
    #[error("{0}")]
    InvalidObjectDefinition(String),
    /// A relation or column the query names is not among what the caller described (42P01).
    #[error("{0}")]
    UndefinedTable(String),
    /// The caller's description of the query does not fit the query (XX000: a bug in the caller).
    #[error("{0}")]
    Internal(String),
    /// A `$n` parameter of an API call was not given a value (08P01, as PostgreSQL reports a
    /// Bind with too few parameters).
    #[error("{0}")]
    ProtocolViolation(String),
    /// A statement the planner would parse is larger than it accepts (54000).
    #[error("{0}")]
    ProgramLimitExceeded(String),
    /// A statement the planner would parse is nested too deeply (54001, as PostgreSQL's "stack
    /// depth limit exceeded").
    #[error("{0}")]
    StatementTooComplex(String),
}

impl PlanError {
    /// The SQLSTATE PostgreSQL uses for this kind of error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PlanError::Syntax(_) => "42601",
            PlanError::UndefinedFunction(_) => "42883",
            PlanError::InvalidParameterValue(_) => "22023",
            PlanError::InvalidTextRepresentation(_) => "22P02",
            PlanError::NullValueNotAllowed(_) => "22004",
            PlanError::FeatureNotSupported(_) => "0A000",
            PlanError::InvalidObjectDefinition(_) => "42P17",
            PlanError::UndefinedTable(_) => "42P01",
            PlanError::Internal(_) => "XX000",
            PlanError::ProtocolViolation(_) => "08P01",
            PlanError::ProgramLimitExceeded(_) => "54000",
            PlanError::StatementTooComplex(_) => "54001",
        }
    }

    /// The message text, without the SQLSTATE.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;
