//! Foreign tables as stream table sources, polled by content hashing, through the proxy with
//! real clusters: a "remote" cluster reached with postgres_fdw and a "local" one the proxy
//! fronts, and CSV files read with file_fdw. This file holds the basics; foreign_failures.rs
//! holds sources that fail, foreign_mirrors.rs the mirrors, and foreign_support/ what they share.
//!
//! Covered here: the founding document's three foreign examples verbatim; duplicates and NULLs
//! in foreign rows; `cdc_mode => 'wal'` refused; the first stream table of a database reading a
//! foreign table, also while the scheduler sets up the catalog; `alter_stream_table` with a new
//! query; quoted names and a chain of stream tables over a foreign table; a slow poll that does
//! not hold up other stream tables.

mod foreign_support;

use std::time::{Duration, Instant};

use foreign_support::{
    assert_equal, await_equal, create_st, csv_dir, fdw_setup, mirror_count, mirror_of, poll_of,
    write_atomically, PRODUCTS, REMOTE_PRODUCTS,
};
use pgtrickle_e2e::{
    await_catalog, connect, contents, count, exec, postgres_fdw_server_sql, proxy_bin, proxy_for,
    refresh, relation_exists, rows_differing, setup, Cluster,
};
use tokio_postgres::Client;

/// Today's date as the server sees it (CURRENT_DATE), and the day before.
async fn today_and_yesterday(client: &Client) -> (String, String) {
    let row = client
        .query_one("SELECT CURRENT_DATE::text, (CURRENT_DATE - 1)::text", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

// ---------------------------------------------------------------------------------------------
// The founding document's foreign examples, verbatim
// ---------------------------------------------------------------------------------------------

const PRODUCT_SUMMARY_Q: &str = "SELECT rp.category, COUNT(*) AS product_count, \
    AVG(rp.price) AS avg_price, MIN(rp.price) AS min_price FROM remote_products rp \
    GROUP BY rp.category";
const PRODUCT_SUMMARY_COLS: &str = "category, product_count, avg_price, min_price";

const ORDER_PRODUCT_Q: &str = "SELECT o.customer_id, rp.category, SUM(o.total) AS total_spent, \
    COUNT(*) AS order_count FROM orders o JOIN remote_products rp ON rp.id = o.product_id \
    GROUP BY o.customer_id, rp.category";
const ORDER_PRODUCT_COLS: &str = "customer_id, category, total_spent, order_count";

const REVENUE_Q: &str = "SELECT o.customer_id, SUM(o.total * er.rate) AS revenue_usd \
    FROM orders o JOIN exchange_rates er ON er.currency = o.currency \
    AND er.effective_date = CURRENT_DATE GROUP BY o.customer_id";
const REVENUE_COLS: &str = "customer_id, revenue_usd";

fn rates_csv(today: &str, yesterday: &str, eur: &str, gbp: &str) -> String {
    format!(
        "USD,1.00,{today}\nEUR,{eur},{today}\nGBP,{gbp},{today}\nEUR,1.05,{yesterday}\n\
         GBP,1.25,{yesterday}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_founding_documents_foreign_examples_work_verbatim() {
    let remote = Cluster::start();
    // The document's user mapping logs in as 'reader' with a password; the remote trusts local
    // connections, so the password is simply not asked for.
    remote.psql(
        "CREATE ROLE reader LOGIN PASSWORD 'secret'; \
         CREATE TABLE products (id int PRIMARY KEY, name text, category text, price numeric); \
         INSERT INTO products VALUES (1, 'hammer', 'tools', 12.50), (2, 'saw', 'tools', 20), \
         (3, 'ball', 'toys', 5.25), (4, 'novel', 'books', 9.99), (5, 'atlas', 'books', NULL); \
         GRANT SELECT ON products TO reader",
    );
    let (_local, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    let dir = csv_dir();
    let csv = dir.path().join("exchange_rates.csv");
    let (today, yesterday) = today_and_yesterday(&client).await;
    write_atomically(&csv, &rates_csv(&today, &yesterday, "1.08", "1.27"));

    exec(
        &client,
        &proxy,
        "CREATE EXTENSION postgres_fdw; CREATE EXTENSION file_fdw; \
         CREATE SERVER file_server FOREIGN DATA WRAPPER file_fdw; \
         CREATE TABLE orders (id serial, customer_id int, product_id int, total numeric, \
         currency text); \
         INSERT INTO orders (customer_id, product_id, total, currency) \
         SELECT g % 4, g % 7, g * 1.5, (ARRAY['USD', 'EUR', 'GBP', 'JPY'])[g % 4 + 1] \
         FROM generate_series(1, 40) g",
    )
    .await;
    // Verbatim from the document (server options and CSV path adapted).
    exec(
        &client,
        &proxy,
        &format!(
            "CREATE SERVER remote_analytics FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'postgres', port '{}');",
            remote.port()
        ),
    )
    .await;
    exec(
        &client,
        &proxy,
        "CREATE USER MAPPING FOR CURRENT_USER SERVER remote_analytics OPTIONS (user 'reader', password 'secret');",
    )
    .await;
    exec(
        &client,
        &proxy,
        "CREATE FOREIGN TABLE remote_products ( id INT, name TEXT, category TEXT, price NUMERIC ) SERVER remote_analytics OPTIONS (table_name 'products');",
    )
    .await;
    exec(
        &client,
        &proxy,
        "SET pg_trickle.foreign_table_polling = on;",
    )
    .await;
    exec(
        &client,
        &proxy,
        "SELECT pgtrickle.create_stream_table( name => 'product_summary', query => $$ SELECT rp.category, COUNT(*) AS product_count, AVG(rp.price) AS avg_price, MIN(rp.price) AS min_price FROM remote_products rp GROUP BY rp.category $$, schedule => '30s', cdc_mode => 'trigger' -- only trigger mode works with FDW
);",
    )
    .await;
    exec(
        &client,
        &proxy,
        "SELECT pgtrickle.create_stream_table( name => 'order_product_summary', query => $$ SELECT o.customer_id, rp.category, SUM(o.total) AS total_spent, COUNT(*) AS order_count FROM orders o JOIN remote_products rp ON rp.id = o.product_id GROUP BY o.customer_id, rp.category $$, schedule => '10s' );",
    )
    .await;
    exec(
        &client,
        &proxy,
        &format!(
            "CREATE FOREIGN TABLE exchange_rates ( currency TEXT, rate NUMERIC, effective_date DATE ) SERVER file_server OPTIONS (filename '{}', format 'csv');",
            csv.display()
        ),
    )
    .await;
    exec(
        &client,
        &proxy,
        "SELECT pgtrickle.create_stream_table( name => 'revenue_in_usd', query => $$ SELECT o.customer_id, SUM(o.total * er.rate) AS revenue_usd FROM orders o JOIN exchange_rates er ON er.currency = o.currency AND er.effective_date = CURRENT_DATE GROUP BY o.customer_id $$, schedule => '1m' );",
    )
    .await;

    let check_all = |step: &'static str| {
        let client = &client;
        let proxy = &proxy;
        async move {
            for (st, cols, q) in [
                ("product_summary", PRODUCT_SUMMARY_COLS, PRODUCT_SUMMARY_Q),
                ("order_product_summary", ORDER_PRODUCT_COLS, ORDER_PRODUCT_Q),
                ("revenue_in_usd", REVENUE_COLS, REVENUE_Q),
            ] {
                let differing = rows_differing(client, st, cols, q).await;
                assert_eq!(
                    differing,
                    0,
                    "{step}: {st} differs from its query by {differing} rows\n{st}: {}\n\
                     query: {}\nproxy log:\n{}",
                    contents(client, &format!("SELECT {cols} FROM {st}")).await,
                    contents(client, q).await,
                    proxy.log()
                );
            }
        }
    };
    check_all("right after create").await;
    // The join matched something: the CSV's dates are today's.
    assert!(count(&client, "SELECT count(*) FROM revenue_in_usd").await > 0);
    // One mirror per foreign source.
    assert_eq!(
        mirror_count(&client).await,
        2,
        "one mirror per foreign table"
    );
    for foreign in ["remote_products", "exchange_rates"] {
        let mirror = mirror_of(&client, foreign).await;
        assert!(relation_exists(&client, &mirror).await, "{mirror} missing");
    }

    // Remote inserts, updates and deletes.
    remote.psql(
        "INSERT INTO products VALUES (6, 'kite', 'toys', 15), (7, 'drill', 'tools', 80); \
         UPDATE products SET price = 22.75 WHERE id = 2; \
         UPDATE products SET category = 'books' WHERE id = 3; \
         UPDATE products SET price = 3 WHERE id = 5; \
         DELETE FROM products WHERE id = 1",
    );
    for st in ["product_summary", "order_product_summary", "revenue_in_usd"] {
        refresh(&client, &proxy, st).await;
    }
    check_all("after remote writes").await;

    // Local writes to orders.
    exec(
        &client,
        &proxy,
        "INSERT INTO orders (customer_id, product_id, total, currency) VALUES \
         (9, 6, 100, 'EUR'), (9, 7, 50, 'GBP'), (1, 2, 7, 'USD'); \
         UPDATE orders SET total = total + 1 WHERE id % 5 = 0; \
         UPDATE orders SET currency = 'EUR' WHERE id % 7 = 0; \
         DELETE FROM orders WHERE id % 6 = 0",
    )
    .await;
    for st in ["order_product_summary", "revenue_in_usd", "product_summary"] {
        refresh(&client, &proxy, st).await;
    }
    check_all("after local writes").await;

    // The CSV replaced atomically, same size, new rates (and a new mtime).
    let before = contents(
        &client,
        "SELECT customer_id, revenue_usd FROM revenue_in_usd",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_atomically(&csv, &rates_csv(&today, &yesterday, "1.11", "1.30"));
    refresh(&client, &proxy, "revenue_in_usd").await;
    check_all("after the CSV was replaced").await;
    assert_ne!(
        contents(
            &client,
            "SELECT customer_id, revenue_usd FROM revenue_in_usd"
        )
        .await,
        before,
        "the new rates were not picked up"
    );
}

// ---------------------------------------------------------------------------------------------
// Duplicates and NULLs
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_null_foreign_rows_are_ordinary_rows() {
    let fdw = fdw_setup(
        "CREATE TABLE items (k int, v text); \
         INSERT INTO items VALUES (1, 'a'), (1, 'a'), (2, NULL), (2, NULL), (NULL, NULL), \
         (NULL, NULL), (3, 'c')",
        "60000",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(
        client,
        proxy,
        "CREATE FOREIGN TABLE remote_items (k int, v text) SERVER remote_analytics \
         OPTIONS (table_name 'items')",
    )
    .await;
    let bag_q = "SELECT k, v FROM remote_items";
    let by_v_q = "SELECT v, count(*) AS n, sum(k) AS s FROM remote_items GROUP BY v";
    create_st(client, proxy, "items_bag", bag_q, ", schedule => '1h'").await;
    create_st(client, proxy, "items_by_v", by_v_q, ", schedule => '1h'").await;
    let mirror_name = mirror_of(client, "remote_items").await;
    let mirror = &mirror_name;

    let check = |step: &'static str| async move {
        for (st, cols, q) in [
            ("items_bag", "k, v", bag_q),
            ("items_by_v", "v, n, s", by_v_q),
        ] {
            let differing = rows_differing(client, st, cols, q).await;
            assert_eq!(
                differing,
                0,
                "{step}: {st} differs by {differing} rows\n{st}: {}\nquery: {}\nproxy log:\n{}",
                contents(client, &format!("SELECT {cols} FROM {st}")).await,
                contents(client, q).await,
                proxy.log()
            );
        }
        // The mirror holds the foreign table's rows, duplicates and NULLs included.
        assert_eq!(
            rows_differing(client, mirror, "k, v", bag_q).await,
            0,
            "{step}: mirror {mirror} differs from the foreign table\nmirror: {}\nforeign: {}",
            contents(client, &format!("SELECT k, v FROM {mirror}")).await,
            contents(client, bag_q).await
        );
    };
    check("after create").await;
    assert_eq!(count(client, "SELECT count(*) FROM items_bag").await, 7);

    // Delete one of two duplicates: one row disappeared.
    fdw.remote.psql(
        "DELETE FROM items WHERE ctid = (SELECT ctid FROM items WHERE k = 1 AND v = 'a' LIMIT 1)",
    );
    refresh(client, proxy, "items_bag").await;
    let poll = poll_of(client, proxy, "public.remote_items").await;
    assert_eq!(poll.rows_changed, 1, "one duplicate deleted: {poll:?}");
    assert_eq!(poll.rows_scanned, 6, "{poll:?}");
    refresh(client, proxy, "items_by_v").await;
    check("one of two duplicates deleted").await;
    assert_eq!(
        count(
            client,
            "SELECT count(*) FROM items_bag WHERE k = 1 AND v = 'a'"
        )
        .await,
        1
    );

    // NULL to a value: two rows disappear, two appear.
    fdw.remote
        .psql("UPDATE items SET v = 'z' WHERE k = 2 AND v IS NULL");
    refresh(client, proxy, "items_by_v").await;
    let poll = poll_of(client, proxy, "public.remote_items").await;
    assert_eq!(poll.rows_changed, 4, "two NULLs became 'z': {poll:?}");
    refresh(client, proxy, "items_bag").await;
    check("NULL updated to a value").await;

    // And back to NULL.
    fdw.remote.psql("UPDATE items SET v = NULL WHERE v = 'z'");
    refresh(client, proxy, "items_bag").await;
    refresh(client, proxy, "items_by_v").await;
    check("value updated back to NULL").await;

    // An all-NULL duplicate removed, another added twice, a duplicate of an existing row.
    fdw.remote.psql(
        "DELETE FROM items WHERE ctid = (SELECT ctid FROM items WHERE k IS NULL LIMIT 1); \
         INSERT INTO items VALUES (NULL, NULL), (NULL, NULL), (3, 'c')",
    );
    refresh(client, proxy, "items_bag").await;
    refresh(client, proxy, "items_by_v").await;
    check("all-NULL rows and duplicates added").await;
    assert_eq!(
        count(
            client,
            "SELECT count(*) FROM items_bag WHERE k IS NULL AND v IS NULL"
        )
        .await,
        3
    );
}

// ---------------------------------------------------------------------------------------------
// cdc_mode => 'wal'
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_cdc_mode_over_a_foreign_table_is_refused_and_auto_works() {
    let fdw = fdw_setup(
        "CREATE TABLE products (id int, category text, price numeric); \
         INSERT INTO products VALUES (1, 'a', 1), (2, 'b', 2)",
        "60000",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(client, proxy, REMOTE_PRODUCTS).await;
    let q = "SELECT category, count(*) AS n FROM remote_products GROUP BY category";
    let err = client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table(name => 'by_wal', query => $q${q}$q$, \
             cdc_mode => 'wal')"
        ))
        .await
        .expect_err("cdc_mode => 'wal' over a foreign table was accepted");
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err:?}");
    if relation_exists(client, "pgtrickle.pgt_stream_tables").await {
        assert_eq!(
            count(client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
            0,
            "the refused stream table was left in the catalog"
        );
    }
    assert!(
        !relation_exists(client, "by_wal").await,
        "storage table left behind"
    );
    assert_eq!(mirror_count(client).await, 0, "a mirror left behind");

    for (name, mode) in [("by_auto", "'auto'"), ("by_trigger", "'trigger'")] {
        create_st(client, proxy, name, q, &format!(", cdc_mode => {mode}")).await;
    }
    create_st(client, proxy, "by_default", q, "").await;
    assert_eq!(
        mirror_count(client).await,
        1,
        "three stream tables over one foreign table: one mirror"
    );
    fdw.remote.psql("INSERT INTO products VALUES (3, 'a', 3)");
    for st in ["by_auto", "by_trigger", "by_default"] {
        refresh(client, proxy, st).await;
        assert_equal(client, proxy, st, "category, n", q).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The first stream table of a database reads a foreign table
// ---------------------------------------------------------------------------------------------

/// In a database other than the proxy's `--upstream` one nothing has created the pgtrickle
/// catalog yet: the first create there sets it up in its own transaction, and must still be
/// able to create and fill the mirror (on the poller's connections) before it populates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_stream_table_of_a_database_may_read_a_foreign_table() {
    let remote = Cluster::start();
    remote.psql(PRODUCTS);
    let local = Cluster::start();
    local.psql("CREATE DATABASE fresh");
    let proxy = proxy_for(
        proxy_bin!(),
        &local,
        &[
            "--scheduler-interval-ms",
            "60000",
            "--poll-timeout-seconds",
            "20",
        ],
    );
    let client = connect(&proxy.conninfo("postgres", "fresh")).await;
    exec(
        &client,
        &proxy,
        &format!(
            "{} CREATE FOREIGN TABLE remote_products (id int, category text, price numeric) \
             SERVER remote_analytics OPTIONS (table_name 'products')",
            postgres_fdw_server_sql("remote_analytics", &remote)
        ),
    )
    .await;
    let q = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
             GROUP BY category";
    let started = Instant::now();
    create_st(&client, &proxy, "summary", q, ", schedule => '1h'").await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the create took {:?}",
        started.elapsed()
    );
    assert_equal(&client, &proxy, "summary", "category, n, total", q).await;
    remote.psql("UPDATE products SET price = 0 WHERE id < 4");
    refresh(&client, &proxy, "summary").await;
    assert_equal(&client, &proxy, "summary", "category, n, total", q).await;
}

/// The key of the advisory lock the catalog set-up takes (proxy/src/engine/catalog.rs).
const CATALOG_SETUP_LOCK: i64 = 0x7067_7472_6963_6b6c;

async fn advisory_waiters(monitor: &Client) -> i64 {
    count(
        monitor,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
    )
    .await
}

/// The `--upstream` database's scheduler sets up the catalog at start-up, in a transaction of
/// its own; a create that checked for the catalog before that commit sets it up again in its own
/// transaction. The create must still be able to prepare the mirror on the poller's connections.
/// The race is made certain by holding the set-up's advisory lock until both wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_racing_the_schedulers_catalog_setup_completes() {
    let remote = Cluster::start();
    remote.psql(PRODUCTS);
    let local = Cluster::start();
    local.psql(&format!(
        "{} CREATE FOREIGN TABLE remote_products (id int, category text, price numeric) \
         SERVER remote_analytics OPTIONS (table_name 'products')",
        postgres_fdw_server_sql("remote_analytics", &remote)
    ));
    let holder = connect(&local.conninfo("postgres", "postgres")).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({CATALOG_SETUP_LOCK})"
        ))
        .await
        .unwrap();
    let monitor = connect(&local.conninfo("postgres", "postgres")).await;
    let proxy = proxy_for(
        proxy_bin!(),
        &local,
        &[
            "--scheduler-interval-ms",
            "60000",
            "--poll-timeout-seconds",
            "20",
        ],
    );
    // The scheduler waits for the set-up lock...
    let started = Instant::now();
    while advisory_waiters(&monitor).await < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the scheduler never waited for the catalog set-up lock\nproxy log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...then the create does too.
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let q = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
             GROUP BY category";
    let create = tokio::spawn(async move {
        let started = Instant::now();
        let r = client
            .batch_execute(&format!(
                "SELECT pgtrickle.create_stream_table(name => 'summary', query => $q${q}$q$, \
                 schedule => '1h')"
            ))
            .await;
        (client, r, started.elapsed())
    });
    let started = Instant::now();
    while advisory_waiters(&monitor).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the create never waited for the catalog set-up lock\nproxy log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holder.batch_execute("COMMIT").await.unwrap();
    let (client, result, took) = create.await.unwrap();
    if let Err(e) = &result {
        panic!(
            "the create racing the scheduler's catalog set-up failed after {took:?}: {e:?}\n\
             proxy log:\n{}",
            proxy.log()
        );
    }
    assert!(
        took < Duration::from_secs(15),
        "the create racing the scheduler's catalog set-up took {took:?}"
    );
    assert_equal(&client, &proxy, "summary", "category, n, total", q).await;
}

// ---------------------------------------------------------------------------------------------
// alter_stream_table with a new query over a foreign table
// ---------------------------------------------------------------------------------------------

/// A new query re-plans and repopulates (STREAM_TABLES.md); over a foreign table whose only
/// reader is the altered stream table, the mirror is rebuilt on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_stream_table_with_a_new_query_over_a_foreign_table_works() {
    let fdw = fdw_setup(PRODUCTS, "60000").await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(client, proxy, REMOTE_PRODUCTS).await;
    let q = "SELECT category, count(*) AS n FROM remote_products GROUP BY category";
    create_st(client, proxy, "summary", q, ", schedule => '1h'").await;
    let new_q = "SELECT category, count(*) AS n FROM remote_products WHERE price > 5 \
                 GROUP BY category";
    let started = Instant::now();
    exec(
        client,
        proxy,
        &format!("SELECT pgtrickle.alter_stream_table(name => 'summary', query => $q${new_q}$q$)"),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the alter took {:?}",
        started.elapsed()
    );
    assert_equal(client, proxy, "summary", "category, n", new_q).await;
    fdw.remote
        .psql("UPDATE products SET price = 0 WHERE id > 25");
    refresh(client, proxy, "summary").await;
    assert_equal(client, proxy, "summary", "category, n", new_q).await;
    assert_eq!(mirror_count(client).await, 1, "one mirror after the alter");
}

// ---------------------------------------------------------------------------------------------
// Names, and a stream table over a stream table over a foreign table
// ---------------------------------------------------------------------------------------------

/// `pgt_poll_status().source` is the foreign table's name as format('%I.%I') prints it (quoted
/// where needed), and a chain (a stream table reading a stream table over a foreign table)
/// converges on its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_names_and_a_chain_over_a_foreign_table() {
    let fdw = fdw_setup(PRODUCTS, "200").await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(
        client,
        proxy,
        "CREATE SCHEMA ext; \
         CREATE FOREIGN TABLE ext.\"Remote Products\" (id int, category text, price numeric) \
         SERVER remote_analytics OPTIONS (schema_name 'public', table_name 'products')",
    )
    .await;
    let base_q = "SELECT category, count(*) AS n, sum(price) AS total \
                  FROM ext.\"Remote Products\" GROUP BY category";
    create_st(client, proxy, "base", base_q, ", schedule => '1s'").await;
    let top_q = "SELECT sum(n) AS products, max(total) AS biggest FROM base";
    create_st(client, proxy, "top", top_q, ", schedule => '1s'").await;
    let expected_source: String = client
        .query_one("SELECT format('%I.%I', 'ext', 'Remote Products')", &[])
        .await
        .unwrap()
        .get(0);
    let poll = poll_of(client, proxy, &expected_source).await;
    let mirror = mirror_of(client, "ext.\"Remote Products\"").await;
    assert!(
        poll.mirror
            .ends_with(mirror.trim_start_matches("pgtrickle_changes.")),
        "mirror {:?}, expected {mirror}",
        poll.mirror
    );

    fdw.remote
        .psql("INSERT INTO products VALUES (100, 'c9', 1000); DELETE FROM products WHERE id < 5");
    let top_over_query = "SELECT sum(n) AS products, max(total) AS biggest FROM \
                          (SELECT category, count(*) AS n, sum(price) AS total \
                           FROM ext.\"Remote Products\" GROUP BY category) b";
    await_equal(
        client,
        proxy,
        "top",
        "products, biggest",
        top_over_query,
        Duration::from_secs(20),
    )
    .await;
    assert_equal(client, proxy, "base", "category, n, total", base_q).await;
}

// ---------------------------------------------------------------------------------------------
// A slow poll does not hold up other stream tables
// ---------------------------------------------------------------------------------------------

/// The scheduler polls in the background: while a foreign source takes seconds to read, a
/// stream table over a local table keeps refreshing on its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_poll_does_not_hold_up_other_stream_tables() {
    // Every read of the remote view takes 6 s.
    let fdw = fdw_setup(
        "CREATE VIEW slow AS SELECT g AS id FROM generate_series(1, 5) g, pg_sleep(6)",
        "200",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(
        client,
        proxy,
        "CREATE FOREIGN TABLE slow_ids (id int) SERVER remote_analytics \
         OPTIONS (table_name 'slow'); \
         CREATE TABLE events (kind text)",
    )
    .await;
    create_st(
        client,
        proxy,
        "slow_count",
        "SELECT count(*) AS n FROM slow_ids",
        ", schedule => '1s'",
    )
    .await;
    let q = "SELECT kind, count(*) AS n FROM events GROUP BY kind";
    create_st(client, proxy, "event_counts", q, ", schedule => '1s'").await;
    // From now on the scheduler keeps a poll of slow_ids running most of the time.
    for round in 0..3 {
        exec(
            client,
            proxy,
            &format!("INSERT INTO events VALUES ('k{round}')"),
        )
        .await;
        await_equal(
            client,
            proxy,
            "event_counts",
            "kind, n",
            q,
            Duration::from_secs(4),
        )
        .await;
    }
    assert_equal(
        client,
        proxy,
        "slow_count",
        "n",
        "SELECT count(*) AS n FROM slow_ids",
    )
    .await;
}
