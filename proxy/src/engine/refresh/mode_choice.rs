//! Which way one refresh goes: DIFFERENTIAL when the stored plan, the transaction and the
//! pending changes allow it (and, in AUTO, when [`cost_model`] expects it to be the cheaper),
//! FULL otherwise, always with the reason ([`FullReason`]), which the history records.

use std::fmt;

use pgtrickle_planner::{EffectiveMode, RefreshMode};

use crate::engine::catalog::record::{CatalogError, Rows};
use crate::engine::catalog::refresh_history;
use crate::engine::catalog::stream_tables::RefreshTarget;
use crate::engine::error::EngineResult;
use crate::engine::refresh::cost_model::{self, Estimate, Sample};
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_literal, SqlRunner};

/// Why a refresh recomputes instead of applying changes.
#[derive(Debug, Clone, PartialEq)]
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
    /// A captured source's partitions changed since its capture was installed (its OID): a
    /// partition created or attached later, or a DETACH, escapes the change buffer.
    PartitionsChanged(u32),
    /// AUTO: a source's pending changes exceed the threshold share of its rows (its OID); the
    /// rule while the history has no measured FULL refresh.
    MostlyChanged(u32),
    /// AUTO: the cost model, from the measured refreshes, expects recomputing to be cheaper for
    /// `pending` changes.
    Cheaper {
        /// The model's figures.
        estimate: Estimate,
        /// The changes waiting.
        pending: i64,
    },
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
            FullReason::PartitionsChanged(oid) => write!(
                f,
                "the partitions of source {oid} changed since its capture was installed \
                 (create the stream table again to maintain it DIFFERENTIAL)"
            ),
            FullReason::MostlyChanged(oid) => {
                write!(f, "AUTO: most rows of source {oid} changed")
            }
            FullReason::Cheaper { estimate, pending } => write!(
                f,
                "AUTO: recomputing is cheaper for {pending} changes (expected {:.1} ms FULL, \
                 {:.1} ms DIFFERENTIAL)",
                estimate.full_ms, estimate.differential_ms
            ),
            FullReason::DeltaFailed(e) => {
                write!(f, "the differential refresh failed on the changes ({e})")
            }
        }
    }
}

/// The way of one refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Why it recomputes (None: DIFFERENTIAL).
    pub full: Option<FullReason>,
    /// The changes waiting in its sources' buffers, when they were counted.
    pub pending: Option<i64>,
}

impl Choice {
    fn full(reason: FullReason) -> Choice {
        Choice {
            full: Some(reason),
            pending: None,
        }
    }
}

/// Decides the way of a refresh of `target` that reads the captured sources `captured`
/// (`partly_readable`: the owner reads one only in part).
pub async fn choose<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    target: &RefreshTarget,
    captured: &[u32],
    force_full: bool,
    partly_readable: bool,
) -> EngineResult<Choice> {
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
            return Ok(Choice::full(FullReason::NotPopulated));
        };
        let sources = pending_changes(sql, auth, captured, last).await?;
        if let Some(s) = sources.iter().find(|s| s.truncated) {
            return Ok(Choice::full(FullReason::Truncated(s.oid)));
        }
        if let Some(s) = sources.iter().find(|s| s.partitions_changed) {
            return Ok(Choice::full(FullReason::PartitionsChanged(s.oid)));
        }
        let pending: i64 = sources.iter().map(|s| s.changes).sum();
        let full = if st.refresh_mode == RefreshMode::Auto {
            auto(sql, auth, settings, target, &sources, pending).await?
        } else {
            None
        };
        return Ok(Choice {
            full,
            pending: Some(pending),
        });
    };
    Ok(Choice::full(reason))
}

/// AUTO's decision. A stream table's own `max_delta_fraction` is a cap the user set: past it
/// the refresh recomputes. Below it (or without it), the cost model decides when the history
/// has measured a FULL refresh; otherwise the refresh recomputes when a source's pending
/// changes exceed `--auto-full-threshold` of its rows.
async fn auto<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    target: &RefreshTarget,
    sources: &[PendingChanges],
    pending: i64,
) -> EngineResult<Option<FullReason>> {
    let past = |threshold: f64| {
        sources
            .iter()
            .find(|s| s.rows > 0.0 && s.changes as f64 > s.rows * threshold)
            .map(|s| FullReason::MostlyChanged(s.oid))
    };
    if let Some(own) = target.row.auto_threshold {
        if let Some(reason) = past(own.clamp(0.0, 1.0)) {
            return Ok(Some(reason));
        }
    }
    let samples: Vec<Sample> = refresh_history::recent_measured(sql, auth, target.row.pgt_id)
        .await?
        .into_iter()
        .map(|m| Sample {
            differential: m.action == EffectiveMode::Differential,
            changes: m.delta_rows.unwrap_or(0),
            duration_ms: m.duration_ms,
        })
        .collect();
    let source_rows: f64 = sources.iter().map(|s| s.rows.max(0.0)).sum();
    if let Some(estimate) = cost_model::estimate(&samples, pending, source_rows) {
        return Ok(estimate
            .full_is_cheaper()
            .then_some(FullReason::Cheaper { estimate, pending }));
    }
    Ok(past(settings.auto_full_threshold()))
}

/// A captured source's changes since the last refresh.
struct PendingChanges {
    oid: u32,
    /// A TRUNCATE is among them.
    truncated: bool,
    /// Its partitions no longer match the tables carrying its capture.
    partitions_changed: bool,
    /// Row changes waiting.
    changes: i64,
    /// PostgreSQL's estimate of the source's rows (of its mirror for a foreign source; -1 when
    /// never analysed).
    rows: f64,
}

/// Reads the pending changes of every source in `captured` since snapshot `last`, in one round
/// trip.
async fn pending_changes<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    captured: &[u32],
    last: &str,
) -> EngineResult<Vec<PendingChanges>> {
    if captured.is_empty() {
        return Ok(Vec::new());
    }
    let selects: Vec<String> = captured
        .iter()
        .map(|oid| {
            format!(
                "SELECT {oid}::oid::text AS source, ({})::text AS truncated, ({})::text AS changes, \
                 ({})::text AS partitions_changed, \
                 (SELECT reltuples FROM pg_catalog.pg_class \
                  WHERE oid = coalesce(pg_catalog.to_regclass({})::oid, {oid}))::text AS reltuples",
                pgtrickle_cdc::truncated_since_sql(*oid, last),
                pgtrickle_cdc::pending_change_count_sql(*oid, last),
                pgtrickle_cdc::capture_out_of_date_sql(*oid),
                quote_literal(&pgtrickle_cdc::poll::mirror::mirror_table(*oid)),
            )
        })
        .collect();
    let rows = Rows::read_as(sql, auth, "change buffers", &selects.join(" UNION ALL ")).await?;
    let decoded: Result<Vec<PendingChanges>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(PendingChanges {
                oid: r.parse("source")?,
                truncated: r.flag("truncated")?,
                partitions_changed: r.flag("partitions_changed")?,
                changes: r.parse("changes")?,
                rows: r.parse_opt("reltuples")?.unwrap_or(-1.0),
            })
        })
        .collect();
    Ok(decoded?)
}
