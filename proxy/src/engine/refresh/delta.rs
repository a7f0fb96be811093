//! How a DIFFERENTIAL refresh reads its sources' deltas. The planner's statements name each
//! delta as the relation `pg_temp.__pgt_delta_<oid>` and use only columns they name. The
//! engine role, which alone may read the change buffers, fills each of those temporary tables
//! (dropped at commit) with the source's changes since the last refresh, analyses a small one
//! (so that join plans start from its real size, which the planner cannot estimate through the
//! buffers' visibility conditions), and grants the owner SELECT on it: the statements run as
//! the owner (see [`crate::engine::refresh::sandbox`]), which may read the deltas of its own sources but not
//! the buffers, where other stream tables' sources' rows are.
//!
//! The delta of a stream table's only source, read once by its statements (an aggregate over
//! one table), is not copied: it becomes a temporary *view* of the engine role over the buffer,
//! restricted to the delta's window. PostgreSQL checks a view's relations with the view owner's
//! rights, so the owner reads exactly those rows through it without a second copy of them; the
//! view calls only pg_catalog functions, and the owner cannot change it (it is the engine
//! role's). The caller drops it after the refresh ([`drop_views_sql`]).

use crate::engine::error::EngineResult;
use crate::engine::refresh::describe::delta_table;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

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

/// Makes `pg_temp.__pgt_delta_<oid>` hold, for each of `oids`, the changes since snapshot
/// `last`, readable by the role with OID `owner`: a view when `statements` read the only
/// source's delta once, tables otherwise.
pub async fn materialise<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    oids: &[u32],
    last: &str,
    owner: u32,
    statements: &[String],
) -> EngineResult<DeltaForm> {
    let grant = |table: &str| {
        format!(
            "DO $pgt_grant$ BEGIN EXECUTE pg_catalog.format('GRANT SELECT ON {table} TO %I', \
             (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = {owner}::pg_catalog.oid)); \
             END $pgt_grant$"
        )
    };
    if let [oid] = oids {
        let table = delta_table(*oid);
        let uses: usize = statements.iter().map(|s| occurrences(s, &table)).sum();
        if uses == 1 {
            auth.exec(
                sql,
                &format!(
                    "DROP VIEW IF EXISTS {table}; CREATE TEMP VIEW {short} AS {rows}; {}",
                    grant(&table),
                    short = table.trim_start_matches("pg_temp."),
                    rows = pgtrickle_cdc::delta_rows_sql(*oid, last),
                ),
            )
            .await?;
            return Ok(DeltaForm::View(*oid));
        }
    }
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
    Ok(DeltaForm::Tables)
}

/// SQL dropping the view of a [`DeltaForm::View`] (empty for tables, dropped at commit): for
/// the engine role, after the refresh's statements ran.
pub fn drop_views_sql(form: DeltaForm) -> String {
    match form {
        DeltaForm::Tables => String::new(),
        DeltaForm::View(oid) => format!("DROP VIEW IF EXISTS {}; ", delta_table(oid)),
    }
}

/// How often `name` occurs in `text` as a whole name (not as the start of a longer one:
/// `__pgt_delta_12` inside `__pgt_delta_123`).
fn occurrences(text: &str, name: &str) -> usize {
    text.match_indices(name)
        .filter(|&(at, _)| {
            !text[at + name.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_names_only() {
        let text = "FROM pg_temp.__pgt_delta_12) x JOIN pg_temp.__pgt_delta_123 y";
        assert_eq!(super::occurrences(text, "pg_temp.__pgt_delta_12"), 1);
        assert_eq!(super::occurrences(text, "pg_temp.__pgt_delta_123"), 1);
        assert_eq!(super::occurrences(text, "pg_temp.__pgt_delta_1"), 0);
    }
}
