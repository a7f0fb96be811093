//! End-to-end tests of pgtrickle-proxy live in `tests/tests/`; this library holds what they
//! share: the project's test support (clusters, proxy processes), a byte-level client, the
//! usual cluster-plus-proxy set-up, psql runs, and statements run through the proxy
//! ([`sql`]: statements that must succeed or fail, refreshes, catalog look-ups).

pub mod drivers;
pub mod raw_client;
pub mod sql;

pub use pgtrickle_test_support::*;
pub use sql::*;

use std::path::Path;

/// Path of the proxy binary built for these tests.
#[macro_export]
macro_rules! proxy_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_proxy-under-test"))
    };
}

/// The usual set-up of a test: a fresh cluster and the proxy built for these tests in front of
/// it, started with the extra flags `args` (a `&[&str]`). Evaluates to `(Cluster, ProxyProcess)`.
#[macro_export]
macro_rules! setup {
    ($args:expr) => {
        $crate::cluster_and_proxy($crate::proxy_bin!(), $args)
    };
}

/// Starts a fresh cluster and a proxy from `bin` in front of it with extra flags `args` (what
/// [`setup!`] does with the proxy built for these tests).
pub fn cluster_and_proxy(bin: &Path, args: &[&str]) -> (Cluster, ProxyProcess) {
    let cluster = Cluster::start();
    let proxy = proxy_for(bin, &cluster, args);
    (cluster, proxy)
}

/// Starts a proxy in front of `cluster` (plain upstream connection) with extra flags.
pub fn proxy_for(bin: &Path, cluster: &Cluster, args: &[&str]) -> ProxyProcess {
    let upstream = format!("{}?sslmode=disable", cluster.url("postgres", "postgres"));
    ProxyProcess::start(bin, &upstream, args)
}

/// Asserts that `proxy` still serves: a new session logs in and gets a row for a query.
pub fn assert_serves(proxy: &ProxyProcess) {
    let (mut c, _) = raw_client::RawClient::login(proxy.port(), "postgres", "postgres");
    c.send(&raw_client::query("select 'alive'"));
    let answer = c.read_until_ready();
    assert!(answer.iter().any(|m| m.tag == b'D'), "{answer:?}");
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
    let mut cmd = std::process::Command::new(cluster.client_program("psql"));
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

/// psql ([`psql_isolated`]) must succeed; returns its output.
pub fn psql_ok(
    cluster: &Cluster,
    conninfo: &str,
    password: Option<&str>,
    commands: &[&str],
) -> String {
    let out = psql_isolated(cluster, conninfo, password, commands);
    assert!(
        out.status.success(),
        "psql {conninfo:?} {commands:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// psql ([`psql_isolated`]) must fail; returns its stderr.
pub fn psql_err(
    cluster: &Cluster,
    conninfo: &str,
    password: Option<&str>,
    commands: &[&str],
) -> String {
    let out = psql_isolated(cluster, conninfo, password, commands);
    assert!(
        !out.status.success(),
        "psql {conninfo:?} {commands:?} should have failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as the `&str` a command-line flag takes.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
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
