//! Foreign tables as stream table sources, polled by content hashing, through the proxy with
//! real clusters: a "remote" cluster reached with postgres_fdw and a "local" one the proxy
//! fronts, and CSV files read with file_fdw.
//!
//! Covered: the founding document's three foreign examples verbatim; duplicates and NULLs in
//! foreign rows; a remote that goes down and comes back (manual refresh errors, scheduled polls
//! report the error without suspending, then converge); a proxy restart between polls; one
//! mirror shared by two stream tables and dropped with the last; a poll with no changes writing
//! nothing; file_fdw's missing, half-written and atomically replaced files and the skipped scan
//! of an unchanged file; `cdc_mode => 'wal'` refused; a changed foreign-table definition; the
//! first stream table of a database reading a foreign table, also while the scheduler sets up
//! the catalog; an owner that is not a superuser: the mirror and buffer are the proxy's role's
//! and the owner cannot touch them, a domain CHECK calling the owner's code is refused (at create
//! and when added later), a foreign table swapped for a view mid-poll is refused, and a dropped
//! mirror is prepared again by the next poll.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgtrickle_e2e::{
    await_catalog, await_true, connect, contents, count, postgres_fdw_server_sql, proxy_bin,
    proxy_for, rows_differing, Cluster, ProxyProcess,
};
use tokio_postgres::Client;

/// The remote table most tests read: 30 products in 3 categories.
const PRODUCTS: &str = "CREATE TABLE products (id int, category text, price numeric); \
    INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 30) g";

/// The local foreign table over it.
const REMOTE_PRODUCTS: &str = "CREATE FOREIGN TABLE remote_products \
    (id int, category text, price numeric) SERVER remote_analytics \
    OPTIONS (table_name 'products')";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A remote cluster, the local cluster the proxy fronts, the proxy, and a client through it
/// (as `postgres`) on which server `remote_analytics` reaches the remote.
struct Fdw {
    remote: Cluster,
    local: Cluster,
    proxy: ProxyProcess,
    client: Client,
}

/// Starts both clusters and the proxy (`--scheduler-interval-ms scheduler_ms`), runs
/// `remote_sql` on the remote and declares server `remote_analytics` in the local database.
async fn fdw_setup(remote_sql: &str, scheduler_ms: &str) -> Fdw {
    let remote = Cluster::start();
    remote.psql(remote_sql);
    let local = Cluster::start();
    // A poll that hangs fails after 30 s rather than the default five minutes (the tables
    // here are tiny).
    let proxy = proxy_for(
        proxy_bin!(),
        &local,
        &[
            "--scheduler-interval-ms",
            scheduler_ms,
            "--poll-timeout-seconds",
            "30",
        ],
    );
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(&postgres_fdw_server_sql("remote_analytics", &remote))
        .await
        .unwrap_or_else(|e| panic!("declare server remote_analytics: {e:?}"));
    await_catalog(&client, &proxy).await;
    Fdw {
        remote,
        local,
        proxy,
        client,
    }
}

/// Runs `sql` through `client`, panicking with the statement, the error and the proxy log.
async fn exec(client: &Client, proxy: &ProxyProcess, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}\nproxy log:\n{}", proxy.log()));
}

async fn create_st(client: &Client, proxy: &ProxyProcess, name: &str, query: &str, rest: &str) {
    exec(
        client,
        proxy,
        &format!(
            "SELECT pgtrickle.create_stream_table(name => '{name}', query => $q${query}$q$ \
             {rest})"
        ),
    )
    .await;
}

async fn refresh(client: &Client, proxy: &ProxyProcess, st: &str) {
    exec(
        client,
        proxy,
        &format!("SELECT pgtrickle.refresh_stream_table('{st}')"),
    )
    .await;
}

/// A refresh that must fail: returns the SQLSTATE and message of its error.
async fn refresh_error(client: &Client, proxy: &ProxyProcess, st: &str) -> (String, String) {
    let err = client
        .batch_execute(&format!("SELECT pgtrickle.refresh_stream_table('{st}')"))
        .await
        .err()
        .unwrap_or_else(|| {
            panic!(
                "refresh of {st} succeeded but should have failed\nproxy log:\n{}",
                proxy.log()
            )
        });
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("refresh of {st}: not a database error: {err:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// Asserts that a refresh's error message is not empty and names the foreign table or the
/// failure (one of `any_of`).
fn assert_error_names(code: &str, message: &str, any_of: &[&str]) {
    assert!(!message.is_empty(), "empty error message ({code})");
    assert!(
        any_of.iter().any(|w| message.contains(w)),
        "the error ({code}: {message}) names none of {any_of:?}"
    );
}

/// Asserts that a refresh of `st` fails (`situation` says why it should) with an error naming
/// one of `any_of`, and that `st` (columns `cols`) still holds `kept`. Returns the SQLSTATE.
async fn assert_refresh_fails_keeping(
    client: &Client,
    proxy: &ProxyProcess,
    st: &str,
    cols: &str,
    kept: &str,
    any_of: &[&str],
    situation: &str,
) -> String {
    let (code, message) = refresh_error(client, proxy, st).await;
    eprintln!("refresh {situation}: {code}: {message}");
    assert_error_names(&code, &message, any_of);
    assert_eq!(
        contents(client, &format!("SELECT {cols} FROM {st}")).await,
        kept,
        "{st} changed although its refresh failed ({situation})"
    );
    code
}

/// Asserts that stream table `st` (columns `cols`) equals `query` as a bag.
async fn assert_equal(client: &Client, proxy: &ProxyProcess, st: &str, cols: &str, query: &str) {
    let differing = rows_differing(client, st, cols, query).await;
    assert_eq!(
        differing,
        0,
        "{st} differs from its query by {differing} rows\n{st}: {}\nquery: {}\nproxy log:\n{}",
        contents(client, &format!("SELECT {cols} FROM {st}")).await,
        contents(client, query).await,
        proxy.log()
    );
}

/// Waits until `st` equals `query` (up to `limit`), checking every 200 ms.
async fn await_equal(
    client: &Client,
    proxy: &ProxyProcess,
    st: &str,
    cols: &str,
    query: &str,
    limit: Duration,
) {
    let started = Instant::now();
    while rows_differing(client, st, cols, query).await != 0 {
        assert!(
            started.elapsed() < limit,
            "{st} did not converge within {limit:?} without a manual refresh\n{st}: {}\n\
             query: {}\npoll status: {}\nproxy log:\n{}",
            contents(client, &format!("SELECT {cols} FROM {st}")).await,
            contents(client, query).await,
            contents(client, "SELECT * FROM pgtrickle.pgt_poll_status()").await,
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One row of `pgtrickle.pgt_poll_status()`.
#[derive(Debug)]
struct Poll {
    mirror: String,
    polled: bool,
    rows_scanned: i64,
    rows_changed: i64,
    scan_skipped: bool,
    consecutive_errors: i32,
    last_error: Option<String>,
}

/// The poll status of `source` (schema-qualified, as format('%I.%I') prints it), if any.
async fn poll_status(client: &Client, source: &str) -> Option<Poll> {
    let rows = client
        .query(
            "SELECT mirror, last_poll_at IS NOT NULL, duration_ms, rows_scanned, rows_changed, \
             scan_skipped, consecutive_errors, last_error \
             FROM pgtrickle.pgt_poll_status() WHERE source = $1",
            &[&source],
        )
        .await
        .unwrap_or_else(|e| panic!("pgt_poll_status(): {e:?}"));
    assert!(
        rows.len() <= 1,
        "{} poll status rows for {source}",
        rows.len()
    );
    rows.first().map(|r| {
        let _duration: Option<f64> = r.get(2);
        Poll {
            mirror: r.get(0),
            polled: r.get(1),
            rows_scanned: r.get(3),
            rows_changed: r.get(4),
            scan_skipped: r.get(5),
            consecutive_errors: r.get(6),
            last_error: r.get(7),
        }
    })
}

async fn poll_of(client: &Client, proxy: &ProxyProcess, source: &str) -> Poll {
    match poll_status(client, source).await {
        Some(poll) => poll,
        None => panic!(
            "no pgt_poll_status() row for {source}; all rows: {}\nproxy log:\n{}",
            contents(client, "SELECT * FROM pgtrickle.pgt_poll_status()").await,
            proxy.log()
        ),
    }
}

/// The mirror table of foreign table `foreign` (`pgtrickle_changes.mirror_<oid>`).
async fn mirror_of(client: &Client, foreign: &str) -> String {
    let oid: u32 = client
        .query_one(&format!("SELECT '{foreign}'::regclass::oid"), &[])
        .await
        .unwrap_or_else(|e| panic!("oid of {foreign}: {e:?}"))
        .get(0);
    format!("pgtrickle_changes.mirror_{oid}")
}

async fn table_exists(client: &Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

/// How many mirror tables exist.
async fn mirror_count(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgtrickle_changes' \
         AND tablename LIKE 'mirror\\_%'",
    )
    .await
}

/// Where every row version of `table` is (ctid and xmin): any row written or removed changes it.
async fn row_versions(client: &Client, table: &str) -> String {
    client
        .query_one(
            &format!(
                "SELECT coalesce(string_agg(ctid::text || '@' || xmin::text, ',' ORDER BY ctid), \
                 '') FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("row versions of {table}: {e:?}"))
        .get(0)
}

/// `(n_tup_ins, n_tup_del)` of `table` from pg_stat_user_tables.
async fn tuple_stats(client: &Client, table: &str) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT n_tup_ins, n_tup_del FROM pg_stat_user_tables WHERE relid = $1::text::regclass",
            &[&table],
        )
        .await
        .unwrap_or_else(|e| panic!("stats of {table}: {e:?}"));
    (row.get(0), row.get(1))
}

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

/// A folder the server (user `postgres`) can read, for CSV files written by the test.
fn csv_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgtrickle-fdw-")
        .tempdir()
        .expect("create csv dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod csv dir");
    dir
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, renamed over it.
fn write_atomically(path: &Path, text: &str) {
    let tmp: PathBuf = path.with_file_name(format!(
        ".tmp-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).expect("write temporary csv");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod csv");
    std::fs::rename(&tmp, path).expect("rename csv into place");
}

/// Today's date as the server sees it (CURRENT_DATE), and the day before.
async fn today_and_yesterday(client: &Client) -> (String, String) {
    let row = client
        .query_one("SELECT CURRENT_DATE::text, (CURRENT_DATE - 1)::text", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

// ---------------------------------------------------------------------------------------------
// 1. The founding document's foreign examples, verbatim
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
    let local = Cluster::start();
    let proxy = proxy_for(proxy_bin!(), &local, &["--scheduler-interval-ms", "60000"]);
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
        assert!(table_exists(&client, &mirror).await, "{mirror} missing");
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
// 2. Duplicates and NULLs
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
// 3. A remote that goes down and comes back
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
// 4. A proxy restart between polls
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restart_between_polls_does_not_re_emit_rows() {
    let fdw = fdw_setup(
        "CREATE TABLE products (id int, category text, price numeric); \
         INSERT INTO products SELECT g % 40, 'c' || (g % 4), g FROM generate_series(1, 100) g; \
         INSERT INTO products VALUES (NULL, NULL, NULL), (NULL, NULL, NULL)",
        "60000",
    )
    .await;
    exec(&fdw.client, &fdw.proxy, REMOTE_PRODUCTS).await;
    let q = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
             GROUP BY category";
    create_st(&fdw.client, &fdw.proxy, "summary", q, ", schedule => '1h'").await;
    fdw.remote
        .psql("UPDATE products SET price = price + 1 WHERE id < 5");
    refresh(&fdw.client, &fdw.proxy, "summary").await;
    assert_equal(&fdw.client, &fdw.proxy, "summary", "category, n, total", q).await;
    let mirror = mirror_of(&fdw.client, "remote_products").await;
    let versions = row_versions(&fdw.client, &mirror).await;

    // A new proxy on the same database. The old proxy's sessions flush their table statistics
    // when their backends exit: wait for that before taking the mirror's counts. Our session
    // ends first (the proxy waits for its sessions when it stops).
    let Fdw {
        remote,
        local,
        proxy: mut old_proxy,
        client: old_client,
    } = fdw;
    drop(old_client);
    let monitor = connect(&local.conninfo("postgres", "postgres")).await;
    let old_backends: Vec<i32> = monitor
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
             AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        old_proxy.terminate(Duration::from_secs(30)).is_some(),
        "the proxy did not stop"
    );
    await_true(
        &monitor,
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1))",
        &[&old_backends],
        Duration::from_secs(20),
        "the old proxy's sessions did not end",
    )
    .await;
    let proxy = proxy_for(proxy_bin!(), &local, &["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let (ins_before, del_before) = tuple_stats(&monitor, &mirror).await;

    refresh(&client, &proxy, "summary").await;
    let poll = poll_of(&client, &proxy, "public.remote_products").await;
    assert_eq!(poll.rows_changed, 0, "no remote change, but: {poll:?}");
    assert_eq!(poll.rows_scanned, 102, "{poll:?}");
    assert_eq!(
        row_versions(&client, &mirror).await,
        versions,
        "the mirror was written by a poll after the restart that found no change"
    );
    await_pollers_gone(&monitor).await;
    assert_eq!(
        tuple_stats(&monitor, &mirror).await,
        (ins_before, del_before),
        "the mirror was written by a poll after the restart that found no change \
         (n_tup_ins, n_tup_del)"
    );
    assert_equal(&client, &proxy, "summary", "category, n, total", q).await;

    // A change after the restart is picked up exactly once.
    remote.psql("INSERT INTO products VALUES (7, 'c1', 1000)");
    refresh(&client, &proxy, "summary").await;
    let poll = poll_of(&client, &proxy, "public.remote_products").await;
    assert_eq!(poll.rows_changed, 1, "one remote insert: {poll:?}");
    assert_equal(&client, &proxy, "summary", "category, n, total", q).await;
    // The statistics confirm it: one insert and no delete since the restart (flushed when the
    // session's backend exits).
    drop(client);
    let started = Instant::now();
    loop {
        let (ins, del) = tuple_stats(&monitor, &mirror).await;
        if ins > ins_before {
            assert_eq!(
                (ins, del),
                (ins_before + 1, del_before),
                "mirror writes since the restart (n_tup_ins, n_tup_del): expected one insert"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the mirror's insert was never counted\nproxy log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 5. One foreign source, two stream tables
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mirror_serves_every_reader_and_goes_with_the_last() {
    let fdw = fdw_setup(
        "CREATE TABLE products (id int PRIMARY KEY, category text, price numeric); \
         INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 30) g",
        "200",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(client, proxy, REMOTE_PRODUCTS).await;
    let fast_q = "SELECT category, count(*) AS n FROM remote_products GROUP BY category";
    let slow_q = "SELECT id, price FROM remote_products WHERE price > 10";
    create_st(client, proxy, "fast_counts", fast_q, ", schedule => '1s'").await;
    create_st(client, proxy, "slow_prices", slow_q, ", schedule => '1h'").await;
    let mirror = mirror_of(client, "remote_products").await;
    assert_eq!(mirror_count(client).await, 1, "exactly one mirror");
    assert!(table_exists(client, &mirror).await, "{mirror} missing");
    let poll = poll_of(client, proxy, "public.remote_products").await;
    assert!(
        poll.mirror
            .ends_with(mirror.trim_start_matches("pgtrickle_changes.")),
        "pgt_poll_status().mirror {:?} is not {mirror}",
        poll.mirror
    );
    assert!(poll.polled, "last_poll_at is NULL: {poll:?}");
    assert_eq!(
        count(client, "SELECT count(*) FROM pgtrickle.pgt_poll_status()").await,
        1,
        "one poll status row per source"
    );

    fdw.remote.psql(
        "INSERT INTO products VALUES (100, 'new', 50); UPDATE products SET price = 5 \
         WHERE id = 20; DELETE FROM products WHERE id IN (1, 2, 3)",
    );
    // The fast one converges by itself.
    await_equal(
        client,
        proxy,
        "fast_counts",
        "category, n",
        fast_q,
        Duration::from_secs(20),
    )
    .await;
    // The slow one equals its query after a manual refresh.
    refresh(client, proxy, "slow_prices").await;
    assert_equal(client, proxy, "slow_prices", "id, price", slow_q).await;
    assert_equal(client, proxy, "fast_counts", "category, n", fast_q).await;
    assert_eq!(mirror_count(client).await, 1, "still exactly one mirror");

    exec(
        client,
        proxy,
        "SELECT pgtrickle.drop_stream_table('fast_counts')",
    )
    .await;
    assert!(
        table_exists(client, &mirror).await,
        "the mirror was dropped while slow_prices still reads it"
    );
    fdw.remote
        .psql("UPDATE products SET price = 99 WHERE id = 4");
    // This time through the extended protocol (a bound parameter): it polls first too.
    client
        .execute(
            "SELECT pgtrickle.refresh_stream_table($1)",
            &[&"slow_prices"],
        )
        .await
        .unwrap_or_else(|e| panic!("extended refresh: {e:?}\nproxy log:\n{}", proxy.log()));
    assert_equal(client, proxy, "slow_prices", "id, price", slow_q).await;

    exec(
        client,
        proxy,
        "SELECT pgtrickle.drop_stream_table('slow_prices')",
    )
    .await;
    assert!(
        !table_exists(client, &mirror).await,
        "the mirror outlived its last reader"
    );
    assert_eq!(mirror_count(client).await, 0);
    assert!(
        poll_status(client, "public.remote_products")
            .await
            .is_none(),
        "a poll status row is left for a source nothing reads"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A poll with no changes writes nothing
// ---------------------------------------------------------------------------------------------

/// Waits until no backend of a poll (application_name `pgtrickle-proxy poller`: the proxy opens
/// them per poll) is left: a backend flushes its table statistics when it exits.
async fn await_pollers_gone(monitor: &Client) {
    await_true(
        monitor,
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE application_name = 'pgtrickle-proxy poller')",
        &[],
        Duration::from_secs(20),
        "poll connections did not close",
    )
    .await;
}

/// Connects through `proxy`, runs `sql`, disconnects, and waits until that session's backend and
/// the poll connections have exited (which flushes their table statistics).
async fn in_own_session(proxy: &ProxyProcess, monitor: &Client, sql: &str) {
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    exec(&client, proxy, sql).await;
    drop(client);
    await_true(
        monitor,
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
        &[&pid],
        Duration::from_secs(20),
        &format!("backend {pid} did not exit"),
    )
    .await;
    await_pollers_gone(monitor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_finds_no_change_writes_nothing_to_the_mirror() {
    let fdw = fdw_setup(
        "CREATE TABLE products (id int, category text, price numeric); \
         INSERT INTO products SELECT g, 'c' || (g % 5), g FROM generate_series(1, 200) g",
        "60000",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(client, proxy, REMOTE_PRODUCTS).await;
    let q = "SELECT category, sum(price) AS total FROM remote_products GROUP BY category";
    let monitor = connect(&fdw.local.conninfo("postgres", "postgres")).await;
    in_own_session(
        proxy,
        &monitor,
        &format!(
            "SELECT pgtrickle.create_stream_table(name => 'totals', query => $q${q}$q$, \
             schedule => '1h')"
        ),
    )
    .await;
    let mirror = mirror_of(client, "remote_products").await;
    // The first poll filled the mirror: wait until its inserts are counted.
    let started = Instant::now();
    while tuple_stats(&monitor, &mirror).await.0 < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the mirror's first 200 inserts were never counted: {:?}",
            tuple_stats(&monitor, &mirror).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats_before = tuple_stats(&monitor, &mirror).await;
    let versions = row_versions(&monitor, &mirror).await;

    in_own_session(
        proxy,
        &monitor,
        "SELECT pgtrickle.refresh_stream_table('totals')",
    )
    .await;
    let poll = poll_of(client, proxy, "public.remote_products").await;
    assert_eq!(poll.rows_changed, 0, "nothing changed remotely: {poll:?}");
    assert_eq!(poll.rows_scanned, 200, "{poll:?}");
    assert!(!poll.scan_skipped, "a postgres_fdw scan cannot be skipped");
    assert_eq!(poll.consecutive_errors, 0, "{poll:?}");
    assert_eq!(
        row_versions(&monitor, &mirror).await,
        versions,
        "a poll that found no change rewrote mirror rows"
    );
    assert_eq!(
        tuple_stats(&monitor, &mirror).await,
        stats_before,
        "a poll that found no change wrote to the mirror (n_tup_ins, n_tup_del)"
    );
    assert_equal(client, proxy, "totals", "category, total", q).await;

    // A single remote change is a single mirror write.
    fdw.remote
        .psql("UPDATE products SET price = 0 WHERE id = 7");
    in_own_session(
        proxy,
        &monitor,
        "SELECT pgtrickle.refresh_stream_table('totals')",
    )
    .await;
    let poll = poll_of(client, proxy, "public.remote_products").await;
    assert_eq!(poll.rows_changed, 2, "one row updated remotely: {poll:?}");
    let started = Instant::now();
    loop {
        let (ins, del) = tuple_stats(&monitor, &mirror).await;
        if ins > stats_before.0 && del > stats_before.1 {
            assert_eq!(
                (ins, del),
                (stats_before.0 + 1, stats_before.1 + 1),
                "one row updated remotely: one insert and one delete in the mirror"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the mirror's writes were never counted: {:?}",
            (ins, del)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_equal(client, proxy, "totals", "category, total", q).await;
}

// ---------------------------------------------------------------------------------------------
// 7. file_fdw
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_fdw_bad_files_fail_good_files_converge_and_unchanged_files_are_not_scanned() {
    let local = Cluster::start();
    let proxy = proxy_for(proxy_bin!(), &local, &["--scheduler-interval-ms", "60000"]);
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
// 8. cdc_mode => 'wal'
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
    if table_exists(client, "pgtrickle.pgt_stream_tables").await {
        assert_eq!(
            count(client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
            0,
            "the refused stream table was left in the catalog"
        );
    }
    assert!(
        !table_exists(client, "by_wal").await,
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
// 9. A foreign-table definition that changed
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
// 10. The first stream table of a database reads a foreign table
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
// 11. Local changes of a mixed query are applied against the mirror
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

/// Waits until no postgres_fdw session is left on `remote` (they flush their table statistics
/// when they exit), then returns the scans of `table` there (sequential plus index scans).
async fn remote_scans(remote: &Client, table: &str) -> i64 {
    let started = Instant::now();
    while count(
        remote,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
         AND pid <> pg_backend_pid()",
    )
    .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "postgres_fdw sessions on the remote did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    remote
        .query_one(
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables \
             WHERE relid = $1::text::regclass",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

/// A change of the local table only, in `orders JOIN remote_products`, is applied by the
/// scheduler without reading the foreign table: the remote sees no scan. (A `calculated`
/// stream table refreshes as soon as its local source changes; its foreign source is polled at
/// most every 30 s, and create has just polled it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_change_of_a_mixed_query_does_not_scan_the_foreign_table() {
    let fdw = fdw_setup(
        "CREATE TABLE products (id int PRIMARY KEY, category text, price numeric); \
         INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 10) g",
        "200",
    )
    .await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(
        client,
        proxy,
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
    create_st(client, proxy, "mixed", q, ", schedule => 'calculated'").await;
    assert_equal(client, proxy, "mixed", cols, q).await;
    // From here on the oracle reads the mirror (reading the foreign table would scan the
    // remote); the remote does not change, so the mirror is its contents.
    let mirror = mirror_of(client, "remote_products").await;
    let over_mirror = q.replace("remote_products rp", &format!("{mirror} rp"));
    assert_eq!(rows_differing(client, "mixed", cols, &over_mirror).await, 0);
    // This session's own postgres_fdw connection (from the check above) goes.
    exec(client, proxy, "SELECT postgres_fdw_disconnect_all()").await;
    let remote_monitor = connect(&fdw.remote.conninfo("postgres", "postgres")).await;
    let scans_before = remote_scans(&remote_monitor, "products").await;

    exec(
        client,
        proxy,
        "INSERT INTO orders (customer_id, product_id, total) VALUES (7, 1, 100), (7, 2, 5); \
         UPDATE orders SET total = total + 1 WHERE id < 6",
    )
    .await;
    let started = Instant::now();
    while rows_differing(client, "mixed", cols, &over_mirror).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the local change was not applied by the scheduler\nproxy log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(client, "SELECT count(*) FROM mixed WHERE customer_id = 7").await,
        2
    );
    assert_eq!(
        remote_scans(&remote_monitor, "products").await,
        scans_before,
        "applying a local change scanned the remote table\npoll status: {:?}\nproxy log:\n{}",
        poll_status(client, "public.remote_products").await,
        proxy.log()
    );
    // A manual refresh polls: it reads the remote table exactly once.
    refresh(client, proxy, "mixed").await;
    assert_eq!(
        remote_scans(&remote_monitor, "products").await,
        scans_before + 1,
        "a poll should read the foreign table once"
    );
}

// ---------------------------------------------------------------------------------------------
// 13. Recovering from a changed foreign-table definition
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

// ---------------------------------------------------------------------------------------------
// 14. alter_stream_table with a new query over a foreign table
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
// 15. Names, and a stream table over a stream table over a foreign table
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

// ---------------------------------------------------------------------------------------------
// Mirrors left behind by a create that was rolled back
// ---------------------------------------------------------------------------------------------

/// A create inside a transaction block fills the mirror in a transaction of its own; when the
/// block rolls back, the mirror has no reader and the scheduler drops it after a grace period
/// (aged here by hand), but never while a transaction still uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_of_rolled_back_creates_are_dropped_but_not_while_in_use() {
    let fdw = fdw_setup(PRODUCTS, "100").await;
    let (client, proxy) = (&fdw.client, &fdw.proxy);
    exec(client, proxy, REMOTE_PRODUCTS).await;
    let monitor = connect(&fdw.local.conninfo("postgres", "postgres")).await;
    let q = "SELECT category, count(*) AS n FROM remote_products GROUP BY category";
    let age = "UPDATE pgtrickle.pgt_polled_sources SET created_at = now() - interval '1 hour'";

    // Still in use by an open block that created a stream table over it: kept.
    exec(client, proxy, "BEGIN").await;
    create_st(client, proxy, "summary", q, ", schedule => '1h'").await;
    let mirror = mirror_of(&monitor, "remote_products").await;
    monitor.batch_execute(age).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        table_exists(&monitor, &mirror).await,
        "a mirror in use was dropped"
    );
    exec(client, proxy, "COMMIT").await;
    assert_equal(client, proxy, "summary", "category, n", q).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        table_exists(&monitor, &mirror).await,
        "a mirror with a reader was dropped"
    );
    fdw.remote
        .psql("INSERT INTO products VALUES (100, 'c9', 1)");
    refresh(client, proxy, "summary").await;
    assert_equal(client, proxy, "summary", "category, n", q).await;

    // Rolled back, and no other reader: dropped once old enough.
    exec(
        client,
        proxy,
        "SELECT pgtrickle.drop_stream_table('summary')",
    )
    .await;
    exec(client, proxy, "BEGIN").await;
    create_st(client, proxy, "summary", q, ", schedule => '1h'").await;
    exec(client, proxy, "ROLLBACK").await;
    assert!(
        table_exists(&monitor, &mirror).await,
        "the mirror should outlive the rollback"
    );
    monitor.batch_execute(age).await.unwrap();
    await_true(
        &monitor,
        "SELECT to_regclass($1) IS NULL AND NOT EXISTS (SELECT 1 FROM \
         pgtrickle.pgt_polled_sources)",
        &[&mirror],
        Duration::from_secs(10),
        "the orphaned mirror was not dropped",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 17. An owner who is not a superuser: the mirror is the proxy's, and nothing the owner
//     controls runs on the poller's connections
// ---------------------------------------------------------------------------------------------

/// The role a malicious owner uses, and the function it would like the proxy's role to run:
/// back to the session's real user (the proxy's, a superuser here), then make itself superuser.
/// In its own session the attempt fails quietly, so it can sit in a domain CHECK or a view.
const MALLORY_SETUP: &str = "CREATE ROLE mallory LOGIN; \
    GRANT USAGE ON FOREIGN SERVER remote_analytics TO mallory; \
    CREATE USER MAPPING FOR mallory SERVER remote_analytics \
      OPTIONS (user 'postgres', password_required 'false'); \
    GRANT CREATE ON SCHEMA public TO mallory";
const ESCALATE: &str = "CREATE FUNCTION public.escalate(v numeric) RETURNS bool \
    LANGUAGE plpgsql AS $f$ \
    BEGIN \
      BEGIN RESET ROLE; ALTER ROLE mallory SUPERUSER; \
      EXCEPTION WHEN OTHERS THEN NULL; END; \
      RETURN true; \
    END $f$";

/// [`fdw_setup`] plus role mallory (not a superuser) with its own user mapping and function
/// `public.escalate`, connected through the proxy; and a direct superuser connection to the
/// local cluster.
async fn mallory_setup(scheduler_ms: &str) -> (Fdw, Client, Client) {
    let fdw = fdw_setup(PRODUCTS, scheduler_ms).await;
    exec(&fdw.client, &fdw.proxy, MALLORY_SETUP).await;
    let mallory = connect(&fdw.proxy.conninfo("mallory", "postgres")).await;
    exec(&mallory, &fdw.proxy, ESCALATE).await;
    let admin = connect(&fdw.local.conninfo("postgres", "postgres")).await;
    (fdw, mallory, admin)
}

async fn is_superuser(admin: &Client, role: &str) -> bool {
    admin
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .unwrap_or_else(|e| panic!("rolsuper of {role}: {e:?}"))
        .get(0)
}

/// The owner of relation `name`, or None when it does not exist.
async fn owner_of(admin: &Client, name: &str) -> Option<String> {
    admin
        .query_one(
            "SELECT (SELECT relowner::regrole::text FROM pg_class WHERE oid = to_regclass($1))",
            &[&name],
        )
        .await
        .unwrap_or_else(|e| panic!("owner of {name}: {e:?}"))
        .get(0)
}

/// Runs `sql` as `client`, which must fail with `code`.
async fn assert_fails(client: &Client, sql: &str, code: &str) -> String {
    let err = client
        .batch_execute(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql} succeeded but should have failed with {code}"));
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a database error: {err:?}"));
    assert_eq!(db.code().code(), code, "{sql}: {}", db.message());
    db.message().to_string()
}

const SUMMARY_Q: &str = "SELECT category, count(*) AS n, sum(price) AS total FROM remote_products \
    GROUP BY category";
const SUMMARY_COLS: &str = "category, n, total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_and_buffer_belong_to_the_proxys_role_and_the_owner_cannot_touch_them() {
    let (fdw, mallory, admin) = mallory_setup("60000").await;
    let proxy = &fdw.proxy;
    exec(&mallory, proxy, REMOTE_PRODUCTS).await;
    create_st(&mallory, proxy, "summary", SUMMARY_Q, ", schedule => '1h'").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;

    let mirror = mirror_of(&admin, "remote_products").await;
    let buffer = mirror.replace("mirror_", "changes_");
    assert_eq!(owner_of(&admin, &mirror).await.as_deref(), Some("postgres"));
    assert_eq!(owner_of(&admin, &buffer).await.as_deref(), Some("postgres"));
    assert_eq!(
        contents(
            &admin,
            "SELECT owner::text FROM pgtrickle.pgt_polled_sources"
        )
        .await,
        "(mallory)",
        "the source is polled for the stream table's owner"
    );
    // The owner reads the mirror (its refreshes do) but can neither change it nor hook code
    // onto it that the proxy's role would run.
    assert_eq!(
        count(&mallory, &format!("SELECT count(*) FROM {mirror}")).await,
        30
    );
    exec(
        &mallory,
        proxy,
        "CREATE FUNCTION public.hook() RETURNS trigger LANGUAGE plpgsql AS $f$ \
         BEGIN PERFORM public.escalate(1); RETURN NEW; END $f$",
    )
    .await;
    for sql in [
        format!("CREATE TRIGGER hook BEFORE INSERT ON {mirror} FOR EACH ROW EXECUTE FUNCTION public.hook()"),
        format!("CREATE TRIGGER hook BEFORE INSERT ON {buffer} FOR EACH ROW EXECUTE FUNCTION public.hook()"),
        format!("INSERT INTO {mirror} SELECT * FROM {mirror}"),
        format!("UPDATE {mirror} SET price = 0"),
        format!("DELETE FROM {mirror}"),
        format!("TRUNCATE {mirror}"),
        format!("ALTER TABLE {mirror} OWNER TO mallory"),
        format!("INSERT INTO {buffer} SELECT * FROM {buffer}"),
    ] {
        assert_fails(&mallory, &sql, "42501").await;
    }
    assert_eq!(
        count(&mallory, &format!("SELECT count(*) FROM {mirror}")).await,
        30
    );

    // Polling works for an owner that is not a superuser, and runs nothing of the owner's.
    fdw.remote.psql(
        "UPDATE products SET price = price + 100 WHERE id <= 3; \
         INSERT INTO products VALUES (31, 'c9', 7)",
    );
    refresh(&mallory, proxy, "summary").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;
    assert!(!is_superuser(&admin, "mallory").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_check_calling_the_owners_code_is_refused_and_never_runs_as_the_proxy() {
    let (fdw, mallory, admin) = mallory_setup("60000").await;
    let proxy = &fdw.proxy;
    exec(
        &mallory,
        proxy,
        "CREATE DOMAIN public.checked_price AS numeric CHECK (public.escalate(VALUE)); \
         CREATE DOMAIN public.outer_price AS public.checked_price; \
         CREATE FOREIGN TABLE public.checked_products (id int, category text, \
           price public.checked_price) SERVER remote_analytics \
           OPTIONS (table_name 'products'); \
         CREATE FOREIGN TABLE public.nested_products (id int, category text, \
           price public.outer_price[]) SERVER remote_analytics \
           OPTIONS (table_name 'products')",
    )
    .await;
    // Refused up front, naming the column, whether the domain is the column's type or inside
    // it (an array of a domain over it).
    for (st, table) in [
        ("checked_sum", "checked_products"),
        ("nested_sum", "nested_products"),
    ] {
        let message = assert_fails(
            &mallory,
            &format!(
                "SELECT pgtrickle.create_stream_table('{st}', \
                 'SELECT category, count(*) AS n FROM {table} GROUP BY category')"
            ),
            "0A000",
        )
        .await;
        assert!(
            message.contains("column \"price\"") && message.contains("CHECK"),
            "{message}"
        );
        assert!(!is_superuser(&admin, "mallory").await, "after {st}");
    }

    // A domain that gets its CHECK after the stream table was created: the next poll refuses,
    // the stream table keeps its contents.
    exec(
        &mallory,
        proxy,
        "CREATE DOMAIN public.later_price AS numeric; \
         CREATE FOREIGN TABLE public.remote_products (id int, category text, \
           price public.later_price) SERVER remote_analytics \
           OPTIONS (table_name 'products')",
    )
    .await;
    create_st(&mallory, proxy, "summary", SUMMARY_Q, ", schedule => '1h'").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;
    let kept = contents(&mallory, &format!("SELECT {SUMMARY_COLS} FROM summary")).await;
    exec(
        &mallory,
        proxy,
        "ALTER DOMAIN public.later_price ADD CONSTRAINT escalates \
         CHECK (public.escalate(VALUE)) NOT VALID",
    )
    .await;
    fdw.remote.psql("INSERT INTO products VALUES (31, 'c9', 7)");
    let code = assert_refresh_fails_keeping(
        &mallory,
        proxy,
        "summary",
        SUMMARY_COLS,
        &kept,
        &["column \"price\""],
        "after the domain got a CHECK",
    )
    .await;
    assert_eq!(code, "0A000");
    let poll = poll_of(&mallory, proxy, "public.remote_products").await;
    assert!(
        poll.last_error
            .as_deref()
            .is_some_and(|e| e.contains("CHECK")),
        "{poll:?}"
    );
    assert!(!is_superuser(&admin, "mallory").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_table_replaced_by_a_view_is_refused_by_the_next_poll() {
    let (fdw, mallory, admin) = mallory_setup("60000").await;
    let proxy = &fdw.proxy;
    exec(&mallory, proxy, REMOTE_PRODUCTS).await;
    create_st(&mallory, proxy, "summary", SUMMARY_Q, ", schedule => '1h'").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;
    let kept = contents(&mallory, &format!("SELECT {SUMMARY_COLS} FROM summary")).await;

    // Hold the poll after its writer looked the foreign table up (it waits for the poll
    // status table), swap the foreign table for a view of the same name, let it go on.
    let lock = connect(&fdw.local.conninfo("postgres", "postgres")).await;
    lock.batch_execute("BEGIN; LOCK TABLE pgtrickle.pgt_poll_state IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let refresher = connect(&proxy.conninfo("mallory", "postgres")).await;
    let refreshing = tokio::spawn(async move {
        refresher
            .batch_execute("SELECT pgtrickle.refresh_stream_table('summary')")
            .await
            .map_err(|e| {
                let db = e.as_db_error();
                (
                    db.map(|d| d.code().code().to_string()).unwrap_or_default(),
                    db.map(|d| d.message().to_string()).unwrap_or(e.to_string()),
                )
            })
    });
    await_true(
        &admin,
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE NOT l.granted AND l.relation = 'pgtrickle.pgt_poll_state'::regclass \
           AND a.application_name = 'pgtrickle-proxy poller')",
        &[],
        Duration::from_secs(20),
        "the poll did not reach the poll status",
    )
    .await;
    let direct = connect(&fdw.local.conninfo("mallory", "postgres")).await;
    direct
        .batch_execute(
            "DROP FOREIGN TABLE public.remote_products; \
             CREATE VIEW public.remote_products AS SELECT id, category, price \
             FROM (VALUES (1, 'c1', 1::numeric)) v(id, category, price) \
             WHERE public.escalate(price)",
        )
        .await
        .unwrap_or_else(|e| panic!("swap: {e:?}"));
    lock.batch_execute("COMMIT").await.unwrap();
    let (code, message) = match refreshing.await.unwrap() {
        Ok(()) => panic!(
            "the refresh over a view swapped in succeeded\nproxy log:\n{}",
            proxy.log()
        ),
        Err(e) => e,
    };
    eprintln!("refresh after the swap: {code}: {message}");
    assert!(
        message.contains("no longer the foreign table") && message.contains("remote_products"),
        "{code}: {message}"
    );
    assert!(!is_superuser(&admin, "mallory").await);
    assert_eq!(
        contents(&mallory, &format!("SELECT {SUMMARY_COLS} FROM summary")).await,
        kept
    );
    // And the next one too.
    assert_refresh_fails_keeping(
        &mallory,
        proxy,
        "summary",
        SUMMARY_COLS,
        &kept,
        &["remote_products", "no longer"],
        "with the view in place",
    )
    .await;
    assert!(!is_superuser(&admin, "mallory").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_mirror_is_prepared_again_by_the_next_poll() {
    let (fdw, mallory, admin) = mallory_setup("200").await;
    let proxy = &fdw.proxy;
    exec(&mallory, proxy, REMOTE_PRODUCTS).await;
    create_st(&mallory, proxy, "summary", SUMMARY_Q, ", schedule => '1h'").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;
    let mirror = mirror_of(&admin, "remote_products").await;
    let buffer = mirror.replace("mirror_", "changes_");

    // The mirror dropped by hand: the refresh a user asks for prepares it again.
    admin
        .batch_execute(&format!("DROP TABLE {mirror}"))
        .await
        .unwrap();
    fdw.remote.psql(
        "UPDATE products SET price = price + 100 WHERE id <= 3; \
         INSERT INTO products VALUES (31, 'c9', 7)",
    );
    refresh(&mallory, proxy, "summary").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;
    assert_eq!(owner_of(&admin, &mirror).await.as_deref(), Some("postgres"));
    assert_eq!(
        count(&mallory, &format!("SELECT count(*) FROM {mirror}")).await,
        31
    );

    // As the catalog upgrade leaves it (mirror, buffer and their catalog rows gone): the
    // scheduler's poll prepares it again.
    admin
        .batch_execute(&format!(
            "DROP TABLE {mirror}; DROP TABLE {buffer}; \
             DELETE FROM pgtrickle.pgt_polled_sources; DELETE FROM pgtrickle.pgt_poll_state"
        ))
        .await
        .unwrap();
    fdw.remote
        .psql("DELETE FROM products WHERE id > 25; INSERT INTO products VALUES (40, 'c0', 1)");
    exec(
        &mallory,
        proxy,
        "SELECT pgtrickle.alter_stream_table('summary', schedule => '1s')",
    )
    .await;
    await_equal(
        &mallory,
        proxy,
        "summary",
        SUMMARY_COLS,
        SUMMARY_Q,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(owner_of(&admin, &mirror).await.as_deref(), Some("postgres"));
    assert_eq!(owner_of(&admin, &buffer).await.as_deref(), Some("postgres"));
    assert_eq!(
        contents(
            &admin,
            "SELECT owner::text FROM pgtrickle.pgt_polled_sources"
        )
        .await,
        "(mallory)"
    );
    // Later changes flow as usual.
    fdw.remote
        .psql("UPDATE products SET category = 'c1' WHERE id = 40");
    refresh(&mallory, proxy, "summary").await;
    assert_equal(&mallory, proxy, "summary", SUMMARY_COLS, SUMMARY_Q).await;
    assert!(!is_superuser(&admin, "mallory").await);
}
