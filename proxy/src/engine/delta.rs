//! How a DIFFERENTIAL refresh reads its sources' deltas. The planner's statements name each
//! delta as the relation `pg_temp.__pgt_delta_<oid>` ([`delta_table`]) and use only columns they
//! name. The delta of a stream table's only source, read once, is put in place of that name as a
//! subquery over the change buffer: no temporary table, no catalog writes, no second copy of the
//! rows. Otherwise (joins read a source's delta in several terms, and join plans need the
//! deltas' real sizes, which the planner cannot estimate through the buffers' visibility
//! conditions) each delta is materialised once into that temporary table, analysed when small.

use super::describe::delta_table;
use super::error::EngineResult;
use super::sql::SqlRunner;

/// Deltas with fewer rows than this are analysed once materialised.
const ANALYZE_DELTAS_BELOW: i64 = 5_000;

/// Makes the deltas of sources `oids` since snapshot `last` readable by `statements`.
pub async fn prepare<R: SqlRunner>(
    sql: &mut R,
    statements: &mut [String],
    oids: &[u32],
    last: &str,
) -> EngineResult<()> {
    if let [oid] = oids {
        let table = delta_table(*oid);
        let uses: usize = statements
            .iter()
            .map(|s| occurrences(s, &table).len())
            .sum();
        if uses == 1 {
            let inline = format!(
                "{} AS __pgt_delta_{oid}",
                pgtrickle_cdc::delta_rows_sql(*oid, last)
            );
            for s in statements.iter_mut() {
                *s = replace_name(s, &table, &inline);
            }
            return Ok(());
        }
    }
    for oid in oids {
        materialise(sql, *oid, last).await?;
    }
    Ok(())
}

async fn materialise<R: SqlRunner>(sql: &mut R, oid: u32, last: &str) -> EngineResult<()> {
    let table = delta_table(oid);
    let made = sql
        .run(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TEMP TABLE {} ON COMMIT DROP AS {}",
            table.trim_start_matches("pg_temp."),
            pgtrickle_cdc::delta_rows_sql(oid, last)
        ))
        .await?;
    // ANALYZE a small delta: with its real row count (often zero) the planner joins from it
    // into the sources' indexes instead of scanning them (a table never analysed counts as at
    // least 10 pages). A larger one is estimated well enough from its size, and analysing it
    // would cost more than it saves.
    let created = made.last().map(|r| created_rows(&r.tag)).unwrap_or(0);
    if created < ANALYZE_DELTAS_BELOW {
        sql.run(&format!("ANALYZE {table}")).await?;
    }
    Ok(())
}

/// Rows written by a CREATE TABLE AS: "SELECT n" on a client session, "ROWS n" on the
/// scheduler's connection.
fn created_rows(tag: &str) -> i64 {
    match tag.split_whitespace().next() {
        Some("SELECT" | "ROWS") => tag
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Byte offsets where `name` occurs in `text` as a whole name (not as the start of a longer
/// one: `__pgt_delta_12` inside `__pgt_delta_123`).
fn occurrences(text: &str, name: &str) -> Vec<usize> {
    text.match_indices(name)
        .map(|(at, _)| at)
        .filter(|&at| {
            !text[at + name.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .collect()
}

fn replace_name(text: &str, name: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    let mut from = 0;
    for at in occurrences(text, name) {
        out.push_str(&text[from..at]);
        out.push_str(with);
        from = at + name.len();
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_names_only() {
        let text = "FROM pg_temp.__pgt_delta_12) x JOIN pg_temp.__pgt_delta_123 y";
        assert_eq!(occurrences(text, "pg_temp.__pgt_delta_12"), vec![5]);
        assert_eq!(
            replace_name(text, "pg_temp.__pgt_delta_12", "(SELECT 1) AS d"),
            "FROM (SELECT 1) AS d) x JOIN pg_temp.__pgt_delta_123 y"
        );
        assert_eq!(occurrences(text, "pg_temp.__pgt_delta_123"), vec![36]);
    }

    #[test]
    fn created_rows_from_tags() {
        assert_eq!(created_rows("SELECT 20000"), 20_000);
        assert_eq!(created_rows("ROWS 7"), 7);
        assert_eq!(created_rows("DROP TABLE"), 0);
    }
}
