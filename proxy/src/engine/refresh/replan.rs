//! Stored plans follow the planner across upgrades. The planner's statements are stored with
//! each stream table, with the planner version that produced them
//! ([`pgtrickle_planner::PLANNER_VERSION`]). A proxy whose planner is newer plans an older
//! stream table again from its defining query before refreshing it (and, for every stream table,
//! when its scheduler starts): when the storage layout (the hidden columns) is unchanged, the
//! new statements replace the old ones and the next refresh is FULL, so that contents computed
//! by an older, possibly wrong, rule are recomputed. A changed layout is refused with a clear
//! error (the stream table keeps its contents; dropping and creating it again applies the new
//! plan). A proxy whose planner is older than a stream table's plan never runs statements it
//! did not write: the refresh fails with 55000 and the scheduler leaves the stream table to
//! the newer proxy, saying so in its log (`pgt_status()` shows every plan's version).
//!
//! The query planned is the one PostgreSQL resolved at create time (`resolved_query`, every
//! name qualified); stream tables of catalogs older than version 5 only have the query as
//! written, which is resolved with the owner's default search_path (`"<owner>", public`).

use pgtrickle_planner::{plan_stream_table, EffectiveMode, RefreshMode, StName, PLANNER_VERSION};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::describe::describe;
use crate::engine::refresh::run::text_array_literal;
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

/// Plans stream table `pgt_id` again with this proxy's planner and stores the new statements,
/// in the caller's transaction (the catalog row is locked). `auth` runs the catalog writes.
pub async fn replan<R: SqlRunner>(sql: &mut R, auth: &Authority, pgt_id: i64) -> EngineResult<()> {
    let row = auth
        .rows(
            sql,
            &format!(
                "SELECT s.pgt_schema, s.pgt_name, s.defining_query, s.resolved_query, \
                 s.refresh_mode, s.storage_layout, c.relowner::pg_catalog.regrole::text AS owner, \
                 (SELECT pg_catalog.string_agg(a.attname::text, ',' ORDER BY a.attnum) \
                  FROM pg_catalog.pg_attribute a WHERE a.attrelid = s.pgt_relid \
                  AND a.attnum > 0 AND NOT a.attisdropped \
                  AND a.attname::text LIKE '\\_\\_pgt\\_%') AS hidden \
                 FROM pgtrickle.pgt_stream_tables s \
                 JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid \
                 WHERE s.pgt_id = {pgt_id} FOR UPDATE OF s"
            ),
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?;
    let get = |i: usize| row.get(i).cloned().flatten();
    let name = StName {
        schema: get(0),
        name: get(1).unwrap_or_default(),
    };
    let storage = format!(
        "{}.{}",
        quote_ident(name.schema.as_deref().unwrap_or("public")),
        quote_ident(&name.name)
    );
    let mode = RefreshMode::parse(&get(4).unwrap_or_else(|| "AUTO".into()))?;
    let described = match get(3) {
        Some(resolved) => describe(sql, &name, &resolved, mode).await?,
        None => {
            // Written before queries were resolved: the owner's default search_path.
            let owner = get(6).unwrap_or_default();
            let saved = swap_search_path(
                sql,
                &format!("{}, public", quote_ident(owner.trim_matches('"'))),
            )
            .await?;
            let described = describe(sql, &name, &get(2).unwrap_or_default(), mode).await;
            swap_search_path(sql, &saved).await?;
            described?
        }
    };
    let plan = plan_stream_table(&described.input)?;
    let layout = match plan.layout {
        pgtrickle_planner::StorageLayout::Plain => "plain",
        pgtrickle_planner::StorageLayout::Bag => "bag",
        pgtrickle_planner::StorageLayout::Grouped => "grouped",
    };
    let hidden = get(7).unwrap_or_default();
    if get(5).as_deref() != Some(layout) || hidden != plan.hidden_columns.join(",") {
        return Err(EngineError::api(
            "0A000",
            format!(
                "this pgtrickle-proxy plans stream table {storage} with another storage layout \
                 ({layout}: {}) than it has ({}: {hidden})",
                plan.hidden_columns.join(","),
                get(5).unwrap_or_default()
            ),
        )
        .with_hint("drop the stream table and create it again to apply the new plan"));
    }
    let effective = match plan.mode {
        EffectiveMode::Full => "FULL",
        EffectiveMode::Differential => "DIFFERENTIAL",
    };
    let diff = plan
        .stored_differential_refresh()
        .map(|d| text_array_literal(&d))
        .unwrap_or_else(|| "NULL".into());
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET full_refresh = {}, diff_refresh = {diff}, \
             explain = {}, effective_mode = '{effective}', resolved_query = {}, \
             planner_version = {PLANNER_VERSION}, needs_full = true WHERE pgt_id = {pgt_id}",
            text_array_literal(&plan.full_refresh),
            quote_literal(&plan.explain),
            quote_literal(&described.input.query),
        ),
    )
    .await?;
    tracing::info!(stream_table = %storage, version = PLANNER_VERSION, "planned again");
    Ok(())
}

/// Plans again, each in a transaction of its own, every stream table of this database whose plan
/// is older than this proxy's planner (the scheduler's start, on its own connection). A failure
/// is logged and leaves that stream table as it was.
pub async fn replan_older<R: SqlRunner>(sql: &mut R) -> EngineResult<()> {
    let older = sql
        .rows(&format!(
            "SELECT pgt_id, pg_catalog.format('%I.%I', pgt_schema, pgt_name) \
             FROM pgtrickle.pgt_stream_tables \
             WHERE coalesce(planner_version, 1) < {PLANNER_VERSION}"
        ))
        .await?;
    for row in older {
        let get = |i: usize| row.get(i).cloned().flatten();
        let Some(pgt_id) = get(0).and_then(|v| v.parse::<i64>().ok()) else {
            continue;
        };
        sql.run("BEGIN").await?;
        match replan(sql, &Authority::Own, pgt_id).await {
            Ok(()) => {
                sql.run("COMMIT").await?;
            }
            Err(e) => {
                let _ = sql.run("ROLLBACK").await;
                tracing::warn!(
                    stream_table = get(1).unwrap_or_default(),
                    "not planned again: {e}"
                );
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
