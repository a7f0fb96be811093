//! Stored plans follow the planner across upgrades. The planner's statements are stored with
//! each stream table, with the planner version that produced them
//! ([`pgtrickle_planner::PLANNER_VERSION`]). A proxy whose planner is newer plans an older
//! stream table again from its defining query before refreshing it (and, for every stream table,
//! when its scheduler starts): when the storage layout (the hidden columns) is unchanged, the
//! new statements replace the old ones and the next refresh is FULL, so that contents computed
//! by an older, possibly wrong, rule are recomputed. When the hidden columns changed, the
//! storage is emptied, altered to the new layout and populated again in the same transaction
//! (readers wait on its lock and then see the new contents; its OID, grants and dependants are
//! kept). A change of the query's own columns is refused with a clear error (the stream table
//! keeps its contents; dropping and creating it again applies the new plan). A proxy whose planner is older than a stream table's plan never runs statements it
//! did not write: the refresh fails with 55000 and the scheduler leaves the stream table to
//! the newer proxy, saying so in its log (`pgt_status()` shows every plan's version).
//!
//! The query planned is the one PostgreSQL resolved at create time (`resolved_query`, every
//! name qualified); stream tables of catalogs older than version 5 only have the query as
//! written, which is resolved with the owner's default search_path (`"<owner>", public`).

use pgtrickle_planner::{plan_stream_table, PlanInput, StreamPlan, PLANNER_VERSION};

use crate::engine::catalog::stream_tables::{self, ReplanTarget, StoredPlan};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::describe::describe;
use crate::engine::refresh::run::refresh;
use crate::engine::refresh::sandbox;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{
    quote_ident, quote_literal, swap_search_path, SqlRunner, SqlRunnerExt,
};

/// How a stream table's stored plan relates to this proxy's planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanAge {
    /// Written by this planner.
    Current,
    /// Written by an older planner: plan again.
    Older,
    /// Written by a newer planner (its version): leave it alone.
    Newer(i32),
}

impl PlanAge {
    /// The age of a plan written by planner `version` (None: before versions were recorded).
    pub fn of(version: Option<i32>) -> PlanAge {
        match version.unwrap_or(1) {
            v if v == PLANNER_VERSION => PlanAge::Current,
            v if v < PLANNER_VERSION => PlanAge::Older,
            v => PlanAge::Newer(v),
        }
    }
}

/// The error of a refresh that this proxy leaves to a newer one.
pub fn newer_plan_error(storage: &str, version: i32) -> EngineError {
    EngineError::api(
        "55000",
        format!(
            "stream table {storage} was planned by a newer pgtrickle-proxy (planner version \
             {version}; this proxy has version {PLANNER_VERSION})"
        ),
    )
    .with_hint("refresh it through the newer proxy, or upgrade this one")
}

/// What re-planning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replanned {
    /// The new statements replaced the old ones; the storage is as it was.
    Statements,
    /// The storage's hidden columns changed: it was emptied and altered to the new layout, and
    /// must be populated (FULL) in the same transaction.
    Storage,
}

/// Plans stream table `pgt_id` again with this proxy's planner and stores the new statements,
/// in the caller's transaction (the catalog row is locked); its next refresh is FULL. `auth`
/// runs the catalog writes. When the new plan keeps other hidden columns, the storage is
/// emptied and altered (as its owner, in its execution view) to the new layout: the caller
/// populates it before committing, so that readers (waiting on the storage's lock meanwhile)
/// never see it empty or half-built.
pub async fn replan<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
) -> EngineResult<Replanned> {
    let target = stream_tables::lock_for_replan(sql, auth, pgt_id).await?;
    let row = &target.row;
    let storage = row.storage();
    let described = match &row.resolved_query {
        Some(resolved) => describe(sql, &row.name, resolved, row.refresh_mode, false).await?,
        None => {
            // Written before queries were resolved: the owner's default search_path.
            let saved = swap_search_path(
                sql,
                &format!("{}, public", quote_ident(target.owner.trim_matches('"'))),
            )
            .await?;
            let described =
                describe(sql, &row.name, &row.defining_query, row.refresh_mode, false).await;
            swap_search_path(sql, &saved).await?;
            described?
        }
    };
    let plan = described.plan()?;
    let replanned = if plan.layout == row.layout && plan.hidden_columns == target.hidden_columns {
        Replanned::Statements
    } else {
        rebuild_storage(sql, &described.input, &plan, &target).await?;
        Replanned::Storage
    };
    let stored_diff = plan.stored_differential_refresh();
    stream_tables::store_plan(
        sql,
        auth,
        pgt_id,
        &StoredPlan {
            effective_mode: plan.mode,
            layout: plan.layout,
            full_refresh: &plan.full_refresh,
            diff_refresh: stored_diff.as_deref(),
            explain: &plan.explain,
            resolved_query: &described.input.query,
        },
    )
    .await?;
    tracing::info!(stream_table = %storage, version = PLANNER_VERSION, rebuilt = (replanned == Replanned::Storage), "planned again");
    Ok(replanned)
}

/// Empties the storage and alters it to `plan`'s hidden columns and indexes, as its owner (in
/// its execution view). The new hidden columns' definitions are read from a scratch table the
/// plan's own DDL creates; the query's columns must be unchanged (0A000 otherwise: dropping and
/// creating the stream table again applies such a plan).
async fn rebuild_storage<R: SqlRunner>(
    sql: &mut R,
    input: &PlanInput,
    plan: &StreamPlan,
    target: &ReplanTarget,
) -> EngineResult<()> {
    let storage = target.row.storage();
    let view = stream_tables::exec_view(sql, target.row.pgt_id)
        .await?
        .ok_or_else(|| {
            EngineError::api(
                "42501",
                format!("stream table {storage} has no execution view owned by its owner"),
            )
        })?;
    let scratch = "pg_temp.__pgt_rebuild";
    let mut scratch_input = input.clone();
    scratch_input.storage = scratch.to_string();
    let scratch_plan = plan_stream_table(&scratch_input)?;
    let create = scratch_plan
        .storage_ddl
        .first()
        .ok_or_else(|| EngineError::api("XX000", "the plan creates no storage"))?;
    let columns = |table: &str| {
        format!(
            "SELECT a.attname::text AS name, \
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, \
               a.attnotnull::text AS not_null \
             FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = pg_catalog.to_regclass({})::pg_catalog.oid \
               AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            quote_literal(table)
        )
    };
    let saved = swap_search_path(sql, "pg_catalog").await?;
    let read = async {
        sql.run(&format!("DROP TABLE IF EXISTS {scratch}; {create}"))
            .await?;
        let new = sql.rows(&columns(scratch)).await?;
        let old = sql.rows(&columns(&storage)).await?;
        sql.run(&format!("DROP TABLE {scratch}")).await?;
        EngineResult::Ok((new, old))
    }
    .await;
    swap_search_path(sql, &saved).await?;
    let (new, old) = read?;
    let text = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let visible = |rows: &[Vec<Option<String>>]| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| !text(r, 0).starts_with("__pgt_"))
            .map(|r| (text(r, 0), text(r, 1)))
            .collect()
    };
    if visible(&new) != visible(&old) {
        return Err(EngineError::api(
            "0A000",
            format!(
                "this pgtrickle-proxy plans stream table {storage} with other columns than it has"
            ),
        )
        .with_hint("drop the stream table and create it again to apply the new plan"));
    }
    let mut alter: Vec<String> = target
        .hidden_columns
        .iter()
        .map(|c| format!("DROP COLUMN {}", quote_ident(c)))
        .collect();
    alter.extend(
        new.iter()
            .filter(|r| text(r, 0).starts_with("__pgt_"))
            .map(|r| {
                format!(
                    "ADD COLUMN {} {}{}",
                    quote_ident(&text(r, 0)),
                    text(r, 1),
                    if text(r, 2) == "true" || text(r, 2) == "t" {
                        " NOT NULL"
                    } else {
                        ""
                    }
                )
            }),
    );
    let mut statements = vec![format!("TRUNCATE {storage}")];
    if !alter.is_empty() {
        statements.push(format!("ALTER TABLE {storage} {}", alter.join(", ")));
    }
    // The plan's other storage statements (its indexes) name the real storage.
    statements.extend(plan.storage_ddl.iter().skip(1).cloned());
    sandbox::run_as_owner(sql, &view, &statements).await?;
    Ok(())
}

/// Plans again, each in a transaction of its own, every stream table of this database whose plan
/// is older than this proxy's planner (the scheduler's start, on its own connection); one whose
/// storage was rebuilt is populated in the same transaction. A failure is logged and leaves
/// that stream table as it was.
pub async fn replan_older<R: SqlRunner>(
    sql: &mut R,
    settings: &EngineSettings,
) -> EngineResult<()> {
    for st in stream_tables::planned_by_other_version(sql, false).await? {
        // One snapshot for the population, which the next refresh can then trust.
        sql.run("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
        let done = async {
            if replan(sql, &Authority::Own, st.pgt_id).await? == Replanned::Storage {
                refresh(sql, &Authority::Own, settings, st.pgt_id, true, false).await?;
            }
            EngineResult::Ok(())
        }
        .await;
        match done {
            Ok(()) => {
                sql.run("COMMIT").await?;
            }
            Err(e) => {
                let _ = sql.run("ROLLBACK").await;
                tracing::warn!(stream_table = %st.name, "not planned again: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(PlanAge::of(Some(PLANNER_VERSION)), PlanAge::Current);
        assert_eq!(PlanAge::of(None), PlanAge::Older);
        assert_eq!(
            PlanAge::of(Some(PLANNER_VERSION + 1)),
            PlanAge::Newer(PLANNER_VERSION + 1)
        );
    }
}
