//! The [`Poller`]: opens the connections a poll runs on, keeps each source's hash multiset
//! between polls (valid while the source's `poll_seq` in the catalog is unchanged, so several
//! proxies polling one database stay consistent), and records every poll's outcome.
//!
//! A poll runs on two connections of the proxy's own, both with `search_path = pg_catalog`,
//! fixed output settings and the poll timeout as `statement_timeout` and `lock_timeout`:
//!
//! - the *writer*, as the engine role itself (no role change): it writes the mirror, the change
//!   buffer, the staging table and the catalog rows, all of which the engine role owns; no code
//!   another role controls runs there (see [`super::guard`]);
//! - the *reader*, `SET ROLE` to the role the source is polled for, so that its FDW user
//!   mapping applies; it only reads the foreign table, after the checks of
//!   [`super::guard::begin_read`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::cache::MultisetCache;
use super::failure::Failure;
use super::report::{PollReport, Scanned};
use super::scan;
use super::status;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::privileged::EngineKey;
use crate::engine::sql::runner::quote_ident;
use crate::upstream::UpstreamTarget;

/// Polls foreign sources for the engine.
pub struct Poller {
    target: UpstreamTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    /// The multisets kept between polls.
    cache: MultisetCache,
    /// Polls running in the background (scheduler), per (database, foreign table).
    running: Mutex<HashSet<(String, u32)>>,
    /// Per database: the catalog's signing key and the OID of its version table.
    keys: Mutex<HashMap<String, (Arc<EngineKey>, u32)>>,
}

impl Poller {
    /// A poller for the `--upstream` server (any of its databases); `timeout` bounds each poll.
    pub fn new(
        target: UpstreamTarget,
        tls: Option<tokio_rustls::TlsConnector>,
        timeout: Duration,
    ) -> Poller {
        Poller {
            target,
            tls,
            timeout,
            cache: MultisetCache::default(),
            running: Mutex::new(HashSet::new()),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The signing key of `database`'s catalog and the OID of its version table, creating or
    /// upgrading the catalog first when `ensure` is set or nothing is cached yet.
    pub async fn engine_key(
        &self,
        database: &str,
        ensure: bool,
    ) -> EngineResult<(Arc<EngineKey>, u32)> {
        if !ensure {
            let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cached) = keys.get(database) {
                return Ok(cached.clone());
            }
        }
        let (key, oid) = self.ensure_catalog(database).await?;
        let entry = (Arc::new(EngineKey::new(key)), oid);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // Keep a cached key (and its nonce counter) when it is the same key.
        let kept = keys
            .entry(database.to_string())
            .and_modify(|e| {
                if !e.0.same_key(&entry.0) {
                    *e = entry.clone()
                }
                e.1 = entry.1;
            })
            .or_insert(entry);
        Ok(kept.clone())
    }

    /// Polls in the background (for the scheduler, so that a long poll does not hold up the
    /// other stream tables' refreshes) and wakes `wake` when done; does nothing when a poll of
    /// that source is already running.
    pub fn spawn_poll(
        self: &Arc<Self>,
        database: &str,
        role: &str,
        oid: u32,
        name: &str,
        wake: &Arc<tokio::sync::Notify>,
    ) {
        let key = (database.to_string(), oid);
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(key.clone()) {
                return;
            }
        }
        let (me, wake) = (Arc::clone(self), Arc::clone(wake));
        let (database, role, name) = (database.to_string(), role.to_string(), name.to_string());
        tokio::spawn(async move {
            if let Err(e) = me.poll(&database, &role, oid, &name).await {
                tracing::warn!("{e}");
            }
            me.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            wake.notify_one();
        });
    }

    /// True while a background poll of `oid` in `database` runs.
    pub fn is_polling(&self, database: &str, oid: u32) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(database.to_string(), oid))
    }

    /// Opens a connection, as `role` when given (the reader) or as the engine role itself (the
    /// writer), with the fixed output settings every poll hashes under (the text form of a
    /// value, hence its hash, must not depend on a session's settings).
    pub(super) async fn connect(
        &self,
        database: &str,
        role: Option<&str>,
    ) -> Result<Client, Failure> {
        let mut target = self.target.clone();
        target.database = database.to_string();
        let client = crate::engine::sql::own_connection::open_as(
            &target,
            self.tls.as_ref(),
            "pgtrickle-proxy poller",
        )
        .await
        .map_err(Failure::Connection)?;
        let ms = self.timeout.as_millis().max(1);
        let set_role = match role {
            Some(role) => format!("SET ROLE {}; ", quote_ident(role)),
            None => String::new(),
        };
        client
            .batch_execute(&format!(
                "{set_role}SET search_path = pg_catalog; SET DateStyle = 'ISO, MDY'; \
                 SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; \
                 SET extra_float_digits = 1; SET bytea_output = 'hex'; \
                 SET statement_timeout = {ms}; SET lock_timeout = {ms}"
            ))
            .await?;
        Ok(client)
    }

    /// Polls foreign table `oid` of `database` (named `name` in errors) for `role` (the owner
    /// of the stream tables reading it, whose FDW user mapping reads it), preparing it first if
    /// its mirror, buffer or catalog row is missing, and records the outcome in
    /// `pgtrickle.pgt_poll_state`. A failed poll changes nothing but that record.
    pub async fn poll(
        &self,
        database: &str,
        role: &str,
        oid: u32,
        name: &str,
    ) -> EngineResult<PollReport> {
        self.poll_with(database, role, oid, name, &[]).await
    }

    /// [`Poller::poll`], also indexing the mirror on `key_columns`.
    pub(super) async fn poll_with(
        &self,
        database: &str,
        role: &str,
        oid: u32,
        name: &str,
        key_columns: &[String],
    ) -> EngineResult<PollReport> {
        let started = Instant::now();
        let mut writer = None;
        let outcome = match tokio::time::timeout(
            self.timeout + Duration::from_secs(5),
            self.poll_inner(database, role, oid, key_columns, &mut writer),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout(self.timeout.as_secs())),
        };
        let elapsed = started.elapsed();
        // The status goes on the writer when it is still usable, else on a new connection.
        let writer = match writer {
            Some(w) if !w.is_closed() && outcome.is_ok() => Ok(w),
            Some(w) if !w.is_closed() && w.batch_execute("ROLLBACK").await.is_ok() => Ok(w),
            _ => self.connect(database, None).await,
        };
        match writer {
            Ok(client) => {
                if let Err(e) = status::record(&client, oid, &outcome, elapsed).await {
                    tracing::warn!(source = name, "poll status not recorded: {e}");
                }
            }
            Err(e) => tracing::warn!(source = name, "poll status not recorded: {e}"),
        }
        match outcome {
            Ok(s) => {
                tracing::debug!(
                    source = name,
                    scanned = s.report.rows_scanned,
                    changed = s.report.rows_changed,
                    skipped = s.report.skipped,
                    ms = elapsed.as_millis() as u64,
                    "polled"
                );
                Ok(s.report)
            }
            Err(failure) => Err(failure.into_engine_error(name)),
        }
    }

    async fn poll_inner(
        &self,
        database: &str,
        role: &str,
        oid: u32,
        key_columns: &[String],
        writer: &mut Option<Client>,
    ) -> Result<Scanned, Failure> {
        let w = writer.insert(self.connect(database, None).await?);
        let reader = self.connect(database, Some(role)).await?;
        scan::poll_once(&self.cache, database, w, &reader, oid, role, key_columns).await
    }

    /// Creates or upgrades the catalog of `database` in a transaction of its own, as the
    /// proxy's user, before an API call (the poller's connections must see the catalog the call
    /// uses, and the caller may not be allowed to create schemas). Waits at most 5 s for a
    /// catalog set-up in progress elsewhere: one uncommitted in the caller's own block would
    /// never finish.
    /// Returns the catalog's signing key and the OID of `pgtrickle.pgt_catalog_version` (see
    /// the job's use of it).
    pub async fn ensure_catalog(&self, database: &str) -> EngineResult<(Vec<u8>, u32)> {
        let mut target = self.target.clone();
        target.database = database.to_string();
        let mut client = crate::engine::sql::own_connection::open_as(
            &target,
            self.tls.as_ref(),
            "pgtrickle-proxy poller",
        )
        .await
        .map_err(|e| EngineError::api("08006", e))?;
        use crate::engine::sql::runner::SqlRunner;
        client.run("SET lock_timeout = '5s'; BEGIN").await?;
        let done = crate::engine::refresh::upgrade::ensure_catalog(&mut client).await;
        client
            .run(if done.is_ok() { "COMMIT" } else { "ROLLBACK" })
            .await?;
        let key = done?;
        let oid = crate::engine::catalog::schema::version_table_oid(&mut client).await?;
        Ok((key, oid))
    }

    /// Forgets the multiset of `oid` in `database` (its mirror was dropped).
    pub fn forget(&self, database: &str, oid: u32) {
        self.cache.forget(database, oid);
    }

    /// Prepares foreign table `oid` of `database` for `role` (the new stream table's owner) if
    /// needed, indexes its mirror on `key_columns` (the new stream table's join keys on it), and
    /// polls it: all in one transaction, committed before this returns (so the population can
    /// read the mirror even when the create runs in a client's transaction block). See
    /// [`super::prepare`].
    pub async fn prepare(
        &self,
        database: &str,
        role: &str,
        oid: u32,
        name: &str,
        key_columns: &[String],
    ) -> EngineResult<PollReport> {
        self.poll_with(database, role, oid, name, key_columns).await
    }
}
