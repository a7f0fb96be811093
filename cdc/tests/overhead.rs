//! Write overhead of capture, measured on a throwaway cluster. Ignored by default (it takes a
//! while); run with `cargo test -p pgtrickle-cdc --test overhead -- --ignored --nocapture`.

mod common;

use common::*;
use pgtrickle_test_support::Cluster;
use std::time::Instant;

async fn timed(db: &tokio_postgres::Client, sql: &str) -> f64 {
    let start = Instant::now();
    db.batch_execute(sql).await.unwrap();
    start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn write_overhead_of_capture() {
    let cluster = Cluster::start();
    let db = connect(&cluster, "postgres").await;
    let rows: i64 = std::env::var("CDC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let singles: i64 = rows / 10;
    db.batch_execute(
        "CREATE TABLE plain (id int, a text, b float8); CREATE TABLE captured (id int, a text, b float8)",
    )
    .await
    .unwrap();
    let captured = install(&db, "captured").await;
    let bulk = |t: &str| {
        format!("INSERT INTO {t} SELECT g, 'row ' || g, g * 0.5 FROM generate_series(1, {rows}) g")
    };
    let single = |t: &str| {
        format!(
            "DO $$BEGIN FOR i IN 1..{singles} LOOP INSERT INTO {t} VALUES (i, 'x', 1); END LOOP; END$$"
        )
    };
    let update = |t: &str| format!("UPDATE {t} SET b = b + 1 WHERE id % 10 = 0");
    for (what, p, c) in [
        ("bulk INSERT ... SELECT", bulk("plain"), bulk("captured")),
        (
            "single-row INSERTs (one DO block)",
            single("plain"),
            single("captured"),
        ),
        ("UPDATE 10%", update("plain"), update("captured")),
    ] {
        let tp = timed(&db, &p).await;
        let tc = timed(&db, &c).await;
        eprintln!(
            "{what}: plain {tp:.3}s, captured {tc:.3}s, ratio {:.2}",
            tc / tp
        );
    }
    let n: i64 = db
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                pgtrickle_cdc::buffer_table(captured.oid)
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("buffer rows: {n}");
}
