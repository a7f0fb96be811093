//! The pgtrickle API calls that change things (create, alter, drop, refresh, resume), executed
//! in the caller's transaction on whatever connection it has.

use pgtrickle_planner::{
    api_call::{AlterStreamTable, CreateStreamTable},
    plan_stream_table, EffectiveMode, RefreshMode, StName, StStatus, StorageLayout,
};

use crate::engine::background::poll::Poller;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::capture;
use crate::engine::refresh::describe::{describe, resolve_name};
use crate::engine::refresh::run::{refresh, text_array_literal, Refreshed};
use crate::engine::refresh::sandbox;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_ident, quote_literal, SqlRunner, SqlRunnerExt};

/// What an API call tells the client besides its result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// NOTICE messages to send.
    pub notices: Vec<String>,
    /// A created stream table still to populate (FULL refresh) in a transaction of its own.
    pub populate: Option<i64>,
    /// Sources whose change buffers to trim after commit.
    pub trim: Vec<u32>,
}

/// A stream table found in the catalog.
pub struct Found {
    /// Catalog id.
    pub pgt_id: i64,
    /// Storage table OID.
    pub relid: u32,
    /// Resolved name.
    pub name: StName,
    /// The owning role (the storage table's owner).
    pub owner: String,
    /// True when the current role is (a member of) the owner.
    pub owned: bool,
}

/// The catalog columns of a [`Found`], joined with the storage table (whose owner is the
/// stream table's owner: the role its refreshes run as).
const FOUND_COLUMNS: &str = "s.pgt_id, s.pgt_relid, s.pgt_schema, s.pgt_name, \
     c.relowner::pg_catalog.regrole::text, pg_catalog.pg_has_role(c.relowner, 'MEMBER') \
     FROM pgtrickle.pgt_stream_tables s JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid";

fn found_of(pgt_id: Option<i64>, r: Vec<Option<String>>) -> Found {
    let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    Found {
        pgt_id: pgt_id.unwrap_or_else(|| get(0).parse().unwrap_or(0)),
        relid: get(1).parse().unwrap_or(0),
        name: StName {
            schema: Some(get(2)),
            name: get(3),
        },
        owner: get(4),
        owned: get(5) == "t",
    }
}

fn qualified(name: &StName) -> String {
    format!(
        "{}.{}",
        quote_ident(name.schema.as_deref().unwrap_or("public")),
        quote_ident(&name.name)
    )
}

/// Looks a stream table up by name (search_path applies to unqualified names).
pub async fn find<R: SqlRunner>(sql: &mut R, name: &StName) -> EngineResult<Option<Found>> {
    let text = match &name.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&name.name)),
        None => quote_ident(&name.name),
    };
    let row = sql
        .rows(&format!(
            "SELECT {FOUND_COLUMNS} WHERE s.pgt_relid = pg_catalog.to_regclass({})",
            quote_literal(&text)
        ))
        .await?
        .into_iter()
        .next();
    Ok(row.map(|r| found_of(None, r)))
}

async fn must_find<R: SqlRunner>(sql: &mut R, name: &StName) -> EngineResult<Found> {
    find(sql, name).await?.ok_or_else(|| {
        EngineError::api(
            "42P01",
            format!("stream table \"{}\" does not exist", name.name),
        )
    })
}

/// Finds a stream table the current role owns (or is a member of the owner of), as
/// PostgreSQL requires for REFRESH MATERIALIZED VIEW, ALTER and DROP.
async fn must_own<R: SqlRunner>(sql: &mut R, name: &StName) -> EngineResult<Found> {
    let st = must_find(sql, name).await?;
    if !st.owned {
        return Err(EngineError::api(
            "42501",
            format!("must be owner of stream table {}", st.name.name),
        ));
    }
    Ok(st)
}

/// `create_stream_table` and its variants. With `populate_here`, an `initialize => true`
/// stream table is populated in this transaction (and its next refresh is FULL, since this
/// transaction's snapshot may predate the capture triggers); otherwise the caller populates it
/// in a transaction of its own afterwards (see [`Outcome::populate`]).
pub async fn create<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    req: &CreateStreamTable,
    populate_here: bool,
    poller: &Poller,
    settings: &EngineSettings,
) -> EngineResult<Outcome> {
    use pgtrickle_planner::api_call::CreateKind;
    if req.cdc_mode == Some(pgtrickle_planner::CdcMode::Wal) {
        return Err(EngineError::api(
            "0A000",
            "cdc_mode 'wal' is not supported by pgtrickle-proxy yet",
        )
        .with_hint("use cdc_mode => 'trigger' or 'auto'"));
    }
    let name = resolve_name(sql, &req.name).await?;
    let mut outcome = Outcome::default();
    // Sources of a replaced stream table: their capture is removed at the end if the new
    // definition does not read them (removing it first would make the poller wait for this
    // transaction's locks on a mirror it is about to fill again).
    let mut replaced_sources = Vec::new();
    if let Some(existing) = find(sql, &name).await? {
        match req.kind {
            CreateKind::Create => {
                return Err(EngineError::api(
                    "42P07",
                    format!("stream table \"{}\" already exists", name.name),
                ))
            }
            CreateKind::IfNotExists => {
                outcome.notices.push(format!(
                    "stream table \"{}\" already exists, skipping",
                    name.name
                ));
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
    let described = describe(sql, &name, &req.query, req.refresh_mode).await?;
    let plan = plan_stream_table(&described.input)?;
    if let Some(n) = &plan.notice {
        outcome.notices.push(n.clone());
    }
    for stmt in &plan.storage_ddl {
        sql.run(stmt).await?;
    }
    let storage = qualified(&name);
    let mode_text = |m: RefreshMode| m.to_string();
    let effective = match plan.mode {
        EffectiveMode::Full => "FULL",
        EffectiveMode::Differential => "DIFFERENTIAL",
    };
    let layout = match plan.layout {
        StorageLayout::Plain => "plain",
        StorageLayout::Bag => "bag",
        StorageLayout::Grouped => "grouped",
    };
    let diff = plan
        .stored_differential_refresh()
        .map(|d| text_array_literal(&d))
        .unwrap_or_else(|| "NULL".into());
    // A stream table its creator populates in a transaction of its own is kept from the
    // scheduler meanwhile (the population clears next_attempt_at; a failed one drops it).
    let hold = if req.initialize && !populate_here {
        "now() + interval '10 minutes'"
    } else {
        "NULL"
    };
    // The execution view the refreshes run in, owned (like the storage) by the creating role.
    let exec_relid = sandbox::create_exec_view(sql).await?;
    let storage_oid: u32 = sql
        .value(&format!(
            "SELECT {}::pg_catalog.regclass::pg_catalog.oid",
            quote_literal(&storage)
        ))
        .await?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| EngineError::api("XX000", "storage table not created"))?;
    let pgt_id: i64 = auth
        .value(
            sql,
            "SELECT pg_catalog.nextval('pgtrickle.pgt_stream_tables_pgt_id_seq')::text",
        )
        .await?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| EngineError::api("XX000", "no stream table id"))?;
    auth.exec(
        sql,
        &format!(
            "INSERT INTO pgtrickle.pgt_stream_tables (pgt_id, pgt_schema, pgt_name, pgt_relid, \
             defining_query, resolved_query, schedule, refresh_mode, effective_mode, cdc_mode, \
             owner, storage_layout, full_refresh, diff_refresh, explain, next_attempt_at, \
             exec_relid, planner_version) VALUES \
             ({pgt_id}, {}, {}, {storage_oid}, {}, {}, {}, {}, '{effective}', {}, \
             (SELECT c.relowner::pg_catalog.regrole::pg_catalog.name FROM pg_catalog.pg_class c \
              WHERE c.oid = {storage_oid}), '{layout}', {}, \
             {diff}, {}, {hold}, {exec_relid}, {})",
            quote_literal(name.schema.as_deref().unwrap_or("public")),
            quote_literal(&name.name),
            quote_literal(&req.query),
            quote_literal(&described.input.query),
            quote_literal(&req.schedule.to_string()),
            quote_literal(&mode_text(req.refresh_mode)),
            req.cdc_mode
                .map(|c| quote_literal(&c.to_string()))
                .unwrap_or_else(|| "NULL".into()),
            text_array_literal(&plan.full_refresh),
            quote_literal(&plan.explain),
            pgtrickle_planner::PLANNER_VERSION,
        ),
    )
    .await?;
    sql.run(&format!(
        "CREATE TRIGGER __pgt_read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {storage} \
         FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle.__pgt_read_only()"
    ))
    .await?;
    let join_keys = pgtrickle_planner::equality_key_columns(&described.input.query)?;
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
            let database = crate::engine::background::poll::due::current_database(sql).await?;
            poller
                .prepare(&database, &role, source.oid, &source.qualified(), &keys)
                .await?;
        }
        auth.exec(
            sql,
            &format!(
                "INSERT INTO pgtrickle.pgt_dependencies VALUES ({pgt_id}, {}, {}, {}, {}) \
                 ON CONFLICT DO NOTHING",
                source.oid,
                quote_literal(source.kind.as_catalog_str()),
                quote_literal(&source.schema),
                quote_literal(&source.name)
            ),
        )
        .await?;
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

/// Stream tables that read `relid`.
async fn dependents<R: SqlRunner>(sql: &mut R, relid: u32) -> EngineResult<Vec<StName>> {
    Ok(sql
        .rows(&format!(
            "SELECT s.pgt_schema, s.pgt_name FROM pgtrickle.pgt_dependencies d \
             JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE d.source_relid = {relid}"
        ))
        .await?
        .into_iter()
        .map(|r| StName {
            schema: r.first().cloned().flatten(),
            name: r.get(1).cloned().flatten().unwrap_or_default(),
        })
        .collect())
}

async fn drop_one<R: SqlRunner>(sql: &mut R, auth: &Authority, st: &Found) -> EngineResult<()> {
    for oid in drop_keeping_sources(sql, auth, st).await? {
        capture::uninstall_if_unused(sql, auth, oid).await?;
    }
    Ok(())
}

/// Drops a stream table but not the capture of its sources, which it returns.
async fn drop_keeping_sources<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    st: &Found,
) -> EngineResult<Vec<u32>> {
    let sources: Vec<u32> = capture::sources_of(sql, st.pgt_id)
        .await?
        .into_iter()
        .filter(|d| d.captured)
        .map(|d| d.oid)
        .collect();
    let exec_view = sql
        .value(&format!(
            "SELECT e.oid::pg_catalog.regclass::text FROM pgtrickle.pgt_stream_tables s \
             JOIN pg_catalog.pg_class e ON e.oid = s.exec_relid AND e.relkind = 'm' \
             WHERE s.pgt_id = {}",
            st.pgt_id
        ))
        .await?;
    auth.exec(
        sql,
        &format!(
            "DELETE FROM pgtrickle.pgt_stream_tables WHERE pgt_id = {}",
            st.pgt_id
        ),
    )
    .await?;
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
    let row = sql
        .rows(&format!("SELECT {FOUND_COLUMNS} WHERE s.pgt_id = {pgt_id}"))
        .await?
        .into_iter()
        .next();
    if let Some(r) = row {
        drop_one(sql, auth, &found_of(Some(pgt_id), r)).await?;
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
    let deps = dependents(sql, st.relid).await?;
    if !deps.is_empty() {
        if !cascade {
            let names: Vec<String> = deps.iter().map(qualified).collect();
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
        for d in deps {
            Box::pin(drop(sql, auth, &d, true)).await?;
        }
    }
    drop_one(sql, auth, &st).await
}

/// Polls the foreign sources of the stream table `name` (which the current role must own) as
/// its owner, before a refresh the user asked for; the first failure is returned. The caller
/// has made sure that the catalog is current.
pub async fn poll_for_refresh<R: SqlRunner>(
    sql: &mut R,
    name: &StName,
    poller: &Poller,
) -> EngineResult<()> {
    let st = must_own(sql, name).await?;
    let failures =
        crate::engine::background::poll::due::poll_all(sql, poller, st.pgt_id, &st.owner).await?;
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
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET status = 'ACTIVE', consecutive_errors = 0, \
             next_attempt_at = NULL WHERE pgt_id = {}",
            st.pgt_id
        ),
    )
    .await
}

/// `alter_stream_table(...)`: NULL arguments leave things unchanged; a new query or refresh
/// mode re-plans the stream table (as create_or_replace does).
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
    if req.query.is_some() || req.refresh_mode.is_some() || req.cdc_mode.is_some() {
        let row = sql
            .rows(&format!(
                "SELECT defining_query, schedule, refresh_mode, cdc_mode, status \
                 FROM pgtrickle.pgt_stream_tables WHERE pgt_id = {}",
                st.pgt_id
            ))
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let get = |i: usize| row.get(i).cloned().flatten();
        let limits = pgtrickle_planner::ApiLimits {
            min_schedule: std::time::Duration::from_secs(0),
        };
        let create = CreateStreamTable {
            kind: pgtrickle_planner::api_call::CreateKind::OrReplace,
            name: st.name.clone(),
            query: req.query.clone().or(get(0)).unwrap_or_default(),
            schedule: match &req.schedule {
                Some(s) => s.clone(),
                None => pgtrickle_planner::schedule::parse_schedule(
                    &get(1).unwrap_or_else(|| "calculated".into()),
                    limits.min_schedule,
                )?,
            },
            refresh_mode: match req.refresh_mode {
                Some(m) => m,
                None => RefreshMode::parse(&get(2).unwrap_or_else(|| "AUTO".into()))?,
            },
            initialize: true,
            cdc_mode: match req.cdc_mode {
                Some(c) => Some(c),
                None => get(3)
                    .map(|c| pgtrickle_planner::CdcMode::parse(&c))
                    .transpose()?,
            },
        };
        if !dependents(sql, st.relid).await?.is_empty() && req.query.is_some() {
            return Err(EngineError::api(
                "0A000",
                "cannot change the query of a stream table that other stream tables read",
            ));
        }
        let status = get(4);
        outcome = create_replacing(sql, auth, &create, populate_here, poller, settings).await?;
        if status.as_deref() == Some("SUSPENDED") && req.status.is_none() {
            set_status(sql, auth, &st.name, StStatus::Suspended).await?;
        }
    } else if let Some(schedule) = &req.schedule {
        auth.exec(
            sql,
            &format!(
                "UPDATE pgtrickle.pgt_stream_tables SET schedule = {} WHERE pgt_id = {}",
                quote_literal(&schedule.to_string()),
                st.pgt_id
            ),
        )
        .await?;
    }
    if let Some(status) = req.status {
        set_status(sql, auth, &st.name, status).await?;
    }
    Ok(outcome)
}

async fn create_replacing<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    req: &CreateStreamTable,
    populate_here: bool,
    poller: &Poller,
    settings: &EngineSettings,
) -> EngineResult<Outcome> {
    Box::pin(create(sql, auth, req, populate_here, poller, settings)).await
}

async fn set_status<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    name: &StName,
    status: StStatus,
) -> EngineResult<()> {
    let st = must_find(sql, name).await?;
    let text = match status {
        StStatus::Active => "ACTIVE",
        StStatus::Suspended => "SUSPENDED",
    };
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET status = '{text}', consecutive_errors = 0, \
             next_attempt_at = NULL WHERE pgt_id = {}",
            st.pgt_id
        ),
    )
    .await
}
