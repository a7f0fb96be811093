//! What `--http-listen` serves is gathered here, off the forwarding path: [`readiness`] probes
//! the upstream every second, [`collector`] reads the stream-table catalog of every database
//! the proxy serves every few seconds (into `metrics::catalog` and [`history`], the last hour
//! of refresh durations and staleness for the status page).

pub mod catalog_reads;
pub mod collector;
pub mod history;
pub mod readiness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::engine::background::registry::Schedulers;
use crate::metrics::catalog::CatalogMetrics;
use crate::upstream::UpstreamTarget;

/// Why a probe or a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// No connection to the upstream.
    #[error("{0}")]
    Connect(#[from] crate::engine::sql::own_connection::OpenError),
    /// A statement failed.
    #[error("{0}")]
    Sql(#[from] crate::engine::sql::runner::SqlError),
    /// The upstream did not answer in time.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Shared state of the monitor tasks and the HTTP endpoints.
pub struct Monitor {
    ready: AtomicBool,
    ready_detail: Mutex<String>,
    /// The last hour of each stream table.
    pub history: Mutex<history::History>,
    /// Where the collector publishes what it read (the stream-table metrics).
    pub catalog: Arc<CatalogMetrics>,
}

impl Monitor {
    /// A monitor publishing into `catalog`; not ready until its first probe succeeded.
    pub fn new(catalog: Arc<CatalogMetrics>) -> Monitor {
        Monitor {
            ready: AtomicBool::new(false),
            ready_detail: Mutex::new(String::new()),
            history: Mutex::default(),
            catalog,
        }
    }

    /// Whether the last probe reached the upstream, and what it said.
    pub fn readiness(&self) -> (bool, String) {
        let detail = self
            .ready_detail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.ready.load(Ordering::Acquire), detail)
    }

    pub(crate) fn set_ready(&self, ready: bool, detail: String) {
        let was = self.ready.swap(ready, Ordering::AcqRel);
        if was != ready {
            if ready {
                tracing::info!("upstream reachable: ready");
            } else {
                tracing::warn!("upstream unreachable: not ready ({detail})");
            }
        }
        *self.ready_detail.lock().unwrap_or_else(|p| p.into_inner()) = detail;
    }

    /// Starts the prober and the collector.
    pub fn start(
        self: &Arc<Self>,
        target: UpstreamTarget,
        tls: Option<tokio_rustls::TlsConnector>,
        schedulers: Arc<Schedulers>,
    ) {
        tokio::spawn(readiness::run(
            Arc::clone(self),
            target.clone(),
            tls.clone(),
        ));
        tokio::spawn(collector::run(Arc::clone(self), target, tls, schedulers));
    }
}
