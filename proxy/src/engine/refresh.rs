//! Refreshing one stream table inside the caller's transaction: FULL (recompute) or
//! DIFFERENTIAL (consume exactly the changes committed since the last refresh's snapshot and
//! apply them), then record the new snapshot and the history row. The caller trims the change
//! buffers after commit.
//!
//! Exactly once: the delta of a source is the set of its buffered changes visible in this
//! transaction's snapshot but not in the snapshot of the previous refresh. A DIFFERENTIAL
//! refresh therefore needs one snapshot for all its statements (REPEATABLE READ); in a READ
//! COMMITTED transaction block the engine refreshes FULL and marks the next refresh FULL too.

use super::capture;
use super::delta;
use super::error::{EngineError, EngineResult};
use super::owner_rights;
use super::sql::{quote_literal, SqlRunner, SqlRunnerExt};

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// `FULL` or `DIFFERENTIAL`.
    pub action: &'static str,
    /// Rows inserted, updated or deleted in the storage table.
    pub rows_changed: i64,
    /// The captured sources, whose buffers the caller trims once this transaction committed
    /// ([`super::capture::trim_committed`]; trimming inside the refresh would make concurrent
    /// refreshes of stream tables sharing a source fail with serialization errors).
    pub sources: Vec<u32>,
}

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
    owner: String,
    /// `current_user` and the `role` setting of the caller.
    caller: (String, String),
}

/// Parses a PostgreSQL text[] literal as the simple query protocol returns it.
pub fn parse_text_array(s: &str) -> Vec<String> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            item.push(n)
                        }
                    }
                    '"' => break,
                    c => item.push(c),
                }
            }
            // Skip to the separator.
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
                item.push(c);
            }
        }
        out.push(item);
    }
    out
}

/// Encodes statements as a text[] literal.
pub fn text_array_literal(items: &[String]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    quote_literal(&format!("{{{}}}", parts.join(",")))
}

async fn load<R: SqlRunner>(sql: &mut R, pgt_id: i64) -> EngineResult<StRow> {
    let row = sql
        .rows(&format!(
            "SELECT effective_mode, full_refresh, diff_refresh, last_snapshot, needs_full, \
             is_populated, refresh_mode, format('%I.%I', pgt_schema, pgt_name), \
             current_setting('transaction_isolation') <> 'read committed', owner, \
             current_user::text, current_setting('role') \
             FROM pgtrickle.pgt_stream_tables \
             WHERE pgt_id = {pgt_id} FOR UPDATE"
        ))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| EngineError::api("42P01", "stream table was dropped"))?;
    let get = |i: usize| row.get(i).cloned().flatten();
    Ok(StRow {
        refresh_mode: get(6).unwrap_or_default(),
        effective_mode: get(0).unwrap_or_default(),
        full_refresh: get(1).map(|s| parse_text_array(&s)).unwrap_or_default(),
        diff_refresh: get(2).map(|s| parse_text_array(&s)),
        last_snapshot: get(3),
        needs_full: get(4).as_deref() == Some("t"),
        is_populated: get(5).as_deref() == Some("t"),
        storage: get(7).unwrap_or_default(),
        single_snapshot: get(8).as_deref() == Some("t"),
        owner: get(9).unwrap_or_default(),
        caller: (get(10).unwrap_or_default(), get(11).unwrap_or_default()),
    })
}

fn rows_of(tag: &str) -> i64 {
    match tag.split_whitespace().next() {
        // "ROWS n" is what the scheduler's own connection reports for any statement.
        Some("INSERT" | "UPDATE" | "DELETE" | "MERGE" | "ROWS") => tag
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// AUTO at run time: true when the changes waiting in a source's buffer are a larger share of
/// its rows (PostgreSQL's estimate) than the configured threshold, so recomputing is cheaper.
async fn mostly_changed<R: SqlRunner>(sql: &mut R, oid: u32, last: &str) -> EngineResult<bool> {
    let rows: f64 = sql
        .value(&format!(
            "SELECT reltuples FROM pg_class WHERE oid = coalesce(to_regclass({})::oid, {oid})",
            quote_literal(&pgtrickle_cdc::poll::mirror::mirror_table(oid))
        ))
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    if rows <= 0.0 {
        // Never analysed: no estimate to compare with.
        return Ok(false);
    }
    let changes: f64 = sql
        .value(&pgtrickle_cdc::pending_change_count_sql(oid, last))
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(changes > rows * super::settings::auto_full_threshold())
}

/// Refreshes stream table `pgt_id` in the caller's transaction (FULL when `force_full`), as its
/// owner (see [`owner_rights`]). `distrust_snapshot` marks the next refresh FULL whatever this
/// one sees: for a population in a transaction whose snapshot may predate the capture triggers
/// it just installed.
pub async fn refresh<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
    force_full: bool,
    distrust_snapshot: bool,
) -> EngineResult<Refreshed> {
    let st = load(sql, pgt_id).await?;
    let switched = owner_rights::become_owner(sql, &st.owner, &st.caller).await?;
    let refreshed = refresh_as_owner(sql, pgt_id, st, force_full, distrust_snapshot).await?;
    owner_rights::restore(sql, switched).await?;
    Ok(refreshed)
}

async fn refresh_as_owner<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
    st: StRow,
    force_full: bool,
    distrust_snapshot: bool,
) -> EngineResult<Refreshed> {
    let single_snapshot = st.single_snapshot;
    let deps = capture::sources_of(sql, pgt_id).await?;
    // A source filtered by row-level security: its change buffer holds every row, so only a
    // recomputation (where the policies apply) is right.
    let row_filtered = owner_rights::check_sources(&deps)?;
    let mut full = force_full
        || row_filtered
        || st.effective_mode == "FULL"
        || st.needs_full
        || !st.is_populated
        || !single_snapshot;
    let last = st.last_snapshot.clone().unwrap_or_default();
    if !full {
        match &st.last_snapshot {
            None => full = true,
            Some(last) => {
                for d in deps.iter().filter(|d| d.captured) {
                    if capture::truncated_since(sql, d, last).await?
                        || (st.refresh_mode == "AUTO" && mostly_changed(sql, d.oid, last).await?)
                    {
                        full = true;
                    }
                }
            }
        }
    }
    let mut statements = if full {
        st.full_refresh.clone()
    } else {
        let mut statements = st.diff_refresh.clone().unwrap_or_default();
        let captured: Vec<u32> = deps.iter().filter(|d| d.captured).map(|d| d.oid).collect();
        delta::prepare(sql, &mut statements, &captured, &last).await?;
        statements
    };
    // The storage's read-only trigger lets this transaction's writes through (sent with the
    // first statement: one round trip less).
    if let Some(first) = statements.first_mut() {
        *first = format!("SET LOCAL pgtrickle.refreshing = 'on'; {first}");
    }
    let mut rows_changed = 0;
    for stmt in &statements {
        for result in sql.run(stmt).await? {
            rows_changed += rows_of(&result.tag);
        }
    }
    if !st.is_populated {
        // The first differential refreshes probe the storage by its row hashes: without
        // statistics (autovacuum analyses it only later) the planner expects many rows per
        // hash and uses bitmap scans, several times slower than plain index scans.
        sql.run(&format!("ANALYZE {}", st.storage)).await?;
    }
    let action = if full { "FULL" } else { "DIFFERENTIAL" };
    sql.run(&format!(
        "SET LOCAL pgtrickle.refreshing = 'off'; \
         UPDATE pgtrickle.pgt_stream_tables SET last_snapshot = pg_current_snapshot()::text, \
         last_refresh_at = now(), is_populated = true, needs_full = {}, \
         consecutive_errors = 0, last_error = NULL, next_attempt_at = NULL \
         WHERE pgt_id = {pgt_id}; \
         INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, action, status, rows_changed) \
         VALUES ({pgt_id}, now(), '{action}', 'SUCCESS', {rows_changed})",
        !single_snapshot || distrust_snapshot
    ))
    .await?;
    Ok(Refreshed {
        action,
        rows_changed,
        sources: deps.iter().filter(|d| d.captured).map(|d| d.oid).collect(),
    })
}
