//! The mirrors of foreign-table sources (the local copy each poll compares the foreign rows
//! with), through the proxy with real clusters (see foreign_tables.rs): a proxy restart between
//! polls; one mirror shared by two stream tables and dropped with the last; a poll with no
//! changes writing nothing; a local change of a mixed query scanning nothing remote; mirrors of
//! rolled-back creates dropped; and an owner that is not a superuser: the mirror and buffer are
//! the proxy's role's and the owner cannot touch them, a domain CHECK calling the owner's code
//! is refused (at create and when added later), a foreign table swapped for a view mid-poll is
//! refused, and a dropped mirror is prepared again by the next poll.

mod foreign_support;

use std::time::{Duration, Instant};

use foreign_support::{
    assert_equal, assert_refresh_fails_keeping, await_equal, create_st, fdw_setup, mirror_count,
    mirror_of, poll_of, poll_status, Fdw, PRODUCTS, REMOTE_PRODUCTS,
};
use pgtrickle_e2e::{
    await_true, connect, contents, count, exec, is_superuser, proxy_bin, proxy_for, refresh,
    relation_exists, rows_differing, ProxyProcess,
};
use tokio_postgres::Client;

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

// ---------------------------------------------------------------------------------------------
// A proxy restart between polls
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
// One foreign source, two stream tables
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
    assert!(relation_exists(client, &mirror).await, "{mirror} missing");
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
        relation_exists(client, &mirror).await,
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
        !relation_exists(client, &mirror).await,
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
// A poll with no changes writes nothing
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
// A local change of a mixed query does not scan the foreign table
// ---------------------------------------------------------------------------------------------

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
        relation_exists(&monitor, &mirror).await,
        "a mirror in use was dropped"
    );
    exec(client, proxy, "COMMIT").await;
    assert_equal(client, proxy, "summary", "category, n", q).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        relation_exists(&monitor, &mirror).await,
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
        relation_exists(&monitor, &mirror).await,
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
// An owner who is not a superuser: the mirror is the proxy's, and nothing the owner
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
