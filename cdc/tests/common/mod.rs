//! Shared helpers of the cdc tests: connections to a throwaway cluster, describing a source the
//! way the engine does, installing capture, reading a buffer.

#![allow(dead_code)]

use pgtrickle_cdc::SourceTable;
use pgtrickle_test_support::Cluster;
use tokio_postgres::{Client, NoTls};

/// A connection as `user` to database `postgres`.
pub async fn connect(cluster: &Cluster, user: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&cluster.conninfo(user, "postgres"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Describes relation `name` (a regclass text) with `describe_source_sql`, under
/// `search_path = pg_catalog` as the crate recommends.
pub async fn describe(client: &Client, name: &str) -> SourceTable {
    let oid: u32 = client
        .query_one("SELECT $1::text::regclass::oid", &[&name])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute("BEGIN; SET LOCAL search_path = pg_catalog")
        .await
        .unwrap();
    let rows = client
        .query(&pgtrickle_cdc::describe_source_sql(oid), &[])
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    assert!(!rows.is_empty(), "no relation {name}");
    let schema: String = rows[0].get("schema");
    let table: String = rows[0].get("name");
    let columns = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>("column_name"),
                r.get::<_, String>("column_type"),
            )
        })
        .collect();
    SourceTable::new(oid, schema, table, columns).unwrap()
}

/// Describes and installs capture on `name`, in one transaction; returns the description.
pub async fn install(client: &Client, name: &str) -> SourceTable {
    let source = describe(client, name).await;
    client
        .batch_execute(&format!(
            "BEGIN; {} COMMIT;",
            pgtrickle_cdc::install_capture_sql(&source)
        ))
        .await
        .expect("install capture");
    source
}

/// The buffer's rows as text: every source column rendered with `::text` (NULL as "∅") and the
/// weight, sorted; TRUNCATE markers as "TRUNCATE".
pub async fn buffer_rows(client: &Client, source: &SourceTable) -> Vec<String> {
    let cols = source
        .columns
        .iter()
        .map(|(c, _)| format!("coalesce({}::text, '∅')", pgtrickle_cdc::quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let sql = format!(
        "SELECT CASE WHEN __pgt_truncate THEN 'TRUNCATE' ELSE {cols} || ' ' || __pgt_weight END \
         FROM {} ORDER BY 1",
        pgtrickle_cdc::buffer_table(source.oid)
    );
    let mut rows: Vec<String> = client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

/// `expected` sorted, as owned strings.
pub fn sorted(expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Empties the buffer of `source` (as the superuser), between steps of a test.
pub async fn clear(client: &Client, source: &SourceTable) {
    client
        .batch_execute(&format!(
            "DELETE FROM {}",
            pgtrickle_cdc::buffer_table(source.oid)
        ))
        .await
        .unwrap();
}

/// Single text value of a query.
pub async fn text(client: &Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Single boolean value of a query.
pub async fn boolean(client: &Client, sql: &str) -> bool {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The delta of `source` since `last` with the source's columns and `__pgt_weight` only, one row
/// per change, built on `delta_rows_sql` (what the engine reads).
pub fn delta_relation(source: &SourceTable, last: &str) -> String {
    format!(
        "(SELECT {}, __pgt_weight FROM {} d)",
        columns(source),
        pgtrickle_cdc::delta_rows_sql(source.oid, last)
    )
}

/// Like [`delta_relation`], but one row per distinct row value with the sum of its weights, rows
/// whose weights cancel out left out (NULLs group together).
pub fn consolidated_delta_relation(source: &SourceTable, last: &str) -> String {
    let cols = columns(source);
    format!(
        "(SELECT {cols}, sum(__pgt_weight)::integer AS __pgt_weight FROM {} d \
         GROUP BY {cols} HAVING sum(__pgt_weight) <> 0)",
        pgtrickle_cdc::delta_rows_sql(source.oid, last)
    )
}

/// The quoted column names of `source`, comma-separated.
fn columns(source: &SourceTable) -> String {
    source
        .columns
        .iter()
        .map(|(c, _)| pgtrickle_cdc::quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cleanup of source `oid` as the engine runs it (`trim_committed`): `BEGIN ISOLATION LEVEL
/// READ COMMITTED`, `cleanup_statements_sql` with the consumers' snapshots read by
/// `snapshots_query`, `COMMIT`.
pub fn cleanup_sql(oid: u32, snapshots_query: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; {} COMMIT;",
        pgtrickle_cdc::cleanup_statements_sql(oid, snapshots_query)
    )
}

/// A query returning `snapshots` as one text column, one row each (no row when empty).
pub fn snapshots_query(snapshots: &[String]) -> String {
    if snapshots.is_empty() {
        return "SELECT NULL::text WHERE false".to_string();
    }
    let rows = snapshots
        .iter()
        .map(|s| format!("({})", pgtrickle_cdc::quote_literal(s)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT s FROM (VALUES {rows}) AS v(s)")
}

/// A catalog query (independent of the crate) returning one row describing the capture
/// installed on source `oid`: `buffer_exists`, `triggers` (capture triggers on the source; 4 when
/// complete), `triggers_always` (all `ENABLE ALWAYS`), `columns_match` (the buffer's columns,
/// `__pgt_*` left out, have the source's names, types, collations and order; NULL when one is
/// missing) and `uncaptured_partitions` (partitions at any level lacking some capture trigger).
pub fn capture_status_sql(oid: u32) -> String {
    let buffer = format!(
        "to_regclass({})",
        pgtrickle_cdc::quote_literal(&pgtrickle_cdc::buffer_table(oid))
    );
    let capture_trigger = format!("tgname LIKE '\\_\\_pgt\\_capture\\_{oid}\\_%'");
    let signature = |rel: &str| {
        format!(
            "(SELECT array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) \
             || ' ' || a.attcollation::text ORDER BY a.attnum) FROM pg_attribute a \
             WHERE a.attrelid = {rel} AND a.attnum > 0 AND NOT a.attisdropped \
             AND left(a.attname::text, 6) <> '__pgt_')"
        )
    };
    format!(
        "SELECT {buffer} IS NOT NULL AS buffer_exists, \
         (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = {oid} AND {capture_trigger}) \
         AS triggers, \
         (SELECT bool_and(tgenabled = 'A') FROM pg_trigger WHERE tgrelid = {oid} \
         AND {capture_trigger}) AS triggers_always, \
         CASE WHEN {buffer} IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = {oid}) \
         THEN NULL ELSE {} IS NOT DISTINCT FROM {} END AS columns_match, \
         (SELECT count(*)::int FROM pg_partition_tree({oid}::oid::regclass) p \
         WHERE p.relid <> {oid}::oid::regclass AND (SELECT count(*) FROM pg_trigger t \
         WHERE t.tgrelid = p.relid AND t.{capture_trigger}) < 4) AS uncaptured_partitions",
        signature(&oid.to_string()),
        signature(&format!("{buffer}::oid")),
    )
}
