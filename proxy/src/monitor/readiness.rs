//! The readiness probe: every [`PROBE_INTERVAL`], `SELECT 1` on a connection of the proxy's
//! own (opened again when it broke). `/ready` answers from the cached result, so a stopped
//! upstream shows within about two intervals and a scrape never waits on the network.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use crate::engine::sql::own_connection::OpenError;

use super::Monitor;
use crate::engine::sql::own_connection;
use crate::upstream::UpstreamTarget;

/// Time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for a connection or an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the upstream is not ready.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("timed out connecting to the upstream")]
    ConnectTimeout,
    #[error("{0}")]
    Connect(#[from] OpenError),
    #[error("the upstream did not answer in time")]
    AnswerTimeout,
    #[error("{}", own_connection::describe(.0))]
    Query(#[from] tokio_postgres::Error),
}

pub(super) async fn run(
    monitor: Arc<Monitor>,
    target: UpstreamTarget,
    tls: Option<tokio_rustls::TlsConnector>,
) {
    let mut client: Option<Client> = None;
    loop {
        let result = probe(&mut client, &target, tls.as_ref()).await;
        match result {
            Ok(()) => monitor.set_ready(true, "upstream accepts connections".into()),
            Err(e) => monitor.set_ready(false, e.to_string()),
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

async fn probe(
    client: &mut Option<Client>,
    target: &UpstreamTarget,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<(), NotReady> {
    let c = match client.take() {
        Some(c) if !c.is_closed() => c,
        _ => tokio::time::timeout(
            PROBE_TIMEOUT,
            own_connection::open_named(target, tls, "pgtrickle-proxy readiness"),
        )
        .await
        .map_err(|_| NotReady::ConnectTimeout)??,
    };
    tokio::time::timeout(PROBE_TIMEOUT, c.simple_query("SELECT 1"))
        .await
        .map_err(|_| NotReady::AnswerTimeout)??;
    *client = Some(c);
    Ok(())
}
