//! How a DIFFERENTIAL refresh reads its sources' deltas. The planner's statements name each
//! delta as the relation `pg_temp.__pgt_delta_<oid>` and use only columns they name. The
//! engine role, which alone may read the change buffers, fills each of those temporary tables
//! (dropped at commit) with the source's changes since the last refresh, analyses a small one
//! (so that join plans start from its real size, which the planner cannot estimate through the
//! buffers' visibility conditions), and grants the owner SELECT on it: the statements run as
//! the owner (see [`super::sandbox`]), which may read the deltas of its own sources but not
//! the buffers, where other stream tables' sources' rows are.

use super::describe::delta_table;
use super::error::EngineResult;
use super::privileged::Authority;
use super::sql::SqlRunner;

/// Deltas with fewer rows than this are analysed once materialised.
const ANALYZE_DELTAS_BELOW: i64 = 5_000;

/// Fills `pg_temp.__pgt_delta_<oid>` for each of `oids` with the changes since snapshot
/// `last`, readable by the role with OID `owner`.
pub async fn materialise<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    oids: &[u32],
    last: &str,
    owner: u32,
) -> EngineResult<()> {
    let mut batch = String::new();
    for oid in oids {
        let table = delta_table(*oid);
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
            rows = pgtrickle_cdc::delta_rows_sql(*oid, last),
        ));
    }
    if !batch.is_empty() {
        auth.exec(sql, &batch).await?;
    }
    Ok(())
}
