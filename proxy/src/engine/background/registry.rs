//! One scheduler per database that has stream tables: the `--upstream` database's from the
//! start, the others when the proxy finds their catalog at start-up or when a client creates a
//! stream table in them through the proxy. Every scheduler connects with the `--upstream`
//! user. A wake-up (a committed write or API call through the proxy) reaches all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::engine::background::poll::Poller;
use crate::engine::background::scheduler::{self, SchedulerConfig};
use crate::engine::settings::EngineSettings;
use crate::engine::sql::runner::SqlRunnerExt;
use crate::upstream::UpstreamTarget;

/// The running schedulers.
pub struct Schedulers {
    target: UpstreamTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    config: SchedulerConfig,
    poller: Arc<Poller>,
    running: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Schedulers {
    /// The registry; nothing runs until [`Schedulers::start`].
    pub fn new(
        target: UpstreamTarget,
        tls: Option<tokio_rustls::TlsConnector>,
        config: SchedulerConfig,
        poller: Arc<Poller>,
    ) -> Arc<Schedulers> {
        Arc::new(Schedulers {
            target,
            tls,
            config,
            poller,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Starts the `--upstream` database's scheduler, forwards wake-ups from `wake` to every
    /// scheduler, and looks for other databases with stream tables.
    pub fn start(self: &Arc<Self>, wake: Arc<Notify>) {
        self.ensure(&self.target.database.clone());
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                for n in me.notifies() {
                    n.notify_one();
                }
            }
        });
        let me = Arc::clone(self);
        tokio::spawn(async move { me.discover().await });
    }

    fn notifies(&self) -> Vec<Arc<Notify>> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.values().cloned().collect()
    }

    /// The databases that have a scheduler (read by the monitor).
    pub fn databases(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.keys().cloned().collect()
    }

    /// The settings every refresh of this proxy applies (the schedulers' and the API calls').
    pub fn settings(&self) -> &EngineSettings {
        &self.config.settings
    }

    /// Makes sure `database` has a scheduler.
    pub fn ensure(self: &Arc<Self>, database: &str) {
        let wake = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(database) {
                return;
            }
            let wake = Arc::new(Notify::new());
            running.insert(database.to_string(), Arc::clone(&wake));
            wake
        };
        let mut target = self.target.clone();
        target.database = database.to_string();
        let primary = database == self.target.database;
        let me = Arc::clone(self);
        let tls = self.tls.clone();
        let config = self.config.clone();
        let poller = Arc::clone(&self.poller);
        let database = database.to_string();
        tracing::info!(database = %database, "scheduler started");
        tokio::spawn(async move {
            scheduler::run(target, tls, config, wake, poller, primary).await;
            // Only a database that went away ends a scheduler.
            let mut running = me.running.lock().unwrap_or_else(|p| p.into_inner());
            running.remove(&database);
            tracing::info!(database = %database, "scheduler stopped: the database is gone");
        });
    }

    /// Starts schedulers for the databases that already hold a stream-table catalog.
    async fn discover(self: Arc<Self>) {
        let mut client =
            match crate::engine::sql::own_connection::open(&self.target, self.tls.as_ref()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("cannot look for other databases with stream tables: {e}");
                    return;
                }
            };
        let databases = match client
            .rows(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate \
                 AND datname <> current_database() \
                 AND has_database_privilege(datname, 'CONNECT')",
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("cannot look for other databases with stream tables: {e}");
                return;
            }
        };
        for name in databases
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
        {
            let mut target = self.target.clone();
            target.database = name.clone();
            let mut c =
                match crate::engine::sql::own_connection::open(&target, self.tls.as_ref()).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(database = %name, "not looking for stream tables: {e}");
                        continue;
                    }
                };
            match crate::engine::catalog::stream_tables::catalog_exists(&mut c).await {
                Ok(true) => self.ensure(&name),
                Ok(false) => {}
                Err(e) => tracing::debug!(database = %name, "not looking for stream tables: {e}"),
            }
        }
    }
}
