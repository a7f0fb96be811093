//! The refresh history (`pgtrickle.pgt_refresh_history`) as AUTO's cost model reads it: the
//! recent successful refreshes of one stream table that were recorded with their duration.

use pgtrickle_planner::EffectiveMode;

use crate::engine::catalog::record::{CatalogError, Rows};
use crate::engine::catalog::stream_tables::effective_mode_of;
use crate::engine::error::EngineResult;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

const TABLE: &str = "pgtrickle.pgt_refresh_history";

/// How many recent measured refreshes the cost model sees.
const RECENT: usize = 20;

/// The reason recorded for an explicit population (at create, or of a rebuilt storage).
pub const POPULATION: &str = "population";
/// The reason recorded for the first refresh of a stream table created without data.
pub const FIRST_POPULATION: &str = "first population";

/// True when `reason`, as the history records a FULL refresh's, is a population: AUTO's cost
/// model treats it as a cold-cache measurement.
fn is_population(reason: &str) -> bool {
    reason == POPULATION || reason == FIRST_POPULATION
}

/// One measured successful refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredRefresh {
    /// What really ran.
    pub action: EffectiveMode,
    /// How long its statements took, in milliseconds.
    pub duration_ms: f64,
    /// Changes a DIFFERENTIAL refresh consumed (None when not counted).
    pub delta_rows: Option<i64>,
    /// A population (a FULL refresh in cold caches).
    pub population: bool,
}

/// The most recent measured successful refreshes of `pgt_id`, newest first.
pub async fn recent_measured<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
) -> EngineResult<Vec<MeasuredRefresh>> {
    let rows = Rows::read_as(
        sql,
        auth,
        TABLE,
        &format!(
            "SELECT action, duration_ms::text AS duration_ms, delta_rows::text AS delta_rows, \
             reason \
             FROM pgtrickle.pgt_refresh_history \
             WHERE pgt_id = {pgt_id} AND status = 'SUCCESS' AND duration_ms IS NOT NULL \
             ORDER BY refresh_id DESC LIMIT {RECENT}"
        ),
    )
    .await?;
    let decoded: Result<Vec<MeasuredRefresh>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(MeasuredRefresh {
                action: r.decode("action", "FULL or DIFFERENTIAL", effective_mode_of)?,
                duration_ms: r.parse("duration_ms")?,
                delta_rows: r.parse_opt("delta_rows")?,
                population: r.text("reason")?.is_some_and(is_population),
            })
        })
        .collect();
    Ok(decoded?)
}
