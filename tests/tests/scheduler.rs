//! The background refresh machinery under operators' conditions: a proxy killed in the middle of
//! a refresh, and connection failures in the log. Long refreshes are made by a session that
//! locks a source (deterministic, unlike a sleep), and counts are read from the server.

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
