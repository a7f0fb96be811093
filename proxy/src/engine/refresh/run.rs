//! Refreshing one stream table inside the caller's transaction: FULL (recompute) or
//! DIFFERENTIAL (consume exactly the changes committed since the last refresh's snapshot and
//! apply them), then record the new snapshot and the history row. The caller trims the change
//! buffers after commit.
//!
//! Exactly once: the delta of a source is the set of its buffered changes visible in this
//! transaction's snapshot but not in the snapshot of the previous refresh. A DIFFERENTIAL
//! refresh therefore needs one snapshot for all its statements (REPEATABLE READ); in a READ
//! COMMITTED transaction block the engine refreshes FULL and marks the next refresh FULL too.

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::delta;
use crate::engine::refresh::owner_rights;
use crate::engine::refresh::replan::{newer_plan_error, replan, PlanAge};
use crate::engine::refresh::sandbox;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::{parse_array, Authority};
use crate::engine::sql::runner::{quote_literal, SqlRunner};

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// `FULL` or `DIFFERENTIAL`.
    pub action: &'static str,
    /// Rows inserted, updated or deleted in the storage table.
    pub rows_changed: i64,
    /// The captured sources, whose buffers the caller trims once this transaction committed
    /// ([`crate::engine::refresh::capture::trim_committed`]; trimming inside the refresh would make concurrent
    /// refreshes of stream tables sharing a source fail with serialization errors).
    pub sources: Vec<u32>,
}

/// A stream table's catalog row as a refresh needs it, read (and locked) by the engine role.
struct StRow {
    refresh_mode: String,
    effective_mode: String,
    full_refresh: Vec<String>,
    diff_refresh: Option<Vec<String>>,
    last_snapshot: Option<String>,
    needs_full: bool,
    is_populated: bool,
    storage: String,
    single_snapshot: bool,
    /// The storage table's owner (OID): the stream table's owner.
    owner: u32,
    /// The execution view (qualified), if it exists and belongs to the owner.
    exec_view: Option<String>,
    /// How the stored plan relates to this proxy's planner.
    age: PlanAge,
}

/// Encodes statements as a text[] literal.
pub fn text_array_literal(items: &[String]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    quote_literal(&format!("{{{}}}", parts.join(",")))
}

fn flag(v: Option<&String>) -> bool {
    v.map(String::as_str) == Some("true")
}

fn statements(v: Option<&String>) -> EngineResult<Option<Vec<String>>> {
    v.map(|a| {
        parse_array(a)
            .map(|items| items.into_iter().flatten().collect())
            .ok_or_else(|| EngineError::api("XX000", "malformed refresh statements in the catalog"))
    })
    .transpose()
}

/// Reads and locks (`FOR UPDATE`: a concurrent refresh elsewhere makes this one fail with a
/// serialization error) the catalog row, as the engine role.
async fn load<R: SqlRunner>(sql: &mut R, auth: &Authority, pgt_id: i64) -> EngineResult<StRow> {
    let row = auth
        .rows(
            sql,
            &format!(
                "SELECT s.effective_mode, s.full_refresh::text AS full_refresh, \
                 s.diff_refresh::text AS diff_refresh, s.last_snapshot, \
                 s.needs_full::text AS needs_full, s.is_populated::text AS is_populated, \
                 s.refresh_mode, pg_catalog.format('%I.%I', s.pgt_schema, s.pgt_name) AS storage, \
                 (pg_catalog.current_setting('transaction_isolation') <> 'read committed')::text \
                   AS single_snapshot, \
                 c.relowner::text AS owner, \
                 CASE WHEN e.relowner = c.relowner THEN e.oid::pg_catalog.regclass::text END \
                   AS exec_view, s.planner_version::text AS planner_version \
                 FROM pgtrickle.pgt_stream_tables s \
                 LEFT JOIN pg_catalog.pg_class c ON c.oid = s.pgt_relid \
                 LEFT JOIN pg_catalog.pg_class e ON e.oid = s.exec_relid AND e.relkind = 'm' \
                 WHERE s.pgt_id = {pgt_id} FOR UPDATE OF s"
            ),
        )
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?;
    let get = |i: usize| row.get(i).cloned().flatten();
    Ok(StRow {
        effective_mode: get(0).unwrap_or_default(),
        full_refresh: statements(get(1).as_ref())?.unwrap_or_default(),
        diff_refresh: statements(get(2).as_ref())?,
        last_snapshot: get(3),
        needs_full: flag(get(4).as_ref()),
        is_populated: flag(get(5).as_ref()),
        refresh_mode: get(6).unwrap_or_default(),
        storage: get(7).unwrap_or_default(),
        single_snapshot: flag(get(8).as_ref()),
        owner: get(9)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| EngineError::api("42P01", "the stream table's storage is gone"))?,
        exec_view: get(10),
        age: PlanAge::of(get(11).and_then(|v| v.parse().ok())),
    })
}

/// AUTO at run time: true when the changes waiting in a source's buffer are a larger share of
/// its rows (PostgreSQL's estimate) than the configured threshold, so recomputing is cheaper.
async fn mostly_changed<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    oid: u32,
    last: &str,
) -> EngineResult<bool> {
    let rows: f64 = auth
        .value(
            sql,
            &format!(
                "SELECT reltuples::text FROM pg_catalog.pg_class \
                 WHERE oid = coalesce(pg_catalog.to_regclass({})::oid, {oid})",
                quote_literal(&pgtrickle_cdc::poll::mirror::mirror_table(oid))
            ),
        )
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    if rows <= 0.0 {
        // Never analysed: no estimate to compare with.
        return Ok(false);
    }
    let changes: f64 = auth
        .value(
            sql,
            &format!(
                "SELECT n::text FROM ({}) AS q(n)",
                pgtrickle_cdc::pending_change_count_sql(oid, last)
            ),
        )
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(changes > rows * settings.auto_full_threshold())
}

/// True when a TRUNCATE of source `oid` is pending since snapshot `last`.
async fn truncated_since<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    oid: u32,
    last: &str,
) -> EngineResult<bool> {
    Ok(flag(
        auth.value(
            sql,
            &format!(
                "SELECT t::text FROM ({}) AS q(t)",
                pgtrickle_cdc::truncated_since_sql(oid, last)
            ),
        )
        .await?
        .as_ref(),
    ))
}

/// Refreshes stream table `pgt_id` in the caller's transaction (FULL when `force_full`): the
/// engine role (`auth`) reads the catalog row and the deltas, the statements run as the owner in
/// its execution view ([`sandbox`]), and the engine role records the outcome.
/// `distrust_snapshot` marks the next refresh FULL whatever this one sees: for a population in
/// a transaction whose snapshot may predate the capture triggers it just installed.
pub async fn refresh<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    settings: &EngineSettings,
    pgt_id: i64,
    force_full: bool,
    distrust_snapshot: bool,
) -> EngineResult<Refreshed> {
    let mut st = load(sql, auth, pgt_id).await?;
    match st.age {
        PlanAge::Current => {}
        PlanAge::Newer(version) => return Err(newer_plan_error(&st.storage, version)),
        PlanAge::Older => {
            replan(sql, auth, pgt_id).await?;
            st = load(sql, auth, pgt_id).await?;
        }
    }
    let view = st.exec_view.clone().ok_or_else(|| {
        EngineError::api(
            "42501",
            format!(
                "stream table {} has no execution view owned by its owner",
                st.storage
            ),
        )
        .with_hint(
            "the owner of the stream table changed, or its view in pgtrickle_exec was dropped: \
             create the stream table again",
        )
    })?;
    let single_snapshot = st.single_snapshot;
    let deps = owner_rights::sources(sql, pgt_id, st.owner).await?;
    // A source the owner reads only in part: its change buffer holds every row and column, so
    // only a recomputation (where PostgreSQL applies the limits) is right.
    let partly_readable = owner_rights::check_sources(&deps)?;
    let mut full = force_full
        || partly_readable
        || st.effective_mode == "FULL"
        || st.needs_full
        || !st.is_populated
        || !single_snapshot;
    let last = st.last_snapshot.clone().unwrap_or_default();
    let captured: Vec<u32> = deps.iter().filter(|d| d.captured).map(|d| d.oid).collect();
    if !full {
        match &st.last_snapshot {
            None => full = true,
            Some(last) => {
                for oid in &captured {
                    if truncated_since(sql, auth, *oid, last).await?
                        || (st.refresh_mode == "AUTO"
                            && mostly_changed(sql, auth, settings, *oid, last).await?)
                    {
                        full = true;
                        break;
                    }
                }
            }
        }
    }
    let (statements, deltas) = if full {
        (st.full_refresh.clone(), delta::DeltaForm::Tables)
    } else {
        // Stored with holes for the deltas: materialise fills them.
        let stored = st.diff_refresh.as_deref().unwrap_or_default();
        delta::materialise(sql, auth, &captured, &last, st.owner, stored).await?
    };
    let rows_changed = sandbox::run_as_owner(sql, &view, &statements).await?;
    if !st.is_populated {
        // The first differential refreshes probe the storage by its row hashes: without
        // statistics (autovacuum analyses it only later) the planner expects many rows per
        // hash and uses bitmap scans, several times slower than plain index scans. (ANALYZE
        // runs as the table's owner in a security-restricted operation.)
        sql.run(&format!("ANALYZE {}", st.storage)).await?;
    }
    let action = if full { "FULL" } else { "DIFFERENTIAL" };
    auth.exec(
        sql,
        &format!(
            "{}UPDATE pgtrickle.pgt_stream_tables SET last_snapshot = pg_catalog.pg_current_snapshot()::text, \
             last_refresh_at = pg_catalog.now(), is_populated = true, needs_full = {}, \
             consecutive_errors = 0, last_error = NULL, next_attempt_at = NULL \
             WHERE pgt_id = {pgt_id}; \
             INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, action, status, rows_changed) \
             VALUES ({pgt_id}, pg_catalog.now(), '{action}', 'SUCCESS', {rows_changed})",
            delta::drop_views_sql(deltas),
            !single_snapshot || distrust_snapshot
        ),
    )
    .await?;
    Ok(Refreshed {
        action,
        rows_changed,
        sources: captured,
    })
}
