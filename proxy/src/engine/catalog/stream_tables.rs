//! `pgtrickle.pgt_stream_tables`: one row per stream table (its definition, its stored plan,
//! its refresh state), read into typed rows and written by the engine role.

use std::time::Duration;

use pgtrickle_planner::schedule::parse_schedule;
use pgtrickle_planner::{
    CdcMode, EffectiveMode, RefreshMode, Schedule, StName, StStatus, StorageLayout, PLANNER_VERSION,
};

use crate::engine::catalog::record::{CatalogError, Record, Rows};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_ident, quote_literal, SqlRunner, SqlRunnerExt};

const TABLE: &str = "pgtrickle.pgt_stream_tables";

/// The catalog's text for an effective mode.
pub fn effective_mode_text(mode: EffectiveMode) -> &'static str {
    match mode {
        EffectiveMode::Full => "FULL",
        EffectiveMode::Differential => "DIFFERENTIAL",
    }
}

/// The effective mode of its catalog text.
pub(crate) fn effective_mode_of(text: &str) -> Option<EffectiveMode> {
    match text {
        "FULL" => Some(EffectiveMode::Full),
        "DIFFERENTIAL" => Some(EffectiveMode::Differential),
        _ => None,
    }
}

/// The catalog's text for a storage layout.
pub fn layout_text(layout: StorageLayout) -> &'static str {
    match layout {
        StorageLayout::Plain => "plain",
        StorageLayout::Bag => "bag",
        StorageLayout::Grouped => "grouped",
        StorageLayout::Keyed => "keyed",
    }
}

fn layout_of(text: &str) -> Option<StorageLayout> {
    match text {
        "plain" => Some(StorageLayout::Plain),
        "bag" => Some(StorageLayout::Bag),
        "grouped" => Some(StorageLayout::Grouped),
        "keyed" => Some(StorageLayout::Keyed),
        _ => None,
    }
}

fn schedule_of(text: &str) -> Option<Schedule> {
    parse_schedule(text, Duration::ZERO).ok()
}

use crate::engine::sql::runner::quote_text_array as text_array_literal;

fn statements_of(text: &str) -> Option<Vec<String>> {
    crate::engine::sql::privileged::parse_array(text)
        .map(|items| items.into_iter().flatten().collect())
}

/// A stream table's schema-qualified storage name, quoted.
pub fn qualified(name: &StName) -> String {
    format!(
        "{}.{}",
        quote_ident(name.schema.as_deref().unwrap_or("public")),
        quote_ident(&name.name)
    )
}

/// A stream table found by name or id, with its owner (the storage table's owner: the role its
/// refreshes run as).
#[derive(Debug, Clone)]
pub struct StreamTableRef {
    /// Catalog id.
    pub pgt_id: i64,
    /// Storage table OID.
    pub relid: u32,
    /// Resolved name.
    pub name: StName,
    /// The owning role.
    pub owner: String,
    /// True when the current role is (a member of) the owner.
    pub owned: bool,
}

const REF_COLUMNS: &str = "s.pgt_id, s.pgt_relid, s.pgt_schema, s.pgt_name, \
     c.relowner::pg_catalog.regrole::text AS owner, \
     pg_catalog.pg_has_role(c.relowner, 'MEMBER') AS owned \
     FROM pgtrickle.pgt_stream_tables s JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid";

impl StreamTableRef {
    fn decode(r: &Record) -> Result<StreamTableRef, CatalogError> {
        Ok(StreamTableRef {
            pgt_id: r.parse("pgt_id")?,
            relid: r.parse("pgt_relid")?,
            name: StName {
                schema: Some(r.required("pgt_schema")?.to_string()),
                name: r.required("pgt_name")?.to_string(),
            },
            owner: r.required("owner")?.to_string(),
            owned: r.flag("owned")?,
        })
    }
}

async fn one_ref<R: SqlRunner>(sql: &mut R, filter: &str) -> EngineResult<Option<StreamTableRef>> {
    let rows = Rows::read(sql, TABLE, &format!("SELECT {REF_COLUMNS} WHERE {filter}")).await?;
    Ok(rows
        .first()
        .map(|r| StreamTableRef::decode(&r))
        .transpose()?)
}

/// Looks a stream table up by name (search_path applies to unqualified names).
pub async fn find<R: SqlRunner>(
    sql: &mut R,
    name: &StName,
) -> EngineResult<Option<StreamTableRef>> {
    let text = match &name.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&name.name)),
        None => quote_ident(&name.name),
    };
    one_ref(
        sql,
        &format!(
            "s.pgt_relid = pg_catalog.to_regclass({})",
            quote_literal(&text)
        ),
    )
    .await
}

/// Looks a stream table up by catalog id.
pub async fn find_by_id<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
) -> EngineResult<Option<StreamTableRef>> {
    one_ref(sql, &format!("s.pgt_id = {pgt_id}")).await
}

/// A SQL condition true when relation `relid_expr` is a stream table's storage.
pub fn is_storage_sql(relid_expr: &str) -> String {
    format!("EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_relid = {relid_expr})")
}

/// A stream table's definition and state, as the catalog row holds them.
#[derive(Debug, Clone)]
pub struct StreamTableRow {
    /// Catalog id.
    pub pgt_id: i64,
    /// Its name.
    pub name: StName,
    /// The defining query as given.
    pub defining_query: String,
    /// The defining query as PostgreSQL resolved it at create time (None before catalog v5).
    pub resolved_query: Option<String>,
    /// Its schedule.
    pub schedule: Schedule,
    /// The refresh mode asked for.
    pub refresh_mode: RefreshMode,
    /// The mode its plan uses.
    pub effective_mode: EffectiveMode,
    /// The change capture mode asked for, if any.
    pub cdc_mode: Option<CdcMode>,
    /// Active or suspended.
    pub status: StStatus,
    /// The storage layout of its plan.
    pub layout: StorageLayout,
    /// The planner version of the stored plan (None: before versions were recorded).
    pub planner_version: Option<i32>,
    /// Statements of a FULL refresh.
    pub full_refresh: Vec<String>,
    /// Statements of a DIFFERENTIAL refresh (None for FULL plans).
    pub diff_refresh: Option<Vec<String>>,
    /// True once a refresh filled it.
    pub is_populated: bool,
    /// True when its next refresh must be FULL.
    pub needs_full: bool,
    /// The snapshot of its last refresh.
    pub last_snapshot: Option<String>,
    /// `max_delta_fraction`: this stream table's AUTO threshold (None: the proxy's).
    pub auto_threshold: Option<f64>,
    /// `post_refresh_action => 'analyze'`: ANALYZE the storage after each refresh.
    pub analyze_after_refresh: bool,
}

/// Columns of a [`StreamTableRow`] (from `s`), as text (arrays and booleans included, so that
/// rows read as the engine role decode alike).
const ROW_COLUMNS: &str = "s.pgt_id::text AS pgt_id, s.pgt_schema, s.pgt_name, s.defining_query, \
     s.resolved_query, s.schedule, s.refresh_mode, s.effective_mode, s.cdc_mode, s.status, \
     s.storage_layout, s.planner_version::text AS planner_version, \
     s.full_refresh::text AS full_refresh, s.diff_refresh::text AS diff_refresh, \
     s.is_populated::text AS is_populated, s.needs_full::text AS needs_full, s.last_snapshot, \
     s.auto_threshold::text AS auto_threshold, s.post_refresh_action";

impl StreamTableRow {
    fn decode(r: &Record) -> Result<StreamTableRow, CatalogError> {
        Ok(StreamTableRow {
            pgt_id: r.parse("pgt_id")?,
            name: StName {
                schema: Some(r.required("pgt_schema")?.to_string()),
                name: r.required("pgt_name")?.to_string(),
            },
            defining_query: r.required("defining_query")?.to_string(),
            resolved_query: r.text("resolved_query")?.map(str::to_string),
            schedule: r.decode("schedule", "a schedule", schedule_of)?,
            refresh_mode: r.decode("refresh_mode", "a refresh mode", |t| {
                RefreshMode::parse(t).ok()
            })?,
            effective_mode: r.decode(
                "effective_mode",
                "FULL or DIFFERENTIAL",
                effective_mode_of,
            )?,
            cdc_mode: r.decode_opt("cdc_mode", "a cdc mode", |t| CdcMode::parse(t).ok())?,
            status: r.decode("status", "ACTIVE or SUSPENDED", |t| StStatus::parse(t).ok())?,
            layout: r.decode("storage_layout", "a storage layout", layout_of)?,
            planner_version: r.parse_opt("planner_version")?,
            full_refresh: r.decode("full_refresh", "a text array", statements_of)?,
            diff_refresh: r.decode_opt("diff_refresh", "a text array", statements_of)?,
            is_populated: r.flag("is_populated")?,
            needs_full: r.flag("needs_full")?,
            last_snapshot: r.text("last_snapshot")?.map(str::to_string),
            auto_threshold: r.parse_opt("auto_threshold")?,
            analyze_after_refresh: r.text("post_refresh_action")? == Some("analyze"),
        })
    }

    /// The storage table's qualified name.
    pub fn storage(&self) -> String {
        qualified(&self.name)
    }
}

/// Stream table `pgt_id`'s row, if it exists.
pub async fn row<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<Option<StreamTableRow>> {
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "SELECT {ROW_COLUMNS} FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = {pgt_id}"
        ),
    )
    .await?;
    Ok(rows
        .first()
        .map(|r| StreamTableRow::decode(&r))
        .transpose()?)
}

/// A stream table's row as a refresh needs it, read and locked by the engine role.
#[derive(Debug, Clone)]
pub struct RefreshTarget {
    /// The catalog row.
    pub row: StreamTableRow,
    /// The storage table's owner (OID): the stream table's owner.
    pub owner: u32,
    /// The execution view (qualified), if it exists and belongs to the owner.
    pub exec_view: Option<String>,
    /// False in a READ COMMITTED transaction (statements would see different snapshots).
    pub single_snapshot: bool,
    /// The storage's relation OID.
    pub storage_oid: u32,
    /// The rows this transaction had inserted, updated and deleted in the storage before the
    /// refresh, as PostgreSQL counts them (None when they could not be read).
    pub storage_counts: Option<TupleCounts>,
}

/// Rows inserted, updated and deleted in a table by the current transaction
/// (`pg_stat_get_xact_tuples_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleCounts {
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
    /// Rows deleted.
    pub deleted: i64,
}

/// Reads and locks (`FOR UPDATE`: a concurrent refresh elsewhere makes this one fail with a
/// serialization error) stream table `pgt_id`'s row, as the engine role (42P01 when it or its
/// storage is gone).
pub async fn lock_for_refresh<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
) -> EngineResult<RefreshTarget> {
    let rows = Rows::read_as(
        sql,
        auth,
        TABLE,
        &format!(
            "SELECT {ROW_COLUMNS}, \
             (pg_catalog.current_setting('transaction_isolation') <> 'read committed')::text \
               AS single_snapshot, \
             c.relowner::text AS owner, \
             CASE WHEN e.relowner = c.relowner THEN e.oid::pg_catalog.regclass::text END \
               AS exec_view, \
             c.oid::text AS storage_oid, \
             pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid)::text AS xact_inserted, \
             pg_catalog.pg_stat_get_xact_tuples_updated(c.oid)::text AS xact_updated, \
             pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)::text AS xact_deleted \
             FROM pgtrickle.pgt_stream_tables s \
             LEFT JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid \
             LEFT JOIN pg_catalog.pg_class e ON e.oid = s.exec_relid AND e.relkind = 'm' \
             WHERE s.pgt_id = {pgt_id} FOR UPDATE OF s"
        ),
    )
    .await?;
    let r = rows
        .first()
        .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?;
    Ok(RefreshTarget {
        row: StreamTableRow::decode(&r)?,
        owner: r
            .parse_opt("owner")?
            .ok_or_else(|| EngineError::api("42P01", "the stream table's storage is gone"))?,
        exec_view: r.text("exec_view")?.map(str::to_string),
        single_snapshot: r.flag("single_snapshot")?,
        storage_oid: r
            .parse_opt("storage_oid")?
            .ok_or_else(|| EngineError::api("42P01", "the stream table's storage is gone"))?,
        storage_counts: match (
            r.parse_opt("xact_inserted")?,
            r.parse_opt("xact_updated")?,
            r.parse_opt("xact_deleted")?,
        ) {
            (Some(inserted), Some(updated), Some(deleted)) => Some(TupleCounts {
                inserted,
                updated,
                deleted,
            }),
            _ => None,
        },
    })
}

/// A stream table's row as re-planning needs it, read and locked by the engine role.
#[derive(Debug, Clone)]
pub struct ReplanTarget {
    /// The catalog row.
    pub row: StreamTableRow,
    /// The owner's role name (quoted as an identifier where needed).
    pub owner: String,
    /// The storage's hidden (`__pgt_*`) columns, in order.
    pub hidden_columns: Vec<String>,
}

/// Reads and locks stream table `pgt_id`'s row for re-planning, as the engine role.
pub async fn lock_for_replan<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
) -> EngineResult<ReplanTarget> {
    let rows = Rows::read_as(
        sql,
        auth,
        TABLE,
        &format!(
            "SELECT {ROW_COLUMNS}, c.relowner::pg_catalog.regrole::text AS owner, \
             coalesce((SELECT pg_catalog.string_agg(a.attname::text, ',' ORDER BY a.attnum) \
              FROM pg_catalog.pg_attribute a WHERE a.attrelid = s.pgt_relid \
              AND a.attnum > 0 AND NOT a.attisdropped \
              AND a.attname::text LIKE '\\_\\_pgt\\_%'), '') AS hidden \
             FROM pgtrickle.pgt_stream_tables s \
             JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid \
             WHERE s.pgt_id = {pgt_id} FOR UPDATE OF s"
        ),
    )
    .await?;
    let r = rows
        .first()
        .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?;
    Ok(ReplanTarget {
        row: StreamTableRow::decode(&r)?,
        owner: r.required("owner")?.to_string(),
        hidden_columns: r
            .required("hidden")?
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// A plan to store: what the planner made of the defining query.
pub struct StoredPlan<'a> {
    /// The mode its refreshes use.
    pub effective_mode: EffectiveMode,
    /// The storage layout.
    pub layout: StorageLayout,
    /// FULL refresh statements.
    pub full_refresh: &'a [String],
    /// DIFFERENTIAL refresh statements.
    pub diff_refresh: Option<&'a [String]>,
    /// The explain text.
    pub explain: &'a str,
    /// The defining query as resolved.
    pub resolved_query: &'a str,
}

/// Replaces stream table `pgt_id`'s plan (stamped with this planner's version; its next refresh
/// is FULL), as the engine role.
pub async fn store_plan<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    plan: &StoredPlan<'_>,
) -> EngineResult<()> {
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET full_refresh = {}, diff_refresh = {}, \
             explain = {}, effective_mode = '{}', storage_layout = '{}', resolved_query = {}, \
             planner_version = {PLANNER_VERSION}, needs_full = true WHERE pgt_id = {pgt_id}",
            text_array_literal(plan.full_refresh),
            plan.diff_refresh
                .map(text_array_literal)
                .unwrap_or_else(|| "NULL".into()),
            quote_literal(plan.explain),
            effective_mode_text(plan.effective_mode),
            layout_text(plan.layout),
            quote_literal(plan.resolved_query),
        ),
    )
    .await
}

/// A new stream table's row.
pub struct NewStreamTable<'a> {
    /// Its name.
    pub name: &'a StName,
    /// The storage table's OID.
    pub relid: u32,
    /// The defining query as given.
    pub defining_query: &'a str,
    /// Its schedule.
    pub schedule: &'a Schedule,
    /// The refresh mode asked for.
    pub refresh_mode: RefreshMode,
    /// The change capture mode asked for.
    pub cdc_mode: Option<CdcMode>,
    /// Its plan.
    pub plan: StoredPlan<'a>,
    /// The execution view's OID.
    pub exec_relid: u32,
    /// Kept from the scheduler for a while (its creator populates it in a transaction of its
    /// own; the population clears it).
    pub held: bool,
    /// pg_trickle's options the proxy keeps.
    pub options: StoredOptions,
}

/// pg_trickle's per-stream-table options that the proxy keeps (`append_only`,
/// `max_delta_fraction`, `post_refresh_action`); None leaves a column unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoredOptions {
    /// `append_only`.
    pub append_only: Option<bool>,
    /// `max_delta_fraction` (Some(None): back to the proxy's threshold).
    pub auto_threshold: Option<Option<f64>>,
    /// `post_refresh_action` (Some(None): none).
    pub post_refresh_action: Option<Option<&'static str>>,
}

impl StoredOptions {
    /// The planner's options as catalog values.
    pub fn of(o: &pgtrickle_planner::api_call::StOptions) -> StoredOptions {
        StoredOptions {
            append_only: o.append_only,
            auto_threshold: o.max_delta_fraction.map(Some),
            post_refresh_action: o.post_refresh_action.map(|a| a.catalog_text()),
        }
    }

    /// `SET` assignments for the options given (empty when none is).
    fn assignments(&self) -> Vec<String> {
        let mut set = Vec::new();
        if let Some(a) = self.append_only {
            set.push(format!("append_only = {a}"));
        }
        if let Some(t) = self.auto_threshold {
            set.push(format!(
                "auto_threshold = {}",
                t.map(|v| format!("{v}::float8"))
                    .unwrap_or_else(|| "NULL".into())
            ));
        }
        if let Some(a) = self.post_refresh_action {
            set.push(format!(
                "post_refresh_action = {}",
                a.map(quote_literal).unwrap_or_else(|| "NULL".into())
            ));
        }
        set
    }
}

/// Sets stream table `pgt_id`'s options (those given).
pub async fn set_options<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    options: &StoredOptions,
) -> EngineResult<()> {
    let set = options.assignments();
    if set.is_empty() {
        return Ok(());
    }
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET {} WHERE pgt_id = {pgt_id}",
            set.join(", ")
        ),
    )
    .await
}

/// The options of stream table `pgt_id` as stored (for a re-plan that keeps them).
pub async fn options<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<StoredOptions> {
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "SELECT s.append_only::text AS append_only, s.auto_threshold::text AS auto_threshold, \
             s.post_refresh_action FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = {pgt_id}"
        ),
    )
    .await?;
    let Some(r) = rows.first() else {
        return Ok(StoredOptions::default());
    };
    Ok(StoredOptions {
        append_only: Some(r.flag("append_only")?),
        auto_threshold: Some(r.parse_opt("auto_threshold")?),
        post_refresh_action: Some(match r.text("post_refresh_action")? {
            Some("analyze") => Some("analyze"),
            _ => None,
        }),
    })
}

/// A new catalog id, drawn as the engine role.
pub async fn next_id<R: SqlRunner>(sql: &mut R, auth: &Authority) -> EngineResult<i64> {
    auth.value(
        sql,
        "SELECT pg_catalog.nextval('pgtrickle.pgt_stream_tables_pgt_id_seq')::text",
    )
    .await?
    .and_then(|v| v.parse().ok())
    .ok_or_else(|| EngineError::api("XX000", "no stream table id"))
}

/// Inserts stream table `pgt_id`'s row (its owner is its storage table's), as the engine role.
pub async fn insert<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    st: &NewStreamTable<'_>,
) -> EngineResult<()> {
    let relid = st.relid;
    auth.exec(
        sql,
        &format!(
            "INSERT INTO pgtrickle.pgt_stream_tables (pgt_id, pgt_schema, pgt_name, pgt_relid, \
             defining_query, resolved_query, schedule, refresh_mode, effective_mode, cdc_mode, \
             owner, storage_layout, full_refresh, diff_refresh, explain, next_attempt_at, \
             exec_relid, planner_version) VALUES \
             ({pgt_id}, {}, {}, {relid}, {}, {}, {}, {}, '{}', {}, \
             (SELECT c.relowner::pg_catalog.regrole::pg_catalog.name FROM pg_catalog.pg_class c \
              WHERE c.oid = {relid}), '{}', {}, {}, {}, {}, {}, {PLANNER_VERSION})",
            quote_literal(st.name.schema.as_deref().unwrap_or("public")),
            quote_literal(&st.name.name),
            quote_literal(st.defining_query),
            quote_literal(st.plan.resolved_query),
            quote_literal(&st.schedule.to_string()),
            quote_literal(&st.refresh_mode.to_string()),
            effective_mode_text(st.plan.effective_mode),
            st.cdc_mode
                .map(|c| quote_literal(&c.to_string()))
                .unwrap_or_else(|| "NULL".into()),
            layout_text(st.plan.layout),
            text_array_literal(st.plan.full_refresh),
            st.plan
                .diff_refresh
                .map(text_array_literal)
                .unwrap_or_else(|| "NULL".into()),
            quote_literal(st.plan.explain),
            if st.held {
                "now() + interval '10 minutes'"
            } else {
                "NULL"
            },
            st.exec_relid,
        ),
    )
    .await?;
    set_options(sql, auth, pgt_id, &st.options).await
}

/// The execution view of stream table `pgt_id` (qualified), if it exists.
pub async fn exec_view<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<Option<String>> {
    Ok(sql
        .value(&format!(
            "SELECT e.oid::pg_catalog.regclass::text FROM pgtrickle.pgt_stream_tables s \
             JOIN pg_catalog.pg_class e ON e.oid = s.exec_relid AND e.relkind = 'm' \
             WHERE s.pgt_id = {pgt_id}"
        ))
        .await?)
}

/// Deletes stream table `pgt_id`'s row (its dependencies and history go with it).
pub async fn delete<R: SqlRunner>(sql: &mut R, auth: &Authority, pgt_id: i64) -> EngineResult<()> {
    auth.exec(
        sql,
        &format!("DELETE FROM pgtrickle.pgt_stream_tables WHERE pgt_id = {pgt_id}"),
    )
    .await
}

/// Sets stream table `pgt_id`'s status, clearing its error count and backoff.
pub async fn set_status<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    status: StStatus,
) -> EngineResult<()> {
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET status = '{status}', consecutive_errors = 0, \
             next_attempt_at = NULL WHERE pgt_id = {pgt_id}"
        ),
    )
    .await
}

/// Sets stream table `pgt_id`'s schedule.
pub async fn set_schedule<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    schedule: &Schedule,
) -> EngineResult<()> {
    auth.exec(
        sql,
        &format!(
            "UPDATE pgtrickle.pgt_stream_tables SET schedule = {} WHERE pgt_id = {pgt_id}",
            quote_literal(&schedule.to_string())
        ),
    )
    .await
}

/// What a successful refresh did, as the catalog records it.
pub struct RefreshRecord<'a> {
    /// FULL or DIFFERENTIAL.
    pub action: EffectiveMode,
    /// Why it was FULL, if it was.
    pub reason: Option<&'a str>,
    /// Rows inserted, updated or deleted in the storage.
    pub rows_changed: i64,
    /// The storage's OID, and its rows this transaction had inserted, updated and deleted
    /// before the refresh: the history records the differences with the counts at the record,
    /// which are the refresh's (None: not recorded).
    pub counts_before: Option<(u32, TupleCounts)>,
    /// True when the next refresh must be FULL.
    pub next_full: bool,
    /// How long the refresh's statements took, in milliseconds.
    pub duration_ms: f64,
    /// Changes a DIFFERENTIAL refresh consumed (None when not counted).
    pub delta_rows: Option<i64>,
}

/// Records a successful refresh of `pgt_id` (its snapshot, and a history row), as the engine
/// role; `before` is SQL to run first in the same round trip.
pub async fn record_refresh<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
    before: &str,
    done: &RefreshRecord<'_>,
) -> EngineResult<()> {
    auth.exec(
        sql,
        &format!(
            "{before}UPDATE pgtrickle.pgt_stream_tables SET last_snapshot = pg_catalog.pg_current_snapshot()::text, \
             last_refresh_at = pg_catalog.now(), data_timestamp = pg_catalog.now(), \
             is_populated = true, needs_full = {}, \
             consecutive_errors = 0, last_error = NULL, next_attempt_at = NULL \
             WHERE pgt_id = {pgt_id}; \
             INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, data_timestamp, \
             action, status, rows_changed, reason, rows_inserted, rows_updated, rows_deleted, \
             duration_ms, delta_rows) \
             VALUES ({pgt_id}, pg_catalog.now(), pg_catalog.now(), '{}', 'SUCCESS', {}, {}, {}, {}, {})",
            done.next_full,
            effective_mode_text(done.action),
            done.rows_changed,
            done.reason.map(quote_literal).unwrap_or_else(|| "NULL".into()),
            match done.counts_before {
                Some((oid, b)) => format!(
                    "pg_catalog.pg_stat_get_xact_tuples_inserted({oid}::pg_catalog.oid) - {}, \
                     pg_catalog.pg_stat_get_xact_tuples_updated({oid}::pg_catalog.oid) - {}, \
                     pg_catalog.pg_stat_get_xact_tuples_deleted({oid}::pg_catalog.oid) - {}",
                    b.inserted, b.updated, b.deleted
                ),
                None => "NULL, NULL, NULL".into(),
            },
            if done.duration_ms.is_finite() { done.duration_ms.max(0.0) } else { 0.0 },
            done.delta_rows.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into()),
        ),
    )
    .await
}

/// Records a failed scheduled refresh of `pgt_id` (a history row, the error, a backoff, and
/// suspension after `max_errors` consecutive failures) on a connection of the engine role;
/// returns the number of consecutive failures.
pub async fn record_failure<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
    message: &str,
    max_errors: i32,
) -> EngineResult<i32> {
    sql.value(&format!(
        "INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, action, status, error) \
         VALUES ({pgt_id}, now(), 'SCHEDULED', 'FAILED', {msg}); \
         UPDATE pgtrickle.pgt_stream_tables SET consecutive_errors = consecutive_errors + 1, \
         last_error = {msg}, \
         next_attempt_at = now() + make_interval(secs => least(60, 2 ^ consecutive_errors)), \
         status = CASE WHEN consecutive_errors + 1 >= {max_errors} \
                  THEN 'SUSPENDED' ELSE status END \
         WHERE pgt_id = {pgt_id} RETURNING consecutive_errors",
        msg = quote_literal(message),
    ))
    .await?
    .map(|v| {
        v.parse().map_err(|_| CatalogError::Malformed {
            table: TABLE,
            column: "consecutive_errors",
            value: v.clone(),
            expected: "an integer",
        })
    })
    .transpose()
    .map(Option::unwrap_or_default)
    .map_err(EngineError::from)
}

/// The snapshot of stream table `pgt_id`'s last refresh (None before the first).
pub async fn last_snapshot<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<Option<String>> {
    Ok(sql
        .value(&format!(
            "SELECT last_snapshot FROM pgtrickle.pgt_stream_tables WHERE pgt_id = {pgt_id}"
        ))
        .await?)
}

/// A stream table as the scheduler considers it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Catalog id.
    pub pgt_id: i64,
    /// Qualified name, for logs.
    pub name: String,
    /// Its schedule.
    pub schedule: Schedule,
    /// Its owner's role name.
    pub owner: String,
    /// Seconds since its last refresh (None before the first).
    pub since_refresh: Option<f64>,
    /// Its last refresh as a Unix time.
    pub last_refresh_epoch: Option<f64>,
    /// False while a failure's backoff runs.
    pub backoff_over: bool,
    /// True for refresh mode IMMEDIATE.
    pub immediate: bool,
    /// The stream tables it reads.
    pub upstream: Vec<i64>,
}

/// The active stream tables this planner may refresh, sources before their readers.
pub async fn candidates<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<Candidate>> {
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "WITH RECURSIVE depth(pgt_id, d) AS ( \
               SELECT pgt_id, 0 FROM pgtrickle.pgt_stream_tables \
               UNION ALL \
               SELECT s.pgt_id, depth.d + 1 FROM depth \
               JOIN pgtrickle.pgt_stream_tables up ON up.pgt_id = depth.pgt_id \
               JOIN pgtrickle.pgt_dependencies dep ON dep.source_relid = up.pgt_relid \
               JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = dep.pgt_id \
               WHERE depth.d < 100) \
             SELECT s.pgt_id, format('%I.%I', s.pgt_schema, s.pgt_name) AS name, s.schedule, \
               s.owner, extract(epoch FROM now() - s.last_refresh_at) AS since_refresh, \
               extract(epoch FROM s.last_refresh_at) AS last_refresh_epoch, \
               coalesce(s.next_attempt_at <= now(), true) AS backoff_over, \
               s.refresh_mode = 'IMMEDIATE' AS immediate, \
               coalesce((SELECT string_agg(up.pgt_id::text, ',') FROM pgtrickle.pgt_dependencies dep \
                JOIN pgtrickle.pgt_stream_tables up ON up.pgt_relid = dep.source_relid \
                WHERE dep.pgt_id = s.pgt_id), '') AS upstream \
             FROM pgtrickle.pgt_stream_tables s \
             JOIN (SELECT pgt_id, max(d) AS d FROM depth GROUP BY pgt_id) m USING (pgt_id) \
             WHERE s.status = 'ACTIVE' AND coalesce(s.planner_version, 1) <= {PLANNER_VERSION} \
             ORDER BY m.d, s.pgt_id"
        ),
    )
    .await?;
    let decoded: Result<Vec<Candidate>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(Candidate {
                pgt_id: r.parse("pgt_id")?,
                name: r.required("name")?.to_string(),
                schedule: r.decode("schedule", "a schedule", schedule_of)?,
                owner: r.required("owner")?.to_string(),
                since_refresh: r.parse_opt("since_refresh")?,
                last_refresh_epoch: r.parse_opt("last_refresh_epoch")?,
                backoff_over: r.flag("backoff_over")?,
                immediate: r.flag("immediate")?,
                upstream: r
                    .required("upstream")?
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(|v| {
                        v.parse().map_err(|_| CatalogError::Malformed {
                            table: TABLE,
                            column: "pgt_id",
                            value: v.to_string(),
                            expected: "an id",
                        })
                    })
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect();
    Ok(decoded?)
}

/// A stream table whose plan another planner version wrote.
#[derive(Debug, Clone)]
pub struct PlannedElsewhere {
    /// Catalog id.
    pub pgt_id: i64,
    /// Qualified name, for logs.
    pub name: String,
    /// The planner version of its plan (1 for plans before versions were recorded).
    pub planner_version: i32,
}

/// Stream tables whose plan is older (`newer == false`) or newer than this planner's.
pub async fn planned_by_other_version<R: SqlRunner>(
    sql: &mut R,
    newer: bool,
) -> EngineResult<Vec<PlannedElsewhere>> {
    let op = if newer { ">" } else { "<" };
    let rows = Rows::read(
        sql,
        TABLE,
        &format!(
            "SELECT pgt_id, pg_catalog.format('%I.%I', pgt_schema, pgt_name) AS name, \
             coalesce(planner_version, 1) AS planner_version FROM pgtrickle.pgt_stream_tables \
             WHERE coalesce(planner_version, 1) {op} {PLANNER_VERSION} ORDER BY pgt_id"
        ),
    )
    .await?;
    let decoded: Result<Vec<_>, CatalogError> = rows
        .records()
        .map(|r| {
            Ok(PlannedElsewhere {
                pgt_id: r.parse("pgt_id")?,
                name: r.required("name")?.to_string(),
                planner_version: r.parse("planner_version")?,
            })
        })
        .collect();
    Ok(decoded?)
}

/// True when the database has a catalog (of any version).
pub async fn catalog_exists<R: SqlRunner>(sql: &mut R) -> EngineResult<bool> {
    Ok(sql
        .value("SELECT to_regclass('pgtrickle.pgt_stream_tables') IS NOT NULL")
        .await?
        .as_deref()
        == Some("t"))
}
