//! The monitor's reads of one database's catalog (`pgtrickle.pgt_stream_tables`,
//! `pgt_refresh_history`, `pgt_poll_status()`, `pgt_dependencies`) and of the change buffers'
//! statistics, on a connection of the proxy's own. Read-only, one statement each.

use tokio_postgres::Client;

use crate::engine::sql::runner::{SqlError, SqlRunnerExt};
use crate::metrics::catalog::{BufferInfo, SourceInfo, StreamTableInfo};

type Row = Vec<Option<String>>;

fn text(row: &Row, i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

fn float(row: &Row, i: usize) -> Option<f64> {
    text(row, i).and_then(|t| t.parse().ok())
}

fn int(row: &Row, i: usize) -> Option<i64> {
    text(row, i).and_then(|t| t.parse().ok())
}

/// What the database has: its clock (Unix time), whether the catalog exists, whether the poll
/// status function exists.
pub struct Presence {
    /// `clock_timestamp()` as Unix time.
    pub now: f64,
    /// `pgtrickle.pgt_stream_tables` exists.
    pub catalog: bool,
    /// `pgtrickle.pgt_poll_status()` exists.
    pub poll_status: bool,
}

/// Reads [`Presence`].
pub async fn presence(c: &mut Client) -> Result<Presence, SqlError> {
    let rows = c
        .rows(
            "SELECT extract(epoch FROM pg_catalog.clock_timestamp())::float8, \
             pg_catalog.to_regclass('pgtrickle.pgt_stream_tables') IS NOT NULL, \
             pg_catalog.to_regprocedure('pgtrickle.pgt_poll_status()') IS NOT NULL",
        )
        .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    Ok(Presence {
        now: float(&row, 0).unwrap_or_default(),
        catalog: text(&row, 1).as_deref() == Some("t"),
        poll_status: text(&row, 2).as_deref() == Some("t"),
    })
}

/// Every stream table with its last successful refresh.
pub async fn stream_tables(
    c: &mut Client,
    database: &str,
) -> Result<Vec<StreamTableInfo>, SqlError> {
    let rows = c
        .rows(
            "SELECT s.pgt_schema || '.' || s.pgt_name, s.status, s.refresh_mode, \
             s.effective_mode, s.schedule, extract(epoch FROM s.last_refresh_at)::float8, \
             s.consecutive_errors, s.last_error, s.is_populated, h.action, \
             extract(epoch FROM h.finished_at - h.started_at)::float8, h.rows_changed \
             FROM pgtrickle.pgt_stream_tables s \
             LEFT JOIN LATERAL (SELECT action, started_at, finished_at, rows_changed \
                 FROM pgtrickle.pgt_refresh_history r \
                 WHERE r.pgt_id = s.pgt_id AND r.status = 'SUCCESS' \
                 ORDER BY r.refresh_id DESC LIMIT 1) h ON true \
             ORDER BY 1",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StreamTableInfo {
            database: database.to_string(),
            name: text(r, 0).unwrap_or_default(),
            status: text(r, 1).unwrap_or_default(),
            refresh_mode: text(r, 2).unwrap_or_default(),
            effective_mode: text(r, 3).unwrap_or_default(),
            schedule: text(r, 4).unwrap_or_default(),
            last_refresh_at: float(r, 5),
            consecutive_errors: int(r, 6).unwrap_or_default(),
            last_error: text(r, 7),
            populated: text(r, 8).as_deref() == Some("t"),
            last_action: text(r, 9),
            last_duration_seconds: float(r, 10),
            last_rows: int(r, 11),
        })
        .collect())
}

/// One row of `pgt_refresh_history`.
pub struct HistoryRow {
    /// `refresh_id`.
    pub id: i64,
    /// `schema.name`.
    pub stream_table: String,
    /// FULL or DIFFERENTIAL for a success; None for a failure.
    pub mode: Option<String>,
    /// Unix time of its end.
    pub finished_at: f64,
    /// Its duration.
    pub seconds: f64,
}

/// History rows after `after` (refresh_id) that ended in the last hour, oldest first.
pub async fn history_since(c: &mut Client, after: i64) -> Result<Vec<HistoryRow>, SqlError> {
    let rows = c
        .rows(&format!(
            "SELECT h.refresh_id, s.pgt_schema || '.' || s.pgt_name, h.action, h.status, \
             extract(epoch FROM h.finished_at)::float8, \
             extract(epoch FROM h.finished_at - h.started_at)::float8 \
             FROM pgtrickle.pgt_refresh_history h \
             JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) \
             WHERE h.refresh_id > {after} \
               AND h.finished_at > pg_catalog.now() - interval '1 hour' \
             ORDER BY h.refresh_id LIMIT 10000"
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| HistoryRow {
            id: int(r, 0).unwrap_or_default(),
            stream_table: text(r, 1).unwrap_or_default(),
            mode: (text(r, 3).as_deref() == Some("SUCCESS"))
                .then(|| text(r, 2))
                .flatten(),
            finished_at: float(r, 4).unwrap_or_default(),
            seconds: float(r, 5).unwrap_or_default().max(0.0),
        })
        .collect())
}

/// The highest refresh_id, to start after when the history of the last hour is too long.
pub async fn last_history_id(c: &mut Client) -> Result<i64, SqlError> {
    let rows = c
        .rows("SELECT coalesce(max(refresh_id), 0) FROM pgtrickle.pgt_refresh_history")
        .await?;
    Ok(rows.first().and_then(|r| int(r, 0)).unwrap_or_default())
}

/// The polled foreign sources.
pub async fn sources(c: &mut Client, database: &str) -> Result<Vec<SourceInfo>, SqlError> {
    let rows = c
        .rows(
            "SELECT source, extract(epoch FROM last_poll_at)::float8, duration_ms / 1000.0, \
             rows_scanned, rows_changed, consecutive_errors, last_error \
             FROM pgtrickle.pgt_poll_status() ORDER BY 1",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SourceInfo {
            database: database.to_string(),
            source: text(r, 0).unwrap_or_default(),
            last_poll_at: float(r, 1),
            duration_seconds: float(r, 2),
            rows_scanned: int(r, 3),
            rows_changed: int(r, 4),
            consecutive_errors: int(r, 5).unwrap_or_default(),
            last_error: text(r, 6),
        })
        .collect())
}

/// Rows in each source's change buffer, from the statistics (no scan, no privilege needed).
pub async fn buffers(c: &mut Client, database: &str) -> Result<Vec<BufferInfo>, SqlError> {
    let rows = c
        .rows(
            "SELECT DISTINCT d.source_schema || '.' || d.source_name, st.n_live_tup \
             FROM pgtrickle.pgt_dependencies d \
             JOIN pg_catalog.pg_stat_all_tables st ON st.schemaname = 'pgtrickle_changes' \
              AND st.relname = 'changes_' || d.source_relid \
             ORDER BY 1",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| BufferInfo {
            database: database.to_string(),
            source: text(r, 0).unwrap_or_default(),
            rows: int(r, 1).unwrap_or_default(),
        })
        .collect())
}
