//! The proxy's own connections to the upstream database (the scheduler's, its refresh
//! workers', the poller's): opened with the same TLS policy as client sessions, then logged in
//! by tokio-postgres with the user and password of the `--upstream` URL. The server checks every
//! [`CLIENT_CHECK_INTERVAL`] during a statement that the proxy is still there, so that a killed
//! proxy's refresh ends (and releases its locks) instead of running to completion. Errors keep
//! the server's SQLSTATE, message and detail ([`describe`]): tokio-postgres alone prints
//! `db error`.

use thiserror::Error;
use tokio_postgres::{Client, NoTls};

use crate::engine::sql::runner::{ResultSet, SqlError, SqlRunner};
use crate::upstream::{connect, UpstreamTarget};

/// `client_connection_check_interval` of the proxy's own connections (PostgreSQL 14+): how
/// soon the server notices, during a long statement, that the proxy went away.
pub const CLIENT_CHECK_INTERVAL: &str = "1s";

/// Why a connection of the proxy's own could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The network or TLS part failed.
    #[error("cannot reach the upstream: {0}")]
    Connect(String),
    /// The server refused the login (or it failed otherwise); the text is [`describe`]'s.
    #[error("cannot log in: {text}")]
    Login {
        /// The server's SQLSTATE, when the server answered with an error.
        code: Option<String>,
        /// What went wrong, with the server's message.
        text: String,
    },
}

impl OpenError {
    /// True when the database does not exist (any more).
    pub fn is_missing_database(&self) -> bool {
        matches!(self, OpenError::Login { code: Some(c), .. } if c == "3D000")
    }
}

/// A tokio-postgres error as text: the server's SQLSTATE, message, detail and hint for an error
/// the server sent, else the error with its causes.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (DETAIL: {detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" (HINT: {hint})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Opens and logs in a scheduler connection; its driver task runs in the background.
pub async fn open(
    target: &UpstreamTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Client, OpenError> {
    open_named(target, tls, "pgtrickle-proxy scheduler").await
}

/// Opens and logs in a connection with `application_name`; the error as text (the poller
/// reports it as is).
pub async fn open_as(
    target: &UpstreamTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
    application_name: &str,
) -> Result<Client, String> {
    open_named(target, tls, application_name)
        .await
        .map_err(|e| e.to_string())
}

/// Opens and logs in a connection with `application_name`.
pub async fn open_named(
    target: &UpstreamTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
    application_name: &str,
) -> Result<Client, OpenError> {
    let stream = connect(target, tls)
        .await
        .map_err(|e| OpenError::Connect(e.to_string()))?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(&target.user)
        .dbname(&target.database)
        .application_name(application_name)
        // NOTICEs of the engine's own statements (DROP ... IF EXISTS) are not news. The
        // search_path is fixed: an unqualified function name in the engine's SQL must never
        // find an overload some role created in a schema it may write (see docs/SECURITY.md).
        .options(format!(
            "-c client_min_messages=warning -c search_path=pg_catalog,pg_temp \
             -c client_connection_check_interval={CLIENT_CHECK_INTERVAL}"
        ))
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(p) = &target.password {
        config.password(p);
    }
    let (client, connection) =
        config
            .connect_raw(stream, NoTls)
            .await
            .map_err(|e| OpenError::Login {
                code: e.as_db_error().map(|db| db.code().code().to_string()),
                text: describe(&e),
            })?;
    let name = application_name.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("{name} connection ended: {}", describe(&e));
        }
    });
    Ok(client)
}

impl SqlRunner for Client {
    async fn run(&mut self, sql: &str) -> Result<Vec<ResultSet>, SqlError> {
        {
            let messages = self
                .simple_query(sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => SqlError::Server {
                        code: db.code().code().to_string(),
                        message: match db.detail() {
                            Some(detail) => format!("{} (DETAIL: {detail})", db.message()),
                            None => db.message().to_string(),
                        },
                        raw: bytes::Bytes::new(),
                    },
                    None => SqlError::Io(std::io::Error::other(describe(&e))),
                })?;
            let mut results = Vec::new();
            let mut current = ResultSet::default();
            for m in messages {
                match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        if current.columns.is_empty() {
                            current.columns =
                                row.columns().iter().map(|c| c.name().to_string()).collect();
                        }
                        current.rows.push(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                        );
                    }
                    tokio_postgres::SimpleQueryMessage::CommandComplete(n) => {
                        current.rows_affected = Some(n);
                        results.push(std::mem::take(&mut current));
                    }
                    _ => {}
                }
            }
            Ok(results)
        }
    }
}
