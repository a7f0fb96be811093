//! `alter_stream_table(...)`: NULL arguments leave things unchanged; a new query, refresh mode
//! or cdc mode re-plans the stream table (as `create_or_replace_stream_table` does), a new
//! schedule or status alone changes the catalog row.

use pgtrickle_planner::api_call::{AlterStreamTable, CreateKind, CreateStreamTable, StOptions};
use pgtrickle_planner::StStatus;

use crate::engine::api::create::create;
use crate::engine::api::outcome::{must_own, Outcome};
use crate::engine::background::poll::Poller;
use crate::engine::catalog::stream_tables::StoredOptions;
use crate::engine::catalog::{dependencies, stream_tables};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

/// `alter_stream_table(...)`.
pub async fn alter<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    req: &AlterStreamTable,
    populate_here: bool,
    poller: &Poller,
    settings: &EngineSettings,
) -> EngineResult<Outcome> {
    let st = must_own(sql, &req.name).await?;
    let mut outcome = Outcome::default();
    let options = StoredOptions::of(&req.options);
    if req.query.is_some() || req.refresh_mode.is_some() || req.cdc_mode.is_some() {
        let kept = stream_tables::options(sql, st.pgt_id).await?;
        let row = stream_tables::row(sql, st.pgt_id)
            .await?
            .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?;
        if req.query.is_some() && !dependencies::readers(sql, st.relid).await?.is_empty() {
            return Err(EngineError::api(
                "0A000",
                "cannot change the query of a stream table that other stream tables read",
            ));
        }
        let replacement = CreateStreamTable {
            kind: CreateKind::OrReplace,
            name: st.name.clone(),
            query: req.query.clone().unwrap_or(row.defining_query),
            schedule: req.schedule.clone().unwrap_or(row.schedule),
            refresh_mode: req.refresh_mode.unwrap_or(row.refresh_mode),
            initialize: true,
            cdc_mode: req.cdc_mode.or(row.cdc_mode),
            options: StOptions::default(),
        };
        outcome = Box::pin(create(
            sql,
            auth,
            &replacement,
            populate_here,
            poller,
            settings,
        ))
        .await?;
        if row.status == StStatus::Suspended && req.status.is_none() {
            set_status(sql, auth, &st.name, StStatus::Suspended).await?;
        }
        // The re-planned stream table keeps its options, and takes the new ones.
        let replanned = crate::engine::api::outcome::must_find(sql, &st.name).await?;
        stream_tables::set_options(sql, auth, replanned.pgt_id, &kept).await?;
        stream_tables::set_options(sql, auth, replanned.pgt_id, &options).await?;
    } else {
        if let Some(schedule) = &req.schedule {
            stream_tables::set_schedule(sql, auth, st.pgt_id, schedule).await?;
        }
        stream_tables::set_options(sql, auth, st.pgt_id, &options).await?;
    }
    outcome.notices.extend(req.options.notices.iter().cloned());
    if let Some(status) = req.status {
        set_status(sql, auth, &st.name, status).await?;
    }
    Ok(outcome)
}

/// Sets the status of the stream table `name` (found again: a re-plan replaced its row).
async fn set_status<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    name: &pgtrickle_planner::StName,
    status: StStatus,
) -> EngineResult<()> {
    let st = crate::engine::api::outcome::must_find(sql, name).await?;
    stream_tables::set_status(sql, auth, st.pgt_id, status).await
}
