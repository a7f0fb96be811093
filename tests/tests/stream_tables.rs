//! Stream tables end to end through the proxy with real clients: creation, refresh, the
//! transaction rules of API calls, read-only storage, clients that bypass the proxy, the
//! scheduler, and a randomised oracle (the stream table equals its defining query as a bag after
//! every refresh).

use std::time::{Duration, Instant};

use pgtrickle_e2e::{connect, count, rows_differing, setup, sqlstate};
use rand::{Rng, SeedableRng};
use tokio_postgres::SimpleQueryMessage;

const ORDERS: &str = "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, \
    product_id int, total numeric, currency text); \
    INSERT INTO orders (customer_id, product_id, total, currency) \
    SELECT g % 7, g % 11, g, CASE WHEN g % 3 = 0 THEN 'EUR' ELSE 'USD' END \
    FROM generate_series(1, 500) g";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refresh_and_query_through_the_proxy() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(ORDERS).await.unwrap();
    let query = "SELECT customer_id, SUM(total) AS total_spent, COUNT(*) AS order_count \
                 FROM orders GROUP BY customer_id";
    let rows = client
        .simple_query(&format!(
            "SELECT pgtrickle.create_stream_table(name => 'customer_totals', query => $$ {query} $$, \
             schedule => '1h', refresh_mode => 'DIFFERENTIAL', cdc_mode => 'trigger')"
        ))
        .await
        .unwrap();
    // Answered as PostgreSQL answers a void function: one row, one empty column.
    let row = rows
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.columns()[0].name(), "create_stream_table");
    assert_eq!(row.get(0), Some(""));
    let cols = "customer_id, total_spent, order_count";
    assert_eq!(
        rows_differing(&client, "customer_totals", cols, query).await,
        0
    );

    client
        .batch_execute(
            "INSERT INTO orders (customer_id, total) VALUES (1, 1000), (NULL, 5), (NULL, 6); \
             UPDATE orders SET customer_id = 2 WHERE id % 10 = 0; \
             DELETE FROM orders WHERE id % 13 = 0",
        )
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('customer_totals')")
        .await
        .unwrap();
    assert_eq!(
        rows_differing(&client, "customer_totals", cols, query).await,
        0
    );

    // Status and history are answered by the database's own functions.
    let status = client
        .query_one(
            "SELECT status, effective_mode, consecutive_errors FROM pgtrickle.pgt_status() \
             WHERE name = 'public.customer_totals'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(status.get::<_, String>(0), "ACTIVE");
    assert_eq!(status.get::<_, String>(1), "DIFFERENTIAL");
    let history = count(
        &client,
        "SELECT count(*) FROM pgtrickle.get_refresh_history('customer_totals') \
         WHERE status = 'SUCCESS'",
    )
    .await;
    assert_eq!(history, 2);

    // Stream tables are read-only, through the proxy and around it.
    assert_eq!(
        sqlstate(
            &client,
            "INSERT INTO customer_totals (customer_id) VALUES (99)"
        )
        .await,
        "42809"
    );
    assert_eq!(
        sqlstate(&client, "DELETE FROM customer_totals").await,
        "42809"
    );

    // Errors of the API carry PostgreSQL's SQLSTATEs.
    assert_eq!(
        sqlstate(&client, "SELECT pgtrickle.refresh_stream_table('nope')").await,
        "42P01"
    );
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.create_stream_table('customer_totals', 'SELECT 1 AS x')"
        )
        .await,
        "42P07"
    );
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.create_stream_table('x', 'SELECT 1 AS x', schedule => 'often')"
        )
        .await,
        "22023"
    );
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.create_stream_table('x', 'SELECT 1 AS x', cdc_mode => 'wal')"
        )
        .await,
        "0A000"
    );
    client
        .batch_execute("SELECT pgtrickle.drop_stream_table('customer_totals')")
        .await
        .unwrap();
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = 'customer_totals'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_are_part_of_the_clients_transaction() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(ORDERS).await.unwrap();
    // A string that controls transactions around a call gets a clear error (see
    // api_scripts.rs for calls among other statements).
    let err = client
        .batch_execute("BEGIN; SELECT pgtrickle.create_stream_table('x', 'SELECT 1 AS a'); COMMIT")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "0A000");
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('rolled_back', 'SELECT id FROM orders')",
        )
        .await
        .unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM rolled_back").await,
        500
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = 'rolled_back'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        0
    );

    // An error inside a transaction block fails the block, as PostgreSQL would.
    client.batch_execute("BEGIN").await.unwrap();
    let err = client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('missing')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let err = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();

    // Committed inside a block: it exists, and is populated with the block's own writes.
    client
        .batch_execute("BEGIN; INSERT INTO orders (customer_id, total) VALUES (42, 1)")
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('kept', \
               'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id')",
        )
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    let q = "SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id";
    assert_eq!(
        rows_differing(&client, "kept", "customer_id, n", q).await,
        0
    );

    // A client that bypasses the proxy is told to use it.
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let err = direct
        .batch_execute("SELECT pgtrickle.create_stream_table('x', 'SELECT 1')")
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "0A000");
    assert!(
        db.message().contains("through pgtrickle-proxy"),
        "{}",
        db.message()
    );
    // ... can read the status ...
    assert_eq!(
        count(&direct, "SELECT count(*) FROM pgtrickle.pgt_status()").await,
        1
    );
    // ... and cannot write to a stream table either.
    let err = direct
        .batch_execute("UPDATE kept SET n = 0")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42809");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_refreshes_on_schedule_and_chains_converge() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(ORDERS).await.unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('by_customer', \
               'SELECT customer_id, SUM(total) AS total FROM orders GROUP BY customer_id', \
               schedule => '1s')",
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('big_customers', \
               'SELECT customer_id, total FROM by_customer WHERE total > 20000')",
        )
        .await
        .unwrap();
    // Writes directly to the server (not through the proxy) are captured too.
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    direct
        .batch_execute("INSERT INTO orders (customer_id, total) VALUES (3, 50000), (5, -30000)")
        .await
        .unwrap();
    let q1 = "SELECT customer_id, SUM(total) AS total FROM orders GROUP BY customer_id";
    let q2 = format!("SELECT customer_id, total FROM ({q1}) s WHERE total > 20000");
    let started = Instant::now();
    loop {
        let d1 = rows_differing(&client, "by_customer", "customer_id, total", q1).await;
        let d2 = rows_differing(&client, "big_customers", "customer_id, total", &q2).await;
        if d1 == 0 && d2 == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not converged: {d1:?} {d2:?}\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Dropping a stream table that another one reads needs cascade.
    let err = client
        .batch_execute("SELECT pgtrickle.drop_stream_table('by_customer')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "2BP01");
    client
        .batch_execute("SELECT pgtrickle.drop_stream_table('by_customer', cascade => true)")
        .await
        .unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        0
    );
}

/// Queries of the oracle, over tables `a(k, v, w)` and `b(k, x)` (keyless, with duplicates and
/// NULLs), with the columns to compare.
const ORACLE_QUERIES: &[(&str, &str, &str)] = &[
    ("o_filter", "k, v", "SELECT k, v FROM a WHERE v > 3"),
    (
        "o_group",
        "k, n, s, lo, hi",
        "SELECT k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi FROM a GROUP BY k",
    ),
    (
        "o_join",
        "k, v, x",
        "SELECT a.k, a.v, b.x FROM a JOIN b ON a.k = b.k",
    ),
    ("o_distinct", "k", "SELECT DISTINCT k FROM a"),
    ("o_union", "k", "SELECT k FROM a UNION ALL SELECT k FROM b"),
    (
        "o_join_group",
        "x, n, s",
        "SELECT b.x, count(*) AS n, sum(a.w) AS s FROM a JOIN b ON a.k = b.k GROUP BY b.x",
    ),
    (
        "o_left",
        "k, v, x",
        "SELECT a.k, a.v, b.x FROM a LEFT JOIN b ON a.k = b.k",
    ),
    (
        "o_exists",
        "k, v",
        "SELECT k, v FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k)",
    ),
    (
        "o_scalar",
        "k, v",
        "SELECT k, v FROM a WHERE v > (SELECT avg(x) FROM b) OR k IS NULL",
    ),
    (
        "o_scalar_correlated",
        "k, v",
        "SELECT k, v FROM a WHERE v >= (SELECT max(x) + 2 FROM b WHERE b.k = a.k)",
    ),
    (
        "o_in_grouped",
        "k, w",
        "SELECT k, w FROM a WHERE k IN (SELECT k FROM b GROUP BY k HAVING count(*) > 1)",
    ),
    (
        "o_having_scalar",
        "k, s",
        "SELECT k, sum(v) AS s FROM a GROUP BY k HAVING sum(v) > (SELECT sum(x) FROM b)",
    ),
];

fn random_batch(rng: &mut rand::rngs::StdRng) -> String {
    let mut sql = String::new();
    for _ in 0..rng.gen_range(1..6) {
        let k = |rng: &mut rand::rngs::StdRng| {
            if rng.gen_bool(0.1) {
                "NULL".to_string()
            } else {
                rng.gen_range(0..6).to_string()
            }
        };
        let stmt = match rng.gen_range(0..7) {
            0 | 1 => format!(
                "INSERT INTO a VALUES ({}, {}, {}), ({}, {}, 1);",
                k(rng),
                rng.gen_range(0..8),
                rng.gen_range(-5..5),
                k(rng),
                rng.gen_range(0..8)
            ),
            2 => format!("INSERT INTO b VALUES ({}, {});", k(rng), rng.gen_range(0..3)),
            3 => format!(
                "UPDATE a SET v = v + 1 WHERE k = {} AND v < {};",
                rng.gen_range(0..6),
                rng.gen_range(0..8)
            ),
            4 => format!(
                "DELETE FROM a WHERE ctid IN (SELECT ctid FROM a WHERE k IS NOT DISTINCT FROM {} LIMIT 2);",
                k(rng)
            ),
            5 => format!(
                "DELETE FROM b WHERE ctid IN (SELECT ctid FROM b WHERE k = {} LIMIT 1);",
                rng.gen_range(0..6)
            ),
            _ => format!("UPDATE b SET x = x + 1 WHERE k = {};", rng.gen_range(0..6)),
        };
        sql.push_str(&stmt);
    }
    sql
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomised_oracle_stream_tables_equal_their_queries() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let seed: u64 = std::env::var("PGTRICKLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("oracle seed {seed} (PGTRICKLE_SEED={seed} to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    client
        .batch_execute(
            "CREATE TABLE a (k int, v int, w int); CREATE TABLE b (k int, x int); \
             INSERT INTO a SELECT g % 5, g % 7, g % 3 FROM generate_series(1, 60) g; \
             INSERT INTO a VALUES (NULL, 1, 1), (NULL, 1, 1), (2, 2, 2), (2, 2, 2); \
             INSERT INTO b SELECT g % 6, g % 2 FROM generate_series(1, 12) g; \
             INSERT INTO b VALUES (NULL, 0)",
        )
        .await
        .unwrap();
    for (name, _, query) in ORACLE_QUERIES {
        client
            .batch_execute(
                &format!(
                "SELECT pgtrickle.create_stream_table({name:?}, $$ {query} $$, schedule => '1h', \
                 refresh_mode => 'DIFFERENTIAL')"
            )
                .replace('"', "'"),
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    }
    for round in 0..25 {
        // Some batches in transactions, some of them rolled back.
        let batch = random_batch(&mut rng);
        match rng.gen_range(0..4) {
            0 => client
                .batch_execute(&format!("BEGIN; {batch} ROLLBACK"))
                .await
                .unwrap(),
            1 => client
                .batch_execute(&format!("BEGIN; {batch} COMMIT"))
                .await
                .unwrap(),
            _ => client.batch_execute(&batch).await.unwrap(),
        }
        for (name, cols, query) in ORACLE_QUERIES {
            client
                .batch_execute(&format!("SELECT pgtrickle.refresh_stream_table('{name}')"))
                .await
                .unwrap_or_else(|e| panic!("refresh {name} round {round} seed {seed}: {e:?}"));
            let diff = rows_differing(&client, name, cols, query).await;
            assert_eq!(
                diff, 0,
                "{name} differs from its query after round {round} (seed {seed}); batch: {batch}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_the_proxy_wakes_calculated_stream_tables() {
    // The scheduler's own clock ticks once a minute: only the write can wake it in time.
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(ORDERS).await.unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('fresh', \
               'SELECT currency, count(*) AS n FROM orders GROUP BY currency')",
        )
        .await
        .unwrap();
    client
        .batch_execute("BEGIN; INSERT INTO orders (currency) VALUES ('JPY'); COMMIT")
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        if count(&client, "SELECT count(*) FROM fresh WHERE currency = 'JPY'").await == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "calculated stream table not refreshed after a committed write:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_stream_tables_follow_each_commit_whatever_their_schedule() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(ORDERS).await.unwrap();
    // The NOTICE says how IMMEDIATE is maintained (psql prints it on stderr).
    let out = pgtrickle_e2e::psql_isolated(
        &cluster,
        &proxy.conninfo("postgres", "postgres"),
        None,
        &["SELECT pgtrickle.create_stream_table('instant', \
           'SELECT currency, count(*) AS n FROM orders GROUP BY currency', \
           schedule => '1h', refresh_mode => 'IMMEDIATE')"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("NOTICE") && stderr.contains("inside the writing transaction"),
        "{stderr}"
    );
    // A write through the proxy and one that bypasses it: both show up long before the hour.
    client
        .batch_execute("INSERT INTO orders (currency) VALUES ('JPY')")
        .await
        .unwrap();
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    direct
        .batch_execute("INSERT INTO orders (currency) VALUES ('CHF')")
        .await
        .unwrap();
    let query = "SELECT currency, count(*) AS n FROM orders GROUP BY currency";
    let started = Instant::now();
    while rows_differing(&client, "instant", "currency, n", query).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "IMMEDIATE stream table not refreshed after committed writes:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Refreshed differentially, by the scheduler, long before its hour.
    let differential = count(
        &client,
        "SELECT count(*) FROM pgtrickle.pgt_refresh_history h \
         JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) \
         WHERE s.pgt_name = 'instant' AND h.action = 'DIFFERENTIAL'",
    )
    .await;
    assert!(differential >= 1, "{differential} differential refreshes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extended_protocol_with_bound_parameters() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let mut client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(ORDERS).await.unwrap();
    // Parse/Describe/Sync, then Bind/Execute/Sync with text parameters, as drivers send them.
    let stmt = client
        .prepare("SELECT pgtrickle.create_stream_table(name => $1, query => $2, schedule => $3)")
        .await
        .unwrap();
    assert_eq!(stmt.columns()[0].name(), "create_stream_table");
    assert_eq!(stmt.params().len(), 3);
    let rows = client
        .query(
            &stmt,
            &[
                &"by_currency",
                &"SELECT currency, count(*) AS n FROM orders GROUP BY currency",
                &"1h",
            ],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        count(&client, "SELECT sum(n)::int8 FROM by_currency").await,
        500
    );
    // The same prepared statement again, with a bad argument: the server's kind of error,
    // and the session goes on.
    let err = client
        .query(&stmt, &[&"other", &"SELECT 1 AS x", &"sometimes"])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22023");
    assert_eq!(count(&client, "SELECT 1::int8").await, 1);

    // Inside a transaction, with pipelined calls polled together.
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO orders (currency) VALUES ('CHF')", &[])
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        tx.execute(
            "SELECT pgtrickle.refresh_stream_table($1)",
            &[&"by_currency"]
        ),
        tx.query_one("SELECT count(*) FROM orders", &[])
    );
    a.unwrap();
    assert_eq!(b.unwrap().get::<_, i64>(0), 501);
    let chf = tx
        .query_one("SELECT n FROM by_currency WHERE currency = 'CHF'", &[])
        .await
        .unwrap();
    assert_eq!(chf.get::<_, i64>(0), 1);
    tx.rollback().await.unwrap();
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM by_currency WHERE currency = 'CHF'"
        )
        .await,
        0
    );
    client
        .execute("SELECT pgtrickle.drop_stream_table('by_currency')", &[])
        .await
        .unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        0
    );
}
