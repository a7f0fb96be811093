//! The background refresh machinery under operators' conditions: a proxy killed in the middle of
//! a refresh, connection failures in the log, wake-ups under write load, and a long refresh next
//! to short ones. Long refreshes are made by a session that locks a source (deterministic, unlike
//! a sleep), and counts are read from the server.

use std::time::{Duration, Instant};

use pgtrickle_e2e::{
    await_catalog, connect, count, proxy_bin, proxy_for, setup, Cluster, ProxyProcess,
};
use tokio_postgres::Client;

/// Backends of the proxy's own connections (scheduler, refresh workers, poller).
const PROXY_BACKENDS: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgtrickle-proxy%'";

/// Backends of the proxy's own connections waiting for a lock.
const PROXY_BACKENDS_WAITING: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE application_name LIKE 'pgtrickle-proxy%' AND wait_event_type = 'Lock'";

/// Waits until `sql` (one int8) returns `want`, failing with `what` after `within`.
async fn await_count(client: &Client, sql: &str, want: i64, within: Duration, what: &str) {
    let started = Instant::now();
    loop {
        if count(client, sql).await == want {
            return;
        }
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a stream table through the proxy.
async fn create(client: &Client, name: &str, query: &str, schedule: &str, mode: &str) {
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('{name}', $q${query}$q$, \
             schedule => '{schedule}', refresh_mode => '{mode}')"
        ))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_proxys_refresh_ends_on_the_server() {
    let cluster = Cluster::start();
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let mut proxy = proxy_for(proxy_bin!(), &cluster, &["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    client
        .batch_execute("CREATE TABLE src (v int); INSERT INTO src VALUES (1), (2)")
        .await
        .unwrap();
    create(&client, "st", "SELECT v FROM src", "1s", "FULL").await;
    // Another session holds the source: the scheduler's next FULL refresh waits for it while
    // holding the stream table's catalog row.
    let locker = connect(&cluster.conninfo("postgres", "postgres")).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE src IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    await_count(
        &direct,
        PROXY_BACKENDS_WAITING,
        1,
        Duration::from_secs(30),
        "no scheduled refresh waits for the locked source",
    )
    .await;
    drop(client);
    let status = std::process::Command::new("kill")
        .args(["-KILL", &proxy.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // The server notices the vanished proxy within client_connection_check_interval (1 s):
    // the refresh ends while the source is still locked.
    await_count(
        &direct,
        PROXY_BACKENDS,
        0,
        Duration::from_secs(10),
        "the killed proxy's refresh still runs on the server",
    )
    .await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    // A new proxy refreshes (the catalog row is free).
    direct
        .batch_execute("INSERT INTO src VALUES (3)")
        .await
        .unwrap();
    let _ = proxy.terminate(Duration::from_secs(5));
    let proxy = proxy_for(
        proxy_bin!(),
        &cluster,
        &["--scheduler-interval-ms", "60000"],
    );
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("SET statement_timeout = '20s'; SELECT pgtrickle.refresh_stream_table('st')")
        .await
        .unwrap_or_else(|e| panic!("refresh after the kill: {e:?}\n{}", proxy.log()));
    assert_eq!(count(&client, "SELECT count(*) FROM st").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_scheduler_connection_logs_the_servers_message() {
    let cluster = Cluster::start();
    cluster.psql("CREATE ROLE limited LOGIN CONNECTION LIMIT 0");
    let upstream = format!("{}?sslmode=disable", cluster.url("limited", "postgres"));
    let proxy = ProxyProcess::start(proxy_bin!(), &upstream, &[]);
    let started = Instant::now();
    loop {
        let log = proxy.log();
        if log.contains("scheduler cannot connect")
            && log.contains("53300")
            && log.contains("too many connections for role \"limited\"")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server's message is not in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_under_write_load_are_coalesced() {
    let cluster = Cluster::start();
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let mut proxy = proxy_for(proxy_bin!(), &cluster, &[]);
    let proxy_started = Instant::now();
    let conninfo = proxy.conninfo("postgres", "postgres");
    let client = connect(&conninfo).await;
    await_catalog(&client, &proxy).await;
    client
        .batch_execute("CREATE TABLE w (id serial PRIMARY KEY, v int)")
        .await
        .unwrap();
    create(
        &client,
        "w_total",
        "SELECT count(*) AS n, sum(v) AS s FROM w",
        "1s",
        "DIFFERENTIAL",
    )
    .await;
    // Many small commits through the proxy, each of which wakes the scheduler.
    let load = Duration::from_secs(5);
    let mut writers = Vec::new();
    for _ in 0..4 {
        let c = connect(&conninfo).await;
        writers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut commits = 0i64;
            while started.elapsed() < load {
                c.batch_execute("INSERT INTO w (v) VALUES (1)")
                    .await
                    .unwrap();
                commits += 1;
            }
            commits
        }));
    }
    let mut commits = 0;
    for w in writers {
        commits += w.await.unwrap();
    }
    // The stream table still follows.
    await_count(
        &client,
        "SELECT coalesce((SELECT n FROM w_total), 0)",
        commits,
        Duration::from_secs(30),
        "w_total did not catch up",
    )
    .await;
    drop(client);
    let lifetime = proxy_started.elapsed();
    assert!(proxy.terminate(Duration::from_secs(30)).is_some());
    // Every pass reads the catalog version once (a sequential scan of that one-row table); the
    // backends' statistics reach the server when they exit.
    await_count(
        &direct,
        PROXY_BACKENDS,
        0,
        Duration::from_secs(20),
        "the proxy's connections did not end",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    direct
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    let passes = count(
        &direct,
        "SELECT seq_scan FROM pg_stat_user_tables \
         WHERE relid = 'pgtrickle.pgt_catalog_version'::regclass",
    )
    .await;
    // At most one pass per 100 ms, plus slack (the API call's reads, the start-up).
    let bound = (lifetime.as_secs_f64() * 10.0 * 1.5) as i64 + 50;
    assert!(
        commits > 2 * bound,
        "too few commits ({commits}) to tell (bound {bound})"
    );
    assert!(
        passes <= bound,
        "{passes} scheduler passes in {lifetime:?} for {commits} commits (bound {bound})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_refresh_does_not_hold_up_the_others() {
    let cluster = Cluster::start();
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let proxy = proxy_for(proxy_bin!(), &cluster, &["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    client
        .batch_execute(
            "CREATE TABLE slow_src (v int); INSERT INTO slow_src VALUES (1); \
             CREATE TABLE fast_src (v int)",
        )
        .await
        .unwrap();
    create(&client, "slow_st", "SELECT v FROM slow_src", "1s", "FULL").await;
    create(
        &client,
        "fast_st",
        "SELECT count(*) AS n FROM fast_src",
        "1s",
        "DIFFERENTIAL",
    )
    .await;
    client
        .batch_execute("INSERT INTO slow_src VALUES (2)")
        .await
        .unwrap();
    // slow_st's refresh waits for this lock as long as the test holds it.
    let locker = connect(&cluster.conninfo("postgres", "postgres")).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE slow_src IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    await_count(
        &direct,
        PROXY_BACKENDS_WAITING,
        1,
        Duration::from_secs(30),
        "slow_st's refresh does not wait for the locked source",
    )
    .await;
    for round in 1..=3 {
        client
            .batch_execute("INSERT INTO fast_src VALUES (1)")
            .await
            .unwrap();
        await_count(
            &client,
            "SELECT coalesce((SELECT n FROM fast_st), 0)",
            round,
            Duration::from_secs(20),
            &format!(
                "fast_st was not refreshed (round {round}) while slow_st's refresh waits\n{}",
                proxy.log()
            ),
        )
        .await;
    }
    // slow_st's refresh was in progress all along, and finishes once the lock goes.
    assert_eq!(count(&direct, PROXY_BACKENDS_WAITING).await, 1);
    assert_eq!(count(&client, "SELECT count(*) FROM slow_st").await, 1);
    locker.batch_execute("ROLLBACK").await.unwrap();
    await_count(
        &client,
        "SELECT count(*) FROM slow_st",
        2,
        Duration::from_secs(20),
        "slow_st was not refreshed after the lock went",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_converges_in_order_with_concurrent_refreshes() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&client, &proxy).await;
    client
        .batch_execute("CREATE TABLE c_src (g int, v int); CREATE TABLE other (v int)")
        .await
        .unwrap();
    create(
        &client,
        "a",
        "SELECT g, sum(v) AS s, count(*) AS n FROM c_src GROUP BY g",
        "1s",
        "DIFFERENTIAL",
    )
    .await;
    create(
        &client,
        "b",
        "SELECT sum(s) AS total, sum(n) AS n FROM a",
        "calculated",
        "DIFFERENTIAL",
    )
    .await;
    create(
        &client,
        "o",
        "SELECT count(*) AS n FROM other",
        "calculated",
        "DIFFERENTIAL",
    )
    .await;
    let mut want = 0i64;
    for round in 1..=5i64 {
        client
            .batch_execute(&format!(
                "INSERT INTO c_src SELECT g % 3, g FROM generate_series(1, {round}) g; \
                 INSERT INTO other VALUES ({round})"
            ))
            .await
            .unwrap();
        want += round * (round + 1) / 2;
        await_count(
            &client,
            "SELECT coalesce((SELECT total FROM b), 0)::int8",
            want,
            Duration::from_secs(30),
            &format!("b did not converge (round {round})\n{}", proxy.log()),
        )
        .await;
        await_count(
            &client,
            "SELECT coalesce((SELECT n FROM o), 0)",
            round,
            Duration::from_secs(30),
            &format!("o did not follow (round {round})"),
        )
        .await;
    }
    // No refresh of b ran while one of a did.
    let overlapping = count(
        &client,
        "SELECT count(*) FROM pgtrickle.pgt_refresh_history ha \
         JOIN pgtrickle.pgt_stream_tables sa ON sa.pgt_id = ha.pgt_id AND sa.pgt_name = 'a' \
         JOIN pgtrickle.pgt_refresh_history hb ON hb.started_at < ha.finished_at \
           AND hb.finished_at > ha.started_at \
         JOIN pgtrickle.pgt_stream_tables sb ON sb.pgt_id = hb.pgt_id AND sb.pgt_name = 'b'",
    )
    .await;
    assert_eq!(overlapping, 0, "a refresh of b overlapped one of a");
}
