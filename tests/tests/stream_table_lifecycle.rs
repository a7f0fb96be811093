//! Stream tables under concurrency and failure, through the proxy: a long transaction that
//! commits after a refresh, concurrent writers, TRUNCATE, diamonds of stream tables, two proxies
//! on one database, suspension after repeated failures with resume, and schedulers for every
//! database with stream tables.

use std::time::{Duration, Instant};

use pgtrickle_e2e::{
    connect, count, proxy_bin, proxy_for, refresh, rows_differing, setup, Cluster,
};
use tokio_postgres::Client;

async fn last_action(client: &Client, st: &str) -> String {
    client
        .query_one(
            &format!("SELECT action FROM pgtrickle.get_refresh_history('{st}', 1)"),
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0)
}

const Q: &str = "SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g";

/// A query counting the change buffers of relation `name` (0 or 1).
fn buffer_of(name: &str) -> String {
    format!(
        "SELECT count(*) FROM pg_class WHERE oid = to_regclass('pgtrickle_changes.changes_' \
         || '{name}'::regclass::oid)"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_transaction_committing_after_a_refresh_is_applied_once() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let conninfo = proxy.conninfo("postgres", "postgres");
    let client = connect(&conninfo).await;
    client
        .batch_execute(
            "CREATE TABLE t (g int, v int); \
             INSERT INTO t SELECT g % 4, g FROM generate_series(1, 100) g",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('agg', '{Q}', schedule => '1h')"
        ))
        .await
        .unwrap();
    // A long transaction writes before the refresh and commits after it.
    let long = connect(&conninfo).await;
    long.batch_execute("BEGIN; INSERT INTO t VALUES (1, 1000), (9, 9)")
        .await
        .unwrap();
    // Concurrent short writers commit around it.
    let mut writers = Vec::new();
    for i in 0..4 {
        let c = connect(&conninfo).await;
        writers.push(tokio::spawn(async move {
            for j in 0..20 {
                c.batch_execute(&format!("INSERT INTO t VALUES ({}, {})", (i + j) % 5, j))
                    .await
                    .unwrap();
                if j % 7 == 0 {
                    c.batch_execute(&format!("DELETE FROM t WHERE v = {}", j + i))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    refresh(&client, &proxy, "agg").await;
    for w in writers {
        w.await.unwrap();
    }
    // The long transaction's rows are not in yet: the stream table equals the query as the
    // refresh saw it, which is the current state minus the long transaction.
    long.batch_execute("COMMIT").await.unwrap();
    refresh(&client, &proxy, "agg").await;
    assert_eq!(rows_differing(&client, "agg", "g, n, s", Q).await, 0);
    refresh(&client, &proxy, "agg").await;
    assert_eq!(
        rows_differing(&client, "agg", "g, n, s", Q).await,
        0,
        "applied twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_diamonds_and_buffers_that_empty() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(
            "CREATE TABLE t (g int, v int); \
             INSERT INTO t SELECT g % 4, g FROM generate_series(1, 100) g",
        )
        .await
        .unwrap();
    // A diamond: two stream tables over t, a third joining both.
    for (name, query) in [
        ("left_st", "SELECT g, sum(v) AS s FROM t GROUP BY g"),
        ("right_st", "SELECT g, count(*) AS n FROM t GROUP BY g"),
        (
            "joined",
            "SELECT l.g, l.s, r.n FROM left_st l JOIN right_st r ON l.g = r.g",
        ),
    ] {
        client
            .batch_execute(&format!(
                "SELECT pgtrickle.create_stream_table('{name}', '{query}', schedule => '1h')"
            ))
            .await
            .unwrap();
    }
    let joined_q = "SELECT l.g, l.s, r.n FROM (SELECT g, sum(v) AS s FROM t GROUP BY g) l \
                    JOIN (SELECT g, count(*) AS n FROM t GROUP BY g) r ON l.g = r.g";
    for round in 0..3 {
        match round {
            0 => client
                .batch_execute("INSERT INTO t VALUES (7, 7), (1, 1); DELETE FROM t WHERE v < 10")
                .await
                .unwrap(),
            1 => client.batch_execute("TRUNCATE t").await.unwrap(),
            _ => client
                .batch_execute("INSERT INTO t SELECT g % 3, g FROM generate_series(1, 30) g")
                .await
                .unwrap(),
        }
        for st in ["left_st", "right_st", "joined"] {
            refresh(&client, &proxy, st).await;
        }
        assert_eq!(
            rows_differing(&client, "joined", "g, s, n", joined_q).await,
            0,
            "round {round}"
        );
    }
    // Every reader consumed everything: the source's buffer is empty.
    let oid: u32 = client
        .query_one("SELECT 't'::regclass::oid", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count(
            &client,
            &format!("SELECT count(*) FROM pgtrickle_changes.changes_{oid}")
        )
        .await,
        0,
        "{}",
        proxy.log()
    );
    // Changes of a stream table are captured only while a stream table reads it: `joined`,
    // which nobody reads, has no change buffer; `left_st` has one until `joined` is dropped.
    assert_eq!(count(&client, &buffer_of("joined")).await, 0);
    assert_eq!(count(&client, &buffer_of("left_st")).await, 1);
    client
        .batch_execute("SELECT pgtrickle.drop_stream_table('joined')")
        .await
        .unwrap();
    assert_eq!(count(&client, &buffer_of("left_st")).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_database_converge() {
    let cluster = Cluster::start();
    let a = proxy_for(proxy_bin!(), &cluster, &["--scheduler-interval-ms", "100"]);
    let b = proxy_for(proxy_bin!(), &cluster, &["--scheduler-interval-ms", "100"]);
    let ca = connect(&a.conninfo("postgres", "postgres")).await;
    let cb = connect(&b.conninfo("postgres", "postgres")).await;
    ca.batch_execute("CREATE TABLE t (g int, v int)")
        .await
        .unwrap();
    ca.batch_execute(&format!(
        "SELECT pgtrickle.create_stream_table('agg', '{Q}', schedule => '1s')"
    ))
    .await
    .unwrap();
    for i in 0..50 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        c.batch_execute(&format!("INSERT INTO t VALUES ({}, {i})", i % 6))
            .await
            .unwrap();
        if i % 10 == 9 {
            c.batch_execute(&format!("DELETE FROM t WHERE v = {}", i - 3))
                .await
                .unwrap();
        }
    }
    let started = Instant::now();
    while rows_differing(&ca, "agg", "g, n, s", Q).await != 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "not converged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both schedulers kept running refreshes; none was applied twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rows_differing(&cb, "agg", "g, n, s", Q).await, 0);
    assert_eq!(
        count(
            &ca,
            "SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE status <> 'SUCCESS'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_suspend_and_resume_brings_back() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "100"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("CREATE TABLE t (g int, v int); INSERT INTO t VALUES (1, 1)")
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('ratio', \
             'SELECT g, 100 / v AS r FROM t', schedule => '1s', refresh_mode => 'FULL')",
        )
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (2, 0)")
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let row = client
            .query_one(
                "SELECT status, consecutive_errors, coalesce(last_error, '') \
                 FROM pgtrickle.pgt_status() WHERE name = 'public.ratio'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, String>(0) == "SUSPENDED" {
            assert_eq!(row.get::<_, i32>(1), 3);
            assert!(row.get::<_, String>(2).contains("division by zero"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "not suspended:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stream table kept its last good contents.
    assert_eq!(count(&client, "SELECT count(*) FROM ratio").await, 1);
    client
        .batch_execute("DELETE FROM t WHERE v = 0; INSERT INTO t VALUES (3, 50)")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.resume_stream_table('ratio')")
        .await
        .unwrap();
    let started = Instant::now();
    while count(&client, "SELECT count(*) FROM ratio").await != 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "not resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status: String = client
        .query_one(
            "SELECT status FROM pgtrickle.pgt_status() WHERE name = 'public.ratio'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "ACTIVE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_cannot_expose_what_it_cannot_read() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "100"]);
    cluster.psql(
        "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; \
         CREATE TABLE secret (id int, payload text); INSERT INTO secret VALUES (1, 'classified'); \
         GRANT CREATE ON SCHEMA public TO alice, bob",
    );
    let alice = connect(&proxy.conninfo("alice", "postgres")).await;
    let bob = connect(&proxy.conninfo("bob", "postgres")).await;
    // alice's own data works.
    alice
        .batch_execute("CREATE TABLE mine (g int, v int); INSERT INTO mine VALUES (1, 2), (1, 3)")
        .await
        .unwrap();
    alice
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('mine_sum', \
             'SELECT g, sum(v) AS s FROM mine GROUP BY g', schedule => '1s')",
        )
        .await
        .unwrap();
    assert_eq!(count(&alice, "SELECT s FROM mine_sum WHERE g = 1").await, 5);
    // A stream table over a table she cannot read is refused with PostgreSQL's own error.
    let err = alice
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('leak', 'SELECT id, payload FROM secret')",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501");
    // bob cannot drop or refresh alice's stream table.
    let err = bob
        .batch_execute("SELECT pgtrickle.drop_stream_table('mine_sum')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    let err = bob
        .batch_execute("SELECT pgtrickle.refresh_stream_table('mine_sum')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    // Scheduled refreshes run as alice and keep the table fresh.
    alice
        .batch_execute("INSERT INTO mine VALUES (1, 10)")
        .await
        .unwrap();
    let started = Instant::now();
    while count(&alice, "SELECT s FROM mine_sum WHERE g = 1").await != 15 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not refreshed as alice:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_refreshes_full_when_most_of_a_source_changed() {
    let (_cluster, proxy) = setup!(&[
        "--scheduler-interval-ms",
        "60000",
        "--auto-full-threshold",
        "0.3",
    ]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(
            "CREATE TABLE t (g int, v int); \
             INSERT INTO t SELECT g % 4, g FROM generate_series(1, 1000) g; ANALYZE t",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('agg', '{Q}', schedule => '1h')"
        ))
        .await
        .unwrap();
    client
        .batch_execute("UPDATE t SET v = v + 1 WHERE v <= 10")
        .await
        .unwrap();
    refresh(&client, &proxy, "agg").await;
    assert_eq!(last_action(&client, "agg").await, "DIFFERENTIAL");
    client
        .batch_execute("UPDATE t SET v = v + 1 WHERE v <= 500")
        .await
        .unwrap();
    refresh(&client, &proxy, "agg").await;
    assert_eq!(last_action(&client, "agg").await, "FULL");
    assert_eq!(rows_differing(&client, "agg", "g, n, s", Q).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_change_buffer_is_refused() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("CREATE TABLE t (g int, v int)")
        .await
        .unwrap();
    // The catalog exists once any stream table was created.
    client
        .batch_execute("SELECT pgtrickle.create_stream_table('warmup', 'SELECT 1 AS one')")
        .await
        .unwrap();
    let oid: u32 = client
        .query_one("SELECT 't'::regclass::oid", &[])
        .await
        .unwrap()
        .get(0);
    // Another role creates the buffer before any stream table reads t.
    cluster.psql(&format!(
        "CREATE ROLE mallory LOGIN; GRANT USAGE, CREATE ON SCHEMA pgtrickle_changes TO mallory; \
         SET ROLE mallory; CREATE TABLE pgtrickle_changes.changes_{oid} (g int, v int, \
         __pgt_weight int NOT NULL, __pgt_xid xid8 NOT NULL DEFAULT pg_current_xact_id(), \
         __pgt_truncate bool NOT NULL DEFAULT false)"
    ));
    let err = client
        .batch_execute("SELECT pgtrickle.create_stream_table('agg', 'SELECT g, count(*) AS n FROM t GROUP BY g')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_sources_work_and_partitions_alone_are_refused() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(
            "CREATE TABLE p (g int, v int) PARTITION BY RANGE (g); \
             CREATE TABLE p_low PARTITION OF p FOR VALUES FROM (0) TO (5); \
             CREATE TABLE p_high PARTITION OF p FOR VALUES FROM (5) TO (100); \
             INSERT INTO p SELECT g % 10, g FROM generate_series(1, 200) g",
        )
        .await
        .unwrap();
    let q = "SELECT g, count(*) AS n, sum(v) AS s FROM p GROUP BY g";
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('pagg', '{q}', schedule => '1h')"
        ))
        .await
        .unwrap();
    // Writes to the root and to a partition directly, and rows moving between partitions.
    client
        .batch_execute(
            "INSERT INTO p VALUES (1, 1000); INSERT INTO p_high VALUES (7, 7); \
             UPDATE p SET g = g + 5 WHERE v % 9 = 0 AND g < 5; DELETE FROM p_low WHERE v % 4 = 0",
        )
        .await
        .unwrap();
    refresh(&client, &proxy, "pagg").await;
    assert_eq!(rows_differing(&client, "pagg", "g, n, s", q).await, 0);
    let err = client
        .batch_execute("SELECT pgtrickle.create_stream_table('low_only', 'SELECT g, v FROM p_low')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "0A000");
}

/// Stream tables in a database other than the `--upstream` one are refreshed on schedule too:
/// a create through the proxy starts that database's scheduler, and a restarted proxy finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_database_with_stream_tables_gets_a_scheduler() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "100"]);
    cluster.psql("CREATE DATABASE other");
    let client = connect(&proxy.conninfo("postgres", "other")).await;
    client
        .batch_execute("CREATE TABLE t (g int, v int)")
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('st', $q${Q}$q$, schedule => '1s')"
        ))
        .await
        .unwrap();
    insert_and_await_refresh(&client, 1).await;
    drop(client);
    drop(proxy);
    let proxy = proxy_for(proxy_bin!(), &cluster, &["--scheduler-interval-ms", "100"]);
    let client = connect(&proxy.conninfo("postgres", "other")).await;
    insert_and_await_refresh(&client, 2).await;
}

/// Inserts a row into `t` and waits until the scheduler refreshed `st` (no manual refresh).
async fn insert_and_await_refresh(client: &Client, round: i32) {
    client
        .batch_execute(&format!("INSERT INTO t VALUES ({round}, {round})"))
        .await
        .unwrap();
    let started = Instant::now();
    while rows_differing(client, "st", "g, n, s", Q).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "st in database other was not refreshed by a scheduler (round {round})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first stream table of a database may be created by a role that may not create schemas
/// there: the proxy creates the catalog as its own user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_stream_table_of_a_database_may_come_from_an_ordinary_role() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "100"]);
    cluster.psql("CREATE ROLE carol LOGIN");
    cluster.psql("CREATE DATABASE fresh");
    cluster
        .psql_command(
            "postgres",
            "fresh",
            "GRANT CREATE ON SCHEMA public TO carol",
        )
        .status
        .success()
        .then_some(())
        .expect("grant on the fresh database");
    let carol = connect(&proxy.conninfo("carol", "fresh")).await;
    carol
        .batch_execute("CREATE TABLE t (g int, v int); INSERT INTO t VALUES (1, 1), (1, 2)")
        .await
        .unwrap();
    carol
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('st', $q${Q}$q$, schedule => '1s')"
        ))
        .await
        .unwrap_or_else(|e| panic!("first create by carol: {e:?}\n{}", proxy.log()));
    assert_eq!(rows_differing(&carol, "st", "g, n, s", Q).await, 0);
}

/// A source whose changes are captured for one role's stream tables is shared with another
/// role's: the buffer is the proxy's, and each owner reads only its own deltas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_shares_a_captured_source() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    cluster.psql(
        "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; \
         GRANT CREATE ON SCHEMA public TO alice, bob",
    );
    let alice = connect(&proxy.conninfo("alice", "postgres")).await;
    let bob = connect(&proxy.conninfo("bob", "postgres")).await;
    alice
        .batch_execute(
            "CREATE TABLE shared (g int, v int); INSERT INTO shared VALUES (1, 2); \
             GRANT SELECT ON shared TO bob",
        )
        .await
        .unwrap();
    alice
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('a_sum', 'SELECT g, sum(v) AS s FROM shared GROUP BY g')",
        )
        .await
        .unwrap();
    bob.batch_execute(
        "SELECT pgtrickle.create_stream_table('b_sum', 'SELECT g, count(*) AS n FROM shared GROUP BY g')",
    )
    .await
    .unwrap_or_else(|e| panic!("bob's stream table over alice's captured table: {e:?}"));
    alice
        .batch_execute("INSERT INTO shared VALUES (1, 5), (2, 1)")
        .await
        .unwrap();
    alice
        .batch_execute("SELECT pgtrickle.refresh_stream_table('a_sum')")
        .await
        .unwrap();
    bob.batch_execute("SELECT pgtrickle.refresh_stream_table('b_sum')")
        .await
        .unwrap();
    assert_eq!(count(&alice, "SELECT s FROM a_sum WHERE g = 1").await, 7);
    assert_eq!(
        rows_differing(
            &bob,
            "b_sum",
            "g, n",
            "SELECT g, count(*) AS n FROM shared GROUP BY g"
        )
        .await,
        0
    );
    // Neither may read the shared buffer itself, nor change the other's stream table.
    for client in [&alice, &bob] {
        let e = client
            .batch_execute(
                "DO $$ BEGIN EXECUTE format('SELECT * FROM pgtrickle_changes.changes_%s', \
                 'shared'::regclass::oid); END $$",
            )
            .await
            .expect_err("reading the buffer");
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e:?}");
    }
    let e = bob
        .batch_execute("SELECT pgtrickle.drop_stream_table('a_sum')")
        .await
        .expect_err("dropping alice's stream table");
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e:?}");
}

/// Catalogs of version 3 captured every stream table's changes, read or not: the upgrade
/// removes the capture of those no stream table reads, and keeps that of those one reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_upgrade_removes_capture_nobody_reads() {
    let (cluster, proxy) = setup!(&[]);
    let client = connect(&cluster.conninfo("postgres", "postgres")).await;
    let through = connect(&proxy.conninfo("postgres", "postgres")).await;
    for sql in [
        "CREATE TABLE t (g int, v int)",
        "SELECT pgtrickle.create_stream_table('inner_st', \
         'SELECT g, sum(v) AS s FROM t GROUP BY g', schedule => '1h')",
        "SELECT pgtrickle.create_stream_table('outer_st', \
         'SELECT g, s FROM inner_st WHERE s > 0', schedule => '1h')",
    ] {
        through.batch_execute(sql).await.unwrap();
    }
    // What a version-3 proxy left behind: a buffer of outer_st's, which nobody reads.
    client
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('CREATE TABLE pgtrickle_changes.changes_%s \
             (g int, s bigint)', 'outer_st'::regclass::oid); END $$; \
             UPDATE pgtrickle.pgt_catalog_version SET version = 3",
        )
        .await
        .unwrap();
    assert_eq!(count(&client, &buffer_of("outer_st")).await, 1);
    // A proxy starting up upgrades the catalog.
    let _second = proxy_for(proxy_bin!(), &cluster, &[]);
    pgtrickle_e2e::await_true(
        &client,
        "SELECT max(version) > 3 FROM pgtrickle.pgt_catalog_version",
        &[],
        Duration::from_secs(20),
        "the catalog upgrade",
    )
    .await;
    assert_eq!(count(&client, &buffer_of("outer_st")).await, 0);
    assert_eq!(count(&client, &buffer_of("inner_st")).await, 1);
    for sql in [
        "INSERT INTO t VALUES (1, 5)",
        "SELECT pgtrickle.refresh_stream_table('inner_st')",
        "SELECT pgtrickle.refresh_stream_table('outer_st')",
    ] {
        through.batch_execute(sql).await.unwrap();
    }
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM outer_st WHERE g = 1 AND s = 5"
        )
        .await,
        1
    );
}

/// A refresh reads with the owner's rights, whoever runs it: after a REVOKE the owner's
/// refreshes fail (42501) and keep the contents, although the change buffer still receives
/// the source's rows; rows that row-level security hides from the owner stay out, also when a
/// superuser refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_read_with_the_owners_rights() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    cluster.psql(
        "CREATE ROLE alice LOGIN; GRANT CREATE ON SCHEMA public TO alice; SET ROLE alice; \
         CREATE TABLE shared_src (g int, v int); \
         CREATE TABLE docs (who text, v int); ALTER TABLE docs ENABLE ROW LEVEL SECURITY; \
         ALTER TABLE docs FORCE ROW LEVEL SECURITY; \
         CREATE POLICY own ON docs USING (who = current_user); RESET ROLE; \
         INSERT INTO shared_src VALUES (1, 1); \
         INSERT INTO docs VALUES ('alice', 1), ('bob', 100)",
    );
    let alice = connect(&proxy.conninfo("alice", "postgres")).await;
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    for sql in [
        "SELECT pgtrickle.create_stream_table('shared_sum', \
         'SELECT g, sum(v) AS s FROM shared_src GROUP BY g', schedule => '1h', \
         refresh_mode => 'DIFFERENTIAL')",
        "SELECT pgtrickle.create_stream_table('doc_sums', \
         'SELECT who, sum(v) AS s FROM docs GROUP BY who', schedule => '1h', \
         refresh_mode => 'DIFFERENTIAL')",
    ] {
        alice.batch_execute(sql).await.unwrap();
    }
    // Revoked: the refresh fails and the contents stay.
    admin
        .batch_execute(
            "REVOKE SELECT ON shared_src FROM alice; INSERT INTO shared_src VALUES (1, 10)",
        )
        .await
        .unwrap();
    let err = alice
        .batch_execute("SELECT pgtrickle.refresh_stream_table('shared_sum')")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(db.message().contains("shared_src"), "{db:?}");
    assert_eq!(
        count(&admin, "SELECT s FROM shared_sum WHERE g = 1").await,
        1
    );
    // Nor can a superuser's refresh put the new row in.
    let err = admin
        .batch_execute("SELECT pgtrickle.refresh_stream_table('shared_sum')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    assert_eq!(
        count(&admin, "SELECT s FROM shared_sum WHERE g = 1").await,
        1
    );
    // Row-level security: only alice's rows, by her refreshes and by a superuser's.
    let doc_rows = "SELECT count(*) FROM doc_sums WHERE who <> 'alice'";
    assert_eq!(count(&admin, doc_rows).await, 0);
    admin
        .batch_execute("INSERT INTO docs VALUES ('alice', 2), ('bob', 200)")
        .await
        .unwrap();
    alice
        .batch_execute("SELECT pgtrickle.refresh_stream_table('doc_sums')")
        .await
        .unwrap();
    assert_eq!(count(&admin, doc_rows).await, 0);
    assert_eq!(
        count(&admin, "SELECT s FROM doc_sums WHERE who = 'alice'").await,
        3
    );
    admin
        .batch_execute("INSERT INTO docs VALUES ('carol', 5), ('alice', 4)")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pgtrickle.refresh_stream_table('doc_sums')")
        .await
        .unwrap();
    assert_eq!(count(&admin, doc_rows).await, 0);
    assert_eq!(
        count(&admin, "SELECT s FROM doc_sums WHERE who = 'alice'").await,
        7
    );
    // The superuser's session is its own again.
    assert_eq!(count(&admin, "SELECT count(*) FROM docs").await, 6);
}

/// A create whose capture install waits behind an open writer of the source gives up after the
/// install's lock timeout (55P03) instead of queueing every later writer of the source behind
/// it for as long as that writer stays open; once the writer ends, the create works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_behind_an_open_writer_gives_up_after_the_lock_timeout() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("CREATE TABLE t (g int, v int); INSERT INTO t VALUES (1, 1)")
        .await
        .unwrap();
    let writer = connect(&cluster.conninfo("postgres", "postgres")).await;
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (2, 2)")
        .await
        .unwrap();
    let started = Instant::now();
    let e = client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('agg', '{Q}', schedule => '1h')"
        ))
        .await
        .expect_err("a create behind an open writer");
    assert_eq!(e.code().map(|c| c.code()), Some("55P03"), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the create waited {:?}",
        started.elapsed()
    );
    writer.batch_execute("COMMIT").await.unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('agg', '{Q}', schedule => '1h')"
        ))
        .await
        .unwrap();
    assert_eq!(rows_differing(&client, "agg", "g, n, s", Q).await, 0);
}
