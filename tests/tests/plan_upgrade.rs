//! Stored plans follow the planner: a stream table whose statements an older planner wrote is
//! planned again by a newer proxy (at its scheduler's start, or before its next refresh) and
//! recomputed; one that a newer planner wrote is left alone by an older proxy.

use std::time::Duration;

use pgtrickle_e2e::{
    await_catalog, await_true, connect, proxy_bin, proxy_for, rows_differing, setup,
};

const AGG: &str = "SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g";
const BAG: &str = "SELECT v % 3 AS r FROM t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_plan_is_planned_again_and_a_newer_one_is_left_alone() {
    let (cluster, mut proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id serial PRIMARY KEY, g int, v int); \
             INSERT INTO t (g, v) SELECT i % 5, i FROM generate_series(1, 200) i; \
             SELECT pgtrickle.create_stream_table('agg', '{AGG}', '1h', 'DIFFERENTIAL'); \
             SELECT pgtrickle.create_stream_table('bag', '{BAG}', '1h', 'DIFFERENTIAL')"
        ))
        .await
        .unwrap();
    let plan_of = |st: &str| {
        format!(
            "SELECT full_refresh::text || coalesce(diff_refresh::text, ''), planner_version \
             FROM pgtrickle.pgt_stream_tables WHERE pgt_name = '{st}'"
        )
    };
    let current: Vec<(String, i32)> = {
        let mut v = Vec::new();
        for st in ["agg", "bag"] {
            let r = client.query_one(&plan_of(st), &[]).await.unwrap();
            v.push((r.get(0), r.get(1)));
        }
        v
    };
    // What an older proxy left: other (wrong) statements, no version, the query only as
    // written, and contents its wrong rule computed.
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    direct
        .batch_execute(
            "UPDATE pgtrickle.pgt_stream_tables SET planner_version = NULL, resolved_query = NULL, \
               full_refresh = ARRAY['DELETE FROM public.agg WHERE g = 0'], \
               diff_refresh = ARRAY['DELETE FROM public.agg WHERE g = 1'] \
             WHERE pgt_name = 'agg'; \
             UPDATE pgtrickle.pgt_stream_tables SET planner_version = 1, \
               full_refresh = ARRAY['SELECT 1'], diff_refresh = ARRAY['SELECT 1'] \
             WHERE pgt_name = 'bag'; \
             BEGIN; SET LOCAL pgtrickle.refreshing = 'on'; DELETE FROM agg WHERE g = 2; \
             DELETE FROM bag WHERE r = 1; COMMIT",
        )
        .await
        .unwrap();
    // A newer proxy starts: its scheduler plans both again.
    proxy.terminate(Duration::from_secs(10));
    let proxy = proxy_for(
        proxy_bin!(),
        &cluster,
        &["--scheduler-interval-ms", "60000"],
    );
    await_true(
        &direct,
        "SELECT count(*) = 2 FROM pgtrickle.pgt_stream_tables WHERE planner_version = $1",
        &[&current[0].1],
        Duration::from_secs(20),
        &format!("the stream tables were not planned again\n{}", proxy.log()),
    )
    .await;
    for (st, (plan, version)) in ["agg", "bag"].iter().zip(&current) {
        let r = direct.query_one(&plan_of(st), &[]).await.unwrap();
        assert_eq!(
            &r.get::<_, String>(0),
            plan,
            "{st}: the stored plan is current"
        );
        assert_eq!(&r.get::<_, i32>(1), version);
    }
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(
            "INSERT INTO t (g, v) VALUES (1, 7), (2, 8); DELETE FROM t WHERE id < 20; \
             SELECT pgtrickle.refresh_stream_table('agg'); \
             SELECT pgtrickle.refresh_stream_table('bag')",
        )
        .await
        .unwrap();
    assert_eq!(rows_differing(&client, "agg", "g, n, s", AGG).await, 0);
    assert_eq!(rows_differing(&client, "bag", "r", BAG).await, 0);
    assert_eq!(
        client
            .query_one(
                "SELECT action FROM pgtrickle.get_refresh_history('agg', 1)",
                &[]
            )
            .await
            .unwrap()
            .get::<_, String>(0),
        "FULL",
        "the first refresh after planning again recomputes"
    );

    // A plan written by a newer planner: this proxy never runs it.
    direct
        .batch_execute(
            "UPDATE pgtrickle.pgt_stream_tables SET planner_version = 99 WHERE pgt_name = 'bag'",
        )
        .await
        .unwrap();
    let e = client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('bag')")
        .await
        .expect_err("a refresh of a newer plan");
    assert_eq!(e.code().map(|c| c.code()), Some("55000"), "{e:?}");
    let shown: i32 = client
        .query_one(
            "SELECT planner_version FROM pgtrickle.pgt_status() WHERE name = 'public.bag'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, 99);
    // The scheduler of a proxy starting now says so in its log.
    let third = proxy_for(
        proxy_bin!(),
        &cluster,
        &["--scheduler-interval-ms", "60000"],
    );
    let started = std::time::Instant::now();
    while !third.log().contains("planned by a newer pgtrickle-proxy") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no log line about the newer plan\n{}",
            third.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A newer planner that keeps other hidden columns rebuilds the storage in place (same OID,
/// grants kept, indexes of the new plan) and populates it in the same transaction: a reader
/// never sees it empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_storage_layout_is_rebuilt_in_place_and_never_seen_empty() {
    let (cluster, mut proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE t (id serial PRIMARY KEY, g int, v int); \
             INSERT INTO t (g, v) SELECT i % 5, i FROM generate_series(1, 200) i; \
             CREATE ROLE reader; \
             SELECT pgtrickle.create_stream_table('agg', '{AGG}', '1h', 'DIFFERENTIAL'); \
             SELECT pgtrickle.create_stream_table('bag', '{BAG}', '1h', 'DIFFERENTIAL'); \
             GRANT SELECT ON agg, bag TO reader"
        ))
        .await
        .unwrap();
    let layout = "SELECT c.oid::int8, string_agg(a.attname, ',' ORDER BY a.attname), \
                    (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) \
                  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
                  WHERE c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                  GROUP BY c.oid";
    let mut before = Vec::new();
    for st in ["agg", "bag"] {
        let r = client.query_one(layout, &[&st]).await.unwrap();
        before.push((
            r.get::<_, i64>(0),
            r.get::<_, String>(1),
            r.get::<_, i64>(2),
        ));
    }
    // What an older planner left: other hidden columns (one more for bag, one less for agg).
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    direct
        .batch_execute(
            "BEGIN; SET LOCAL pgtrickle.refreshing = 'on'; \
             ALTER TABLE bag ADD COLUMN __pgt_old int; ALTER TABLE agg DROP COLUMN __pgt_hash; \
             UPDATE pgtrickle.pgt_stream_tables SET planner_version = 1; COMMIT",
        )
        .await
        .unwrap();
    proxy.terminate(Duration::from_secs(10));
    // A reader watches both stream tables while a newer proxy rebuilds them.
    let watcher = connect(&cluster.conninfo("postgres", "postgres")).await;
    let watch = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut empty_seen = Vec::new();
        while started.elapsed() < Duration::from_secs(30) {
            let r = watcher
                .query_one(
                    "SELECT (SELECT count(*) FROM agg), (SELECT count(*) FROM bag), \
                       (SELECT bool_and(planner_version > 1) FROM pgtrickle.pgt_stream_tables)",
                    &[],
                )
                .await
                .unwrap();
            let (a, b, done): (i64, i64, bool) = (r.get(0), r.get(1), r.get(2));
            if a == 0 || b == 0 {
                empty_seen.push((a, b));
            }
            if done {
                return (empty_seen, true);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (empty_seen, false)
    });
    let proxy = proxy_for(
        proxy_bin!(),
        &cluster,
        &["--scheduler-interval-ms", "60000"],
    );
    let (empty_seen, done) = watch.await.unwrap();
    assert!(
        done,
        "the stream tables were not planned again\n{}",
        proxy.log()
    );
    assert!(
        empty_seen.is_empty(),
        "a reader saw an empty stream table: {empty_seen:?}"
    );
    for (st, (oid, columns, indexes)) in ["agg", "bag"].iter().zip(&before) {
        let r = direct.query_one(layout, &[st]).await.unwrap();
        assert_eq!(r.get::<_, i64>(0), *oid, "{st}: the storage keeps its OID");
        assert_eq!(
            &r.get::<_, String>(1),
            columns,
            "{st}: the new plan's columns"
        );
        assert_eq!(r.get::<_, i64>(2), *indexes, "{st}: the new plan's indexes");
    }
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    assert_eq!(rows_differing(&client, "agg", "g, n, s", AGG).await, 0);
    assert_eq!(rows_differing(&client, "bag", "r", BAG).await, 0);
    // Differential refreshes work on the rebuilt storage, and the grant is kept.
    for sql in [
        "INSERT INTO t (g, v) VALUES (1, 7), (9, 8); DELETE FROM t WHERE id < 20",
        "SELECT pgtrickle.refresh_stream_table('agg')",
        "SELECT pgtrickle.refresh_stream_table('bag')",
        "INSERT INTO t (g, v) VALUES (3, 1); UPDATE t SET v = v + 1 WHERE g = 4",
        "SELECT pgtrickle.refresh_stream_table('agg')",
        "SELECT pgtrickle.refresh_stream_table('bag')",
    ] {
        client.batch_execute(sql).await.unwrap();
    }
    assert_eq!(rows_differing(&client, "agg", "g, n, s", AGG).await, 0);
    assert_eq!(rows_differing(&client, "bag", "r", BAG).await, 0);
    let action: String = client
        .query_one(
            "SELECT action FROM pgtrickle.get_refresh_history('agg', 1)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(action, "DIFFERENTIAL");
    let granted: bool = direct
        .query_one(
            "SELECT has_table_privilege('reader', 'agg', 'SELECT') \
               AND has_table_privilege('reader', 'bag', 'SELECT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(granted, "grants on the storage are kept");
}
