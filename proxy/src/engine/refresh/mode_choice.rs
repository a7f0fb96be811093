//! Which way one refresh goes: DIFFERENTIAL when the stored plan, the transaction and the
//! pending changes allow it, FULL otherwise, always with the reason ([`FullReason`]), which the
//! history records.

use std::fmt;

use pgtrickle_planner::{EffectiveMode, RefreshMode};

use crate::engine::catalog::stream_tables::RefreshTarget;
use crate::engine::error::EngineResult;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_literal, SqlRunner};

/// Why a refresh recomputes instead of applying changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// The caller asked for it (a population).
    Requested,
    /// The plan has no differential statements.
    FullPlan,
    /// The stream table has never been populated.
    NotPopulated,
    /// An earlier refresh or a re-plan left it to be recomputed.
    Marked,
    /// The transaction is READ COMMITTED: the statements would not share one snapshot.
    ReadCommitted,
    /// The owner reads a source only in part (some columns, or under row-level security).
    PartlyReadable,
    /// A source was truncated since the last refresh (its OID).
    Truncated(u32),
    /// AUTO: a source's pending changes exceed the threshold share of its rows (its OID).
    MostlyChanged(u32),
    /// The differential statements failed on the changes with a data error (its SQLSTATE and
    /// message): row versions that no longer exist, as an insert corrected before the refresh.
    DeltaFailed(String),
}

impl fmt::Display for FullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullReason::Requested => f.write_str("requested"),
            FullReason::FullPlan => f.write_str("the plan is FULL"),
            FullReason::NotPopulated => f.write_str("first population"),
            FullReason::Marked => f.write_str("marked for recomputation"),
            FullReason::ReadCommitted => f.write_str("READ COMMITTED transaction"),
            FullReason::PartlyReadable => f.write_str("the owner reads a source only in part"),
            FullReason::Truncated(oid) => write!(f, "source {oid} was truncated"),
            FullReason::MostlyChanged(oid) => {
                write!(f, "AUTO: most rows of source {oid} changed")
            }
            FullReason::DeltaFailed(e) => {
                write!(f, "the differential refresh failed on the changes ({e})")
            }
        }
    }
}

/// Decides the way of a refresh of `target` that reads the captured sources `captured`
/// (`partly_readable`: the owner reads one only in part). None: DIFFERENTIAL.
pub async fn choose<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    target: &RefreshTarget,
    captured: &[u32],
    force_full: bool,
    partly_readable: bool,
) -> EngineResult<Option<FullReason>> {
    let st = &target.row;
    let reason = if force_full {
        FullReason::Requested
    } else if st.effective_mode == EffectiveMode::Full || st.diff_refresh.is_none() {
        FullReason::FullPlan
    } else if !st.is_populated {
        FullReason::NotPopulated
    } else if st.needs_full {
        FullReason::Marked
    } else if !target.single_snapshot {
        FullReason::ReadCommitted
    } else if partly_readable {
        FullReason::PartlyReadable
    } else {
        let Some(last) = &st.last_snapshot else {
            return Ok(Some(FullReason::NotPopulated));
        };
        for oid in captured {
            if truncated_since(sql, auth, *oid, last).await? {
                return Ok(Some(FullReason::Truncated(*oid)));
            }
            if st.refresh_mode == RefreshMode::Auto
                && mostly_changed(sql, auth, threshold(settings, target), *oid, last).await?
            {
                return Ok(Some(FullReason::MostlyChanged(*oid)));
            }
        }
        return Ok(None);
    };
    Ok(Some(reason))
}

/// The AUTO threshold of `target`: its `max_delta_fraction`, or the proxy's
/// `--auto-full-threshold`.
fn threshold(settings: &EngineSettings, target: &RefreshTarget) -> f64 {
    target
        .row
        .auto_threshold
        .map(|t| t.clamp(0.0, 1.0))
        .unwrap_or_else(|| settings.auto_full_threshold())
}

/// AUTO at run time: true when the changes waiting in a source's buffer are a larger share of
/// its rows (PostgreSQL's estimate) than the threshold, so recomputing is cheaper.
async fn mostly_changed<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    threshold: f64,
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
    Ok(changes > rows * threshold)
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
