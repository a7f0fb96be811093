//! Foreign-table sources that fail, through the proxy with real clusters (a remote one reached
//! with postgres_fdw, a local one the proxy fronts; see foreign_tables.rs): a remote that goes
//! down and comes back (manual refresh errors, scheduled polls report the error without
//! suspending, then converge); local changes of a mixed query applied while the remote is down;
//! file_fdw's missing, half-written and atomically replaced files and the skipped scan of an
//! unchanged file; a changed foreign-table definition, which fails refreshes and keeps the
//! contents until the stream tables over it are created again.

mod foreign_support;

use std::time::{Duration, Instant};

use foreign_support::{
    assert_equal, assert_refresh_fails_keeping, await_equal, create_st, csv_dir, fdw_setup,
    mirror_of, poll_of, poll_status, refresh_error, write_atomically, PRODUCTS, REMOTE_PRODUCTS,
};
use pgtrickle_e2e::{
    await_catalog, connect, contents, count, exec, refresh, rows_differing, setup,
};
use tokio_postgres::Client;

/// The status of `st` in pgt_status(): (status, last_error).
async fn st_status(client: &Client, st: &str) -> (String, Option<String>) {
    let row = client
        .query_one(
            "SELECT status, last_error FROM pgtrickle.pgt_status() WHERE name = $1",
            &[&format!("public.{st}")],
        )
        .await
        .unwrap_or_else(|e| panic!("pgt_status() of {st}: {e:?}"));
    (row.get(0), row.get(1))
}

// ---------------------------------------------------------------------------------------------
// A remote that goes down and comes back
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_goes_down_fails_polls_without_suspending_and_converges_when_back() {
    let mut fdw = fdw_setup(
        "CREATE TABLE products (id int PRIMARY KEY, category text, price numeric); \
         INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 30) g; \
         CREATE TABLE stock (product_id int, qty int); \
         INSERT INTO stock SELECT g % 10, g FROM generate_series(1, 50) g",
        "200",
    )
    .await;
    exec(
        &fdw.client,
        &fdw.proxy,
        "CREATE FOREIGN TABLE remote_products (id int, category text, price numeric) \
         SERVER remote_analytics OPTIONS (table_name 'products'); \
         CREATE FOREIGN TABLE remote_stock (product_id int, qty int) \
         SERVER remote_analytics OPTIONS (table_name 'stock')",
    )
    .await;
    let slow_q = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
                  GROUP BY category";
    let fast_q = "SELECT product_id, sum(qty) AS qty FROM remote_stock GROUP BY product_id";
    create_st(
        &fdw.client,
        &fdw.proxy,
        "slow_summary",
        slow_q,
        ", schedule => '1h'",
    )
    .await;
    create_st(
        &fdw.client,
        &fdw.proxy,
        "fast_stock",
        fast_q,
        ", schedule => '1s'",
    )
    .await;
    assert_equal(
        &fdw.client,
        &fdw.proxy,
        "slow_summary",
        "category, n, total",
        slow_q,
    )
    .await;
    assert_equal(
        &fdw.client,
        &fdw.proxy,
        "fast_stock",
        "product_id, qty",
        fast_q,
    )
    .await;
    let slow_before = contents(&fdw.client, "SELECT category, n, total FROM slow_summary").await;
    let fast_before = contents(&fdw.client, "SELECT product_id, qty FROM fast_stock").await;

    fdw.remote.stop();

    // A manual refresh fails and keeps the contents.
    assert_refresh_fails_keeping(
        &fdw.client,
        &fdw.proxy,
        "slow_summary",
        "category, n, total",
        &slow_before,
        &["remote_products", "remote_analytics", "connect"],
        "with the remote down",
    )
    .await;

    // Scheduled polls fail: the error shows in both status functions, more times than the
    // three failures that suspend a stream table, and fast_stock stays ACTIVE.
    let started = Instant::now();
    loop {
        let poll = poll_status(&fdw.client, "public.remote_stock").await;
        let (status, last_error) = st_status(&fdw.client, "fast_stock").await;
        assert_eq!(
            status,
            "ACTIVE",
            "fast_stock left ACTIVE because of poll failures (last_error {last_error:?}, \
             poll {poll:?})\nproxy log:\n{}",
            fdw.proxy.log()
        );
        let poll_failed = poll.as_ref().is_some_and(|p| {
            p.consecutive_errors >= 4 && p.last_error.as_deref().is_some_and(|e| !e.is_empty())
        });
        if poll_failed && last_error.as_deref().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "scheduled polls of a remote that is down did not report 4 failures within 45 s: \
             pgt_status last_error {last_error:?}, poll {poll:?}\nproxy log:\n{}",
            fdw.proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        contents(&fdw.client, "SELECT product_id, qty FROM fast_stock").await,
        fast_before,
        "fast_stock changed while its source could not be read"
    );

    // The remote comes back and changes: fast_stock converges by itself (failed polls are
    // retried with a backoff of at most 60 s).
    fdw.remote.start_again();
    fdw.remote.psql(
        "INSERT INTO stock VALUES (3, 1000), (42, 7); DELETE FROM stock WHERE qty % 4 = 0; \
         UPDATE stock SET qty = qty + 1 WHERE product_id = 5; \
         UPDATE products SET price = price * 2 WHERE id % 5 = 0",
    );
    await_equal(
        &fdw.client,
        &fdw.proxy,
        "fast_stock",
        "product_id, qty",
        fast_q,
        Duration::from_secs(70),
    )
    .await;
    let poll = poll_of(&fdw.client, &fdw.proxy, "public.remote_stock").await;
    assert_eq!(poll.consecutive_errors, 0, "after a good poll: {poll:?}");
    assert!(poll.last_error.is_none(), "after a good poll: {poll:?}");
    // The readers' last_error goes once a poll succeeded (and a refresh recorded it).
    let started = Instant::now();
    loop {
        let (status, last_error) = st_status(&fdw.client, "fast_stock").await;
        assert_eq!(status, "ACTIVE");
        if last_error.as_deref().unwrap_or("").is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "fast_stock keeps last_error {last_error:?} after its source was polled again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And a manual refresh works again.
    refresh(&fdw.client, &fdw.proxy, "slow_summary").await;
    assert_equal(
        &fdw.client,
        &fdw.proxy,
        "slow_summary",
        "category, n, total",
        slow_q,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Local changes of a mixed query are applied against the mirror
// ---------------------------------------------------------------------------------------------

/// Refreshes read the mirror, never the foreign table: with the remote down, the scheduler's
/// polls fail, but a change of the local table in `orders JOIN remote_products` is still
/// applied (against the mirror, which holds the remote rows of the last good poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_changes_of_a_mixed_query_are_applied_while_the_remote_is_down() {
    let mut fdw = fdw_setup(
        "CREATE TABLE products (id int PRIMARY KEY, category text, price numeric); \
         INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 10) g",
        "200",
    )
    .await;
    exec(
        &fdw.client,
        &fdw.proxy,
        "CREATE FOREIGN TABLE remote_products (id int, category text, price numeric) \
         SERVER remote_analytics OPTIONS (table_name 'products'); \
         CREATE TABLE orders (id serial, customer_id int, product_id int, total numeric); \
         INSERT INTO orders (customer_id, product_id, total) \
         SELECT g % 3, g % 12, g FROM generate_series(1, 30) g",
    )
    .await;
    let q = "SELECT o.customer_id, rp.category, SUM(o.total) AS total_spent, COUNT(*) AS n \
             FROM orders o JOIN remote_products rp ON rp.id = o.product_id \
             GROUP BY o.customer_id, rp.category";
    let cols = "customer_id, category, total_spent, n";
    create_st(&fdw.client, &fdw.proxy, "mixed", q, ", schedule => '1s'").await;
    assert_equal(&fdw.client, &fdw.proxy, "mixed", cols, q).await;
    let mirror = mirror_of(&fdw.client, "remote_products").await;
    // The same query over the mirror: what the stream table must hold while the remote is
    // unreachable.
    let over_mirror = q.replace("remote_products rp", &format!("{mirror} rp"));

    fdw.remote.stop();
    exec(
        &fdw.client,
        &fdw.proxy,
        "INSERT INTO orders (customer_id, product_id, total) VALUES (7, 1, 100), (7, 2, 5); \
         DELETE FROM orders WHERE id % 4 = 0 AND id <= 30; UPDATE orders SET total = total * 2 \
         WHERE id < 6",
    )
    .await;
    let started = Instant::now();
    while rows_differing(&fdw.client, "mixed", cols, &over_mirror).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "local changes were not applied while the remote was down\nmixed: {}\n\
             over the mirror: {}\nstatus: {:?}\npoll: {:?}\nproxy log:\n{}",
            contents(&fdw.client, &format!("SELECT {cols} FROM mixed")).await,
            contents(&fdw.client, &over_mirror).await,
            st_status(&fdw.client, "mixed").await,
            poll_status(&fdw.client, "public.remote_products").await,
            fdw.proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(
            &fdw.client,
            "SELECT count(*) FROM mixed WHERE customer_id = 7"
        )
        .await,
        2,
        "the new customer's orders are missing"
    );
    assert_eq!(st_status(&fdw.client, "mixed").await.0, "ACTIVE");

    // Back up: remote changes arrive too.
    fdw.remote.start_again();
    fdw.remote
        .psql("UPDATE products SET category = 'moved' WHERE id IN (1, 5)");
    await_equal(
        &fdw.client,
        &fdw.proxy,
        "mixed",
        cols,
        q,
        Duration::from_secs(70),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// file_fdw
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_fdw_bad_files_fail_good_files_converge_and_unchanged_files_are_not_scanned() {
    let (_local, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    let dir = csv_dir();
    let csv = dir.path().join("rates.csv");
    let good_v1 = "USD,1.00,x\nEUR,1.08,x\nGBP,1.27,x\nEUR,1.08,x\nCHF,,x\n";
    let good_v2 = "USD,1.00,y\nEUR,1.10,y\nGBP,1.27,y\nJPY,0.01,y\nCHF,,y\n";
    write_atomically(&csv, good_v1);
    exec(
        &client,
        &proxy,
        &format!(
            "CREATE EXTENSION file_fdw; CREATE SERVER file_server FOREIGN DATA WRAPPER file_fdw; \
             CREATE FOREIGN TABLE rates (currency text, rate numeric, tag text) \
             SERVER file_server OPTIONS (filename '{}', format 'csv')",
            csv.display()
        ),
    )
    .await;
    let q = "SELECT currency, rate, tag FROM rates";
    let cols = "currency, rate, tag";
    // Older than the first scan by more than a second, so that the next poll may skip it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    create_st(&client, &proxy, "rate_list", q, ", schedule => '1h'").await;
    assert_equal(&client, &proxy, "rate_list", cols, q).await;
    let first = poll_of(&client, &proxy, "public.rates").await;
    assert_eq!(first.rows_scanned, 5, "{first:?}");
    assert!(!first.scan_skipped, "the first poll must scan: {first:?}");

    // Unchanged file: the scan is skipped.
    refresh(&client, &proxy, "rate_list").await;
    let poll = poll_of(&client, &proxy, "public.rates").await;
    assert!(
        poll.scan_skipped,
        "an unchanged file was scanned again: {poll:?}"
    );
    assert_eq!(poll.rows_scanned, 0, "{poll:?}");
    assert_eq!(poll.rows_changed, 0, "{poll:?}");
    assert_equal(&client, &proxy, "rate_list", cols, q).await;
    let kept = contents(&client, &format!("SELECT {cols} FROM rate_list")).await;

    // Missing file.
    let aside = dir.path().join("rates.csv.aside");
    std::fs::rename(&csv, &aside).expect("move the csv aside");
    assert_refresh_fails_keeping(
        &client,
        &proxy,
        "rate_list",
        cols,
        &kept,
        &["rates", "No such file"],
        "with the file missing",
    )
    .await;

    // Half-written file: the last row cut in the middle.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_atomically(&csv, "USD,1.00,z\nEUR,1.12,z\nGBP,1.2");
    assert_refresh_fails_keeping(
        &client,
        &proxy,
        "rate_list",
        cols,
        &kept,
        &["rates", "missing data"],
        "with a half-written file",
    )
    .await;

    // A good file put in place atomically, the same size as the first one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(good_v1.len(), good_v2.len());
    write_atomically(&csv, good_v2);
    refresh(&client, &proxy, "rate_list").await;
    assert_equal(&client, &proxy, "rate_list", cols, q).await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM rate_list WHERE tag = 'y'").await,
        5,
        "the new file was not picked up"
    );
    let poll = poll_of(&client, &proxy, "public.rates").await;
    assert!(!poll.scan_skipped, "{poll:?}");
    assert_eq!(poll.rows_scanned, 5, "{poll:?}");
    assert_eq!(poll.consecutive_errors, 0, "{poll:?}");

    // The same contents written again: scanned (new mtime), nothing changed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_atomically(&csv, good_v2);
    refresh(&client, &proxy, "rate_list").await;
    let poll = poll_of(&client, &proxy, "public.rates").await;
    assert!(
        !poll.scan_skipped,
        "a rewritten file was not scanned: {poll:?}"
    );
    assert_eq!(poll.rows_scanned, 5, "{poll:?}");
    assert_eq!(poll.rows_changed, 0, "identical contents: {poll:?}");
    assert_equal(&client, &proxy, "rate_list", cols, q).await;

    // Replaced again, same size, after more than a second: a new mtime is a new scan.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_atomically(&csv, &good_v2.replace("1.10", "1.11"));
    refresh(&client, &proxy, "rate_list").await;
    assert_equal(&client, &proxy, "rate_list", cols, q).await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM rate_list WHERE rate = 1.11").await,
        1,
        "the replaced file (same size, new mtime) was not picked up"
    );
}

// ---------------------------------------------------------------------------------------------
// A foreign-table definition that changed
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_foreign_table_definition_fails_the_refresh_and_keeps_the_contents() {
    let fdw = fdw_setup(PRODUCTS, "60000").await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(client, proxy, REMOTE_PRODUCTS).await;
    let q = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
             GROUP BY category";
    let cols = "category, n, total";
    create_st(client, proxy, "summary", q, ", schedule => '1h'").await;
    assert_equal(client, proxy, "summary", cols, q).await;
    let kept = contents(client, &format!("SELECT {cols} FROM summary")).await;

    fdw.remote.psql(
        "ALTER TABLE products ADD COLUMN extra int; INSERT INTO products VALUES (99, 'c1', 5, 1)",
    );
    exec(
        client,
        proxy,
        "ALTER FOREIGN TABLE remote_products ADD COLUMN extra int",
    )
    .await;
    let code = assert_refresh_fails_keeping(
        client,
        proxy,
        "summary",
        cols,
        &kept,
        &["remote_products", "column"],
        "after the definition changed",
    )
    .await;
    // And it keeps failing (it is not a transient error).
    let (code2, _) = refresh_error(client, proxy, "summary").await;
    assert_eq!(code2, code, "the second refresh failed differently");
}

// ---------------------------------------------------------------------------------------------
// Recovering from a changed foreign-table definition
// ---------------------------------------------------------------------------------------------

/// After `ALTER FOREIGN TABLE`, the error tells to drop the stream tables over it and create
/// them again (as the docs do); then they work again, and may use the new column.
/// `alter_stream_table` keeps the old mirror, so it fails the same way and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_foreign_table_definition_recovers_when_the_stream_table_is_recreated() {
    let fdw = fdw_setup(
        "CREATE TABLE products (id int, category text, price numeric); \
         INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 30) g; \
         CREATE TABLE stock (product_id int, qty int); \
         INSERT INTO stock SELECT g % 10, g FROM generate_series(1, 50) g",
        "60000",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(
        client,
        proxy,
        "CREATE FOREIGN TABLE remote_products (id int, category text, price numeric) \
         SERVER remote_analytics OPTIONS (table_name 'products'); \
         CREATE FOREIGN TABLE remote_stock (product_id int, qty int) \
         SERVER remote_analytics OPTIONS (table_name 'stock')",
    )
    .await;
    let q = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
             GROUP BY category";
    let stock_q = "SELECT product_id, sum(qty) AS qty FROM remote_stock GROUP BY product_id";
    create_st(client, proxy, "summary", q, ", schedule => '1h'").await;
    create_st(client, proxy, "stock_sum", stock_q, ", schedule => '1h'").await;
    fdw.remote.psql(
        "ALTER TABLE products ADD COLUMN extra int; UPDATE products SET extra = id % 2; \
         ALTER TABLE stock ADD COLUMN extra int; UPDATE stock SET extra = 1",
    );
    exec(
        client,
        proxy,
        "ALTER FOREIGN TABLE remote_products ADD COLUMN extra int; \
         ALTER FOREIGN TABLE remote_stock ADD COLUMN extra int",
    )
    .await;
    refresh_error(client, proxy, "summary").await;
    refresh_error(client, proxy, "stock_sum").await;

    // As the docs say: dropped and created again, now using the new column.
    exec(
        client,
        proxy,
        "SELECT pgtrickle.drop_stream_table('stock_sum')",
    )
    .await;
    let new_q = "SELECT product_id, extra, sum(qty) AS qty FROM remote_stock \
                 GROUP BY product_id, extra";
    create_st(client, proxy, "stock_sum", new_q, ", schedule => '1h'").await;
    assert_equal(client, proxy, "stock_sum", "product_id, extra, qty", new_q).await;
    fdw.remote
        .psql("UPDATE stock SET extra = 2 WHERE product_id = 3");
    refresh(client, proxy, "stock_sum").await;
    assert_equal(client, proxy, "stock_sum", "product_id, extra, qty", new_q).await;

    // alter_stream_table keeps the mirror of a source its new query still reads, so it fails as
    // the refresh does and changes nothing; dropping and creating, as the error says, recovers.
    let alter = client
        .batch_execute(&format!(
            "SELECT pgtrickle.alter_stream_table(name => 'summary', query => $q${q}$q$)"
        ))
        .await
        .expect_err("alter over a foreign table whose columns changed");
    let db = alter.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "55000", "{db:?}");
    assert!(db.message().contains("drop those stream tables"), "{db:?}");
    exec(
        client,
        proxy,
        "SELECT pgtrickle.drop_stream_table('summary')",
    )
    .await;
    create_st(client, proxy, "summary", q, ", schedule => '1h'").await;
    fdw.remote
        .psql("INSERT INTO products VALUES (100, 'c1', 7, 1)");
    refresh(client, proxy, "summary").await;
    assert_equal(client, proxy, "summary", "category, n, total", q).await;
}
