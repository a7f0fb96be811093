//! The proxy's own connections to the upstream database (the scheduler's, the poller's):
//! opened with the same TLS policy as client sessions, then logged in by tokio-postgres with the
//! user and password of the `--upstream` URL.

use tokio_postgres::{Client, NoTls};

use super::sql::{ResultSet, SqlError, SqlRunner};
use crate::upstream::{connect, UpstreamTarget};

/// Opens and logs in a connection; its driver task runs in the background.
pub async fn open(
    target: &UpstreamTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<Client, String> {
    open_as(target, tls, "pgtrickle-proxy scheduler").await
}

/// Opens and logs in a connection with `application_name`.
pub async fn open_as(
    target: &UpstreamTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
    application_name: &str,
) -> Result<Client, String> {
    let stream = connect(target, tls).await.map_err(|e| e.to_string())?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(&target.user)
        .dbname(&target.database)
        .application_name(application_name)
        // NOTICEs of the engine's own statements (DROP ... IF EXISTS) are not news. The
        // search_path is fixed: an unqualified function name in the engine's SQL must never
        // find an overload some role created in a schema it may write (see docs/SECURITY.md).
        .options("-c client_min_messages=warning -c search_path=pg_catalog,pg_temp")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(p) = &target.password {
        config.password(p);
    }
    let (client, connection) = config
        .connect_raw(stream, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("scheduler connection ended: {e}");
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
                        message: db.message().to_string(),
                        raw: bytes::Bytes::new(),
                    },
                    None => SqlError::Io(std::io::Error::other(e.to_string())),
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
                        current.tag = format!("ROWS {n}");
                        results.push(std::mem::take(&mut current));
                    }
                    _ => {}
                }
            }
            Ok(results)
        }
    }
}
