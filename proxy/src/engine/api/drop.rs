//! `drop_stream_table(name, cascade)`, and dropping by id (undoing a create whose population
//! failed): the catalog row, the storage, the execution view, and the capture of sources no
//! other stream table reads.

use pgtrickle_planner::StName;

use crate::engine::api::outcome::must_own;
use crate::engine::catalog::dependencies;
use crate::engine::catalog::stream_tables::{self, qualified, StreamTableRef};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::capture;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

async fn drop_one<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    st: &StreamTableRef,
) -> EngineResult<()> {
    for oid in drop_keeping_sources(sql, auth, st).await? {
        capture::uninstall_if_unused(sql, auth, oid).await?;
    }
    Ok(())
}

/// Drops a stream table but not the capture of its sources, which it returns.
pub async fn drop_keeping_sources<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    st: &StreamTableRef,
) -> EngineResult<Vec<u32>> {
    let sources: Vec<u32> = dependencies::of(sql, st.pgt_id)
        .await?
        .into_iter()
        .filter(|d| d.captured())
        .map(|d| d.oid)
        .collect();
    let exec_view = stream_tables::exec_view(sql, st.pgt_id).await?;
    stream_tables::delete(sql, auth, st.pgt_id).await?;
    capture::uninstall_if_unused(sql, auth, st.relid).await?;
    sql.run(&format!("DROP TABLE {}", qualified(&st.name)))
        .await?;
    if let Some(view) = exec_view {
        sql.run(&format!("DROP MATERIALIZED VIEW IF EXISTS {view}"))
            .await?;
    }
    Ok(sources)
}

/// Drops a stream table by catalog id (undoing a create whose population failed).
pub async fn drop_by_id<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
) -> EngineResult<()> {
    if let Some(st) = stream_tables::find_by_id(sql, pgt_id).await? {
        drop_one(sql, auth, &st).await?;
    }
    Ok(())
}

/// `drop_stream_table(name, cascade)`.
pub async fn drop<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    name: &StName,
    cascade: bool,
) -> EngineResult<()> {
    let st = must_own(sql, name).await?;
    let readers = dependencies::readers(sql, st.relid).await?;
    if !readers.is_empty() {
        if !cascade {
            let names: Vec<String> = readers.iter().map(qualified).collect();
            return Err(EngineError::api(
                "2BP01",
                format!(
                    "cannot drop stream table \"{}\" because other stream tables depend on it: {}",
                    st.name.name,
                    names.join(", ")
                ),
            )
            .with_hint("use cascade => true to drop the dependent stream tables too"));
        }
        for d in readers {
            Box::pin(drop(sql, auth, &d, true)).await?;
        }
    }
    drop_one(sql, auth, &st).await
}
