//! `refresh_stream_table(name)` (after polling the stream table's foreign sources),
//! `resume_stream_table(name)` and `pause_stream_table(name)`, with pg_trickle's state rules: a
//! SUSPENDED stream table is not refreshed, only a SUSPENDED one is resumed, only an ACTIVE one
//! is paused.

use pgtrickle_planner::{StName, StStatus};

use crate::engine::api::outcome::must_own;
use crate::engine::background::poll::{due, Poller};
use crate::engine::catalog::stream_tables;
use crate::engine::error::{EngineError, EngineResult};
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
    if status_of(sql, st.pgt_id).await? == StStatus::Suspended {
        return Err(EngineError::api(
            "55000",
            format!(
                "stream table \"{}\" is SUSPENDED: it is not refreshed",
                st.name.name
            ),
        )
        .with_hint(format!(
            "resume it first: SELECT pgtrickle.resume_stream_table('{}')",
            st.name.name.replace('\'', "''")
        )));
    }
    refresh(sql, auth, settings, st.pgt_id, false, false).await
}

/// The status of stream table `pgt_id`.
async fn status_of<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<StStatus> {
    Ok(stream_tables::row(sql, pgt_id)
        .await?
        .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?
        .status)
}

/// `resume_stream_table(name)`.
pub async fn resume<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    name: &StName,
) -> EngineResult<()> {
    let st = must_own(sql, name).await?;
    if status_of(sql, st.pgt_id).await? != StStatus::Suspended {
        return Err(EngineError::api(
            "22023",
            format!(
                "invalid argument: stream table \"{}\" is not SUSPENDED",
                st.name.name
            ),
        ));
    }
    stream_tables::set_status(sql, auth, st.pgt_id, StStatus::Active).await
}

/// `pause_stream_table(name)`: an ACTIVE stream table becomes SUSPENDED.
pub async fn pause<R: SqlRunner>(sql: &mut R, auth: &Authority, name: &StName) -> EngineResult<()> {
    let st = must_own(sql, name).await?;
    if status_of(sql, st.pgt_id).await? != StStatus::Active {
        return Err(EngineError::api(
            "22023",
            format!(
                "invalid argument: stream table \"{}\" is not ACTIVE",
                st.name.name
            ),
        ));
    }
    stream_tables::set_status(sql, auth, st.pgt_id, StStatus::Suspended).await
}
