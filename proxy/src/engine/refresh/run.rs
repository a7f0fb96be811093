//! Refreshing one stream table inside the caller's transaction: FULL (recompute) or
//! DIFFERENTIAL (consume exactly the changes committed since the last refresh's snapshot and
//! apply them), then record the new snapshot and the history row. The caller trims the change
//! buffers after commit.
//!
//! Exactly once: the delta of a source is the set of its buffered changes visible in this
//! transaction's snapshot but not in the snapshot of the previous refresh. A DIFFERENTIAL
//! refresh therefore needs one snapshot for all its statements (REPEATABLE READ); in a READ
//! COMMITTED transaction block the engine refreshes FULL and marks the next refresh FULL too.

use pgtrickle_planner::{EffectiveMode, RefreshMode};

use crate::engine::catalog::stream_tables;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::delta;
use crate::engine::refresh::owner_rights;
use crate::engine::refresh::replan::{newer_plan_error, replan, PlanAge};
use crate::engine::refresh::sandbox;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_literal, SqlRunner};

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

/// AUTO at run time: true when the changes waiting in a source's buffer are a larger share of
/// its rows (PostgreSQL's estimate) than the configured threshold, so recomputing is cheaper.
async fn mostly_changed<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    oid: u32,
    last: &str,
) -> EngineResult<bool> {
    let rows: f64 = auth
        .value(
            sql,
            &format!(
                "SELECT reltuples::text FROM pg_catalog.pg_class \
                 WHERE oid = coalesce(pg_catalog.to_regclass({})::oid, {oid})",
                quote_literal(&pgtrickle_cdc::poll::mirror::mirror_table(oid))
            ),
        )
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    if rows <= 0.0 {
        // Never analysed: no estimate to compare with.
        return Ok(false);
    }
    let changes: f64 = auth
        .value(
            sql,
            &format!(
                "SELECT n::text FROM ({}) AS q(n)",
                pgtrickle_cdc::pending_change_count_sql(oid, last)
            ),
        )
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(changes > rows * settings.auto_full_threshold())
}

/// True when a TRUNCATE of source `oid` is pending since snapshot `last`.
async fn truncated_since<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    oid: u32,
    last: &str,
) -> EngineResult<bool> {
    Ok(auth
        .value(
            sql,
            &format!(
                "SELECT t::text FROM ({}) AS q(t)",
                pgtrickle_cdc::truncated_since_sql(oid, last)
            ),
        )
        .await?
        .as_deref()
        == Some("true"))
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
    let mut full = force_full
        || partly_readable
        || st.effective_mode == EffectiveMode::Full
        || st.needs_full
        || !st.is_populated
        || !single_snapshot;
    let last = st.last_snapshot.clone().unwrap_or_default();
    let captured: Vec<u32> = deps
        .iter()
        .filter(|d| d.dependency.captured())
        .map(|d| d.dependency.oid)
        .collect();
    if !full {
        match &st.last_snapshot {
            None => full = true,
            Some(last) => {
                for oid in &captured {
                    if truncated_since(sql, auth, *oid, last).await?
                        || (st.refresh_mode == RefreshMode::Auto
                            && mostly_changed(sql, auth, settings, *oid, last).await?)
                    {
                        full = true;
                        break;
                    }
                }
            }
        }
    }
    let (statements, deltas) = if full {
        (st.full_refresh.clone(), delta::DeltaForm::Tables)
    } else {
        let statements = st.diff_refresh.clone().unwrap_or_default();
        let form =
            delta::materialise(sql, auth, &captured, &last, target.owner, &statements).await?;
        (statements, form)
    };
    let rows_changed = sandbox::run_as_owner(sql, &view, &statements).await?;
    if !st.is_populated {
        // The first differential refreshes probe the storage by its row hashes: without
        // statistics (autovacuum analyses it only later) the planner expects many rows per
        // hash and uses bitmap scans, several times slower than plain index scans. (ANALYZE
        // runs as the table's owner in a security-restricted operation.)
        sql.run(&format!("ANALYZE {storage}")).await?;
    }
    let action = if full {
        EffectiveMode::Full
    } else {
        EffectiveMode::Differential
    };
    stream_tables::record_refresh(
        sql,
        auth,
        pgt_id,
        &delta::drop_views_sql(deltas),
        action,
        rows_changed,
        !single_snapshot || distrust_snapshot,
    )
    .await?;
    Ok(Refreshed {
        action,
        rows_changed,
        sources: captured,
    })
}
