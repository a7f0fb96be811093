//! `refresh_stream_table(name)` (after polling the stream table's foreign sources) and
//! `resume_stream_table(name)`.

use pgtrickle_planner::{StName, StStatus};

use crate::engine::api::outcome::must_own;
use crate::engine::background::poll::{due, Poller};
use crate::engine::catalog::stream_tables;
use crate::engine::error::EngineResult;
use crate::engine::refresh::run::{refresh, Refreshed};
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

/// Polls the foreign sources of the stream table `name` (which the current role must own) as
/// its owner, before a refresh the user asked for; the first failure is returned. The caller
/// has made sure that the catalog is current.
pub async fn poll_for_refresh<R: SqlRunner>(
    sql: &mut R,
    name: &StName,
    poller: &Poller,
) -> EngineResult<()> {
    let st = must_own(sql, name).await?;
    let failures = due::poll_all(sql, poller, st.pgt_id, &st.owner).await?;
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `refresh_stream_table(name)`; the caller has made sure that the catalog is current.
pub async fn refresh_by_name<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    name: &StName,
    settings: &EngineSettings,
) -> EngineResult<Refreshed> {
    let st = must_own(sql, name).await?;
    refresh(sql, auth, settings, st.pgt_id, false, false).await
}

/// `resume_stream_table(name)`.
pub async fn resume<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    name: &StName,
) -> EngineResult<()> {
    let st = must_own(sql, name).await?;
    stream_tables::set_status(sql, auth, st.pgt_id, StStatus::Active).await
}
