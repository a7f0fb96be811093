//! When foreign sources are polled, and cleaning up after them.
//!
//! A refresh of a stream table first polls its foreign sources: always when a user asked for
//! the refresh (and waits for the poll), and on the scheduler's refreshes when the source's last
//! successful poll is older than the shortest schedule among the stream tables reading it (in
//! the background: the refresh runs on the tick after the poll ended, and other stream tables
//! are not held up meanwhile) (so a source read by a
//! '10s' and a '1h' stream table is polled every 10 s, not twice) and no failure backoff is
//! running. Readers with a cron schedule do not throttle polls; `calculated` readers ask for a
//! poll every [`CALCULATED_POLL`].

use std::time::Duration;

use pgtrickle_planner::schedule::parse_schedule;
use pgtrickle_planner::Schedule;

use super::poller::Poller;
use crate::engine::catalog::dependencies::{self, Dependency};
use crate::engine::catalog::polled_sources;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::{quote_literal, SqlRunner, SqlRunnerExt};

/// How often a foreign source read only by `calculated` stream tables is polled.
pub const CALCULATED_POLL: Duration = Duration::from_secs(30);

/// How long a mirror nobody reads is kept (a create in a long transaction block may still
/// commit).
pub const ORPHAN_GRACE: &str = "10 minutes";

/// The foreign sources of stream table `pgt_id`.
pub async fn foreign_sources<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
) -> EngineResult<Vec<Dependency>> {
    Ok(dependencies::of(sql, pgt_id)
        .await?
        .into_iter()
        .filter(|d| d.polled())
        .collect())
}

/// The shortest poll interval the readers of `oid` ask for.
fn interval_of(schedules: &[String]) -> Duration {
    schedules
        .iter()
        .map(|s| match parse_schedule(s, Duration::ZERO) {
            Ok(Schedule::Every(d)) => d,
            Ok(Schedule::Cron(_)) => Duration::ZERO,
            Ok(Schedule::Calculated) | Err(_) => CALCULATED_POLL,
        })
        .min()
        .unwrap_or(Duration::ZERO)
}

/// True when the scheduler should poll `oid` now.
pub async fn is_due<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<bool> {
    let timing = polled_sources::timing(sql, oid).await?;
    if timing.backing_off {
        return Ok(false);
    }
    let Some(since) = timing.since_success else {
        return Ok(true);
    };
    let schedules = timing.reader_schedules;
    Ok(since >= interval_of(&schedules).as_secs_f64())
}

/// Polls every foreign source of `pgt_id` as `owner`, before a refresh a user asked for.
/// Returns the failures (each also recorded in the poll state).
pub async fn poll_all<R: SqlRunner>(
    sql: &mut R,
    poller: &Poller,
    pgt_id: i64,
    owner: &str,
) -> EngineResult<Vec<EngineError>> {
    let mut failures = Vec::new();
    let sources = foreign_sources(sql, pgt_id).await?;
    if sources.is_empty() {
        return Ok(failures);
    }
    let database = current_database(sql).await?;
    for source in sources {
        if let Err(e) = poller
            .poll(&database, owner, source.oid, &source.qualified())
            .await
        {
            failures.push(e);
        }
    }
    Ok(failures)
}

/// For the scheduler: starts in the background the polls of `pgt_id`'s foreign sources that
/// are [`is_due`] (as `owner`). Returns true while a poll of one of its sources runs: the
/// refresh then waits for the next tick (the poll's end wakes the scheduler), so that it
/// applies what the poll finds.
pub async fn start_due_polls<R: SqlRunner>(
    sql: &mut R,
    poller: &std::sync::Arc<Poller>,
    pgt_id: i64,
    owner: &str,
    wake: &std::sync::Arc<tokio::sync::Notify>,
) -> EngineResult<bool> {
    let sources = foreign_sources(sql, pgt_id).await?;
    if sources.is_empty() {
        return Ok(false);
    }
    let database = current_database(sql).await?;
    let mut waiting = false;
    for source in sources {
        if !poller.is_polling(&database, source.oid) && is_due(sql, source.oid).await? {
            poller.spawn_poll(&database, owner, source.oid, &source.qualified(), wake);
        }
        waiting |= poller.is_polling(&database, source.oid);
    }
    Ok(waiting)
}

/// The database `sql` is connected to (the poller connects to the same one).
pub async fn current_database<R: SqlRunner>(sql: &mut R) -> EngineResult<String> {
    Ok(sql
        .value("SELECT current_database()")
        .await?
        .unwrap_or_default())
}

/// Drops the mirrors (and change buffers) of foreign tables no stream table has read for
/// [`ORPHAN_GRACE`]: left behind by creates that were rolled back. Housekeeping on the
/// scheduler's connection; failures are logged.
pub async fn drop_orphans<R: SqlRunner>(sql: &mut R, poller: &Poller) {
    let Ok(orphans) = polled_sources::orphans(sql, ORPHAN_GRACE).await else {
        return;
    };
    let Ok(database) = current_database(sql).await else {
        return;
    };
    for oid in orphans {
        // Locks first, without waiting (a poll, or a transaction still using the mirror, keeps
        // it), then the check: a create that commits meanwhile is seen.
        let mirror = pgtrickle_cdc::poll::mirror::mirror_table(oid);
        let buffer = pgtrickle_cdc::buffer_table(oid);
        let done = sql
            .run(&format!(
                "BEGIN; \
                 DO $pgt$ BEGIN \
                   IF NOT pg_catalog.pg_try_advisory_xact_lock({key}) THEN RETURN; END IF; \
                   IF pg_catalog.to_regclass({mirror_lit}) IS NOT NULL THEN \
                     EXECUTE {lock_mirror}; END IF; \
                   IF pg_catalog.to_regclass({buffer_lit}) IS NOT NULL THEN \
                     EXECUTE {lock_buffer}; END IF; \
                   {forget} \
                   END $pgt$; COMMIT",
                key = pgtrickle_cdc::poll::mirror::poll_lock_key(oid),
                mirror_lit = quote_literal(&mirror),
                buffer_lit = quote_literal(&buffer),
                lock_mirror = quote_literal(&format!(
                    "LOCK TABLE {mirror} IN ACCESS EXCLUSIVE MODE NOWAIT"
                )),
                lock_buffer = quote_literal(&format!(
                    "LOCK TABLE {buffer} IN ACCESS EXCLUSIVE MODE NOWAIT"
                )),
                forget = polled_sources::forget_if_unread_plpgsql(
                    oid,
                    &format!(
                        "EXECUTE {}; EXECUTE {};",
                        quote_literal(&pgtrickle_cdc::poll::mirror::drop_mirror_sql(oid)),
                        quote_literal(&format!("DROP TABLE IF EXISTS {buffer}"))
                    )
                ),
            ))
            .await;
        match done {
            Ok(_) => poller.forget(&database, oid),
            Err(e) => {
                let _ = sql.run("ROLLBACK").await;
                tracing::debug!(source = oid, "orphaned mirror not dropped: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_reader_schedule_wins() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(interval_of(&s(&["1h", "10s"])), Duration::from_secs(10));
        assert_eq!(interval_of(&s(&["calculated"])), CALCULATED_POLL);
        assert_eq!(interval_of(&s(&["1h", "*/5 * * * *"])), Duration::ZERO);
        assert_eq!(interval_of(&[]), Duration::ZERO);
    }
}
