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
    /// A population: the first contents of a new stream table, or of a rebuilt storage.
    Population,
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
    /// `pending` changes or more (the changes are counted up to the break-even count only).
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
            FullReason::Population => f.write_str(refresh_history::POPULATION),
            FullReason::FullPlan => f.write_str("the plan is FULL"),
            FullReason::NotPopulated => f.write_str(refresh_history::FIRST_POPULATION),
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
                "AUTO: recomputing is cheaper for {pending} changes or more (expected {:.1} ms \
                 FULL, {:.1} ms DIFFERENTIAL)",
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
        FullReason::Population
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
        let sources = source_states(sql, auth, captured, last).await?;
        if let Some(s) = sources.iter().find(|s| s.truncated) {
            return Ok(Choice::full(FullReason::Truncated(s.oid)));
        }
        if let Some(s) = sources.iter().find(|s| s.partitions_changed) {
            return Ok(Choice::full(FullReason::PartitionsChanged(s.oid)));
        }
        if st.refresh_mode != RefreshMode::Auto {
            // DIFFERENTIAL whatever the changes: counting them would only cost a scan.
            return Ok(Choice {
                full: None,
                pending: None,
            });
        }
        return auto(sql, auth, settings, target, last, &sources).await;
    };
    Ok(Choice::full(reason))
}

/// AUTO's decision. A stream table's own `max_delta_fraction` is a cap the user set: past it
/// the refresh recomputes. Below it (or without it), the cost model decides when the history
/// has measured a FULL refresh: FULL once the changes reach its break-even count; otherwise the
/// refresh recomputes when a source's pending changes exceed `--auto-full-threshold` of its
/// rows. The changes are counted only as far as these bounds need.
async fn auto<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    target: &RefreshTarget,
    last: &str,
    sources: &[SourceState],
) -> EngineResult<Choice> {
    let samples: Vec<Sample> = refresh_history::recent_measured(sql, auth, target.row.pgt_id)
        .await?
        .into_iter()
        .map(|m| Sample {
            differential: m.action == EffectiveMode::Differential,
            changes: m.delta_rows.unwrap_or(0),
            duration_ms: m.duration_ms,
            cold: m.population,
        })
        .collect();
    let source_rows: f64 = sources.iter().map(|s| s.rows.max(0.0)).sum();
    let own = target.row.auto_threshold.map(|t| t.clamp(0.0, 1.0));
    let modelled = cost_model::estimate(&samples, 0, source_rows).is_some();
    let cap = ((source_rows * 4.0) as i64).max(1 << 20);
    let break_even = cost_model::break_even(&samples, source_rows, cap);
    // Per source, the count past which every bound in use is decided. A source never analysed
    // (no size) is counted up to the cap: a share of it decides nothing, and the history should
    // record what the refresh consumed.
    let share_bound = |rows: f64, share: f64| {
        if rows > 0.0 {
            (rows * share).floor() as i64 + 1
        } else {
            cap
        }
    };
    let limits: Vec<i64> = sources
        .iter()
        .map(|s| {
            let mut limit = if modelled {
                break_even.unwrap_or(cap)
            } else {
                share_bound(s.rows, settings.auto_full_threshold())
            };
            if let Some(own) = own {
                limit = limit.max(share_bound(s.rows, own));
            }
            limit
        })
        .collect();
    let counts = count_changes(sql, auth, sources, last, &limits).await?;
    let pending: i64 = counts.iter().sum();
    let past = |share: f64| {
        sources
            .iter()
            .zip(&counts)
            .find(|(s, &n)| s.rows > 0.0 && n as f64 > s.rows * share)
            .map(|(s, _)| FullReason::MostlyChanged(s.oid))
    };
    let full = if let Some(reason) = own.and_then(past) {
        Some(reason)
    } else if modelled {
        match (
            break_even,
            cost_model::estimate(&samples, pending, source_rows),
        ) {
            (Some(n), Some(estimate)) if pending >= n => {
                Some(FullReason::Cheaper { estimate, pending })
            }
            _ => None,
        }
    } else {
        past(settings.auto_full_threshold())
    };
    Ok(Choice {
        full,
        pending: Some(pending),
    })
}

/// A captured source as a refresh finds it.
struct SourceState {
    oid: u32,
    /// A TRUNCATE is among its changes since the last refresh.
    truncated: bool,
    /// Its partitions no longer match the tables carrying its capture.
    partitions_changed: bool,
    /// PostgreSQL's estimate of the source's rows (of its mirror for a foreign source; -1 when
    /// never analysed).
    rows: f64,
}

/// Reads, in one round trip, whether each source in `captured` was truncated since snapshot
/// `last`, and its size.
async fn source_states<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    captured: &[u32],
    last: &str,
) -> EngineResult<Vec<SourceState>> {
    if captured.is_empty() {
        return Ok(Vec::new());
    }
    let selects: Vec<String> = captured
        .iter()
        .map(|oid| {
            format!(
                "SELECT {oid}::oid::text AS source, ({})::text AS truncated, \
                 ({})::text AS partitions_changed, \
                 (SELECT reltuples FROM pg_catalog.pg_class \
                  WHERE oid = coalesce(pg_catalog.to_regclass({})::oid, {oid}))::text AS reltuples",
                pgtrickle_cdc::truncated_since_sql(*oid, last),
                pgtrickle_cdc::capture_out_of_date_sql(*oid),
                quote_literal(&pgtrickle_cdc::poll::mirror::mirror_table(*oid)),
            )
        })
        .collect();
    let rows = Rows::read_as(sql, auth, "change buffers", &selects.join(" UNION ALL ")).await?;
    let decoded: Result<Vec<SourceState>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(SourceState {
                oid: r.parse("source")?,
                truncated: r.flag("truncated")?,
                partitions_changed: r.flag("partitions_changed")?,
                rows: r.parse_opt("reltuples")?.unwrap_or(-1.0),
            })
        })
        .collect();
    Ok(decoded?)
}

/// Counts the changes of each source since snapshot `last`, each up to its limit, in one
/// round trip.
async fn count_changes<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    sources: &[SourceState],
    last: &str,
    limits: &[i64],
) -> EngineResult<Vec<i64>> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let selects: Vec<String> = sources
        .iter()
        .zip(limits)
        .enumerate()
        .map(|(i, (s, &limit))| {
            format!(
                "SELECT {i} AS i, ({})::text AS changes",
                pgtrickle_cdc::pending_change_count_sql(s.oid, last, limit)
            )
        })
        .collect();
    let rows = Rows::read_as(
        sql,
        auth,
        "change buffers",
        &format!("{} ORDER BY i", selects.join(" UNION ALL ")),
    )
    .await?;
    let counts: Result<Vec<i64>, CatalogError> =
        rows.records().map(|r| r.parse("changes")).collect();
    Ok(counts?)
}
