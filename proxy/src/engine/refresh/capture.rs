//! Glue between the engine and the cdc crate: installing capture on a stream table's sources,
//! filling delta relations, detecting TRUNCATE, trimming buffers, uninstalling capture when the
//! last reader of a source is dropped.

use pgtrickle_cdc::SourceTable;

use crate::engine::catalog::{dependencies, polled_sources, stream_tables};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::refresh::describe::Source;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{swap_search_path, SqlRunner, SqlRunnerExt};

/// How long a capture install waits for the source's writers before it gives up (55P03): the
/// install's lock request would otherwise queue every later writer of the source behind it.
const INSTALL_LOCK_TIMEOUT: &str = "5s";

fn table(
    oid: u32,
    schema: &str,
    name: &str,
    columns: Vec<(String, String)>,
) -> EngineResult<SourceTable> {
    SourceTable::new(oid, schema, name, columns)
        .map_err(|e| EngineError::api("0A000", format!("cannot capture changes: {e}")))
}

/// Describes a captured source from the catalog (stream tables without their `__pgt_*`
/// columns).
async fn source_table<R: SqlRunner>(sql: &mut R, oid: u32) -> EngineResult<SourceTable> {
    // format_type qualifies every type outside pg_catalog under this search_path; the
    // caller's own search_path is restored for the rest of its transaction.
    let saved = swap_search_path(sql, "pg_catalog").await?;
    let rows = sql.rows(&pgtrickle_cdc::describe_source_sql(oid)).await;
    swap_search_path(sql, &saved).await?;
    let rows = rows?;
    let first = rows.first().ok_or_else(|| {
        EngineError::api("42P01", format!("source relation {oid} no longer exists"))
    })?;
    let get = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let (schema, name) = (get(first, 0), get(first, 1));
    // Writes routed through a partition's parent, or addressed to inheritance children, do
    // not fire the source's own statement triggers: such sources would miss changes.
    if get(first, 5) == "t" {
        return Err(EngineError::api(
            "0A000",
            format!("partition {schema}.{name} cannot be a stream table source"),
        )
        .with_hint("use the partitioned table in the defining query"));
    }
    if get(first, 6) == "t" {
        return Err(EngineError::api(
            "0A000",
            format!("table {schema}.{name} has inheritance children and cannot be a stream table source"),
        ));
    }
    let columns = rows
        .iter()
        .map(|r| (get(r, 3), get(r, 4)))
        .filter(|(c, _)| !c.starts_with("__pgt_"))
        .collect();
    table(oid, &schema, &name, columns)
}

/// Installs capture on a table source as the engine role, which then owns the buffer and the
/// capture functions (idempotent; shared by every reader of the source). A buffer or capture
/// function that another role created is refused (42501) by the install itself.
pub async fn install<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    source: &Source,
) -> EngineResult<()> {
    install_oid(sql, auth, source.oid).await
}

/// Installs capture on source `oid` (a table or a stream table) as the engine role.
pub async fn install_oid<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    oid: u32,
) -> EngineResult<()> {
    let t = source_table(sql, oid).await?;
    auth.exec(
        sql,
        &format!(
            "SET LOCAL lock_timeout = '{INSTALL_LOCK_TIMEOUT}'; {}",
            pgtrickle_cdc::install_capture_sql(&t)
        ),
    )
    .await
    .map_err(|e| match e {
        // The proxy's role itself may not put triggers on the source.
        EngineError::Sql(crate::engine::sql::runner::SqlError::Server {
            code, message, ..
        }) if code == "42501" && message.starts_with("permission denied for table") => {
            EngineError::api(
                "42501",
                format!(
                    "pgtrickle-proxy's role may not capture the changes of {}: {message}",
                    t.qualified_name()
                ),
            )
            .with_hint(
                "grant the table's owner role to the proxy's role (see docs/SECURITY.md), or \
                 run the proxy as a superuser",
            )
        }
        other => other,
    })
}

/// Deletes, in a READ COMMITTED transaction of its own, the buffered changes of source `oid`
/// that every reader has consumed. Housekeeping: a failure is logged and left for a later
/// refresh.
pub async fn trim_committed<R: SqlRunner>(sql: &mut R, auth: &Authority, oid: u32) {
    let snapshots = dependencies::reader_snapshots_sql(oid);
    let trimmed = async {
        sql.run("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        auth.exec(sql, &pgtrickle_cdc::cleanup_statements_sql(oid, &snapshots))
            .await?;
        sql.run("COMMIT").await?;
        EngineResult::Ok(())
    }
    .await;
    if let Err(e) = trimmed {
        let _ = sql.run("ROLLBACK").await;
        tracing::debug!(source = oid, "change buffer not trimmed: {e}");
    }
}

/// Removes capture from `oid` when no stream table reads it any more.
pub async fn uninstall_if_unused<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    oid: u32,
) -> EngineResult<()> {
    if !dependencies::is_read(sql, oid).await? {
        // A foreign source's mirror and poll records go too (no-ops for other sources).
        auth.exec(
            sql,
            &format!(
                "{}; {}; {}",
                pgtrickle_cdc::uninstall_capture_sql(oid),
                pgtrickle_cdc::poll::mirror::drop_mirror_sql(oid),
                polled_sources::forget_sql(oid)
            ),
        )
        .await?;
    }
    Ok(())
}

/// True when some captured source of `pgt_id` has changes its last refresh has not seen (read
/// as the engine role, which alone may read the buffers).
pub async fn has_pending_changes<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    pgt_id: i64,
) -> EngineResult<bool> {
    let last = stream_tables::last_snapshot(sql, pgt_id).await?;
    let Some(last) = last else {
        return Ok(true);
    };
    for dep in dependencies::of(sql, pgt_id)
        .await?
        .into_iter()
        .filter(|d| d.captured())
    {
        let pending = auth
            .value(
                sql,
                &format!(
                    "SELECT p::text FROM ({}) AS q(p)",
                    pgtrickle_cdc::pending_changes_sql(dep.oid, &last)
                ),
            )
            .await?;
        if pending.as_deref() == Some("true") {
            return Ok(true);
        }
    }
    Ok(false)
}
