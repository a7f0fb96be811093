//! End-to-end tests of pgtrickle-proxy live in `tests/tests/`; this library holds what they
//! share: the project's test support (clusters, proxy processes), a byte-level client, and the
//! usual cluster-plus-proxy set-up.

pub mod raw_client;

pub use pgtrickle_test_support::*;

use std::path::Path;

/// Path of the proxy binary built for these tests.
#[macro_export]
macro_rules! proxy_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_proxy-under-test"))
    };
}

/// Starts a proxy in front of `cluster` (plain upstream connection) with extra flags.
pub fn proxy_for(bin: &Path, cluster: &Cluster, args: &[&str]) -> ProxyProcess {
    let upstream = format!("{}?sslmode=disable", cluster.url("postgres", "postgres"));
    ProxyProcess::start(bin, &upstream, args)
}

/// Connects tokio-postgres with `conninfo` and drives the connection in the background.
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conninfo}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Resident memory of a process in kB (from /proc).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("cannot read VmRSS of process {pid}"))
}

/// The single int8 value of a query.
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get::<_, i64>(0)
}

/// How many rows of stream table `st` (columns `cols`) and of `query` are not matched by a row
/// of the other, as bags (EXCEPT ALL both ways): 0 when the stream table equals its query.
pub async fn rows_differing(
    client: &tokio_postgres::Client,
    st: &str,
    cols: &str,
    query: &str,
) -> i64 {
    count(
        client,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT {cols} FROM {st} EXCEPT ALL ({query})) a) + \
             (SELECT count(*) FROM (({query}) EXCEPT ALL SELECT {cols} FROM {st}) b)"
        ),
    )
    .await
}

/// Runs the cluster's psql with `conninfo`, the password in PGPASSWORD (if any), and each of
/// `commands` as a `-c`; no PG* variable of the environment and no password file applies.
pub fn psql_isolated(
    cluster: &Cluster,
    conninfo: &str,
    password: Option<&str>,
    commands: &[&str],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(cluster.bin_dir().join("psql"));
    cmd.args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(format!("{conninfo} connect_timeout=20"));
    for c in commands {
        cmd.arg("-c").arg(c);
    }
    for var in [
        "PGPASSWORD",
        "PGSSLMODE",
        "PGCHANNELBINDING",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSERVICE",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
    ] {
        cmd.env_remove(var);
    }
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd.env("PGPASSFILE", "/nonexistent/pgpass")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run psql")
}

/// Statements that make database `postgres` of `remote` reachable from the current database as
/// the postgres_fdw server `server`, for the current user as `postgres` (the remote trusts local
/// connections; postgres_fdw refuses password-less connections for non-superusers, so tests
/// connect as `postgres`).
pub fn postgres_fdw_server_sql(server: &str, remote: &Cluster) -> String {
    format!(
        "CREATE EXTENSION IF NOT EXISTS postgres_fdw; \
         CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw \
         OPTIONS (host '127.0.0.1', dbname 'postgres', port '{}'); \
         CREATE USER MAPPING FOR CURRENT_USER SERVER {server} OPTIONS (user 'postgres');",
        remote.port()
    )
}

/// The rows of `query` as text, sorted, joined by `;` (to compare a table before and after).
pub async fn contents(client: &tokio_postgres::Client, query: &str) -> String {
    let sql =
        format!("SELECT coalesce(string_agg(q::text, ';' ORDER BY q::text), '') FROM ({query}) q");
    client
        .query_one(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get::<_, String>(0)
}

/// Polls `sql` (one boolean value) every 50 ms until it is true; fails the test with `what`
/// when `within` has passed.
pub async fn await_true(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    within: std::time::Duration,
    what: &str,
) {
    let started = std::time::Instant::now();
    loop {
        let done: bool = client
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0);
        if done {
            return;
        }
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the pgtrickle catalog exists (the scheduler of the `--upstream` database creates
/// it at start-up), for tests that start after that set-up rather than racing it.
pub async fn await_catalog(client: &tokio_postgres::Client, proxy: &ProxyProcess) {
    await_true(
        client,
        "SELECT to_regprocedure('pgtrickle.pgt_poll_status()') IS NOT NULL",
        &[],
        std::time::Duration::from_secs(20),
        &format!(
            "the scheduler did not create the catalog\nproxy log:\n{}",
            proxy.log()
        ),
    )
    .await;
}
