//! Where a refresh's statements run: as the stream table's owner, in a context they cannot
//! leave, whoever asked for the refresh (the scheduler on the proxy's own connection, whose role
//! may be a superuser; the owner; a superuser refreshing by hand).
//!
//! Those statements evaluate code the owner controls: functions in the defining query, triggers
//! and defaults on tables it reads, operators of its types. Switching roles (`SET ROLE owner`)
//! is not enough: such code can `RESET ROLE`, `SET SESSION AUTHORIZATION` or leave a deferred
//! trigger that fires at commit as the session's real user. PostgreSQL's own answer is the
//! security-restricted operation of `REFRESH MATERIALIZED VIEW`: the view's query runs as the
//! view's owner, role changes are refused, deferred triggers and holdable cursors cannot be
//! queued, temporary tables cannot be created, and every setting it changes is rolled back when
//! it ends. So each stream table has a materialized view in schema `pgtrickle_exec`, owned by
//! the stream table's owner (under a random name, so nobody can take the name in advance), whose
//! query is `SELECT pgtrickle.__pgt_exec()`: that function (the engine role's, which the owner
//! cannot change) runs the statements passed in the setting `pgtrickle.exec_statements` with
//! `search_path = pg_catalog, pg_temp`. Refreshing the view runs the statements as its owner,
//! and PostgreSQL itself decides who that is: nothing the engine checked beforehand can be
//! swapped under it. The deltas the statements read are temporary tables the engine filled
//! before (see [`crate::engine::refresh::delta`]), granted to the owner.

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::{quote_ident, quote_text_array, SqlRunner, SqlRunnerExt};

/// The schema of the execution views.
pub const EXEC_SCHEMA: &str = "pgtrickle_exec";

/// A new execution view's name (random, so that it cannot be created in advance by others).
pub fn new_exec_name() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("refresh_{hex}")
}

/// `CREATE MATERIALIZED VIEW` of execution view `name` (run as the stream table's owner, who
/// then owns it), returning nothing; its OID is `to_regclass` of [`exec_view`].
pub fn create_exec_view_sql(name: &str) -> String {
    format!(
        "CREATE MATERIALIZED VIEW {} AS SELECT pgtrickle.__pgt_exec() AS rows_changed WITH NO DATA",
        exec_view(name)
    )
}

/// The qualified name of execution view `name`.
pub fn exec_view(name: &str) -> String {
    format!("{}.{}", quote_ident(EXEC_SCHEMA), quote_ident(name))
}

/// Runs `statements` as the owner of execution view `view` (qualified), in one round trip, and
/// returns the rows they inserted, updated or deleted. The storage's read-only trigger lets
/// writes through while `pgtrickle.refreshing` is on. The caller must be the view's owner or a
/// member of it (PostgreSQL checks), and has verified that the view's owner is the stream
/// table's.
pub async fn run_as_owner<R: SqlRunner>(
    sql: &mut R,
    view: &str,
    statements: &[String],
) -> EngineResult<i64> {
    let results = sql
        .run(&format!(
            "SET LOCAL pgtrickle.refreshing = 'on'; SET LOCAL pgtrickle.exec_statements = {}; \
             REFRESH MATERIALIZED VIEW {view}; \
             SET LOCAL pgtrickle.refreshing = 'off'; SET LOCAL pgtrickle.exec_statements = ''; \
             SELECT rows_changed FROM {view}",
            quote_text_array(statements)
        ))
        .await?;
    let rows = results
        .last()
        .and_then(|r| r.rows.first())
        .and_then(|r| r.first().cloned().flatten())
        .ok_or_else(|| EngineError::api("XX000", "the refresh reported no row count"))?;
    rows.parse()
        .map_err(|_| EngineError::api("XX000", format!("unexpected row count {rows:?}")))
}

/// Creates the execution view of a stream table as the current role (its owner) and returns
/// the view's OID.
pub async fn create_exec_view<R: SqlRunner>(sql: &mut R) -> EngineResult<u32> {
    let name = new_exec_name();
    sql.run(&create_exec_view_sql(&name)).await?;
    sql.value(&format!(
        "SELECT pg_catalog.to_regclass({})::oid",
        crate::engine::sql::runner::quote_literal(&exec_view(&name))
    ))
    .await?
    .and_then(|v| v.parse().ok())
    .ok_or_else(|| EngineError::api("XX000", "execution view not created"))
}
