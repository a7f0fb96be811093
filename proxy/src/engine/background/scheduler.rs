//! The scheduler: a background task on the proxy's own connection that refreshes due stream
//! tables of one database (see [`crate::engine::background::registry`] for which databases get one), upstream
//! stream tables first so chains converge. Duration schedules are due when that long has passed
//! since the last refresh, cron schedules when the expression fired since then, `calculated` ones
//! (and every `IMMEDIATE` one) when a source has changes waiting.
//!
//! A pass runs on every tick and on wake-ups (committed writes, API calls, ended polls and
//! refreshes), but no two passes start closer than [`MIN_PASS_INTERVAL`] (or
//! [`CHANGE_DRIVEN_PASS_INTERVAL`] while a stream table follows its sources' changes): wake-ups
//! during a pass or that interval make one pending pass, not one each. A pass only decides; the refreshes run
//! on the scheduler's pool of refresh connections ([`crate::engine::background::refresh_workers`]), concurrently,
//! each in its own REPEATABLE READ transaction as the stream table's owner
//! ([`refresh_as_owner`]). A stream table is not refreshed while its upstream stream tables are
//! being (or are due to be) refreshed: it follows once they ended. A failing refresh is retried
//! with backoff and suspended after 3 consecutive failures. Several proxies may run schedulers
//! against one database: a refresh locks its catalog row, and a concurrent one fails with a
//! serialization error and is simply not counted. The foreign sources of a due stream table are
//! polled in the background first, and the stream table is refreshed on the tick after the polls
//! ended (see [`crate::engine::background::poll::due`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgtrickle_planner::Schedule;
use tokio::sync::Notify;
use tokio_postgres::Client;

use crate::engine::background::poll::{self, Poller};
use crate::engine::background::refresh_workers::RefreshWorkers;
use crate::engine::catalog::{self, polled_sources, stream_tables, stream_tables::Candidate};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::capture;
use crate::engine::refresh::run::refresh;
use crate::engine::refresh::{replan, upgrade};
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;
use crate::upstream::UpstreamTarget;
use pgtrickle_planner::PLANNER_VERSION;

/// How often the scheduler looks for mirrors nobody reads (they are kept for
/// [`poll::due::ORPHAN_GRACE`] anyway).
const ORPHAN_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Shortest time between the starts of two passes (or the tick, if shorter) while no stream
/// table of the database follows its sources' changes: wake-ups within it make one pending pass.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_millis(100);

/// The same while some stream table is `calculated` or `IMMEDIATE`: a commit must reach it
/// within milliseconds, and each pass then has work to look at.
pub const CHANGE_DRIVEN_PASS_INTERVAL: Duration = Duration::from_millis(5);

/// Consecutive failures after which a stream table is suspended.
pub const MAX_CONSECUTIVE_ERRORS: i32 = 3;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Longest sleep between two checks (a Notify wakes it earlier).
    pub tick: Duration,
    /// Refreshes of one database that may run at once (`--refresh-workers`).
    pub refresh_workers: usize,
    /// What every refresh of this proxy applies.
    pub settings: EngineSettings,
}

/// Runs until the database goes away (never, for the `primary` one): connects (retrying),
/// then looks for due stream tables on every tick and wake-up.
pub async fn run(
    target: UpstreamTarget,
    tls: Option<tokio_rustls::TlsConnector>,
    config: SchedulerConfig,
    wake: Arc<Notify>,
    poller: Arc<Poller>,
    primary: bool,
) {
    let mut workers = RefreshWorkers::new(
        target.clone(),
        tls.clone(),
        config.refresh_workers,
        Arc::clone(&wake),
    );
    let mut change_driven = false;
    loop {
        let mut client = match crate::engine::sql::own_connection::open(&target, tls.as_ref()).await
        {
            Ok(c) => c,
            Err(e) if !primary && e.is_missing_database() => return,
            Err(e) => {
                tracing::warn!(database = %target.database, "scheduler cannot connect to the upstream: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = setup(&mut client, &config.settings).await {
            tracing::warn!("scheduler cannot set up the catalog: {e}");
        }
        let mut next_orphan_check = Instant::now();
        loop {
            if client.is_closed() {
                break;
            }
            let started = Instant::now();
            // This pass answers the wake-ups that came before it.
            let _ = tokio::time::timeout(Duration::ZERO, wake.notified()).await;
            tracing::debug!(database = %target.database, "scheduler pass");
            match pass(&mut client, &poller, &wake, &mut workers, &config.settings).await {
                Ok(c) => change_driven = c,
                Err(e) => tracing::warn!("scheduler: {e}"),
            }
            if Instant::now() >= next_orphan_check {
                poll::due::drop_orphans(&mut client, &poller).await;
                next_orphan_check = Instant::now() + ORPHAN_CHECK_EVERY;
            }
            let _ = tokio::time::timeout(config.tick, wake.notified()).await;
            let min_interval = if change_driven {
                CHANGE_DRIVEN_PASS_INTERVAL
            } else {
                MIN_PASS_INTERVAL
            };
            tokio::time::sleep_until((started + min_interval.min(config.tick)).into()).await;
        }
    }
}

/// Creates or upgrades the catalog, plans stream tables written by an older planner again, and
/// says which ones a newer proxy planned (this scheduler leaves those alone).
async fn setup(client: &mut Client, settings: &EngineSettings) -> EngineResult<()> {
    client.run("BEGIN").await?;
    let r = upgrade::ensure_catalog(client).await;
    client
        .run(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await?;
    r?;
    replan::replan_older(client, settings).await?;
    for st in stream_tables::planned_by_other_version(client, true).await? {
        tracing::warn!(
            stream_table = %st.name,
            planner_version = st.planner_version,
            "planned by a newer pgtrickle-proxy (this one has planner version {PLANNER_VERSION}): \
             left to that proxy"
        );
    }
    Ok(())
}

/// The stream tables to consider, in dependency order: sources before their readers; plans of
/// a newer planner are left to the proxy that wrote them.
async fn candidates(client: &mut Client) -> EngineResult<Vec<Candidate>> {
    if !catalog::is_current(client).await? {
        return Ok(Vec::new());
    }
    stream_tables::candidates(client).await
}

async fn is_due(client: &mut Client, c: &Candidate) -> EngineResult<bool> {
    if !c.backoff_over {
        return Ok(false);
    }
    let Some(since) = c.since_refresh else {
        return Ok(true);
    };
    if c.immediate {
        return capture::has_pending_changes(client, &Authority::Own, c.pgt_id).await;
    }
    Ok(match &c.schedule {
        Schedule::Every(d) => since >= d.as_secs_f64(),
        Schedule::Cron(expr) => cron_fired_since(expr, c.last_refresh_epoch.unwrap_or(0.0)),
        Schedule::Calculated => {
            capture::has_pending_changes(client, &Authority::Own, c.pgt_id).await?
        }
    })
}

fn cron_fired_since(expr: &str, last_epoch: f64) -> bool {
    use croner::parser::{CronParser, Seconds, Year};
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let Ok(cron) = parser.parse(expr) else {
        return false;
    };
    let Some(last) = chrono::DateTime::from_timestamp(last_epoch as i64, 0) else {
        return false;
    };
    match cron.find_next_occurrence(&last, false) {
        Ok(next) => next <= chrono::Utc::now(),
        Err(_) => false,
    }
}

/// One pass: starts the refreshes of the due stream tables that are not being refreshed, in
/// dependency order, as far as the pool has room. A stream table whose upstream is being
/// refreshed, or is due and waiting, waits too: the upstream's end wakes the scheduler.
async fn pass(
    client: &mut Client,
    poller: &Arc<Poller>,
    wake: &Arc<Notify>,
    workers: &mut RefreshWorkers,
    settings: &EngineSettings,
) -> EngineResult<bool> {
    workers.collect();
    let candidates = candidates(client).await?;
    let mut change_driven = false;
    // Being refreshed, or due and not started in this pass.
    let mut held: HashSet<i64> = HashSet::new();
    for c in &candidates {
        // Foreign sources are polled first, when the stream table is due (a `calculated` one
        // is due when its sources changed, which for a foreign source only a poll can tell).
        let calculated = c.immediate || c.schedule == Schedule::Calculated;
        change_driven |= calculated;
        if workers.is_running(c.pgt_id) {
            held.insert(c.pgt_id);
            continue;
        }
        let due_by_schedule = !calculated && is_due(client, c).await?;
        let polled = c.backoff_over && (calculated || due_by_schedule);
        let polling =
            polled && poll::due::start_due_polls(client, poller, c.pgt_id, &c.owner, wake).await?;
        let due = if calculated {
            is_due(client, c).await?
        } else {
            due_by_schedule
        };
        if due {
            let upstream_held = c.upstream.iter().any(|u| held.contains(u));
            if polling || upstream_held || !start_refresh(workers, c, *settings) {
                held.insert(c.pgt_id);
            }
        }
        if polled {
            show_poll_failures(client, c).await?;
        }
    }
    Ok(change_driven)
}

/// Starts the refresh of `c` on the pool; false when the pool has no room.
fn start_refresh(workers: &mut RefreshWorkers, c: &Candidate, settings: EngineSettings) -> bool {
    let c = c.clone();
    workers.start(c.pgt_id, move |mut client| async move {
        match refresh_as_owner(&mut client, &c, &settings).await {
            Ok(()) => {}
            Err(e) if e.is_serialization_failure() => {
                tracing::debug!(stream_table = %c.name, "refreshed concurrently elsewhere");
            }
            Err(e) => {
                if let Err(e2) = record_failure(&mut client, &c, &e).await {
                    tracing::warn!(stream_table = %c.name, "cannot record the failure: {e2}");
                }
            }
        }
        client
    })
}

/// A foreign source whose polls fail shows in the stream table's `last_error` (until a poll
/// succeeds and a refresh clears it) without counting towards its suspension: the stream table
/// itself is fine (it keeps the foreign rows of the last good poll, and local changes are still
/// applied), and the poll is retried with its own backoff.
async fn show_poll_failures(client: &mut Client, c: &Candidate) -> EngineResult<()> {
    polled_sources::show_failures(client, c.pgt_id).await
}

/// One scheduled refresh of `c`, in a REPEATABLE READ transaction of its own on `client` (a
/// refresh connection), its statements run as the stream table's owner (see `sandbox`); the
/// consumed changes are trimmed after the
/// commit.
async fn refresh_as_owner(
    client: &mut Client,
    c: &Candidate,
    settings: &EngineSettings,
) -> EngineResult<()> {
    client.run("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
    let refreshed = refresh(client, &Authority::Own, settings, c.pgt_id, false, false).await;
    let outcome = finish_refresh(client, c, refreshed).await;
    // A refresh's statements cannot change this connection's role or settings (see
    // `sandbox`), but they may take session-level advisory locks: release any.
    let _ = client
        .run("SELECT pg_catalog.pg_advisory_unlock_all()")
        .await;
    outcome
}

/// Commits a refresh and trims the buffers it consumed, or rolls it back.
async fn finish_refresh(
    client: &mut Client,
    c: &Candidate,
    refreshed: EngineResult<crate::engine::refresh::run::Refreshed>,
) -> EngineResult<()> {
    match refreshed {
        Ok(r) => {
            client.run("COMMIT").await?;
            for oid in &r.sources {
                capture::trim_committed(client, &Authority::Own, *oid).await;
            }
            tracing::debug!(stream_table = %c.name, action = ?r.action, rows = r.rows_changed, "refreshed");
            Ok(())
        }
        Err(e) => {
            let _ = client.run("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn record_failure(client: &mut Client, c: &Candidate, e: &EngineError) -> EngineResult<()> {
    let message = e.to_string();
    tracing::warn!(stream_table = %c.name, "refresh failed: {message}");
    let errors =
        stream_tables::record_failure(client, c.pgt_id, &message, MAX_CONSECUTIVE_ERRORS).await?;
    if errors >= MAX_CONSECUTIVE_ERRORS {
        tracing::warn!(stream_table = %c.name, "suspended after {errors} consecutive failures");
    }
    Ok(())
}
