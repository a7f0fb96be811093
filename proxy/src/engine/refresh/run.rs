//! Refreshing one stream table inside the caller's transaction: FULL (recompute) or
//! DIFFERENTIAL (consume exactly the changes committed since the last refresh's snapshot and
//! apply them), then record the new snapshot and the history row. The caller trims the change
//! buffers after commit.
//!
//! Exactly once: the delta of a source is the set of its buffered changes visible in this
//! transaction's snapshot but not in the snapshot of the previous refresh. A DIFFERENTIAL
//! refresh therefore needs one snapshot for all its statements (REPEATABLE READ); in a READ
//! COMMITTED transaction block the engine refreshes FULL and marks the next refresh FULL too.

use std::time::Instant;

use pgtrickle_planner::EffectiveMode;

use crate::engine::catalog::stream_tables::{self, RefreshRecord};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::delta;
use crate::engine::refresh::mode_choice::{self, FullReason};
use crate::engine::refresh::owner_rights;
use crate::engine::refresh::replan::{newer_plan_error, replan, PlanAge};
use crate::engine::refresh::sandbox;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// What it did.
    pub action: EffectiveMode,
    /// Rows inserted, updated or deleted in the storage table.
    pub rows_changed: i64,
    /// The captured sources, whose buffers the caller trims once this transaction committed
    /// ([`crate::engine::refresh::capture::trim_committed`]; trimming inside the refresh would make concurrent
    /// refreshes of stream tables sharing a source fail with serialization errors).
    pub sources: Vec<u32>,
}

/// Refreshes stream table `pgt_id` in the caller's transaction (FULL when `force_full`): the
/// engine role (`auth`) reads the catalog row and the deltas, the statements run as the owner in
/// its execution view ([`sandbox`]), and the engine role records the outcome.
/// `distrust_snapshot` marks the next refresh FULL whatever this one sees: for a population in
/// a transaction whose snapshot may predate the capture triggers it just installed.
pub async fn refresh<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    pgt_id: i64,
    force_full: bool,
    distrust_snapshot: bool,
) -> EngineResult<Refreshed> {
    let mut target = stream_tables::lock_for_refresh(sql, auth, pgt_id).await?;
    let storage = target.row.storage();
    match PlanAge::of(target.row.planner_version) {
        PlanAge::Current => {}
        PlanAge::Newer(version) => return Err(newer_plan_error(&storage, version)),
        PlanAge::Older => {
            replan(sql, auth, pgt_id).await?;
            target = stream_tables::lock_for_refresh(sql, auth, pgt_id).await?;
        }
    }
    let view = target.exec_view.clone().ok_or_else(|| {
        EngineError::api(
            "42501",
            format!("stream table {storage} has no execution view owned by its owner"),
        )
        .with_hint(
            "the owner of the stream table changed, or its view in pgtrickle_exec was dropped: \
             create the stream table again",
        )
    })?;
    let st = &target.row;
    let single_snapshot = target.single_snapshot;
    let deps = owner_rights::sources(sql, pgt_id, target.owner).await?;
    // A source the owner reads only in part: its change buffer holds every row and column, so
    // only a recomputation (where PostgreSQL applies the limits) is right.
    let partly_readable = owner_rights::check_sources(&deps)?;
    let captured: Vec<u32> = deps
        .iter()
        .filter(|d| d.dependency.captured())
        .map(|d| d.dependency.oid)
        .collect();
    // The model compares whole refreshes: counting the changes and making them readable are
    // part of a differential one's cost.
    let mut started = Instant::now();
    let choice = mode_choice::choose(
        sql,
        auth,
        settings,
        &target,
        &captured,
        force_full,
        partly_readable,
    )
    .await?;
    let mut reason = choice.full;
    let (rows_changed, deltas) = match reason {
        Some(_) => (
            sandbox::run_as_owner(sql, &view, &st.full_refresh).await?,
            delta::DeltaForm::Tables,
        ),
        None => {
            let last = st.last_snapshot.clone().unwrap_or_default();
            // Stored with holes for the deltas: materialise fills them.
            let stored = st.diff_refresh.as_deref().unwrap_or_default();
            let (statements, deltas) =
                delta::materialise(sql, auth, &captured, &last, target.owner, stored).await?;
            // A data error on the changes (an expression failing on a row version that was
            // corrected before this refresh) must not stop the stream table for ever: the
            // refresh recomputes instead, and says why in the history.
            sql.run("SAVEPOINT __pgt_differential").await?;
            match sandbox::run_as_owner(sql, &view, &statements).await {
                Ok(n) => {
                    sql.run("RELEASE SAVEPOINT __pgt_differential").await?;
                    (n, deltas)
                }
                Err(e) if e.code().starts_with("22") => {
                    sql.run("ROLLBACK TO SAVEPOINT __pgt_differential").await?;
                    // The time the failed attempt took is not FULL's.
                    started = Instant::now();
                    tracing::info!(stream_table = %storage, "differential refresh failed on the changes, recomputing: {e}");
                    reason = Some(FullReason::DeltaFailed(e.to_string()));
                    (
                        sandbox::run_as_owner(sql, &view, &st.full_refresh).await?,
                        deltas,
                    )
                }
                Err(e) => return Err(e),
            }
        }
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !st.is_populated || st.analyze_after_refresh {
        // post_refresh_action => 'analyze' asks for it after every refresh. The first
        // differential refreshes probe the storage by its row hashes: without
        // statistics (autovacuum analyses it only later) the planner expects many rows per
        // hash and uses bitmap scans, several times slower than plain index scans. (ANALYZE
        // runs as the table's owner in a security-restricted operation.)
        sql.run(&format!("ANALYZE {storage}")).await?;
    }
    let action = if reason.is_some() {
        EffectiveMode::Full
    } else {
        EffectiveMode::Differential
    };
    let reason = reason.map(|r| r.to_string());
    stream_tables::record_refresh(
        sql,
        auth,
        pgt_id,
        &delta::drop_views_sql(deltas),
        &RefreshRecord {
            action,
            reason: reason.as_deref(),
            rows_changed,
            counts_before: target.storage_counts.map(|c| (target.storage_oid, c)),
            next_full: !single_snapshot || distrust_snapshot,
            duration_ms,
            delta_rows: if action == EffectiveMode::Differential {
                choice.pending
            } else {
                None
            },
        },
    )
    .await?;
    Ok(Refreshed {
        action,
        rows_changed,
        sources: captured,
    })
}
