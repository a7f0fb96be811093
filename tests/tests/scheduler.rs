//! The background refresh machinery under operators' conditions: a proxy killed in the middle of
//! a refresh, connection failures in the log, and wake-ups under write load. Long refreshes are
//! made by a session that locks a source (deterministic, unlike a sleep), and counts are read
//! from the server.

use std::time::{Duration, Instant};

use pgtrickle_e2e::{await_catalog, connect, count, proxy_bin, proxy_for, Cluster, ProxyProcess};
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
    eprintln!("{passes} passes in {lifetime:?} for {commits} commits (bound {bound})");
    assert!(
        commits > 2 * bound,
        "too few commits ({commits}) to tell (bound {bound})"
    );
    assert!(
        passes <= bound,
        "{passes} scheduler passes in {lifetime:?} for {commits} commits (bound {bound})"
    );
}
