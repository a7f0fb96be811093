//! `create_stream_table` and its variants (`_if_not_exists`, `create_or_replace_`): describe
//! and plan the defining query, create the storage and its execution view, record the catalog
//! row and the sources (installing capture, preparing foreign sources), and populate.

use pgtrickle_planner::api_call::{CreateKind, CreateStreamTable};
use pgtrickle_planner::CdcMode;

use crate::engine::api::drop::drop_keeping_sources;
use crate::engine::api::outcome::Outcome;
use crate::engine::background::poll::{due, Poller};
use crate::engine::catalog::dependencies::{self, Dependency};
use crate::engine::catalog::stream_tables::{
    self, qualified, NewStreamTable, StoredOptions, StoredPlan,
};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::capture;
use crate::engine::refresh::describe::{describe, resolve_name};
use crate::engine::refresh::run::refresh;
use crate::engine::refresh::sandbox;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_literal, SqlRunner, SqlRunnerExt};

/// Creates stream table `req` in the caller's transaction. With `populate_here`, an
/// `initialize => true` stream table is populated in this transaction (and its next refresh is
/// FULL, since this transaction's snapshot may predate the capture triggers); otherwise the
/// caller populates it in a transaction of its own afterwards (see [`Outcome::populate`]).
pub async fn create<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    req: &CreateStreamTable,
    populate_here: bool,
    poller: &Poller,
    settings: &EngineSettings,
) -> EngineResult<Outcome> {
    if req.cdc_mode == Some(CdcMode::Wal) {
        return Err(EngineError::api(
            "0A000",
            "cdc_mode 'wal' is not supported by pgtrickle-proxy yet",
        )
        .with_hint("use cdc_mode => 'trigger' or 'auto'"));
    }
    let name = resolve_name(sql, &req.name).await?;
    let mut outcome = Outcome {
        notices: req.options.notices.clone(),
        ..Outcome::default()
    };
    // Sources of a replaced stream table: their capture is removed at the end if the new
    // definition does not read them (removing it first would make the poller wait for this
    // transaction's locks on a mirror it is about to fill again).
    let mut replaced_sources = Vec::new();
    if let Some(existing) = stream_tables::find(sql, &name).await? {
        match req.kind {
            CreateKind::Create => {
                return Err(EngineError::api(
                    "42P07",
                    format!("stream table \"{}\" already exists", name.name),
                ))
            }
            CreateKind::IfNotExists => {
                outcome.notices = vec![format!(
                    "stream table \"{}\" already exists, skipping",
                    name.name
                )];
                return Ok(outcome);
            }
            CreateKind::OrReplace => {
                replaced_sources = drop_keeping_sources(sql, auth, &existing).await?
            }
        }
    } else if sql
        .value(&format!(
            "SELECT pg_catalog.to_regclass({}) IS NOT NULL",
            quote_literal(&qualified(&name))
        ))
        .await?
        .as_deref()
        == Some("t")
    {
        return Err(EngineError::api(
            "42P07",
            format!("relation \"{}\" already exists", name.name),
        ));
    }
    let described = describe(sql, &name, &req.query, req.refresh_mode, true).await?;
    let plan = described.plan()?;
    if let Some(n) = &plan.notice {
        outcome.notices.push(n.clone());
    }
    for stmt in &plan.storage_ddl {
        sql.run(stmt).await?;
    }
    let storage = qualified(&name);
    // The execution view the refreshes run in, owned (like the storage) by the creating role.
    let exec_relid = sandbox::create_exec_view(sql).await?;
    let relid: u32 = sql
        .value(&format!(
            "SELECT {}::pg_catalog.regclass::pg_catalog.oid",
            quote_literal(&storage)
        ))
        .await?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| EngineError::api("XX000", "storage table not created"))?;
    let pgt_id = stream_tables::next_id(sql, auth).await?;
    let stored_diff = plan.stored_differential_refresh();
    stream_tables::insert(
        sql,
        auth,
        pgt_id,
        &NewStreamTable {
            name: &name,
            relid,
            defining_query: &req.query,
            schedule: &req.schedule,
            refresh_mode: req.refresh_mode,
            cdc_mode: req.cdc_mode,
            plan: StoredPlan {
                effective_mode: plan.mode,
                layout: plan.layout,
                full_refresh: &plan.full_refresh,
                diff_refresh: stored_diff.as_deref(),
                explain: &plan.explain,
                resolved_query: &described.input.query,
            },
            exec_relid,
            // A stream table its creator populates in a transaction of its own is kept from
            // the scheduler meanwhile (the population clears it; a failed one drops it).
            held: req.initialize && !populate_here,
            options: StoredOptions::of(&req.options),
        },
    )
    .await?;
    sql.run(&format!(
        "CREATE TRIGGER __pgt_read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {storage} \
         FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle.__pgt_read_only()"
    ))
    .await?;
    let join_keys = match described.unreadable {
        // No foreign sources then (see `pgtrickle_planner::plan_unreadable`).
        Some(_) => Vec::new(),
        None => pgtrickle_planner::equality_key_columns(&described.input.query)?,
    };
    for i in &plan.sources {
        let source = &described.sources[*i];
        // Capture (the engine role's, shared by every reader of the source) before the
        // dependency row that makes the source's buffer consumed.
        if source.has_capture() {
            capture::install(sql, auth, source).await?;
        }
        if source.is_polled() {
            // The mirror is created (as the engine role, which grants this role SELECT on it:
            // the refreshes read it as the owner) and filled, reading the foreign table as this
            // role (whose FDW user mapping applies), before the population reads it.
            let role = sql.value("SELECT current_user").await?.unwrap_or_default();
            let reference = &described.input.relations[*i].reference;
            let keys: Vec<String> = join_keys
                .iter()
                .filter(|(r, _)| r == reference)
                .map(|(_, c)| c.clone())
                .collect();
            let database = due::current_database(sql).await?;
            poller
                .prepare(&database, &role, source.oid, &source.qualified(), &keys)
                .await?;
        }
        let dependency = Dependency {
            oid: source.oid,
            kind: source.kind,
            schema: source.schema.clone(),
            name: source.name.clone(),
        };
        dependencies::insert(sql, auth, pgt_id, &dependency).await?;
    }
    // Expanded views are dependencies too: dropping one, or revoking the owner's SELECT on it,
    // stops the refreshes (they read its definition as it was at creation).
    for view in &described.views {
        let dependency = Dependency {
            oid: view.oid,
            kind: view.kind,
            schema: view.schema.clone(),
            name: view.name.clone(),
        };
        dependencies::insert(sql, auth, pgt_id, &dependency).await?;
    }
    for oid in replaced_sources {
        capture::uninstall_if_unused(sql, auth, oid).await?;
    }
    if req.initialize {
        if populate_here {
            refresh(sql, auth, settings, pgt_id, true, true).await?;
        } else {
            outcome.populate = Some(pgt_id);
        }
    }
    Ok(outcome)
}
