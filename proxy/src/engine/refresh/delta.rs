//! How a DIFFERENTIAL refresh reads its sources' deltas. The planner's statements are stored
//! with typed holes for the deltas ([`RefreshStatement`]), each carrying its source's OID, and
//! say how many times they read each delta ([`RefreshStatement::delta_reads`]). The engine role,
//! which alone may read the change buffers, makes each delta the statements read readable as
//! `pg_temp.__pgt_delta_<oid>` ([`delta_table`]), and the holes are filled with that name. A
//! delta is a temporary table (dropped at commit) filled with the source's changes since the
//! last refresh, analysed when small (so that join plans start from its real size, which the
//! planner cannot estimate through the buffers' visibility conditions), and the owner is
//! granted SELECT on it: the statements run as the owner (see
//! [`crate::engine::refresh::sandbox`]), which may read the deltas of its own sources but not
//! the buffers, where other stream tables' sources' rows are.
//!
//! When the statements read one delta only, and once (an aggregate over one table), it is not
//! copied: it becomes a temporary *view* of the engine role over the buffer, restricted to the
//! delta's window. PostgreSQL checks a view's relations with the view owner's rights, so the
//! owner reads exactly those rows through it without a second copy of them; the view calls only
//! pg_catalog functions, and the owner cannot change it (it is the engine role's). The caller
//! drops it after the refresh ([`drop_views_sql`]).

use std::collections::BTreeMap;

use pgtrickle_planner::RefreshStatement;

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

/// The relation holding source `oid`'s delta during a refresh.
pub fn delta_table(oid: u32) -> String {
    format!("pg_temp.__pgt_delta_{oid}")
}

/// Deltas with fewer rows than this are analysed once materialised.
const ANALYZE_DELTAS_BELOW: i64 = 5_000;

/// How the deltas of one refresh are made readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaForm {
    /// Temporary tables (dropped at commit).
    Tables,
    /// One temporary view (dropped by the caller).
    View(u32),
}

/// Makes the deltas that `stored` (DIFFERENTIAL statements in their stored form) read
/// readable, each holding the changes of its source since snapshot `last`, for the role with
/// OID `owner`: a view when the statements read one delta once, tables otherwise. Returns the
/// statements to run, their holes filled. `captured`: the stream table's sources with a change
/// buffer; the statements may read no other delta.
pub async fn materialise<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    captured: &[u32],
    last: &str,
    owner: u32,
    stored: &[String],
) -> EngineResult<(Vec<String>, DeltaForm)> {
    let statements = stored
        .iter()
        .map(|s| RefreshStatement::from_stored(s))
        .collect::<Result<Vec<_>, _>>()?;
    let reads = delta_reads(&statements);
    if let Some(oid) = reads.keys().find(|oid| !captured.contains(oid)) {
        return Err(EngineError::api(
            "XX000",
            format!(
                "the refresh statements read the delta of relation {oid}, which is no captured \
                 source of this stream table"
            ),
        ));
    }
    let rendered = statements.iter().map(|s| s.render(delta_table)).collect();
    let grant = |table: &str| {
        format!(
            "DO $pgt_grant$ BEGIN EXECUTE pg_catalog.format('GRANT SELECT ON {table} TO %I', \
             (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = {owner}::pg_catalog.oid)); \
             END $pgt_grant$"
        )
    };
    let counted: Vec<(u32, usize)> = reads.iter().map(|(&oid, &n)| (oid, n)).collect();
    if let [(oid, 1)] = counted[..] {
        let table = delta_table(oid);
        auth.exec(
            sql,
            &format!(
                "DROP VIEW IF EXISTS {table}; CREATE TEMP VIEW {short} AS {rows}; {}",
                grant(&table),
                short = table.trim_start_matches("pg_temp."),
                rows = pgtrickle_cdc::delta_rows_sql(oid, last),
            ),
        )
        .await?;
        return Ok((rendered, DeltaForm::View(oid)));
    }
    let mut batch = String::new();
    for &oid in reads.keys() {
        let table = delta_table(oid);
        // One DO block per delta: the row count decides the ANALYZE without a second scan.
        batch.push_str(&format!(
            "DROP TABLE IF EXISTS {table}; \
             DO $pgt_delta$ DECLARE n bigint; BEGIN \
             CREATE TEMP TABLE {short} ON COMMIT DROP AS {rows}; \
             GET DIAGNOSTICS n = ROW_COUNT; \
             EXECUTE pg_catalog.format('GRANT SELECT ON {table} TO %I', \
                 (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = {owner}::pg_catalog.oid)); \
             IF n < {ANALYZE_DELTAS_BELOW} THEN ANALYZE {table}; END IF; \
             END $pgt_delta$; ",
            short = table.trim_start_matches("pg_temp."),
            rows = pgtrickle_cdc::delta_rows_sql(oid, last),
        ));
    }
    if !batch.is_empty() {
        auth.exec(sql, &batch).await?;
    }
    Ok((rendered, DeltaForm::Tables))
}

/// How many times `statements` read each source's delta, by OID.
fn delta_reads(statements: &[RefreshStatement]) -> BTreeMap<u32, usize> {
    let mut reads = BTreeMap::new();
    for (oid, n) in statements.iter().flat_map(RefreshStatement::delta_reads) {
        *reads.entry(oid).or_insert(0) += n;
    }
    reads
}

/// SQL dropping the view of a [`DeltaForm::View`] (empty for tables, dropped at commit): for
/// the engine role, after the refresh's statements ran.
pub fn drop_views_sql(form: DeltaForm) -> String {
    match form {
        DeltaForm::Tables => String::new(),
        DeltaForm::View(oid) => format!("DROP VIEW IF EXISTS {}; ", delta_table(oid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_add_up_over_statements() {
        let stored = [
            "SET LOCAL jit = off",
            "SELECT * FROM {delta 12} a JOIN {delta 123} b ON true WHERE a.s = '{{delta 1}}'",
            "SELECT * FROM {delta 12}",
        ];
        let statements: Vec<RefreshStatement> = stored
            .iter()
            .map(|s| RefreshStatement::from_stored(s).unwrap())
            .collect();
        assert_eq!(
            delta_reads(&statements),
            BTreeMap::from([(12, 2), (123, 1)])
        );
        assert_eq!(
            statements[1].render(delta_table),
            "SELECT * FROM pg_temp.__pgt_delta_12 a JOIN pg_temp.__pgt_delta_123 b ON true \
             WHERE a.s = '{delta 1}'"
        );
        assert!(delta_reads(&statements[..1]).is_empty());
    }
}
