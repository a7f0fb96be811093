//! Logging: `--log` (a filter, `RUST_LOG` wins), `--log-format text|json`, and a filter that
//! SIGHUP can replace without a restart ([`LogReload`]).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Log targets that print statement text at debug level, silenced unless --log-statements.
const STATEMENT_LOGGERS: [&str; 2] = ["sqlparser=off", "tokio_postgres=info"];

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (timestamp, level, fields, message).
    Json,
}

/// Why the log filter could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The subscriber was not installed by [`init`] (a test harness had one already).
    #[error("logging was set up elsewhere")]
    NotOurs,
    /// The subscriber is gone.
    #[error("{0}")]
    Reload(#[from] reload::Error),
}

/// Replaces the log filter of the running process.
#[derive(Clone)]
pub struct LogReload {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    log_statements: bool,
}

/// The filter for `filter` (`RUST_LOG` wins), with the statement loggers silenced unless
/// `log_statements`.
pub fn make_filter(filter: &str, log_statements: bool) -> EnvFilter {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let mut filter = EnvFilter::new(filter);
    if !log_statements {
        for directive in STATEMENT_LOGGERS {
            if let Ok(d) = directive.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

/// Installs the global subscriber, logging to stderr.
pub fn init(filter: &str, log_statements: bool, format: LogFormat) -> LogReload {
    let (filter, handle) = reload::Layer::new(make_filter(filter, log_statements));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init(),
    };
    LogReload {
        handle: installed.is_ok().then_some(handle),
        log_statements,
    }
}

impl LogReload {
    /// Replaces the filter.
    pub fn set(&self, filter: &str) -> Result<(), LogError> {
        let Some(handle) = &self.handle else {
            return Err(LogError::NotOurs);
        };
        Ok(handle.reload(make_filter(filter, self.log_statements))?)
    }
}
