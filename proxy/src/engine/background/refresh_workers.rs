//! A scheduler's small pool of refresh connections (`--refresh-workers`): each scheduled refresh
//! runs in a task of its own on one of at most `size` connections of the proxy's own, so that a
//! long refresh does not hold up the other stream tables of its database. The pool knows which
//! stream tables are being refreshed (the scheduler starts no second refresh of one, nor a
//! refresh of a stream table whose upstream is being refreshed); connections are opened when
//! first needed, kept while they work, and a refresh that ended wakes the scheduler. After a
//! failed connection attempt the pool opens none for [`CONNECT_RETRY`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio_postgres::Client;

use crate::engine::sql::own_connection::{self, OpenError};
use crate::upstream::UpstreamTarget;

/// `application_name` of the refresh connections.
pub const APPLICATION_NAME: &str = "pgtrickle-proxy refresh";

/// How long the pool waits after a failed connection attempt before it tries again.
pub const CONNECT_RETRY: Duration = Duration::from_secs(2);

/// What a refresh task reports when it ends.
struct Ended {
    pgt_id: i64,
    /// The connection, when it is still usable.
    client: Option<Client>,
    /// Why no connection could be opened, if so.
    open_error: Option<OpenError>,
}

/// The refresh connections of one scheduler.
pub struct RefreshWorkers {
    target: UpstreamTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    size: usize,
    idle: Vec<Client>,
    running: HashSet<i64>,
    ended_tx: mpsc::UnboundedSender<Ended>,
    ended_rx: mpsc::UnboundedReceiver<Ended>,
    connect_again_at: Option<Instant>,
    wake: Arc<Notify>,
}

impl RefreshWorkers {
    /// A pool of at most `size` (at least 1) connections to `target`; `wake` is told when a
    /// refresh ends.
    pub fn new(
        target: UpstreamTarget,
        tls: Option<tokio_rustls::TlsConnector>,
        size: usize,
        wake: Arc<Notify>,
    ) -> RefreshWorkers {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        RefreshWorkers {
            target,
            tls,
            size: size.max(1),
            idle: Vec::new(),
            running: HashSet::new(),
            ended_tx,
            ended_rx,
            connect_again_at: None,
            wake,
        }
    }

    /// Takes note of the refreshes that ended since the last call, and takes their connections
    /// back.
    pub fn collect(&mut self) {
        while let Ok(ended) = self.ended_rx.try_recv() {
            self.running.remove(&ended.pgt_id);
            if let Some(e) = ended.open_error {
                tracing::warn!(database = %self.target.database, "refresh worker cannot connect: {e}");
                self.connect_again_at = Some(Instant::now() + CONNECT_RETRY);
            }
            if let Some(client) = ended.client.filter(|c| !c.is_closed()) {
                self.idle.push(client);
            }
        }
    }

    /// True while stream table `pgt_id` is being refreshed.
    pub fn is_running(&self, pgt_id: i64) -> bool {
        self.running.contains(&pgt_id)
    }

    /// True when a refresh could start now.
    pub fn has_room(&self) -> bool {
        self.running.len() < self.size
            && (!self.idle.is_empty() || self.connect_again_at.is_none_or(|t| Instant::now() >= t))
    }

    /// Runs `work` for stream table `pgt_id` in a task of its own, on an idle connection or a
    /// new one; `work` hands the connection back. False (and nothing runs) when there is no room
    /// ([`RefreshWorkers::has_room`]).
    pub fn start<F, Fut>(&mut self, pgt_id: i64, work: F) -> bool
    where
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Client> + Send + 'static,
    {
        if !self.has_room() || self.running.contains(&pgt_id) {
            return false;
        }
        self.running.insert(pgt_id);
        let mut report = Report {
            ended: Some(Ended {
                pgt_id,
                client: None,
                open_error: None,
            }),
            tx: self.ended_tx.clone(),
            wake: Arc::clone(&self.wake),
        };
        let idle = self.idle.pop();
        let (target, tls) = (self.target.clone(), self.tls.clone());
        tokio::spawn(async move {
            let client = match idle {
                Some(c) => c,
                None => {
                    match own_connection::open_named(&target, tls.as_ref(), APPLICATION_NAME).await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            report.failed_to_open(e);
                            return;
                        }
                    }
                }
            };
            let client = work(client).await;
            report.give_back(client);
        });
        true
    }
}

/// Reports a refresh task's end to the pool when dropped, also when the task panicked (then
/// without its connection), so that the stream table is not left marked as running.
struct Report {
    ended: Option<Ended>,
    tx: mpsc::UnboundedSender<Ended>,
    wake: Arc<Notify>,
}

impl Report {
    fn give_back(&mut self, client: Client) {
        if let Some(e) = self.ended.as_mut() {
            e.client = Some(client);
        }
    }

    fn failed_to_open(&mut self, error: OpenError) {
        if let Some(e) = self.ended.as_mut() {
            e.open_error = Some(error);
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(ended) = self.ended.take() {
            // A failed connection attempt wakes nobody: the scheduler retries on its tick.
            let wake = ended.open_error.is_none();
            let _ = self.tx.send(ended);
            if wake {
                self.wake.notify_one();
            }
        }
    }
}
