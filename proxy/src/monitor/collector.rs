//! Every [`COLLECT_INTERVAL`], reads the catalog of each database that has a scheduler (one
//! connection of the proxy's own per database, kept open), publishes the snapshot behind the
//! gauges and the status page, feeds new history rows into the refresh histogram and error
//! counters, and new failed polls into the poll error counter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use super::catalog_reads::{self as reads};
use super::{history, Monitor, MonitorError};
use crate::engine::background::registry::Schedulers;
use crate::engine::sql::own_connection;
use crate::metrics::catalog::{label, unix_now, Snapshot};
use crate::upstream::UpstreamTarget;

/// Time between two collections.
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(2);
/// Longest time one database's collection may take.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the collector remembers of one database between collections.
#[derive(Default)]
struct DbState {
    client: Option<Client>,
    /// The last refresh_id seen.
    history_after: Option<i64>,
    /// Each source's last poll time and error count.
    polls: HashMap<String, (Option<f64>, i64)>,
}

pub(super) async fn run(
    monitor: Arc<Monitor>,
    target: UpstreamTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    schedulers: Arc<Schedulers>,
) {
    let mut states: HashMap<String, DbState> = HashMap::new();
    loop {
        let mut databases = schedulers.databases();
        databases.sort();
        states.retain(|db, _| databases.contains(db));
        let mut snap = Snapshot {
            home_database: target.database.clone(),
            databases: databases.clone(),
            ..Snapshot::default()
        };
        for db in &databases {
            let state = states.entry(db.clone()).or_default();
            let mut t = target.clone();
            t.database = db.clone();
            let result = tokio::time::timeout(
                COLLECT_TIMEOUT,
                collect(
                    &monitor,
                    state,
                    &t,
                    &target.database,
                    tls.as_ref(),
                    &mut snap,
                ),
            )
            .await
            .unwrap_or(Err(MonitorError::Timeout(COLLECT_TIMEOUT)));
            if let Err(e) = result {
                state.client = None;
                tracing::debug!(database = %db, "cannot read the catalog for metrics: {e}");
                snap.errors.push(format!("{db}: {e}"));
            }
        }
        snap.collected_at = unix_now();
        let live: Vec<String> = snap
            .stream_tables
            .iter()
            .map(|st| history::key(&st.database, &st.name))
            .collect();
        {
            let mut h = monitor.history.lock().unwrap_or_else(|p| p.into_inner());
            for st in &snap.stream_tables {
                if let Some(s) = snap.staleness(st) {
                    h.staleness(
                        &history::key(&st.database, &st.name),
                        snap.collected_at + snap.clock_offset,
                        s,
                    );
                }
            }
            h.trim(snap.collected_at + snap.clock_offset, &live);
        }
        monitor.catalog.publish(snap);
        tokio::time::sleep(COLLECT_INTERVAL).await;
    }
}

async fn collect(
    monitor: &Monitor,
    state: &mut DbState,
    target: &UpstreamTarget,
    home: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    snap: &mut Snapshot,
) -> Result<(), MonitorError> {
    if state.client.as_ref().is_none_or(|c| c.is_closed()) {
        let c = own_connection::open_named(target, tls, "pgtrickle-proxy monitor").await?;
        state.client = Some(c);
    }
    let Some(c) = state.client.as_mut() else {
        return Ok(());
    };
    let db = target.database.as_str();
    let presence = reads::presence(c).await?;
    snap.clock_offset = presence.now - unix_now();
    if !presence.catalog {
        return Ok(());
    }
    let metrics = &monitor.catalog;
    let tables = reads::stream_tables(c, db).await?;
    for st in &tables {
        metrics.touch_stream_table(&label(home, db, &st.name));
    }
    let after = state.history_after.unwrap_or(0);
    let rows = reads::history_since(c, after).await?;
    {
        let mut h = monitor.history.lock().unwrap_or_else(|p| p.into_inner());
        for row in &rows {
            metrics.observe_refresh(
                &label(home, db, &row.stream_table),
                row.mode.as_deref(),
                row.seconds,
            );
            if row.mode.is_some() {
                h.refresh(
                    &history::key(db, &row.stream_table),
                    row.finished_at,
                    row.seconds,
                );
            }
        }
    }
    state.history_after = Some(match rows.last() {
        Some(r) => r.id,
        None if state.history_after.is_none() => reads::last_history_id(c).await?,
        None => after,
    });
    snap.stream_tables.extend(tables);
    if presence.poll_status {
        let sources = reads::sources(c, db).await?;
        for s in &sources {
            metrics.touch_source(&label(home, db, &s.source));
            let (last_at, last_errors) = state.polls.get(&s.source).cloned().unwrap_or((None, 0));
            if s.last_poll_at != last_at && s.consecutive_errors > 0 {
                let new = if s.consecutive_errors > last_errors {
                    s.consecutive_errors - last_errors
                } else {
                    s.consecutive_errors
                };
                metrics.poll_failed(&label(home, db, &s.source), new as u64);
            }
            state
                .polls
                .insert(s.source.clone(), (s.last_poll_at, s.consecutive_errors));
        }
        snap.sources.extend(sources);
    }
    snap.buffers.extend(reads::buffers(c, db).await?);
    Ok(())
}
